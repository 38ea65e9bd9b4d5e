"""Flow control end to end on a tokenway-sim fleet: saturation sheds sheddable traffic (429),
others wait in per-priority queues served highest band first and fairly between flows, a full
band is refused (503), a request that outwaits its TTL gets 503, a client leaving the queue is
never forwarded, and engine signals (not only the gateway's own limit) decide saturation."""
import json
import socket
import sys
import threading
import time
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, post_json, request, set_faults, wait_until

BATCH = "batch-adapter"  # a LoRA adapter served from the same pool, sheddable


def flow_yaml(urls, flow, engine_metrics="  enabled: false"):
    eps = "\n".join(f"      - {u}" for u in urls)
    return f"""
engine_metrics:
{engine_metrics}
pools:
  - name: p
    policy: least-request
    flow_control:
{flow}
    endpoints:
{eps}
models:
  - name: {MODEL}
    pool: p
  - name: {BATCH}
    pool: p
    parent: {MODEL}
    priority: -1
health:
  active:
    interval: 60s
"""


def pool_json(gw):
    _, _, data = request("GET", gw.admin + "/admin/endpoints")
    return json.loads(data)["pools"][0]


class Background:
    """Runs one chat request on a thread; remembers when it finished and how."""

    def __init__(self, gw, model=MODEL, headers=None, log=None, tag=None, **body):
        self.result = None
        self.done_at = None
        self.log = log
        self.tag = tag
        self.thread = threading.Thread(target=self._run, args=(gw, model, headers, body),
                                       daemon=True)
        self.thread.start()

    def _run(self, gw, model, headers, body):
        self.result = post_json(gw.base + "/v1/chat/completions", chat_body(model, **body),
                                headers=headers, timeout=60)
        self.done_at = time.monotonic()
        if self.log is not None:
            self.log.append(self.tag)

    def join(self):
        self.thread.join(60)
        return self.result


class InFlightLimitTest(unittest.TestCase):
    """One endpoint, at most one request in flight: every second request is over capacity."""

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(1, ["--lora", BATCH])
        set_faults(cls.sim.urls[0], slow_start_ms=400)
        cls.gw = Gateway(flow_yaml(cls.sim.urls, """      max_in_flight: 1
      max_queue: 4
      queue_ttl: 20s
      fairness_key: header:x-tenant
      priority_header: x-priority
      max_header_priority: 5"""))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def occupy(self):
        """Starts one request and waits until it holds the endpoint's only slot."""
        bg = Background(self.gw, tag="occupier")
        self.assertTrue(wait_until(lambda: pool_json(self.gw)["endpoints"][0]["in_flight"] == 1))
        return bg

    def wait_queued(self, n):
        self.assertTrue(wait_until(lambda: pool_json(self.gw)["flow_control"]["waiting"] == n),
                        pool_json(self.gw))

    def test_sheddable_is_refused_while_others_wait(self):
        shed_before = self.gw.metric("tokenway_flow_requests_total", outcome="shed")
        occupier = self.occupy()
        self.assertTrue(pool_json(self.gw)["flow_control"]["saturated"])
        waiter = Background(self.gw)
        self.wait_queued(1)
        t0 = time.monotonic()
        st, _, body, _ = post_json(self.gw.base + "/v1/chat/completions", chat_body(BATCH))
        self.assertLess(time.monotonic() - t0, 0.3)  # refused at once, not queued
        self.assertEqual(st, 429, body)
        self.assertEqual(body["error"]["code"], "pool_saturated")
        self.assertEqual(occupier.join()[0], 200)
        self.assertEqual(waiter.join()[0], 200)
        # The waiter started only after the occupier finished: it waited its turn.
        self.assertGreaterEqual(waiter.done_at - occupier.done_at, 0.3)
        self.assertEqual(self.gw.metric("tokenway_flow_requests_total", outcome="shed"),
                         shed_before + 1)
        self.assertGreaterEqual(
            self.gw.metric("tokenway_flow_queue_duration_seconds_count", pool="p"), 1)
        self.assertIn('tokenway_flow_queue_depth', self.gw.metrics())

    def test_sheddable_goes_through_when_not_saturated(self):
        self.assertTrue(wait_until(lambda: not pool_json(self.gw)["flow_control"]["saturated"]))
        st, _, body, _ = post_json(self.gw.base + "/v1/chat/completions", chat_body(BATCH))
        self.assertEqual(st, 200, body)

    def test_higher_priority_band_is_served_first(self):
        order = []
        occupier = self.occupy()
        low = Background(self.gw, log=order, tag="low")
        self.wait_queued(1)
        high = Background(self.gw, headers={"x-priority": "3"}, log=order, tag="high")
        self.wait_queued(2)
        # A header may not raise a request above max_header_priority (5): 99 counts as 5.
        top = Background(self.gw, headers={"x-priority": "99"}, log=order, tag="top")
        self.wait_queued(3)
        bands = {b["priority"]: b["waiting"] for b in pool_json(self.gw)["flow_control"]["bands"]}
        self.assertEqual(bands, {0: 1, 3: 1, 5: 1})
        for bg in (occupier, low, high, top):
            self.assertEqual(bg.join()[0], 200)
        self.assertEqual(order, ["top", "high", "low"])

    def test_flows_take_turns_within_a_band(self):
        order = []
        occupier = self.occupy()
        busy = []
        for i in range(3):
            busy.append(Background(self.gw, headers={"x-tenant": "busy"}, log=order,
                                   tag=f"busy{i}"))
            self.wait_queued(i + 1)
        quiet = Background(self.gw, headers={"x-tenant": "quiet"}, log=order, tag="quiet")
        self.wait_queued(4)
        self.assertEqual(pool_json(self.gw)["flow_control"]["bands"][0]["flows"], 2)
        for bg in [occupier, *busy, quiet]:
            self.assertEqual(bg.join()[0], 200)
        # Without fairness the quiet tenant would be last.
        self.assertEqual(order, ["busy0", "quiet", "busy1", "busy2"])

    def test_full_band_is_refused_with_503(self):
        occupier = self.occupy()
        waiting = []
        for i in range(4):
            waiting.append(Background(self.gw))
            self.wait_queued(i + 1)
        st, _, body, _ = post_json(self.gw.base + "/v1/chat/completions", chat_body(MODEL))
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"]["code"], "queue_full")
        # Another band still has room.
        other = Background(self.gw, headers={"x-priority": "1"})
        for bg in [occupier, *waiting, other]:
            self.assertEqual(bg.join()[0], 200)

    def test_client_leaving_the_queue_is_never_forwarded(self):
        expired_before = self.gw.metric("tokenway_flow_requests_total", outcome="expired")
        forwarded_before = self.gw.metric("tokenway_endpoint_requests_total")
        occupier = self.occupy()
        body = json.dumps(chat_body(MODEL)).encode()
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=10)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nContent-Length: " + str(len(body)).encode() +
                  b"\r\n\r\n" + body)
        self.wait_queued(1)
        s.close()
        self.wait_queued(0)
        self.assertEqual(occupier.join()[0], 200)
        self.assertTrue(wait_until(lambda: self.gw.metric(
            "tokenway_flow_requests_total", outcome="expired") == expired_before + 1))
        time.sleep(0.2)
        self.assertEqual(self.gw.metric("tokenway_endpoint_requests_total"), forwarded_before + 1)

    def test_bad_priority_header_is_400(self):
        st, _, body, _ = post_json(self.gw.base + "/v1/chat/completions", chat_body(MODEL),
                                   headers={"x-priority": "high"})
        self.assertEqual(st, 400, body)
        self.assertEqual(body["error"]["code"], "invalid_priority")
        self.assertEqual(body["error"]["param"], "x-priority")
        self.assertGreaterEqual(self.gw.metric("tokenway_client_errors_total",
                                               kind="invalid_header"), 1)


