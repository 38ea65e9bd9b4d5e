"""GET /metrics: vLLM names, types and buckets that promtool accepts; the SGLang, trtllm-serve
and Triton TensorRT-LLM dialects, whose load gauges follow the engine."""
import shutil
import subprocess
import threading
import unittest

import twtest
from test_sim_common import MODEL, chat, metric_value, metrics

VLLM_NAMES = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prefix_cache_queries_total": "counter",
    "vllm:prefix_cache_hits_total": "counter",
    "vllm:prompt_tokens_total": "counter",
    "vllm:generation_tokens_total": "counter",
    "vllm:request_success_total": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:lora_requests_info": "gauge",
    "vllm:cache_config_info": "gauge",
    "tokenway_sim_lora_loads_total": "counter",
}
SGLANG_NAMES = {
    "sglang:num_queue_reqs": "gauge",
    "sglang:num_running_reqs": "gauge",
    "sglang:token_usage": "gauge",
    "sglang:cache_config_info": "gauge",
}
TRTLLM_SERVE_NAMES = {
    "trtllm_request_success_total": "counter",
    "trtllm_e2e_request_latency_seconds": "histogram",
    "trtllm_time_to_first_token_seconds": "histogram",
    "trtllm_time_per_output_token_seconds": "histogram",
    "trtllm_request_queue_time_seconds": "histogram",
    "trtllm_kv_cache_hit_rate": "gauge",
    "trtllm_kv_cache_utilization": "gauge",
    "trtllm_num_requests_completed_total": "counter",
    "trtllm_num_requests_running": "gauge",
    "trtllm_num_requests_waiting": "gauge",
    "trtllm_max_num_active_requests": "gauge",
    "trtllm_kv_cache_max_blocks": "gauge",
    "trtllm_kv_cache_free_blocks": "gauge",
    "trtllm_kv_cache_used_blocks": "gauge",
    "trtllm_kv_cache_tokens_per_block": "gauge",
}
TRITON_NAMES = {
    "nv_inference_request_success": "counter",
    "nv_inference_count": "counter",
    "nv_inference_pending_request_count": "gauge",
    "nv_trt_llm_request_metrics": "gauge",
    "nv_trt_llm_kv_cache_block_metrics": "gauge",
    "nv_trt_llm_general_metrics": "gauge",
}
# vLLM's own names contain ':', which promtool's linter flags; nothing else may be reported.
ALLOWED_LINT = "metric names should not contain ':'"
# Triton names its counters without _total and has gauges ending in _count; real Triton output
# draws exactly these findings.
TRITON_LINT = ('counter metrics should have "_total" suffix',
               'non-histogram and non-summary metrics should not have "_count" suffix')


def types_of(text):
    return {line.split()[2]: line.split()[3] for line in text.splitlines()
            if line.startswith("# TYPE ")}


def promtool_problems(text, allowed=(ALLOWED_LINT,)):
    proc = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    output = (proc.stdout + proc.stderr).decode()
    lines = [l for l in output.splitlines() if l.strip()]
    return proc.returncode, [l for l in lines if not l.endswith(tuple(allowed))]


class SimMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = twtest.Sim(count=1, args=["--speed", "100"])
        cls.url = cls.sim.urls[0]

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def test_names_types_and_counts_follow_traffic(self):
        for i in range(3):
            chat(self.url, "metrics please " * 10, 4)
        _, hdrs, _ = twtest.request("GET", self.url + "/metrics")
        self.assertTrue(hdrs["content-type"].startswith("text/plain; version=0.0.4"))
        text = metrics(self.url)
        types = types_of(text)
        for name, kind in VLLM_NAMES.items():
            self.assertEqual(types.get(name), kind, name)
        self.assertEqual(metric_value(text, "vllm:generation_tokens_total", model_name=MODEL), 12)
        self.assertEqual(metric_value(text, "vllm:request_success_total",
                                      finished_reason="length"), 3)
        self.assertEqual(metric_value(text, "vllm:time_to_first_token_seconds_count"), 3)
        self.assertEqual(metric_value(text, "vllm:inter_token_latency_seconds_count"), 9)
        self.assertEqual(metric_value(text, "vllm:num_requests_running"), 0)
        self.assertGreater(metric_value(text, "vllm:prompt_tokens_total"), 0)
        self.assertIn('le="2560.0"', text)
        self.assertIn('vllm:cache_config_info{block_size="16"', text)
        self.assertIn('num_gpu_blocks="26306"', text)
        # Engine-time latency: ~7.2 ms per output token on the h100-8b profile.
        itl_sum = metric_value(text, "vllm:inter_token_latency_seconds_sum")
        self.assertAlmostEqual(itl_sum / 9, 0.0072, delta=0.001)

    def test_promtool_accepts_the_exposition(self):
        if shutil.which("promtool") is None:
            self.skipTest("promtool not installed (Debian package 'prometheus')")
        chat(self.url, "x", 2)
        rc, problems = promtool_problems(metrics(self.url))
        self.assertEqual(problems, [])
        self.assertIn(rc, (0, 3))  # 3 = lint findings only (the ':' names above)
        # A broken exposition must fail, so this check can fail.
        rc, problems = promtool_problems("vllm_x{model_name=\"a\" 1\n")
        self.assertNotEqual(problems, [])


