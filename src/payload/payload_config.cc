#include "payload/payload_config.h"

#include <memory>

#include "common/json_writer.h"
#include "common/yaml_fields.h"
#include "http/json_client.h"
#include "payload/ext_proc_processor.h"
#include "payload/payload_metrics.h"
#include "payload/pii_scanner.h"
#include "payload/scan_processor.h"
#include "payload/webhook_processor.h"

namespace tokenway {

namespace {

StatusOr<std::shared_ptr<const TextScanner>> BuildScanner(const ProcessorConfig& p) {
  if (p.type == "patterns") {
    auto s = PatternScanner::Create(p.patterns);
    if (!s.ok()) return s.status();
    return std::shared_ptr<const TextScanner>(std::move(*s));
  }
  auto s = PiiScanner::Create(p.detectors);
  if (!s.ok()) return s.status();
  return std::shared_ptr<const TextScanner>(std::move(*s));
}

class ProcessorsLoader : public YamlFields {
 public:
  using YamlFields::YamlFields;

  std::vector<std::string> Strings(const YAML::Node& node, const std::string& field) const {
    if (!node.IsSequence()) Fail(node, field, "must be a list of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < node.size(); ++i) {
      out.push_back(String(node[i], field + "[" + std::to_string(i) + "]"));
    }
    return out;
  }

  ScanAction Action(const YAML::Node& node, const std::string& field) const {
    ScanAction a;
    if (!ParseScanAction(String(node, field), a)) {
      Fail(node, field, "must be block, redact or flag");
    }
    return a;
  }

  static std::string TypeList() {
    std::string out;
    const auto& types = KnownProcessorTypes();
    for (size_t i = 0; i < types.size(); ++i) {
      if (i > 0) out += i + 1 == types.size() ? " or " : ", ";
      out += types[i];
    }
    return out;
  }

  // type system_prompt: text, mode, client_system.
  void LoadSystemPrompt(const YAML::Node& n, const std::string& f, ProcessorConfig& p) const {
    if (p.type != "system_prompt") {
      for (const char* k : {"text", "mode", "client_system"}) {
        if (n[k]) Fail(n[k], Join(f, k), "applies to system_prompt processors only");
      }
      return;
    }
    if (!n["text"]) Fail(n, Join(f, "text"), "a system_prompt processor needs its text");
    p.system_prompt.text = String(n["text"], Join(f, "text"));
    if (p.system_prompt.text.empty()) Fail(n["text"], Join(f, "text"), "must not be empty");
    if (n["mode"]) {
      const std::string mode = String(n["mode"], Join(f, "mode"));
      if (mode == "prepend") {
        p.system_prompt.mode = SystemPromptConfig::Mode::kPrepend;
      } else if (mode == "enforce") {
        p.system_prompt.mode = SystemPromptConfig::Mode::kEnforce;
      } else {
        Fail(n["mode"], Join(f, "mode"), "must be prepend or enforce, got '" + mode + "'");
      }
    }
    if (n["client_system"]) {
      if (p.system_prompt.mode != SystemPromptConfig::Mode::kEnforce) {
        Fail(n["client_system"], Join(f, "client_system"), "applies to mode: enforce only");
      }
      const std::string cs = String(n["client_system"], Join(f, "client_system"));
      if (cs == "remove") {
        p.system_prompt.client_system = SystemPromptConfig::ClientSystem::kRemove;
      } else if (cs == "refuse") {
        p.system_prompt.client_system = SystemPromptConfig::ClientSystem::kRefuse;
      } else {
        Fail(n["client_system"], Join(f, "client_system"),
             "must be remove or refuse, got '" + cs + "'");
      }
    }
  }

