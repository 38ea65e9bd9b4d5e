// OpenAI-shaped error bodies: {"error":{"message","type","param","code"}}.
//
// Every error tokenway itself produces goes through here so clients built for the OpenAI API
// handle them without special cases.
#pragma once

#include <string>
#include <string_view>

namespace tokenway {

// Appends the JSON error body. `param` empty renders as null.
void AppendOpenAiError(std::string& out, std::string_view message, std::string_view type,
                       std::string_view param, std::string_view code);

// The OpenAI error "type" conventionally used for an HTTP status.
std::string_view ErrorTypeForStatus(int status);

}  // namespace tokenway
