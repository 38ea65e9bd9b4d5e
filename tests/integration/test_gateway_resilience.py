"""Retries before the first byte, ejection and recovery, broken and stalled streams, client
disconnects and active health checks, against real tokenway-sim endpoints."""
import json
import socket
import time
import unittest

import twtest
from twtest import (MODEL, Gateway, Sim, chat_body, free_port, gateway_yaml, post_json, request,
                    set_faults, sse_events, wait_until)


def sim_gauge(url, name):
    _, _, data = request("GET", url + "/metrics")
    total = 0.0
    for line in data.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class ResilienceTest(unittest.TestCase):
    def setUp(self):
        self.sim = Sim(count=2, args=["--speed", "50"])
        self.addCleanup(self.sim.stop)

    def gateway(self, urls, **kw):
        extra = kw.pop("extra", "")
        gw = Gateway(gateway_yaml(urls, extra=extra, **kw))
        self.addCleanup(gw.stop)
        return gw

    def endpoint(self, gw, url):
        _, _, data = request("GET", gw.admin + "/admin/endpoints")
        for pool in json.loads(data)["pools"]:
            for e in pool["endpoints"]:
                if e["url"] == url:
                    return e
        raise KeyError(url)

    def test_retry_on_connect_failure_before_first_byte(self):
        dead = f"http://127.0.0.1:{free_port()}"
        gw = self.gateway([dead, self.sim.urls[0]], policy="round-robin",
                          health_interval="60s", consecutive_failures=100)
        for i in range(10):
            st, _, body, raw = post_json(gw.base + "/v1/chat/completions",
                                         chat_body(MODEL, f"r{i}", max_tokens=2))
            self.assertEqual(st, 200, raw)
        self.assertGreaterEqual(gw.metric("tokenway_retries_total"), 4)
        self.assertGreaterEqual(gw.metric("tokenway_upstream_errors_total", kind="connect"), 4)

    def test_retry_on_5xx_then_ejection_and_recovery(self):
        bad, good = self.sim.urls
        set_faults(bad, error_rate=1.0)
        gw = self.gateway([bad, good], policy="round-robin", consecutive_failures=3,
                          base_ejection="1s", health_interval="60s")
        for i in range(12):
            st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                      chat_body(MODEL, f"e{i}", max_tokens=2))
            self.assertEqual(st, 200, raw)
        self.assertTrue(self.endpoint(gw, bad)["ejected"])
        self.assertGreaterEqual(gw.metric("tokenway_endpoint_ejections_total", endpoint=bad), 1)
        self.assertGreaterEqual(gw.metric("tokenway_upstream_errors_total", kind="status_5xx"), 3)
        # Heal it; after the ejection it takes traffic again.
        set_faults(bad, reset=True)
        self.assertTrue(wait_until(lambda: not self.endpoint(gw, bad)["ejected"], timeout=5))
        before = self.endpoint(gw, bad)["requests_total"]
        for i in range(6):
            st, _, _, _ = post_json(gw.base + "/v1/chat/completions",
                                    chat_body(MODEL, f"h{i}", max_tokens=2))
            self.assertEqual(st, 200)
        self.assertGreater(self.endpoint(gw, bad)["requests_total"], before)

    def test_last_attempt_5xx_is_relayed(self):
        for url in self.sim.urls:
            set_faults(url, error_rate=1.0)
        gw = self.gateway(self.sim.urls, consecutive_failures=100, health_interval="60s")
        st, _, _, raw = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=2))
        self.assertEqual(st, 500, raw)
        self.assertEqual(gw.metric("tokenway_retries_total"), 1)

    def test_endpoint_dropping_mid_stream_ends_with_error_event(self):
        for url in self.sim.urls:
            set_faults(url, drop_after_tokens=3)
        gw = self.gateway(self.sim.urls, consecutive_failures=100, health_interval="60s")
        st, hdrs, events, raw = sse_events(gw.base + "/v1/chat/completions",
                                           chat_body(MODEL, max_tokens=20, stream=True))
        self.assertEqual(st, 200)
        self.assertGreaterEqual(len(events), 2)
        last = json.loads(events[-1])
        self.assertEqual(last["error"]["code"], "upstream_stream_broken")
        self.assertNotIn("[DONE]", events)
        self.assertTrue(raw.endswith(b"\n\n"))
        self.assertGreaterEqual(gw.metric("tokenway_upstream_errors_total", kind="broken_stream"), 1)

    def test_stalled_stream_times_out(self):
        for url in self.sim.urls:
            set_faults(url, stall_after_tokens=2)
        gw = self.gateway(self.sim.urls, consecutive_failures=100, health_interval="60s",
                          extra="upstream:\n  stream_idle_timeout: 600ms\n  first_byte_timeout: 3s\n")
        start = time.time()
        st, _, events, _ = sse_events(gw.base + "/v1/chat/completions",
                                      chat_body(MODEL, max_tokens=20, stream=True), timeout=20)
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(events[-1])["error"]["code"], "upstream_timeout")
        self.assertLess(time.time() - start, 10)
        # Non-streaming: the same stall is a 504.
        st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                  chat_body(MODEL, max_tokens=20), timeout=20)
        self.assertIn(st, (502, 504), raw)
        self.assertGreaterEqual(gw.metric("tokenway_upstream_errors_total", kind="timeout"), 1)

    def test_first_byte_timeout_504(self):
        for url in self.sim.urls:
            set_faults(url, slow_start_ms=5000)
        gw = self.gateway(self.sim.urls, consecutive_failures=100, health_interval="60s",
                          extra="upstream:\n  first_byte_timeout: 500ms\n")
        st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                  chat_body(MODEL, max_tokens=2, stream=True), timeout=20)
        self.assertEqual(st, 504, raw)
        self.assertEqual(json.loads(raw)["error"]["code"], "upstream_timeout")

    def test_garbage_from_upstream_502(self):
        for url in self.sim.urls:
            set_faults(url, garbage_rate=1.0)
        gw = self.gateway(self.sim.urls, consecutive_failures=100, health_interval="60s")
        st, _, _, raw = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=2))
        self.assertEqual(st, 502, raw)
        self.assertGreaterEqual(gw.metric("tokenway_upstream_errors_total", kind="protocol")
                                + gw.metric("tokenway_upstream_errors_total", kind="broken_stream"), 1)
        set_faults(self.sim.urls[0], reset=True)
        set_faults(self.sim.urls[1], reset=True)
        st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=2))
        self.assertEqual(st, 200)

    def test_client_disconnect_aborts_upstream(self):
        sim = Sim(count=1, args=["--speed", "1"])  # real time: a long generation
        self.addCleanup(sim.stop)
        gw = self.gateway(sim.urls)
        body = json.dumps(chat_body(MODEL, "long one", max_tokens=2000, stream=True)).encode()
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while data.count(b"data:") < 3:
            data += s.recv(65536)
        self.assertGreaterEqual(sim_gauge(sim.urls[0], "vllm:num_requests_running"), 1)
        s.close()
        self.assertTrue(wait_until(
            lambda: sim_gauge(sim.urls[0], "vllm:num_requests_running") == 0, timeout=3))
        self.assertTrue(wait_until(
            lambda: gw.metric("tokenway_client_errors_total", kind="disconnected") >= 1))
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_requests_in_flight") == 0))

    def test_client_disconnect_while_queued_aborts_upstream(self):
        sim = Sim(count=1, args=["--speed", "1"])
        self.addCleanup(sim.stop)
        set_faults(sim.urls[0], slow_start_ms=3000)
        gw = self.gateway(sim.urls)
        body = json.dumps(chat_body(MODEL, "queued", max_tokens=50)).encode()
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_requests_in_flight") == 1))
        s.close()
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_requests_in_flight") == 0, timeout=1.5))

    def test_active_health_marks_unhealthy_and_readyz(self):
        gw = self.gateway(self.sim.urls, health_interval="100ms")
        set_faults(self.sim.urls[0], health_fail=True)
        self.assertTrue(wait_until(lambda: not self.endpoint(gw, self.sim.urls[0])["healthy"]))
        st, _, _ = request("GET", gw.admin + "/readyz")
        self.assertEqual(st, 200)  # the other endpoint is fine
        for i in range(4):  # traffic avoids the unhealthy endpoint
            st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=1))
            self.assertEqual(st, 200)
        set_faults(self.sim.urls[1], health_fail=True)
        self.assertTrue(wait_until(lambda: request("GET", gw.admin + "/readyz")[0] == 503))
        st, _, _, raw = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=1))
        self.assertEqual(st, 503)
        self.assertEqual(json.loads(raw)["error"]["code"], "no_healthy_endpoint")
        set_faults(self.sim.urls[0], reset=True)
        self.assertTrue(wait_until(lambda: request("GET", gw.admin + "/readyz")[0] == 200))


if __name__ == "__main__":
    twtest.main()
