"""The endpoint-picker front door (epp.listen): the real tokenway answering Envoy's ext_proc
protocol, driven by ext_proc_client (tests/support/ext_proc_client.cc), which plays Envoy's exact
message sequence over gRPC and forwards each picked request to a tokenway-sim fleet like Envoy's
ORIGINAL_DST cluster. Covers streaming and non-streaming requests in both body modes, the subset
hint, error answers (404, 429, 503), malformed, out-of-order and truncated streams and a stream
cancelled at every step, gRPC health, and that the EPP door counts and picks like the HTTP door."""
import hashlib
import json
import subprocess
import time
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, bin_path, chat_body, free_port, gateway_yaml, post_json, \
    wait_until

EXT_PROC = "envoy.service.ext_proc.v3.ExternalProcessor"
KEY = "sk-epp-tenant-0123456789"


def run_client(port, steps, timeout=120):
    """Runs ext_proc_client with `steps`; returns its JSON lines."""
    proc = subprocess.run([bin_path("ext_proc_client"), "--target", f"127.0.0.1:{port}"],
                          input=json.dumps(steps).encode(), capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"ext_proc_client exited {proc.returncode}: {proc.stderr.decode()}")
    lines = [json.loads(l) for l in proc.stdout.decode().splitlines() if l.startswith("{")]
    errors = [l for l in lines if l["event"] == "script_error"]
    if errors:
        raise AssertionError(f"bad script: {errors}")
    return lines


def exchanges(port, body, repeat=1, **options):
    step = {"op": "envoy", "body": body, "repeat": repeat}
    step.update(options)
    return [l for l in run_client(port, [step]) if l["event"] == "exchange"]


def epp_yaml(urls, epp_port, extra="", policy="least-request", model=MODEL):
    return gateway_yaml(urls, policy=policy, model=model,
                        extra=f"epp:\n  listen: 127.0.0.1:{epp_port}\n{extra}")


class EppGateway(Gateway):
    """A gateway with both front doors; ready once the gRPC health check answers SERVING."""

    def __init__(self, config_for_port, **kw):
        self.epp_port = free_port()
        super().__init__(config_for_port(self.epp_port), **kw)
        deadline = time.time() + 20
        while True:
            health = run_client(self.epp_port, [{"op": "health", "timeout_ms": 500}])[0]
            if health["status"] == "SERVING":
                break
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"EPP not serving: {health}\n" + "\n".join(self.err.lines))
            time.sleep(0.1)


def in_flight_settled(gw):
    return (gw.metric("tokenway_requests_in_flight") == 0
            and gw.metric("tokenway_endpoint_in_flight") == 0
            and gw.metric("tokenway_epp_streams") == 0)


