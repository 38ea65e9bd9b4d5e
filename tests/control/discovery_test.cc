// Unit tests of the Kubernetes discovery pieces without a server: the watch-stream splitter, the
// event/list decoder, pod → endpoint extraction, kubeconfig base64 and the discovery config.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control/config.h"
#include "control/config_render.h"
#include "control/discovery.h"
#include "control/kube_client.h"
#include "control/kube_objects.h"

namespace tokenway {
namespace {

using Piece = WatchStreamSplitter::Piece;

std::vector<std::pair<Piece, std::string>> Split(const std::vector<std::string>& chunks,
                                                 size_t max = 1 << 20) {
  WatchStreamSplitter s(max);
  std::vector<std::pair<Piece, std::string>> out;
  for (const auto& c : chunks) {
    s.Feed(c, [&](Piece p, std::string_view v) { out.emplace_back(p, std::string(v)); });
  }
  return out;
}

TEST(WatchStreamSplitter, EventsAcrossChunkBoundaries) {
  auto out =
      Split({"{\"type\":\"ADD", "ED\",\"object\":{\"a\":\"}\"}}\n{\"type\":", "\"DELETED\"}\n"});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, Piece::kValue);
  EXPECT_EQ(out[0].second, "{\"type\":\"ADDED\",\"object\":{\"a\":\"}\"}}");
  EXPECT_EQ(out[1].second, "{\"type\":\"DELETED\"}");
}

TEST(WatchStreamSplitter, ConcatenatedValuesOnOneLine) {
  auto out = Split({"{\"a\":1}{\"b\":\"\\\"{\"} [1,2]\n"});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].second, "{\"b\":\"\\\"{\"}");
  EXPECT_EQ(out[2].second, "[1,2]");
}

TEST(WatchStreamSplitter, JunkAndBrokenValuesAreMalformedAndTheStreamRecovers) {
  auto out = Split({"not json\n{\"a\":{\n{\"s\":\"line\nbreak\"}\n{\"ok\":true}\n"});
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].first, Piece::kMalformed);  // not json
  EXPECT_EQ(out[1].first, Piece::kMalformed);  // {"a":{ cut by the line break
  EXPECT_EQ(out[2].first, Piece::kMalformed);  // a raw line break inside a string
  EXPECT_EQ(out[3].first, Piece::kMalformed);  // break"} is junk up to its line end
  EXPECT_EQ(out[4].first, Piece::kValue);
  EXPECT_EQ(out[4].second, "{\"ok\":true}");
}

TEST(WatchStreamSplitter, OversizedValueIsSkippedWithoutKeepingItsBytes) {
  std::string big = "{\"x\":\"" + std::string(5000, 'y') + "\"}\n{\"small\":1}\n";
  WatchStreamSplitter s(1024);
  std::vector<Piece> pieces;
  size_t most_pending = 0;
  for (char c : big) {
    s.Feed(std::string_view(&c, 1), [&](Piece p, std::string_view) { pieces.push_back(p); });
    most_pending = std::max(most_pending, s.pending());
  }
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0], Piece::kOversized);
  EXPECT_EQ(pieces[1], Piece::kValue);
  EXPECT_LE(most_pending, 1024u);
}

constexpr char kPod[] = R"({"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1",
 "metadata":{"name":"vllm-0","namespace":"llm","resourceVersion":"42",
   "annotations":{"tokenway.io/engine":"sglang","tokenway.io/accelerator":"H100",
                  "tokenway.io/capacity":"1.5"}},
 "spec":{"nodeName":"node-a"},
 "status":{"podIP":"10.0.0.7","conditions":[{"type":"Initialized","status":"True"},
   {"type":"Ready","status":"True"}]}}})";

TEST(KubeJsonDecoder, PodEvent) {
  KubeJsonDecoder d;
  WatchEvent ev;
  std::string error;
  ASSERT_TRUE(d.ParseEvent(kPod, KubeKind::kPod, ev, error)) << error;
  EXPECT_EQ(ev.type, WatchEventType::kModified);
  EXPECT_EQ(ev.resource_version, "42");
  EXPECT_EQ(ev.key, "llm/vllm-0");
  const auto& pod = std::get<KubePod>(ev.object);
  EXPECT_TRUE(pod.ready);
  EXPECT_FALSE(pod.deleting);
  EXPECT_EQ(pod.pod_ip, "10.0.0.7");
  EXPECT_EQ(pod.node_name, "node-a");
  EXPECT_EQ(pod.engine, "sglang");
  EXPECT_EQ(pod.accelerator, "H100");
  EXPECT_EQ(pod.capacity, "1.5");
}

