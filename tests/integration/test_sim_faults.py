"""Each injected fault behaves as configured, from POST /sim/faults and from flags."""
import http.client
import json
import socket
import time
import unittest

import twtest
from test_sim_common import MODEL, chat, raw_exchange


def set_faults(url, **fields):
    st, _, body, raw = twtest.post_json(url + "/sim/faults", fields)
    assert st == 200, raw
    return body


class SimFaultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = twtest.Sim(count=1, args=["--speed", "100", "--seed", "3"])
        cls.url = cls.sim.urls[0]
        cls.port = cls.sim.ports[0]

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def tearDown(self):
        set_faults(self.url, reset=True)

    def test_post_replaces_only_named_fields_and_reset_clears(self):
        body = set_faults(self.url, error_rate=0.25)
        self.assertEqual(body["error_rate"], 0.25)
        body = set_faults(self.url, health_fail=True)
        self.assertEqual(body["error_rate"], 0.25)
        self.assertTrue(body["health_fail"])
        _, _, body = twtest.request("GET", self.url + "/sim/faults")
        body = json.loads(body)
        self.assertEqual(set(body), {"error_rate", "rate_limit_rate", "stall_after_tokens",
                                     "drop_after_tokens", "slow_start_ms", "health_fail",
                                     "garbage_rate"})
        body = set_faults(self.url, reset=True)
        self.assertEqual(body["error_rate"], 0)
        self.assertEqual(body["stall_after_tokens"], -1)
        st, _, body, _ = twtest.post_json(self.url + "/sim/faults", {"error_rate": "x"})
        self.assertEqual(st, 400)

    def test_error_rate(self):
        set_faults(self.url, error_rate=1.0)
        st, _, body, _ = chat(self.url, "x", 2)
        self.assertEqual(st, 500)
        self.assertEqual(body["type"], "InternalServerError")
        set_faults(self.url, error_rate=0.5)
        statuses = [chat(self.url, "x", 1)[0] for _ in range(60)]
        self.assertGreater(statuses.count(500), 10)
        self.assertGreater(statuses.count(200), 10)

    def test_rate_limit_rate(self):
        set_faults(self.url, rate_limit_rate=1.0)
        st, _, body, _ = chat(self.url, "x", 2)
        self.assertEqual(st, 429)
        self.assertEqual(body["type"], "RateLimitError")

    def test_health_fail(self):
        set_faults(self.url, health_fail=True)
        self.assertEqual(twtest.request("GET", self.url + "/health")[0], 503)
        set_faults(self.url, health_fail=False)
        self.assertEqual(twtest.request("GET", self.url + "/health")[0], 200)

    def test_stall_after_tokens_keeps_connection_open(self):
        set_faults(self.url, stall_after_tokens=2)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
        conn.request("POST", "/v1/chat/completions",
                     json.dumps(twtest.chat_body(MODEL, "x", 10, stream=True)),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        events = []
        with self.assertRaises(socket.timeout):
            while True:
                line = resp.fp.readline()
                if not line:
                    break
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))
        conn.close()
        self.assertEqual(len(events), 3)  # role chunk + 2 tokens, then silence
        # The stalled request no longer occupies the engine.
        _, _, body = twtest.request("GET", self.url + "/sim/stats")
        self.assertEqual(json.loads(body)["running"], 0)

    def test_stall_non_streaming_never_answers(self):
        set_faults(self.url, stall_after_tokens=0)
        with self.assertRaises(socket.timeout):
            twtest.post_json(self.url + "/v1/chat/completions",
                             twtest.chat_body(MODEL, "x", 3), timeout=0.5)

    def test_drop_after_tokens_resets_connection(self):
        set_faults(self.url, drop_after_tokens=3)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        body = json.dumps(twtest.chat_body(MODEL, "x", 10, stream=True)).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nContent-Length: " + str(len(body)).encode() +
                  b"\r\n\r\n" + body)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        s.close()
        self.assertIn(b"200 OK", data)
        self.assertEqual(data.count(b"data: "), 4)  # role + 3 tokens
        self.assertNotIn(b"[DONE]", data)

    def test_slow_start_delays_first_token(self):
        set_faults(self.url, slow_start_ms=300)
        start = time.monotonic()
        st, _, _, _ = chat(self.url, "x", 1)
        self.assertEqual(st, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)

    def test_garbage_rate(self):
        set_faults(self.url, garbage_rate=1.0)
        body = json.dumps(twtest.chat_body(MODEL, "x", 2)).encode()
        seen_non_http = seen_bad_json = False
        for _ in range(20):
            reply = raw_exchange(self.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\nContent-Length: " +
                                 str(len(body)).encode() + b"\r\n\r\n" + body)
            if reply.startswith(b"HTTP/1.1 200"):
                payload = reply.split(b"\r\n\r\n", 1)[1]
                with self.assertRaises(ValueError):
                    json.loads(payload)
                seen_bad_json = True
            else:
                self.assertFalse(reply.startswith(b"HTTP/"))
                seen_non_http = True
        self.assertTrue(seen_non_http and seen_bad_json)


class SimFaultFlagsTest(unittest.TestCase):
    def test_fault_flags_apply_to_every_endpoint(self):
        with twtest.Sim(count=2, args=["--speed", "100", "--fault", "rate_limit_rate=1",
                                       "--fault-health-fail"]) as sim:
            for url in sim.urls:
                self.assertEqual(chat(url, "x", 1)[0], 429)
                self.assertEqual(twtest.request("GET", url + "/health")[0], 503)
                _, _, body = twtest.request("GET", url + "/sim/faults")
                self.assertEqual(json.loads(body)["rate_limit_rate"], 1)


if __name__ == "__main__":
    twtest.main()
