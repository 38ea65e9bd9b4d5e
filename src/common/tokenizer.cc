#include "common/tokenizer.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <unordered_set>

#if defined(__x86_64__) && defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define TOKENWAY_TOKENIZER_X86 1
#include <immintrin.h>
#else
#define TOKENWAY_TOKENIZER_X86 0
#endif

namespace tokenway::tokenizer {
namespace {

constexpr bool IsAlnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr bool IsSpace(unsigned char c) {
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

// ---- Counting 64 bytes at a time ----------------------------------------------------------------
//
// Every byte belongs to exactly one piece, so a text's pieces are given by the set of bytes that
// start one, and its token count is the number of piece starts plus, for every piece, one per
// further 8-byte slice. Give every byte a group: word (alnum, or a joining space: ' ' with an
// alnum next), whitespace (the other whitespace), non-ASCII (>= 0x80) or punctuation. Then byte i
// starts a piece when it is punctuation, a joining space, or of another group than byte i-1.
// A block of 64 bytes becomes four 64-bit masks (bit i = byte i) from which the piece starts
// follow with shifts; the previous block's last groups and the next block's first byte carry the
// state across blocks. The 8-byte slices of long pieces are added with the closed form in
// AddSliceStarts, so the count takes no branch per piece.

struct BlockMasks {
  uint64_t alnum = 0;
  uint64_t space = 0;               // ' '
  uint64_t alnum_or_high = 0;       // alnum or >= 0x80
  uint64_t whitespace_or_high = 0;  // whitespace or >= 0x80
};

constexpr std::array<bool, 256> MakeAlnumTable() {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) table[c] = IsAlnum(static_cast<unsigned char>(c));
  return table;
}
constexpr std::array<bool, 256> kAlnumTable = MakeAlnumTable();

struct CountState {
  // A byte's group as two bits: word (1, 0), whitespace (0, 1), non-ASCII (1, 1), punctuation
  // (0, 0). These are the bits of the byte before the block (none before the text: (0, 0)).
  uint64_t before_group0 = 0;
  uint64_t before_group1 = 0;
  // The piece open at the block's start (if any) has token starts at the block positions that are
  // congruent to `phase` modulo 8 (blocks are 64 bytes, so the phase carries unchanged through a
  // block without piece starts).
  unsigned phase = 0;
  std::size_t count = 0;
};

// Token starts of a block at or after its first piece start, from its piece starts. `open` holds
// the bytes with no piece start in the 8 bytes ending at them (bytes before the block count as
// starts). Runs of `open` are at least 8 bytes apart (a start and the 7 bytes after it are never
// open), so bytes i and i-8 both open lie in one run. Each run after the first piece start lies
// inside one piece and begins exactly 8 bytes after its start, so the piece's further 8-byte
// slices start at the run's first byte and every 8th byte after it within the run. (Bytes before
// the first piece start belong to a piece from an earlier block: AddBlock adds those from the
// carried phase, so a block needs nothing of the one before it but one number.)
[[gnu::always_inline]] inline uint64_t AddSliceStarts(uint64_t piece_starts) {
  uint64_t covered = piece_starts | (piece_starts << 1);
  covered |= covered << 2;
  covered |= (covered << 4) | 0x7f;  // a start in [i-7, i], or i < 7
  const uint64_t open = ~covered;
  uint64_t slices = open & ~(open << 1);          // offset 0 in its run
  slices |= (slices << 8) & open;                 // offsets 0, 8
  const uint64_t open8 = open & (open << 8);      // i and i-8 open
  slices |= (slices << 16) & open8;               // offsets 0..24
  const uint64_t open24 = open8 & (open8 << 16);  // i, i-8, i-16, i-24 open
  slices |= (slices << 32) & open24;              // offsets 0..56
  return piece_starts | slices;
}

// Adds one block's tokens. `next_alnum`: whether the byte after the block is alnum; `valid`:
// which bytes of the block belong to the text (all but in the last, partial block).
[[gnu::always_inline]] inline void AddBlock(const BlockMasks& m, bool next_alnum, uint64_t valid,
                                            CountState& state) {
  const uint64_t next_is_alnum = (m.alnum >> 1) | (uint64_t{next_alnum} << 63);
  const uint64_t joining = m.space & next_is_alnum;
  const uint64_t group0 = m.alnum_or_high | joining;
  const uint64_t group1 = m.whitespace_or_high & ~joining;
  const uint64_t prev_group0 = (group0 << 1) | state.before_group0;
  const uint64_t prev_group1 = (group1 << 1) | state.before_group1;
  uint64_t starts = ~(group0 | group1) | joining | (group0 ^ prev_group0) | (group1 ^ prev_group1);
  starts |= ~valid;  // bytes past the end close the last piece
  // Bytes before the first piece start continue the open piece: its slices fall on the phase.
  const uint64_t before_first = (starts - 1) & ~starts;  // all bytes when there is no start
  const uint64_t continued = (uint64_t{0x0101010101010101} << state.phase) & before_first;
  const uint64_t own = AddSliceStarts(starts) & ~before_first;
  state.count += static_cast<std::size_t>(std::popcount((own | continued) & valid));
  // The last token start of the block sets the phase; without a piece start it stays.
  const unsigned own_phase = static_cast<unsigned>(63 - std::countl_zero(own | 1)) & 7;
  state.phase = starts != 0 ? own_phase : state.phase;
  state.before_group0 = group0 >> 63;
  state.before_group1 = group1 >> 63;
}

// The block loop, shared by every kernel; `classify` turns 64 bytes into BlockMasks.
template <typename Classify>
[[gnu::always_inline]] inline std::size_t CountBlocks(std::string_view text, Classify classify) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  CountState state;
  std::size_t base = 0;
  for (; base + 64 <= n; base += 64) {
    const bool next_alnum = base + 64 < n && kAlnumTable[bytes[base + 64]];
    AddBlock(classify(bytes + base), next_alnum, ~uint64_t{0}, state);
  }
  if (base < n) {
    unsigned char tail[64] = {};
    std::memcpy(tail, bytes + base, n - base);
    AddBlock(classify(tail), false, (uint64_t{1} << (n - base)) - 1, state);
  }
  return state.count;
}

// Portable kernel: eight bytes per 64-bit word (SWAR).
[[gnu::always_inline]] inline BlockMasks ClassifyPortable(const unsigned char* p) {
  constexpr uint64_t k01 = 0x0101010101010101ull;
  constexpr uint64_t k80 = 0x8080808080808080ull;
  // For 7-bit bytes v: bit 7 of each byte set when that byte is >= k (1 <= k <= 0x80).
  auto at_least = [](uint64_t v, uint64_t k) { return ((v | k80) - k01 * k) & k80; };
  // Bit 7 of each byte -> bit i of a byte (byte i of the word is its i-th byte in memory).
  auto gather = [](uint64_t bits) { return ((bits >> 7) * 0x0102040810204080ull) >> 56; };
  BlockMasks m;
  for (int word = 0; word < 8; ++word) {
    uint64_t w;
    std::memcpy(&w, p + 8 * word, 8);
    if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
    const uint64_t high = w & k80;
    const uint64_t x = w & ~k80;
    const uint64_t digit = at_least(x, 0x30) & ~at_least(x, 0x3A);
    const uint64_t folded = x | (k01 * 0x20);
    const uint64_t letter = at_least(folded, 0x61) & ~at_least(folded, 0x7B);
    const uint64_t alnum = (digit | letter) & ~high;
    const uint64_t space = ~at_least(x ^ (k01 * 0x20), 1) & k80 & ~high;
    const uint64_t whitespace = ((at_least(x, 0x09) & ~at_least(x, 0x0E)) & ~high) | space;
    const int shift = 8 * word;
    m.alnum |= gather(alnum) << shift;
    m.space |= gather(space) << shift;
    m.alnum_or_high |= gather(alnum | high) << shift;
    m.whitespace_or_high |= gather(whitespace | high) << shift;
  }
  return m;
}

std::size_t CountPortable(std::string_view text) {
  return CountBlocks(text, ClassifyPortable);
}

#if TOKENWAY_TOKENIZER_X86
// SSE2 kernel (every x86-64 CPU): 16 bytes per register. Each class is a range test made signed:
// adding a bias maps the range onto [-128, -128 + width) and one signed compare picks it out.
// Bytes >= 0x80 have their top bit set already, so OR-ing a class with the bytes adds them to it
// for movemask.
inline __m128i InRangeSse2(__m128i x, int first, int width) {
  const __m128i shifted = _mm_add_epi8(x, _mm_set1_epi8(static_cast<char>(0x80 - first)));
  return _mm_cmplt_epi8(shifted, _mm_set1_epi8(static_cast<char>(-128 + width)));
}

inline BlockMasks ClassifySse2(const unsigned char* p) {
  BlockMasks m;
  for (int quarter = 0; quarter < 4; ++quarter) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * quarter));
    const __m128i digit = InRangeSse2(v, '0', 10);
    const __m128i letter = InRangeSse2(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 26);
    const __m128i alnum = _mm_or_si128(digit, letter);
    const __m128i space = _mm_cmpeq_epi8(v, _mm_set1_epi8(' '));
    const __m128i whitespace = _mm_or_si128(space, InRangeSse2(v, '\t', 5));
    auto bits = [quarter](__m128i x) {
      return uint64_t{static_cast<uint16_t>(_mm_movemask_epi8(x))} << (16 * quarter);
    };
    m.alnum |= bits(alnum);
    m.space |= bits(space);
    m.alnum_or_high |= bits(_mm_or_si128(alnum, v));
    m.whitespace_or_high |= bits(_mm_or_si128(whitespace, v));
  }
  return m;
}

