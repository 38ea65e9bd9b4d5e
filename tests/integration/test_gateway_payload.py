"""Payload processors through the real gateway and tokenway-sim: a blocked prompt is a 400
content_filter that never reaches the sim; a redacted one passes with its verdict counted; a
flagged one carries X-Tokenway-Flagged and the access log's payload field; a stream whose output
matches a blocked pattern ends with finish_reason content_filter and an error event; /metrics
exposes the verdicts in valid Prometheus text."""
import json
import shutil
import subprocess
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, post_json, sse_events

FILTERED = "filtered-model"


class PayloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=1, args=["--speed", "50", "--lora", FILTERED])
        eps = "\n".join(f"      - {u}" for u in cls.sim.urls)
        cls.gw = Gateway(f"""
pools:
  - name: p
    endpoints:
{eps}
models:
  - name: {MODEL}
    pool: p
  - name: {FILTERED}
    pool: p
    parent: {MODEL}
processors:
  - name: pii
    type: pii
    match: {{models: ["{MODEL}"]}}
    detectors: {{email: redact, payment_card: block, phone: flag}}
  - name: words
    type: patterns
    match: {{models: [{FILTERED}]}}
    request: false
    window: 16
    patterns:
      - {{name: any_word, pattern: '[a-z]{{3}}', action: block}}
""")

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def test_blocked_prompt_is_400_content_filter(self):
        before = self.gw.metric("tokenway_requests_total", model=MODEL)
        st, _, body, raw = post_json(self.gw.base + "/v1/chat/completions",
                                     chat_body(MODEL, "my card: 4111-1111-1111-1111"))
        self.assertEqual(st, 400, raw)
        self.assertEqual(body["error"]["code"], "content_filter")
        self.assertIn("payment_card", body["error"]["message"])
        self.assertNotIn(b"4111", raw)
        self.assertGreaterEqual(self.gw.metric("tokenway_requests_total", model=MODEL), before)
        self.assertGreaterEqual(self.gw.metric("tokenway_payload_verdicts_total", processor="pii",
                                               detector="payment_card", action="block",
                                               direction="request"), 1)

    def test_redacted_prompt_is_served(self):
        st, _, body, raw = post_json(self.gw.base + "/v1/chat/completions",
                                     chat_body(MODEL, "write to ann@example.com please"))
        self.assertEqual(st, 200, raw)
        self.assertTrue(body["choices"][0]["message"]["content"])
        self.assertGreaterEqual(self.gw.metric("tokenway_payload_verdicts_total", processor="pii",
                                               detector="email", action="redact",
                                               direction="request"), 1)

    def test_flagged_prompt_carries_header_and_log_field(self):
        st, hdrs, _, raw = post_json(self.gw.base + "/v1/chat/completions",
                                     chat_body(MODEL, "call me on +1 415 555 2671"))
        self.assertEqual(st, 200, raw)
        self.assertEqual(hdrs.get("x-tokenway-flagged"), "phone")
        self.assertTrue(twtest.wait_until(
            lambda: any(l.get("payload") == "phone" for l in self.gw.access_log())))

    def test_stream_with_a_blocked_pattern_ends_with_content_filter(self):
        st, _, events, raw = sse_events(self.gw.base + "/v1/chat/completions",
                                        chat_body(FILTERED, "tell me a story", max_tokens=32,
                                                  stream=True))
        self.assertEqual(st, 200, raw)
        self.assertTrue(events, raw)
        last = json.loads(events[-1])
        self.assertEqual(last["error"]["code"], "content_filter")
        finishes = [c.get("finish_reason") for e in events[:-1]
                    for c in json.loads(e).get("choices", [])]
        self.assertIn("content_filter", finishes)
        self.assertNotIn("[DONE]", events)
        # The gateway keeps serving the model afterwards.
        st, _, _, raw = post_json(self.gw.base + "/v1/chat/completions", chat_body(MODEL, "hi"))
        self.assertEqual(st, 200, raw)

    def test_clean_stream_passes_whole(self):
        st, _, events, raw = sse_events(self.gw.base + "/v1/chat/completions",
                                        chat_body(MODEL, "tell me a story", max_tokens=24,
                                                  stream=True))
        self.assertEqual(st, 200, raw)
        self.assertEqual(events[-1], "[DONE]")
        self.assertTrue(twtest.content_of(events))

    def test_metrics_are_valid_prometheus_text(self):
        text = self.gw.metrics()
        self.assertIn("tokenway_payload_processing_calls_total", text)
        if shutil.which("promtool") is None:
            self.skipTest("promtool not installed")
        r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    twtest.main()
