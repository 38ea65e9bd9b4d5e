"""tokenway-sim speaks vLLM's OpenAI API: shapes, streaming framing, usage, LoRA, fleets."""
import http.client
import json
import time
import unittest

import twtest
from test_sim_common import (MODEL, chat, chat_prompt_text, count_tokens, load_fixture,
                             load_stream_fixture, metric_value, metrics, shape)


class SimApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = twtest.Sim(count=1, args=["--speed", "100", "--seed", "7", "--lora", "sql-lora"])
        cls.url = cls.sim.urls[0]

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def test_chat_non_streaming_matches_recorded_vllm_shape(self):
        st, hdrs, body, _ = chat(self.url, "Hello there", 6)
        self.assertEqual(st, 200)
        self.assertEqual(hdrs["content-type"], "application/json")
        self.assertEqual(shape(body), shape(load_fixture("chat_completion.json")))
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["model"], MODEL)
        self.assertEqual(body["choices"][0]["finish_reason"], "length")
        usage = body["usage"]
        self.assertEqual(usage["completion_tokens"], 6)
        self.assertEqual(usage["prompt_tokens"],
                         count_tokens(chat_prompt_text([{"role": "user", "content": "Hello there"}])))
        self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + 6)
        # Every output token is one pseudo-word.
        self.assertEqual(count_tokens(body["choices"][0]["message"]["content"]), 6)

    def test_prompt_tokens_follow_the_documented_tokenizer_rule(self):
        texts = ["Hello,  world!!  \n\n\tTabs and   spaces", "supercalifragilisticexpialidocious x",
                 "caf\u00e9 na\u00efve \u65e5\u672c\u8a9e text", "a" * 100 + " " + "b1" * 30,
                 "  leading and trailing  ", "x=1; y=[2,3]; print(x+y)"]
        for text in texts:
            with self.subTest(text=text):
                st, _, body, _ = twtest.post_json(self.url + "/v1/completions",
                                                  {"model": MODEL, "prompt": text, "max_tokens": 1})
                self.assertEqual(st, 200)
                self.assertEqual(body["usage"]["prompt_tokens"], count_tokens(text))
        messages = [{"role": "system", "content": "Be terse."},
                    {"role": "user", "content": "What's 2+2?"}]
        st, _, body, _ = twtest.post_json(self.url + "/v1/chat/completions",
                                          {"model": MODEL, "messages": messages, "max_tokens": 1})
        self.assertEqual(body["usage"]["prompt_tokens"], count_tokens(chat_prompt_text(messages)))

    def test_completion_non_streaming_matches_recorded_vllm_shape(self):
        st, _, body, _ = twtest.post_json(self.url + "/v1/completions",
                                          {"model": MODEL, "prompt": "Paris is", "max_tokens": 5})
        self.assertEqual(st, 200)
        self.assertEqual(shape(body), shape(load_fixture("completion.json")))
        self.assertEqual(body["object"], "text_completion")
        self.assertEqual(body["usage"]["prompt_tokens"], count_tokens("Paris is"))
        self.assertEqual(body["usage"]["completion_tokens"], 5)

    def test_chat_stream_framing_and_include_usage(self):
        st, hdrs, events, raw = twtest.sse_events(
            self.url + "/v1/chat/completions",
            twtest.chat_body(MODEL, "Tell me a story", 4, stream=True,
                             stream_options={"include_usage": True}))
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/event-stream"))
        self.assertEqual(hdrs.get("transfer-encoding"), "chunked")
        self.assertEqual(events[-1], "[DONE]")
        self.assertTrue(raw.endswith(b"data: [DONE]\n\n"))
        chunks = [json.loads(e) for e in events[:-1]]
        fixture = [json.loads(e) for e in load_stream_fixture("chat_completion_stream.txt")[:-1]]
        self.assertEqual(shape(chunks[0]), shape(fixture[0]))  # role chunk
        self.assertEqual(chunks[0]["choices"][0]["delta"], {"role": "assistant", "content": ""})
        content = chunks[1:-1]
        self.assertEqual(len(content), 4)  # one SSE event per token
        for chunk in content[:-1]:
            self.assertEqual(shape(chunk), shape(fixture[1]))
            self.assertIsNone(chunk["choices"][0]["finish_reason"])
        self.assertEqual(content[-1]["choices"][0]["finish_reason"], "length")
        self.assertEqual(shape(chunks[-1]), shape(fixture[-1]))
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 4)
        ids = {c["id"] for c in chunks}
        self.assertEqual(len(ids), 1)

    def test_stream_without_include_usage_has_no_usage(self):
        st, _, events, _ = twtest.sse_events(self.url + "/v1/chat/completions",
                                             twtest.chat_body(MODEL, "Hi", 3, stream=True))
        self.assertEqual(st, 200)
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(len(chunks), 4)
        self.assertFalse(any("usage" in c for c in chunks))

    def test_completion_stream_matches_recorded_shape(self):
        st, _, events, _ = twtest.sse_events(
            self.url + "/v1/completions",
            {"model": MODEL, "prompt": "Paris is", "max_tokens": 2, "stream": True,
             "stream_options": {"include_usage": True}})
        self.assertEqual(st, 200)
        fixture = load_stream_fixture("completion_stream.txt")
        self.assertEqual(len(events), len(fixture))
        for got, want in zip(events[:-1], fixture[:-1]):
            self.assertEqual(shape(json.loads(got)), shape(json.loads(want)))

    def test_each_token_is_written_when_its_step_completes(self):
        # Its own simulator at speed 2 so that ~3.6 ms steps are far apart from each other.
        with twtest.Sim(count=1, args=["--speed", "2"]) as sim:
            conn = http.client.HTTPConnection("127.0.0.1", sim.ports[0], timeout=10)
            body = json.dumps(twtest.chat_body(MODEL, "Hi", 30, stream=True))
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            arrivals = []
            while True:
                line = resp.fp.readline()
                if not line:
                    break
                if line.startswith(b"data: "):
                    arrivals.append(time.monotonic())
                    if line.strip() == b"data: [DONE]":
                        break
            conn.close()
        # Role chunk, 30 content events, [DONE]; spread over ~29 steps, not written at once.
        self.assertEqual(len(arrivals), 32)
        self.assertGreater(arrivals[-2] - arrivals[1], 0.5 * 29 * 0.0072 / 2)
        gaps = [b - a for a, b in zip(arrivals[1:-2], arrivals[2:-1])]
        self.assertGreater(sorted(gaps)[len(gaps) // 2], 0.001)  # median gap ~3.6 ms

    def test_stop_string_ends_with_finish_reason_stop(self):
        _, _, first, _ = chat(self.url, "stop test", 5, seed=42)
        words = first["choices"][0]["message"]["content"].split(" ")
        stop = words[3]  # the third generated word (leading space splits to "")
        st, _, body, _ = chat(self.url, "stop test", 5, seed=42, stop=[" " + stop])
        self.assertEqual(st, 200)
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")
        self.assertEqual(body["choices"][0]["message"]["content"], " " + " ".join(words[1:3]))

    def test_max_completion_tokens_and_sampled_lengths(self):
        _, _, body, _ = twtest.post_json(
            self.url + "/v1/chat/completions",
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
             "max_completion_tokens": 3})
        self.assertEqual(body["usage"]["completion_tokens"], 3)
        _, _, body, _ = twtest.post_json(
            self.url + "/v1/chat/completions",
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
        self.assertGreaterEqual(body["usage"]["completion_tokens"], 1)
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")

    def test_repeated_long_prompt_reports_cached_tokens(self):
        text = " ".join(f"word{i}" for i in range(600))
        _, _, first, _ = chat(self.url, text, 2)
        _, _, second, _ = chat(self.url, text, 2)
        self.assertEqual(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0)
        cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        self.assertGreater(cached, 0)
        self.assertEqual(cached % 16, 0)
        self.assertLessEqual(cached, second["usage"]["prompt_tokens"])
        m = metrics(self.url)
        self.assertGreaterEqual(metric_value(m, "vllm:prefix_cache_hits_total"), cached)

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.ports[0], timeout=10)
        for i in range(5):
            stream = i % 2 == 1
            conn.request("POST", "/v1/chat/completions",
                         json.dumps(twtest.chat_body(MODEL, "again", 2, stream=stream)),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            self.assertEqual(resp.status, 200)
            self.assertTrue(data.endswith(b"data: [DONE]\n\n") if stream else data.endswith(b"}"))
        conn.close()

    def test_models_and_lora_adapters(self):
        st, _, body = twtest.request("GET", self.url + "/v1/models")
        models = json.loads(body)
        self.assertEqual(shape(models["data"][0]), shape(load_fixture("models.json")["data"][0]))
        ids = [m["id"] for m in models["data"]]
        self.assertEqual(ids[0], MODEL)
        self.assertIn("sql-lora", ids)
        lora = next(m for m in models["data"] if m["id"] == "sql-lora")
        self.assertEqual(lora["parent"], MODEL)

        st, _, body, raw = twtest.post_json(self.url + "/v1/load_lora_adapter",
                                            {"lora_name": "chat-lora", "lora_path": "/a/chat"})
        self.assertEqual(st, 200, raw)
        self.assertIn(b"added successfully", raw)
        st, _, body, _ = twtest.post_json(self.url + "/v1/load_lora_adapter",
                                          {"lora_name": "chat-lora", "lora_path": "/a/chat"})
        self.assertEqual(st, 400)
        self.assertEqual(body["type"], "BadRequestError")
        st, _, body, _ = chat(self.url, "use the adapter", 3, model="chat-lora")
        self.assertEqual(st, 200)
        self.assertEqual(body["model"], "chat-lora")
        m = metrics(self.url)
        self.assertIn('vllm:lora_requests_info{max_lora="4"', m)
        st, _, _, raw = twtest.post_json(self.url + "/v1/unload_lora_adapter",
                                         {"lora_name": "chat-lora"})
        self.assertEqual(st, 200)
        self.assertIn(b"removed successfully", raw)
        st, _, body, _ = chat(self.url, "use the adapter", 3, model="chat-lora")
        self.assertEqual(st, 404)
        self.assertEqual(body["type"], "NotFoundError")
        st, _, _, _ = twtest.post_json(self.url + "/v1/unload_lora_adapter",
                                       {"lora_name": "chat-lora"})
        self.assertEqual(st, 404)

    def test_expect_100_continue_is_answered_before_the_body(self):
        import socket
        body = json.dumps(twtest.chat_body(MODEL, "curl style", 2)).encode()
        s = socket.create_connection(("127.0.0.1", self.sim.ports[0]), timeout=5)
        try:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Type: application/json\r\nConnection: close\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n"))
            s.sendall(body)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        finally:
            s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK"), reply[:80])

    def test_health(self):
        st, _, body = twtest.request("GET", self.url + "/health")
        self.assertEqual((st, body), (200, b""))


class SimFleetTest(unittest.TestCase):
    def test_sigterm_drains_requests_in_flight(self):
        import signal
        import socket
        import subprocess
        import threading
        proc = subprocess.Popen([twtest.bin_path("tokenway-sim"), "--port", "0", "--speed", "4"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            port = json.loads(proc.stdout.readline())["endpoints"][0]["port"]
            result = {}

            def stream():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                body = json.dumps({"model": MODEL, "max_tokens": 60, "ignore_eos": True,
                                   "stream": True,
                                   "messages": [{"role": "user", "content": "hi"}]})
                conn.request("POST", "/v1/chat/completions", body,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                result["status"] = resp.status
                result["body"] = resp.read()
                conn.close()

            t = threading.Thread(target=stream)
            t.start()
            time.sleep(0.2)  # the stream is running (60 tokens take ~0.5 s at speed 4)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.05)
            with self.assertRaises(OSError):  # listener closed: no new connections
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            t.join(30)
            self.assertEqual(result.get("status"), 200)
            self.assertTrue(result["body"].rstrip().endswith(b"data: [DONE]"), result["body"][-200:])
            self.assertIn(b"\"finish_reason\":\"length\"", result["body"])
            self.assertEqual(proc.wait(10), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    def test_count_serves_independent_endpoints_with_per_endpoint_profiles(self):
        with twtest.Sim(count=3, args=["--speed", "100", "--profiles", "h100-8b,l4-8b"]) as sim:
            self.assertEqual(len(set(sim.ports)), 3)
            for url in sim.urls:
                st, _, body, _ = chat(url, "hi", 2)
                self.assertEqual(st, 200)
            blocks = []
            for url in sim.urls:
                for line in metrics(url).splitlines():
                    if line.startswith("vllm:cache_config_info"):
                        blocks.append(line.split('num_gpu_blocks="')[1].split('"')[0])
            self.assertEqual(blocks, ["26306", "2312", "26306"])
            # Each engine counts only its own traffic.
            self.assertEqual(metric_value(metrics(sim.urls[0]), "vllm:generation_tokens_total"), 2)

    def test_consecutive_ports_from_a_fixed_first_port(self):
        import socket

        def consecutive_free_ports():
            # A kernel-chosen port whose successor is also free right now (outgoing connections
            # of parallel tests take ephemeral ports, so the successor is often busy).
            with socket.socket() as a:
                a.bind(("127.0.0.1", 0))
                first = a.getsockname()[1]
                with socket.socket() as b:
                    try:
                        b.bind(("127.0.0.1", first + 1))
                    except OSError:
                        return None
            return first

        import subprocess
        # Another process may grab port+1 between our probe and the bind; then the simulator
        # must fail cleanly (exit 1, no ready line) and we try another port.
        for _ in range(40):
            port = consecutive_free_ports()
            if port is None:
                continue
            proc = subprocess.Popen([twtest.bin_path("tokenway-sim"), "--port", str(port),
                                     "--count", "2"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
            line = proc.stdout.readline()
            if not line:
                proc.stdout.close()
                self.assertEqual(proc.wait(10), 1)
                continue
            try:
                ready = json.loads(line)
                self.assertEqual([e["port"] for e in ready["endpoints"]], [port, port + 1])
                self.assertEqual(ready["endpoints"][0]["url"], f"http://127.0.0.1:{port}")
                self.assertEqual(chat(f"http://127.0.0.1:{port + 1}", "hi", 1)[0], 200)
            finally:
                proc.terminate()
                self.assertEqual(proc.wait(10), 0)
                proc.stdout.close()
            return
        self.fail("no two consecutive free ports found")

if __name__ == "__main__":
    twtest.main()
