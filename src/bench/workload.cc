#include "bench/workload.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "bench/trace_file.h"
#include "common/json_writer.h"
#include "common/prompt_text.h"
#include "common/tokenizer.h"

namespace tokenway::bench {
namespace {

using Messages = std::vector<std::pair<std::string, std::string>>;

// Tokens the chat template adds around one message's content: "<role>", ":", "\n".
constexpr int64_t kMessageOverhead = 3;

std::string Words(int64_t n, std::mt19937_64& rng) {
  std::string s;
  AppendWords(s, n, rng);
  if (!s.empty()) s.erase(0, 1);  // "role: " supplies the space before the first word
  return s;
}

// Words of a block that is the same text wherever the same id appears (trace hash ids).
void AppendBlock(std::string& out, int64_t id, int64_t n) {
  std::mt19937_64 rng(static_cast<uint64_t>(id) * 0x9E3779B97F4A7C15ull + 17);
  AppendWords(out, n, rng);
}

int64_t LogNormalLength(std::mt19937_64& rng, double mu, double sigma) {
  std::lognormal_distribution<double> d(mu, sigma);
  return static_cast<int64_t>(std::llround(d(rng)));
}

std::pair<int64_t, int64_t> ShareGptLengths(const ShareGptParams& p, std::mt19937_64& rng) {
  for (;;) {  // vLLM's is_valid_sequence filter, by rejection
    int64_t in = LogNormalLength(rng, p.input_mu, p.input_sigma);
    int64_t out = LogNormalLength(rng, p.output_mu, p.output_sigma);
    if (in < p.min_len || out < p.min_len || in > p.max_input || in + out > p.max_total) continue;
    return {in, out};
  }
}

WorkloadRequest SingleUser(std::string_view model, int64_t input_tokens, int64_t output_tokens,
                           std::mt19937_64& rng) {
  WorkloadRequest r;
  int64_t words = std::max<int64_t>(1, input_tokens - kMessageOverhead);
  auto [body, tokens] = ChatBody(model, {{"user", Words(words, rng)}}, output_tokens);
  r.body = std::move(body);
  r.input_tokens = tokens;
  r.output_tokens = output_tokens;
  r.model = std::string(model);
  return r;
}

std::vector<WorkloadRequest> Fit(std::vector<WorkloadRequest> natural, int64_t count) {
  if (count <= 0 || natural.empty() || static_cast<int64_t>(natural.size()) == count) {
    return natural;
  }
  if (static_cast<int64_t>(natural.size()) > count) {
    natural.resize(count);
    return natural;
  }
  std::vector<WorkloadRequest> out;
  out.reserve(count);
  for (int64_t i = 0; i < count; ++i) out.push_back(natural[i % natural.size()]);
  return out;
}

std::vector<WorkloadRequest> SharedPrefix(const WorkloadOptions& o, const SharedPrefixParams& p,
                                          int64_t count) {
  std::mt19937_64 rng(o.seed);
  std::vector<WorkloadRequest> out;
  out.reserve(p.groups * p.prompts_per_group);
  for (int64_t g = 0; g < p.groups; ++g) {
    std::string system = Words(p.system_len, rng);
    for (int64_t i = 0; i < p.prompts_per_group; ++i) {
      auto [body, tokens] = ChatBody(
          o.model, {{"system", system}, {"user", Words(p.question_len, rng)}}, p.output_len);
      WorkloadRequest r;
      r.body = std::move(body);
      r.input_tokens = tokens;
      r.output_tokens = p.output_len;
      r.group = static_cast<int32_t>(g);
      r.model = o.model;
      out.push_back(std::move(r));
    }
  }
  std::shuffle(out.begin(), out.end(), rng);
  return Fit(std::move(out), count);
}

std::vector<WorkloadRequest> MultiTurn(const WorkloadOptions& o, int64_t count) {
  const MultiTurnParams& p = o.multi_turn;
  std::mt19937_64 rng(o.seed);
  int64_t sessions = p.sessions;
  if (count > 0) sessions = std::max<int64_t>(1, (count + p.turns - 1) / p.turns);
  struct Session {
    int32_t id = 0;
    int32_t next_turn = 0;
    Messages history;
  };
  std::vector<WorkloadRequest> out;
  std::vector<Session> active;
  int64_t started = 0;
  auto start = [&] {
    Session s;
    s.id = static_cast<int32_t>(started++);
    s.history.emplace_back("system", Words(p.system_len, rng));
    active.push_back(std::move(s));
  };
  while (started < sessions && static_cast<int64_t>(active.size()) < p.active_sessions) start();
  // Round-robin over the active sessions: turn k+1 of a session follows the turns of the other
  // active sessions, and its prompt resends the whole history so far.
  size_t cursor = 0;
  while (!active.empty()) {
    if (cursor >= active.size()) cursor = 0;
    Session& s = active[cursor];
    s.history.emplace_back("user", Words(p.user_len, rng));
    auto [body, tokens] = ChatBody(o.model, s.history, p.output_len);
    WorkloadRequest r;
    r.body = std::move(body);
    r.input_tokens = tokens;
    r.output_tokens = p.output_len;
    r.group = s.id;
    r.turn = s.next_turn++;
    r.model = o.model;
    out.push_back(std::move(r));
    s.history.emplace_back("assistant", Words(p.output_len, rng));
    if (s.next_turn >= p.turns) {
      active.erase(active.begin() + cursor);
      if (started < sessions) start();
    } else {
      ++cursor;
    }
  }
  return Fit(std::move(out), count);
}

StatusOr<std::vector<WorkloadRequest>> Trace(const WorkloadOptions& o, int64_t count) {
  const TraceParams& p = o.trace;
  auto reader = TraceReader::Open(p.path, /*skip_malformed=*/false);
  if (!reader.ok()) return reader.status();
  std::vector<WorkloadRequest> out;
  std::mt19937_64 rng(o.seed);
  TraceRecord rec;
  double first_ms = -1;
  while (reader->Next(rec)) {
    if (first_ms < 0) first_ms = rec.timestamp_ms;
    out.push_back(TraceRequest(rec, p, o.model, first_ms, rng));
    if (count > 0 && static_cast<int64_t>(out.size()) >= count) break;
  }
  if (!reader->status().ok()) return reader->status();
  if (out.empty()) return Status::Error("trace file '" + p.path + "' has no records");
  return out;
}

}  // namespace

const std::vector<std::string>& WorkloadKinds() {
  static const std::vector<std::string> kinds = {
      "sharegpt", "shared-prefix", "shared-prefix-long", "multi-turn", "lora-mix", "long-context",
      "random",   "trace"};
  return kinds;
}

void AppendWords(std::string& out, int64_t n, std::mt19937_64& rng) {
  const auto& vocab = tokenizer::PseudoWordVocabulary::Get();
  const uint64_t size = vocab.size();
  out.reserve(out.size() + static_cast<size_t>(n) * 6);
  for (int64_t i = 0; i < n; ++i) out.append(vocab.word(rng() % size));
}

std::pair<std::string, int64_t> ChatBody(std::string_view model, const Messages& messages,
                                         int64_t max_tokens) {
  std::string flat;
  std::string body = "{\"model\":";
  AppendJsonString(body, model);
  body += ",\"messages\":[";
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i) body += ',';
    body += "{\"role\":";
    AppendJsonString(body, messages[i].first);
    body += ",\"content\":";
    AppendJsonString(body, messages[i].second);
    body += '}';
    AppendChatMessage(flat, messages[i].first, messages[i].second);
  }
  body += "],\"max_tokens\":";
  body += std::to_string(max_tokens);
  body += ",\"ignore_eos\":true}";
  return {std::move(body), static_cast<int64_t>(tokenizer::CountTokens(flat))};
}

