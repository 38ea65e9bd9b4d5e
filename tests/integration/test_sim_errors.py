"""Bad input gets vLLM-shaped errors and never takes tokenway-sim down."""
import json
import os
import unittest

import twtest
from test_sim_common import MODEL, chat, load_fixture, raw_exchange, shape


class SimErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = twtest.Sim(count=1, args=["--speed", "100", "--kv-blocks", "64"])
        cls.url = cls.sim.urls[0]
        cls.port = cls.sim.ports[0]

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def tearDown(self):
        # After every bad input the simulator still serves.
        st, _, body, _ = chat(self.url, "still alive?", 2)
        self.assertEqual(st, 200)
        self.assertIsNone(self.sim.proc.poll())

    def assert_vllm_error(self, st, body, status, fixture="error_400.json"):
        self.assertEqual(st, status)
        self.assertEqual(shape(body), shape(load_fixture(fixture)))
        self.assertEqual(body["object"], "error")
        self.assertEqual(body["code"], status)

    def test_invalid_json(self):
        st, _, body = twtest.request("POST", self.url + "/v1/chat/completions", b"{not json",
                                     {"Content-Type": "application/json"})
        self.assert_vllm_error(st, json.loads(body), 400)
        self.assertEqual(json.loads(body)["type"], "BadRequestError")

    def test_wrong_types(self):
        bad = [
            {"model": MODEL, "messages": "hello"},
            {"model": 5, "messages": [{"role": "user", "content": "x"}]},
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"},
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": 1},
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stop": 3},
            {"model": MODEL, "messages": [{"role": "user"}], "temperature": "hot"},
            {"model": MODEL},
            [1, 2, 3],
        ]
        for body in bad:
            st, _, parsed, raw = twtest.post_json(self.url + "/v1/chat/completions", body)
            with self.subTest(body=body):
                self.assert_vllm_error(st, parsed, 400)
        st, _, parsed, _ = twtest.post_json(self.url + "/v1/completions",
                                            {"model": MODEL, "prompt": 12})
        self.assert_vllm_error(st, parsed, 400)

    def test_unknown_model_is_404(self):
        st, _, body, _ = chat(self.url, "hi", 2, model="gpt-unknown")
        self.assert_vllm_error(st, body, 404, "error_404.json")
        self.assertEqual(body["type"], "NotFoundError")

    def test_context_overflow_is_400(self):
        # 64 blocks of 16 => max context 1024 tokens.
        st, _, body, _ = chat(self.url, "word " * 2000, 2)
        self.assert_vllm_error(st, body, 400)
        self.assertIn("maximum context length", body["message"])
        st, _, body, _ = chat(self.url, "short", 5000)
        self.assert_vllm_error(st, body, 400)

    def test_unknown_path_and_method(self):
        st, _, body = twtest.request("GET", self.url + "/v2/nothing")
        self.assertEqual(st, 404)
        st, _, body = twtest.request("GET", self.url + "/v1/chat/completions")
        self.assertEqual(st, 405)

    def test_huge_garbage_body(self):
        garbage = os.urandom(3 << 20)
        st, _, body = twtest.request("POST", self.url + "/v1/chat/completions", garbage,
                                     {"Content-Type": "application/json"})
        self.assert_vllm_error(st, json.loads(body), 400)

    def test_body_over_limit_is_rejected(self):
        reply = raw_exchange(self.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 999999999\r\n\r\n{")
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:100])

    def test_non_http_bytes(self):
        reply = raw_exchange(self.port, os.urandom(2000).replace(b"\r\n", b"..") + b"\r\n\r\n")
        self.assertTrue(reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:100])

    def test_client_disconnect_mid_request(self):
        raw_exchange(self.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100\r\n\r\n{\"model\"", read_timeout=0.2)


if __name__ == "__main__":
    twtest.main()
