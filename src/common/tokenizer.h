// tokenway's tokenizer: one deterministic, documented text <-> token-id rule that the simulator,
// the gateway (routing and governance estimates) and the benchmark share, so all three count the
// same prompt tokens. It sits in common/ because the simulator and the gateway both build on it.
//
// Rule (docs/simulator.md, "Tokenizer"):
//   1. Pre-tokenize the UTF-8 bytes into pieces, left to right:
//        word         an optional single ' ' followed by a run of ASCII letters/digits
//        punctuation  one ASCII byte that is neither alphanumeric nor whitespace
//        whitespace   a run of ASCII whitespace (a lone ' ' that precedes a word joins the word)
//        non-ASCII    a run of bytes >= 0x80 (UTF-8 multi-byte text)
//   2. Every piece longer than kMaxPieceBytes (8) bytes is split into consecutive 8-byte tokens;
//      the remainder is one more token.
//   3. A token's id is XXH32(token bytes, seed 0) with the top bit cleared (ids < 2^31).
// Counting therefore needs no vocabulary and costs one pass over the text. Decode knows the
// vocabulary of the simulator's own pseudo-words (every output token is one such word, " word"),
// so Decode(Encode(output)) == output for any simulator output; ids of other text decode to
// U+FFFD.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

// The gateway's one estimate of a request's prompt tokens, before the model server reports its
// real usage: tokenizer::CountTokens of the prompt text as common/prompt_text.h flattens it.
// Routing charges it to the chosen endpoint's prefill load and governance reserves it; against a
// real model server it is an estimate that settlement corrects. Pure; any thread.
int64_t EstimatePromptTokens(std::string_view prompt_text);

}  // namespace tokenway

namespace tokenway::tokenizer {

inline constexpr std::size_t kMaxPieceBytes = 8;

// Number of tokens of `text` under the rule above; always equal to CountTokensByPieces. Pure and
// thread-safe. Classifies 64 bytes at a time into bit masks of piece starts (AVX2 when the CPU
// has it, else SSE2 on x86-64, else a portable 8-bytes-per-word kernel): about 0.13 ns per byte
// with AVX2 (57 us for a 432 KiB prompt), against about 2 ns per byte for the piece walk.
std::size_t CountTokens(std::string_view text);

// The same count by walking the pieces one by one, as Encode does: the reference the fast
// kernels are tested against (unit test, fuzz target) and measured against (micro-benchmark).
std::size_t CountTokensByPieces(std::string_view text);

// The kernels behind CountTokens, selectable so that tests cover each one on any machine.
enum class CountKernel { kPortable, kSse2, kAvx2 };
// Whether this build and CPU can run `kernel` (kPortable always can; kSse2 on every x86-64).
bool CountKernelAvailable(CountKernel kernel);
// CountTokens with a given kernel; an unavailable kernel falls back to the next simpler one.
std::size_t CountTokensWith(CountKernel kernel, std::string_view text);

// Token ids of `text` under the rule above, appended to `out`.
void EncodeAppend(std::string_view text, std::vector<uint32_t>& out);
std::vector<uint32_t> Encode(std::string_view text);

// Id of one token's text (no splitting): what Encode yields for a piece of <= 8 bytes.
uint32_t TokenId(std::string_view token_text);

// Text of token ids from the pseudo-word vocabulary; unknown ids become U+FFFD.
std::string Decode(const std::vector<uint32_t>& tokens);

// The pseudo-word vocabulary the simulator generates output from. Each entry is " " followed by
// 2..7 lowercase letters, so each is exactly one token; entries are unique.
class PseudoWordVocabulary {
 public:
  static const PseudoWordVocabulary& Get();

  std::size_t size() const { return words_.size(); }
  std::string_view word(std::size_t index) const { return words_[index]; }
  uint32_t id(std::size_t index) const { return ids_[index]; }
  // Text for a token id, or nullptr when the id is not a pseudo-word.
  const std::string* Find(uint32_t id) const;

 private:
  PseudoWordVocabulary();
  std::vector<std::string> words_;
  std::vector<uint32_t> ids_;
  std::vector<std::pair<uint32_t, uint32_t>> sorted_ids_;  // (id, index), sorted by id
};

}  // namespace tokenway::tokenizer