  // type images: action, data_urls.
  void LoadImages(const YAML::Node& n, const std::string& f, ProcessorConfig& p) const {
    if (p.type != "images") {
      for (const char* k : {"action", "data_urls"}) {
        if (n[k]) Fail(n[k], Join(f, k), "applies to images processors only");
      }
      return;
    }
    auto action = [&](const char* k, ImageAction& out) {
      if (!ParseImageAction(String(n[k], Join(f, k)), out)) {
        Fail(n[k], Join(f, k), "must be allow, strip or refuse");
      }
    };
    if (!n["action"] && !n["data_urls"]) {
      Fail(n, f, "an images processor needs action or data_urls (allow, strip or refuse)");
    }
    p.images.action = ImageAction::kAllow;
    if (n["action"]) action("action", p.images.action);
    p.images.data_urls = p.images.action;
    if (n["data_urls"]) action("data_urls", p.images.data_urls);
  }

  void LoadExternal(const YAML::Node& n, const std::string& f, ProcessorConfig& p) const {
    ExternalProcessorConfig& e = p.external;
    if (p.type == "webhook") {
      if (n["target"]) Fail(n["target"], Join(f, "target"), "applies to ext_proc processors only");
      if (!n["url"]) Fail(n, f, "a webhook processor needs a url (http://host[:port]/path)");
      e.url = String(n["url"], Join(f, "url"));
      auto target = ParseHttpUrl(e.url);
      if (!target.ok()) Fail(n["url"], Join(f, "url"), target.status().message());
      if (const YAML::Node& h = n["headers"]) {
        if (!h.IsMap()) Fail(h, Join(f, "headers"), "must map header names to values");
        for (const auto& kv : h) {
          const std::string name = kv.first.as<std::string>();
          const std::string value = String(kv.second, Join(f, "headers." + name));
          const bool bad_name = name.empty() || name.find_first_of(" \t\r\n:") != std::string::npos;
          if (bad_name || value.find_first_of("\r\n") != std::string::npos) {
            Fail(kv.second, Join(f, "headers." + name), "is not a valid header line");
          }
          e.headers.append(name).append(": ").append(value).append("\r\n");
        }
      }
    } else {
      if (n["url"])
        Fail(n["url"], Join(f, "url"), "applies to webhook processors (ext_proc: target)");
      if (n["headers"])
        Fail(n["headers"], Join(f, "headers"), "applies to webhook processors only");
      if (!n["target"]) Fail(n, f, "an ext_proc processor needs a target (host:port)");
      e.url = String(n["target"], Join(f, "target"));
      if (e.url.empty() || e.url.find("://") != std::string::npos) {
        Fail(n["target"], Join(f, "target"),
             "must be a gRPC target such as host:port or dns:///host:port");
      }
    }
    if (n["timeout"]) {
      e.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
          Dur(n["timeout"], Join(f, "timeout")));
      if (e.timeout.count() < 1 || e.timeout > std::chrono::minutes(1)) {
        Fail(n["timeout"], Join(f, "timeout"), "must be between 1ms and 60s");
      }
    }
    if (const YAML::Node& m = n["failure_mode"]) {
      const std::string mode = String(m, Join(f, "failure_mode"));
      if (mode == "open") {
        e.failure_mode = FailureMode::kOpen;
      } else if (mode == "closed") {
        e.failure_mode = FailureMode::kClosed;
      } else {
        Fail(m, Join(f, "failure_mode"), "must be open or closed, got '" + mode + "'");
      }
    }
    if (n["max_concurrency"]) {
      e.max_concurrency =
          Integer<uint32_t>(n["max_concurrency"], Join(f, "max_concurrency"), 1, 1000000);
    }
    if (n["retries"]) e.retries = Integer<uint32_t>(n["retries"], Join(f, "retries"), 0, 5);
    if (n["deny_status"]) {
      e.deny_status = Integer<uint32_t>(n["deny_status"], Join(f, "deny_status"), 400, 599);
    }
    if (n["max_answer_bytes"]) {
      e.max_answer_bytes =
          Integer<size_t>(n["max_answer_bytes"], Join(f, "max_answer_bytes"), 64, size_t{64} << 20);
    }
  }

