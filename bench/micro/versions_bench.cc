// Micro-benchmarks of model versions (Google Benchmark): the per-request cost of alias
// resolution and the weighted sticky split (the snapshot's model lookup, the match rules, the
// sticky key's hash and the rendezvous choice over the versions' run-time weights; target
// <= 1 us), and of the body edits a version served under another name costs: the request's
// "model" re-serialised on a 10 KB body, and the response's "model" reported as the alias on a
// 10 KB body and on one stream event.
// Run: make bench-micro (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "common/json_writer.h"
#include "common/request_inspector.h"
#include "common/response_model.h"
#include "control/config.h"
#include "control/runtime.h"
#include "telemetry/metrics.h"

namespace tokenway {
namespace {

constexpr const char* kConfig = R"(pools:
  - {name: stable, endpoints: [http://127.0.0.1:9001]}
  - {name: canary, endpoints: [http://127.0.0.1:9002]}
models:
  - name: chat
    versions:
      - {name: v1, model: chat-v1, pool: stable, weight: 90}
      - {name: v2, model: chat-v2, pool: canary, weight: 10, match: {headers: {x-canary: "1"}}}
  - {name: other, pool: stable}
)";

// The snapshot the split reads; built once like the gateway does.
std::shared_ptr<const Runtime> VersionsRuntime() {
  static EndpointRegistry endpoints;
  static MetricSlots slots;
  static PoolStateRegistry pools;
  auto config = ParseConfig(kConfig, "bench.yaml");
  if (!config.ok()) std::abort();
  auto rt = BuildRuntime(*config, endpoints, slots, 1, 0, &pools);
  if (!rt.ok()) std::abort();
  return *rt;
}

void BM_AliasResolveAndSplit(benchmark::State& state) {
  const auto rt = VersionsRuntime();
  std::vector<std::string> users;
  for (int i = 0; i < 1024; ++i) users.push_back("user-" + std::to_string(i * 7919));
  const std::string model = "chat";
  const std::string_view header_value;  // the request has no x-canary header
  size_t i = 0;
  for (auto _ : state) {
    const ModelRoute* route = rt->FindModel(model);
    const RouteVersion* chosen = nullptr;
    for (const RouteVersion& v : route->versions) {
      bool match = !v.match.empty();
      for (const auto& [name, value] : v.match.headers) match = match && header_value == value;
      if (match) {
        chosen = &v;
        break;
      }
    }
    if (!chosen) chosen = route->Split(StickyKeyHash(users[i++ & 1023]));
    benchmark::DoNotOptimize(chosen);
  }
}
BENCHMARK(BM_AliasResolveAndSplit);

std::string Body(size_t bytes) {
  std::string text;
  while (text.size() < bytes) text += "The quarterly report shows revenue grew 12% again. ";
  text.resize(bytes);
  std::string body = R"({"model":"chat","max_tokens":256,"messages":[{"role":"user","content":)";
  AppendJsonString(body, text);
  body += "}],\"stream\":true}";
  return body;
}

void BM_RequestModelRewrite(benchmark::State& state) {
  std::string body = Body(static_cast<size_t>(state.range(0)));
  const size_t size = body.size();
  body.append(64, '\0');
  RequestInspector inspector;
  InspectedRequest req;
  InspectError error;
  if (!inspector.Inspect(Operation::kChatCompletions, body.data(), size, 64, req, error)) {
    std::abort();
  }
  const std::string_view view(body.data(), size);
  std::string out;
  for (auto _ : state) {
    ReplaceModel(view, req, "chat-v2", out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(size));
}
BENCHMARK(BM_RequestModelRewrite)->Arg(10 * 1024);

void BM_ResponseModelAsAlias(benchmark::State& state) {
  std::string text(static_cast<size_t>(state.range(0)), 'x');
  std::string body =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"chat-v2","choices":[{"index":0,"message":{"role":"assistant","content":")";
  body += text;
  body += R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3}})";
  std::string out;
  for (auto _ : state) {
    if (!ReplaceResponseModel(body, "chat-v2", "chat", out)) std::abort();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(body.size()));
}
// A 10 KB whole body, and a typical stream event (a few bytes of content).
BENCHMARK(BM_ResponseModelAsAlias)->Arg(10 * 1024)->Arg(8);

}  // namespace
}  // namespace tokenway
