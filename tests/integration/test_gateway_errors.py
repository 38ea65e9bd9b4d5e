"""Bad input gets a clean OpenAI-shaped error and a counter; the gateway keeps serving."""
import json
import socket
import time
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, gateway_yaml, post_json, request


def raw_exchange(port, payload, timeout=5, read_all=True):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if not read_all and b"\r\n\r\n" in data:
                    break
        except socket.timeout:
            pass
    return data


class ErrorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=1, args=["--speed", "50"])
        cls.gw = Gateway(gateway_yaml(cls.sim.urls, extra="""
limits:
  max_body_bytes: 64KiB
  max_header_bytes: 8KiB
  header_timeout: 1s
  idle_timeout: 5s
"""))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def assertOpenAiError(self, status, body, want_status, want_code):
        self.assertEqual(status, want_status, body)
        err = json.loads(body)["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"})
        self.assertEqual(err["code"], want_code)
        self.assertTrue(err["message"])
        return err

    def test_unknown_model_404(self):
        st, _, _, raw = post_json(self.gw.base + "/v1/chat/completions", chat_body("nope"))
        err = self.assertOpenAiError(st, raw, 404, "model_not_found")
        self.assertEqual(err["param"], "model")

    def test_invalid_json_400(self):
        for body in (b"{", b"[]", b"not json", b'{"model": "x"} trailing', b"",
                     b'{"model": 5, "messages": []}', b'{"model": "m", "messages": "hi"}',
                     b'{"model": "m", "messages": [], "stream": "yes"}',
                     b'{"model": "m", "messages": [], "max_tokens": -1}',
                     b'{"messages": []}', b'{"model": "\xff\xfe", "messages": []}'):
            st, _, data = request("POST", self.gw.base + "/v1/chat/completions", body,
                                  {"Content-Type": "application/json"})
            self.assertEqual(st, 400, body)
            self.assertIn(json.loads(data)["error"]["code"],
                          ("invalid_json", "invalid_type", "invalid_value", "missing_required_field"))
        self.assertGreater(self.gw.metric("tokenway_client_errors_total", kind="invalid_body"), 0)

    def test_wrong_content_type_415(self):
        st, _, data = request("POST", self.gw.base + "/v1/chat/completions",
                              json.dumps(chat_body(MODEL)).encode(), {"Content-Type": "text/plain"})
        self.assertOpenAiError(st, data, 415, "unsupported_media_type")

    def test_unknown_path_404_and_method_405(self):
        st, _, data = request("GET", self.gw.base + "/v1/nothing")
        self.assertOpenAiError(st, data, 404, "not_found")
        st, _, data = request("GET", self.gw.base + "/v1/chat/completions")
        self.assertOpenAiError(st, data, 405, "method_not_allowed")
        st, _, data = request("POST", self.gw.base + "/v1/models", b"{}")
        self.assertOpenAiError(st, data, 405, "method_not_allowed")

    def test_body_too_large_413(self):
        big = chat_body(MODEL, "x" * (80 * 1024))
        st, _, _, raw = post_json(self.gw.base + "/v1/chat/completions", big)
        self.assertOpenAiError(st, raw, 413, "request_too_large")

    def test_header_too_large_431(self):
        payload = (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 16000 + b"\r\n\r\n")
        data = raw_exchange(self.gw.port, payload)
        self.assertTrue(data.startswith(b"HTTP/1.1 431"), data[:100])

    def test_header_flood_431(self):
        payload = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n"
        data = raw_exchange(self.gw.port, payload)
        self.assertTrue(data.startswith(b"HTTP/1.1 431"), data[:100])

    def test_malformed_request_line_400(self):
        for payload in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n"):
            data = raw_exchange(self.gw.port, payload)
            self.assertTrue(data.startswith(b"HTTP/1.1 400"), (payload, data[:100]))
        self.assertGreater(self.gw.metric("tokenway_client_errors_total", kind="malformed_request"), 0)

    def test_slowloris_header_timeout_closes(self):
        before = self.gw.metric("tokenway_client_errors_total", kind="header_timeout")
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=5) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            start = time.time()
            data = s.recv(100)  # the gateway closes after header_timeout (1 s)
            self.assertEqual(data, b"")
            self.assertLess(time.time() - start, 4)
        self.assertTrue(twtest.wait_until(
            lambda: self.gw.metric("tokenway_client_errors_total", kind="header_timeout") > before))

    def test_truncated_body_then_close_is_not_forwarded(self):
        payload = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 500\r\n\r\n{\"model\":")
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=5) as s:
            s.sendall(payload)
        # Still serving.
        st, _, _, _ = post_json(self.gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=1))
        self.assertEqual(st, 200)

    def test_gateway_survives_random_garbage(self):
        import random
        rnd = random.Random(1234)
        for _ in range(50):
            payload = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 2000)))
            try:
                raw_exchange(self.gw.port, payload, timeout=2)
            except OSError:
                pass
        st, _, _, _ = post_json(self.gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=1))
        self.assertEqual(st, 200)


if __name__ == "__main__":
    twtest.main()
