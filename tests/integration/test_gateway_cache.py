"""The response cache end to end through the real gateway and tokenway-sim: a repeat is answered
from the cache (header, the simulator saw one request), streamed and whole-body hits are well
formed (SSE parsed, usage with cached_tokens), entries are never served across tenants, the
client's Cache-Control no-cache / no-store and a tenant's cache: false are honoured, truncated
answers (finish_reason length) are never stored, the admin purge, hits charged per
cache.charge, and the Redis store shared by two gateway processes."""
import hashlib
import json
import unittest

from test_gateway_governance import Redis
from twtest import (MODEL, Gateway, Sim, gateway_yaml, main, post_json, request, sse_events,
                    wait_until)

KEY_A = "sk-acme-0123456789abcdef"
KEY_B = "sk-beta-0123456789abcdef"
KEY_C = "sk-nocache-0123456789abcd"
URL = "/v1/chat/completions"


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def auth(key):
    return {"Authorization": "Bearer " + key}


def body(text, stream=False, **extra):
    # No max_tokens: the simulator ends the answer with finish_reason "stop".
    b = {"model": MODEL, "messages": [{"role": "user", "content": text}], "temperature": 0,
         "stream": stream}
    b.update(extra)
    return b


def cache_yaml(urls, cache="cache: {}\n", governance=True, extra=""):
    gov = ""
    if governance:
        gov = f"""
governance:
  tenants:
    - name: acme
      keys: [{{id: main, sha256: {sha(KEY_A)}}}]
    - name: beta
      keys: [{{id: main, sha256: {sha(KEY_B)}}}]
    - name: nocache
      cache: false
      keys: [{{id: main, sha256: {sha(KEY_C)}}}]
"""
    return gateway_yaml(urls, extra=gov + cache + extra)