class EppFrontDoor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(3, ["--model", MODEL, "--speed", "20"])
        cls.pool = {f"127.0.0.1:{p}" for p in cls.sim.ports}
        cls.gw = EppGateway(lambda port: epp_yaml(cls.sim.urls, port))

    @classmethod
    def tearDownClass(cls):
        code = cls.gw.stop()
        cls.sim.stop()
        assert code == 0, code

    def assert_picked_in_pool(self, ex):
        self.assertEqual(ex["outcome"], "completed", ex)
        self.assertEqual(ex["destination_header"], ex["destination_metadata"])
        self.assertIn(ex["served"], self.pool)
        self.assertEqual(ex["served"], ex["destinations"][0])
        self.assertTrue(set(ex["destinations"]) <= self.pool, ex["destinations"])
        self.assertEqual(len(set(ex["destinations"])), len(ex["destinations"]))

    def test_health_check_is_serving(self):
        lines = run_client(self.gw.epp_port, [{"op": "health", "service": ""},
                                              {"op": "health", "service": EXT_PROC}])
        self.assertEqual([l["status"] for l in lines], ["SERVING", "SERVING"], lines)

    def test_non_streaming_request_is_picked_forwarded_and_relayed(self):
        for mode in ("FULL_DUPLEX_STREAMED", "BUFFERED"):
            body = chat_body(MODEL, "Hello from Envoy", max_tokens=5, ignore_eos=True)
            for ex in exchanges(self.gw.epp_port, body, repeat=3, request_body_mode=mode,
                                response_body_mode=mode, chunk_size=7):
                self.assert_picked_in_pool(ex)
                self.assertEqual(ex["status"], 200, ex)
                self.assertEqual(json.loads(ex["forwarded_body"]), body)
                answer = json.loads(ex["body"])
                self.assertEqual(answer["usage"]["completion_tokens"], 5)
                self.assertEqual(answer["model"], MODEL)
                self.assertGreaterEqual(ex["response_chunks_received"], 1)
                self.assertEqual(ex["grpc_code"], 0, ex)

    def test_streaming_request_is_relayed_chunk_by_chunk(self):
        body = chat_body(MODEL, "Stream to me", max_tokens=12, stream=True, ignore_eos=True,
                         stream_options={"include_usage": True})
        for ex in exchanges(self.gw.epp_port, body, repeat=3):
            self.assert_picked_in_pool(ex)
            self.assertEqual(ex["status"], 200)
            self.assertTrue(ex["content_type"].startswith("text/event-stream"))
            events = [b[len("data: "):] for b in ex["body"].split("\n\n") if b.startswith("data: ")]
            self.assertEqual(events[-1], "[DONE]")
            usage = [json.loads(e)["usage"] for e in events[:-1] if json.loads(e).get("usage")]
            self.assertEqual(usage[-1]["completion_tokens"], 12)
            self.assertTrue(twtest.content_of(events))
            # Every chunk the Gateway sent was answered; no chunk was held back.
            self.assertEqual(ex["response_chunks_received"], ex["response_chunks_sent"])

    def test_large_prompt_in_many_chunks(self):
        text = "lorem ipsum dolor sit amet " * 8000  # ≈ 216 KB, like the 220 KB prompts of GIE #2928
        body = chat_body(MODEL, text, max_tokens=2)
        ex = exchanges(self.gw.epp_port, body, chunk_size=16384)[0]
        self.assert_picked_in_pool(ex)
        self.assertEqual(json.loads(ex["forwarded_body"]), body)

    def test_subset_hint_is_honoured(self):
        ports = sorted(self.pool)
        body = chat_body(MODEL, "subset", max_tokens=2)
        for subset, mode in (([ports[0]], "FULL_DUPLEX_STREAMED"), ([ports[0]], "BUFFERED"),
                             (ports[1:], "FULL_DUPLEX_STREAMED")):
            for ex in exchanges(self.gw.epp_port, body, repeat=6, subset=subset,
                                request_body_mode=mode, response_body_mode=mode):
                self.assert_picked_in_pool(ex)
                self.assertIn(ex["served"], subset)
                self.assertTrue(set(ex["destinations"]) <= set(subset), ex)
        # An empty hint, or one whose endpoints are not in the pool: 503, nothing forwarded.
        for subset in ([], ["10.255.255.1:8000"]):
            ex = exchanges(self.gw.epp_port, body, subset=subset)[0]
            self.assertEqual(ex["outcome"], "immediate", ex)
            self.assertEqual(ex["immediate_status"], 503, ex)
            self.assertIn("error", json.loads(ex["immediate_body"]))

    def test_unknown_model_is_404_with_openai_json(self):
        for mode in ("FULL_DUPLEX_STREAMED", "BUFFERED"):
            ex = exchanges(self.gw.epp_port, chat_body("no-such-model"), request_body_mode=mode,
                           response_body_mode=mode)[0]
            self.assertEqual(ex["outcome"], "immediate", ex)
            self.assertEqual(ex["immediate_status"], 404)
            err = json.loads(ex["immediate_body"])["error"]
            self.assertEqual(err["code"], "model_not_found")
            self.assertIn("message", err)

    def test_body_that_is_not_json_is_400(self):
        ex = exchanges(self.gw.epp_port, "this is not json")[0]
        self.assertEqual(ex["outcome"], "immediate", ex)
        self.assertEqual(ex["immediate_status"], 400)
        self.assertIn("error", json.loads(ex["immediate_body"]))

    def test_malformed_out_of_order_truncated_and_cancelled_streams(self):
        port = self.gw.epp_port
        headers = {":method": "POST", ":path": "/v1/chat/completions", ":authority": "gw",
                   ":scheme": "http", "content-type": "application/json"}
        config = {"request_body_mode": "FULL_DUPLEX_STREAMED",
                  "response_body_mode": "FULL_DUPLEX_STREAMED"}
        body = json.dumps(chat_body(MODEL, "step by step", max_tokens=3, stream=True,
                                    stream_options={"include_usage": True}))
        half = len(body) // 2
        sse = ('data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
               'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,'
               '"total_tokens":6}}\n\ndata: [DONE]\n\n')
        full = [
            {"op": "open"},
            {"op": "send", "request_headers": headers, "protocol_config": config},
            {"op": "send", "request_body": body[:half]},
            {"op": "send", "request_body": body[half:], "end_of_stream": True},
            {"op": "wait", "responses": 2, "timeout_ms": 5000},
            {"op": "send", "response_headers": {":status": "200",
                                                "content-type": "text/event-stream"}},
            {"op": "send", "response_body": sse[:40]},
            {"op": "send", "response_body": sse[40:], "end_of_stream": True},
            {"op": "wait", "responses": 5, "timeout_ms": 5000},
        ]
        scripts = {
            "garbage bytes": [{"op": "open"}, {"op": "send_raw", "hex": "ffffffff0a0b0c"},
                              {"op": "wait", "end": True, "timeout_ms": 3000}],
            "garbage after headers": [full[0], full[1], {"op": "send_raw", "text": "\x0a\xff"},
                                      {"op": "wait", "end": True, "timeout_ms": 3000}],
            "body before headers": [{"op": "open"},
                                    {"op": "send", "request_body": body, "end_of_stream": True},
                                    {"op": "wait", "end": True, "timeout_ms": 3000}],
            "response before request": [{"op": "open"},
                                        {"op": "send", "response_headers": {":status": "200"}},
                                        {"op": "wait", "end": True, "timeout_ms": 3000}],
            "empty message": [{"op": "open"}, {"op": "send", "message": {}},
                              {"op": "wait", "end": True, "timeout_ms": 3000}],
            "headers twice": [full[0], full[1], full[1],
                              {"op": "wait", "end": True, "timeout_ms": 3000}],
            "headers without path": [{"op": "open"},
                                     {"op": "send", "request_headers": {":method": "POST"},
                                      "protocol_config": config},
                                     {"op": "send", "request_body": body, "end_of_stream": True},
                                     {"op": "wait", "responses": 1, "timeout_ms": 3000}],
            "truncated body then half-close": full[:3] + [
                {"op": "writes_done"}, {"op": "wait", "end": True, "timeout_ms": 5000}],
            "body after its end": full[:4] + [
                {"op": "send", "request_body": "more"},
                {"op": "wait", "end": True, "timeout_ms": 3000}],
        }
        for k in range(1, len(full) + 1):
            scripts[f"cancelled after step {k}"] = full[:k] + [{"op": "cancel"}]
            scripts[f"half-closed after step {k}"] = full[:k] + [
                {"op": "writes_done"}, {"op": "wait", "end": True, "timeout_ms": 5000}]
        for name, steps in scripts.items():
            with self.subTest(name):
                lines = run_client(port, steps + [{"op": "finish"}], timeout=30)
                finish = [l for l in lines if l["event"] == "finish"][-1]
                # The stream ends (status ok, cancelled or an error): it never hangs the client.
                self.assertIn(finish["code"], range(0, 17), finish)
                self.assertIsNone(self.gw.proc.poll(), f"tokenway exited on: {name}\n"
                                  + "\n".join(self.gw.err.lines[-30:]))
        # The full, well-formed script is answered like Envoy expects.
        lines = run_client(port, full + [{"op": "writes_done"}, {"op": "finish"}])
        answers = [l for l in lines if l["event"] == "response"]
        kinds = [a["kind"] for a in answers]
        self.assertEqual(kinds[0], "request_headers", answers)
        self.assertIn("x-gateway-destination-endpoint", answers[0]["set_headers"])
        streamed = "".join(a.get("body", "") for a in answers if a["kind"] == "request_body")
        self.assertEqual(json.loads(streamed), json.loads(body))
        relayed = "".join(a.get("body", "") for a in answers if a["kind"] == "response_body")
        self.assertEqual(relayed, sse)
        # Still serving, and nothing left counted in flight.
        self.assert_picked_in_pool(exchanges(port, chat_body(MODEL, "still there"))[0])
        self.assertTrue(wait_until(lambda: in_flight_settled(self.gw), timeout=15),
                        self.gw.metrics())


