"""External payload processors through the real gateway and tokenway-sim: a Python webhook (an
http.server in this test) that denies prompts containing a word, mutates others (max_tokens cut,
which the sim's completion length shows) and allows the rest; a webhook that hangs, behind
fail-closed (503 payload_processor_unavailable) and fail-open (the request goes on, flagged); and
the ext_proc_guardrail binary (Envoy's ext_proc) that denies and mutates, and one that hangs.
The per-processor metrics are checked after each case."""
import json
import subprocess
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import twtest
from twtest import MODEL, Gateway, Sim, bin_path, chat_body, post_json

HANG_CLOSED = "hang-closed-model"
HANG_OPEN = "hang-open-model"
XP = "ext-proc-model"
XP_HANG = "ext-proc-hang-model"
DENY_WORD = "forbidden"


class Webhook(BaseHTTPRequestHandler):
    """/guard: deny DENY_WORD (403, own code), mutate "shorten" prompts to max_tokens 3, else
    allow. /hang: answers after 3 s."""
    calls = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(length))
        Webhook.calls.append((self.path, req))
        if self.path == "/hang":
            time.sleep(3)
            answer = {"action": "allow"}
        elif DENY_WORD in req["prompt"]:
            answer = {"action": "deny", "reason": "the prompt names a forbidden topic",
                      "status": 403, "code": "topic_denied"}
        elif "shorten" in req["prompt"]:
            body = dict(req["body"])
            body["max_tokens"] = 3
            answer = {"action": "mutate", "body": body}
        else:
            answer = {"action": "allow"}
        data = json.dumps(answer).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the gateway gave up (timeout)

    def log_message(self, *args):
        pass


