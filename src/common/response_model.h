// ReplaceResponseModel: the one edit tokenway makes to a response's JSON for model versions —
// the "model" member's value, from the name the upstream served under back to the name the
// client asked for (models[].response_model: alias).
//
// Called on worker threads by the relay phase, once per whole body or stream event of a request
// whose version is served under another name. It finds the first "model" key followed by a
// plain string value (no escapes, as model names are) without parsing the rest; a JSON string
// cannot contain an unescaped quote, so the key text cannot be matched inside another string.
#pragma once

#include <string>
#include <string_view>

namespace tokenway {

// Writes `json` with its "model" value `from` replaced by `to` into `out` (cleared first) and
// returns true; returns false (out unspecified) when `json` has no "model" member whose value is
// exactly `from`.
bool ReplaceResponseModel(std::string_view json, std::string_view from, std::string_view to,
                          std::string& out);

}  // namespace tokenway
