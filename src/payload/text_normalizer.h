// TextNormalizer: the form payload processors match text in — NFKC with case folding (libutf8proc)
// and default-ignorable characters (zero-width spaces, joiners) removed — so full-width digits,
// ligatures, mathematical letters and invisible separators do not slip past a pattern or a
// detector. Every normalised byte remembers the source byte offset of the character it came from,
// so a match found in the normalised text maps back to the exact source span to redact.
//
// Normalisation is per character (each character's NFKC and case folding); characters that only
// compose with their neighbours (a letter followed by a combining accent) keep the combining mark.
// Invalid UTF-8 bytes become U+FFFD each. Called on worker threads; a NormalizedText is reused
// across calls to keep its capacity.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

struct NormalizedText {
  std::string text;
  // Source offset of the character each byte of `text` came from; empty when the source was
  // ASCII (then `text` is the source lowercased and offsets are the identity).
  std::vector<uint32_t> origin;
  std::string_view source;

  // The source span [begin, end) that normalised bytes [nbegin, nend) came from (nend > nbegin).
  void SourceSpan(size_t nbegin, size_t nend, size_t& begin, size_t& end) const;
};

// Normalises `source` into `out` (which keeps a view of `source`).
void NormalizeText(std::string_view source, NormalizedText& out);

// Byte length of the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte).
inline size_t Utf8SequenceLength(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

}  // namespace tokenway