TEST(KubeJsonDecoder, BookmarkErrorAndBadEvents) {
  KubeJsonDecoder d;
  WatchEvent ev;
  std::string error;
  ASSERT_TRUE(d.ParseEvent(
      R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"99"}}})",
      KubeKind::kPod, ev, error));
  EXPECT_EQ(ev.type, WatchEventType::kBookmark);
  EXPECT_EQ(ev.resource_version, "99");
  ASSERT_TRUE(d.ParseEvent(
      R"j({"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 1 (3473)","reason":"Expired","code":410}})j",
      KubeKind::kPod, ev, error));
  EXPECT_EQ(ev.type, WatchEventType::kError);
  EXPECT_EQ(ev.status.code, 410);
  EXPECT_EQ(ev.status.reason, "Expired");
  for (const char* bad :
       {"", "{", "[]", R"({"type":"ADDED"})", R"({"type":"ADDED","object":[]})",
        R"({"type":"ADDED","object":{"metadata":{"name":"x"}}})",
        R"({"type":"WHAT","object":{"metadata":{"name":"x","resourceVersion":"1"}}})",
        R"({"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}}})"}) {
    error.clear();
    EXPECT_FALSE(d.ParseEvent(bad, KubeKind::kPod, ev, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(KubeJsonDecoder, InferencePoolAndDeletingUnreadyPods) {
  KubeJsonDecoder d;
  KubeListPage page;
  std::string error;
  ASSERT_TRUE(d.ParseList(
      R"({"kind":"InferencePoolList","metadata":{"resourceVersion":"7","continue":"c1"},"items":[
        {"metadata":{"name":"p","namespace":"llm"},"spec":{"selector":{"matchLabels":{"app":"v"}},
         "targetPorts":[{"number":8000},{"number":8001}]}},
        {"metadata":{"name":"bad","namespace":"llm"},"spec":{"targetPorts":[]}}]})",
      KubeKind::kInferencePool, page, error));
  EXPECT_FALSE(error.empty());  // the bad item is reported, the good one kept
  EXPECT_EQ(page.resource_version, "7");
  EXPECT_EQ(page.continue_token, "c1");
  ASSERT_EQ(page.items.size(), 1u);
  const auto& pool = std::get<KubeInferencePool>(page.items[0].second);
  EXPECT_EQ(pool.match_labels.at("app"), "v");
  EXPECT_EQ(pool.target_ports, (std::vector<uint16_t>{8000, 8001}));

  KubeListPage pods;
  error.clear();
  ASSERT_TRUE(d.ParseList(
      R"({"metadata":{"resourceVersion":"8"},"items":[
        {"metadata":{"name":"a","namespace":"n","deletionTimestamp":"2026-01-01T00:00:00Z"},
         "status":{"podIP":"10.0.0.1","conditions":[{"type":"Ready","status":"True"}]}},
        {"metadata":{"name":"b","namespace":"n"},
         "status":{"podIP":"10.0.0.2","conditions":[{"type":"Ready","status":"False"}]}},
        {"metadata":{"name":"c","namespace":"n"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}]})",
      KubeKind::kPod, pods, error))
      << error;
  ASSERT_EQ(pods.items.size(), 3u);
  PoolConfig pc;
  for (const auto& [key, obj] : pods.items) {
    EXPECT_TRUE(PodEndpoints(std::get<KubePod>(obj), {8000}, pc, nullptr).empty()) << key;
  }
  KubeStatus st;
  EXPECT_TRUE(
      d.ParseStatus(R"({"kind":"Status","code":403,"reason":"Forbidden","message":"no"})", st));
  EXPECT_EQ(st.code, 403);
  EXPECT_FALSE(d.ParseStatus("<html>", st));
}

