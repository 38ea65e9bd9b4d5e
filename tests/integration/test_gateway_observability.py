"""Observability end to end: the GenAI semantic-convention metrics and tokenway's per-endpoint and
per-pool families agree with what the responses said; the whole exposition passes
`promtool check metrics` and a real Prometheus server scrapes it; the scaling signals follow the
load; the access log carries the configured fields and samples as configured."""
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from twtest import (MODEL, Gateway, Sim, chat_body, free_port, main, post_json, request,
                    set_faults, sse_events, wait_until)

def observed_yaml(urls, extra=""):
    eps = "\n".join(f"      - {u}" for u in urls)
    return f"""
pools:
  - name: p
    scheduler: {{preset: gie-default}}
    autoscaling: {{endpoint_output_tokens_per_second: 50, target_utilisation: 0.5, window: 60s}}
    endpoints:
{eps}
models:
  - name: {MODEL}
    pool: p
health:
  active: {{interval: 200ms, timeout: 500ms}}
  passive: {{consecutive_failures: 100}}
{extra}
"""


def parse_exposition(text):
    """{(name, frozenset(labels.items())): value} and the set of families with a TYPE line."""
    samples, families = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = {}
        for part in rest.rstrip("}").split('",'):
            if "=" in part:
                k, _, v = part.partition("=")
                labels[k] = v.strip('"')
        samples[(name, frozenset(labels.items()))] = float(value)
    return samples, families


def total(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items()
               if n == name and all((k, str(x)) in ls for k, x in labels.items()))


class GenAiAndPoolMetrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=2, args=["--model", MODEL, "--speed", "20"])
        cls.gw = Gateway(observed_yaml(cls.sim.urls))
        cls.prompt = cls.completion = cls.cached = 0
        cls.plain = cls.streams = 0
        for i in range(6):
            st, _, body, _ = post_json(cls.gw.base + "/v1/chat/completions",
                                       chat_body(MODEL, f"plain request {i} " * 8, max_tokens=12))
            assert st == 200, body
            cls.prompt += body["usage"]["prompt_tokens"]
            cls.completion += body["usage"]["completion_tokens"]
            cls.plain += 1
        for i in range(5):
            st, _, events, _ = sse_events(
                cls.gw.base + "/v1/chat/completions",
                chat_body(MODEL, f"stream request {i} " * 8, max_tokens=20, stream=True,
                          stream_options={"include_usage": True}))
            assert st == 200
            usage = [json.loads(e)["usage"] for e in events
                     if e != "[DONE]" and json.loads(e).get("usage")]
            cls.prompt += usage[-1]["prompt_tokens"]
            cls.completion += usage[-1]["completion_tokens"]
            cls.streams += 1
        # One request every endpoint fails: a 5xx operation.
        for url in cls.sim.urls:
            set_faults(url, error_rate=1.0)
        st, _, _, _ = post_json(cls.gw.base + "/v1/chat/completions", chat_body(MODEL, "fails"))
        assert st >= 500, st
        for url in cls.sim.urls:
            set_faults(url, reset=True)
        cls.failed_status = st

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def scrape(self):
        return parse_exposition(self.gw.metrics())

    def test_gen_ai_token_usage_matches_the_responses(self):
        s, fam = self.scrape()
        base = dict(gen_ai_operation_name="chat", gen_ai_provider_name="vllm",
                    gen_ai_request_model=MODEL, gen_ai_response_model=MODEL)
        n = self.plain + self.streams
        self.assertEqual(total(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="input",
                               **base), self.prompt)
        self.assertEqual(total(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="output",
                               **base), self.completion)
        self.assertEqual(total(s, "gen_ai_client_token_usage_count", gen_ai_token_type="input",
                               **base), n)
        # Bucket advice of the semantic conventions, cumulative up to +Inf.
        self.assertIn(("gen_ai_client_token_usage_bucket",
                       frozenset({**base, "gen_ai_token_type": "input", "le": "67108864"}.items())),
                      s)
        ok = [v for (name, ls), v in s.items()
              if name == "gen_ai_client_operation_duration_seconds_count"
              and not any(k == "error_type" for k, _ in ls)]
        self.assertEqual(sum(ok), n)
        self.assertEqual(total(s, "gen_ai_client_operation_duration_seconds_count",
                               error_type="5xx", **base), 1)
        # Time to first token and per output token: streams only.
        self.assertEqual(total(s, "gen_ai_server_time_to_first_token_seconds_count", **base),
                         self.streams)
        self.assertEqual(total(s, "gen_ai_server_time_per_output_token_seconds_count", **base),
                         self.streams)
        ttft = total(s, "gen_ai_server_time_to_first_token_seconds_sum", **base) / self.streams
        self.assertGreater(ttft, 0)
        self.assertLess(ttft, 5)
        for family in ("gen_ai_client_token_usage", "gen_ai_client_operation_duration_seconds",
                       "gen_ai_server_time_to_first_token_seconds",
                       "gen_ai_server_time_per_output_token_seconds"):
            self.assertIn(family, fam)

    def test_endpoint_and_pool_families_add_up(self):
        s, _ = self.scrape()
        self.assertEqual(total(s, "tokenway_endpoint_tokens_total", pool="p", type="input"),
                         self.prompt)
        self.assertEqual(total(s, "tokenway_endpoint_tokens_total", pool="p", type="output"),
                         self.completion)
        self.assertEqual(total(s, "tokenway_endpoint_responses_total", pool="p", **{"class": "2xx"}),
                         self.plain + self.streams)
        self.assertEqual(total(s, "tokenway_endpoint_responses_total", pool="p", **{"class": "5xx"}),
                         1)
        self.assertEqual(total(s, "tokenway_requests_total", model=MODEL, pool="p", code="200"),
                         self.plain + self.streams)
        self.assertEqual(total(s, "tokenway_pool_time_to_first_token_seconds_count", pool="p"),
                         self.streams)
        # Every routed request took one picker decision; the prefix index saw their blocks.
        self.assertEqual(total(s, "tokenway_picker_duration_seconds_count", pool="p"),
                         self.plain + self.streams + 1)
        self.assertGreater(total(s, "tokenway_prefix_affinity_blocks_total", pool="p"), 0)
        self.assertGreater(total(s, "tokenway_upstream_errors_total"), 0)

    def test_scaling_signals_follow_the_load(self):
        # The signals are recomputed every second over a 60 s window that holds all the traffic.
        self.assertTrue(wait_until(
            lambda: total(self.scrape()[0], "tokenway_pool_token_throughput", pool="p",
                          type="output") > 0, timeout=5))
        s, _ = self.scrape()
        self.assertEqual(total(s, "tokenway_pool_ready_endpoints", pool="p"), 2)
        out = total(s, "tokenway_pool_token_throughput", pool="p", type="output")
        sat = total(s, "tokenway_pool_saturation", pool="p")
        self.assertGreaterEqual(sat, 0)
        self.assertLessEqual(sat, 1)
        # 50 output tokens/s per endpoint at a 0.5 target: each endpoint carries 25 tokens/s.
        expected = max(1, math.ceil(max(out / 25, 2 * sat / 0.5) - 1e-9))
        self.assertEqual(total(s, "tokenway_pool_desired_replicas", pool="p"), expected)
        _, _, body = request("GET", self.gw.admin + "/admin/endpoints")
        scaling = json.loads(body)["pools"][0]["scaling"]
        self.assertEqual(scaling["ready_endpoints"], 2)
        self.assertGreater(scaling["output_tokens_per_second"], 0)

    def test_promtool_accepts_the_whole_exposition(self):
        if shutil.which("promtool") is None:
            self.skipTest("promtool not installed (Debian package 'prometheus')")
        proc = subprocess.run(["promtool", "check", "metrics"], input=self.gw.metrics().encode(),
                              capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode() + proc.stdout.decode())
        self.assertEqual(proc.stderr.decode().strip(), "")

    def test_a_real_prometheus_server_scrapes_the_gateway(self):
        if shutil.which("prometheus") is None:
            self.skipTest("prometheus not installed (Debian package 'prometheus')")
        with tempfile.TemporaryDirectory(prefix="tokenway-prom-") as tmp:
            config = os.path.join(tmp, "prometheus.yml")
            with open(config, "w") as f:
                f.write(f"""global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: tokenway
    static_configs: [{{targets: ["127.0.0.1:{self.gw.admin_port}"]}}]
""")
            port = free_port()
            proc = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                def query(q):
                    try:
                        st, _, body = request(
                            "GET", f"http://127.0.0.1:{port}/api/v1/query?query="
                            + urllib.parse.quote(q), timeout=5)
                    except OSError:
                        return []
                    return json.loads(body)["data"]["result"] if st == 200 else []

                def scraped():
                    up = query('up{job="tokenway"}')
                    return up and up[0]["value"][1] == "1" and query(
                        'gen_ai_client_token_usage_count{gen_ai_token_type="output"}')

                self.assertTrue(wait_until(scraped, timeout=60, interval=0.5),
                                "Prometheus never scraped the gateway")
                result = query('sum(gen_ai_client_token_usage_sum{gen_ai_token_type="output"})')
                self.assertEqual(float(result[0]["value"][1]), self.completion)
            finally:
                proc.terminate()
                proc.wait(20)


