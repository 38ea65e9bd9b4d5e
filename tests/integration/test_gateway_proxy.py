"""The gateway relays chat/completions requests to tokenway-sim unchanged, streaming and not,
and knows every request's token usage."""
import http.server
import json
import threading
import time
import socket
import subprocess
import shutil
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, content_of, gateway_yaml, post_json, request, sse_events


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=2, args=["--speed", "50", "--seed", "7", "--lora", "sql-lora"])
        cls.gw = Gateway(gateway_yaml(cls.sim.urls, loras=["sql-lora"]))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def test_models_lists_configured_models_and_adapters(self):
        st, _, data = request("GET", self.gw.base + "/v1/models")
        self.assertEqual(st, 200)
        body = json.loads(data)
        self.assertEqual(body["object"], "list")
        ids = {m["id"]: m for m in body["data"]}
        self.assertIn(MODEL, ids)
        self.assertEqual(ids["sql-lora"]["parent"], MODEL)
        self.assertEqual(ids[MODEL]["object"], "model")
        st, _, data = request("GET", self.gw.base + "/v1/models/sql-lora")
        self.assertEqual((st, json.loads(data)["id"]), (200, "sql-lora"))

    def test_non_streaming_chat_matches_direct_and_reports_usage(self):
        body = chat_body(MODEL, "Tell me about tokens", max_tokens=10)
        st, hdrs, via, _ = post_json(self.gw.base + "/v1/chat/completions", body)
        self.assertEqual(st, 200)
        self.assertTrue(hdrs.get("x-request-id"))
        self.assertEqual(via["object"], "chat.completion")
        self.assertEqual(via["usage"]["completion_tokens"], 10)
        st, _, direct, _ = post_json(self.sim.urls[0] + "/v1/chat/completions", body)
        self.assertEqual(via["usage"]["prompt_tokens"], direct["usage"]["prompt_tokens"])
        self.assertTrue(via["choices"][0]["message"]["content"])

    def test_streaming_events_relayed_in_order_unchanged(self):
        body = chat_body(MODEL, "Stream please", max_tokens=12, stream=True,
                         stream_options={"include_usage": True})
        st, hdrs, events, raw = sse_events(self.gw.base + "/v1/chat/completions", body)
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/event-stream"))
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"].get("role"), "assistant")
        # The client asked for usage: the usage chunk reaches it.
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 12)
        # The same event structure as the simulator sends directly (generated words differ).
        st, _, direct, _ = sse_events(self.sim.urls[0] + "/v1/chat/completions", body)
        self.assertEqual(len(direct), len(events))
        shape = lambda e: e if e == "[DONE]" else sorted(json.loads(e).keys())
        self.assertEqual([shape(e) for e in events], [shape(e) for e in direct])
        self.assertEqual(len(content_of(events[:-1]).split()), 12)

    def test_stream_bytes_relayed_verbatim_across_odd_framing(self):
        # A scripted upstream: events split across chunk boundaries, CRLF framing, comments,
        # multi-line data and named events. Every byte of every event must arrive unchanged.
        events = [b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
                  b": keep-alive comment\n\n",
                  b"event: message\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\u00e9\"}}]}\r\n\r\n",
                  b"data: {\"choices\":[{\"index\":0,\n",
                  b"data: \"delta\":{\"content\":\"multi\"}}]}\n\n",
                  b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
                  b"data: [DONE]\n\n"]
        stream = b"".join(events)
        pieces = [stream[i:i + 7] for i in range(0, len(stream), 7)]

        class Upstream(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for p in pieces:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            with Gateway(gateway_yaml([url], model="scripted")) as gw:
                body = chat_body("scripted", stream=True, stream_options={"include_usage": True})
                st, _, _, raw = sse_events(gw.base + "/v1/chat/completions", body)
                self.assertEqual(st, 200)
                self.assertEqual(raw, stream)
                # Without include_usage the usage chunk, and only it, is removed.
                body = chat_body("scripted", stream=True)
                st, _, _, raw = sse_events(gw.base + "/v1/chat/completions", body)
                self.assertEqual(raw, stream.replace(events[5], b""))
        finally:
            server.shutdown()

    def test_usage_injected_and_stripped_when_client_did_not_ask(self):
        before = self.gw.metric("tokenway_tokens_total", type="output")
        body = chat_body(MODEL, "No usage asked", max_tokens=7, stream=True)
        st, _, events, _ = sse_events(self.gw.base + "/v1/chat/completions", body)
        self.assertEqual(st, 200)
        self.assertEqual(events[-1], "[DONE]")
        for e in events[:-1]:
            obj = json.loads(e)
            self.assertNotIn("usage", obj, "the injected usage chunk must not reach the client")
            self.assertTrue(obj["choices"])
        self.assertTrue(twtest.wait_until(
            lambda: self.gw.metric("tokenway_tokens_total", type="output") >= before + 7))
        self.assertTrue(twtest.wait_until(lambda: any(
            l.get("usage_injected") and l["completion_tokens"] == 7 and l["prompt_tokens"] > 0
            for l in self.gw.access_log())))

    def test_completions_endpoint(self):
        body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 5}
        st, _, obj, _ = post_json(self.gw.base + "/v1/completions", body)
        self.assertEqual(st, 200)
        self.assertEqual(obj["object"], "text_completion")
        self.assertEqual(obj["usage"]["completion_tokens"], 5)
        body["stream"] = True
        st, _, events, _ = sse_events(self.gw.base + "/v1/completions", body)
        self.assertEqual(st, 200)
        self.assertEqual(events[-1], "[DONE]")
        self.assertTrue(content_of(events[:-1]))

    def test_lora_adapter_request_routed(self):
        st, _, obj, _ = post_json(self.gw.base + "/v1/chat/completions",
                                  chat_body("sql-lora", "SELECT", max_tokens=3))
        self.assertEqual(st, 200, obj)
        self.assertEqual(obj["model"], "sql-lora")

    def test_keep_alive_and_pipelining(self):
        body = json.dumps(chat_body(MODEL, "pipelined", max_tokens=2)).encode()
        req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.sendall(req * 3)
            data = b""
            while data.count(b"HTTP/1.1 200 OK") < 3 or not data.endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 3)

    def test_chunked_request_body(self):
        body = json.dumps(chat_body(MODEL, "chunked upload", max_tokens=2)).encode()
        half = len(body) // 2
        chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
        req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks)
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            # In pieces, so the body arrives over several reads after the head.
            for i in range(0, len(req), 40):
                s.sendall(req[i:i + 40])
                time.sleep(0.01)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK"), data[:200])

    def test_metrics_pass_promtool(self):
        if not shutil.which("promtool"):
            self.skipTest("promtool (Debian package prometheus) is not installed")
        post_json(self.gw.base + "/v1/chat/completions", chat_body(MODEL, "m", max_tokens=1))
        text = self.gw.metrics()
        proc = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                              capture_output=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        for name in ("tokenway_requests_total", "tokenway_request_duration_seconds_bucket",
                     "tokenway_requests_in_flight", "tokenway_upstream_errors_total",
                     "tokenway_retries_total", "tokenway_tokens_total"):
            self.assertIn(name, text)

    def test_admin_endpoints_and_config(self):
        st, _, data = request("GET", self.gw.admin + "/admin/endpoints")
        self.assertEqual(st, 200)
        eps = json.loads(data)["pools"][0]["endpoints"]
        self.assertEqual(sorted(e["url"] for e in eps), sorted(self.sim.urls))
        st, _, data = request("GET", self.gw.admin + "/admin/config")
        cfg = json.loads(data)
        self.assertEqual(cfg["pools"][0]["policy"], "least-request")
        st, _, _ = request("GET", self.gw.admin + "/readyz")
        self.assertEqual(st, 200)


if __name__ == "__main__":
    twtest.main()
