"""The fleet simulator agrees with real sockets: one short 8-endpoint shared-prefix point run
twice from the same experiment file — `tokenway-bench experiment` (a real tokenway-sim fleet and
a real gateway over loopback) and `tokenway-bench simulate` (virtual time) — must agree on TTFT
p50/p90, TPOT p90 and goodput within the tolerances below.

The fleet runs in slow motion (speed 0.5: every engine time × 2 on the wall clock) so that what
the simulator does not model — HTTP, SSE, the gateway's and the generator's CPU on a shared
2-core machine — stays small against the engine times it does model. Tolerances (relative, with
an absolute floor for TTFT because a loaded machine adds a few ms of scheduling delay to every
request): TTFT p50 and p90 ±25 % or ±15 ms, TPOT p90 ±20 %, goodput ±10 %. docs/benchmarks.md
records the full 8-endpoint experiments side by side."""
import json
import os
import subprocess
import tempfile
import unittest

import twtest

EXPERIMENT = """
name: fleetsim-validity
duration: 12s
warmup: 3s
drain: 20s
rates: [14]
stream: true
slo: ttft=400ms,tpot=40ms
time_limit: 80s
workload:
  kind: shared-prefix
  seed: 7
  groups: 16
  prompts_per_group: 8
  system_len: 1024
  question_len: 64
  output_len: 48
fleet:
  count: 8
  profile: h100-8b
  speed: 0.5
gateway:
  workers: 1
simulation:
  seed: 1
  network_delay: 150us
  gateway_overhead: 100us
configurations:
  - name: gie-default
    config: |
      pools:
        - name: fleet
          scheduler: {preset: gie-default}
          endpoints:
      {endpoints}
      models:
      {models}
      access_log:
        enabled: false
"""


def within(real, simulated, rel, floor=0.0):
    return abs(real - simulated) <= max(rel * abs(real), floor)


class FleetsimValidityTest(unittest.TestCase):
    def test_simulated_point_agrees_with_the_real_one(self):
        work = tempfile.mkdtemp(prefix="tw-fleetsim-")
        path = os.path.join(work, "validity.yaml")
        with open(path, "w") as f:
            f.write(EXPERIMENT)
        bench = twtest.bin_path("tokenway-bench")
        runs = {}
        for mode in ("experiment", "simulate"):
            out = os.path.join(work, mode)
            cmd = [bench, mode, path, "--out", out]
            if mode == "experiment":
                cmd += ["--bin-dir", twtest.BIN_DIR, "--quiet"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
            self.assertEqual(proc.returncode, 0, f"{mode}: {proc.stderr[-2000:]}")
            with open(os.path.join(out, "results.json")) as f:
                runs[mode] = json.load(f)["runs"][0]
        real, sim = runs["experiment"], runs["simulate"]
        report = {k: (real[k]["p50_ms"], real[k]["p90_ms"], sim[k]["p50_ms"], sim[k]["p90_ms"])
                  for k in ("ttft", "tpot")}
        report["goodput"] = (real["goodput"], sim["goodput"])
        report["hits"] = (real["prefix_hit_rate"], sim["prefix_hit_rate"])
        self.assertEqual(real["failed"], 0, report)
        self.assertEqual(sim["failed"], 0, report)
        # The same arrivals; a real run under load may lose one to the drain deadline.
        self.assertLessEqual(abs(real["measured"] - sim["measured"]), 2, report)
        self.assertTrue(within(real["ttft"]["p50_ms"], sim["ttft"]["p50_ms"], 0.25, 15), report)
        self.assertTrue(within(real["ttft"]["p90_ms"], sim["ttft"]["p90_ms"], 0.25, 15), report)
        self.assertTrue(within(real["tpot"]["p90_ms"], sim["tpot"]["p90_ms"], 0.20), report)
        self.assertTrue(within(real["goodput"], sim["goodput"], 0.10), report)
        print("fleetsim validity (real p50, real p90, sim p50, sim p90):", report)


if __name__ == "__main__":
    unittest.main()
