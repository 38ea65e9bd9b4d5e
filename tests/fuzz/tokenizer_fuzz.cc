// Fuzzes the token count: CountTokens and every counting kernel this CPU can run give exactly the
// count of the reference walk over the pieces (CountTokensByPieces, which Encode uses), on any
// bytes. The input is also counted at every start offset of its first 64 bytes, so block
// boundaries fall at every position of it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/tokenizer.h"

namespace {

void CheckCount(std::string_view text) {
  using namespace tokenway::tokenizer;
  const std::size_t expected = CountTokensByPieces(text);
  if (CountTokens(text) != expected) std::abort();
  for (CountKernel kernel : {CountKernel::kPortable, CountKernel::kSse2, CountKernel::kAvx2}) {
    if (CountKernelAvailable(kernel) && CountTokensWith(kernel, text) != expected) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (std::size_t offset = 0; offset < 64 && offset <= text.size(); ++offset) {
    CheckCount(text.substr(offset));
  }
  if (tokenway::tokenizer::Encode(text).size() != tokenway::tokenizer::CountTokens(text)) {
    std::abort();
  }
  return 0;
}
