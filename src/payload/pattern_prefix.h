// PatternPrefix: from a user's regular expression (RE2 syntax), a second expression that matches
// every prefix of every match of the first (and possibly more: it is a superset) — what a stream
// window needs to know to release text early. The `patterns` processor anchors the prefixes of
// all its patterns at the end of the held text: text before the leftmost place such a prefix
// starts cannot be part of a match that is still in progress, so it leaves at once rather than
// waiting for the full window.
//
// The expression is built from the pattern's syntax: a literal or class c becomes (c)?, a
// concatenation XY becomes Pref(X) | X Pref(Y), an alternation the alternation of the prefixes,
// X{n,m} becomes X{0,m-1} Pref(X); zero-width assertions (^ $ \b \B \A \z) are dropped (they can
// only make a prefix of the stream's text look impossible that is not) and `.` also matches a
// newline. Called on the control thread when a PatternScanner is built.
#pragma once

#include <string>
#include <string_view>

namespace tokenway {

// Writes the prefix expression of `pattern` (a pattern RE2 accepted) to `out`. False when the
// pattern uses syntax this does not follow or the expression would exceed `max_size` bytes;
// then the caller holds back the full window.
bool PatternPrefix(std::string_view pattern, std::string& out, size_t max_size = 16384);

}  // namespace tokenway