class QueueTtlTest(unittest.TestCase):
    def test_request_outwaiting_its_ttl_gets_503(self):
        with Sim(1) as sim:
            set_faults(sim.urls[0], slow_start_ms=1500)
            with Gateway(flow_yaml(sim.urls, "      max_in_flight: 1\n      queue_ttl: 300ms")) as gw:
                occupier = Background(gw)
                self.assertTrue(wait_until(
                    lambda: pool_json(gw)["endpoints"][0]["in_flight"] == 1))
                t0 = time.monotonic()
                st, _, body, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL))
                waited = time.monotonic() - t0
                self.assertEqual(st, 503, body)
                self.assertEqual(body["error"]["code"], "queue_timeout")
                self.assertGreaterEqual(waited, 0.25)
                self.assertLess(waited, 1.2)
                self.assertEqual(occupier.join()[0], 200)
                log = gw.access_log()
                timed_out = [l for l in log if l.get("error") == "queue_timeout"]
                self.assertEqual(len(timed_out), 1, log)
                self.assertGreaterEqual(timed_out[0]["queue_ms"], 250)


class EngineSaturationTest(unittest.TestCase):
    """Saturation read from the engines' own queues: one running sequence per engine."""

    def test_saturated_engines_shed_sheddable_and_serve_the_rest(self):
        with Sim(2, ["--lora", BATCH, "--max-num-seqs", "1"]) as sim:
            for u in sim.urls:
                set_faults(u, slow_start_ms=0)
            config = flow_yaml(sim.urls, "      queue_threshold: 1\n      queue_ttl: 30s",
                               engine_metrics="  interval: 20ms\n  stale_after: 1s")
            with Gateway(config) as gw:
                self.assertTrue(wait_until(
                    lambda: not pool_json(gw)["flow_control"]["saturated"]))
                # Long enough that the fleet stays saturated for seconds.
                normal = [Background(gw, max_tokens=120) for _ in range(8)]
                self.assertTrue(wait_until(lambda: pool_json(gw)["flow_control"]["saturated"]))
                shed = [post_json(gw.base + "/v1/chat/completions", chat_body(BATCH))
                        for _ in range(3)]
                self.assertTrue(all(r[0] == 429 for r in shed), [r[0] for r in shed])
                results = [bg.join() for bg in normal]
                self.assertEqual([r[0] for r in results], [200] * 8)
                self.assertGreaterEqual(gw.metric("tokenway_flow_requests_total",
                                                  outcome="queued"), 1)
                # Requests waited in the gateway, where priorities and fairness apply, rather
                # than in the engines' queues.
                queued = [l for l in gw.access_log() if l.get("queue_ms", 0) > 0]
                self.assertGreaterEqual(len(queued), 1)

if __name__ == "__main__":
    twtest.main()
