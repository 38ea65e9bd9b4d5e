"""Progressive rollouts end to end: the real gateway splits a model alias between a stable
tokenway-sim fleet and a candidate fleet, the rollout controller analyses both versions' figures
and moves the candidate's weight step by step — or rolls it back when it fails.

Covers: a healthy candidate reaches 100 % through every step; a failing candidate is rolled back
within one analysis window and the stable version then answers every request; a reload and a
restart in the middle resume at the same step; manual pause, resume, promote and abort.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from twtest import Gateway, Sim, chat_body, main, post_json, request, sse_events, wait_until

STABLE_MODEL = "stable-llm"
CANDIDATE_MODEL = "candidate-llm"
ALIAS = "chat"


def rollout_yaml(stable_urls, candidate_urls, state_file, steps, analysis, tick="100ms"):
    stable = "\n".join(f"      - {u}" for u in stable_urls)
    candidate = "\n".join(f"      - {u}" for u in candidate_urls)
    return f"""
pools:
  - name: stable
    policy: least-request
    endpoints:
{stable}
  - name: canary
    policy: least-request
    endpoints:
{candidate}
models:
  - name: {ALIAS}
    response_model: version
    versions:
      - {{name: v1, model: {STABLE_MODEL}, pool: stable, weight: 100}}
      - {{name: v2, model: {CANDIDATE_MODEL}, pool: canary, weight: 0}}
upstream:
  max_attempts: 1
rollouts:
  state_file: "{state_file}"
  tick: {tick}
  models:
    - model: {ALIAS}
      candidate: v2
      stable: v1
      steps: {steps}
      analysis: {analysis}
