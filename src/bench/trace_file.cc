#include "bench/trace_file.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>

#include "common/json_writer.h"

namespace tokenway::bench {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool IsBlank(std::string_view s) {
  return Trim(s).empty();
}

// A non-negative integer field of the CSV.
StatusOr<int64_t> CsvCount(std::string_view text, const char* field) {
  text = Trim(text);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return Status::Error(std::string(field) + " must be an integer, got '" +
                         std::string(text.substr(0, 32)) + "'");
  }
  if (v < 0) return Status::Error(std::string(field) + " must not be negative");
  return v;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsAzureHeader(std::string_view line) {
  line = Trim(line);
  return line.size() >= 9 &&
         (line.substr(0, 9) == "TIMESTAMP" || line.substr(0, 9) == "timestamp") &&
         line.find(',') != std::string_view::npos && line.front() != '{';
}

}  // namespace

const char* TraceFormatName(TraceFormat format) {
  return format == TraceFormat::kAzure ? "azure" : "mooncake";
}

StatusOr<TraceFormat> ParseTraceFormat(std::string_view name) {
  if (name == "mooncake") return TraceFormat::kMooncake;
  if (name == "azure") return TraceFormat::kAzure;
  return Status::Error("unknown trace format '" + std::string(name) + "' (known: mooncake, azure)");
}

