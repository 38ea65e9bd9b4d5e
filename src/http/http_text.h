// Small pieces of HTTP/1.1 text the gateway writes itself: status lines and chunk framing.
#pragma once

#include <string>
#include <string_view>

namespace tokenway {

std::string_view ReasonPhrase(int status);
// "HTTP/1.1 <status> <reason>\r\n"
void AppendStatusLine(std::string& out, int status);
// "<hex size>\r\n" for a chunk of `size` bytes.
void AppendChunkSize(std::string& out, size_t size);

}  // namespace tokenway