"""


class Load:
    """Client threads sending streaming chat requests to the alias as fast as they are answered;
    records (time, status, version) of every request."""

    def __init__(self, gw, clients=6):
        self.gw = gw
        self.results = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            body = chat_body(ALIAS, f"client {i} request {n}", max_tokens=8, stream=True)
            try:
                st, hdrs, events, _ = sse_events(self.gw.base + "/v1/chat/completions", body,
                                                 timeout=10)
                failed = st != 200 or any('"error"' in e for e in events)
                version = version_of(hdrs, events[0]) if events else ""
            except OSError:
                failed, version, st = True, "", 0
            with self.lock:
                self.results.append((time.time(), 0 if failed else 200, version))

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(15)

    def snapshot(self):
        with self.lock:
            return list(self.results)


VERSION_OF = {STABLE_MODEL: "v1", CANDIDATE_MODEL: "v2"}


def version_of(hdrs, body_or_event):
    """The version that answered: x-tokenway-version when the gateway sends it, else the model
    the answer names (response_model: version leaves the upstream's name in it)."""
    if hdrs.get("x-tokenway-version"):
        return hdrs["x-tokenway-version"]
    try:
        doc = json.loads(body_or_event) if isinstance(body_or_event, (str, bytes)) else body_or_event
        return VERSION_OF.get(doc.get("model"), "")
    except (ValueError, AttributeError):
        return ""


def ask(gw, max_tokens=2):
    """One non-streaming request to the alias: (status, version)."""
    st, hdrs, _, data = post_json(gw.base + "/v1/chat/completions",
                                  chat_body(ALIAS, max_tokens=max_tokens))
    return st, version_of(hdrs, data)


def rollout(gw, model=ALIAS):
    st, _, body = request("GET", gw.admin + "/admin/rollouts")
    assert st == 200, (st, body)
    for r in json.loads(body)["rollouts"]:
        if r["model"] == model:
            return r
    return None


class RolloutTest(unittest.TestCase):
    def setUp(self):
        fd, self.state_file = tempfile.mkstemp(suffix=".json", prefix="tokenway-rollout-")
        os.close(fd)
        os.unlink(self.state_file)  # the gateway creates it

    def tearDown(self):
        for p in (self.state_file, self.state_file + ".tmp"):
            if os.path.exists(p):
                os.unlink(p)

    def test_healthy_candidate_reaches_100_through_every_step(self):
        steps = "[{weight: 20, bake: 2s}, {weight: 40, bake: 2s}, {weight: 70, bake: 2s}, {weight: 100}]"
        analysis = ("{window: 2s, min_samples: 10, max_error_rate_delta: 0.05, "
                    "max_ttft_p90_ratio: 3, ttft_p90_slack: 200ms}")
        with Sim(2, ["--model", STABLE_MODEL, "--speed", "20"]) as stable, \
                Sim(2, ["--model", CANDIDATE_MODEL, "--speed", "20"]) as candidate, \
                Gateway(rollout_yaml(stable.urls, candidate.urls, self.state_file, steps,
                                     analysis)) as gw:
            load = Load(gw)
            try:
                self.assertTrue(wait_until(lambda: rollout(gw)["state"] == "promoted", timeout=60),
                                rollout(gw))
            finally:
                load.stop()
            r = rollout(gw)
            weights = [h["weight"] for h in r["history"]]
            self.assertEqual(weights, [20, 40, 70, 100], r["history"])
            self.assertEqual(r["weights"], {"v2": 100, "v1": 0})
            results = load.snapshot()
            self.assertTrue(all(s == 200 for _, s, _ in results))
            # Both versions answered along the way; after promotion only the candidate does.
            self.assertTrue(any(v == "v1" for _, _, v in results))
            self.assertTrue(any(v == "v2" for _, _, v in results))
            self.assertEqual(ask(gw), (200, "v2"))
            self.assertEqual(gw.metric("tokenway_rollout_state", model=ALIAS, state="promoted"), 1)
            self.assertEqual(gw.metric("tokenway_rollout_weight", model=ALIAS, version="v2"), 100)
            self.assertEqual(gw.metric("tokenway_rollout_transitions_total", model=ALIAS,
                                       state="promoted"), 1)
            self.assertTrue(any("rollout chat: progressing -> promoted" in l for l in gw.err.lines))

    def test_failing_candidate_rolls_back_within_one_window(self):
        steps = "[{weight: 20, bake: 30s}, {weight: 100}]"
        window = 2.0
        analysis = f"{{window: {window}s, min_samples: 10, max_error_rate_delta: 0.05}}"
        with Sim(2, ["--model", STABLE_MODEL, "--speed", "20"]) as stable, \
                Sim(2, ["--model", CANDIDATE_MODEL, "--speed", "20",
                        "--fault-error-rate", "1"]) as candidate, \
                Gateway(rollout_yaml(stable.urls, candidate.urls, self.state_file, steps,
                                     analysis)) as gw:
            load = Load(gw)
            try:
                self.assertTrue(wait_until(lambda: rollout(gw)["state"] == "rolled_back",
                                           timeout=30), rollout(gw))
                rolled_back_at = rollout(gw)["history"][-1]["at_unix_ms"] / 1000.0
                time.sleep(2)  # requests in flight at the rollback finish
                after_from = time.time()
                time.sleep(3)
            finally:
                load.stop()
            r = rollout(gw)
            self.assertEqual(r["weights"], {"v2": 0, "v1": 100})
            self.assertIn("error rate", r["history"][-1]["reason"])
            results = load.snapshot()
            errors = [t for t, s, _ in results if s != 200]
            self.assertTrue(errors, "the faulty candidate should have failed some requests")
            first_bad = min(errors)
            # Rolled back within one analysis window (plus a tick and scheduling slack) of the
            # first request the candidate failed.
            self.assertLess(rolled_back_at - first_bad, window + 1.0,
                            (rolled_back_at, first_bad))
            # After the rollback the stable version keeps every request.
            after = [(s, v) for t, s, v in results if t >= after_from]
            self.assertGreater(len(after), 20)
            self.assertTrue(all(s == 200 and v == "v1" for s, v in after), after[:10])
            before = [s for t, s, _ in results if t <= rolled_back_at]
            print(f"\nrollback {rolled_back_at - first_bad:.2f} s after the first candidate "
                  f"error; clients saw {len(errors)} errors of {len(before)} requests before "
                  f"it ({100.0 * len(errors) / max(1, len(before)):.1f} %)")
            self.assertEqual(gw.metric("tokenway_rollout_state", model=ALIAS, state="rolled_back"), 1)
            self.assertTrue(any("rollout chat: progressing -> rolled_back" in l
                                for l in gw.err.lines))

    def test_reload_and_restart_resume_at_the_same_step(self):
        steps = "[{weight: 20, bake: 1s}, {weight: 50, bake: 1h}, {weight: 100}]"
        analysis = "{window: 1s, min_samples: 5, max_error_rate_delta: 0.05}"
        with Sim(1, ["--model", STABLE_MODEL, "--speed", "20"]) as stable, \
                Sim(1, ["--model", CANDIDATE_MODEL, "--speed", "20"]) as candidate:
            config = rollout_yaml(stable.urls, candidate.urls, self.state_file, steps, analysis)
            gw = Gateway(config)
            try:
                load = Load(gw, clients=4)
                try:
                    self.assertTrue(wait_until(lambda: rollout(gw)["step"] == 2, timeout=30),
                                    rollout(gw))
                finally:
                    load.stop()
                before = rollout(gw)
                # A reload with the same rollout definition keeps the step.
                with open(gw.config_path, "a") as f:
                    f.write("\n# touched\n")
                gw.proc.send_signal(signal.SIGHUP)
                self.assertTrue(wait_until(lambda: gw.metric("tokenway_config_reloads_total",
                                                             result="success") >= 1))
                after_reload = rollout(gw)
                self.assertEqual(after_reload["step"], 2)
                self.assertEqual(after_reload["state"], "progressing")
                self.assertEqual(after_reload["history"], before["history"])
            finally:
                gw.stop()
            with open(self.state_file) as f:
                saved = json.load(f)
            self.assertEqual(saved["rollouts"][0]["step"], 1)  # 0-based in the file
            # A restart reads the state file and resumes at the same step and weight.
            with Gateway(config) as gw2:
                r = rollout(gw2)
                self.assertEqual(r["step"], 2)
                self.assertEqual(r["state"], "progressing")
                self.assertEqual(r["weights"], {"v2": 50, "v1": 50})
                self.assertEqual(gw2.metric("tokenway_rollout_weight", model=ALIAS, version="v2"), 50)
                self.assertTrue(any("resumed from the state file" in l for l in gw2.err.lines))
                # Requests split 50/50 from the first one on.
                counts = {"v1": 0, "v2": 0}
                for i in range(200):
                    st, version = ask(gw2)
                    self.assertEqual(st, 200)
                    counts[version] += 1
                self.assertGreater(counts["v2"], 60, counts)
                self.assertGreater(counts["v1"], 60, counts)
            # A changed definition begins again at the first step.
            changed = config.replace("min_samples: 5", "min_samples: 6")
            with Gateway(changed) as gw3:
                r = rollout(gw3)
                self.assertEqual(r["step"], 1)
                self.assertEqual(r["weights"]["v2"], 20)
                self.assertIn("definition changed", r["history"][-1]["reason"])

    def test_manual_pause_resume_promote_abort(self):
        steps = "[{weight: 10, bake: 1h}, {weight: 100}]"
        analysis = "{window: 10s, min_samples: 50}"
        with Sim(1, ["--model", STABLE_MODEL, "--speed", "20"]) as stable, \
                Sim(1, ["--model", CANDIDATE_MODEL, "--speed", "20"]) as candidate, \
                Gateway(rollout_yaml(stable.urls, candidate.urls, self.state_file, steps,
                                     analysis)) as gw:
            def act(model, action):
                st, _, body = request("POST", f"{gw.admin}/admin/rollouts/{model}/{action}")
                return st, json.loads(body)

            self.assertEqual(act(ALIAS, "pause"), (200, {"model": ALIAS, "state": "paused"}))
            self.assertEqual(act(ALIAS, "pause")[0], 409)
            self.assertEqual(gw.metric("tokenway_rollout_state", model=ALIAS, state="paused"), 1)
            self.assertEqual(act(ALIAS, "resume")[1]["state"], "progressing")
            self.assertEqual(act(ALIAS, "abort")[1]["state"], "aborted")
            self.assertEqual(rollout(gw)["weights"], {"v2": 0, "v1": 100})
            self.assertEqual(act(ALIAS, "resume")[0], 409)
            self.assertEqual(act(ALIAS, "promote")[1]["state"], "promoted")
            self.assertEqual(rollout(gw)["weights"], {"v2": 100, "v1": 0})
            self.assertEqual(ask(gw), (200, "v2"))
            self.assertEqual(act("nope", "pause")[0], 404)
            self.assertEqual(act(ALIAS, "restart")[0], 404)
            st, hdrs, _ = request("GET", gw.admin + "/admin/rollouts/chat/pause")
            self.assertEqual((st, hdrs.get("allow")), (405, "POST"))
            reasons = [h["reason"] for h in rollout(gw)["history"]]
            self.assertEqual(reasons[1:], ["manual pause", "manual resume", "manual abort",
                                           "manual promote"])
            self.assertEqual(gw.metric("tokenway_rollout_transitions_total", model=ALIAS), 5)
            with open(self.state_file) as f:
                self.assertEqual(json.load(f)["rollouts"][0]["state"], "promoted")
            # The families are valid exposition text.
            if shutil.which("promtool"):
                check = subprocess.run(["promtool", "check", "metrics"], input=gw.metrics(),
                                       capture_output=True, text=True)
                self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


@unittest.skipIf(shutil.which("chromium") is None, "chromium is not installed; the status page "
                                                  "is not rendered")
class RolloutStatusPageTest(unittest.TestCase):
    def test_status_page_shows_the_rollout(self):
        from test_status_page import chromium, section
        steps = "[{weight: 10, bake: 1h}, {weight: 100}]"
        with Sim(1, ["--model", STABLE_MODEL]) as stable, \
                Sim(1, ["--model", CANDIDATE_MODEL]) as candidate, \
                Gateway(rollout_yaml(stable.urls, candidate.urls, "", steps,
                                     "{window: 10s}")) as gw:
            request("POST", gw.admin + "/admin/rollouts/chat/pause")
            dom = chromium(gw.admin + "/", "--dump-dom")
            row = section(dom, "data-rollout", ALIAS)
            self.assertIsNotNone(row, dom[:4000])
            self.assertIn('data-state="paused"', row)
            self.assertIn("v2 <span class=\"muted\">vs</span> v1", row)
            self.assertIn("10 %", row)
            self.assertIn("manual pause", row)


if __name__ == "__main__":
    main()
