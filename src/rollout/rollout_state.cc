#include "rollout/rollout_state.h"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/json_writer.h"

namespace tokenway {

namespace {

constexpr std::string_view kPhaseNames[kRolloutPhases] = {"progressing", "paused", "promoted",
                                                          "rolled_back", "aborted"};
constexpr int64_t kFormat = 1;

Status Errno(const std::string& what, const std::string& path) {
  return Status::Error(what + " " + path + ": " + std::strerror(errno));
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

std::string_view RolloutPhaseName(RolloutPhase p) {
  return kPhaseNames[static_cast<size_t>(p)];
}

std::optional<RolloutPhase> ParseRolloutPhase(std::string_view name) {
  for (size_t i = 0; i < kRolloutPhases; ++i) {
    if (kPhaseNames[i] == name) return static_cast<RolloutPhase>(i);
  }
  return std::nullopt;
}

std::string RenderRolloutState(const std::vector<RolloutRecord>& records) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject().Key("format").Int(kFormat).Key("rollouts").BeginArray();
  for (const RolloutRecord& r : records) {
    w.BeginObject();
    w.Key("model").String(r.model);
    w.Key("definition").String(r.definition);
    w.Key("state").String(RolloutPhaseName(r.phase));
    w.Key("step").Uint(r.step);
    w.Key("weight").Uint(r.weight);
    w.Key("step_started_unix_ms").Int(r.step_started_unix_ms);
    w.Key("baked_ms").Int(r.baked_ms);
    w.Key("history").BeginArray();
    for (const RolloutTransition& t : r.history) {
      w.BeginObject();
      w.Key("at_unix_ms").Int(t.at_unix_ms);
      w.Key("from").String(RolloutPhaseName(t.from));
      w.Key("to").String(RolloutPhaseName(t.to));
      w.Key("step").Uint(t.step);
      w.Key("weight").Uint(t.weight);
      w.Key("reason").String(t.reason);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray().EndObject();
  out += '\n';
  return out;
}

StatusOr<std::vector<RolloutRecord>> ParseRolloutState(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root)) {
    return Status::Error(std::string("not JSON: ") + simdjson::error_message(err));
  }
  std::vector<RolloutRecord> out;
  int64_t format = 0;
  if (root["format"].get(format) || format != kFormat) {
    return Status::Error("unknown format (expected \"format\": 1)");
  }
  simdjson::dom::array rollouts;
  if (root["rollouts"].get(rollouts)) return Status::Error("no \"rollouts\" list");
  auto phase_of = [](simdjson::dom::element e, const char* key, RolloutPhase& to) -> bool {
    std::string_view s;
    if (e[key].get(s)) return false;
    auto p = ParseRolloutPhase(s);
    if (!p) return false;
    to = *p;
    return true;
  };
  for (simdjson::dom::element e : rollouts) {
    RolloutRecord r;
    std::string_view model, definition;
    uint64_t step = 0, weight = 0;
    if (e["model"].get(model) || e["definition"].get(definition) ||
        !phase_of(e, "state", r.phase) || e["step"].get(step) || e["weight"].get(weight) ||
        e["step_started_unix_ms"].get(r.step_started_unix_ms) || e["baked_ms"].get(r.baked_ms) ||
        step > 1000 || weight > 100) {
      return Status::Error("a rollout entry lacks a field or has a bad value");
    }
    r.model = model;
    r.definition = definition;
    r.step = static_cast<uint32_t>(step);
    r.weight = static_cast<uint32_t>(weight);
    simdjson::dom::array history;
    if (e["history"].get(history)) return Status::Error("a rollout entry has no history");
    for (simdjson::dom::element h : history) {
      RolloutTransition t;
      uint64_t hstep = 0, hweight = 0;
      std::string_view reason;
      if (h["at_unix_ms"].get(t.at_unix_ms) || !phase_of(h, "from", t.from) ||
          !phase_of(h, "to", t.to) || h["step"].get(hstep) || h["weight"].get(hweight) ||
          h["reason"].get(reason) || hstep > 1000 || hweight > 100) {
        return Status::Error("a history entry lacks a field or has a bad value");
      }
      t.step = static_cast<uint32_t>(hstep);
      t.weight = static_cast<uint32_t>(hweight);
      t.reason = reason;
      if (r.history.size() < kMaxRolloutHistory) r.history.push_back(std::move(t));
    }
    out.push_back(std::move(r));
  }
  return out;
}

Status WriteRolloutStateFile(const std::string& path, const std::vector<RolloutRecord>& records) {
  const std::string text = RenderRolloutState(records);
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  Status st = WriteAll(fd, text, tmp);
  if (st.ok() && ::fsync(fd) != 0) st = Errno("cannot fsync", tmp);
  ::close(fd);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status err = Errno("cannot rename over", path);
    ::unlink(tmp.c_str());
    return err;
  }
  // The rename itself is durable only once the directory is.
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

StatusOr<std::vector<RolloutRecord>> ReadRolloutStateFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::vector<RolloutRecord>{};
    return Errno("cannot read", path);
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = ParseRolloutState(text.str());
  if (!parsed.ok()) return Status::Error(path + ": " + parsed.status().message());
  return parsed;
}

}  // namespace tokenway
