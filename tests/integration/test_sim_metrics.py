"""GET /metrics: vLLM names, types and buckets that promtool accepts; the SGLang dialect."""
import shutil
import subprocess
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
}
SGLANG_NAMES = {
    "sglang:num_queue_reqs": "gauge",
    "sglang:num_running_reqs": "gauge",
    "sglang:token_usage": "gauge",
    "sglang:cache_config_info": "gauge",
}
# vLLM's own names contain ':', which promtool's linter flags; nothing else may be reported.
ALLOWED_LINT = "metric names should not contain ':'"


def types_of(text):
    return {line.split()[2]: line.split()[3] for line in text.splitlines()
            if line.startswith("# TYPE ")}


def promtool_problems(text):
    proc = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    output = (proc.stdout + proc.stderr).decode()
    lines = [l for l in output.splitlines() if l.strip()]
    return proc.returncode, [l for l in lines if not l.endswith(ALLOWED_LINT)]


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


if __name__ == "__main__":
    twtest.main()
