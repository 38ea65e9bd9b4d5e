// The one documented way tokenway turns a request's prompt into plain text.
//
// Routing (prefix affinity), governance (token estimates) and the simulator (its chat template)
// all need the same text for the same request, so the flattening lives here and nowhere else:
//
//   chat messages   each message appends  "<role>: <content>\n"  in order; content that is an
//                   array of parts contributes the "text" of every part of type "text", joined
//                   with no separator; other parts (images, audio) contribute nothing.
//   completions     the prompt string as is; an array of strings is joined with "\n".
//   embeddings      the input string as is; an array of strings is joined with "\n".
#pragma once

#include <string>
#include <string_view>

namespace tokenway {

// Appends one chat message to `out` in the documented form.
inline void AppendChatMessage(std::string& out, std::string_view role, std::string_view content) {
  out.append(role);
  out.append(": ");
  out.append(content);
  out.push_back('\n');
}

}  // namespace tokenway