std::size_t CountSse2(std::string_view text) {
  return CountBlocks(text, ClassifySse2);
}

// Whether the CPU runs the AVX2 kernel (AVX2, BMI1 and POPCNT: every x86-64 since 2013-15).
bool HasAvx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
           __builtin_cpu_supports("popcnt");
  }();
  return has;
}

// AVX2 kernel: 32 bytes per register, the same tests as the SSE2 kernel.
struct Avx2Half {
  uint32_t alnum, space, alnum_or_high, whitespace_or_high;
};

// 0xFF in each byte of x within [first, first + width), else 0.
__attribute__((target("avx2"))) inline __m256i InRange(__m256i x, int first, int width) {
  const __m256i shifted = _mm256_add_epi8(x, _mm256_set1_epi8(static_cast<char>(0x80 - first)));
  return _mm256_cmpgt_epi8(_mm256_set1_epi8(static_cast<char>(-128 + width)), shifted);
}

__attribute__((target("avx2"))) inline Avx2Half ClassifyAvx2Half(const unsigned char* p) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i digit = InRange(v, '0', 10);
  const __m256i letter = InRange(_mm256_or_si256(v, _mm256_set1_epi8(0x20)), 'a', 26);
  const __m256i alnum = _mm256_or_si256(digit, letter);
  const __m256i space = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(' '));
  const __m256i control_space = InRange(v, '\t', 5);  // \t \n \v \f \r
  const __m256i whitespace = _mm256_or_si256(space, control_space);
  Avx2Half h;
  h.alnum = static_cast<uint32_t>(_mm256_movemask_epi8(alnum));
  h.space = static_cast<uint32_t>(_mm256_movemask_epi8(space));
  h.alnum_or_high = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_or_si256(alnum, v)));
  h.whitespace_or_high =
      static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_or_si256(whitespace, v)));
  return h;
}