  std::vector<ProcessorConfig> Load(const YAML::Node& node) {
    const std::string field = "processors";
    if (!node.IsSequence()) Fail(node, field, "must be a list of processors");
    std::vector<ProcessorConfig> out;
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node& n = node[i];
      const std::string f = field + "[" + std::to_string(i) + "]";
      ExpectMap(n, f,
                {"name",
                 "type",
                 "match",
                 "request",
                 "response",
                 "window",
                 "patterns",
                 "detectors",
                 "max_prompt_tokens",
                 "deny_fields",
                 "text",
                 "mode",
                 "client_system",
                 "action",
                 "data_urls",
                 "url",
                 "target",
                 "timeout",
                 "failure_mode",
                 "max_concurrency",
                 "retries",
                 "deny_status",
                 "max_answer_bytes",
                 "headers"});
      ProcessorConfig p;
      if (!n["type"]) Fail(n, f, "needs a type (" + TypeList() + ")");
      p.type = String(n["type"], Join(f, "type"));
      const auto& types = KnownProcessorTypes();
      if (std::find(types.begin(), types.end(), p.type) == types.end()) {
        Fail(n["type"], Join(f, "type"), "must be " + TypeList() + ", got '" + p.type + "'");
      }
      p.name = n["name"] ? String(n["name"], Join(f, "name")) : p.type + "_" + std::to_string(i);
      for (const auto& other : out) {
        if (other.name == p.name) Fail(n, Join(f, "name"), "'" + p.name + "' is used twice");
      }
      if (auto m = n["match"]) {
        ExpectMap(m, Join(f, "match"), {"models", "tenants"});
        if (m["models"]) p.match.models = Strings(m["models"], Join(f, "match.models"));
        if (m["tenants"]) p.match.tenants = Strings(m["tenants"], Join(f, "match.tenants"));
      }
      if (n["request"]) p.request = Bool(n["request"], Join(f, "request"));
      if (n["response"]) p.response = Bool(n["response"], Join(f, "response"));
      if (n["window"]) p.window = Integer<uint32_t>(n["window"], Join(f, "window"), 8, 4096);
      const bool external = p.type == "webhook" || p.type == "ext_proc";
      const bool scans = p.type == "patterns" || p.type == "pii";
      for (const char* k : {"request", "response", "window"}) {
        if (!scans && n[k]) Fail(n[k], Join(f, k), "applies to patterns and pii processors only");
      }
      if (p.type != "patterns" && n["patterns"]) {
        Fail(n["patterns"], Join(f, "patterns"), "applies to patterns processors only");
      }
      if (p.type != "pii" && n["detectors"]) {
        Fail(n["detectors"], Join(f, "detectors"), "applies to pii processors only");
      }
      if (p.type != "limits") {
        for (const char* k : {"max_prompt_tokens", "deny_fields"}) {
          if (n[k]) Fail(n[k], Join(f, k), "applies to limits processors only");
        }
      }
      if (!external) {
        for (const char* k : {"url", "target", "timeout", "failure_mode", "max_concurrency",
                              "retries", "deny_status", "max_answer_bytes", "headers"}) {
          if (n[k]) Fail(n[k], Join(f, k), "applies to webhook and ext_proc processors only");
        }
      } else {
        LoadExternal(n, f, p);
      }
      if (p.type == "patterns") {
        const YAML::Node& list = n["patterns"];
        if (!list || !list.IsSequence() || list.size() == 0) {
          Fail(n, Join(f, "patterns"), "must be a non-empty list of {name, pattern, action}");
        }
        for (size_t k = 0; k < list.size(); ++k) {
          const std::string pf = Join(f, "patterns[" + std::to_string(k) + "]");
          ExpectMap(list[k], pf, {"name", "pattern", "action"});
          PatternRuleConfig r;
          if (!list[k]["pattern"]) Fail(list[k], pf, "needs a pattern");
          r.pattern = String(list[k]["pattern"], Join(pf, "pattern"));
          r.name = list[k]["name"] ? String(list[k]["name"], Join(pf, "name"))
                                   : "pattern_" + std::to_string(k);
          if (list[k]["action"]) r.action = Action(list[k]["action"], Join(pf, "action"));
          p.patterns.push_back(std::move(r));
        }
      }
      if (p.type == "pii") {
        if (const YAML::Node& d = n["detectors"]) {
          if (!d.IsMap() || d.size() == 0) {
            Fail(d, Join(f, "detectors"), "must map detector names to block, redact or flag");
          }
          for (const auto& kv : d) {
            const std::string name = kv.first.as<std::string>();
            p.detectors.emplace_back(name, Action(kv.second, Join(f, "detectors." + name)));
          }
        } else {
          p.detectors = DefaultPiiDetectors();
        }
      }
      if (p.type == "limits") {
        if (n["max_prompt_tokens"]) {
          p.limits.max_prompt_tokens = Integer<int64_t>(
              n["max_prompt_tokens"], Join(f, "max_prompt_tokens"), 1, int64_t{1} << 40);
        }
        if (n["deny_fields"])
          p.limits.deny_fields = Strings(n["deny_fields"], Join(f, "deny_fields"));
        if (p.limits.max_prompt_tokens == 0 && p.limits.deny_fields.empty()) {
          Fail(n, f, "a limits processor needs max_prompt_tokens or deny_fields");
        }
      }
      LoadSystemPrompt(n, f, p);
      LoadImages(n, f, p);
      if (scans) {
        if (!p.request && !p.response) Fail(n, f, "request and response are both false");
        auto scanner = BuildScanner(p);
        if (!scanner.ok()) Fail(n, f, scanner.status().message());
      }
      out.push_back(std::move(p));
    }
    return out;
  }
};

}  // namespace