TEST(PodEndpoints, OneEndpointPerPortWithAnnotations) {
  PoolConfig pc;
  pc.accelerators["H100"] = 2.0;
  KubePod pod;
  pod.name = "p";
  pod.ready = true;
  pod.pod_ip = "10.1.2.3";
  pod.accelerator = "H100";
  std::string bad;
  auto eps = PodEndpoints(pod, {8000, 8001}, pc, &bad);
  ASSERT_EQ(eps.size(), 2u);
  EXPECT_EQ(eps[0].url, "http://10.1.2.3:8000");
  EXPECT_EQ(eps[1].url, "http://10.1.2.3:8001");
  EXPECT_EQ(EffectiveCapacity(pc, eps[0]), 2.0);
  EXPECT_TRUE(bad.empty());

  pod.pod_ip = "fd00::5";
  pod.engine = "no-such-engine";
  pod.capacity = "-1";
  eps = PodEndpoints(pod, {8000}, pc, &bad);
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].url, "http://[fd00::5]:8000");
  EXPECT_EQ(eps[0].host, "fd00::5");
  EXPECT_TRUE(eps[0].engine.empty());  // the pool's engine applies
  EXPECT_EQ(eps[0].capacity, 0);       // unset: from the accelerator
  EXPECT_NE(bad.find("tokenway.io/capacity"), std::string::npos);
  auto parsed = ParseEndpointUrl(eps[0].url);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->host, "fd00::5");
}

TEST(DecodeBase64, KubeconfigData) {
  std::string out;
  EXPECT_TRUE(DecodeBase64("aGVsbG8gd29ybGQ=", out));
  EXPECT_EQ(out, "hello world");
  EXPECT_TRUE(DecodeBase64("aGk\n", out));
  EXPECT_EQ(out, "hi");
  EXPECT_FALSE(DecodeBase64("a$b", out));
  EXPECT_FALSE(DecodeBase64("aGk=aGk=", out));
}

TEST(DiscoveryConfig, ParsesBothFormsAndRejectsMixes) {
  auto c = ParseConfig(R"(
pools:
  - name: a
    discovery: {inference_pool: {namespace: llm, name: vllm}}
  - name: b
    discovery: {namespace: llm, selector: {app.kubernetes.io/name: sim}, ports: [8000, 8001]}
models: [{name: m, pool: a}]
kubernetes: {service_account_dir: /tmp/sa, watch_idle_timeout: 30s, coalesce: 50ms}
)",
                       "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->pools[0].discovery.inference_pool, "vllm");
  EXPECT_EQ(c->pools[0].discovery.namespace_name, "llm");
  EXPECT_EQ(c->pools[1].discovery.selector.at("app.kubernetes.io/name"), "sim");
  EXPECT_EQ(c->pools[1].discovery.ports, (std::vector<uint16_t>{8000, 8001}));
  EXPECT_EQ(c->kubernetes.service_account_dir, "/tmp/sa");
  EXPECT_EQ(c->kubernetes.coalesce, std::chrono::milliseconds(50));
  EXPECT_NE(RenderConfigJson(*c).find("\"inference_pool\":\"vllm\""), std::string::npos);

  for (const char* bad : {
           "pools: [{name: a, endpoints: [http://x:1], discovery: {selector: {a: b}, port: 1}}]",
           "pools: [{name: a, discovery: {selector: {a: b}}}]",
           "pools: [{name: a, discovery: {port: 80}}]",
           "pools: [{name: a, discovery: {inference_pool: {name: x}, port: 80}}]",
           "pools: [{name: a, discovery: {selector: {'bad key!': b}, port: 1}}]",
           "pools: [{name: a, discovery: {selector: {a: b}, ports: [1, 1]}}]",
           "pools: [{name: a, discovery: {selector: {a: b}, port: 70000}}]",
       }) {
    auto r = ParseConfig(std::string(bad) + "\nmodels: [{name: m, pool: a}]\n", "t.yaml");
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("pools[0]"), std::string::npos) << r.status().message();
  }
  auto r = ParseConfig(
      "pools: [{name: a, discovery: {selector: {a: b}, port: 1}}]\nmodels: [{name: m, pool: a}]\n"
      "kubernetes: {coalesce: 5s}\n",
      "t.yaml");
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

