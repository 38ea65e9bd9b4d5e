"""KEDA external scaler end to end: keda_client (tests/support) plays KEDA against the real gateway
in front of tokenway-sim: the four methods follow the traffic, an unknown pool is NOT_FOUND,
StreamIsActive delivers a change and ends when the gateway stops, and a pool scales from zero —
requests wait while the fake Kubernetes API server has no pod, the scaler reports the pool
active, then a pod turns Ready and the waiting requests are served.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import twtest
from fake_kube_api import FakeKubeApi, inference_pool, make_certs, pod
from test_gateway_discovery import LABELS, NS, PodSims
from twtest import MODEL, Gateway, Sim, bin_path, chat_body, post_json, wait_until

_SCALER = re.compile(r"KEDA external scaler on [^ ]+:(\d+)")


def scaler_address(gw):
    """The scaler's loopback address, from the gateway's start-up log line."""
    for line in gw.err.lines:
        m = _SCALER.search(line)
        if m:
            return "127.0.0.1:" + m.group(1)
    raise AssertionError("no KEDA scaler line in:\n" + "\n".join(gw.err.lines))


def client_args(address, method, pool=None, name="scaledobject", metric=None, target=None,
                metric_name=None, count=None, timeout=10):
    args = [bin_path("keda_client"), address, method, "--name", name, "--namespace", NS,
            "--timeout", str(timeout), "--meta", "scalerAddress=" + address]
    for key, value in (("pool", pool), ("metric", metric), ("target", target)):
        if value is not None:
            args += ["--meta", f"{key}={value}"]
    if metric_name is not None:
        args += ["--metric-name", metric_name]
    if count is not None:
        args += ["--count", str(count)]
    return args


def call(address, method, **kw):
    """One unary call: (response or None, status dict)."""
    out = subprocess.run(client_args(address, method, **kw), capture_output=True, timeout=30,
                         check=True)
    lines = [json.loads(l) for l in out.stdout.decode().splitlines() if l.strip()]
    status = lines[-1]
    return (lines[0] if len(lines) > 1 else None), status


class Stream:
    """A StreamIsActive call in the background; `next()` returns its next line."""

    def __init__(self, address, **kw):
        self.proc = subprocess.Popen(client_args(address, "StreamIsActive", **kw),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(json.loads(raw))
                self.cond.notify_all()

    def next(self, index, timeout=15):
        with self.cond:
            self.cond.wait_for(lambda: len(self.lines) > index, timeout)
            return self.lines[index] if len(self.lines) > index else None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def metric_value(address, pool, metric):
    resp, status = call(address, "GetMetrics", pool=pool, metric=metric,
                        metric_name=f"{pool}-{metric.replace('_', '-')}")
    assert status["status"] == "OK", status
    (value,) = resp["metricValues"]
    return value


class KedaScalerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=2, args=["--speed", "20"])

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def gateway(self):
        config = twtest.gateway_yaml(self.sim.urls) + 'autoscaling:\n  keda: {listen: "127.0.0.1:0"}\n'
        gw = Gateway(config, workers=2)
        self.addCleanup(gw.stop)
        return gw, scaler_address(gw)

    def test_methods_follow_traffic(self):
        gw, addr = self.gateway()
        spec, status = call(addr, "GetMetricSpec", pool="p", metric="output_tokens_per_second",
                            target="50")
        self.assertEqual(status["status"], "OK", status)
        self.assertEqual(spec["metricSpecs"], [{"metricName": "p-output-tokens-per-second",
                                                "targetSize": "50", "targetSizeFloat": 50}])
        # The pool defaults to the ScaledObject's name, the metric to desired_replicas (target 1).
        spec, _ = call(addr, "GetMetricSpec", name="p")
        self.assertEqual(spec["metricSpecs"], [{"metricName": "p-desired-replicas",
                                                "targetSize": "1", "targetSizeFloat": 1}])

        # Idle: inactive, no throughput, the recommendation's floor.
        self.assertEqual(call(addr, "IsActive", pool="p")[0], {"result": False})
        self.assertEqual(metric_value(addr, "p", "output_tokens_per_second")["metricValueFloat"], 0)
        self.assertEqual(metric_value(addr, "p", "desired_replicas")["metricValueFloat"], 1)

        stop = threading.Event()
        failures = []

        def load(i):
            while not stop.is_set():
                st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                          chat_body(MODEL, f"keda load {i}", max_tokens=32))
                if st != 200:
                    failures.append((st, raw[:200]))
        threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        try:
            # Values follow the traffic: throughput appears, the pool is active.
            self.assertTrue(wait_until(
                lambda: metric_value(addr, "p", "output_tokens_per_second")["metricValueFloat"] > 0,
                10, 0.2))
            self.assertEqual(call(addr, "IsActive", pool="p")[0], {"result": True})
            value = metric_value(addr, "p", "input_tokens_per_second")
            self.assertGreater(value["metricValueFloat"], 0)
            self.assertEqual(int(value["metricValue"]), round(value["metricValueFloat"]))
            self.assertEqual(value["metricName"], "p-input-tokens-per-second")
            sat = metric_value(addr, "p", "saturation")["metricValueFloat"]
            self.assertGreaterEqual(sat, 0)
            self.assertLessEqual(sat, 1)
            self.assertGreaterEqual(metric_value(addr, "p", "desired_replicas")["metricValueFloat"], 1)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(failures, [])
        # The same signals as /metrics shows (both from the last once-a-second update).
        self.assertTrue(wait_until(lambda: abs(
            metric_value(addr, "p", "output_tokens_per_second")["metricValueFloat"] -
            gw.metric("tokenway_pool_token_throughput", pool="p", type="output")) < 1e-6, 5, 0.1))
        self.assertGreaterEqual(gw.metric("tokenway_keda_requests_total", method="GetMetrics",
                                          outcome="ok"), 6)
        self.assertEqual(gw.metric("tokenway_keda_requests_total", method="IsActive",
                                   outcome="ok"), 2)

    def test_unknown_pool_and_bad_metadata(self):
        gw, addr = self.gateway()
        for method in ("IsActive", "GetMetricSpec", "GetMetrics", "StreamIsActive"):
            _, status = call(addr, method, pool="mistral")
            self.assertEqual(status["status"], "NOT_FOUND", (method, status))
            self.assertIn("pool 'mistral' is not configured", status["message"])
            self.assertIn("pools: p", status["message"])
        _, status = call(addr, "GetMetricSpec", pool="p", metric="requests_per_second")
        self.assertEqual(status["status"], "INVALID_ARGUMENT", status)
        self.assertIn("metric 'requests_per_second' is unknown", status["message"])
        _, status = call(addr, "GetMetrics", pool="p", target="-3")
        self.assertEqual(status["status"], "INVALID_ARGUMENT", status)
        self.assertIn("positive number", status["message"])
        for method in ("IsActive", "GetMetricSpec", "GetMetrics", "StreamIsActive"):
            self.assertEqual(gw.metric("tokenway_keda_requests_total", method=method,
                                       outcome="not_found"), 1, method)
        self.assertEqual(gw.metric("tokenway_keda_requests_total", outcome="invalid_argument"), 2)
        # Still serving.
        self.assertEqual(call(addr, "IsActive", pool="p")[0], {"result": False})
        if shutil.which("promtool"):
            proc = subprocess.run(["promtool", "check", "metrics"], input=gw.metrics().encode(),
                                  capture_output=True)
            lint = [l for l in (proc.stdout + proc.stderr).decode().splitlines()
                    if "tokenway_keda" in l]
            self.assertEqual(lint, [])

    def test_reload_changes_the_pool_set(self):
        gw, addr = self.gateway()
        stream = Stream(addr, pool="p", timeout=60)
        self.addCleanup(stream.close)
        self.assertEqual(stream.next(0), {"result": False})
        # The pool is renamed; the scaler's address would move too, which waits for a restart.
        config = twtest.gateway_yaml(self.sim.urls).replace("  - name: p\n", "  - name: q\n")
        config = config.replace("    pool: p\n", "    pool: q\n")
        with open(gw.config_path, "w") as f:
            f.write(config + 'autoscaling:\n  keda: {listen: "127.0.0.1:1"}\n')
        gw.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(
            lambda: call(addr, "IsActive", pool="q")[1]["status"] == "OK", 5, 0.1))
        _, status = call(addr, "GetMetrics", pool="p")
        self.assertEqual(status["status"], "NOT_FOUND", status)
        self.assertIn("(pools: q)", status["message"])
        end = stream.next(1)
        self.assertEqual(end["status"], "NOT_FOUND", stream.lines)
        self.assertEqual(end["message"], "pool 'p' was removed from the configuration")
        self.assertTrue(any("autoscaling.keda changes only on restart" in l for l in gw.err.lines))

    def test_stream_is_active_delivers_a_change_and_ends_at_shutdown(self):
        gw, addr = self.gateway()
        stream = Stream(addr, pool="p", timeout=60)
        self.addCleanup(stream.close)
        self.assertEqual(stream.next(0), {"result": False})
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_keda_streams") == 1, 5))
        # A long stream keeps a request in flight until the signals see it.
        body = chat_body(MODEL, "a long answer", max_tokens=400, stream=True)
        worker = threading.Thread(target=post_json, args=(gw.base + "/v1/chat/completions", body),
                                  daemon=True)
        worker.start()
        self.assertEqual(stream.next(1), {"result": True})
        worker.join(60)
        # SIGTERM ends the open stream (UNAVAILABLE, KEDA reconnects elsewhere) without
        # holding up the exit.
        t0 = time.time()
        self.assertEqual(gw.stop(), 0)
        elapsed = time.time() - t0
        self.assertLess(elapsed, 10, "the open stream held up the drain")
        stream.proc.wait(10)
        last = stream.lines[-1]
        self.assertEqual(last["status"], "UNAVAILABLE", stream.lines)
        self.assertEqual(last["message"], "tokenway is stopping")


class KedaScaleFromZeroTest(unittest.TestCase):
    """The pool's endpoints come from a fake API server that has no pod yet."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tokenway-keda-")
        make_certs(cls.tmp)
        cls.ips = ["127.0.0.31"]
        cls.sims = PodSims(cls.ips)

    @classmethod
    def tearDownClass(cls):
        cls.sims.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_requests_wait_pool_active_then_served_when_a_pod_appears(self):
        api = FakeKubeApi(self.tmp)
        api.start()
        self.addCleanup(api.stop)
        api.put("inferencepools", inference_pool("llama", LABELS, [self.sims.port]))
        sa = tempfile.mkdtemp(prefix="sa-", dir=self.tmp)
        shutil.copy(os.path.join(self.tmp, "ca.crt"), os.path.join(sa, "ca.crt"))
        with open(os.path.join(sa, "token"), "w") as f:
            f.write("token-1\n")
        with open(os.path.join(sa, "namespace"), "w") as f:
            f.write(NS)
        os.environ["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
        os.environ["KUBERNETES_SERVICE_PORT"] = str(api.port)
        gw = Gateway(f"""
pools:
  - name: llama-8b
    policy: round-robin
    discovery: {{inference_pool: {{namespace: {NS}, name: llama}}}}
    scale_from_zero: {{queue_ttl: 30s, max_waiting: 100}}
models:
  - name: {MODEL}
    pool: llama-8b
kubernetes:
  service_account_dir: {sa}
  backoff_initial: 100ms
  backoff_max: 500ms
autoscaling:
  keda: {{listen: "127.0.0.1:0"}}
health:
  active:
    interval: 200ms
    timeout: 500ms
""", workers=2)
        self.addCleanup(gw.stop)
        addr = scaler_address(gw)

        # No pod, no request: the pool is idle (KEDA keeps it at zero replicas).
        self.assertEqual(call(addr, "IsActive", pool="llama-8b")[0], {"result": False})
        stream = Stream(addr, name="llama-8b", timeout=60)
        self.addCleanup(stream.close)
        self.assertEqual(stream.next(0), {"result": False})

        results = []

        def send(i):
            results.append(post_json(gw.base + "/v1/chat/completions",
                                     chat_body(MODEL, f"wake up {i}", max_tokens=4), timeout=40))
        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()

        # The requests wait for an endpoint; the scaler reports the pool active at once (the
        # live waiting count) and, from the next signal update, three queued requests.
        self.assertTrue(wait_until(
            lambda: call(addr, "IsActive", pool="llama-8b")[0] == {"result": True}, 5, 0.05))
        self.assertEqual(stream.next(1), {"result": True})
        self.assertTrue(wait_until(
            lambda: metric_value(addr, "llama-8b", "queue_depth")["metricValueFloat"] >= 3, 5, 0.1))
        self.assertGreaterEqual(
            metric_value(addr, "llama-8b", "desired_replicas")["metricValueFloat"], 1)
        self.assertEqual(results, [])

        # KEDA scales the Deployment up: the first pod turns Ready, the waiting requests are
        # served by it.
        api.put("pods", pod("pod-0", self.ips[0], True, LABELS))
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(r[0] for r in results), [200, 200, 200], results)
        self.assertTrue(wait_until(
            lambda: metric_value(addr, "llama-8b", "queue_depth")["metricValueFloat"] == 0, 5, 0.1))
        # Its throughput keeps the pool active for the autoscaling window.
        self.assertEqual(call(addr, "IsActive", pool="llama-8b")[0], {"result": True})


if __name__ == "__main__":
    twtest.main()