const std::vector<std::string>& KnownProcessorTypes() {
  static const std::vector<std::string> types = {"patterns", "pii",     "limits",  "system_prompt",
                                                 "images",   "webhook", "ext_proc"};
  return types;
}

std::vector<std::pair<std::string, ScanAction>> DefaultPiiDetectors() {
  std::vector<std::pair<std::string, ScanAction>> out;
  for (const std::string& name : PiiDetectorNames()) {
    out.emplace_back(name, name == "secret" ? ScanAction::kBlock : ScanAction::kRedact);
  }
  return out;
}

StatusOr<std::vector<ProcessorConfig>> LoadProcessorsConfig(const YAML::Node& node,
                                                            const std::string& source) {
  try {
    return ProcessorsLoader(source).Load(node);
  } catch (const YamlFieldError& e) {
    return Status::Error(e.message);
  }
}

StatusOr<PayloadChain> BuildPayloadChain(const std::vector<ProcessorConfig>& processors) {
  PayloadChain chain;
  for (const ProcessorConfig& p : processors) {
    if (p.type == "limits") {
      chain.request.push_back(std::make_unique<LimitsProcessor>(p.name, p.match, p.limits));
      continue;
    }
    if (p.type == "system_prompt") {
      chain.request.push_back(
          std::make_unique<SystemPromptProcessor>(p.name, p.match, p.system_prompt));
      continue;
    }
    if (p.type == "images") {
      chain.request.push_back(std::make_unique<ImagePartsProcessor>(p.name, p.match, p.images));
      continue;
    }
    if (p.type == "webhook") {
      auto target = ParseHttpUrl(p.external.url);
      if (!target.ok()) {
        return Status::Error("processor '" + p.name + "': " + target.status().message());
      }
      chain.request.push_back(
          std::make_unique<WebhookProcessor>(p.name, p.match, p.external, std::move(*target)));
      continue;
    }
    if (p.type == "ext_proc") {
      chain.request.push_back(std::make_unique<ExtProcProcessor>(p.name, p.match, p.external));
      continue;
    }
    auto scanner = BuildScanner(p);
    if (!scanner.ok()) {
      return Status::Error("processor '" + p.name + "': " + scanner.status().message());
    }
    ScanCounters counters = ScanCounters::Create(p.name, **scanner);
    if (p.request) {
      chain.request.push_back(
          std::make_unique<ScanRequestProcessor>(p.name, p.match, *scanner, counters));
    }
    if (p.response) {
      chain.response.push_back(
          std::make_unique<ScanResponseProcessor>(p.name, p.match, *scanner, counters, p.window));
    }
  }
  return chain;
}

