"""Reload under load, draining on SIGTERM, configuration validation."""
import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import twtest
from twtest import (MODEL, Gateway, Sim, bin_path, chat_body, gateway_yaml, post_json, request,
                    sse_events, wait_until)


class LoadThread(threading.Thread):
    """Sends requests back to back until stopped; records every status."""

    def __init__(self, base, stream=False):
        super().__init__(daemon=True)
        self.base, self.stream = base, stream
        self.statuses, self.failures = [], []
        self.stop_flag = threading.Event()
        self.start()

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            i += 1
            try:
                if self.stream:
                    st, _, events, _ = sse_events(self.base + "/v1/chat/completions",
                                                  chat_body(MODEL, f"load {i}", max_tokens=4, stream=True))
                    ok = st == 200 and events and events[-1] == "[DONE]"
                else:
                    st, _, _, _ = post_json(self.base + "/v1/chat/completions",
                                            chat_body(MODEL, f"load {i}", max_tokens=4))
                    ok = st == 200
            except OSError as e:
                st, ok = repr(e), False
            self.statuses.append(st)
            if not ok:
                self.failures.append(st)

    def finish(self):
        self.stop_flag.set()
        self.join(30)


class LifecycleTest(unittest.TestCase):
    def setUp(self):
        self.sim = Sim(count=3, args=["--speed", "50"])
        self.addCleanup(self.sim.stop)

    def test_reload_under_load_zero_failures(self):
        path = tempfile.mktemp(suffix=".yaml")
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        gw = Gateway(gateway_yaml(self.sim.urls[:1]), config_path=path,
                     args=[])
        self.addCleanup(gw.stop)
        loads = [LoadThread(gw.base), LoadThread(gw.base, stream=True)]
        time.sleep(0.3)
        policies = ["round-robin", "power-of-two", "least-request"]
        for i in range(6):
            urls = self.sim.urls[: 1 + (i % 3)]
            with open(path + ".tmp", "w") as f:
                f.write(gateway_yaml(urls, policy=policies[i % 3]))
            os.replace(path + ".tmp", path)
            if i % 2:
                gw.proc.send_signal(signal.SIGHUP)
            time.sleep(0.4)
        # A broken file is rejected whole; the running config keeps serving.
        with open(path, "w") as f:
            f.write("pools: [\n")
        gw.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        for l in loads:
            l.finish()
        total = sum(len(l.statuses) for l in loads)
        failures = [f for l in loads for f in l.failures]
        self.assertGreater(total, 20)
        self.assertEqual(failures, [])
        self.assertGreaterEqual(gw.metric("tokenway_config_reloads_total", result="success"), 3)
        self.assertGreaterEqual(gw.metric("tokenway_config_reloads_total", result="failure"), 1)
        st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=1))
        self.assertEqual(st, 200)
        self.assertTrue(any("reload rejected" in l for l in gw.err.lines))

    def test_drain_on_sigterm_finishes_in_flight(self):
        sim = Sim(count=1, args=["--speed", "5"])
        self.addCleanup(sim.stop)
        gw = Gateway(gateway_yaml(sim.urls))
        self.addCleanup(gw.stop)
        results = []

        def one(i):
            try:
                st, _, events, _ = sse_events(gw.base + "/v1/chat/completions",
                                              chat_body(MODEL, f"drain {i}", max_tokens=60, stream=True),
                                              timeout=60)
                results.append(st == 200 and events[-1] == "[DONE]")
            except OSError as e:
                results.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_requests_in_flight") == 8, timeout=10))
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        # No new connections once draining.
        with self.assertRaises(OSError):
            request("GET", gw.base + "/v1/models", timeout=2)
        for t in threads:
            t.join(60)
        self.assertEqual(results, [True] * 8)
        self.assertEqual(gw.proc.wait(30), 0)

    def test_drain_deadline_bounds_shutdown(self):
        sim = Sim(count=1, args=["--speed", "1"])
        self.addCleanup(sim.stop)
        gw = Gateway(gateway_yaml(sim.urls, extra="drain_timeout: 500ms\n"))
        self.addCleanup(gw.stop)
        def slow():
            try:
                sse_events(gw.base + "/v1/chat/completions",
                           chat_body(MODEL, "slow", max_tokens=5000, stream=True), timeout=60)
            except (OSError, ValueError, http.client.HTTPException):
                pass  # cut off at the drain deadline, as intended

        t = threading.Thread(target=slow, daemon=True)
        t.start()
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_requests_in_flight") == 1))
        start = time.time()
        gw.proc.send_signal(signal.SIGTERM)
        self.assertEqual(gw.proc.wait(10), 0)
        self.assertLess(time.time() - start, 5)

    def test_max_connections_closes_excess_connections(self):
        gw = Gateway(gateway_yaml(self.sim.urls, extra="limits:\n  max_connections: 2\n"), workers=1)
        self.addCleanup(gw.stop)
        import socket
        held = [socket.create_connection(("127.0.0.1", gw.port), timeout=5) for _ in range(2)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        self.assertEqual(extra.recv(100), b"")  # closed at once
        extra.close()
        self.assertTrue(wait_until(
            lambda: gw.metric("tokenway_client_errors_total", kind="connection_limit") >= 1))
        held[0].close()
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_client_connections") <= 1))
        st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=1))
        self.assertEqual(st, 200)
        held[1].close()

    def test_validate(self):
        good = tempfile.mktemp(suffix=".yaml")
        bad = tempfile.mktemp(suffix=".yaml")
        self.addCleanup(lambda: [os.remove(p) for p in (good, bad) if os.path.exists(p)])
        with open(good, "w") as f:
            f.write(gateway_yaml(self.sim.urls))
        with open(bad, "w") as f:
            f.write("pools:\n  - name: p\n    polcy: round-robin\n    endpoints: [http://127.0.0.1:1]\n"
                    "models:\n  - name: m\n    pool: p\n")
        ok = subprocess.run([bin_path("tokenway"), "--validate", good], capture_output=True, text=True)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        no = subprocess.run([bin_path("tokenway"), "--validate", bad], capture_output=True, text=True)
        self.assertEqual(no.returncode, 1)
        self.assertIn(f"{bad}:3:5: pools[0].polcy: unknown field", no.stderr)

    def test_bad_config_fails_at_start_with_location(self):
        path = tempfile.mktemp(suffix=".yaml")
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        with open(path, "w") as f:
            f.write(gateway_yaml(self.sim.urls) + "limits:\n  header_timeout: soon\n")
        proc = subprocess.run([bin_path("tokenway"), "--config", path], capture_output=True,
                              text=True, timeout=10)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("limits.header_timeout", proc.stderr)

    def test_quick_flags_and_help(self):
        gw = Gateway(None, args=["--upstream", self.sim.urls[0], "--model", MODEL,
                                 "--policy", "power-of-two"])
        self.addCleanup(gw.stop)
        st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=1))
        self.assertEqual(st, 200)
        helptext = subprocess.run([bin_path("tokenway"), "--help"], capture_output=True, text=True)
        for flag in ("--config", "--upstream", "--model", "--listen", "--admin", "--workers",
                     "--policy", "--validate"):
            self.assertIn(flag, helptext.stdout)


if __name__ == "__main__":
    twtest.main()