StatusOr<double> ParseTraceDateTime(std::string_view t) {
  t = Trim(t);
  auto digits = [&](size_t at, size_t n, int64_t& out) {
    if (at + n > t.size()) return false;
    out = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int64_t y, mo, d, h, mi, s;
  if (t.size() < 19 || !digits(0, 4, y) || t[4] != '-' || !digits(5, 2, mo) || t[7] != '-' ||
      !digits(8, 2, d) || (t[10] != ' ' && t[10] != 'T') || !digits(11, 2, h) || t[13] != ':' ||
      !digits(14, 2, mi) || t[16] != ':' || !digits(17, 2, s)) {
    return Status::Error("TIMESTAMP must be 'YYYY-MM-DD HH:MM:SS[.fraction]' or seconds, got '" +
                         std::string(t.substr(0, 40)) + "'");
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return Status::Error("TIMESTAMP '" + std::string(t.substr(0, 40)) + "' is not a valid time");
  }
  double fraction = 0;
  size_t at = 19;
  if (at < t.size() && t[at] == '.') {
    double scale = 0.1;
    for (++at; at < t.size() && t[at] >= '0' && t[at] <= '9'; ++at, scale /= 10) {
      fraction += (t[at] - '0') * scale;
    }
  }
  if (at != t.size()) {
    return Status::Error("TIMESTAMP '" + std::string(t.substr(0, 40)) + "' has trailing text");
  }
  const double seconds =
      static_cast<double>(DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) + fraction;
  return seconds * 1000.0;
}

StatusOr<TraceRecord> ParseAzureTraceLine(std::string_view line) {
  std::string_view fields[3];
  size_t n = 0;
  for (size_t start = 0;;) {
    size_t comma = line.find(',', start);
    if (n == 3) return Status::Error("expected 3 fields (TIMESTAMP,ContextTokens,GeneratedTokens)");
    fields[n++] = line.substr(start, comma == std::string_view::npos ? line.npos : comma - start);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (n != 3) return Status::Error("expected 3 fields (TIMESTAMP,ContextTokens,GeneratedTokens)");
  TraceRecord r;
  std::string_view ts = Trim(fields[0]);
  double seconds = 0;
  auto [end, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), seconds);
  if (!ts.empty() && ec == std::errc() && end == ts.data() + ts.size()) {
    if (!(seconds >= 0) || !std::isfinite(seconds)) {
      return Status::Error("TIMESTAMP must not be negative");
    }
    r.timestamp_ms = seconds * 1000.0;
  } else {
    auto ms = ParseTraceDateTime(ts);
    if (!ms.ok()) return ms.status();
    r.timestamp_ms = *ms;
  }
  auto in = CsvCount(fields[1], "ContextTokens");
  if (!in.ok()) return in.status();
  auto out = CsvCount(fields[2], "GeneratedTokens");
  if (!out.ok()) return out.status();
  if (*in < 1) return Status::Error("ContextTokens must be at least 1");
  r.input_length = *in;
  r.output_length = *out;
  return r;
}

StatusOr<TraceReader> TraceReader::Open(const std::string& path, bool skip_malformed) {
  TraceReader r;
  r.path_ = path;
  r.skip_malformed_ = skip_malformed;
  r.in_.open(path);
  if (!r.in_) return Status::Error("cannot open trace file '" + path + "'");
  // The format: the first non-blank line decides; a .csv name without a header is Azure too.
  std::string line;
  std::streampos start = r.in_.tellg();
  r.format_ = path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0
                  ? TraceFormat::kAzure
                  : TraceFormat::kMooncake;
  while (std::getline(r.in_, line)) {
    if (IsBlank(line)) continue;
    if (IsAzureHeader(line)) {
      r.format_ = TraceFormat::kAzure;
      r.header_pending_ = true;
    }
    break;
  }
  r.in_.clear();
  r.in_.seekg(start);
  return r;
}

bool TraceReader::Next(TraceRecord& out) {
  if (!status_.ok()) return false;
  std::string line;
  while (std::getline(in_, line)) {
    ++line_;
    if (IsBlank(line)) continue;
    if (header_pending_) {
      header_pending_ = false;
      if (IsAzureHeader(line)) continue;
    }
    auto rec = format_ == TraceFormat::kAzure ? ParseAzureTraceLine(line) : ParseTraceLine(line);
    if (!rec.ok()) {
      std::string where = path_ + ":" + std::to_string(line_) + ": " + rec.status().message();
      if (!skip_malformed_) {
        status_ = Status::Error(where);
        return false;
      }
      ++malformed_;
      if (errors_.size() < kKeptErrors) errors_.push_back(std::move(where));
      continue;
    }
    out = std::move(*rec);
    ++records_;
    return true;
  }
  if (in_.bad())
    status_ = Status::Error(path_ + ": read error after line " + std::to_string(line_));
  return false;
}

Status WriteSyntheticTrace(const SyntheticTraceOptions& o, const std::string& path) {
  if (o.requests < 1) return Status::Error("requests must be at least 1");
  if (!(o.rate > 0)) return Status::Error("rate must be positive");
  if (o.block_size < 1 || o.groups < 1) return Status::Error("block_size and groups must be >= 1");
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return Status::Error("cannot write '" + path + "'");
  std::mt19937_64 rng(o.seed);
  std::exponential_distribution<double> gap(o.rate);
  std::lognormal_distribution<double> in_len(std::log(std::max(1.0, o.input_median)),
                                             o.input_sigma);
  std::lognormal_distribution<double> out_len(std::log(std::max(1.0, o.output_median)),
                                              o.output_sigma);
  ZipfSampler zipf(o.groups, o.zipf);
  double t_ms = 0;
  int64_t next_unique = o.groups * o.shared_blocks;  // ids below belong to the groups
  std::string line;
  // Azure's published timestamps start at a real date; offsets from it are what replay uses.
  const double azure_epoch_s = static_cast<double>(DaysFromCivil(2023, 11, 16) * 86400);
  if (o.format == TraceFormat::kAzure) std::fputs("TIMESTAMP,ContextTokens,GeneratedTokens\n", f);
  for (int64_t i = 0; i < o.requests; ++i) {
    if (i > 0) t_ms += gap(rng) * 1000.0;
    const int64_t input =
        std::clamp<int64_t>(std::llround(in_len(rng)), 1, std::max<int64_t>(1, o.max_input));
    const int64_t output =
        std::clamp<int64_t>(std::llround(out_len(rng)), 1, std::max<int64_t>(1, o.max_output));
    line.clear();
    if (o.format == TraceFormat::kAzure) {
      const double at = azure_epoch_s + t_ms / 1000.0;
      const auto whole = static_cast<time_t>(at);
      const int64_t frac =
          std::min<int64_t>(std::llround((at - static_cast<double>(whole)) * 1e7), 9999999);
      std::tm tm{};
      gmtime_r(&whole, &tm);
      char buf[96];
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%07lld,%lld,%lld\n",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    static_cast<long long>(frac), static_cast<long long>(input),
                    static_cast<long long>(output));
      line = buf;
    } else {
      const int64_t group = zipf(rng);
      const int64_t blocks = (input + o.block_size - 1) / o.block_size;
      line = "{\"timestamp\":";
      line += std::to_string(std::llround(t_ms));
      line += ",\"input_length\":" + std::to_string(input);
      line += ",\"output_length\":" + std::to_string(output);
      line += ",\"hash_ids\":[";
      for (int64_t b = 0; b < blocks; ++b) {
        if (b) line += ',';
        const int64_t id = b < o.shared_blocks ? group * o.shared_blocks + b : next_unique++;
        line += std::to_string(id);
      }
      line += "]}\n";
    }
    std::fputs(line.c_str(), f);
  }
  const bool ok = std::ferror(f) == 0;
  if (std::fclose(f) != 0 || !ok) return Status::Error("error writing '" + path + "'");
  return Status::Ok();
}

}  // namespace tokenway::bench
