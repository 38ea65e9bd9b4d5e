"""HTTP/1.1 correctness at the front door: the hostile cases that once desynchronised a
keep-alive connection or were accepted, each a regression test named after what broke; and usage
honesty for streams that report no usage."""
import json
import socket
import time
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, gateway_yaml


class Conn:
    """One keep-alive client connection that reads responses by their framing."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        return status, headers

    def read_response(self, head_request=False):
        status, headers = self.read_head()
        if head_request:
            return status, headers, b""
        if "chunked" in headers.get("transfer-encoding", [""])[0]:
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    return status, headers, body
        n = int(headers.get("content-length", ["0"])[0])
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed_by_peer(self, timeout=3):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except (ConnectionError, socket.timeout):
            return True


def raw_answer(port, payload):
    c = Conn(port)
    try:
        c.send(payload)
        return c.read_response()
    finally:
        c.close()


def post_bytes(body, extra_headers=b""):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra_headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class HttpCorrectnessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=1, args=["--speed", "50"])
        cls.gw = Gateway(gateway_yaml(cls.sim.urls))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def assertError(self, status, body, want_status, want_code):
        self.assertEqual(status, want_status, body)
        self.assertEqual(json.loads(body)["error"]["code"], want_code, body)

    def test_head_of_post_path_is_405_without_body_and_keeps_the_connection_in_step(self):
        c = Conn(self.gw.port)
        c.send(b"HEAD /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = c.read_head()
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], ["POST"])
        # The next response starts right after the HEAD answer's head: no body in between.
        status, headers, body = c.read_response()
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["object"], "list")
        c.close()

    def test_head_of_get_path_answers_like_get_without_body(self):
        c = Conn(self.gw.port)
        c.send(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        _, get_headers, get_body = c.read_response()
        c.send(b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /v1/models/" + MODEL.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = c.read_head()
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-length"], [str(len(get_body))])
        status, headers = c.read_head()
        self.assertEqual(status, 200)
        self.assertGreater(int(headers["content-length"][0]), 0)
        status, headers = c.read_head()
        self.assertEqual(status, 404)
        status, _, body = c.read_response()
        self.assertEqual(status, 200)
        self.assertEqual(body, get_body)
        c.close()

    def test_http11_without_host_is_400(self):
        status, headers, body = raw_answer(self.gw.port, b"GET /v1/models HTTP/1.1\r\n\r\n")
        self.assertError(status, body, 400, "malformed_request")
        self.assertIn("Host", json.loads(body)["error"]["message"])

    def test_http10_without_host_is_served(self):
        status, _, body = raw_answer(self.gw.port, b"GET /v1/models HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 200, body)

    def test_duplicate_host_is_400(self):
        status, _, body = raw_answer(
            self.gw.port, b"GET /v1/models HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        self.assertError(status, body, 400, "malformed_request")

    def test_transfer_encoding_on_http10_is_400(self):
        body = json.dumps(chat_body(MODEL, max_tokens=1)).encode()
        payload = (b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + hex(len(body))[2:].encode() + b"\r\n" +
                   body + b"\r\n0\r\n\r\n")
        status, _, answer = raw_answer(self.gw.port, payload)
        self.assertError(status, answer, 400, "malformed_request")

    def test_long_chunk_extension_is_400(self):
        before = self.gw.metric("tokenway_client_errors_total", kind="malformed_request")
        c = Conn(self.gw.port)
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n2;ext=")
        # 1 MiB of extension, sent in pieces; the gateway answers before it has all of it.
        try:
            for _ in range(64):
                c.send(b"a" * 16384)
        except OSError:
            pass
        status, _, body = c.read_response()
        self.assertError(status, body, 400, "malformed_request")
        self.assertIn("chunk extension", json.loads(body)["error"]["message"])
        self.assertTrue(c.closed_by_peer())
        c.close()
        # A short extension is fine.
        body = json.dumps(chat_body(MODEL, max_tokens=1)).encode()
        status, _, answer = raw_answer(
            self.gw.port,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + hex(len(body))[2:].encode() + b";a=b\r\n" +
            body + b"\r\n0\r\n\r\n")
        self.assertEqual(status, 200, answer)
        self.assertGreater(self.gw.metric("tokenway_client_errors_total", kind="malformed_request"),
                           before)

    def test_every_response_carries_its_own_request_id(self):
        c = Conn(self.gw.port)
        body = json.dumps(chat_body(MODEL, max_tokens=1)).encode()
        c.send(post_bytes(body, b"X-Request-Id: proxied-1\r\n"))
        status, headers, _ = c.read_response()
        self.assertEqual(status, 200)
        self.assertEqual(headers["x-request-id"], ["proxied-1"])
        seen = set()
        for payload in (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n",
                        post_bytes(b"{not json")):
            c.send(payload)
            status, headers, _ = c.read_response()
            rid = headers["x-request-id"]
            self.assertEqual(len(rid), 1)
            self.assertNotEqual(rid[0], "proxied-1", payload)
            self.assertNotIn(rid[0], seen)
            seen.add(rid[0])
        c.send(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Request-Id: mine-2\r\n\r\n")
        _, headers, _ = c.read_response()
        self.assertEqual(headers["x-request-id"], ["mine-2"])
        c.close()
        # A rejected head gets one too.
        status, headers, _ = raw_answer(self.gw.port, b"GET /v1/models HTTP/1.1\r\n\r\n")
        self.assertEqual(status, 400)
        self.assertEqual(len(headers["x-request-id"][0]), 16)


class UsageHonestyTest(unittest.TestCase):
    def test_stream_without_usage_is_settled_as_an_estimate(self):
        with Sim(count=1, args=["--speed", "50"]) as sim:
            # inject_usage off: the simulator sends no usage chunk unless asked.
            with Gateway(gateway_yaml(sim.urls, extra="streaming:\n  inject_usage: false\n"
                                      "access_log:\n  enabled: true\n  path: stdout\n")) as gw:
                before = gw.metric("tokenway_requests_without_usage_total")
                body = chat_body(MODEL, "one two three four", max_tokens=5, stream=True)
                status, _, _, raw = twtest.post_json(gw.base + "/v1/chat/completions", body)
                self.assertEqual(status, 200)
                self.assertNotIn(b'"usage"', raw)
                self.assertTrue(twtest.wait_until(
                    lambda: gw.metric("tokenway_requests_without_usage_total") == before + 1))
                # Estimated tokens are counted apart, not as reported usage.
                self.assertEqual(gw.metric("tokenway_tokens_total", type="output"), 0)
                # One per data event: the 5 tokens, and the simulator's role-only first chunk.
                self.assertIn(gw.metric("tokenway_estimated_tokens_total", type="output"), (5, 6))
                self.assertGreater(gw.metric("tokenway_estimated_tokens_total", type="input"), 0)
                self.assertTrue(twtest.wait_until(lambda: gw.access_log()))
                line = gw.access_log()[-1]
                self.assertEqual(line["usage"], "estimated")
                self.assertIn(line["completion_tokens"], (5, 6))
                # With usage asked for, the report is used and marked so.
                body = chat_body(MODEL, "one two", max_tokens=3, stream=True)
                body["stream_options"] = {"include_usage": True}
                status, _, _, _ = twtest.post_json(gw.base + "/v1/chat/completions", body)
                self.assertEqual(status, 200)
                self.assertTrue(twtest.wait_until(lambda: len(gw.access_log()) >= 2))
                self.assertEqual(gw.access_log()[-1]["usage"], "reported")
                self.assertEqual(gw.metric("tokenway_tokens_total", type="output"), 3)


if __name__ == "__main__":
    twtest.main()
