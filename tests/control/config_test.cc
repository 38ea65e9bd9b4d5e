// ParseConfig / ValidateConfig / ParseEndpointUrl (control/config.h) and RenderConfigJson
// (control/config_render.h).
#include "control/config.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "control/config_render.h"
#include "telemetry/access_log.h"

namespace tokenway {
namespace {

using namespace std::chrono_literals;

constexpr const char* kFullConfig = R"(# every field
listen: 0.0.0.0:9000
admin: 127.0.0.1:9001
workers: 4
drain_timeout: 15s
reload_poll_interval: 500ms
limits:
  max_header_bytes: 32KiB
  max_body_bytes: 4MiB
  max_response_bytes: 1GiB
  max_connections: 2000
  header_timeout: 5s
  idle_timeout: 2m
  write_timeout: 30s
upstream:
  connect_timeout: 250ms
  first_byte_timeout: 120s
  stream_idle_timeout: 45s
  total_timeout: 1h
  idle_connection_timeout: 90s
  max_idle_per_endpoint: 64
  max_attempts: 2
health:
  active:
    enabled: false
    interval: 3s
    timeout: 800ms
    path: /healthz
    unhealthy_threshold: 4
    healthy_threshold: 2
  passive:
    consecutive_failures: 7
    base_ejection: 20s
    max_ejection: 10m
streaming:
  inject_usage: off
access_log:
  enabled: no
  path: /var/log/tokenway.log
pools:
  - name: gpu-a
    policy: power-of-two
    endpoints:
      - http://10.0.0.1:8000
      - http://[::1]:8001/
  - name: gpu-b
    endpoints: [http://sim-b:9000]
models:
  - name: llama-3-8b
    pool: gpu-a
  - name: llama-3-8b-sql
    pool: gpu-a
    parent: llama-3-8b
  - name: "mistral \"7b\""
    pool: gpu-b
)";

constexpr const char* kMinimal = R"(pools:
  - name: p
    endpoints: [http://h:1]
models:
  - name: m
    pool: p
)";

TEST(ConfigTest, FullFileParsesEveryField) {
  auto r = ParseConfig(kFullConfig, "full.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const GatewayConfig& c = *r;
  EXPECT_EQ(c.source, "full.yaml");
  EXPECT_EQ(c.listen, "0.0.0.0:9000");
  EXPECT_EQ(c.admin, "127.0.0.1:9001");
  EXPECT_EQ(c.workers, 4u);
  EXPECT_EQ(c.drain_timeout, 15s);
  EXPECT_EQ(c.reload_poll_interval, 500ms);
  EXPECT_EQ(c.limits.max_header_bytes, 32u * 1024);
  EXPECT_EQ(c.limits.max_body_bytes, 4ull * 1024 * 1024);
  EXPECT_EQ(c.limits.max_response_bytes, 1ull << 30);
  EXPECT_EQ(c.limits.max_connections, 2000u);
  EXPECT_EQ(c.limits.header_timeout, 5s);
  EXPECT_EQ(c.limits.idle_timeout, 2min);
  EXPECT_EQ(c.limits.write_timeout, 30s);
  EXPECT_EQ(c.upstream.connect_timeout, 250ms);
  EXPECT_EQ(c.upstream.first_byte_timeout, 120s);
  EXPECT_EQ(c.upstream.stream_idle_timeout, 45s);
  EXPECT_EQ(c.upstream.total_timeout, 1h);
  EXPECT_EQ(c.upstream.idle_connection_timeout, 90s);
  EXPECT_EQ(c.upstream.max_idle_per_endpoint, 64u);
  EXPECT_EQ(c.upstream.max_attempts, 2u);
  EXPECT_FALSE(c.active_health.enabled);
  EXPECT_EQ(c.active_health.interval, 3s);
  EXPECT_EQ(c.active_health.timeout, 800ms);
  EXPECT_EQ(c.active_health.path, "/healthz");
  EXPECT_EQ(c.active_health.unhealthy_threshold, 4u);
  EXPECT_EQ(c.active_health.healthy_threshold, 2u);
  EXPECT_EQ(c.passive_health.consecutive_failures, 7u);
  EXPECT_EQ(c.passive_health.base_ejection, 20s);
  EXPECT_EQ(c.passive_health.max_ejection, 10min);
  EXPECT_FALSE(c.streaming.inject_usage);
  EXPECT_FALSE(c.access_log.enabled);
  EXPECT_EQ(c.access_log.path, "/var/log/tokenway.log");
  ASSERT_EQ(c.pools.size(), 2u);
  EXPECT_EQ(c.pools[0].name, "gpu-a");
  EXPECT_EQ(c.pools[0].policy, "power-of-two");
  ASSERT_EQ(c.pools[0].endpoints.size(), 2u);
  EXPECT_EQ(c.pools[0].endpoints[0].url, "http://10.0.0.1:8000");
  EXPECT_EQ(c.pools[0].endpoints[0].host, "10.0.0.1");
  EXPECT_EQ(c.pools[0].endpoints[0].port, 8000);
  EXPECT_EQ(c.pools[0].endpoints[1].host, "::1");
  EXPECT_EQ(c.pools[0].endpoints[1].port, 8001);
  // No policy and no scheduler: the tokenway scheduling profile.
  EXPECT_TRUE(c.pools[1].scheduler.enabled);
  EXPECT_EQ(c.pools[1].scheduler.preset, "tokenway");
  EXPECT_EQ(c.pools[1].scheduler.sample, 64u);
  EXPECT_FALSE(c.pools[0].scheduler.enabled);  // an explicit policy keeps its picker
  ASSERT_EQ(c.models.size(), 3u);
  EXPECT_EQ(c.models[1].name, "llama-3-8b-sql");
  EXPECT_EQ(c.models[1].pool, "gpu-a");
  EXPECT_EQ(c.models[1].parent, "llama-3-8b");
  EXPECT_EQ(c.models[2].name, "mistral \"7b\"");
  EXPECT_EQ(c.models[2].pool, "gpu-b");
}

TEST(ConfigTest, MinimalFileKeepsDefaults) {
  auto r = ParseConfig(kMinimal, "min.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  GatewayConfig defaults;
  EXPECT_EQ(r->listen, defaults.listen);
  EXPECT_EQ(r->limits.max_body_bytes, defaults.limits.max_body_bytes);
  EXPECT_EQ(r->upstream.max_attempts, defaults.upstream.max_attempts);
  EXPECT_TRUE(r->streaming.inject_usage);
}

TEST(ConfigTest, ExampleConfigLoads) {
  auto r = LoadConfigFile(std::string(TOKENWAY_SOURCE_DIR) + "/deploy/examples/local-sim.yaml");
  EXPECT_TRUE(r.ok()) << r.status().message();
}

// The example at the top of docs/configuration.md is a valid configuration.
TEST(ConfigTest, EndpointPickerExampleLoads) {
  auto r =
      LoadConfigFile(std::string(TOKENWAY_SOURCE_DIR) + "/deploy/examples/endpoint-picker.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->epp.enabled());
}

TEST(ConfigTest, DocumentedExampleParses) {
  std::ifstream in(std::string(TOKENWAY_SOURCE_DIR) + "/docs/configuration.md");
  std::stringstream doc;
  doc << in.rdbuf();
  const std::string text = doc.str();
  const size_t start = text.find("```yaml\n");
  ASSERT_NE(start, std::string::npos);
  const size_t end = text.find("```", start + 8);
  ASSERT_NE(end, std::string::npos);
  auto r = ParseConfig(text.substr(start + 8, end - start - 8), "configuration.md");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const PoolConfig& pool = r->pools[0];
  ASSERT_EQ(pool.endpoints.size(), 3u);
  EXPECT_EQ(EffectiveCapacity(pool, pool.endpoints[1]), 0.45);
  EXPECT_EQ(EffectiveEngine(pool, pool.endpoints[2]), "sglang");
  EXPECT_EQ(EffectiveCapacity(pool, pool.endpoints[2]), 2.0);
}

// Each error must read "<file>:<line>:<col>: <field>: <message>".
struct ErrorCase {
  const char* name;
  std::string yaml;
  int line;
  const char* field;
  const char* words;  // a fragment of the message
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, NamesFileLineAndField) {
  const ErrorCase& c = GetParam();
  auto r = ParseConfig(c.yaml, "gw.yaml");
  ASSERT_FALSE(r.ok()) << c.yaml;
  const std::string& msg = r.status().message();
  std::string prefix = "gw.yaml:" + std::to_string(c.line) + ":";
  EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
  EXPECT_TRUE(std::regex_search(msg, std::regex("^gw\\.yaml:[0-9]+:[0-9]+: "))) << msg;
  EXPECT_NE(msg.find(std::string(": ") + c.field + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find(c.words), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, ConfigErrorTest,
    ::testing::Values(
        ErrorCase{"UnknownTopLevelKey", std::string(kMinimal) + "listn: x\n", 7, "listn",
                  "unknown field"},
        ErrorCase{"UnknownNestedKey", "limits:\n  max_body: 1\n" + std::string(kMinimal), 2,
                  "limits.max_body", "unknown field"},
        ErrorCase{"WrongTypeNumber", "workers: many\n" + std::string(kMinimal), 1, "workers",
                  "non-negative integer"},
        ErrorCase{"WrongTypeMapping", "limits: 5\n" + std::string(kMinimal), 1, "limits",
                  "must be a mapping"},
        ErrorCase{"WrongTypeBool", "streaming:\n  inject_usage: maybe\n" + std::string(kMinimal), 2,
                  "streaming.inject_usage", "true or false"},
        ErrorCase{"WrongTypeString", "listen: [a, b]\n" + std::string(kMinimal), 1, "listen",
                  "must be a string"},
        ErrorCase{"BadDuration",
                  "upstream:\n  connect_timeout: 5 parsecs\n" + std::string(kMinimal), 2,
                  "upstream.connect_timeout", "duration"},
        ErrorCase{"ZeroDuration", "drain_timeout: 0s\n" + std::string(kMinimal), 1, "drain_timeout",
                  "positive"},
        ErrorCase{"OutOfRange", "upstream:\n  max_attempts: 11\n" + std::string(kMinimal), 2,
                  "upstream.max_attempts", "between 1 and 10"},
        ErrorCase{"BadSize", "limits:\n  max_body_bytes: 8MB\n" + std::string(kMinimal), 2,
                  "limits.max_body_bytes", "size"},
        ErrorCase{"BadHealthPath",
                  "health:\n  active:\n    path: healthz\n" + std::string(kMinimal), 3,
                  "health.active.path", "must start with /"},
        ErrorCase{"BadUrlScheme",
                  "pools:\n  - name: p\n    endpoints:\n      - https://h:1\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  4, "pools[0].endpoints[0]", "http://"},
        ErrorCase{
            "BadUrlPort",
            "pools:\n  - name: p\n    endpoints:\n      - http://h:1\n      - http://h:99999\n"
            "models:\n  - {name: m, pool: p}\n",
            5, "pools[0].endpoints[1]", "invalid port"},
        ErrorCase{"UrlWithPath",
                  "pools:\n  - name: p\n    endpoints: [http://h:1/v1]\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  3, "pools[0].endpoints[0]", "path"},
        ErrorCase{"UnknownPolicy",
                  "pools:\n  - name: p\n    policy: random\n    endpoints: [http://h:1]\n"
                  "models:\n  - {name: m, pool: p}\n",
                  3, "pools[0].policy", "unknown policy 'random'"},
        ErrorCase{"ModelNamesUnknownPool",
                  "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n  - name: m\n"
                  "    pool: q\n",
                  6, "models[0].pool", "no pool named 'q'"},
        ErrorCase{"EmptyEndpoints",
                  "pools:\n  - name: p\n    endpoints: []\nmodels:\n  - {name: m, pool: p}\n", 3,
                  "pools[0].endpoints", "non-empty"},
        ErrorCase{"MissingPools", "models:\n  - {name: m, pool: p}\n", 1, "pools", "required"},
        ErrorCase{"MissingModels", "pools:\n  - name: p\n    endpoints: [http://h:1]\n", 1,
                  "models", "required"},
        ErrorCase{"MissingModelName",
                  "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n  - pool: p\n", 5,
                  "models[0].name", "required"},
        ErrorCase{"DuplicatePool",
                  "pools:\n  - name: p\n    endpoints: [http://h:1]\n  - name: p\n"
                  "    endpoints: [http://h:2]\nmodels:\n  - {name: m, pool: p}\n",
                  4, "pools[1].name", "defined twice"},
        ErrorCase{"DuplicateModel",
                  "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n  - name: m\n    pool: p\n",
                  6, "models[1].name", "defined twice"},
        ErrorCase{"UnknownParent",
                  "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n  - name: lora\n    pool: p\n    parent: base\n",
                  8, "models[1].parent", "unknown parent 'base'"},
        ErrorCase{"SizeOverflow",
                  "limits:\n  max_body_bytes: 17179869185GiB\n" + std::string(kMinimal), 2,
                  "limits.max_body_bytes", "between"},
        ErrorCase{"RootNotAMapping", "- a\n- b\n", 1, "(root)", "must be a mapping"},
        ErrorCase{"UnknownEngine",
                  "pools:\n  - name: p\n    engine: tgi\n    endpoints: [http://h:1]\n"
                  "models:\n  - {name: m, pool: p}\n",
                  3, "pools[0].engine", "unknown engine 'tgi'"},
        ErrorCase{"UnknownScorer",
                  "pools:\n  - name: p\n    scheduler:\n      scorers:\n"
                  "        - {name: queue-depth, weight: 2}\n        - name: vibes\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  6, "pools[0].scheduler.scorers[1].name", "unknown scorer 'vibes'"},
        ErrorCase{"BadScorerWeight",
                  "pools:\n  - name: p\n    scheduler:\n      scorers:\n"
                  "        - name: kv-cache\n          weight: -1\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  6, "pools[0].scheduler.scorers[0].weight", "between 0 and 1000"},
        ErrorCase{"UnknownSchedulerPicker",
                  "pools:\n  - name: p\n    scheduler:\n      preset: gie-default\n"
                  "      picker: best\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.picker", "unknown picker 'best'"},
        ErrorCase{"UnknownPreset",
                  "pools:\n  - name: p\n    scheduler: {preset: magic}\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  3, "pools[0].scheduler.preset", "unknown preset 'magic'"},
        ErrorCase{"AffinityWithoutItsScorer",
                  "pools:\n  - name: p\n    scheduler:\n      preset: gie-default\n"
                  "      affinity: {blocks: 8}\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.affinity", "needs the consistent-prefix scorer"},
        ErrorCase{"SloWithoutItsScorer",
                  "pools:\n  - name: p\n    scheduler:\n      preset: tokenway\n"
                  "      slo: {ttft: 1s}\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.slo", "needs the predicted-latency scorer"},
        ErrorCase{"SloZeroTtft",
                  "pools:\n  - name: p\n    scheduler:\n"
                  "      scorers: [{name: predicted-latency}]\n"
                  "      slo: {ttft: 0s}\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.slo.ttft", "positive"},
        ErrorCase{"SloUnknownField",
                  "pools:\n  - name: p\n    scheduler:\n"
                  "      scorers: [{name: predicted-latency}]\n"
                  "      slo: {p99: 1s}\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.slo.p99", "unknown field"},
        ErrorCase{"AffinityEpsilonZero",
                  "pools:\n  - name: p\n    scheduler:\n      preset: tokenway\n"
                  "      affinity: {epsilon: 0}\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.affinity.epsilon", "(0, 10]"},
        ErrorCase{"SampleOfOne",
                  "pools:\n  - name: p\n    scheduler:\n      preset: tokenway\n"
                  "      sample: 1\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.sample", "at least 2"},
        ErrorCase{"SchedulerWithoutScorers",
                  "pools:\n  - name: p\n    scheduler: {picker: max-score}\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  3, "pools[0].scheduler.scorers", "is required"},
        ErrorCase{"UnknownFilter",
                  "pools:\n  - name: p\n    scheduler:\n      preset: gie-default\n"
                  "      filters: [saturation, crowd]\n    endpoints: [http://h:1]\n"
                  "models:\n  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.filters[1]", "unknown filter 'crowd'"},
        ErrorCase{"BadFilterThreshold",
                  "pools:\n  - name: p\n    scheduler:\n      preset: gie-default\n"
                  "      filters:\n        - {name: saturation, kv_threshold: 1.5}\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  6, "pools[0].scheduler.filters[0].kv_threshold", "(0, 1]"},
        ErrorCase{"FlowControlUnknownField",
                  "pools:\n  - name: p\n    flow_control: {max_queue: 3, burst: 9}\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  3, "pools[0].flow_control.burst", "unknown field"},
        ErrorCase{"FlowControlBadFairnessKey",
                  "pools:\n  - name: p\n    flow_control:\n      fairness_key: customer\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  4, "pools[0].flow_control.fairness_key", "header:<name>"},
        ErrorCase{"FlowControlBadHeaderName",
                  "pools:\n  - name: p\n    flow_control:\n      priority_header: \"x prio\"\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  4, "pools[0].flow_control.priority_header", "not a header name"},
        ErrorCase{"FlowControlBadTtl",
                  "pools:\n  - name: p\n    flow_control:\n      queue_ttl: 0s\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  4, "pools[0].flow_control.queue_ttl", "positive"},
        ErrorCase{"ModelPriorityNotInteger",
                  "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n"
                  "  - {name: m, pool: p, priority: high}\n",
                  5, "models[0].priority", "must be an integer"},
        ErrorCase{"EngineMetricsBadInterval",
                  "engine_metrics:\n  interval: soon\n" + std::string(kMinimal), 2,
                  "engine_metrics.interval", "duration"},
        ErrorCase{"UnknownAccelerator",
                  "pools:\n  - name: p\n    accelerators: {H100-80GB: 1.0}\n    endpoints:\n"
                  "      - {url: http://h:1, accelerator: H100-80GB}\n"
                  "      - url: http://h:2\n        accelerator: H100-80G\n"
                  "models:\n  - {name: m, pool: p}\n",
                  7, "pools[0].endpoints[1].accelerator",
                  "unknown accelerator 'H100-80G': pools[0].accelerators has no entry for it "
                  "(known: H100-80GB)"},
        ErrorCase{"AcceleratorWithoutMap",
                  "pools:\n  - name: p\n    endpoints:\n"
                  "      - {url: http://h:1, accelerator: L4, capacity: 0.2}\n"
                  "models:\n  - {name: m, pool: p}\n",
                  4, "pools[0].endpoints[0].accelerator", "(none defined)"},
        ErrorCase{"ZeroCapacity",
                  "pools:\n  - name: p\n    endpoints:\n      - url: http://h:1\n"
                  "        capacity: 0\nmodels:\n  - {name: m, pool: p}\n",
                  5, "pools[0].endpoints[0].capacity", "positive number"},
        ErrorCase{"NegativeCapacity",
                  "pools:\n  - name: p\n    endpoints: [{url: http://h:1, capacity: -2}]\n"
                  "models:\n  - {name: m, pool: p}\n",
                  3, "pools[0].endpoints[0].capacity", "got '-2'"},
        ErrorCase{"CapacityNotANumber",
                  "pools:\n  - name: p\n    endpoints: [{url: http://h:1, capacity: big}]\n"
                  "models:\n  - {name: m, pool: p}\n",
                  3, "pools[0].endpoints[0].capacity", "positive number"},
        ErrorCase{"BadAcceleratorCapacity",
                  "pools:\n  - name: p\n    accelerators:\n      A100-40GB: nan\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  4, "pools[0].accelerators.A100-40GB", "positive number"},
        ErrorCase{"AcceleratorsNotAMapping",
                  "pools:\n  - name: p\n    accelerators: [H100]\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  3, "pools[0].accelerators", "must be a mapping"},
        ErrorCase{"UnknownEndpointField",
                  "pools:\n  - name: p\n    endpoints:\n      - url: http://h:1\n"
                  "        weight: 2\nmodels:\n  - {name: m, pool: p}\n",
                  5, "pools[0].endpoints[0].weight", "unknown field"},
        ErrorCase{"EndpointWithoutUrl",
                  "pools:\n  - name: p\n    endpoints:\n      - engine: sglang\n"
                  "models:\n  - {name: m, pool: p}\n",
                  4, "pools[0].endpoints[0].url", "is required"},
        ErrorCase{"EndpointBadUrl",
                  "pools:\n  - name: p\n    endpoints:\n      - {engine: sglang, url: h:1}\n"
                  "models:\n  - {name: m, pool: p}\n",
                  4, "pools[0].endpoints[0].url", "http://"},
        ErrorCase{"EndpointUnknownEngine",
                  "pools:\n  - name: p\n    endpoints:\n      - url: http://h:1\n"
                  "        engine: triton\nmodels:\n  - {name: m, pool: p}\n",
                  5, "pools[0].endpoints[0].engine", "unknown engine 'triton'"},
        ErrorCase{"EndpointIsAList",
                  "pools:\n  - name: p\n    endpoints:\n      - [http://h:1]\n"
                  "models:\n  - {name: m, pool: p}\n",
                  4, "pools[0].endpoints[0]", "URL or a mapping"},
        ErrorCase{"SessionHeaderNotAHeaderName",
                  "pools:\n  - name: p\n    scheduler:\n"
                  "      scorers: [{name: session-affinity}]\n"
                  "      session_header: x session\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.session_header", "not an HTTP header name"},
        ErrorCase{"SessionHeaderConsumedByGateway",
                  "pools:\n  - name: p\n    scheduler:\n"
                  "      scorers: [{name: session-affinity}]\n"
                  "      session_header: X-Request-Id\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.session_header", "the gateway consumes it"},
        ErrorCase{"SessionHeaderWithoutScorer",
                  "pools:\n  - name: p\n    scheduler:\n      preset: gie-default\n"
                  "      session_header: x-session-id\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  5, "pools[0].scheduler.session_header", "needs the session-affinity scorer"},
        ErrorCase{"OneUrlTwoEngines",
                  "pools:\n  - name: a\n    endpoints: [http://h:1]\n  - name: b\n"
                  "    engine: sglang\n    endpoints:\n      - http://h:2\n      - http://h:1\n"
                  "models:\n  - {name: m, pool: a}\n",
                  8, "pools[1].endpoints[1]",
                  "endpoint 'http://h:1' is also pools[0].endpoints[0] with another engine"},
        ErrorCase{"OneUrlTwoCapacities",
                  "pools:\n  - name: a\n    endpoints: [{url: http://h:1, capacity: 2}]\n"
                  "  - name: b\n    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: a}\n",
                  5, "pools[1].endpoints[0]", "one server has one of each"},
        ErrorCase{"AccessLogUnknownField",
                  std::string(kMinimal) + "access_log:\n  fields: [status, secret]\n", 8,
                  "access_log.fields[1]", "unknown field 'secret'"},
        ErrorCase{"AccessLogRatioAboveOne",
                  std::string(kMinimal) + "access_log:\n  sample_ratio: 1.5\n", 8,
                  "access_log.sample_ratio", "must be in [0, 1]"},
        ErrorCase{"AutoscalingTargetZero",
                  "pools:\n  - name: p\n    autoscaling: {target_utilisation: 0}\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  3, "pools[0].autoscaling.target_utilisation", "must be in (0, 1]"},
        ErrorCase{"AutoscalingMaxBelowMin",
                  "pools:\n  - name: p\n    autoscaling: {min_replicas: 4, max_replicas: 2}\n"
                  "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                  3, "pools[0].autoscaling.max_replicas", "at least min_replicas"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

TEST(ConfigTest, SchedulerAndEngineMetrics) {
  auto r = ParseConfig(
      "engine_metrics:\n  interval: 100ms\n  timeout: 50ms\n  stale_after: 2s\n"
      "pools:\n  - name: a\n    engine: sglang\n    scheduler: {preset: gie-default}\n"
      "    endpoints: [http://h:1]\n  - name: b\n    scheduler:\n"
      "      scorers: [{name: least-request}, {name: prefix-cache, weight: 2.5}]\n"
      "      picker: weighted-random\n      prefix: {block_bytes: 128, capacity: 1000}\n"
      "      filters: [saturation, {name: saturation, queue_threshold: 9, kv_threshold: 0.5}]\n"
      "    endpoints: [http://h:2]\nmodels:\n  - {name: m, pool: a}\n",
      "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->engine_metrics.interval, 100ms);
  EXPECT_EQ(r->engine_metrics.timeout, 50ms);
  EXPECT_EQ(r->engine_metrics.stale_after, 2s);
  const PoolConfig& a = r->pools[0];
  EXPECT_EQ(a.engine, "sglang");
  ASSERT_TRUE(a.scheduler.enabled);
  ASSERT_EQ(a.scheduler.scorers.size(), 3u);
  EXPECT_EQ(a.scheduler.scorers[2].name, "prefix-cache");
  EXPECT_EQ(a.scheduler.scorers[2].weight, 3);
  EXPECT_EQ(a.scheduler.picker, "max-score");
  const PoolConfig& b = r->pools[1];
  EXPECT_EQ(b.engine, "vllm");
  ASSERT_EQ(b.scheduler.scorers.size(), 2u);
  EXPECT_EQ(b.scheduler.scorers[0].weight, 1);
  EXPECT_EQ(b.scheduler.scorers[1].weight, 2.5);
  EXPECT_EQ(b.scheduler.picker, "weighted-random");
  EXPECT_EQ(b.scheduler.prefix.block_bytes, 128u);
  EXPECT_EQ(b.scheduler.prefix.capacity, 1000u);
  ASSERT_EQ(b.scheduler.filters.size(), 2u);
  EXPECT_EQ(b.scheduler.filters[0].queue_threshold, 5u);
  EXPECT_EQ(b.scheduler.filters[1].queue_threshold, 9u);
  EXPECT_EQ(b.scheduler.filters[1].kv_threshold, 0.5);
  std::string json = RenderConfigJson(*r);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_NE(json.find("\"preset\":\"gie-default\""), std::string::npos) << json;
}

TEST(ConfigTest, TokenwayPresetAndAffinity) {
  auto r = ParseConfig(
      "pools:\n  - name: a\n    scheduler: {preset: tokenway}\n    endpoints: [http://h:1]\n"
      "  - name: b\n    scheduler:\n      scorers: [{name: consistent-prefix}]\n"
      "      affinity: {blocks: 4, epsilon: 0.5}\n      sample: 0\n"
      "    endpoints: [http://h:2]\nmodels:\n  - {name: m, pool: a}\n",
      "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const SchedulerConfig& a = r->pools[0].scheduler;
  ASSERT_EQ(a.scorers.size(), 6u);
  EXPECT_EQ(a.scorers[1].name, "consistent-prefix");
  EXPECT_EQ(a.sample, 64u);
  EXPECT_EQ(a.affinity.blocks, 16u);
  const SchedulerConfig& b = r->pools[1].scheduler;
  EXPECT_EQ(b.affinity.blocks, 4u);
  EXPECT_EQ(b.affinity.epsilon, 0.5);
  EXPECT_EQ(b.sample, 0u);
  std::string json = RenderConfigJson(*r);
  EXPECT_NE(json.find("\"affinity\":{\"blocks\":4,\"epsilon\":0.5},\"sample\":0"),
            std::string::npos)
      << json;
}

TEST(ConfigTest, PredictedLatencyAndItsObjective) {
  auto r = ParseConfig(
      "pools:\n  - name: a\n    scheduler:\n"
      "      scorers: [{name: prefix-cache}, {name: predicted-latency, weight: 4}]\n"
      "      slo: {ttft: 800ms, tpot: 40ms, min_samples: 8, shed: false}\n"
      "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: a}\n",
      "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const SchedulerConfig& a = r->pools[0].scheduler;
  EXPECT_TRUE(a.PredictsLatency());
  EXPECT_EQ(a.slo.ttft, std::chrono::milliseconds(800));
  EXPECT_EQ(a.slo.tpot, std::chrono::milliseconds(40));
  EXPECT_EQ(a.slo.min_samples, 8u);
  EXPECT_FALSE(a.slo.shed);
  std::string json = RenderConfigJson(*r);
  EXPECT_NE(json.find("\"slo\":{\"ttft\":\"800ms\",\"tpot\":\"40ms\",\"min_samples\":8,"
                      "\"shed\":false}"),
            std::string::npos)
      << json;
}

TEST(ConfigTest, EveryEngineNameIsAccepted) {
  for (const char* engine : {"vllm", "sglang", "trtllm-serve", "triton-tensorrt-llm"}) {
    auto r = ParseConfig(std::string("pools:\n  - name: p\n    engine: ") + engine +
                             "\n    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                         "gw.yaml");
    ASSERT_TRUE(r.ok()) << engine << ": " << r.status().message();
    EXPECT_EQ(r->pools[0].engine, engine);
  }
  auto r = ParseConfig(
      "pools:\n  - name: p\n    engine: trtllm\n    endpoints: [http://h:1]\n"
      "models:\n  - {name: m, pool: p}\n",
      "gw.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "gw.yaml:3:13: pools[0].engine: unknown engine 'trtllm' (known: vllm, sglang, "
            "trtllm-serve, triton-tensorrt-llm)");
}

TEST(ConfigTest, EndpointEnginesAcceleratorsAndCapacities) {
  // The first pool of both files below.
  const std::string mixed =
      "pools:\n"
      "  - name: mixed\n"
      "    engine: trtllm-serve\n"
      "    accelerators: {H100-80GB: 1.0, A100-40GB: 0.45}\n"
      "    endpoints:\n"
      "      - http://h:1\n"
      "      - {url: http://h:2, accelerator: A100-40GB}\n"
      "      - {url: http://h:3, accelerator: A100-40GB, capacity: 0.5}\n"
      "      - url: http://h:4\n"
      "        engine: triton-tensorrt-llm\n"
      "        capacity: 3\n"
      "      - {url: http://h:5, accelerator: H100-80GB, engine: vllm}\n";
  auto r = ParseConfig(
      mixed +
          "  - name: again\n"
          "    accelerators: {A100: 0.45}\n"
          "    endpoints: [{url: http://h:2, engine: trtllm-serve, accelerator: A100-40GB,\n"
          "                 capacity: 0.45}]\n"
          "models:\n  - {name: m, pool: mixed}\n",
      "gw.yaml");
  // The second pool names A100-40GB without declaring it.
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("gw.yaml:15:"), std::string::npos) << r.status().message();

  r = ParseConfig(mixed +
                      "  - name: again\n"
                      "    engine: trtllm-serve\n"
                      "    accelerators: {A100-40GB: 0.45}\n"
                      "    endpoints: [{url: http://h:2, accelerator: A100-40GB}]\n"
                      "models:\n  - {name: m, pool: mixed}\n",
                  "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const PoolConfig& p = r->pools[0];
  ASSERT_EQ(p.endpoints.size(), 5u);
  EXPECT_EQ(p.accelerators.at("A100-40GB"), 0.45);
  const char* engines[] = {"trtllm-serve", "trtllm-serve", "trtllm-serve", "triton-tensorrt-llm",
                           "vllm"};
  const double capacities[] = {1.0, 0.45, 0.5, 3.0, 1.0};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(EffectiveEngine(p, p.endpoints[i]), engines[i]) << i;
    EXPECT_EQ(EffectiveCapacity(p, p.endpoints[i]), capacities[i]) << i;
  }
  EXPECT_EQ(p.endpoints[0].engine, "");  // inherited, not copied
  EXPECT_EQ(p.endpoints[1].accelerator, "A100-40GB");
  EXPECT_EQ(p.endpoints[3].url, "http://h:4");
  EXPECT_EQ(p.endpoints[3].port, 4);

  std::string json = RenderConfigJson(*r);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  simdjson::dom::element pool = doc["pools"].at(0);
  EXPECT_EQ(double(pool["accelerators"]["A100-40GB"]), 0.45);
  simdjson::dom::element ep = pool["endpoints"].at(1);
  EXPECT_EQ(std::string_view(ep["url"]), "http://h:2");
  EXPECT_EQ(std::string_view(ep["engine"]), "trtllm-serve");
  EXPECT_EQ(std::string_view(ep["accelerator"]), "A100-40GB");
  EXPECT_EQ(double(ep["capacity"]), 0.45);
  EXPECT_TRUE(pool["endpoints"].at(0)["accelerator"].is_null());
  EXPECT_EQ(std::string_view(pool["endpoints"].at(4)["engine"]), "vllm");
}

TEST(ValidateConfigTest, EndpointAttributes) {
  GatewayConfig c;
  PoolConfig pool;
  pool.name = "p";
  pool.endpoints.push_back(*ParseEndpointUrl("http://h:1"));
  c.pools.push_back(pool);
  c.models.push_back({"m", "p", ""});
  ASSERT_TRUE(ValidateConfig(c).ok());
  c.pools[0].endpoints[0].engine = "tgi";
  EXPECT_NE(ValidateConfig(c).message().find("unknown engine 'tgi'"), std::string::npos);
  c.pools[0].endpoints[0].engine = "sglang";
  c.pools[0].endpoints[0].accelerator = "L4";
  EXPECT_NE(ValidateConfig(c).message().find("unknown accelerator 'L4'"), std::string::npos);
  c.pools[0].accelerators["L4"] = 0.25;
  ASSERT_TRUE(ValidateConfig(c).ok());
  EXPECT_EQ(EffectiveCapacity(c.pools[0], c.pools[0].endpoints[0]), 0.25);
  c.pools[0].endpoints[0].capacity = -1;
  EXPECT_FALSE(ValidateConfig(c).ok());
  c.pools[0].endpoints[0].capacity = 0;
  PoolConfig other;
  other.name = "q";
  other.endpoints.push_back(*ParseEndpointUrl("http://h:1"));  // vllm, no accelerator
  c.pools.push_back(other);
  EXPECT_NE(ValidateConfig(c).message().find("different engines"), std::string::npos);
}

TEST(ConfigTest, SessionHeader) {
  auto r = ParseConfig(
      "pools:\n  - name: p\n    scheduler:\n"
      "      scorers: [{name: session-affinity, weight: 1}, {name: capacity}]\n"
      "      session_header: X-Session-Id\n"
      "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
      "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->pools[0].scheduler.session_header, "X-Session-Id");
  EXPECT_EQ(r->pools[0].scheduler.scorers[1].name, "capacity");
  std::string json = RenderConfigJson(*r);
  EXPECT_NE(json.find("\"session_header\":\"X-Session-Id\""), std::string::npos) << json;
  // Empty: off, and allowed without the scorer.
  r = ParseConfig(
      "pools:\n  - name: p\n    scheduler: {preset: gie-default, session_header: \"\"}\n"
      "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
      "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->pools[0].scheduler.session_header, "");
}

TEST(ConfigTest, FlowControlAndPriorities) {
  auto r = ParseConfig(
      "pools:\n  - name: p\n    flow_control:\n      queue_threshold: 3\n"
      "      kv_threshold: 0.7\n      max_in_flight: 16\n      max_queue: 50\n"
      "      queue_ttl: 2s\n      fairness_key: header:x-tenant-id\n"
      "      priority_header: x-prio\n      max_header_priority: -1\n"
      "    endpoints: [http://h:1]\n  - name: q\n    endpoints: [http://h:2]\n"
      "models:\n  - {name: m, pool: p, priority: 10}\n  - {name: batch, pool: p, priority: -5}\n"
      "  - {name: n, pool: q}\n",
      "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const FlowControlConfig& f = r->pools[0].flow_control;
  EXPECT_TRUE(f.enabled);
  EXPECT_EQ(f.queue_threshold, 3u);
  EXPECT_EQ(f.kv_threshold, 0.7);
  EXPECT_EQ(f.max_in_flight, 16u);
  EXPECT_EQ(f.max_queue, 50u);
  EXPECT_EQ(f.queue_ttl, 2s);
  EXPECT_EQ(f.fairness_key, "header:x-tenant-id");
  EXPECT_EQ(f.priority_header, "x-prio");
  EXPECT_EQ(f.max_header_priority, -1);
  EXPECT_FALSE(r->pools[1].flow_control.enabled);
  EXPECT_EQ(r->models[0].priority, 10);
  EXPECT_EQ(r->models[1].priority, -5);
  EXPECT_EQ(r->models[2].priority, 0);
  std::string json = RenderConfigJson(*r);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_NE(json.find("\"fairness_key\":\"header:x-tenant-id\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"priority\":-5"), std::string::npos) << json;
  auto off = ParseConfig(
      "pools:\n  - name: p\n    flow_control: {enabled: false, max_queue: 5}\n"
      "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
      "gw.yaml");
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_FALSE(off->pools[0].flow_control.enabled);
}

TEST(ConfigTest, AccessLogAndAutoscaling) {
  auto r = ParseConfig(
      "access_log:\n  fields: [request_id, route, ttft_ms]\n  sample_ratio: 0.1\n"
      "  always_log_errors: false\n"
      "pools:\n  - name: p\n    autoscaling:\n      target_utilisation: 0.6\n"
      "      endpoint_output_tokens_per_second: 2500\n      min_replicas: 2\n"
      "      max_replicas: 16\n      window: 1m\n"
      "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
      "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto bit = [](AccessLogField f) { return AccessLogFields{1} << static_cast<unsigned>(f); };
  EXPECT_EQ(r->access_log.fields, bit(AccessLogField::kRequestId) | bit(AccessLogField::kRoute) |
                                      bit(AccessLogField::kTtftMs));
  EXPECT_EQ(r->access_log.sample_ratio, 0.1);
  EXPECT_FALSE(r->access_log.always_log_errors);
  const AutoscalingConfig& a = r->pools[0].autoscaling;
  EXPECT_EQ(a.target_utilisation, 0.6);
  EXPECT_EQ(a.endpoint_output_tokens_per_second, 2500);
  EXPECT_EQ(a.min_replicas, 2u);
  EXPECT_EQ(a.max_replicas, 16u);
  EXPECT_EQ(a.window, std::chrono::minutes(1));
}

TEST(ConfigTest, ScaleFromZero) {
  auto off = ParseConfig(
      "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
      "gw.yaml");
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_FALSE(off->pools[0].scale_from_zero.enabled);
  auto on = ParseConfig(
      "pools:\n  - name: p\n    scale_from_zero: {queue_ttl: 90s, max_waiting: 7}\n"
      "    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
      "gw.yaml");
  ASSERT_TRUE(on.ok()) << on.status().message();
  EXPECT_TRUE(on->pools[0].scale_from_zero.enabled);
  EXPECT_EQ(on->pools[0].scale_from_zero.queue_ttl, std::chrono::seconds(90));
  EXPECT_EQ(on->pools[0].scale_from_zero.max_waiting, 7u);
  EXPECT_NE(
      RenderConfigJson(*on).find("\"scale_from_zero\":{\"queue_ttl\":\"90s\",\"max_waiting\":7}"),
      std::string::npos)
      << RenderConfigJson(*on);
  for (const char* bad : {"{queue_ttl: 0s}", "{max_waiting: 0}", "{ttl: 1s}", "[1]"}) {
    auto r = ParseConfig(std::string("pools:\n  - name: p\n    scale_from_zero: ") + bad +
                             "\n    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n",
                         "gw.yaml");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("scale_from_zero"), std::string::npos)
          << r.status().message();
    }
  }
}

TEST(ConfigTest, EndpointPickerSection) {
  const std::string pools =
      "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n";
  auto off = ParseConfig(pools, "gw.yaml");
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_FALSE(off->epp.enabled());
  EXPECT_EQ(RenderConfigJson(*off).find("\"epp\""), std::string::npos);
  auto on = ParseConfig(
      "listen: ''\nepp:\n  listen: 0.0.0.0:9002\n  tls: {cert_file: /c.pem, key_file: /k.pem}\n"
      "  max_streams: 50\n  message_timeout: 800ms\n  fallback_endpoints: 2\n" +
          pools,
      "gw.yaml");
  ASSERT_TRUE(on.ok()) << on.status().message();
  EXPECT_TRUE(on->epp.enabled());
  EXPECT_TRUE(on->listen.empty());
  EXPECT_EQ(on->epp.listen, "0.0.0.0:9002");
  EXPECT_EQ(on->epp.cert_file, "/c.pem");
  EXPECT_EQ(on->epp.key_file, "/k.pem");
  EXPECT_EQ(on->epp.max_streams, 50u);
  EXPECT_EQ(on->epp.message_timeout, std::chrono::milliseconds(800));
  EXPECT_EQ(on->epp.fallback_endpoints, 2u);
  const std::string json = RenderConfigJson(*on);
  EXPECT_NE(json.find("\"epp\":{\"listen\":\"0.0.0.0:9002\",\"tls\":{\"cert_file\":\"/c.pem\","
                      "\"key_file\":\"/k.pem\"},\"max_streams\":50,\"message_timeout\":\"800ms\","
                      "\"fallback_endpoints\":2}"),
            std::string::npos)
      << json;
  for (const char* bad : {"epp: {max_streams: 5}", "epp: {listen: nocolon}",
                          "epp: {listen: ':1', tls: {cert_file: /c}}", "epp: {listen: ':1', x: 1}",
                          "epp: {listen: ':1', fallback_endpoints: 9}", "listen: ''"}) {
    auto r = ParseConfig(std::string(bad) + "\n" + pools, "gw.yaml");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_TRUE(r.status().message().find("epp") != std::string::npos ||
                  r.status().message().find("listen") != std::string::npos)
          << r.status().message();
    }
  }
}

TEST(ConfigTest, EmptyFileIsAnError) {
  for (const char* text : {"", "\n", "# only a comment\n", "~\n"}) {
    auto r = ParseConfig(text, "empty.yaml");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().message(), "empty.yaml:1:1: (root): the file is empty");
  }
}

TEST(ConfigTest, YamlSyntaxErrorNamesFileAndLine) {
  auto r = ParseConfig("pools:\n  - name: p\n    endpoints: [http://h:1\nmodels: x\n", "bad.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(std::regex_search(r.status().message(), std::regex("^bad\\.yaml:[0-9]+:[0-9]+: ")))
      << r.status().message();
}

TEST(ConfigTest, MissingFile) {
  auto r = LoadConfigFile("/nonexistent/tokenway.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/tokenway.yaml"), std::string::npos);
}

TEST(ParseEndpointUrlTest, Forms) {
  auto ok = ParseEndpointUrl("http://localhost:8000");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->host, "localhost");
  EXPECT_EQ(ok->port, 8000);
  EXPECT_EQ(ok->url, "http://localhost:8000");
  auto v6 = ParseEndpointUrl("http://[fe80::1]:65535/");
  ASSERT_TRUE(v6.ok()) << v6.status().message();
  EXPECT_EQ(v6->host, "fe80::1");
  EXPECT_EQ(v6->port, 65535);
  for (const char* bad : {"localhost:8000", "https://h:1", "http://h", "http://:80", "http://h:0",
                          "http://h:65536", "http://h:80x", "http://h:80/v1", "http://h:"}) {
    auto r = ParseEndpointUrl(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
    }
  }
}

TEST(ValidateConfigTest, QuickFlagConfigs) {
  GatewayConfig c;
  EXPECT_FALSE(ValidateConfig(c).ok());
  PoolConfig pool;
  pool.name = "p";
  pool.endpoints.push_back(*ParseEndpointUrl("http://h:1"));
  c.pools.push_back(pool);
  EXPECT_FALSE(ValidateConfig(c).ok());  // no model
  c.models.push_back({"m", "p", ""});
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.models.push_back({"m2", "nope", ""});
  EXPECT_NE(ValidateConfig(c).message().find("unknown pool 'nope'"), std::string::npos);
  c.models.pop_back();
  c.upstream.max_attempts = 0;
  EXPECT_FALSE(ValidateConfig(c).ok());
}

TEST(RenderConfigJsonTest, IsValidJsonWithTheValues) {
  auto r = ParseConfig(kFullConfig, "full \"quoted\".yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string json = RenderConfigJson(*r);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(std::string_view(doc["source"]), "full \"quoted\".yaml");
  EXPECT_EQ(int64_t(doc["workers"]), 4);
  EXPECT_EQ(std::string_view(doc["limits"]["idle_timeout"]), "120s");
  EXPECT_EQ(std::string_view(doc["upstream"]["connect_timeout"]), "250ms");
  EXPECT_EQ(uint64_t(doc["limits"]["max_response_bytes"]), 1ull << 30);
  EXPECT_EQ(bool(doc["health"]["active"]["enabled"]), false);
  EXPECT_EQ(std::string_view(doc["health"]["active"]["path"]), "/healthz");
  EXPECT_EQ(int64_t(doc["health"]["passive"]["consecutive_failures"]), 7);
  EXPECT_EQ(bool(doc["streaming"]["inject_usage"]), false);
  simdjson::dom::array pools = doc["pools"];
  EXPECT_EQ(pools.size(), 2u);
  EXPECT_EQ(std::string_view(pools.at(0)["endpoints"].at(1)["url"]), "http://[::1]:8001/");
  EXPECT_EQ(std::string_view(pools.at(0)["endpoints"].at(1)["engine"]), "vllm");
  EXPECT_EQ(double(pools.at(0)["endpoints"].at(1)["capacity"]), 1.0);
  simdjson::dom::array models = doc["models"];
  ASSERT_EQ(models.size(), 3u);
  EXPECT_EQ(std::string_view(models.at(1)["parent"]), "llama-3-8b");
  EXPECT_EQ(std::string_view(models.at(2)["name"]), "mistral \"7b\"");
  EXPECT_TRUE(models.at(0)["parent"].error() == simdjson::NO_SUCH_FIELD);
}

TEST(RenderConfigJsonTest, DefaultsAreValidJson) {
  auto r = ParseConfig(kMinimal, "min.yaml");
  ASSERT_TRUE(r.ok());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(RenderConfigJson(*r)).get(doc), simdjson::SUCCESS);
}

TEST(KnownPoliciesTest, MatchConfigNames) {
  EXPECT_EQ(KnownPolicies(),
            (std::vector<std::string>{"round-robin", "least-request", "power-of-two"}));
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

TEST(ConfigTest, Tracing) {
  auto r = ParseConfig(std::string(kMinimal) + R"(tracing:
  enabled: true
  endpoint: http://otel-collector:4318/base/
  sample_ratio: 0.25
  service_name: gw-a
  provider_name: openai
  batch_size: 64
  batch_interval: 200ms
  queue_size: 100
  timeout: 2s
)",
                       "t.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const TracingConfig& t = r->tracing;
  EXPECT_TRUE(t.enabled);
  EXPECT_EQ(t.endpoint, "http://otel-collector:4318/base/");
  EXPECT_EQ(t.sample_ratio, 0.25);
  EXPECT_EQ(t.service_name, "gw-a");
  EXPECT_EQ(t.provider_name, "openai");
  EXPECT_EQ(t.batch_size, 64u);
  EXPECT_EQ(t.batch_interval, std::chrono::milliseconds(200));
  EXPECT_EQ(t.queue_size, 100u);
  EXPECT_EQ(t.timeout, std::chrono::seconds(2));
  std::string json = RenderConfigJson(*r);
  EXPECT_NE(
      json.find("\"tracing\":{\"enabled\":true,\"endpoint\":\"http://otel-collector:4318/base/\""),
      std::string::npos)
      << json;

  auto d = ParseConfig(kMinimal, "d.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->tracing.enabled);
  EXPECT_EQ(d->tracing.sample_ratio, 0.1);
}

TEST(ConfigTest, TracingErrorsNameTheField) {
  struct Case {
    const char* yaml;
    const char* field;
    const char* words;
  };
  for (const Case& c : {
           Case{"tracing:\n  sample_ratio: 1.5\n", "tracing.sample_ratio", "between 0 and 1"},
           Case{"tracing:\n  sample_ratio: -0.1\n", "tracing.sample_ratio", "between 0 and 1"},
           Case{"tracing:\n  endpoint: https://c:4318\n", "tracing.endpoint", "https"},
           Case{"tracing:\n  endpoint: c:4318\n", "tracing.endpoint", "http://"},
           Case{"tracing:\n  endpoint: http://c:0\n", "tracing.endpoint", "port"},
           Case{"tracing:\n  batch_size: 0\n", "tracing.batch_size", "between"},
           Case{"tracing:\n  queue_size: 0\n", "tracing.queue_size", "between"},
           Case{"tracing:\n  service_name: \"\"\n", "tracing.service_name", "empty"},
           Case{"tracing:\n  sampling: 1\n", "tracing.sampling", "unknown field"},
       }) {
    auto r = ParseConfig(std::string(kMinimal) + c.yaml, "gw.yaml");
    ASSERT_FALSE(r.ok()) << c.yaml;
    const std::string& msg = r.status().message();
    EXPECT_NE(msg.find(std::string(": ") + c.field + ": "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.words), std::string::npos) << msg;
  }
}

TEST(ConfigTest, KedaScalerListener) {
  auto off = ParseConfig(kMinimal, "gw.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->keda.enabled);
  EXPECT_NE(RenderConfigJson(*off).find("\"autoscaling\":{}"), std::string::npos);
  auto on = ParseConfig(
      std::string(kMinimal) + "autoscaling:\n  keda: {listen: \"0.0.0.0:9100\"}\n", "gw.yaml");
  ASSERT_TRUE(on.ok()) << on.status().message();
  EXPECT_TRUE(on->keda.enabled);
  EXPECT_EQ(on->keda.listen, "0.0.0.0:9100");
  EXPECT_NE(RenderConfigJson(*on).find("\"autoscaling\":{\"keda\":{\"listen\":\"0.0.0.0:9100\"}}"),
            std::string::npos)
      << RenderConfigJson(*on);
  for (const char* ok : {"127.0.0.1:0", "[::]:9100", "[::1]:65535"}) {
    auto r = ParseConfig(
        std::string(kMinimal) + "autoscaling:\n  keda:\n    listen: \"" + ok + "\"\n", "gw.yaml");
    EXPECT_TRUE(r.ok()) << ok << ": " << r.status().message();
  }
  struct Case {
    const char* yaml;
    const char* field;
    const char* words;
  };
  for (const Case& c : {
           Case{"autoscaling:\n  keda: {}\n", "autoscaling.keda.listen", "is required"},
           Case{"autoscaling:\n  keda: {listen: 9100}\n", "autoscaling.keda.listen",
                "must be ip:port"},
           Case{"autoscaling:\n  keda: {listen: \"gateway:9100\"}\n", "autoscaling.keda.listen",
                "'gateway' is not an IP address"},
           Case{"autoscaling:\n  keda: {listen: \"::1:9100\"}\n", "autoscaling.keda.listen",
                "brackets"},
           Case{"autoscaling:\n  keda: {listen: \"0.0.0.0:70000\"}\n", "autoscaling.keda.listen",
                "invalid port"},
           Case{"autoscaling:\n  keda: {listen: \"0.0.0.0:\"}\n", "autoscaling.keda.listen",
                "invalid port"},
           Case{"admin: 0.0.0.0:9100\nautoscaling:\n  keda: {listen: \"127.0.0.1:9100\"}\n",
                "autoscaling.keda.listen", "uses the port of `admin`"},
           Case{"listen: \"*:9100\"\nautoscaling:\n  keda: {listen: \"[::]:9100\"}\n",
                "autoscaling.keda.listen", "uses the port of `listen`"},
           Case{"autoscaling:\n  keda: {listen: \"0.0.0.0:9100\", tls: true}\n",
                "autoscaling.keda.tls", "unknown field"},
           Case{"autoscaling:\n  hpa: {}\n", "autoscaling.hpa", "unknown field"},
           Case{"autoscaling:\n  keda: [1]\n", "autoscaling.keda", "mapping"},
       }) {
    auto r = ParseConfig(std::string(kMinimal) + c.yaml, "gw.yaml");
    ASSERT_FALSE(r.ok()) << c.yaml;
    const std::string& msg = r.status().message();
    EXPECT_EQ(msg.rfind("gw.yaml:", 0), 0u) << msg;
    EXPECT_NE(msg.find(std::string(": ") + c.field + ": "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.words), std::string::npos) << msg;
  }
}

TEST(GovernanceInConfig, LoadsValidatesAndRedacts) {
  const std::string base =
      "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n";
  auto c = ParseConfig(base +
                           "governance:\n  tenants:\n    - name: a\n"
                           "      keys: [{id: k1, key: sk-very-secret-key}]\n"
                           "      models: [m]\n",
                       "g.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->governance.enabled);
  std::string json = RenderConfigJson(*c);
  EXPECT_EQ(json.find("sk-very-secret-key"), std::string::npos);
  EXPECT_EQ(json.find(c->governance.tenants[0].keys[0].sha256), std::string::npos);
  EXPECT_NE(json.find("\"governance\":{\"enabled\":true"), std::string::npos);

  auto unknown =
      ParseConfig(base + "governance:\n  tenants: [{name: a, models: [nope]}]\n", "g.yaml");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown model 'nope'"), std::string::npos);

  auto bad = ParseConfig(base + "governance:\n  backend: memcached\n", "g.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("g.yaml:7"), std::string::npos);
  EXPECT_NE(bad.status().message().find("governance.backend"), std::string::npos);

  auto off = ParseConfig(base, "g.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->governance.enabled);
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

const std::string kProcessorsBase =
    "pools:\n  - name: p\n    endpoints: [http://h:1]\nmodels:\n  - {name: m, pool: p}\n";

TEST(ConfigTest, ProcessorsParseRenderAndBuildTheChain) {
  auto c = ParseConfig(kProcessorsBase +
                           "processors:\n"
                           "  - type: pii\n"
                           "    match: {models: [m], tenants: [t]}\n"
                           "    window: 32\n"
                           "    detectors: {email: redact, payment_card: block}\n"
                           "  - name: policy\n"
                           "    type: patterns\n"
                           "    response: false\n"
                           "    patterns:\n"
                           "      - {name: codename, pattern: 'project\\s+falcon'}\n"
                           "  - {type: limits, deny_fields: [logprobs], max_prompt_tokens: 10}\n"
                           "  - {type: system_prompt, text: 'Be kind.', mode: enforce,\n"
                           "     client_system: refuse}\n"
                           "  - {type: images, data_urls: refuse}\n",
                       "p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->processors.size(), 5u);
  EXPECT_EQ(c->processors[3].system_prompt.client_system,
            SystemPromptConfig::ClientSystem::kRefuse);
  EXPECT_EQ(c->processors[4].images.action, ImageAction::kAllow);
  EXPECT_EQ(c->processors[4].images.data_urls, ImageAction::kRefuse);
  EXPECT_EQ(c->processors[0].name, "pii_0");
  EXPECT_EQ(c->processors[0].window, 32u);
  EXPECT_EQ(c->processors[1].patterns[0].action, ScanAction::kBlock);
  EXPECT_EQ(c->processors[2].limits.max_prompt_tokens, 10);
  auto chain = BuildPayloadChain(c->processors);
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(chain->request.size(), 5u);   // pii, policy, limits, system_prompt, images
  EXPECT_EQ(chain->response.size(), 1u);  // pii only
  EXPECT_TRUE(chain->request[0]->Applies("m", "t"));
  EXPECT_FALSE(chain->request[0]->Applies("m", "other"));
  const std::string json = RenderConfigJson(*c);
  EXPECT_NE(json.find(R"("processors":[{"name":"pii_0","type":"pii")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("detectors":{"email":"redact","payment_card":"block"})"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("text":"Be kind.","mode":"enforce","client_system":"refuse")"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("action":"allow","data_urls":"refuse")"), std::string::npos) << json;
}

TEST(ConfigTest, ProcessorErrorsNameTheFileLineAndField) {
  struct Case {
    std::string yaml;
    std::string expect;
  };
  const Case cases[] = {
      {"processors:\n  - type: patterns\n    patterns: [{pattern: '(a)\\1'}]\n",
       "is not valid RE2"},
      {"processors:\n  - type: patterns\n    patterns: [{pattern: 'foo(?=bar)'}]\n",
       "is not valid RE2"},
      {"processors:\n  - type: patterns\n    patterns: [{pattern: 'x*'}]\n", "empty string"},
      {"processors:\n  - type: pii\n    detectors: {passport: block}\n", "unknown detector"},
      {"processors:\n  - type: pii\n    detectors: {email: shred}\n",
       "processors[0].detectors.email: must be block, redact or flag"},
      {"processors:\n  - type: guardrail\n",
       "processors[0].type: must be patterns, pii, limits, system_prompt, images, webhook or "
       "ext_proc"},
      {"processors:\n  - type: system_prompt\n", "a system_prompt processor needs its text"},
      {"processors:\n  - {type: system_prompt, text: x, mode: append}\n",
       "processors[0].mode: must be prepend or enforce"},
      {"processors:\n  - {type: system_prompt, text: x, client_system: remove}\n",
       "applies to mode: enforce only"},
      {"processors:\n  - {type: images, action: blur}\n",
       "processors[0].action: must be allow, strip or refuse"},
      {"processors:\n  - {type: pii, data_urls: strip}\n", "applies to images processors only"},
      {"processors:\n  - type: limits\n", "needs max_prompt_tokens or deny_fields"},
      {"processors:\n  - type: limits\n    window: 8\n    deny_fields: [x]\n",
       "applies to patterns and pii processors only"},
      {"processors:\n  - type: pii\n    window: 2\n", "processors[0].window: must be between 8"},
      {"processors:\n  - {type: pii, match: {models: [nope]}}\n", "unknown model 'nope'"},
  };
  for (const Case& k : cases) {
    auto c = ParseConfig(kProcessorsBase + k.yaml, "p.yaml");
    ASSERT_FALSE(c.ok()) << k.yaml;
    EXPECT_NE(c.status().message().find(k.expect), std::string::npos)
        << k.yaml << " -> " << c.status().message();
    EXPECT_NE(c.status().message().find("p.yaml"), std::string::npos) << c.status().message();
  }
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

TEST(ConfigTest, RolloutsSectionLoadsAndNamesKnownModels) {
  const std::string base =
      "pools: [{name: p, endpoints: [http://127.0.0.1:9000]}]\n"
      "models: [{name: m, versions: [{name: a, pool: p, weight: 1}, {name: b, pool: p}]}]\n";
  auto r = ParseConfig(base +
                           "rollouts:\n"
                           "  state_file: /tmp/r.json\n"
                           "  models:\n"
                           "    - {model: m, candidate: b, stable: a, steps: [{weight: 100}]}\n",
                       "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->rollouts.rollouts.size(), 1u);
  EXPECT_EQ(r->rollouts.state_file, "/tmp/r.json");
  EXPECT_NE(RenderConfigJson(*r).find(R"("rollouts":{"state_file":"/tmp/r.json")"),
            std::string::npos);
  auto bad = ParseConfig(
      base + "rollouts: {models: [{model: x, candidate: b, stable: a, steps: [{weight: 100}]}]}\n",
      "gw.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("rollout names unknown model 'x'"), std::string::npos)
      << bad.status().message();
  auto version = ParseConfig(
      base + "rollouts: {models: [{model: m, candidate: c, stable: a, steps: [{weight: 100}]}]}\n",
      "gw.yaml");
  ASSERT_FALSE(version.ok());
  EXPECT_NE(version.status().message().find("names 'c', which is not one of its versions"),
            std::string::npos)
      << version.status().message();
  auto field = ParseConfig(base + "rollouts: {tick: soon}\n", "gw.yaml");
  ASSERT_FALSE(field.ok());
  EXPECT_NE(field.status().message().find("gw.yaml:3:"), std::string::npos)
      << field.status().message();
  EXPECT_NE(field.status().message().find("rollouts.tick"), std::string::npos);
}

constexpr const char* kVirtualModel = R"(pools:
  - name: p
    endpoints: [http://h:1]
models:
  - name: coder
    pool: p
  - name: chat
    pool: p
  - name: auto
    router:
      routes:
        - {name: code, target: coder, keywords: [python, function], tenants: [acme]}
        - {name: talk, target: chat, examples: ["hello there"]}
      default: talk
      threshold: 0.5
      embeddings: {url: "http://127.0.0.1:9/v1/embeddings", model: e5, timeout: 80ms}
governance:
  tenants:
    - name: acme
      keys: [{id: a, key: sk-acme-0123456789}]
)";

TEST(ConfigTest, VirtualModelWithRouter) {
  auto r = ParseConfig(kVirtualModel, "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelConfig& m = r->models[2];
  EXPECT_TRUE(m.router.enabled());
  EXPECT_TRUE(m.pool.empty());
  ASSERT_EQ(m.router.routes.size(), 2u);
  EXPECT_EQ(m.router.routes[0].tenants, std::vector<std::string>{"acme"});
  EXPECT_EQ(m.router.default_route, "talk");
  EXPECT_EQ(m.router.embeddings.model, "e5");
  EXPECT_EQ(m.router.embeddings.timeout, std::chrono::milliseconds(80));
  EXPECT_EQ(m.router.embeddings.cache_entries, 4096u);
  std::string by_pool = kVirtualModel;
  by_pool.replace(by_pool.find("url: \"http://127.0.0.1:9/v1/embeddings\""),
                  std::string("url: \"http://127.0.0.1:9/v1/embeddings\"").size(), "pool: p");
  auto p = ParseConfig(by_pool, "gw.yaml");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->models[2].router.embeddings.pool, "p");
  EXPECT_TRUE(p->models[2].router.embeddings.url.empty());
  EXPECT_TRUE(p->models[2].router.embeddings.enabled());
}

TEST(ConfigTest, VirtualModelErrors) {
  struct Case {
    std::string from, to, error;
  };
  const Case cases[] = {
      {"target: coder", "target: nope", "targets unknown model 'nope'"},
      {"target: coder", "target: auto", "a virtual model itself"},
      {"tenants: [acme]", "tenants: [globex]", "unknown tenant 'globex'"},
      {"  - name: auto\n", "  - name: auto\n    pool: p\n",
       "takes no pool, parent, priority or versions"},
      {"default: talk", "default: code2", "no route named 'code2'"},
      {"url: \"http://127.0.0.1:9/v1/embeddings\"", "url: \"https://x/v1/embeddings\"",
       "models[2].router.embeddings.url"},
      {"model: e5, ", "", "models[2].router.embeddings.model: is required"},
      {"url: \"http://127.0.0.1:9/v1/embeddings\"", "pool: gpu", "unknown pool 'gpu'"},
      {"url: \"http://127.0.0.1:9/v1/embeddings\"", "url: \"http://h:1/e\", pool: p", "either url"},
  };
  for (const Case& c : cases) {
    std::string yaml = kVirtualModel;
    const size_t at = yaml.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    yaml.replace(at, c.from.size(), c.to);
    auto r = ParseConfig(yaml, "gw.yaml");
    ASSERT_FALSE(r.ok()) << c.to;
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace tokenway