void WriteProcessorsConfig(JsonWriter& w, const std::vector<ProcessorConfig>& processors) {
  w.BeginArray();
  for (const ProcessorConfig& p : processors) {
    w.BeginObject();
    w.Key("name").String(p.name);
    w.Key("type").String(p.type);
    w.Key("match").BeginObject();
    w.Key("models").BeginArray();
    for (const auto& m : p.match.models) w.String(m);
    w.EndArray();
    w.Key("tenants").BeginArray();
    for (const auto& t : p.match.tenants) w.String(t);
    w.EndArray();
    w.EndObject();
    if (p.type == "webhook" || p.type == "ext_proc") {
      const ExternalProcessorConfig& e = p.external;
      w.Key(p.type == "webhook" ? "url" : "target").String(e.url);
      w.Key("timeout_ms").Int(e.timeout.count());
      w.Key("failure_mode").String(e.failure_mode == FailureMode::kOpen ? "open" : "closed");
      w.Key("max_concurrency").Int(e.max_concurrency);
      w.Key("retries").Int(e.retries);
      w.Key("deny_status").Int(e.deny_status);
      w.Key("max_answer_bytes").Int(static_cast<int64_t>(e.max_answer_bytes));
      if (p.type == "webhook") {
        // Header values may be credentials: only their names are shown.
        w.Key("headers").BeginArray();
        for (size_t at = 0; at < e.headers.size();) {
          const size_t colon = e.headers.find(':', at);
          const size_t end = e.headers.find("\r\n", at);
          w.String(std::string_view(e.headers).substr(at, colon - at));
          at = end + 2;
        }
        w.EndArray();
      }
    } else if (p.type == "limits") {
      w.Key("max_prompt_tokens").Int(p.limits.max_prompt_tokens);
      w.Key("deny_fields").BeginArray();
      for (const auto& d : p.limits.deny_fields) w.String(d);
      w.EndArray();
    } else if (p.type == "system_prompt") {
      w.Key("text").String(p.system_prompt.text);
      const bool enforce = p.system_prompt.mode == SystemPromptConfig::Mode::kEnforce;
      w.Key("mode").String(enforce ? "enforce" : "prepend");
      if (enforce) {
        w.Key("client_system")
            .String(p.system_prompt.client_system == SystemPromptConfig::ClientSystem::kRefuse
                        ? "refuse"
                        : "remove");
      }
    } else if (p.type == "images") {
      w.Key("action").String(ImageActionName(p.images.action));
      w.Key("data_urls").String(ImageActionName(p.images.data_urls));
    } else {
      w.Key("request").Bool(p.request);
      w.Key("response").Bool(p.response);
      w.Key("window").Int(p.window);
    }
    if (p.type == "patterns") {
      w.Key("patterns").BeginArray();
      for (const auto& r : p.patterns) {
        w.BeginObject();
        w.Key("name").String(r.name);
        w.Key("pattern").String(r.pattern);
        w.Key("action").String(ScanActionName(r.action));
        w.EndObject();
      }
      w.EndArray();
    }
    if (p.type == "pii") {
      w.Key("detectors").BeginObject();
      for (const auto& [name, action] : p.detectors) w.Key(name).String(ScanActionName(action));
      w.EndObject();
    }
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace tokenway