class SimSglangDialectTest(unittest.TestCase):
    def test_sglang_names(self):
        with twtest.Sim(count=1, args=["--speed", "100", "--dialect", "sglang"]) as sim:
            chat(sim.urls[0], "x", 2)
            text = metrics(sim.urls[0])
            types = types_of(text)
            for name, kind in SGLANG_NAMES.items():
                self.assertEqual(types.get(name), kind, name)
            self.assertNotIn("vllm:", text)
            self.assertEqual(metric_value(text, "sglang:generation_tokens_total"), 2)
            if shutil.which("promtool"):
                self.assertEqual(promtool_problems(text)[1], [])


class SimTensorrtLlmDialectsTest(unittest.TestCase):
    """trtllm-serve and Triton: names, types, and the load series the gateway reads (waiting,
    running, KV utilisation, block size) following a held-up engine."""

    def check_dialect(self, dialect, names, waiting, running, kv, block_size, lint):
        # One sequence at a time and a slow clock: the second request has to wait.
        with twtest.Sim(count=1, args=["--speed", "1", "--dialect", dialect,
                                       "--max-num-seqs", "1"]) as sim:
            url = sim.urls[0]
            chat(url, "x", 2)
            text = metrics(url)
            types = types_of(text)
            for name, kind in names.items():
                self.assertEqual(types.get(name), kind, name)
            self.assertNotIn("vllm:", text)
            self.assertNotIn("sglang:", text)
            self.assertEqual(block_size(text), 16)
            self.assertEqual((waiting(text), running(text), kv(text)), (0, 0, 0))
            if shutil.which("promtool"):
                self.assertEqual(promtool_problems(text, (ALLOWED_LINT, *lint))[1], [])
            # ~7.2 ms per output token: 250 tokens keep each request busy for about 2 s.
            threads = [threading.Thread(target=chat, args=(url, f"hold {i}", 250))
                       for i in range(2)]
            for t in threads:
                t.start()
            try:
                self.assertTrue(twtest.wait_until(
                    lambda: (waiting(metrics(url)), running(metrics(url))) == (1, 1), timeout=5))
                self.assertGreater(kv(metrics(url)), 0)
            finally:
                for t in threads:
                    t.join()
            return metrics(url)

    def test_trtllm_serve(self):
        def value(name):
            return lambda text: metric_value(text, name, model_name=MODEL, engine_type="trtllm")
        text = self.check_dialect(
            "trtllm-serve", TRTLLM_SERVE_NAMES, value("trtllm_num_requests_waiting"),
            value("trtllm_num_requests_running"), value("trtllm_kv_cache_utilization"),
            value("trtllm_kv_cache_tokens_per_block"), lint=())
        self.assertEqual(metric_value(text, "trtllm_num_requests_completed_total"), 3)
        self.assertEqual(metric_value(text, "trtllm_request_success_total",
                                      finished_reason="length"), 3)
        self.assertEqual(metric_value(text, "trtllm_time_to_first_token_seconds_count"), 3)

    def test_triton_tensorrt_llm(self):
        def requests(kind):
            return lambda text: metric_value(text, "nv_trt_llm_request_metrics",
                                             model="tensorrt_llm", request_type=kind)

        def blocks(kind):
            return lambda text: metric_value(text, "nv_trt_llm_kv_cache_block_metrics",
                                             model="tensorrt_llm", kv_cache_block_type=kind)
        text = self.check_dialect(
            "triton-tensorrt-llm", TRITON_NAMES, requests("waiting"), requests("scheduled"),
            blocks("fraction"), blocks("tokens_per"), lint=TRITON_LINT)
        self.assertEqual(metric_value(text, "nv_inference_request_success"), 3)
        self.assertEqual(blocks("max")(text), blocks("used")(text) + blocks("free")(text))
        self.assertEqual(requests("max")(text), 1)  # --max-num-seqs


class LoraLoadsTest(unittest.TestCase):
    def test_adapter_loads_are_counted(self):
        with twtest.Sim(1, ["--lora", "ad1", "--lora", "ad2", "--max-loras", "1"]) as sim:
            url = sim.urls[0]
            loads = []
            for model in ("ad1", "ad1", "ad2", "ad2", "ad1"):
                st, _, _, raw = twtest.post_json(url + "/v1/chat/completions",
                                                 twtest.chat_body(model, "hi", max_tokens=2))
                self.assertEqual(st, 200, raw)
                loads.append(metric_value(metrics(url), "tokenway_sim_lora_loads_total"))
            # One slot: a load for each switch of adapter, none while the adapter stays.
            self.assertEqual(loads, [1, 1, 2, 2, 3])


if __name__ == "__main__":
    twtest.main()
