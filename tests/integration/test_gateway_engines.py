"""Engine metric dialects end to end: a gateway scrapes tokenway-sim fleets that speak
trtllm-serve's and Triton TensorRT-LLM's /metrics, and /admin/endpoints shows their signals
(waiting, running, KV utilisation, block size) following the load; one pool can mix engines
and accelerators per endpoint; the wrong dialect reads as invalid, never as an idle engine."""
import json
import threading
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, post_json, request, wait_until

TRITON_MODEL = "triton-llama"


def endpoints_json(gw):
    _, _, data = request("GET", gw.admin + "/admin/endpoints")
    return {e["url"]: e for p in json.loads(data)["pools"] for e in p["endpoints"]}


def config(pools):
    """pools: [(name, engine, urls)]; model MODEL is served by the first pool, TRITON_MODEL by
    the second if there is one."""
    text = """
engine_metrics:
  interval: 50ms
  timeout: 500ms
  stale_after: 1s
health:
  active:
    interval: 60s
  passive:
    consecutive_failures: 100
pools:
"""
    for name, engine, urls in pools:
        text += f"  - name: {name}\n    engine: {engine}\n    endpoints:\n"
        text += "".join(f"      - {u}\n" for u in urls)
    text += f"models:\n  - name: {MODEL}\n    pool: {pools[0][0]}\n"
    if len(pools) > 1:
        text += f"  - name: {TRITON_MODEL}\n    pool: {pools[1][0]}\n"
    return text


class GatewayEnginesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One sequence at a time on a real-time clock, so requests visibly queue in the engine.
        slow = ["--speed", "1", "--max-num-seqs", "1"]
        cls.trt = Sim(count=2, args=[*slow, "--dialect", "trtllm-serve"])
        cls.triton = Sim(count=1, args=[*slow, "--dialect", "triton-tensorrt-llm",
                                        "--model", TRITON_MODEL])

    @classmethod
    def tearDownClass(cls):
        cls.trt.stop()
        cls.triton.stop()

    def gateway(self, yaml):
        gw = Gateway(yaml)
        self.addCleanup(gw.stop)
        return gw

    def hold(self, gw, model, n, max_tokens=250):
        """Starts n concurrent requests (~1.8 s of engine time each); returns the threads."""
        def one(i):
            st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                      chat_body(model, f"hold {i}", max_tokens=max_tokens))
            assert st == 200, raw
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        self.addCleanup(lambda: [t.join() for t in threads])
        return threads

    def test_trtllm_serve_and_triton_signals_follow_the_load(self):
        gw = self.gateway(config([("trt", "trtllm-serve", self.trt.urls),
                                  ("tri", "triton-tensorrt-llm", self.triton.urls)]))
        urls = self.trt.urls + self.triton.urls
        self.assertTrue(wait_until(
            lambda: all(endpoints_json(gw)[u]["engine"]["valid"] for u in urls), timeout=5))
        for u, e in endpoints_json(gw).items():
            self.assertEqual(e["engine"]["block_size"], 16, u)
            self.assertEqual(e["engine"]["scrape_failures_total"], 0, u)
            self.assertEqual((e["engine"]["waiting"], e["engine"]["running"]), (0, 0), u)
        self.assertEqual(gw.metric("tokenway_engine_signals_valid"), 3)

        # Triton, one engine: one request scheduled, one waiting (request_type="scheduled" and
        # "waiting"), and KV blocks in use (kv_cache_block_type="fraction").
        threads = self.hold(gw, TRITON_MODEL, 2)
        tri = self.triton.urls[0]

        def triton_busy():
            e = endpoints_json(gw)[tri]["engine"]
            return e["valid"] and (e["waiting"], e["running"]) == (1, 1) and e["kv_utilisation"] > 0
        self.assertTrue(wait_until(triton_busy, timeout=5), endpoints_json(gw)[tri])
        for t in threads:
            t.join()
        self.assertTrue(wait_until(
            lambda: (endpoints_json(gw)[tri]["engine"]["waiting"],
                     endpoints_json(gw)[tri]["engine"]["running"]) == (0, 0), timeout=5))

        # trtllm-serve, two engines: three requests leave one queued somewhere.
        threads = self.hold(gw, MODEL, 3)

        def trt_busy():
            es = [endpoints_json(gw)[u]["engine"] for u in self.trt.urls]
            return (all(e["valid"] for e in es) and sum(e["running"] for e in es) == 2 and
                    sum(e["waiting"] for e in es) == 1 and
                    all(e["kv_utilisation"] > 0 for e in es))
        self.assertTrue(wait_until(trt_busy, timeout=5),
                        [endpoints_json(gw)[u] for u in self.trt.urls])
        self.assertEqual(gw.metric("tokenway_engine_running", pool="trt"), 2)
        for t in threads:
            t.join()
        self.assertEqual(gw.metric("tokenway_engine_scrape_failures_total"), 0)

    def test_one_pool_mixes_engines_and_accelerators_per_endpoint(self):
        tri = self.triton.urls[0]
        gw = self.gateway(f"""
engine_metrics:
  interval: 50ms
  stale_after: 1s
health:
  active:
    interval: 60s
pools:
  - name: mixed
    engine: trtllm-serve
    accelerators: {{H100-80GB: 1.0, A100-40GB: 0.45}}
    endpoints:
      - {self.trt.urls[0]}
      - {{url: {self.trt.urls[1]}, accelerator: A100-40GB}}
      - url: {tri}
        engine: triton-tensorrt-llm
        accelerator: H100-80GB
        capacity: 2
models:
  - name: {MODEL}
    pool: mixed
""")
        urls = self.trt.urls + [tri]
        self.assertTrue(wait_until(
            lambda: all(endpoints_json(gw)[u]["engine"]["valid"] for u in urls), timeout=5),
            endpoints_json(gw))
        eps = endpoints_json(gw)
        self.assertEqual([eps[u]["engine"]["kind"] for u in urls],
                         ["trtllm-serve", "trtllm-serve", "triton-tensorrt-llm"])
        self.assertEqual([eps[u]["accelerator"] for u in urls], [None, "A100-40GB", "H100-80GB"])
        self.assertEqual([eps[u]["capacity"] for u in urls], [1.0, 0.45, 2.0])
        for u in urls:
            self.assertEqual(eps[u]["engine"]["block_size"], 16, u)
            self.assertEqual(eps[u]["engine"]["scrape_failures_total"], 0, u)
        _, _, data = request("GET", gw.admin + "/admin/config")
        cfg_eps = json.loads(data)["pools"][0]["endpoints"]
        self.assertEqual(cfg_eps[2], {"url": tri, "engine": "triton-tensorrt-llm",
                                      "accelerator": "H100-80GB", "capacity": 2})

    def test_wrong_dialect_is_invalid_not_idle(self):
        gw = self.gateway(config([("p", "vllm", self.trt.urls)]))
        self.assertTrue(wait_until(
            lambda: all(gw.metric("tokenway_engine_scrape_failures_total", endpoint=u) >= 3
                        for u in self.trt.urls), timeout=5))
        for u in self.trt.urls:
            self.assertFalse(endpoints_json(gw)[u]["engine"]["valid"])
        self.assertEqual(gw.metric("tokenway_engine_signals_valid"), 0)


if __name__ == "__main__":
    twtest.main()
