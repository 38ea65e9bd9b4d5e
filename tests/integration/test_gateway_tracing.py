"""OpenTelemetry tracing: W3C traceparent in and out, one OTLP/HTTP JSON span per sampled request.

Runs the real gateway against tokenway-sim (and, where the test must see the headers the
upstream receives, a small Python upstream), exporting to an in-test OTLP receiver that checks
every body against the OTLP JSON encoding rules: lowercase hex ids, lowerCamelCase keys,
integer enums, int64 as decimal strings.
"""
import http.server
import json
import re
import threading
import time
import unittest

from twtest import (MODEL, Gateway, Sim, chat_body, free_port, main, post_json, sse_events,
                    wait_until)

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_PARENT = "b7ad6b7169203331"
SPAN_KEYS = {"traceId", "spanId", "parentSpanId", "traceState", "flags", "name", "kind",
             "startTimeUnixNano", "endTimeUnixNano", "attributes", "status"}
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


def otlp_violations(doc):
    """Everything in an ExportTraceServiceRequest JSON body that breaks the OTLP JSON rules."""
    bad = []

    def keys(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if not CAMEL.match(k):
                    bad.append(f"{where}: key {k!r} is not lowerCamelCase")
                keys(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                keys(v, f"{where}[{i}]")

    keys(doc, "$")
    for rs in doc.get("resourceSpans", []):
        attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
        if "stringValue" not in attrs.get("service.name", {}):
            bad.append("resource has no service.name")
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                if set(s) - SPAN_KEYS:
                    bad.append(f"unknown span keys {set(s) - SPAN_KEYS}")
                if not re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) or set(s["traceId"]) == {"0"}:
                    bad.append(f"traceId {s['traceId']!r}")
                for k in ("spanId", "parentSpanId"):
                    if k in s and (not re.fullmatch(r"[0-9a-f]{16}", s[k]) or set(s[k]) == {"0"}):
                        bad.append(f"{k} {s[k]!r}")
                if not isinstance(s["kind"], int) or s["kind"] != 3:
                    bad.append(f"kind {s['kind']!r} is not the integer 3 (CLIENT)")
                for k in ("startTimeUnixNano", "endTimeUnixNano"):
                    if not isinstance(s[k], str) or not s[k].isdigit():
                        bad.append(f"{k} {s[k]!r} is not a decimal string")
                if int(s["endTimeUnixNano"]) < int(s["startTimeUnixNano"]):
                    bad.append("span ends before it starts")
                if abs(int(s["startTimeUnixNano"]) / 1e9 - time.time()) > 600:
                    bad.append("startTimeUnixNano is not Unix time")
                if "code" in s.get("status", {}) and not isinstance(s["status"]["code"], int):
                    bad.append("status.code is not an integer")
                for a in s["attributes"]:
                    v = a["value"]
                    if "intValue" in v and not (isinstance(v["intValue"], str) and
                                                re.fullmatch(r"-?\d+", v["intValue"])):
                        bad.append(f"{a['key']}: intValue {v['intValue']!r} is not a string")
    return bad


class QuietServer(http.server.ThreadingHTTPServer):
    """Peers that hang up mid-answer (an exporter past its timeout) are expected here."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class OtlpReceiver:
    """An OTLP/HTTP collector on a free port: POST /v1/traces, JSON."""

    def __init__(self):
        self.spans = []
        self.posts = 0
        self.violations = []
        self.statuses = []  # answers to give, in order; then 200
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.posts += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    delay = receiver.delay
                if delay:
                    time.sleep(delay)
                if self.path != "/v1/traces" or \
                        self.headers.get("Content-Type") != "application/json":
                    receiver.violations.append(f"POST {self.path} {self.headers.get('Content-Type')}")
                if status == 200:
                    doc = json.loads(body)
                    with receiver.lock:
                        receiver.violations += otlp_violations(doc)
                        for rs in doc["resourceSpans"]:
                            for ss in rs["scopeSpans"]:
                                receiver.spans += ss["spans"]
                answer = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class RecordingUpstream:
    """An OpenAI-compatible upstream that records the headers of every request it receives."""

    def __init__(self):
        self.heads = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.answer(b"ok", "text/plain")

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                upstream.heads.append(self.headers)
                body = json.dumps({
                    "id": "cmpl-1", "object": "chat.completion", "model": "served-model",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "hi"}}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
                self.answer(body.encode(), "application/json")

            def answer(self, body, content_type):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def traced_yaml(urls, endpoint, ratio=1, extra_tracing="", scheduler=True):
    eps = "\n".join(f"      - {u}" for u in urls)
    sched = ("    scheduler:\n      scorers: [{name: queue-depth, weight: 2}, "
             "{name: kv-cache, weight: 1}]\n") if scheduler else ""
    return f"""
pools:
  - name: p
{sched}    endpoints:
{eps}
models:
  - name: {MODEL}
    pool: p
engine_metrics:
  enabled: {"true" if scheduler else "false"}
health:
  active:
    enabled: false
tracing:
  enabled: true
  endpoint: {endpoint}
  sample_ratio: {ratio}
  batch_interval: 50ms
{extra_tracing}
"""


def attrs(span):
    out = {}
    for a in span["attributes"]:
        (kind, value), = a["value"].items()
        out[a["key"]] = int(value) if kind == "intValue" else value
    return out


def traceparent(trace=CLIENT_TRACE, parent=CLIENT_PARENT, flags="01"):
    return f"00-{trace}-{parent}-{flags}"


class TracingWithSim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=2)
        cls.receiver = OtlpReceiver()
        cls.gw = Gateway(traced_yaml(cls.sim.urls, cls.receiver.url))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()
        cls.receiver.stop()

    def test_one_span_per_request_with_genai_and_routing_attributes(self):
        n = 6
        sent = {}  # trace id -> (request id, usage, stream)
        for i in range(n):
            trace = f"{i + 1:032x}"
            headers = {"traceparent": traceparent(trace=trace), "tracestate": "vendor=abc,x=1"}
            stream = i % 2 == 1
            if stream:
                st, hdrs, events, _ = sse_events(
                    self.gw.base + "/v1/chat/completions",
                    chat_body(MODEL, f"trace me {i}", stream=True,
                              stream_options={"include_usage": True}), headers)
                self.assertEqual(st, 200)
                usage = [json.loads(e)["usage"] for e in events
                         if e != "[DONE]" and json.loads(e).get("usage")][-1]
            else:
                st, hdrs, body, _ = post_json(self.gw.base + "/v1/chat/completions",
                                              chat_body(MODEL, f"trace me {i}"), headers)
                self.assertEqual(st, 200)
                usage = body["usage"]
            sent[trace] = (hdrs["x-request-id"], usage, stream)
        self.assertTrue(wait_until(
            lambda: len([s for s in self.receiver.spans if s["traceId"] in sent]) >= n, 10))
        time.sleep(0.2)
        spans = {s["traceId"]: s for s in self.receiver.spans if s["traceId"] in sent}
        self.assertEqual(len(spans), n)
        self.assertEqual(self.receiver.violations, [])
        log = {line["request_id"]: line for line in self.gw.access_log()}
        for trace, (rid, usage, stream) in sent.items():
            span = spans[trace]
            a = attrs(span)
            self.assertEqual(span["parentSpanId"], CLIENT_PARENT)
            self.assertEqual(span["traceState"], "vendor=abc,x=1")
            self.assertEqual(span["name"], f"chat {MODEL}")
            self.assertEqual(span["flags"], 1)
            self.assertEqual(a["gen_ai.operation.name"], "chat")
            self.assertEqual(a["gen_ai.provider.name"], "vllm")
            self.assertEqual(a["gen_ai.request.model"], MODEL)
            self.assertIn("gen_ai.response.model", a)
            self.assertEqual(a["gen_ai.usage.input_tokens"], usage["prompt_tokens"])
            self.assertEqual(a["gen_ai.usage.output_tokens"], usage["completion_tokens"])
            self.assertEqual(a["tokenway.request_id"], rid)
            self.assertEqual(a["tokenway.endpoint"], log[rid]["endpoint"])
            self.assertIn(a["tokenway.endpoint"], self.sim.urls)
            self.assertEqual(f"http://{a['server.address']}:{a['server.port']}",
                             a["tokenway.endpoint"])
            self.assertEqual(a["tokenway.pool"], "p")
            self.assertEqual(a["tokenway.retries"], 0)
            self.assertIn("tokenway.queue_time_ms", a)
            self.assertEqual(a["http.response.status_code"], 200)
            for k in ("tokenway.score.total", "tokenway.score.queue_depth",
                      "tokenway.score.kv_cache"):
                self.assertIn(k, a)
            self.assertAlmostEqual(a["tokenway.score.total"],
                                   2 * a["tokenway.score.queue_depth"] +
                                   a["tokenway.score.kv_cache"], places=6)
            self.assertNotIn("error.type", a)
            self.assertEqual(a.get("gen_ai.request.stream", False), stream)
            if stream:
                self.assertGreater(a["gen_ai.response.time_to_first_chunk"], 0)
        self.assertGreaterEqual(self.gw.metric("tokenway_trace_spans_total", outcome="exported"), n)

    def test_error_span_has_error_type_and_status(self):
        trace = "e" * 32
        st, _, _, _ = post_json(self.gw.base + "/v1/chat/completions",
                                chat_body("no-such-model"), {"traceparent": traceparent(trace)})
        self.assertEqual(st, 404)
        self.assertTrue(wait_until(
            lambda: any(s["traceId"] == trace for s in self.receiver.spans), 10))
        span = next(s for s in self.receiver.spans if s["traceId"] == trace)
        self.assertEqual(span["status"]["code"], 2)
        self.assertEqual(attrs(span)["error.type"], "model_not_found")
        self.assertEqual(span["status"]["message"], "model_not_found")
        self.assertEqual(attrs(span)["http.response.status_code"], 404)

    def test_unsampled_parent_is_not_exported(self):
        trace = "d" * 32
        st, _, _, _ = post_json(self.gw.base + "/v1/chat/completions", chat_body(MODEL),
                                {"traceparent": traceparent(trace, flags="00")})
        self.assertEqual(st, 200)
        time.sleep(0.5)
        self.assertFalse(any(s["traceId"] == trace for s in self.receiver.spans))


class TracingPropagation(unittest.TestCase):
    """What the upstream receives, seen by a recording Python upstream."""

    @classmethod
    def setUpClass(cls):
        cls.up = RecordingUpstream()
        cls.receiver = OtlpReceiver()
        cls.gw = Gateway(traced_yaml([cls.up.url], cls.receiver.url, scheduler=False))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.up.stop()
        cls.receiver.stop()

    def send(self, headers):
        before = len(self.up.heads)
        st, hdrs, body, _ = post_json(self.gw.base + "/v1/chat/completions", chat_body(MODEL),
                                      headers)
        self.assertEqual(st, 200)
        self.assertEqual(len(self.up.heads), before + 1)
        rid = hdrs["x-request-id"]
        self.assertTrue(wait_until(
            lambda: any(attrs(s)["tokenway.request_id"] == rid for s in self.receiver.spans), 10))
        span = next(s for s in self.receiver.spans if attrs(s)["tokenway.request_id"] == rid)
        return self.up.heads[-1], span

    def test_upstream_gets_client_trace_with_gateway_span_as_parent(self):
        head, span = self.send({"traceparent": traceparent(), "tracestate": "congo=t61rcWkgMzE"})
        self.assertEqual(head.get_all("traceparent"), [f"00-{CLIENT_TRACE}-{span['spanId']}-01"])
        self.assertEqual(head.get_all("tracestate"), ["congo=t61rcWkgMzE"])
        self.assertEqual(span["traceId"], CLIENT_TRACE)
        self.assertEqual(span["parentSpanId"], CLIENT_PARENT)
        a = attrs(span)
        self.assertEqual(a["gen_ai.response.model"], "served-model")
        self.assertEqual(a["gen_ai.usage.input_tokens"], 7)
        self.assertEqual(a["gen_ai.usage.output_tokens"], 3)
        self.assertEqual(self.receiver.violations, [])

    def test_without_traceparent_a_new_trace_starts(self):
        head, span = self.send({})
        self.assertNotIn("parentSpanId", span)
        self.assertEqual(head.get_all("traceparent"),
                         [f"00-{span['traceId']}-{span['spanId']}-01"])

    def test_invalid_traceparent_is_ignored(self):
        for bad in (traceparent().upper().replace("0A", "0A"),  # uppercase hex
                    traceparent(trace="0" * 32),  # all-zero trace id
                    traceparent(parent="0" * 16),  # all-zero parent id
                    "ff" + traceparent()[2:],  # version ff
                    traceparent()[:-1],  # too short
                    traceparent() + "-extra"):  # version 00 has no more fields
            head, span = self.send({"traceparent": bad, "tracestate": "a=b"})
            self.assertNotEqual(span["traceId"], CLIENT_TRACE, bad)
            self.assertNotIn("parentSpanId", span, bad)
            # The client's tracestate belongs to the ignored trace.
            self.assertIsNone(head.get_all("tracestate"), bad)
            self.assertEqual(head.get_all("traceparent"),
                             [f"00-{span['traceId']}-{span['spanId']}-01"], bad)

    def test_future_version_with_extra_fields_is_accepted(self):
        head, span = self.send({"traceparent": "cc" + traceparent()[2:] + "-what-comes-next"})
        self.assertEqual(span["traceId"], CLIENT_TRACE)
        self.assertEqual(head.get_all("traceparent"), [f"00-{CLIENT_TRACE}-{span['spanId']}-01"])


class TracingSampling(unittest.TestCase):
    def test_ratio_zero_exports_nothing_but_still_propagates(self):
        up = RecordingUpstream()
        receiver = OtlpReceiver()
        gw = Gateway(traced_yaml([up.url], receiver.url, ratio=0, scheduler=False))
        try:
            for _ in range(10):
                st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL))
                self.assertEqual(st, 200)
            time.sleep(0.5)
            self.assertEqual(receiver.spans, [])
            self.assertEqual(receiver.posts, 0)
            for head in up.heads:
                tp = head.get_all("traceparent")
                self.assertEqual(len(tp), 1)
                self.assertRegex(tp[0], r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
            self.assertEqual(len({h["traceparent"] for h in up.heads}), 10)
        finally:
            gw.stop()
            up.stop()
            receiver.stop()

    def test_tracing_off_passes_client_traceparent_through(self):
        up = RecordingUpstream()
        yaml = traced_yaml([up.url], "http://127.0.0.1:9", scheduler=False).replace(
            "enabled: true\n  endpoint", "enabled: false\n  endpoint")
        gw = Gateway(yaml)
        try:
            st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL),
                                    {"traceparent": traceparent(), "tracestate": "a=b"})
            self.assertEqual(st, 200)
            self.assertEqual(up.heads[-1].get_all("traceparent"), [traceparent()])
            self.assertEqual(up.heads[-1].get_all("tracestate"), ["a=b"])
        finally:
            gw.stop()
            up.stop()


class TracingExportFailures(unittest.TestCase):
    def setUp(self):
        self.sim = Sim(count=1)

    def tearDown(self):
        self.sim.stop()

    def run_requests(self, gw, n):
        for i in range(n):
            st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, f"r{i}"))
            self.assertEqual(st, 200)

    def test_receiver_down_requests_succeed_and_failures_are_counted(self):
        dead = f"http://127.0.0.1:{free_port()}"
        gw = Gateway(traced_yaml(self.sim.urls, dead, scheduler=False,
                                 extra_tracing="  timeout: 500ms"))
        try:
            self.run_requests(gw, 20)
            self.assertTrue(wait_until(
                lambda: gw.metric("tokenway_trace_spans_total", outcome="failed") >= 20, 10))
            self.assertGreaterEqual(
                gw.metric("tokenway_trace_export_batches_total", result="failure"), 1)
            self.assertEqual(gw.metric("tokenway_trace_spans_total", outcome="exported"), 0)
        finally:
            gw.stop()

    def test_slow_receiver_does_not_hold_requests_and_drops_are_counted(self):
        receiver = OtlpReceiver()
        receiver.delay = 3.0
        gw = Gateway(traced_yaml(self.sim.urls, receiver.url, scheduler=False,
                                 extra_tracing="  timeout: 1s\n  queue_size: 4\n  batch_size: 1"))
        try:
            self.run_requests(gw, 1)
            self.assertTrue(wait_until(lambda: receiver.posts >= 1, 5))
            # The exporter now waits on the receiver; requests go on regardless.
            self.run_requests(gw, 20)
            self.assertGreaterEqual(gw.metric("tokenway_trace_spans_total", outcome="dropped"), 10)
            self.assertTrue(wait_until(
                lambda: gw.metric("tokenway_trace_spans_total", outcome="failed") >= 1, 10))
        finally:
            gw.stop()
            receiver.stop()

    def test_retries_on_503_but_not_on_400(self):
        receiver = OtlpReceiver()
        gw = Gateway(traced_yaml(self.sim.urls, receiver.url, scheduler=False))
        try:
            receiver.statuses = [503]
            self.run_requests(gw, 1)
            self.assertTrue(wait_until(lambda: len(receiver.spans) == 1, 10))
            self.assertEqual(receiver.posts, 2)
            self.assertEqual(gw.metric("tokenway_trace_export_batches_total", result="retry"), 1)
            receiver.statuses = [400]
            self.run_requests(gw, 1)
            self.assertTrue(wait_until(
                lambda: gw.metric("tokenway_trace_spans_total", outcome="failed") == 1, 10))
            time.sleep(0.5)
            self.assertEqual(receiver.posts, 3)
            self.assertEqual(len(receiver.spans), 1)
        finally:
            gw.stop()
            receiver.stop()


if __name__ == "__main__":
    main()