TEST(Dra, ClaimAndSliceGiveTheDeviceProducts) {
  KubeJsonDecoder d;
  std::string error;
  WatchEvent pod_ev, claim_ev, slice_ev;
  ASSERT_TRUE(d.ParseEvent(
      R"({"type":"ADDED","object":{"metadata":{"name":"p","namespace":"llm","resourceVersion":"1"},
        "spec":{"resourceClaims":[{"name":"shared","resourceClaimName":"direct"},
                                  {"name":"gpu","resourceClaimTemplateName":"t"}]},
        "status":{"podIP":"10.0.0.1","conditions":[{"type":"Ready","status":"True"}],
          "resourceClaimStatuses":[{"name":"gpu","resourceClaimName":"p-gpu-abc"}]}}})",
      KubeKind::kPod, pod_ev, error))
      << error;
  const auto& pod = std::get<KubePod>(pod_ev.object);
  EXPECT_EQ(pod.claims, (std::vector<std::string>{"direct", "p-gpu-abc"}));
  ASSERT_TRUE(d.ParseEvent(
      R"({"type":"ADDED","object":{"metadata":{"name":"p-gpu-abc","namespace":"llm","resourceVersion":"2"},
        "status":{"allocation":{"devices":{"results":[
          {"request":"gpu","driver":"gpu.nvidia.com","pool":"node-1","device":"gpu-0"},
          {"request":"gpu","driver":"gpu.nvidia.com","pool":"node-1","device":"gpu-1"}]}}}}})",
      KubeKind::kResourceClaim, claim_ev, error))
      << error;
  ASSERT_TRUE(d.ParseEvent(
      R"({"type":"ADDED","object":{"metadata":{"name":"node-1-x","resourceVersion":"3"},
        "spec":{"driver":"gpu.nvidia.com","pool":{"name":"node-1"},"devices":[
          {"name":"gpu-0","attributes":{"productName":{"string":"NVIDIA H100 80GB HBM3"}}},
          {"name":"gpu-1","attributes":{"gpu.nvidia.com/productName":{"string":"NVIDIA A100"}}},
          {"name":"gpu-2","basic":{"attributes":{"productName":{"string":"NVIDIA L4"}}}}]}}})",
      KubeKind::kResourceSlice, slice_ev, error))
      << error;
  EXPECT_EQ(slice_ev.key, "/node-1-x");
  std::map<std::string, KubeObject> claims{{claim_ev.key, claim_ev.object}};
  std::map<std::string, KubeObject> slices{{slice_ev.key, slice_ev.object}};
  EXPECT_EQ(PodDeviceProducts(pod, claims, slices),
            (std::vector<std::string>{"NVIDIA H100 80GB HBM3", "NVIDIA A100"}));
  EXPECT_TRUE(PodDeviceProducts(pod, {}, slices).empty());
  EXPECT_FALSE(d.ParseEvent(
      R"({"type":"ADDED","object":{"metadata":{"name":"c","namespace":"n","resourceVersion":"2"},
        "status":{"allocation":{"devices":{"results":[{"driver":"x"}]}}}}})",
      KubeKind::kResourceClaim, claim_ev, error));
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

TEST(KubeJsonDecoder, InferenceObjective) {
  KubeJsonDecoder d;
  WatchEvent ev;
  std::string error;
  ASSERT_TRUE(d.ParseEvent(
      R"({"type":"ADDED","object":{"metadata":{"name":"base","namespace":"llm","resourceVersion":"4",
        "annotations":{"tokenway.io/model":"meta-llama/Llama-3.1-8B-Instruct"}},
        "spec":{"priority":-2,"poolRef":{"group":"inference.networking.k8s.io","name":"p"}}}})",
      KubeKind::kInferenceObjective, ev, error))
      << error;
  const auto& o = std::get<KubeInferenceObjective>(ev.object);
  EXPECT_EQ(o.model, "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(o.pool, "p");
  EXPECT_EQ(o.priority, -2);
  ASSERT_TRUE(d.ParseEvent(
      R"({"type":"ADDED","object":{"metadata":{"name":"plain","namespace":"llm","resourceVersion":"5"},
        "spec":{"poolRef":{"name":"p"}}}})",
      KubeKind::kInferenceObjective, ev, error));
  EXPECT_EQ(std::get<KubeInferenceObjective>(ev.object).model, "plain");
  EXPECT_EQ(std::get<KubeInferenceObjective>(ev.object).priority, 0);
  EXPECT_FALSE(d.ParseEvent(
      R"({"type":"ADDED","object":{"metadata":{"name":"x","namespace":"llm","resourceVersion":"5"},
        "spec":{"priority":"high","poolRef":{"name":"p"}}}})",
      KubeKind::kInferenceObjective, ev, error));
}

}  // namespace
}  // namespace tokenway