ZipfSampler::ZipfSampler(int64_t n, double s) {
  cdf_.resize(std::max<int64_t>(1, n));
  double sum = 0;
  for (size_t k = 0; k < cdf_.size(); ++k) {
    sum += 1.0 / std::pow(static_cast<double>(k + 1), s);
    cdf_[k] = sum;
  }
  for (double& c : cdf_) c /= sum;
}

int64_t ZipfSampler::operator()(std::mt19937_64& rng) const {
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
  if (it == cdf_.end()) --it;
  return it - cdf_.begin();
}

double ZipfSampler::probability(int64_t k) const {
  return k == 0 ? cdf_[0] : cdf_[k] - cdf_[k - 1];
}

WorkloadRequest TraceRequest(const TraceRecord& rec, const TraceParams& p, std::string_view model,
                             double first_ms, std::mt19937_64& rng) {
  int64_t output = rec.output_length;
  if (p.max_output > 0) output = std::min(output, p.max_output);
  output = std::max<int64_t>(1, output);
  int64_t words = std::max<int64_t>(1, rec.input_length - kMessageOverhead);
  // Hash ids become shared blocks (identical ids, identical text); the rest is unique text.
  std::string content;
  int64_t have = 0;
  for (int64_t id : rec.hash_ids) {
    if (have >= words) break;
    int64_t n = std::min(p.block_size, words - have);
    AppendBlock(content, id, n);
    have += n;
  }
  if (rec.hash_ids.empty() && rec.prefix_group >= 0) {
    int64_t n = std::min(words, p.block_size);
    AppendBlock(content, -1 - rec.prefix_group, n);
    have += n;
  }
  AppendWords(content, words - have, rng);
  content.erase(0, 1);
  auto [body, tokens] = ChatBody(model, {{"user", content}}, output);
  WorkloadRequest r;
  r.body = std::move(body);
  r.input_tokens = tokens;
  r.output_tokens = output;
  r.arrival_s = (rec.timestamp_ms - first_ms) / 1000.0 * p.time_scale;
  r.group = static_cast<int32_t>(rec.prefix_group);
  r.model = std::string(model);
  return r;
}