class AccessLogConfiguration(unittest.TestCase):
    def test_fields_and_sampling(self):
        with Sim(count=1, args=["--model", MODEL, "--speed", "20"]) as sim:
            extra = """access_log:
  fields: [request_id, status, tenant, ttft_ms, route, error]
  sample_ratio: 0
  always_log_errors: true
"""
            with Gateway(observed_yaml(sim.urls, extra)) as gw:
                for i in range(5):
                    st, _, _, _ = post_json(gw.base + "/v1/chat/completions",
                                            chat_body(MODEL, "sampled out " * 4),
                                            headers={"X-Request-Id": f"ok-{i}",
                                                     "Authorization": "Bearer sk-secret-value"})
                    self.assertEqual(st, 200)
                st, _, _, _ = post_json(gw.base + "/v1/chat/completions",
                                        chat_body("no-such-model"),
                                        headers={"X-Request-Id": "err-1"})
                self.assertEqual(st, 404)
                self.assertTrue(wait_until(lambda: len(gw.access_log()) >= 1, timeout=5))
                time.sleep(0.3)  # a sampled-out line would have been flushed by now
                log = gw.access_log()
                self.assertEqual([l["request_id"] for l in log], ["err-1"])
                self.assertEqual(set(log[0]), {"request_id", "status", "tenant", "ttft_ms",
                                                "route", "error"})
                self.assertEqual(log[0]["error"], "model_not_found")
                self.assertNotIn("sk-secret-value", "\n".join(gw.out.lines))

    def test_route_reason_names_the_picker_and_prefix_estimate(self):
        with Sim(count=2, args=["--model", MODEL, "--speed", "20"]) as sim:
            with Gateway(observed_yaml(sim.urls)) as gw:
                text = "a shared system prompt that is long enough to fill blocks " * 4
                for i in range(2):
                    st, _, _, _ = post_json(gw.base + "/v1/chat/completions",
                                            chat_body(MODEL, text),
                                            headers={"X-Request-Id": f"r-{i}"})
                    self.assertEqual(st, 200)
                self.assertTrue(wait_until(lambda: len(gw.access_log()) == 2, timeout=5))
                second = [l for l in gw.access_log() if l["request_id"] == "r-1"][0]
                route = second["route"]
                self.assertEqual(route["picker"], "scheduler")
                self.assertGreater(route["prefix_blocks"], 0)
                # The same prompt again: its blocks were inserted for the first request's endpoint.
                self.assertEqual(route["prefix_matched"], route["prefix_blocks"])
                self.assertFalse(route["queued"])
                self.assertIsNotNone(second["ttft_ms"])


if __name__ == "__main__":
    main()