class EppMatchesHttp(unittest.TestCase):
    """The EPP door runs the HTTP door's phases up to the pick: same picks, same accounting."""

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(4, ["--model", MODEL, "--speed", "20"])

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def test_same_request_picks_the_same_endpoint(self):
        # Session affinity by `user` is rendezvous hashing over the eligible endpoints: given the
        # same endpoint set (all healthy, none ejected), the pick depends only on the request, so
        # both doors must agree request by request whatever the load in between.
        routing = ("engine_metrics:\n  interval: 50ms\n  stale_after: 5s\n")
        cfg = lambda port: gateway_yaml(self.sim.urls, extra=f"epp:\n  listen: 127.0.0.1:{port}\n"
                                        + routing).replace(
            "    policy: least-request\n",
            "    scheduler:\n      scorers: [{name: session-affinity, weight: 1}]\n")
        with EppGateway(cfg) as gw:
            users = [f"user-{i}-{hashlib.sha1(str(i).encode()).hexdigest()[:6]}" for i in range(40)]
            http_pick = {}
            for i, u in enumerate(users):
                st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                          chat_body(MODEL, f"question {i}", max_tokens=2, user=u),
                                          headers={"X-Request-Id": f"http-{i}"})
                self.assertEqual(st, 200, raw)
            self.assertTrue(wait_until(lambda: len(gw.access_log()) >= len(users), timeout=10))
            for line in gw.access_log():
                if line["request_id"].startswith("http-"):
                    http_pick[int(line["request_id"][5:])] = line["endpoint"]
            steps = [{"op": "envoy", "body": chat_body(MODEL, f"question {i}", max_tokens=2, user=u)}
                     for i, u in enumerate(users)]
            epp = [l for l in run_client(gw.epp_port, steps) if l["event"] == "exchange"]
            self.assertEqual(len(epp), len(users))
            for i, ex in enumerate(epp):
                self.assertEqual(ex["outcome"], "completed", ex)
                self.assertEqual("http://" + ex["served"], http_pick[i], f"request {i}")
            self.assertGreaterEqual(len(set(http_pick.values())), 3)  # users spread over the fleet

    def test_usage_and_metrics_equal_for_the_same_traffic(self):
        def counters(gw):
            return {
                "requests": gw.metric("tokenway_requests_total", model=MODEL, code="200"),
                "input": gw.metric("tokenway_tokens_total", model=MODEL, type="input"),
                "output": gw.metric("tokenway_tokens_total", model=MODEL, type="output"),
                "genai_ops": gw.metric("gen_ai_client_operation_duration_seconds_count",
                                       gen_ai_request_model=MODEL),
                "not_found": gw.metric("tokenway_requests_total", model="no-such-model"),
            }

        traffic = []
        for i in range(6):
            traffic.append(chat_body(MODEL, f"count me {i} " * (i + 1), max_tokens=4 + i,
                                     ignore_eos=True))
            traffic.append(chat_body(MODEL, f"stream me {i}", max_tokens=3 + i, stream=True,
                                     ignore_eos=True, stream_options={"include_usage": True}))
        with EppGateway(lambda port: epp_yaml(self.sim.urls, port)) as gw:
            before = counters(gw)
            for body in traffic:
                if body.get("stream"):
                    st, _, _, _ = twtest.sse_events(gw.base + "/v1/chat/completions", body)
                else:
                    st, _, _, _ = post_json(gw.base + "/v1/chat/completions", body)
                self.assertEqual(st, 200)
            post_json(gw.base + "/v1/chat/completions", chat_body("no-such-model"))
            self.assertTrue(wait_until(lambda: in_flight_settled(gw), timeout=10))
            mid = counters(gw)
            steps = [{"op": "envoy", "body": b} for b in traffic]
            steps.append({"op": "envoy", "body": chat_body("no-such-model")})
            results = [l for l in run_client(gw.epp_port, steps) if l["event"] == "exchange"]
            self.assertEqual([r["outcome"] for r in results],
                             ["completed"] * len(traffic) + ["immediate"])
            self.assertTrue(wait_until(lambda: in_flight_settled(gw), timeout=10))
            self.assertTrue(wait_until(
                lambda: counters(gw)["requests"] - mid["requests"] == len(traffic), timeout=5))
            after = counters(gw)
            http = {k: mid[k] - before[k] for k in before}
            epp = {k: after[k] - mid[k] for k in before}
            self.assertEqual(http["requests"], len(traffic))
            self.assertGreater(http["output"], 0)
            self.assertEqual(epp, http)