def start_guardrail(*args):
    proc = subprocess.Popen([bin_path("ext_proc_guardrail"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    line = proc.stdout.readline().decode()
    if not line.startswith("port "):
        proc.kill()
        raise RuntimeError("ext_proc_guardrail did not start: " + proc.stderr.read().decode())
    return proc, int(line.split()[1])


class ExternalProcessorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.webhook = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
        cls.webhook.daemon_threads = True
        threading.Thread(target=cls.webhook.serve_forever, daemon=True).start()
        wh = f"http://127.0.0.1:{cls.webhook.server_address[1]}"
        cls.guard, guard_port = start_guardrail("--deny-word", DENY_WORD, "--max-tokens", "4")
        cls.guard_hang, hang_port = start_guardrail("--hang")
        cls.sim = Sim(count=1, args=["--speed", "200", "--lora", HANG_CLOSED, "--lora", HANG_OPEN,
                                     "--lora", XP, "--lora", XP_HANG])
        eps = "\n".join(f"      - {u}" for u in cls.sim.urls)
        models = "".join(f"  - name: {m}\n    pool: p\n    parent: {MODEL}\n"
                         for m in (HANG_CLOSED, HANG_OPEN, XP, XP_HANG))
        cls.gw = Gateway(f"""
pools:
  - name: p
    endpoints:
{eps}
models:
  - name: {MODEL}
    pool: p
{models}
processors:
  - name: guard
    type: webhook
    match: {{models: ["{MODEL}"]}}
    url: {wh}/guard
    timeout: 2s
  - name: hang_closed
    type: webhook
    match: {{models: [{HANG_CLOSED}]}}
    url: {wh}/hang
    timeout: 200ms
    failure_mode: closed
  - name: hang_open
    type: webhook
    match: {{models: [{HANG_OPEN}]}}
    url: {wh}/hang
    timeout: 200ms
    failure_mode: open
  - name: xp
    type: ext_proc
    match: {{models: [{XP}]}}
    target: 127.0.0.1:{guard_port}
    timeout: 2s
  - name: xp_hang
    type: ext_proc
    match: {{models: [{XP_HANG}]}}
    target: 127.0.0.1:{hang_port}
    timeout: 200ms
""")

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()
        for p in (cls.guard, cls.guard_hang):
            p.terminate()
            p.wait(timeout=10)
        cls.webhook.shutdown()

    def calls(self, processor, outcome):
        return self.gw.metric("tokenway_payload_external_calls_total", processor=processor,
                              outcome=outcome)

    def post(self, model, text, max_tokens=20, **headers):
        return post_json(self.gw.base + "/v1/chat/completions",
                         chat_body(model, text, max_tokens=max_tokens), headers=headers)

    # --- webhook ---

    def test_webhook_allows(self):
        before = self.calls("guard", "allow")
        st, _, body, raw = self.post(MODEL, "tell me a story", 9, **{"x-request-id": "allow-1"})
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["usage"]["completion_tokens"], 9)
        self.assertEqual(self.calls("guard", "allow"), before + 1)
        path, req = [c for c in Webhook.calls if c[1]["request_id"] == "allow-1"][-1]
        self.assertEqual(path, "/guard")
        self.assertEqual(req["model"], MODEL)
        self.assertEqual(req["operation"], "chat")
        self.assertIn("tell me a story", req["prompt"])
        self.assertEqual(req["body"]["max_tokens"], 9)

    def test_webhook_denies(self):
        before = self.calls("guard", "deny")
        st, _, body, raw = self.post(MODEL, f"explain the {DENY_WORD} plan")
        self.assertEqual(st, 403, raw)
        self.assertEqual(body["error"]["code"], "topic_denied")
        self.assertEqual(body["error"]["message"], "the prompt names a forbidden topic")
        self.assertEqual(self.calls("guard", "deny"), before + 1)
        self.assertGreaterEqual(
            self.gw.metric("tokenway_client_errors_total", kind="payload_rejected"), 1)

    def test_webhook_mutates(self):
        before = self.calls("guard", "mutate")
        st, _, body, raw = self.post(MODEL, "please shorten this", 40)
        self.assertEqual(st, 200, raw)
        # The sim generated what the mutated body asked for, not the client's 40.
        self.assertEqual(body["usage"]["completion_tokens"], 3)
        self.assertEqual(self.calls("guard", "mutate"), before + 1)

    def test_webhook_hang_fail_closed(self):
        before = self.calls("hang_closed", "timeout")
        t0 = time.time()
        st, _, body, raw = self.post(HANG_CLOSED, "hello")
        self.assertLess(time.time() - t0, 2.5)
        self.assertEqual(st, 503, raw)
        self.assertEqual(body["error"]["code"], "payload_processor_unavailable")
        self.assertEqual(self.calls("hang_closed", "timeout"), before + 1)
        self.assertGreaterEqual(self.gw.metric("tokenway_payload_external_failures_total",
                                               processor="hang_closed", kind="timeout"), 1)

    def test_webhook_hang_fail_open(self):
        before = self.calls("hang_open", "timeout")
        st, hdrs, body, raw = self.post(HANG_OPEN, "hello", 6)
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["usage"]["completion_tokens"], 6)
        self.assertIn("hang_open:unavailable", hdrs.get("x-tokenway-flagged", ""))
        self.assertEqual(self.calls("hang_open", "timeout"), before + 1)

    # --- ext_proc ---

    def test_ext_proc_mutates(self):
        before = self.calls("xp", "mutate")
        st, _, body, raw = self.post(XP, "a harmless question", 30)
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["usage"]["completion_tokens"], 4)
        self.assertEqual(self.calls("xp", "mutate"), before + 1)

    def test_ext_proc_denies(self):
        before = self.calls("xp", "deny")
        st, _, body, raw = self.post(XP, f"something {DENY_WORD}")
        self.assertEqual(st, 403, raw)
        self.assertEqual(body["error"]["code"], "guardrail_denied")
        self.assertEqual(self.calls("xp", "deny"), before + 1)

    def test_ext_proc_hang_fail_closed(self):
        before = self.calls("xp_hang", "timeout")
        st, _, body, raw = self.post(XP_HANG, "hello")
        self.assertEqual(st, 503, raw)
        self.assertEqual(body["error"]["code"], "payload_processor_unavailable")
        self.assertEqual(self.calls("xp_hang", "timeout"), before + 1)

    def test_metrics_are_valid_prometheus_text(self):
        text = self.gw.metrics()
        for family in ("tokenway_payload_external_calls_total",
                       "tokenway_payload_external_failures_total",
                       "tokenway_payload_external_call_seconds",
                       "tokenway_payload_external_in_flight"):
            self.assertIn(f"# TYPE {family} ", text)
        self.assertIn('tokenway_payload_external_call_seconds_bucket{processor="guard",le="+Inf"}',
                      text)


if __name__ == "__main__":
    twtest.main()
