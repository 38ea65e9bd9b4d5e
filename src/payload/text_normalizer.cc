#include "payload/text_normalizer.h"

#include <utf8proc.h>

#include <algorithm>

namespace tokenway {

namespace {

constexpr auto kOptions = static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT |
                                                         UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);

void AppendCodepoint(NormalizedText& out, utf8proc_int32_t cp, uint32_t origin) {
  utf8proc_uint8_t bytes[4];
  const auto n = utf8proc_encode_char(cp, bytes);
  out.text.append(reinterpret_cast<const char*>(bytes), static_cast<size_t>(n));
  out.origin.insert(out.origin.end(), static_cast<size_t>(n), origin);
}

}  // namespace

void NormalizedText::SourceSpan(size_t nbegin, size_t nend, size_t& begin, size_t& end) const {
  if (origin.empty()) {
    begin = nbegin;
    end = nend;
    return;
  }
  begin = origin[nbegin];
  const uint32_t last = origin[nend - 1];
  end =
      std::min(source.size(), last + Utf8SequenceLength(static_cast<unsigned char>(source[last])));
}

void NormalizeText(std::string_view source, NormalizedText& out) {
  out.source = source;
  out.text.clear();
  out.origin.clear();
  const bool ascii = std::all_of(source.begin(), source.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) {
    out.text.resize(source.size());
    std::transform(source.begin(), source.end(), out.text.begin(), [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return;
  }
  out.text.reserve(source.size());
  out.origin.reserve(source.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(source.data());
  const auto size = static_cast<utf8proc_ssize_t>(source.size());
  utf8proc_int32_t decomposed[32];
  for (utf8proc_ssize_t i = 0; i < size;) {
    const auto at = static_cast<uint32_t>(i);
    if (p[i] < 0x80) {
      // A run of ASCII: lowercased and mapped one to one, in bulk.
      utf8proc_ssize_t end = i + 1;
      while (end < size && p[end] < 0x80) ++end;
      const size_t n = static_cast<size_t>(end - i);
      const size_t base = out.text.size();
      out.text.resize(base + n);
      out.origin.resize(base + n);
      char* t = out.text.data() + base;
      uint32_t* o = out.origin.data() + base;
      for (size_t k = 0; k < n; ++k) {
        const char c = static_cast<char>(p[i + static_cast<utf8proc_ssize_t>(k)]);
        t[k] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        o[k] = at + static_cast<uint32_t>(k);
      }
      i = end;
      continue;
    }
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t len = utf8proc_iterate(p + i, size - i, &cp);
    if (len <= 0) {
      AppendCodepoint(out, 0xFFFD, at);
      ++i;
      continue;
    }
    i += len;
    int boundclass = UTF8PROC_BOUNDCLASS_START;
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, decomposed, 32, kOptions, &boundclass);
    if (n < 0 || n > 32) {
      AppendCodepoint(out, cp, at);
      continue;
    }
    if (n > 1) {
      n = utf8proc_normalize_utf32(decomposed, n, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE));
      if (n < 0) continue;
    }
    for (utf8proc_ssize_t k = 0; k < n; ++k) AppendCodepoint(out, decomposed[k], at);
  }
}

}  // namespace tokenway
