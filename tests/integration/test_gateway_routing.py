"""Engine-aware routing on a tokenway-sim fleet: prefix-cache affinity raises the engines' own
prefix-cache hit rate over round-robin, an endpoint whose /metrics cannot be scraped is
reported stale and stops being preferred, and a session header keeps a conversation on one
endpoint."""
import json
import random
import sys
import unittest
from concurrent.futures import ThreadPoolExecutor

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, free_port, post_json, request, wait_until


def pool_yaml(urls, routing, extra=""):
    eps = "\n".join(f"      - {u}" for u in urls)
    return f"""
engine_metrics:
  interval: 50ms
  timeout: 200ms
  stale_after: 1s
pools:
  - name: p
{routing}
    endpoints:
{eps}
models:
  - name: {MODEL}
    pool: p
health:
  active:
    interval: 60s
  passive:
    consecutive_failures: 100
{extra}
"""


def engine_counters(urls):
    """(hits, queries) of vllm:prefix_cache_*_total summed over the endpoints."""
    hits = queries = 0.0
    for url in urls:
        _, _, data = request("GET", url + "/metrics")
        for line in data.decode().splitlines():
            if line.startswith("vllm:prefix_cache_hits_total"):
                hits += float(line.rsplit(" ", 1)[1])
            elif line.startswith("vllm:prefix_cache_queries_total"):
                queries += float(line.rsplit(" ", 1)[1])
    return hits, queries


def endpoints_json(gw):
    _, _, data = request("GET", gw.admin + "/admin/endpoints")
    return {e["url"]: e for p in json.loads(data)["pools"] for e in p["endpoints"]}


def run_shared_prefix(gw, tag, groups=8, per_group=5, seed=7):
    """`groups` long system prompts, `per_group` questions each, in a shuffled order."""
    prompts = []
    for g in range(groups):
        system = " ".join(f"{tag}-rule{g}-{k} always answer carefully" for k in range(80))
        for q in range(per_group):
            prompts.append((system, f"question {q} about topic {g}?"))
    random.Random(seed).shuffle(prompts)

    def one(p):
        body = chat_body(MODEL, max_tokens=2)
        body["messages"] = [{"role": "system", "content": p[0]},
                            {"role": "user", "content": p[1]}]
        st, _, _, raw = post_json(gw.base + "/v1/chat/completions", body)
        return st, raw

    # Two at a time: concurrency like a real client, while each group's first request still
    # lands before most of its followers.
    with ThreadPoolExecutor(max_workers=2) as ex:
        for st, raw in ex.map(one, prompts):
            assert st == 200, raw


class RoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=4, args=["--speed", "20"])

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def gateway(self, yaml):
        gw = Gateway(yaml)
        self.addCleanup(gw.stop)
        return gw

    def hit_rate(self, routing, tag):
        gw = self.gateway(pool_yaml(self.sim.urls, routing))
        # Engine signals arrive within a few scrape intervals.
        self.assertTrue(wait_until(
            lambda: all(e["engine"]["valid"] for e in endpoints_json(gw).values()), timeout=5))
        h0, q0 = engine_counters(self.sim.urls)
        run_shared_prefix(gw, tag)
        h1, q1 = engine_counters(self.sim.urls)
        gw.stop()
        return (h1 - h0) / max(q1 - q0, 1.0)

    def test_prefix_affinity_beats_round_robin_on_engine_hit_rate(self):
        rr = self.hit_rate("    policy: round-robin", "rr")
        gie = self.hit_rate("    scheduler: {preset: gie-default}", "gie")
        prefix_only = self.hit_rate(
            "    scheduler:\n      scorers: [{name: prefix-cache, weight: 1}]", "px")
        print(f"engine prefix-cache hit rate: round-robin {rr:.3f}, gie-default {gie:.3f}, "
              f"prefix-cache only {prefix_only:.3f}", file=sys.stderr)
        self.assertGreater(gie, rr + 0.15)
        self.assertGreater(prefix_only, rr + 0.15)

    def test_unscrapable_endpoint_is_stale_and_not_preferred(self):
        dead = f"http://127.0.0.1:{free_port()}"
        urls = [dead] + self.sim.urls[:2]
        gw = self.gateway(pool_yaml(
            urls, "    scheduler:\n      scorers: [{name: queue-depth, weight: 2}, "
                  "{name: kv-cache, weight: 2}]"))
        self.assertTrue(wait_until(
            lambda: all(endpoints_json(gw)[u]["engine"]["valid"] for u in urls[1:]), timeout=5))
        self.assertTrue(wait_until(
            lambda: gw.metric("tokenway_engine_scrape_failures_total", endpoint=dead) >= 3,
            timeout=5))
        for i in range(20):
            st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                      chat_body(MODEL, f"r{i}", max_tokens=2))
            self.assertEqual(st, 200, raw)
        eps = endpoints_json(gw)
        self.assertFalse(eps[dead]["engine"]["valid"])
        self.assertEqual(eps[dead]["requests_total"], 0)  # never the first choice
        self.assertEqual(gw.metric("tokenway_retries_total"), 0)
        self.assertEqual(gw.metric("tokenway_engine_signals_valid", endpoint=dead), 0)
        self.assertEqual(gw.metric("tokenway_engine_signals_valid", endpoint=urls[1]), 1)
        self.assertGreaterEqual(gw.metric("tokenway_engine_running", endpoint=urls[1]), 0)

    def test_session_header_keeps_a_conversation_on_one_endpoint(self):
        gw = self.gateway(pool_yaml(
            self.sim.urls, "    scheduler:\n      scorers: [{name: session-affinity, weight: 1}]\n"
                           "      session_header: x-session-id"))
        sessions = 24
        turns = 3
        sent = {}  # request id -> session
        for s in range(sessions):
            for t in range(turns):
                rid = f"sess{s}-turn{t}"
                # Different prompts and a different `user` every turn: only the header is stable.
                body = chat_body(MODEL, f"turn {t} of session {s}: tell me about topic {s * 7 + t}",
                                 max_tokens=2, user=f"user-{s}-{t}")
                # Header name case varies: HTTP header names are case-insensitive.
                name = "X-Session-Id" if t % 2 else "x-session-id"
                st, _, _, raw = post_json(gw.base + "/v1/chat/completions", body,
                                          headers={name: f"conv-{s}", "X-Request-Id": rid})
                self.assertEqual(st, 200, raw)
                sent[rid] = s
        self.assertTrue(wait_until(
            lambda: len([l for l in gw.access_log() if l["request_id"] in sent]) == len(sent),
            timeout=5))
        endpoint_of = {}
        for line in gw.access_log():
            if line["request_id"] in sent:
                endpoint_of.setdefault(sent[line["request_id"]], set()).add(line["endpoint"])
        self.assertEqual(len(endpoint_of), sessions)
        for s, endpoints in endpoint_of.items():
            self.assertEqual(len(endpoints), 1, f"session {s} moved: {endpoints}")
        used = set().union(*endpoint_of.values())
        self.assertGreaterEqual(len(used), 3, used)  # sessions spread over the fleet

        # Without the header the varying `user` decides, and a conversation scatters.
        for t in range(8):
            body = chat_body(MODEL, f"turn {t}", max_tokens=2, user=f"someone-{t}")
            st, _, _, raw = post_json(gw.base + "/v1/chat/completions", body,
                                      headers={"X-Request-Id": f"nohdr-{t}"})
            self.assertEqual(st, 200, raw)
        self.assertTrue(wait_until(
            lambda: len([l for l in gw.access_log() if l["request_id"].startswith("nohdr-")]) == 8,
            timeout=5))
        scattered = {l["endpoint"] for l in gw.access_log() if l["request_id"].startswith("nohdr-")}
        self.assertGreater(len(scattered), 1)

    def test_prefix_index_survives_a_reload(self):
        import signal
        routing = "    scheduler:\n      scorers: [{name: prefix-cache, weight: 1}]"
        gw = self.gateway(pool_yaml(self.sim.urls, routing))
        prompts = [" ".join(f"reload{g}-fact{k} keep this in mind" for k in range(40))
                   for g in range(8)]

        rounds = []

        def route_all():
            rounds.append(len(rounds))
            ids = [f"round{rounds[-1]}-prompt{i}" for i in range(len(prompts))]
            for p, rid in zip(prompts, ids):
                st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                          chat_body(MODEL, p, max_tokens=1),
                                          headers={"X-Request-Id": rid})
                self.assertEqual(st, 200, raw)
            by_id = lambda: {l["request_id"]: l["endpoint"] for l in gw.access_log()}
            self.assertTrue(wait_until(lambda: all(i in by_id() for i in ids)))
            return [by_id()[i] for i in ids]

        first = route_all()
        self.assertEqual(route_all(), first)  # the index at work
        self.assertGreater(len(set(first)), 1)  # spread, not all on one endpoint
        # An unrelated change: the pool and its endpoints stay as they were.
        with open(gw.config_path, "a") as f:
            f.write("\nstreaming:\n  inject_usage: false\n")
        gw.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_config_generation") == 2))
        self.assertEqual(route_all(), first)


class OutstandingTokensTest(unittest.TestCase):
    def test_gateway_counts_tokens_in_flight_and_routes_on_them(self):
        with Sim(count=2) as sim:
            for u in sim.urls:
                twtest.set_faults(u, slow_start_ms=800)
            routing = "    scheduler:\n      scorers: [{name: outstanding-tokens, weight: 1}]"
            with Gateway(pool_yaml(sim.urls, routing)) as gw:
                import threading
                long_prompt = "word " * 10000  # 10k tokens by the shared token estimator
                big = threading.Thread(target=post_json, args=(
                    gw.base + "/v1/chat/completions", chat_body(MODEL, long_prompt,
                                                                max_tokens=300)), daemon=True)
                big.start()
                self.assertTrue(wait_until(lambda: any(
                    e["decode_tokens"] == 300 for e in endpoints_json(gw).values())))
                eps = endpoints_json(gw)
                loaded = next(u for u, e in eps.items() if e["decode_tokens"] == 300)
                self.assertGreater(eps[loaded]["prefill_tokens"], 9000)
                # Short requests now avoid the endpoint holding the long one.
                for i in range(4):
                    st, _, _, raw = post_json(gw.base + "/v1/chat/completions",
                                              chat_body(MODEL, f"short {i}", max_tokens=2))
                    self.assertEqual(st, 200, raw)
                big.join(30)
                shorts = lambda: [l for l in gw.access_log() if l["completion_tokens"] <= 2]
                self.assertTrue(wait_until(lambda: len(shorts()) == 4), gw.access_log())
                log = gw.access_log()
                shorts = shorts()
                self.assertTrue(all(l["endpoint"] != loaded for l in shorts), log)
                self.assertTrue(wait_until(lambda: all(
                    e["prefill_tokens"] == 0 and e["decode_tokens"] == 0
                    for e in endpoints_json(gw).values())))


if __name__ == "__main__":
    twtest.main()