def sim_requests(sim):
    """Generation requests the simulator finished, over all its endpoints."""
    total = 0.0
    for url in sim.urls:
        _, _, data = request("GET", url + "/metrics")
        for line in data.decode().splitlines():
            if line.startswith("vllm:request_success_total"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def ask(gw, b, headers=None, stream=False):
    """One request; returns once the gateway has settled it (an answer is stored at settle,
    which runs just after the response was written)."""
    gw.sent = getattr(gw, "sent", 0) + 1
    if stream:
        r = sse_events(gw.base + URL, b, headers)
    else:
        r = post_json(gw.base + URL, b, headers)
    assert wait_until(lambda: gw.metric("tokenway_requests_total") >= gw.sent, timeout=5)
    return r


def redis_keys(port, pattern):
    """KEYS `pattern` over a raw RESP connection."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"*2\r\n$4\r\nKEYS\r\n${len(pattern)}\r\n{pattern}\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            data += chunk
            lines = data.split(b"\r\n")
            if not lines[0].startswith(b"*"):
                raise AssertionError(data)
            n = int(lines[0][1:])
            if len(lines) >= 2 * n + 2 or not chunk:
                return [lines[2 + 2 * i].decode() for i in range(n)]


def parse_sse(raw):
    """Strict SSE parse: every event is one `data:` line followed by a blank line."""
    text = raw.decode()
    assert text.endswith("\n\n"), text[-40:]
    events = []
    for block in text[:-2].split("\n\n"):
        assert block.startswith("data: ") and "\n" not in block, block
        events.append(block[len("data: "):])
    return events


class CacheTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(1, ["--speed", "50", "--output-len-mean", "12"])
        cls.gw = Gateway(cache_yaml(cls.sim.urls))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def post(self, b, key=KEY_A, headers=None):
        h = dict(auth(key))
        h.update(headers or {})
        return ask(self.gw, b, h)

    def settled(self, before, expect):
        """Waits until the simulator has finished `expect` requests more than `before`."""
        wait_until(lambda: sim_requests(self.sim) >= before + expect, timeout=5)
        return sim_requests(self.sim) - before

    def test_repeat_is_served_from_cache_whole_body(self):
        b = body("what is the capital of France? (whole)")
        before = sim_requests(self.sim)
        st, h, first, raw = self.post(b)
        self.assertEqual(st, 200, raw)
        self.assertEqual(h["x-tokenway-cache"], "miss")
        self.assertEqual(first["choices"][0]["finish_reason"], "stop")
        st, h, second, raw = self.post(b)
        self.assertEqual(st, 200, raw)
        self.assertEqual(h["x-tokenway-cache"], "hit")
        self.assertEqual(second["object"], "chat.completion")
        self.assertEqual(second["choices"][0]["message"]["content"],
                         first["choices"][0]["message"]["content"])
        self.assertEqual(second["choices"][0]["finish_reason"], "stop")
        usage = second["usage"]
        self.assertEqual(usage["prompt_tokens"], first["usage"]["prompt_tokens"])
        self.assertEqual(usage["completion_tokens"], first["usage"]["completion_tokens"])
        self.assertEqual(usage["prompt_tokens_details"]["cached_tokens"], usage["prompt_tokens"])
        self.assertEqual(self.settled(before, 1), 1, "the simulator saw one request")
        self.assertGreaterEqual(
            self.gw.metric("tokenway_cache_hits_total", tenant="acme", model=MODEL), 1)
        self.assertGreater(
            self.gw.metric("tokenway_cache_latency_saved_seconds_total", tenant="acme"), 0)

    def test_key_ignores_key_order_user_and_stream(self):
        b = body("key order (canonical)")
        st, h, first, _ = self.post(b)
        self.assertEqual(h["x-tokenway-cache"], "miss")
        reordered = dict(reversed(list(b.items())))
        reordered["user"] = "someone-else"
        st, h, _, _ = self.post(reordered)
        self.assertEqual(h["x-tokenway-cache"], "hit")

    def test_streamed_hit_is_a_well_formed_event_stream(self):
        b = body("tell me a story (stream)", stream=True,
                 stream_options={"include_usage": True})
        before = sim_requests(self.sim)
        st, h, events, raw = ask(self.gw, b, auth(KEY_A), stream=True)
        self.assertEqual(st, 200, raw)
        self.assertEqual(h["x-tokenway-cache"], "miss")
        original = "".join((json.loads(e)["choices"][0]["delta"].get("content") or "")
                           for e in events[:-1] if json.loads(e).get("choices"))
        st, h, _, raw = ask(self.gw, b, auth(KEY_A), stream=True)
        self.assertEqual(st, 200, raw)
        self.assertEqual(h["x-tokenway-cache"], "hit")
        self.assertTrue(h["content-type"].startswith("text/event-stream"))
        events = parse_sse(raw)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertTrue(all(c["object"] == "chat.completion.chunk" for c in chunks))
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        self.assertEqual(len(finish), 1)
        self.assertEqual(finish[0]["choices"][0]["finish_reason"], "stop")
        usage_chunks = [c for c in chunks if not c["choices"]]
        self.assertEqual(len(usage_chunks), 1)
        self.assertIs(chunks[-1], usage_chunks[0], "the usage chunk comes last")
        usage = usage_chunks[0]["usage"]
        self.assertEqual(usage["prompt_tokens_details"]["cached_tokens"], usage["prompt_tokens"])
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        self.assertEqual(text, original)
        self.assertEqual(self.settled(before, 1), 1)

    def test_stream_and_whole_body_share_an_entry(self):
        b = body("same question either way")
        st, h, first, _ = self.post(b)
        self.assertEqual(h["x-tokenway-cache"], "miss")
        st, h, events, raw = ask(self.gw, dict(b, stream=True), auth(KEY_A), stream=True)
        self.assertEqual(h["x-tokenway-cache"], "hit")
        self.assertNotIn('"usage"', raw.decode(), "no usage chunk unless the client asked")
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1])
        self.assertEqual(text, first["choices"][0]["message"]["content"])

    def test_never_served_across_tenants(self):
        b = body("a secret only acme asked about")
        st, h, first, _ = self.post(b, KEY_A)
        self.assertEqual(h["x-tokenway-cache"], "miss")
        st, h, _, _ = self.post(b, KEY_A)
        self.assertEqual(h["x-tokenway-cache"], "hit")
        before = sim_requests(self.sim)
        st, h, other, raw = self.post(b, KEY_B)
        self.assertEqual(st, 200, raw)
        self.assertEqual(h["x-tokenway-cache"], "miss", "beta must not see acme's entry")
        self.assertEqual(self.settled(before, 1), 1, "beta's request went upstream")
        st, h, _, _ = self.post(b, KEY_B)
        self.assertEqual(h["x-tokenway-cache"], "hit")

    def test_client_no_cache_and_no_store(self):
        b = body("cache-control directives")
        before = sim_requests(self.sim)
        st, h, _, _ = self.post(b, headers={"Cache-Control": "no-store"})
        self.assertEqual(h["x-tokenway-cache"], "miss")
        st, h, _, _ = self.post(b)
        self.assertEqual(h["x-tokenway-cache"], "miss", "no-store: nothing was stored")
        st, h, _, _ = self.post(b, headers={"Cache-Control": "max-age=0, No-Cache"})
        self.assertEqual(h["x-tokenway-cache"], "bypass", "no-cache: not read")
        self.assertEqual(self.settled(before, 3), 3)
        st, h, _, _ = self.post(b)
        self.assertEqual(h["x-tokenway-cache"], "hit")
        self.assertGreaterEqual(self.gw.metric("tokenway_cache_client_no_store_total"), 1)
        self.assertGreaterEqual(self.gw.metric("tokenway_cache_client_no_cache_total"), 1)

    def test_tenant_with_cache_false(self):
        b = body("the nocache tenant asks twice")
        for _ in range(2):
            st, h, _, raw = self.post(b, KEY_C)
            self.assertEqual(st, 200, raw)
            self.assertEqual(h["x-tokenway-cache"], "bypass")

    def test_truncated_answer_is_never_stored(self):
        b = body("cut me short", max_tokens=3)
        st, h, first, _ = self.post(b)
        self.assertEqual(first["choices"][0]["finish_reason"], "length")
        self.assertEqual(h["x-tokenway-cache"], "miss")
        st, h, _, _ = self.post(b)
        self.assertEqual(h["x-tokenway-cache"], "miss")
        sb = body("cut me short, streamed", max_tokens=3, stream=True)
        for _ in range(2):
            st, h, _, _ = ask(self.gw, sb, auth(KEY_A), stream=True)
            self.assertEqual(h["x-tokenway-cache"], "miss")
        self.assertGreaterEqual(self.gw.metric("tokenway_cache_not_storable_total"), 4)

    def test_non_deterministic_requests_bypass(self):
        b = body("sampled", temperature=0.8)
        for _ in range(2):
            st, h, _, _ = self.post(b)
            self.assertEqual(h["x-tokenway-cache"], "bypass")
        self.assertGreaterEqual(self.gw.metric("tokenway_cache_bypasses_total",
                                               reason="not_deterministic"), 2)

    def test_purge_by_tenant_and_model(self):
        b = body("purge me")
        self.post(b, KEY_A)
        self.post(b, KEY_B)
        st, h, _, _ = self.post(b, KEY_A)
        self.assertEqual(h["x-tokenway-cache"], "hit")
        st, _, data = request("GET", self.gw.admin + "/admin/cache/purge?tenant=acme")
        self.assertEqual(st, 405)
        st, _, data = request("POST", self.gw.admin + "/admin/cache/purge?tenant=acme&model=" +
                              MODEL.replace("/", "%2F"))
        self.assertEqual(st, 200, data)
        self.assertGreaterEqual(json.loads(data)["purged"], 1)
        st, h, _, _ = self.post(b, KEY_A)
        self.assertEqual(h["x-tokenway-cache"], "miss", "acme's entry is gone")
        st, h, _, _ = self.post(b, KEY_B)
        self.assertEqual(h["x-tokenway-cache"], "hit", "beta's entry stays")
        st, _, data = request("POST", self.gw.admin + "/admin/cache/purge?model=%ZZ")
        self.assertEqual(st, 400)

    def test_metrics_are_valid_exposition(self):
        text = self.gw.metrics()
        for family in ("tokenway_cache_hits_total", "tokenway_cache_misses_total",
                       "tokenway_cache_stores_total", "tokenway_cache_evictions_total",
                       "tokenway_cache_bytes", "tokenway_cache_entries"):
            self.assertIn("# TYPE " + family + " ", text)
        import shutil
        import subprocess
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                                   capture_output=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


class SemanticCacheTest(unittest.TestCase):
    def test_paraphrase_is_served_from_the_similar_answer(self):
        with Sim(1, ["--speed", "50", "--output-len-mean", "12"]) as sim:
            cfg = cache_yaml(sim.urls, cache="cache:\n  semantic: {threshold: 0.85}\n")
            with Gateway(cfg) as gw:
                st, h, first, _ = ask(gw, body("What is the capital of France?"),
                                            auth(KEY_A))
                self.assertEqual(h["x-tokenway-cache"], "miss")
                before = sim_requests(sim)
                st, h, second, _ = ask(gw, body("what is the capital of france"),
                                             auth(KEY_A))
                self.assertEqual(h["x-tokenway-cache"], "hit")
                self.assertEqual(second["choices"][0]["message"]["content"],
                                 first["choices"][0]["message"]["content"])
                self.assertEqual(sim_requests(sim), before, "answered without the simulator")
                self.assertEqual(gw.metric("tokenway_cache_semantic_hits_total", tenant="acme"), 1)
                self.assertEqual(gw.metric("tokenway_cache_semantic_similarity_count"), 1)
                # Unrelated prompt, other parameters, other tenant: no semantic match.
                st, h, _, _ = ask(gw, body("Write a haiku about autumn leaves"),
                                        auth(KEY_A))
                self.assertEqual(h["x-tokenway-cache"], "miss")
                st, h, _, _ = ask(gw, body("what is the capital of france",
                                                  max_tokens=50), auth(KEY_A))
                self.assertEqual(h["x-tokenway-cache"], "miss")
                st, h, _, _ = ask(gw, body("what is the capital of france"), auth(KEY_B))
                self.assertEqual(h["x-tokenway-cache"], "miss")
                # Lexically close, but another number: a different question.
                ask(gw, body("How do I request an invoice in region 12?"), auth(KEY_A))
                st, h, _, _ = ask(gw, body("how do I request an invoice in region 12"),
                                  auth(KEY_A))
                self.assertEqual(h["x-tokenway-cache"], "hit")
                st, h, _, _ = ask(gw, body("How do I request an invoice in region 13?"),
                                  auth(KEY_A))
                self.assertEqual(h["x-tokenway-cache"], "miss")


class CacheEppTest(unittest.TestCase):
    def test_hit_on_the_endpoint_picker_door_is_an_immediate_response(self):
        from test_gateway_epp import EppGateway, epp_yaml, exchanges
        with Sim(1, ["--speed", "50", "--output-len-mean", "12"]) as sim:
            with EppGateway(lambda port: epp_yaml(sim.urls, port, extra="cache: {}\n")) as gw:
                for n, stream in ((1, False), (3, True)):
                    b = body("asked through Envoy", stream=stream)
                    first = exchanges(gw.epp_port, b)[0]
                    self.assertEqual(first["status"], 200, first)
                    self.assertTrue(wait_until(
                        lambda: gw.metric("tokenway_cache_stores_total") >= 1, timeout=5))
                    self.assertTrue(wait_until(
                        lambda: gw.metric("tokenway_requests_total") >= n, timeout=5))
                    second = exchanges(gw.epp_port, b)[0]
                    self.assertEqual(second["outcome"], "immediate", second)
                    self.assertEqual(second["immediate_status"], 200, second)
                    self.assertEqual(second["immediate_headers"]["x-tokenway-cache"], "hit")
                    if stream:
                        self.assertTrue(second["immediate_headers"]["content-type"]
                                        .startswith("text/event-stream"))
                        events = parse_sse(second["immediate_body"].encode())
                        self.assertEqual(events[-1], "[DONE]")
                    else:
                        answer = json.loads(second["immediate_body"])
                        self.assertEqual(answer["choices"][0]["finish_reason"], "stop")
                        self.assertEqual(answer["usage"]["prompt_tokens_details"]["cached_tokens"],
                                         answer["usage"]["prompt_tokens"])


class CacheChargeTest(unittest.TestCase):
    def test_hits_are_charged_per_config(self):
        with Sim(1, ["--speed", "50", "--output-len-mean", "12"]) as sim:
            for charge in ("none", "input", "full"):
                cfg = cache_yaml(sim.urls, cache=f"cache: {{charge: {charge}}}\n")
                with Gateway(cfg) as gw:
                    b = body("charge " + charge)
                    st, h, first, _ = ask(gw, b, auth(KEY_A))
                    st, h, second, _ = ask(gw, b, auth(KEY_A))
                    self.assertEqual(h["x-tokenway-cache"], "hit")
                    u = first["usage"]
                    want = {"none": 0, "input": u["prompt_tokens"],
                            "full": u["prompt_tokens"] + u["completion_tokens"]}[charge]
                    self.assertEqual(gw.metric("tokenway_cache_charged_tokens_total",
                                               tenant="acme"), want, charge)


class CacheOffTest(unittest.TestCase):
    def test_without_a_cache_section_there_is_no_header(self):
        with Sim(1, ["--speed", "50", "--output-len-mean", "12"]) as sim:
            with Gateway(cache_yaml(sim.urls, cache="", governance=False)) as gw:
                st, h, _, _ = ask(gw, body("no cache"))
                self.assertEqual(st, 200)
                self.assertNotIn("x-tokenway-cache", h)


class CacheRedisTest(unittest.TestCase):
    def test_two_gateways_share_the_redis_store(self):
        redis = Redis()
        try:
            with Sim(1, ["--speed", "50", "--output-len-mean", "12"]) as sim:
                cache = (f"cache:\n  backend: redis\n  redis: {{address: 127.0.0.1:{redis.port}, "
                         f"timeout: 200ms, key_prefix: 'twc:'}}\n")
                cfg = cache_yaml(sim.urls, cache=cache)
                with Gateway(cfg) as g1, Gateway(cfg) as g2:
                    b = body("shared across replicas")
                    before = sim_requests(sim)
                    st, h, first, _ = ask(g1, b, auth(KEY_A))
                    self.assertEqual(h["x-tokenway-cache"], "miss")
                    # The store to Redis is asynchronous: wait until the key is there.
                    self.assertTrue(wait_until(lambda: len(redis_keys(redis.port, "twc:*")) == 1,
                                               timeout=5))
                    st, h, second, _ = ask(g2, b, auth(KEY_A))
                    self.assertEqual(h["x-tokenway-cache"], "hit",
                                     "the second gateway found the first one's answer")
                    self.assertEqual(second["choices"][0]["message"]["content"],
                                     first["choices"][0]["message"]["content"])
                    self.assertGreaterEqual(g2.metric("tokenway_cache_remote_hits_total"), 1)
                    # Another tenant does not find it through Redis either.
                    st, h, _, _ = ask(g2, b, auth(KEY_B))
                    self.assertEqual(h["x-tokenway-cache"], "miss")
                    # Purge through one gateway removes the Redis key for both.
                    st, _, data = request("POST", g2.admin + "/admin/cache/purge?tenant=acme")
                    self.assertEqual(st, 200, data)
                    self.assertGreaterEqual(json.loads(data)["purged_redis"], 1)
                    self.assertTrue(all(k.startswith("twc:") for k in redis_keys(redis.port, "*")))
                    self.assertEqual(len(redis_keys(redis.port, "twc:*")), 1, "beta's key stays")
                    # g1 still holds its own in-process copy; purge it there too.
                    request("POST", g1.admin + "/admin/cache/purge?tenant=acme")
                    st, h, _, _ = ask(g1, b, auth(KEY_A))
                    self.assertEqual(h["x-tokenway-cache"], "miss")
                    # Redis dies: lookups time out or fail as misses, requests still succeed.
                    redis.kill()
                    st, h, _, raw = ask(g2, body("redis is gone"), auth(KEY_A))
                    self.assertEqual(st, 200, raw)
                    self.assertEqual(h["x-tokenway-cache"], "miss")
                    self.assertGreaterEqual(g2.metric("tokenway_cache_remote_errors_total"), 1)
                    self.assertGreaterEqual(sim_requests(sim) - before, 3)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
