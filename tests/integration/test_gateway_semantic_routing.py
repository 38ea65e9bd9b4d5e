"""Semantic routing end to end through the real gateway and tokenway-sim: requests to the virtual
model `auto` land on the model of the route their prompt is about (the sim answers with the
model it served), carry `x-tokenway-route: <route>; confidence=<c>` (plain and streamed), are
logged with the access log's `semantic_route` field and counted in
tokenway_semantic_route_total; a tenant not allowed a route gets the default route, and a 403
when the default is not allowed either; a prompt the classifier is unsure of takes the default;
/v1/models lists the virtual model. tokenway-sim's /v1/embeddings answers in the OpenAI shape
with deterministic embeddings in which similar texts are close."""
import base64
import hashlib
import json
import math
import re
import struct
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, post_json, request, sse_events

KEY_A = "sk-acme-0123456789abcdef"
KEY_B = "sk-beta-0123456789abcdef"
TARGETS = {"code": "coder", "math": "solver", "translation": "translator",
           "summarisation": "summariser", "chit-chat": "chatter"}

ROUTER = """
      routes:
        - name: code
          target: coder
          tenants: [acme]
          examples:
            - Write a Python function that reverses a linked list.
            - Why does my JavaScript code throw undefined is not a function?
            - Fix the bug in this C++ loop that reads past the end of the vector.
            - How do I read a CSV file in Go and parse each row into a struct?
            - Write a SQL query that returns the ten customers with the most orders.
            - Implement binary search in Rust and add unit tests.
          keywords: [python, javascript, function, compile error, stack trace, bug, code]
        - name: math
          target: solver
          examples:
            - What is the derivative of x^3 * sin(x)?
            - Solve the equation 3x + 7 = 22 for x.
            - Compute the integral of 1/(1+x^2) from 0 to 1.
            - What is the probability of getting two sixes when rolling two dice?
            - Find the eigenvalues of the matrix [[2, 1], [1, 2]].
            - Simplify the expression (x^2 - 9) / (x - 3).
          keywords: [equation, integral, derivative, probability, matrix, solve for, calculate]
        - name: translation
          target: translator
          examples:
            - Translate 'good morning, how are you?' into Spanish.
            - How do you say 'where is the train station' in German?
            - Please translate the following email into Italian.
            - Translate to Japanese, thank you for your help.
            - Give me the Dutch translation of 'I would like a cup of coffee'.
            - What does 'arigatou gozaimasu' mean in English?
          keywords: [translate, translation, in spanish, in french, in german, into english]
        - name: summarisation
          target: summariser
          examples:
            - Summarise the following article in three bullet points.
            - Give me a short summary of this meeting transcript.
            - Condense this report into one paragraph.
            - What are the key points of this blog post?
            - Write an executive summary of the attached quarterly results.
            - Recap the discussion above in a few sentences.
          keywords: [summarise, summarize, summary, tl;dr, key points, condense, recap]
        - name: chit-chat
          target: chatter
          examples:
            - Hi! How is your day going?
            - Tell me a joke about cats.
            - What is your favourite movie and why?
            - I'm bored, any ideas for what to do tonight?
            - Can you recommend a good book for the weekend?
            - How are you feeling today?
          keywords: [hello, hi, how are you, joke, chat, favourite, bored, weekend]
      default: chit-chat
      threshold: 0.35"""

PROMPTS = [
    ("code", "Can you write a TypeScript function that parses JSON and handles errors?"),
    ("code", "My Go program crashes with a nil pointer dereference, how do I debug the bug?"),
    ("math", "Differentiate x^4 - 16 with respect to x and find the roots."),
    ("math", "What is the probability of drawing two aces from a deck of cards?"),
    ("translation", "Translate 'the shop opens at nine' into French, please."),
    ("translation", "How would I say 'my luggage is lost' in German?"),
    ("summarisation", "Please summarise this news article in two sentences: the council met..."),
    ("summarisation", "Give me the key points of the board meeting minutes below."),
    ("chit-chat", "Hey there, how was your weekend? Any fun plans?"),
    ("chit-chat", "Tell me something funny, I'm bored."),
]


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def auth(key):
    return {"Authorization": "Bearer " + key}


def route_header(hdrs):
    m = re.fullmatch(r"([a-z-]+); confidence=([01]\.\d\d)", hdrs.get("x-tokenway-route", ""))
    return (m.group(1), float(m.group(2))) if m else (None, None)


class SemanticRoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        loras = sum((["--lora", t] for t in TARGETS.values()), [])
        cls.sim = Sim(count=1, args=["--speed", "50", "--max-loras", "8"] + loras)
        eps = "\n".join(f"      - {u}" for u in cls.sim.urls)
        adapters = "".join(f"  - name: {t}\n    pool: p\n    parent: {MODEL}\n"
                           for t in TARGETS.values())
        locked = ROUTER.replace("default: chit-chat", "default: code")
        cls.gw = Gateway(f"""
pools:
  - name: p
    endpoints:
{eps}
models:
  - name: {MODEL}
    pool: p
{adapters}  - name: auto
    router:{ROUTER}
  - name: auto-locked
    router:{locked}
governance:
  tenants:
    - name: acme
      keys: [{{id: a, sha256: {sha(KEY_A)}}}]
    - name: beta
      keys: [{{id: b, sha256: {sha(KEY_B)}}}]
""")

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def chat(self, prompt, key=KEY_A, model="auto", **extra):
        return post_json(self.gw.base + "/v1/chat/completions",
                         chat_body(model, prompt, max_tokens=8, **extra), headers=auth(key))

    def test_prompts_land_on_their_routes_target(self):
        before = {r: self.gw.metric("tokenway_semantic_route_total", model="auto", route=r,
                                    reason="classified") for r in TARGETS}
        for route, prompt in PROMPTS:
            st, hdrs, body, raw = self.chat(prompt)
            self.assertEqual(st, 200, raw)
            self.assertEqual(body["model"], TARGETS[route], prompt)
            got, confidence = route_header(hdrs)
            self.assertEqual(got, route, hdrs)
            self.assertGreaterEqual(confidence, 0.35)
        for r in TARGETS:
            want = sum(1 for route, _ in PROMPTS if route == r)
            self.assertGreaterEqual(self.gw.metric("tokenway_semantic_route_total", model="auto",
                                                   route=r, reason="classified"),
                                    before[r] + want)
        self.assertGreaterEqual(self.gw.metric("tokenway_semantic_classify_seconds_count",
                                               model="auto"), len(PROMPTS))

    def test_access_log_field_names_route_and_requested_model(self):
        st, _, _, raw = self.chat("Solve the equation 5x - 20 = 0 for x.")
        self.assertEqual(st, 200, raw)

        def logged():
            for line in self.gw.access_log():
                sr = line.get("semantic_route")
                if sr and sr["route"] == "math" and line.get("model") == "solver":
                    return sr
            return None
        self.assertTrue(twtest.wait_until(lambda: logged() is not None), self.gw.out.lines[-5:])
        sr = logged()
        self.assertEqual(sr["requested_model"], "auto")
        self.assertEqual(sr["reason"], "classified")
        self.assertGreater(sr["confidence"], 0.35)

    def test_streamed_response_carries_the_header(self):
        st, hdrs, events, raw = sse_events(
            self.gw.base + "/v1/chat/completions",
            chat_body("auto", "Translate 'we need more time' into Swedish.", max_tokens=8,
                      stream=True), headers=auth(KEY_A))
        self.assertEqual(st, 200, raw)
        self.assertEqual(events[-1], "[DONE]")
        self.assertEqual(json.loads(events[0])["model"], "translator")
        self.assertEqual(route_header(hdrs)[0], "translation")

    def test_tenant_not_allowed_a_route_gets_the_default(self):
        prompt = "Write a Python function that sorts a list of dictionaries by a key."
        st, hdrs, body, raw = self.chat(prompt, key=KEY_A)
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["model"], "coder")
        before = self.gw.metric("tokenway_semantic_route_total", model="auto", route="chit-chat",
                                reason="tenant_restricted")
        st, hdrs, body, raw = self.chat(prompt, key=KEY_B)
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["model"], "chatter")
        self.assertEqual(route_header(hdrs)[0], "chit-chat")
        self.assertEqual(self.gw.metric("tokenway_semantic_route_total", model="auto",
                                        route="chit-chat", reason="tenant_restricted"),
                         before + 1)

    def test_tenant_allowed_neither_route_nor_default_gets_403(self):
        st, _, body, raw = self.chat("Write a Python function that parses a date.", key=KEY_B,
                                     model="auto-locked")
        self.assertEqual(st, 403, raw)
        self.assertEqual(body["error"]["code"], "route_not_allowed")
        self.assertGreaterEqual(self.gw.metric("tokenway_semantic_route_total",
                                               model="auto-locked", route="code",
                                               reason="denied"), 1)
        # The same tenant is served on routes it may use.
        st, _, body, raw = self.chat("Solve 2x + 3 = 11 for x.", key=KEY_B, model="auto-locked")
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["model"], "solver")

    def test_unsure_prompt_takes_the_default_route(self):
        before = self.gw.metric("tokenway_semantic_route_total", model="auto", route="chit-chat",
                                reason="below_threshold")
        st, hdrs, body, raw = self.chat("   ")
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["model"], "chatter")
        self.assertEqual(route_header(hdrs), ("chit-chat", 0.0))
        self.assertEqual(self.gw.metric("tokenway_semantic_route_total", model="auto",
                                        route="chit-chat", reason="below_threshold"), before + 1)

    def test_models_lists_the_virtual_model(self):
        st, _, raw = request("GET", self.gw.base + "/v1/models", headers=auth(KEY_A))
        self.assertEqual(st, 200, raw)
        ids = [m["id"] for m in json.loads(raw)["data"]]
        self.assertIn("auto", ids)
        self.assertIn("coder", ids)

    def test_a_plain_model_has_no_route_header(self):
        st, hdrs, _, raw = self.chat("Write a Python function.", model="coder")
        self.assertEqual(st, 200, raw)
        self.assertNotIn("x-tokenway-route", hdrs)


class SimEmbeddingsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=1, args=["--lora", "embedder"])
        cls.url = cls.sim.urls[0] + "/v1/embeddings"

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def embed(self, inputs, **extra):
        return post_json(self.url, {"model": MODEL, "input": inputs, **extra})

    def test_openai_shape_and_determinism(self):
        st, _, body, raw = self.embed(["translate this sentence into French", "hello"])
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["object"], "list")
        self.assertEqual(body["model"], MODEL)
        self.assertEqual([d["index"] for d in body["data"]], [0, 1])
        self.assertTrue(all(d["object"] == "embedding" for d in body["data"]))
        vec = body["data"][0]["embedding"]
        self.assertEqual(len(vec), 1024)
        self.assertAlmostEqual(math.sqrt(sum(x * x for x in vec)), 1.0, places=4)
        self.assertGreater(body["usage"]["prompt_tokens"], 0)
        self.assertEqual(body["usage"]["total_tokens"], body["usage"]["prompt_tokens"])
        st, _, again, _ = self.embed("translate this sentence into French")
        self.assertEqual(again["data"][0]["embedding"], vec)

    def test_similar_texts_are_close(self):
        def cos(a, b):
            return sum(x * y for x, y in zip(a, b))
        _, _, body, _ = self.embed(["please translate the sentence into french",
                                    "translate this sentence into French",
                                    "integrate x squared from zero to one"])
        a, b, c = (d["embedding"] for d in body["data"])
        self.assertGreater(cos(a, b), 0.5)
        self.assertLess(cos(a, c), 0.3)

    def test_base64_and_dimensions(self):
        _, _, floats, _ = self.embed("hello world", dimensions=64)
        st, _, body, raw = self.embed("hello world", dimensions=64, encoding_format="base64")
        self.assertEqual(st, 200, raw)
        decoded = struct.unpack("<64f", base64.b64decode(body["data"][0]["embedding"]))
        for x, y in zip(decoded, floats["data"][0]["embedding"]):
            self.assertAlmostEqual(x, y, places=6)

    def test_bad_requests(self):
        for payload, fragment in [({"input": "x"}, "model"),
                                  ({"model": MODEL}, "input"),
                                  ({"model": MODEL, "input": []}, "input"),
                                  ({"model": MODEL, "input": [1, 2]}, "token arrays"),
                                  ({"model": MODEL, "input": "x", "encoding_format": "int8"},
                                   "encoding_format"),
                                  ({"model": MODEL, "input": "x", "dimensions": 0}, "dimensions")]:
            st, _, body, raw = post_json(self.url, payload)
            self.assertEqual(st, 400, raw)
            self.assertIn(fragment, body["message"])
        st, _, _, raw = post_json(self.url, {"model": "nope", "input": "x"})
        self.assertEqual(st, 404, raw)
        st, _, body, raw = post_json(self.url, {"model": "embedder", "input": "x"})
        self.assertEqual(st, 200, raw)


if __name__ == "__main__":
    twtest.main()
