"""Model versions end to end through the real gateway and two tokenway-sim fleets, one serving
each version's model name: the weighted split measured over the real path, stickiness by user
(also when a reload raises the canary's weight), header match rules, the response's model per
response_model, /v1/models, and shadow traffic (the candidate sees the mirrored requests, the
client never does, client latency unchanged, not charged to the tenant)."""
import hashlib
import json
import statistics
import sys
import threading
import time
import unittest

from twtest import (Gateway, Sim, chat_body, main, post_json, request, sse_events, wait_until)

ALIAS = "chat"
STABLE = "chat-v1"
CANARY = "chat-v2"
KEY = "sk-acme-0123456789abcdef"


def versions_yaml(stable_urls, canary_urls, stable_weight=70, canary_weight=30, model_extra="",
                  extra=""):
    s = "\n".join(f"      - {u}" for u in stable_urls)
    c = "\n".join(f"      - {u}" for u in canary_urls)
    return f"""
pools:
  - name: stable-pool
    endpoints:
{s}
  - name: canary-pool
    endpoints:
{c}
models:
  - name: {ALIAS}
    versions:
      - {{name: v1, model: {STABLE}, pool: stable-pool, weight: {stable_weight}}}
      - name: v2
        model: {CANARY}
        pool: canary-pool
        weight: {canary_weight}
        match: {{headers: {{x-canary: "yes"}}}}
{model_extra}
health:
  active: {{interval: 200ms, timeout: 500ms}}
{extra}
"""


def sim_requests(sim):
    """Successful requests the simulator fleet finished (its vLLM counter)."""
    total = 0.0
    for url in sim.urls:
        _, _, body = request("GET", url + "/metrics")
        for line in body.decode().splitlines():
            if line.startswith("vllm:request_success_total"):
                total += float(line.rpartition(" ")[2])
    return total


def run_parallel(n, fn, threads=8):
    results = [None] * n
    lock = threading.Lock()
    next_i = [0]

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= n:
                return
            results[i] = fn(i)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


class VersionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stable = Sim(2, ["--speed", "50", "--model", STABLE])
        cls.canary = Sim(2, ["--speed", "50", "--model", CANARY])

    @classmethod
    def tearDownClass(cls):
        cls.stable.stop()
        cls.canary.stop()

    def gateway(self, **kw):
        return Gateway(versions_yaml(self.stable.urls, self.canary.urls, **kw))

    def test_split_over_the_real_path_follows_the_weights(self):
        with self.gateway() as gw:
            url = gw.base + "/v1/chat/completions"
            n = 2000

            def one(i):
                st, hdrs, body, raw = post_json(
                    url, chat_body(ALIAS, max_tokens=1, user=f"user-{i}"))
                self.assertEqual(st, 200, raw)
                return hdrs["x-tokenway-version"]

            before_canary = sim_requests(self.canary)
            versions = run_parallel(n, one)
            share = versions.count("v2") / n
            # 30 % ± 3 % (3 standard deviations of 2,000 draws; the unit test checks 1 % over
            # 10,000 keys).
            self.assertAlmostEqual(share, 0.30, delta=0.03)
            self.assertEqual(versions.count("v1") + versions.count("v2"), n)
            # The canary's simulators answered exactly the canary's share.
            self.assertTrue(wait_until(
                lambda: sim_requests(self.canary) - before_canary == versions.count("v2")))
            self.assertEqual(gw.metric("tokenway_model_version_requests_total", model=ALIAS,
                                       version="v2"), versions.count("v2"))
            self.assertEqual(gw.metric("tokenway_model_version_weight", model=ALIAS,
                                       version="v2"), 30)
            self.assertEqual(gw.metric("tokenway_requests_total", model=ALIAS), n)
            # The access log names the version.
            logged = [l for l in gw.access_log() if l.get("model") in (STABLE, CANARY)]
            self.assertEqual(len(logged), n)
            for line in logged:
                self.assertEqual(line["version"], "v2" if line["model"] == CANARY else "v1")

    def test_sticky_by_user_also_when_the_canary_weight_rises(self):
        gw = self.gateway(stable_weight=90, canary_weight=10)
        try:
            url = gw.base + "/v1/chat/completions"

            def assignments():
                out = {}
                for i in range(300):
                    st, hdrs, _, raw = post_json(
                        url, chat_body(ALIAS, max_tokens=1, user=f"alice-{i}"))
                    self.assertEqual(st, 200, raw)
                    out[i] = hdrs["x-tokenway-version"]
                return out

            first = assignments()
            self.assertEqual(first, assignments())  # same user, same version
            # A reload raises the canary to 30 %: nobody leaves it, some move onto it.
            with open(gw.config_path, "w") as f:
                f.write(versions_yaml(self.stable.urls, self.canary.urls, 70, 30))
            self.assertTrue(wait_until(
                lambda: gw.metric("tokenway_model_version_weight", model=ALIAS,
                                  version="v2") == 30, timeout=15))
            second = assignments()
            moved = [i for i in first if first[i] != second[i]]
            self.assertTrue(moved)
            for i in moved:
                self.assertEqual((first[i], second[i]), ("v1", "v2"))
            # Without a user the request id decides: requests spread over both versions.
            seen = set()
            for _ in range(60):
                _, hdrs, _, _ = post_json(url, chat_body(ALIAS, max_tokens=1))
                seen.add(hdrs["x-tokenway-version"])
            self.assertEqual(seen, {"v1", "v2"})
        finally:
            gw.stop()

    def test_header_rule_wins_over_the_split(self):
        with self.gateway(stable_weight=1, canary_weight=0) as gw:
            url = gw.base + "/v1/chat/completions"
            for i in range(20):
                _, hdrs, body, _ = post_json(url, chat_body(ALIAS, max_tokens=1, user=f"u{i}"),
                                             {"X-Canary": "yes"})
                self.assertEqual(hdrs["x-tokenway-version"], "v2")
                _, hdrs, body, _ = post_json(url, chat_body(ALIAS, max_tokens=1, user=f"u{i}"),
                                             {"X-Canary": "no"})
                self.assertEqual(hdrs["x-tokenway-version"], "v1")

    def test_response_model_alias_and_version(self):
        for mode, expected_v2 in (("alias", ALIAS), ("version", CANARY)):
            with self.gateway(stable_weight=1, canary_weight=0,
                              model_extra=f"    response_model: {mode}") as gw:
                url = gw.base + "/v1/chat/completions"
                canary = {"X-Canary": "yes"}
                st, hdrs, body, raw = post_json(url, chat_body(ALIAS, max_tokens=4), canary)
                self.assertEqual(st, 200, raw)
                self.assertEqual(body["model"], expected_v2, mode)
                st, hdrs, events, raw = sse_events(
                    url, chat_body(ALIAS, max_tokens=4, stream=True,
                                   stream_options={"include_usage": True}), canary)
                self.assertEqual(st, 200)
                chunks = [json.loads(e) for e in events if e != "[DONE]"]
                self.assertGreater(len(chunks), 1)
                for chunk in chunks:
                    self.assertEqual(chunk["model"], expected_v2, (mode, chunk))
                self.assertEqual(events[-1], "[DONE]")
                # /v1/models lists the alias, not the versions' upstream names.
                st, _, data = request("GET", gw.base + "/v1/models")
                ids = [m["id"] for m in json.loads(data)["data"]]
                self.assertEqual(ids, [ALIAS])

    def test_unknown_version_pool_is_rejected_on_reload(self):
        with self.gateway() as gw:
            with open(gw.config_path, "w") as f:
                f.write(versions_yaml(self.stable.urls, self.canary.urls, 0, 0))
            self.assertTrue(wait_until(
                lambda: gw.metric("tokenway_config_reloads_total", result="failure") >= 1,
                timeout=15))
            st, hdrs, _, _ = post_json(gw.base + "/v1/chat/completions",
                                       chat_body(ALIAS, max_tokens=1))
            self.assertEqual(st, 200)

    def test_shadow_mirrors_to_the_candidate_without_reaching_the_client(self):
        key_sha = hashlib.sha256(KEY.encode()).hexdigest()
        governance = f"""
governance:
  backend: local
  tenants:
    - name: acme
      keys: [{{id: main, sha256: {key_sha}}}]
      limits: {{tokens_per_minute: 10000000}}
"""
        auth = {"Authorization": "Bearer " + KEY}

        def latencies(gw, n=120):
            url = gw.base + "/v1/chat/completions"
            out = []
            for i in range(n):
                t0 = time.perf_counter()
                st, hdrs, events, raw = sse_events(
                    url, chat_body(ALIAS, max_tokens=8, stream=True, user=f"s{i}"), auth)
                out.append(time.perf_counter() - t0)
                self.assertEqual(st, 200, raw)
                self.assertEqual(hdrs["x-tokenway-version"], "v1")
                for e in events:
                    if e != "[DONE]":
                        self.assertEqual(json.loads(e)["model"], ALIAS)
            return out

        # Shadowing off: the baseline latency; the candidate gets nothing.
        with self.gateway(stable_weight=1, canary_weight=0, extra=governance) as gw:
            before = sim_requests(self.canary)
            off = latencies(gw)
            self.assertEqual(sim_requests(self.canary), before)
        shadow = "    shadow: {version: v2, percent: 100, max_concurrency: 64}"
        with self.gateway(stable_weight=1, canary_weight=0, model_extra=shadow,
                          extra=governance) as gw:
            before = sim_requests(self.canary)
            on = latencies(gw)
            n = len(on)
            completed = lambda: gw.metric("tokenway_shadow_requests_total", model=ALIAS,
                                          version="v2", outcome="completed")
            self.assertTrue(wait_until(lambda: completed() == n, timeout=20), completed())
            # The candidate's simulators saw every mirrored request...
            self.assertTrue(wait_until(lambda: sim_requests(self.canary) - before == n))
            # ...its figures were recorded apart from the client's requests...
            self.assertEqual(gw.metric("tokenway_model_version_requests_total", model=ALIAS,
                                       version="v2"), 0)
            self.assertEqual(gw.metric("tokenway_model_version_requests_total", model=ALIAS,
                                       version="v1"), n)
            self.assertGreater(gw.metric("tokenway_shadow_time_to_first_token_seconds_count",
                                         model=ALIAS, version="v2"), 0)
            # ...and the tenant was charged for the primary requests only: the settled output
            # tokens are the client-visible requests' (8 each at most), not twice that.
            settled = gw.metric("tokenway_tenant_tokens_total", tenant="acme", type="output")
            self.assertGreater(settled, 0)
            self.assertLessEqual(settled, 8 * n)
            self.assertEqual(gw.metric("tokenway_requests_total", model=ALIAS), n)
        # Client latency with shadowing on stays near the baseline (medians, loose bound).
        print(f"\nclient latency median: shadow off {statistics.median(off) * 1e3:.2f} ms, "
              f"on {statistics.median(on) * 1e3:.2f} ms ({len(on)} streams each)",
              file=sys.stderr)
        self.assertLess(statistics.median(on), statistics.median(off) * 1.5 + 0.005,
                        (statistics.median(on), statistics.median(off)))

    def test_shadow_is_bounded_by_max_concurrency(self):
        shadow = "    shadow: {version: v2, percent: 100, max_concurrency: 1}"
        with self.gateway(stable_weight=1, canary_weight=0, model_extra=shadow) as gw:
            url = gw.base + "/v1/chat/completions"
            run_parallel(40, lambda i: post_json(
                url, chat_body(ALIAS, max_tokens=64, user=f"c{i}")), threads=8)
            skipped = gw.metric("tokenway_shadow_requests_total", model=ALIAS, version="v2",
                                outcome="skipped_concurrency")
            self.assertTrue(wait_until(lambda: gw.metric(
                "tokenway_shadow_requests_total", model=ALIAS, version="v2") == 40))
            self.assertGreater(skipped, 0)


if __name__ == "__main__":
    main()
