"""Governance end to end: API keys, model permissions, token reservations and settlement,
OpenAI rate-limit headers and 429s, keys-file reloads, and the Redis backend shared by two
gateway processes, including Redis dying mid-run (fail open / fail closed) and coming back."""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from twtest import (MODEL, Gateway, Sim, chat_body, free_port, gateway_yaml, main, post_json,
                    request, set_faults, sse_events, wait_until)

KEY_A = "sk-acme-0123456789abcdef"
KEY_B = "sk-beta-0123456789abcdef"


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def auth(key):
    return {"Authorization": "Bearer " + key}


class Redis:
    """A real redis-server on a free loopback port, without persistence."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self.ping, timeout=10), "redis-server did not start"

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def governance_yaml(urls, limits, backend="local", redis_port=0, fail_mode="open",
                    keys_file=None, extra_tenant="", models=None, prefix=None):
    redis = ""
    if backend == "redis":
        redis = (f"  redis: {{address: 127.0.0.1:{redis_port}, timeout: 100ms, "
                 f"fail_mode: {fail_mode}, key_prefix: '{prefix or 'tw-test:'}'}}\n")
    keys = f"  keys_file: {keys_file}\n" if keys_file else ""
    model_line = f"      models: [{', '.join(models)}]\n" if models else ""
    return gateway_yaml(urls, extra=f"""