__attribute__((target("avx2"))) inline BlockMasks ClassifyAvx2(const unsigned char* p) {
  const Avx2Half lo = ClassifyAvx2Half(p);
  const Avx2Half hi = ClassifyAvx2Half(p + 32);
  BlockMasks m;
  m.alnum = lo.alnum | (uint64_t{hi.alnum} << 32);
  m.space = lo.space | (uint64_t{hi.space} << 32);
  m.alnum_or_high = lo.alnum_or_high | (uint64_t{hi.alnum_or_high} << 32);
  m.whitespace_or_high = lo.whitespace_or_high | (uint64_t{hi.whitespace_or_high} << 32);
  return m;
}

__attribute__((target("avx2,bmi,popcnt"))) std::size_t CountAvx2(std::string_view text) {
  return CountBlocks(text, ClassifyAvx2);
}
#else
bool HasAvx2() {
  return false;
}
#endif

}  // namespace

uint32_t TokenId(std::string_view token_text) {
  return XXH32(token_text.data(), token_text.size(), 0) & 0x7fffffffu;
}

std::size_t CountTokensByPieces(std::string_view text) {
  std::size_t count = 0;
  ForEachToken(text, [&](std::string_view) { ++count; });
  return count;
}

bool CountKernelAvailable(CountKernel kernel) {
  switch (kernel) {
    case CountKernel::kPortable:
      return true;
    case CountKernel::kSse2:
      return TOKENWAY_TOKENIZER_X86 != 0;
    case CountKernel::kAvx2:
      return HasAvx2();
  }
  return false;
}

std::size_t CountTokensWith(CountKernel kernel, std::string_view text) {
#if TOKENWAY_TOKENIZER_X86
  if (kernel == CountKernel::kAvx2 && HasAvx2()) return CountAvx2(text);
  if (kernel != CountKernel::kPortable) return CountSse2(text);
#endif
  return CountPortable(text);
}

std::size_t CountTokens(std::string_view text) {
  return CountTokensWith(CountKernel::kAvx2, text);  // else SSE2, else portable
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