StatusOr<TraceRecord> ParseTraceLine(std::string_view line) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
    return Status::Error("not a JSON object");
  }
  TraceRecord r;
  auto number = [&](const char* key, bool required, double& out) -> Status {
    simdjson::dom::element v;
    if (doc[key].get(v) != simdjson::SUCCESS || v.is_null()) {
      return required ? Status::Error(std::string("missing '") + key + "'") : Status::Ok();
    }
    if (v.is_int64()) {
      out = static_cast<double>(int64_t(v));
    } else if (v.is_uint64()) {
      out = static_cast<double>(uint64_t(v));
    } else if (v.is_double()) {
      out = double(v);
    } else {
      return Status::Error(std::string("'") + key + "' must be a number");
    }
    if (out < 0) return Status::Error(std::string("'") + key + "' must not be negative");
    if (!(out <= 1e15)) return Status::Error(std::string("'") + key + "' is too large");
    return Status::Ok();
  };
  double ts = 0, in = 0, out = 0, group = -1;
  for (auto [key, dst, required] :
       {std::tuple{"timestamp", &ts, false}, std::tuple{"input_length", &in, true},
        std::tuple{"output_length", &out, true}, std::tuple{"prefix_group", &group, false}}) {
    if (Status st = number(key, required, *dst); !st.ok()) return st;
  }
  r.timestamp_ms = ts;
  r.input_length = static_cast<int64_t>(in);
  r.output_length = static_cast<int64_t>(out);
  r.prefix_group = static_cast<int64_t>(group);
  simdjson::dom::array ids;
  if (doc["hash_ids"].get(ids) == simdjson::SUCCESS) {
    for (simdjson::dom::element id : ids) {
      int64_t v;
      if (id.get(v) != simdjson::SUCCESS) return Status::Error("'hash_ids' must hold integers");
      r.hash_ids.push_back(v);
    }
  }
  if (r.input_length < 1) return Status::Error("'input_length' must be at least 1");
  return r;
}

StatusOr<std::vector<WorkloadRequest>> GenerateWorkload(const WorkloadOptions& o, int64_t count) {
  std::mt19937_64 rng(o.seed);
  const std::string& k = o.kind;
  if (k == "shared-prefix") return SharedPrefix(o, o.shared_prefix, count);
  if (k == "shared-prefix-long") {
    SharedPrefixParams p{150, 5, 6000, 1200, 1000};
    return SharedPrefix(o, p, count);
  }
  if (k == "multi-turn") return MultiTurn(o, count);
  if (k == "trace") return Trace(o, count);
  if (count <= 0) count = 1000;
  std::vector<WorkloadRequest> out;
  out.reserve(count);
  if (k == "sharegpt") {
    for (int64_t i = 0; i < count; ++i) {
      auto [in, len] = ShareGptLengths(o.sharegpt, rng);
      out.push_back(SingleUser(o.model, in, len, rng));
    }
  } else if (k == "lora-mix") {
    ZipfSampler zipf(o.lora.adapters, o.lora.zipf_s);
    for (int64_t i = 0; i < count; ++i) {
      int64_t adapter = zipf(rng);
      auto [in, len] = ShareGptLengths(o.sharegpt, rng);
      auto r = SingleUser(o.lora.prefix + std::to_string(adapter), in, len, rng);
      r.group = static_cast<int32_t>(adapter);
      out.push_back(std::move(r));
    }
  } else if (k == "long-context") {
    const auto& p = o.long_context;
    std::uniform_int_distribution<int64_t> len(p.min_input, std::max(p.min_input, p.max_input));
    for (int64_t i = 0; i < count; ++i)
      out.push_back(SingleUser(o.model, len(rng), p.output_len, rng));
  } else if (k == "random") {
    const auto& p = o.random;
    auto lo = [&](int64_t l) {
      return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(p.range_ratio * l)));
    };
    std::uniform_int_distribution<int64_t> in(lo(p.input_len),
                                              std::max(lo(p.input_len), p.input_len));
    std::uniform_int_distribution<int64_t> outd(lo(p.output_len),
                                                std::max(lo(p.output_len), p.output_len));
    for (int64_t i = 0; i < count; ++i) {
      int64_t a = std::max<int64_t>(kMessageOverhead + 1, in(rng));
      out.push_back(SingleUser(o.model, a, outd(rng), rng));
    }
  } else {
    return Status::Error("unknown workload '" + k + "'");
  }
  return out;
}

}  // namespace tokenway::bench