class EppLimits(unittest.TestCase):
    def test_rate_limit_is_429_with_headers(self):
        with Sim(2, ["--model", MODEL, "--speed", "20"]) as sim:
            extra = f"""governance:
  backend: local
  tenants:
    - name: acme
      keys: [{{id: main, sha256: {hashlib.sha256(KEY.encode()).hexdigest()}}}]
      limits: {{requests_per_minute: 2}}
"""
            into_minute = time.time() % 60
            if into_minute > 50:
                time.sleep(60.2 - into_minute)
            with EppGateway(lambda port: epp_yaml(sim.urls, port, extra)) as gw:
                headers = {"authorization": "Bearer " + KEY}
                res = exchanges(gw.epp_port, chat_body(MODEL, "limited", max_tokens=2),
                                repeat=3, headers=headers)
                self.assertEqual([r["outcome"] for r in res], ["completed", "completed",
                                                               "immediate"], res)
                limited = res[2]
                self.assertEqual(limited["immediate_status"], 429)
                self.assertEqual(json.loads(limited["immediate_body"])["error"]["code"],
                                 "rate_limit_exceeded")
                self.assertGreaterEqual(int(limited["immediate_headers"]["retry-after"]), 1)
                # A request without a key never reaches the picker's pool.
                res = exchanges(gw.epp_port, chat_body(MODEL, "no key", max_tokens=2))
                self.assertEqual(res[0]["immediate_status"], 401, res)
                self.assertTrue(wait_until(lambda: in_flight_settled(gw), timeout=10))


if __name__ == "__main__":
    twtest.main()