governance:
  backend: {backend}
{redis}{keys}  tenants:
    - name: acme
      keys: [{{id: main, sha256: {sha(KEY_A)}}}]
{model_line}      labels: {{team: research}}
      limits: {limits}
      max_tokens_cap: 1000
{extra_tenant}""")


class GovernanceLocalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(2, ["--speed", "20"])

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def test_missing_malformed_long_and_unknown_keys_get_401(self):
        with Gateway(governance_yaml(self.sim.urls, "{}")) as gw:
            url = gw.base + "/v1/chat/completions"
            cases = [({}, "missing"), ({"Authorization": "Basic dXNlcjpwYXNz"}, "malformed"),
                     ({"Authorization": "Bearer"}, "malformed"),
                     ({"Authorization": "Bearer " + "k" * 8000}, "too_long"),
                     (auth("sk-not-a-key-at-all"), "unknown_key")]
            for headers, reason in cases:
                st, hdrs, body, raw = post_json(url, chat_body(MODEL), headers)
                self.assertEqual(st, 401, (reason, raw))
                self.assertEqual(body["error"]["code"], "invalid_api_key")
                self.assertEqual(body["error"]["type"], "authentication_error")
                self.assertNotIn(b"sk-not-a-key", raw)
                self.assertEqual(gw.metric("tokenway_auth_failures_total", reason=reason) > 0,
                                 True)
            st, _, body, _ = post_json(url, chat_body(MODEL), auth(KEY_A))
            self.assertEqual(st, 200, body)
            # Keys and digests never appear in /admin/config or the access log.
            _, _, config = request("GET", gw.admin + "/admin/config")
            self.assertNotIn(sha(KEY_A).encode(), config)
            self.assertIn(b'"main"', config)
            wait_until(lambda: len(gw.access_log()) >= 6)
            log = "\n".join(gw.out.lines)
            self.assertNotIn(KEY_A, log)
            self.assertNotIn("sk-not-a-key", log)
            tenants = {line["status"]: line["tenant"] for line in gw.access_log()}
            self.assertEqual(tenants[200], "acme")
            self.assertIsNone(tenants[401])
            self.assertIn('tokenway_tenant_info{tenant="acme",label_team="research"} 1',
                          gw.metrics())

    def test_model_not_allowed_and_absurd_max_tokens(self):
        with Gateway(governance_yaml(self.sim.urls, "{}", models=["other-model"]).replace(
                "models:\n  - name: " + MODEL,
                "models:\n  - name: other-model\n    pool: p\n  - name: " + MODEL)) as gw:
            url = gw.base + "/v1/chat/completions"
            st, _, body, _ = post_json(url, chat_body(MODEL), auth(KEY_A))
            self.assertEqual(st, 403, body)
            self.assertEqual(body["error"]["code"], "model_not_allowed")
            self.assertEqual(body["error"]["param"], "model")
            st, _, body, _ = post_json(url, chat_body("other-model", max_tokens=10**12),
                                       auth(KEY_A))
            self.assertEqual(st, 400, body)
            self.assertEqual(body["error"]["code"], "max_tokens_too_large")
            st, _, body, _ = post_json(url, chat_body("other-model", max_tokens=-5), auth(KEY_A))
            self.assertEqual(st, 400, body)
            self.assertEqual(gw.metric("tokenway_tenant_requests_total", tenant="acme",
                                       outcome="forbidden"), 1)
            self.assertEqual(gw.metric("tokenway_tenant_requests_total", tenant="acme",
                                       outcome="invalid"), 1)

    def test_429_with_retry_after_and_openai_headers(self):
        with Gateway(governance_yaml(self.sim.urls, "{requests_per_minute: 2}")) as gw:
            url = gw.base + "/v1/chat/completions"
            # Windows are aligned to the wall-clock minute: three requests that straddled its
            # end would land in two windows.
            into_minute = time.time() % 60
            if into_minute > 55:
                time.sleep(60.2 - into_minute)
            for remaining in (1, 0):
                st, hdrs, body, _ = post_json(url, chat_body(MODEL), auth(KEY_A))
                self.assertEqual(st, 200, body)
                self.assertEqual(hdrs["x-ratelimit-limit-requests"], "2")
                self.assertEqual(hdrs["x-ratelimit-remaining-requests"], str(remaining))
                self.assertTrue(hdrs["x-ratelimit-reset-requests"].endswith("s"))
            st, hdrs, body, _ = post_json(url, chat_body(MODEL), auth(KEY_A))
            self.assertEqual(st, 429, body)
            self.assertEqual(body["error"]["code"], "rate_limit_exceeded")
            self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
            self.assertLessEqual(int(hdrs["retry-after"]), 60)
            self.assertEqual(hdrs["x-ratelimit-remaining-requests"], "0")
            self.assertEqual(gw.metric("tokenway_rate_limited_total", tenant="acme",
                                       limit="requests_per_minute"), 1)

    def test_streamed_aborted_and_failed_requests_settle(self):
        limit = 100000
        with Gateway(governance_yaml(self.sim.urls, f"{{tokens_per_minute: {limit}}}")) as gw:
            url = gw.base + "/v1/chat/completions"

            def probe():
                """Remaining tokens after this probe's own reservation, and its usage."""
                time.sleep(0.05)  # the previous request settles right after its last byte
                st, hdrs, body, _ = post_json(url, chat_body(MODEL, max_tokens=1), auth(KEY_A))
                self.assertEqual(st, 200, body)
                return int(hdrs["x-ratelimit-remaining-tokens"]), body["usage"]

            def settled_tokens():
                return sum(gw.metric("tokenway_tenant_tokens_total", tenant="acme", type=t)
                           for t in ("input", "output"))

            # A whole response settles to its usage: the next reservation sees exactly that.
            r0, u0 = probe()
            r1, u1 = probe()
            self.assertEqual(r0 - r1, u0["total_tokens"])
            # A stream settles to its usage chunk (which the gateway asks for), not max_tokens.
            before = settled_tokens()
            st, _, events, _ = sse_events(url, chat_body(MODEL, max_tokens=30, stream=True),
                                          auth(KEY_A))
            self.assertEqual(st, 200)
            time.sleep(0.05)
            stream_tokens = settled_tokens() - before
            self.assertGreater(stream_tokens, 0)
            r2, u2 = probe()
            self.assertEqual(r1 - r2, u1["total_tokens"] + stream_tokens)
            # A failed request (500 from every endpoint) gives its reservation back.
            for u in self.sim.urls:
                set_faults(u, error_rate=1.0)
            try:
                st, _, body, _ = post_json(url, chat_body(MODEL, max_tokens=500), auth(KEY_A))
                self.assertEqual(st, 500, body)
            finally:
                for u in self.sim.urls:
                    set_faults(u, error_rate=0.0)
            r3, u3 = probe()
            self.assertEqual(r2 - r3, u2["total_tokens"])
            # A stream cut short is charged what was streamed, not its max_tokens.
            for u in self.sim.urls:
                set_faults(u, drop_after_tokens=5)
            try:
                before = settled_tokens()
                sse_events(url, chat_body(MODEL, max_tokens=500, stream=True), auth(KEY_A))
                time.sleep(0.05)
            finally:
                for u in self.sim.urls:
                    set_faults(u, drop_after_tokens=-1)
            out = gw.metric("tokenway_tenant_tokens_total", tenant="acme", type="output")
            aborted = settled_tokens() - before
            self.assertGreater(aborted, 0)
            self.assertLess(aborted, 50)
            r4, u4 = probe()
            self.assertEqual(r3 - r4, u3["total_tokens"] + aborted)
            self.assertGreater(out, 0)

    def test_keys_file_reload_and_bad_file_rejected_whole(self):
        fd, keys_path = tempfile.mkstemp(prefix="tokenway-keys-")
        os.close(fd)
        with open(keys_path, "w") as f:
            f.write(f"# keys\nacme rotated {sha(KEY_B)}\n")
        try:
            cfg = governance_yaml(self.sim.urls, "{}", keys_file=keys_path)
            cfg = "reload_poll_interval: 100ms\n" + cfg
            with Gateway(cfg) as gw:
                url = gw.base + "/v1/chat/completions"
                self.assertEqual(post_json(url, chat_body(MODEL), auth(KEY_B))[0], 200)
                new_key = "sk-new-key-0000000000"
                with open(keys_path, "w") as f:
                    f.write(f"acme newer {sha(new_key)}\n")
                self.assertTrue(wait_until(
                    lambda: post_json(url, chat_body(MODEL), auth(new_key))[0] == 200))
                self.assertEqual(post_json(url, chat_body(MODEL), auth(KEY_B))[0], 401)
                # A file with one bad line is rejected whole: the running keys stay.
                with open(keys_path, "w") as f:
                    f.write(f"acme other {sha('sk-other-key-000000')}\nacme broken zz\n")
                self.assertTrue(wait_until(
                    lambda: gw.metric("tokenway_keys_reloads_total", result="failure") >= 1))
                self.assertEqual(post_json(url, chat_body(MODEL), auth(new_key))[0], 200)
                self.assertEqual(post_json(url, chat_body(MODEL),
                                           auth("sk-other-key-000000"))[0], 401)
                # A key for an unknown tenant also rejects the file.
                with open(keys_path, "w") as f:
                    f.write(f"ghost g1 {sha('sk-ghost-key-00000')}\n")
                self.assertTrue(wait_until(
                    lambda: gw.metric("tokenway_keys_reloads_total", result="failure") >= 2))
                self.assertEqual(post_json(url, chat_body(MODEL), auth(new_key))[0], 200)
                self.assertEqual(gw.metric("tokenway_keys_reloads_total", result="success"), 1)
                self.assertEqual(gw.proc.poll(), None)
        finally:
            os.unlink(keys_path)


class GovernanceRedisTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(2, ["--speed", "20"])
        cls.redis = Redis()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        cls.redis.stop()

    def test_two_gateways_enforce_one_limit(self):
        cfg = governance_yaml(self.sim.urls, "{requests_per_minute: 6, tokens_per_minute: 100000}",
                              backend="redis", redis_port=self.redis.port, prefix="two:")
        with Gateway(cfg) as g1, Gateway(cfg) as g2:
            statuses = []
            for i in range(8):
                gw = (g1, g2)[i % 2]
                st, hdrs, body, _ = post_json(gw.base + "/v1/chat/completions",
                                              chat_body(MODEL, max_tokens=5), auth(KEY_A))
                statuses.append(st)
                if st == 200:
                    self.assertEqual(hdrs["x-ratelimit-remaining-requests"], str(5 - i))
            self.assertEqual(statuses, [200] * 6 + [429] * 2)
            self.assertEqual(g1.metric("tokenway_limiter_backend_up", backend="redis"), 1)
            self.assertEqual(g1.metric("tokenway_rate_limited_total", tenant="acme",
                                       limit="requests_per_minute") +
                             g2.metric("tokenway_rate_limited_total", tenant="acme",
                                       limit="requests_per_minute"), 2)
            if shutil.which("promtool"):
                proc = subprocess.run(["promtool", "check", "metrics"],
                                      input=g1.metrics().encode(), capture_output=True, timeout=60)
                self.assertEqual(proc.returncode, 0, proc.stderr.decode() + proc.stdout.decode())
                self.assertEqual(proc.stderr.decode().strip(), "")
            # Tokens are shared too: what g1 settled, g2's next reservation sees.
            _, h1, b1, _ = post_json(g1.base + "/v1/chat/completions", chat_body(MODEL), auth(KEY_A))
            self.assertEqual(h1.get("x-ratelimit-remaining-requests"), "0")

    def test_tokens_settle_across_replicas(self):
        limit = 100000
        cfg = governance_yaml(self.sim.urls, f"{{tokens_per_minute: {limit}}}", backend="redis",
                              redis_port=self.redis.port, prefix="tok:")
        with Gateway(cfg) as g1, Gateway(cfg) as g2:
            st, h1, b1, _ = post_json(g1.base + "/v1/chat/completions",
                                      chat_body(MODEL, max_tokens=40), auth(KEY_A))
            self.assertEqual(st, 200, b1)
            reserved1 = limit - int(h1["x-ratelimit-remaining-tokens"])
            time.sleep(0.2)  # settlement is sent asynchronously
            st, h2, b2, _ = post_json(g2.base + "/v1/chat/completions",
                                      chat_body(MODEL, max_tokens=40), auth(KEY_A))
            self.assertEqual(st, 200, b2)
            # g2 sees g1's settled usage plus its own reservation (same estimate, same max).
            self.assertEqual(limit - int(h2["x-ratelimit-remaining-tokens"]),
                             b1["usage"]["total_tokens"] + reserved1)

    def run_redis_outage(self, fail_mode):
        redis = Redis()
        try:
            cfg = governance_yaml(self.sim.urls, "{requests_per_minute: 1000}", backend="redis",
                                  redis_port=redis.port, fail_mode=fail_mode,
                                  prefix=f"outage-{fail_mode}:")
            with Gateway(cfg) as gw:
                url = gw.base + "/v1/chat/completions"
                self.assertEqual(post_json(url, chat_body(MODEL, max_tokens=3), auth(KEY_A))[0], 200)
                redis.kill()
                during = []
                for _ in range(5):
                    t0 = time.time()
                    st, hdrs, body, _ = post_json(url, chat_body(MODEL, max_tokens=3), auth(KEY_A),
                                                  timeout=5)
                    self.assertLess(time.time() - t0, 2.0)  # never hangs on Redis
                    during.append((st, body))
                if fail_mode == "open":
                    self.assertTrue(all(st == 200 for st, _ in during), during)
                    self.assertGreaterEqual(gw.metric("tokenway_limiter_fail_open_total"), 5)
                else:
                    self.assertTrue(all(st == 503 for st, _ in during), during)
                    self.assertTrue(all(b["error"]["code"] == "rate_limiter_unavailable"
                                        for _, b in during))
                    self.assertGreaterEqual(gw.metric("tokenway_limiter_fail_closed_total"), 5)
                self.assertGreater(gw.metric("tokenway_limiter_backend_errors_total"), 0)
                self.assertEqual(gw.metric("tokenway_limiter_backend_up", backend="redis"), 0)
                redis.start()
                # Recovery: reconnects (back-off at most 2 s) and counts in Redis again.
                def counted():
                    st, hdrs, _, _ = post_json(url, chat_body(MODEL, max_tokens=3), auth(KEY_A))
                    return st == 200 and "x-ratelimit-remaining-requests" in hdrs
                self.assertTrue(wait_until(counted, timeout=10))
                self.assertEqual(gw.metric("tokenway_limiter_backend_up", backend="redis"), 1)
        finally:
            redis.stop()

    def test_redis_killed_fail_open_then_recovers(self):
        self.run_redis_outage("open")

    def test_redis_killed_fail_closed_then_recovers(self):
        self.run_redis_outage("closed")


if __name__ == "__main__":
    main()
