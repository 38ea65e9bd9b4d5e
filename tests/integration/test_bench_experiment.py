"""tokenway-bench: a tiny experiment (2 gateway configurations x 2 rates in front of a fast
simulated fleet) produces a report and a JSON file that are internally consistent, and every
process it started is gone afterwards, also when interrupted with SIGINT. Which policy wins is
not asserted."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import twtest

EXPERIMENT = """
name: smoke
duration: 2s
warmup: 500ms
drain: 5s
rates: [8, 16]
stream: true
slo: ttft=500ms,tpot=50ms
time_limit: 50s
workload:
  kind: shared-prefix
  seed: 3
  groups: 4
  prompts_per_group: 8
  system_len: 256
  question_len: 32
  output_len: 24
fleet:
  count: 2
  profile: h100-8b
  speed: 20
gateway:
  workers: 1
configurations:
  - name: round-robin
    policy: round-robin
  - name: least-request
    policy: least-request
"""


def gateway_ports(out_dir):
    """Endpoint ports named in the gateway configurations the experiment wrote."""
    ports = set()
    for name in os.listdir(out_dir):
        if name.startswith("gateway-") and name.endswith(".yaml"):
            with open(os.path.join(out_dir, name)) as f:
                for line in f:
                    if "http://127.0.0.1:" in line:
                        ports.add(int(line.strip().rsplit(":", 1)[1]))
    return ports


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class BenchExperimentTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tw-bench-")
        self.file = os.path.join(self.dir, "smoke.yaml")
        with open(self.file, "w") as f:
            f.write(EXPERIMENT)
        self.out = os.path.join(self.dir, "out")

    def run_bench(self, timeout=90):
        return subprocess.run(
            [twtest.bin_path("tokenway-bench"), "experiment", self.file, "--out", self.out,
             "--bin-dir", twtest.BIN_DIR, "--quiet"],
            capture_output=True, text=True, timeout=timeout)

    def test_report_is_complete_and_consistent(self):
        proc = self.run_bench()
        self.assertEqual(proc.returncode, 0, proc.stderr + proc.stdout)
        with open(os.path.join(self.out, "results.json")) as f:
            results = json.load(f)
        meta = results["meta"]
        self.assertTrue(meta["git_commit"])
        self.assertTrue(meta["machine"])
        self.assertEqual([c["name"] for c in meta["configurations"]],
                         ["round-robin", "least-request"])
        self.assertFalse(meta["interrupted"])
        runs = results["runs"]
        self.assertEqual([(r["label"], r["offered_rate"]) for r in runs],
                         [("round-robin", 8), ("round-robin", 16),
                          ("least-request", 8), ("least-request", 16)])
        for r in runs:
            ctx = f'{r["label"]}@{r["offered_rate"]}'
            self.assertGreater(r["measured"], 0, ctx)
            self.assertEqual(r["succeeded"] + r["failed"], r["measured"], ctx)
            self.assertEqual(sum(r["errors"].values()), r["failed"], ctx)
            self.assertGreater(r["succeeded"], 0, ctx)
            for metric in ("ttft", "tpot", "itl", "e2e"):
                s = r[metric]
                self.assertGreater(s["count"], 0, (ctx, metric))
                self.assertLessEqual(s["min_ms"], s["p50_ms"], (ctx, metric))
                self.assertLessEqual(s["p50_ms"], s["p90_ms"], (ctx, metric))
                self.assertLessEqual(s["p90_ms"], s["p99_ms"], (ctx, metric))
                self.assertLessEqual(s["p99_ms"], s["max_ms"], (ctx, metric))
                self.assertLessEqual(s["min_ms"], s["mean_ms"], (ctx, metric))
                self.assertLessEqual(s["mean_ms"], s["max_ms"], (ctx, metric))
            self.assertEqual(r["ttft"]["count"], r["succeeded"], ctx)
            self.assertLessEqual(r["ttft"]["p50_ms"], r["e2e"]["p50_ms"], ctx)
            self.assertLessEqual(r["goodput"], r["request_rate"] + 1e-9, ctx)
            self.assertGreaterEqual(r["slo_attainment"], 0, ctx)
            self.assertLessEqual(r["slo_attainment"], 1, ctx)
            self.assertIsNotNone(r["prefix_hit_rate"], ctx)
            self.assertGreaterEqual(r["prefix_hit_rate"], 0, ctx)
            self.assertLessEqual(r["prefix_hit_rate"], 1, ctx)
            self.assertGreaterEqual(r["prefix_cache_queries"], r["prefix_cache_hits"], ctx)
            self.assertEqual(r["usage_mismatch"], 0, ctx)
            # Output tokens: every request asked for 24 with ignore_eos.
            self.assertAlmostEqual(r["output_token_rate"], 24 * r["request_rate"], delta=0.01 *
                                   r["output_token_rate"] + 0.1)
        with open(os.path.join(self.out, "report.md")) as f:
            report = f.read()
        for text in ("round-robin", "least-request", "TTFT p50", "goodput", "commit",
                     "prefix hit rate", "ttft_cdf.svg"):
            self.assertIn(text, report)
        for svg in ("ttft_p90_vs_rate.svg", "goodput_vs_rate.svg", "ttft_cdf.svg"):
            with open(os.path.join(self.out, svg)) as f:
                self.assertTrue(f.read().startswith("<svg"), svg)
        # Everything it started is gone.
        ports = gateway_ports(self.out)
        self.assertEqual(len(ports), 4)  # 2 configurations x 2 endpoints
        for p in ports:
            self.assertFalse(listening(p), p)
        self.assertEqual(processes_mentioning(self.out), [])

    def test_sigint_stops_everything_and_writes_partial_report(self):
        with open(self.file) as f:
            text = f.read().replace("duration: 2s", "duration: 60s").replace(
                "time_limit: 50s", "time_limit: 300s")
        with open(self.file, "w") as f:
            f.write(text)
        proc = subprocess.Popen(
            [twtest.bin_path("tokenway-bench"), "experiment", self.file, "--out", self.out,
             "--bin-dir", twtest.BIN_DIR, "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while time.time() < deadline and not os.path.exists(
                os.path.join(self.out, "gateway-round-robin.yaml")):
            time.sleep(0.1)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 130, err)
        with open(os.path.join(self.out, "results.json")) as f:
            results = json.load(f)
        self.assertTrue(results["meta"]["interrupted"])
        self.assertLessEqual(len(results["runs"]), 1)
        for p in gateway_ports(self.out):
            self.assertFalse(listening(p), p)
        self.assertEqual(processes_mentioning(self.out), [])


if __name__ == "__main__":
    twtest.main()
