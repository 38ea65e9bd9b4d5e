#include "common/tokenizer.h"

#include <xxhash.h>

#include <algorithm>
#include <unordered_set>

namespace tokenway::tokenizer {
namespace {

bool IsAlnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Calls emit(piece) for every token of `text` (pieces already split to <= kMaxPieceBytes).
template <typename Emit>
void ForEachToken(std::string_view text, Emit&& emit) {
  const std::size_t n = text.size();
  std::size_t i = 0;
  auto emit_piece = [&](std::size_t begin, std::size_t end) {
    while (end - begin > kMaxPieceBytes) {
      emit(text.substr(begin, kMaxPieceBytes));
      begin += kMaxPieceBytes;
    }
    emit(text.substr(begin, end - begin));
  };
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    std::size_t j = i;
    if (c == ' ' && i + 1 < n && IsAlnum(static_cast<unsigned char>(text[i + 1]))) {
      j = i + 1;
      while (j < n && IsAlnum(static_cast<unsigned char>(text[j]))) ++j;
    } else if (IsAlnum(c)) {
      while (j < n && IsAlnum(static_cast<unsigned char>(text[j]))) ++j;
    } else if (IsSpace(c)) {
      while (j < n && IsSpace(static_cast<unsigned char>(text[j]))) {
        // A lone ' ' directly before a word belongs to that word.
        if (text[j] == ' ' && j > i && j + 1 < n &&
            IsAlnum(static_cast<unsigned char>(text[j + 1]))) {
          break;
        }
        ++j;
      }
    } else if (c >= 0x80) {
      while (j < n && static_cast<unsigned char>(text[j]) >= 0x80) ++j;
    } else {
      j = i + 1;
    }
    emit_piece(i, j);
    i = j;
  }
}

}  // namespace

uint32_t TokenId(std::string_view token_text) {
  return XXH32(token_text.data(), token_text.size(), 0) & 0x7fffffffu;
}

std::size_t CountTokens(std::string_view text) {
  std::size_t count = 0;
  ForEachToken(text, [&](std::string_view) { ++count; });
  return count;
}

void EncodeAppend(std::string_view text, std::vector<uint32_t>& out) {
  ForEachToken(text, [&](std::string_view token) { out.push_back(TokenId(token)); });
}

std::vector<uint32_t> Encode(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 4 + 1);
  EncodeAppend(text, out);
  return out;
}

std::string Decode(const std::vector<uint32_t>& tokens) {
  const auto& vocabulary = PseudoWordVocabulary::Get();
  std::string text;
  for (uint32_t id : tokens) {
    const std::string* word = vocabulary.Find(id);
    text.append(word != nullptr ? *word : std::string("\xEF\xBF\xBD"));
  }
  return text;
}

const PseudoWordVocabulary& PseudoWordVocabulary::Get() {
  static const PseudoWordVocabulary vocabulary;
  return vocabulary;
}

PseudoWordVocabulary::PseudoWordVocabulary() {
  // Syllable words: 1..3 consonant-vowel syllables, optionally closed by a consonant, which
  // gives 2..7 letters. Enumerated in a fixed order so the vocabulary never changes.
  static constexpr std::string_view kConsonants = "bdfgklmnprstvz";
  static constexpr std::string_view kVowels = "aeiou";
  static constexpr std::string_view kCodas = "nrst";
  static constexpr std::size_t kWords = 4096;
  std::vector<std::string> syllables;
  for (char c : kConsonants) {
    for (char v : kVowels) syllables.push_back(std::string{c, v});
  }
  std::vector<std::pair<uint32_t, uint32_t>> seen;
  std::unordered_set<uint32_t> seen_ids;
  auto add = [&](std::string word) {
    if (words_.size() >= kWords) return;
    const uint32_t id = TokenId(word);
    if (!seen_ids.insert(id).second) return;  // a repeated word (or an id collision)
    seen.emplace_back(id, static_cast<uint32_t>(words_.size()));
    words_.push_back(std::move(word));
    ids_.push_back(id);
  };
  // Deterministic mix of lengths: walk a fixed pseudo-random sequence of (syllables, coda).
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&]() {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  while (words_.size() < kWords) {
    const uint64_t r = next();
    const std::size_t syllable_count = 1 + r % 3;
    std::string word = " ";
    for (std::size_t s = 0; s < syllable_count; ++s) {
      word += syllables[(r >> (8 + 8 * s)) % syllables.size()];
    }
    if ((r >> 40) % 2 == 0) word += kCodas[(r >> 44) % kCodas.size()];
    add(std::move(word));
  }
  sorted_ids_ = std::move(seen);
  std::sort(sorted_ids_.begin(), sorted_ids_.end());
}

const std::string* PseudoWordVocabulary::Find(uint32_t id) const {
  auto it = std::lower_bound(sorted_ids_.begin(), sorted_ids_.end(),
                             std::pair<uint32_t, uint32_t>{id, 0});
  if (it == sorted_ids_.end() || it->first != id) return nullptr;
  return &words_[it->second];
}

}  // namespace tokenway::tokenizer

namespace tokenway {

int64_t EstimatePromptTokens(std::string_view prompt_text) {
  return static_cast<int64_t>(tokenizer::CountTokens(prompt_text));
}

}  // namespace tokenway
