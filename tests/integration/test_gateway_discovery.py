"""Kubernetes discovery end to end: the real gateway watches a fake API server (HTTPS, generated
certificates) and routes to tokenway-sim processes that stand in for model-server pods.

Each simulated pod listens on its own loopback address (127.0.0.x) with the same port, as pods of
one InferencePool do on their pod IPs.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import twtest
from fake_kube_api import (FakeKubeApi, free_port, inference_objective, inference_pool, make_certs,
                           pod, resource_claim, resource_slice)
from twtest import MODEL, Gateway, bin_path, chat_body, post_json, request, wait_until

NS = "llm"
LABELS = {"app": "vllm-llama"}


class PodSims:
    """One tokenway-sim per pod address, all on the same port(s)."""

    def __init__(self, addresses, ports_per_pod=1, speed=50):
        self.speed = speed
        for _ in range(20):
            self.port = free_port()
            self.procs = []
            try:
                for ip in addresses:
                    self.procs.append(self._start(ip, ports_per_pod))
                break
            except RuntimeError:
                self.stop()
        else:
            raise RuntimeError("no common free port for the simulated pods")

    def _start(self, ip, count):
        p = subprocess.Popen([bin_path("tokenway-sim"), "--host", ip, "--port", str(self.port),
                              "--count", str(count), "--speed", str(self.speed)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = p.stdout.readline()
        if not line:
            p.wait(5)
            raise RuntimeError("tokenway-sim did not start on " + ip)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            p.stdout.close()
        self.procs = []


class LoadThread(threading.Thread):
    """Requests back to back until stopped; records failures and which endpoint served."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base = base
        self.failures, self.ok = [], 0
        self.stop_flag = threading.Event()
        self.start()

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            i += 1
            try:
                st, _, _, raw = post_json(self.base + "/v1/chat/completions",
                                          chat_body(MODEL, f"load {i}", max_tokens=4))
                if st == 200:
                    self.ok += 1
                else:
                    self.failures.append((st, raw[:200]))
            except OSError as e:
                self.failures.append(repr(e))

    def finish(self):
        self.stop_flag.set()
        self.join(30)


def served_by(gw):
    """Endpoint URL of every logged request, in order."""
    return [l.get("endpoint") for l in gw.access_log() if l.get("endpoint")]


class DiscoveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tokenway-kube-")
        make_certs(cls.tmp, client=True)
        cls.ips = [f"127.0.0.{i}" for i in range(21, 25)]
        cls.sims = PodSims(cls.ips)
        cls.port = cls.sims.port

    @classmethod
    def tearDownClass(cls):
        cls.sims.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def url(self, i):
        return f"http://{self.ips[i]}:{self.port}"

    def start_api(self, **kw):
        api = FakeKubeApi(self.tmp, **kw)
        api.start()
        self.addCleanup(api.stop)
        return api

    def service_account(self, token="token-1"):
        d = tempfile.mkdtemp(prefix="sa-", dir=self.tmp)
        shutil.copy(os.path.join(self.tmp, "ca.crt"), os.path.join(d, "ca.crt"))
        with open(os.path.join(d, "token"), "w") as f:
            f.write(token + "\n")
        with open(os.path.join(d, "namespace"), "w") as f:
            f.write(NS)
        return d

    def gateway(self, api, sa_dir, discovery=None, kube_extra="", wait_ready=True, pool_extra=""):
        discovery = discovery or f"{{inference_pool: {{namespace: {NS}, name: llama}}}}"
        os.environ["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
        os.environ["KUBERNETES_SERVICE_PORT"] = str(api.port)
        config = f"""
pools:
  - name: p
    policy: round-robin
    discovery: {discovery}
{pool_extra}
models:
  - name: {MODEL}
    pool: p
kubernetes:
  service_account_dir: {sa_dir}
  backoff_initial: 100ms
  backoff_max: 500ms
  watch_idle_timeout: 5s
{kube_extra}
health:
  active:
    interval: 200ms
    timeout: 500ms
"""
        gw = Gateway(config, workers=2)
        self.addCleanup(gw.stop)
        if wait_ready:
            self.assertTrue(wait_until(lambda: request("GET", gw.admin + "/readyz")[0] == 200, 10),
                            "\n".join(gw.err.lines[-20:]))
        return gw

    def seed(self, api, ready=(0,), not_ready=(1,)):
        api.put("inferencepools", inference_pool("llama", LABELS, [self.port]))
        for i in ready:
            api.put("pods", pod(f"pod-{i}", self.ips[i], True, LABELS))
        for i in not_ready:
            api.put("pods", pod(f"pod-{i}", self.ips[i], False, LABELS))

    def wait_served(self, gw, url, timeout=5):
        def check():
            post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, "probe", max_tokens=2))
            return url in served_by(gw)
        return wait_until(check, timeout, 0.02)

    # ---------------------------------------------------------------------------------------

    def test_pods_follow_readiness_under_load(self):
        api = self.start_api()
        self.seed(api)
        gw = self.gateway(api, self.service_account())
        load = LoadThread(gw.base)
        self.addCleanup(load.finish)
        time.sleep(0.5)
        self.assertEqual(set(served_by(gw)), {self.url(0)})

        # A pod turns Ready: it gets traffic within a second.
        t0 = time.time()
        api.put("pods", pod("pod-1", self.ips[1], True, LABELS))
        self.assertTrue(wait_until(lambda: self.url(1) in served_by(gw), 5, 0.01))
        elapsed = time.time() - t0
        print(f"pod Ready -> first request routed: {elapsed * 1000:.0f} ms")
        self.assertLess(elapsed, 1.0)

        # A new pod appears Ready.
        api.put("pods", pod("pod-2", self.ips[2], True, LABELS))
        self.assertTrue(wait_until(lambda: self.url(2) in served_by(gw), 5, 0.01))

        # Unready and deleting pods get no new requests (after the snapshot has been published).
        api.put("pods", pod("pod-0", self.ips[0], False, LABELS))
        api.put("pods", pod("pod-2", self.ips[2], True, LABELS, deleting=True))
        time.sleep(1.0)
        before = len(served_by(gw))
        time.sleep(1.0)
        after = served_by(gw)[before:]
        self.assertTrue(after, "no traffic at all")
        self.assertEqual(set(after), {self.url(1)})
        api.delete("pods", NS, "pod-2")

        load.finish()
        self.assertEqual(load.failures, [], "failed requests during pod changes")
        self.assertGreater(load.ok, 20)
        st, _, body = request("GET", gw.admin + "/readyz")
        self.assertEqual(st, 200)
        ready = json.loads(body)
        self.assertTrue(ready["discovery"]["p"]["synced"])
        self.assertEqual(ready["discovery"]["p"]["endpoints"], 1)
        self.assertEqual(gw.metric("tokenway_discovery_endpoints", pool="p"), 1)
        self.assertGreater(gw.metric("tokenway_discovery_events_total", kind="modified",
                                     result="applied"), 0)
        # Bookmarks arrive and are applied.
        self.assertGreater(gw.metric("tokenway_discovery_events_total", kind="bookmark"), 0)

    def test_idle_keep_alive_connection_routes_on_the_current_endpoints(self):
        import http.client
        api = self.start_api()
        self.seed(api)
        gw = self.gateway(api, self.service_account())
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)

        def send():
            """Status and serving endpoint of one request on the kept-alive connection."""
            before = len(served_by(gw))
            conn.request("POST", "/v1/chat/completions",
                         json.dumps(chat_body(MODEL, "keep-alive", max_tokens=2)),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            self.assertTrue(wait_until(lambda: len(served_by(gw)) > before, 5))
            return resp.status, served_by(gw)[-1]

        self.assertEqual(send(), (200, self.url(0)))
        # While the connection idles, pod-0 leaves and pod-1 takes over.
        api.put("pods", pod("pod-0", self.ips[0], False, LABELS))
        api.put("pods", pod("pod-1", self.ips[1], True, LABELS))
        self.assertTrue(self.wait_served(gw, self.url(1)))
        time.sleep(0.2)
        for _ in range(5):
            self.assertEqual(send(), (200, self.url(1)))
        conn.close()

    def test_no_ready_pod_is_503_then_served(self):
        api = self.start_api()
        self.seed(api, ready=(), not_ready=(0,))
        gw = self.gateway(api, self.service_account(), wait_ready=False)
        gw.wait_ready()
        self.assertTrue(wait_until(
            lambda: b"no healthy endpoint" in request("GET", gw.admin + "/readyz")[2], 5))
        st, _, body, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL))
        self.assertEqual(st, 503)
        self.assertEqual(body["error"]["code"], "no_healthy_endpoint")
        api.put("pods", pod("pod-0", self.ips[0], True, LABELS))
        self.assertTrue(self.wait_served(gw, self.url(0)))

    def test_scale_from_zero_requests_wait_for_the_first_pod(self):
        api = self.start_api()
        self.seed(api, ready=(), not_ready=())
        gw = self.gateway(api, self.service_account(), wait_ready=False,
                          pool_extra="    scale_from_zero: {queue_ttl: 20s, max_waiting: 100}")
        gw.wait_ready()
        results = []

        def call():
            results.append(post_json(gw.base + "/v1/chat/completions",
                                     chat_body(MODEL, "wake up", max_tokens=2), timeout=30))
        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        # The pool has no endpoint: the requests wait, and the pool asks for a replica.
        self.assertTrue(wait_until(
            lambda: gw.metric("tokenway_pool_queue_depth", pool="p") >= 3, 5))
        self.assertGreaterEqual(gw.metric("tokenway_pool_desired_replicas", pool="p"), 1)
        self.assertEqual(results, [])
        # The first pod turns Ready: the waiting requests are served by it.
        api.put("pods", pod("pod-0", self.ips[0], True, LABELS))
        for t in threads:
            t.join(20)
        self.assertEqual([r[0] for r in results], [200, 200, 200], results)
        self.assertTrue(wait_until(lambda: served_by(gw).count(self.url(0)) >= 3, 5))
        self.assertTrue(wait_until(
            lambda: gw.metric("tokenway_pool_queue_depth", pool="p") == 0, 5))

    def test_scale_from_zero_wait_ends_at_its_ttl(self):
        api = self.start_api()
        self.seed(api, ready=(), not_ready=(0,))
        gw = self.gateway(api, self.service_account(), wait_ready=False,
                          pool_extra="    scale_from_zero: {queue_ttl: 300ms}")
        gw.wait_ready()
        t0 = time.time()
        st, _, body, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL))
        waited = time.time() - t0
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"]["code"], "no_healthy_endpoint")
        self.assertGreaterEqual(waited, 0.3)
        self.assertLess(waited, 3)

    def test_api_server_restart_keeps_endpoints_then_resyncs(self):
        api = self.start_api()
        self.seed(api)
        gw = self.gateway(api, self.service_account())
        load = LoadThread(gw.base)
        self.addCleanup(load.finish)
        api.stop()
        time.sleep(1.5)
        # The last known endpoints keep serving; readiness stays, staleness shows.
        self.assertEqual(request("GET", gw.admin + "/readyz")[0], 200)
        self.assertGreater(gw.metric("tokenway_discovery_last_sync_age_seconds", pool="p"), 0.5)
        self.assertGreater(gw.metric("tokenway_discovery_errors_total", reason="connect") +
                           gw.metric("tokenway_discovery_errors_total", reason="watch_broken"), 0)
        ok_while_down = load.ok
        time.sleep(0.5)
        self.assertGreater(load.ok, ok_while_down)
        # While it was away a pod turned Ready and the history was compacted: 410, relist.
        lists_before = gw.metric("tokenway_discovery_lists_total")
        api.put("pods", pod("pod-1", self.ips[1], True, LABELS))
        api.compact()
        api.start()
        self.assertTrue(wait_until(lambda: self.url(1) in served_by(gw), 10, 0.05))
        self.assertGreater(gw.metric("tokenway_discovery_lists_total"), lists_before)
        self.assertGreater(gw.metric("tokenway_discovery_errors_total", reason="expired"), 0)
        self.assertTrue(wait_until(
            lambda: gw.metric("tokenway_discovery_last_sync_age_seconds", pool="p") == 0, 5))
        load.finish()
        self.assertEqual(load.failures, [])

    def test_silent_watch_reconnects(self):
        api = self.start_api(bookmark_interval=0)
        self.seed(api)
        gw = self.gateway(api, self.service_account(), kube_extra="  watch_idle_timeout: 1s")
        watches = api.watches
        api.silent = True
        api.put("pods", pod("pod-1", self.ips[1], True, LABELS))
        self.assertTrue(wait_until(
            lambda: gw.metric("tokenway_discovery_errors_total", reason="watch_idle") > 0, 10))
        self.assertTrue(wait_until(lambda: api.watches > watches, 5))
        api.silent = False
        self.assertTrue(self.wait_served(gw, self.url(1), 10))

    def test_token_rotation(self):
        sa = self.service_account("token-1")
        api = self.start_api(tokens=("token-1",))
        self.seed(api)
        gw = self.gateway(api, sa)
        # The token rotates: the server takes only the new one, and the file changes.
        api.tokens = {"token-2"}
        with open(os.path.join(sa, "token.new"), "w") as f:
            f.write("token-2\n")
        os.replace(os.path.join(sa, "token.new"), os.path.join(sa, "token"))
        api.drop_watches()
        api.put("pods", pod("pod-1", self.ips[1], True, LABELS))
        self.assertTrue(self.wait_served(gw, self.url(1), 10))
        self.assertIn("token-2", api.seen_tokens)
        self.assertNotIn("", api.seen_tokens)

    def test_unauthorized_rereads_token(self):
        sa = self.service_account("token-1")
        api = self.start_api(tokens=("token-1",))
        self.seed(api)
        gw = self.gateway(api, sa)
        api.tokens = {"token-3"}
        api.drop_watches()
        self.assertTrue(wait_until(
            lambda: gw.metric("tokenway_discovery_errors_total", reason="unauthorized") > 0, 10))
        with open(os.path.join(sa, "token"), "w") as f:
            f.write("token-3")
        api.put("pods", pod("pod-1", self.ips[1], True, LABELS))
        self.assertTrue(self.wait_served(gw, self.url(1), 10))

    def test_forbidden_is_a_readiness_reason(self):
        api = self.start_api()
        self.seed(api)
        api.forbidden = True
        gw = self.gateway(api, self.service_account(), wait_ready=False)
        gw.wait_ready()

        def reason():
            st, _, body = request("GET", gw.admin + "/readyz")
            return st, json.loads(body).get("reason", "")
        self.assertTrue(wait_until(lambda: "forbidden" in reason()[1], 10))
        st, why = reason()
        self.assertEqual(st, 503)
        self.assertIn("inferencepools", why)
        self.assertIn("namespace llm", why)
        self.assertTrue(any("forbidden" in l and "namespace llm" in l for l in gw.err.lines))
        self.assertGreater(gw.metric("tokenway_discovery_errors_total", reason="forbidden"), 0)
        api.forbidden = False
        self.assertTrue(wait_until(lambda: reason()[0] == 200, 10))
        self.assertTrue(self.wait_served(gw, self.url(0)))

    def test_gone_as_http_status_relists(self):
        api = self.start_api()
        api.gone_in_stream = False
        self.seed(api)
        gw = self.gateway(api, self.service_account())
        lists = api.lists
        api.compact()
        api.drop_watches()
        api.put("pods", pod("pod-1", self.ips[1], True, LABELS))
        self.assertTrue(self.wait_served(gw, self.url(1), 10))
        self.assertGreater(api.lists, lists)
        self.assertGreater(gw.metric("tokenway_discovery_errors_total", reason="expired"), 0)

    def test_malformed_and_oversized_events_are_skipped(self):
        api = self.start_api()
        self.seed(api)
        gw = self.gateway(api, self.service_account(), kube_extra="  max_event_bytes: 64KiB")
        api.inject(b"this is not json\n")
        api.inject(b'{"type":"ADDED","object":{"kind":"Pod","metadata":{}}}\n')
        api.inject(b'{"type":"ADDED","object":{"metadata":{"name":"x",\n')
        big = pod("pod-big", self.ips[3], True, LABELS)
        big["metadata"]["annotations"]["filler"] = "x" * 100000
        big["metadata"]["resourceVersion"] = "1"
        api.inject(json.dumps({"type": "ADDED", "object": big}).encode() + b"\n")
        self.assertTrue(wait_until(lambda: gw.metric(
            "tokenway_discovery_events_total", kind="unknown", result="oversized") >= 1, 10))
        self.assertGreaterEqual(gw.metric("tokenway_discovery_events_total", kind="unknown",
                                          result="malformed"), 3)
        # The stream goes on: the next real event applies, the oversized pod never did.
        api.put("pods", pod("pod-1", self.ips[1], True, LABELS))
        self.assertTrue(self.wait_served(gw, self.url(1), 10))
        self.assertNotIn(self.url(3), served_by(gw))
        self.assertTrue(any("over 65536 bytes" in l for l in gw.err.lines))
        if shutil.which("promtool"):
            proc = subprocess.run(["promtool", "check", "metrics"], input=gw.metrics().encode(),
                                  capture_output=True)
            lint = [l for l in (proc.stdout + proc.stderr).decode().splitlines()
                    if "tokenway_discovery" in l]
            self.assertEqual(lint, [])

    def test_dra_capacity_splits_traffic_by_gpu(self):
        """Two pods whose ResourceClaims got an H100 and an A100: their capacities come from the
        pool's accelerators map through the ResourceSlices' productName, and the capacity scorer
        sends the H100 about twice the work."""
        h100, a100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"
        api = self.start_api()
        sims = PodSims(["127.0.0.41", "127.0.0.42"], speed=2)
        self.addCleanup(sims.stop)
        labels = {"app": "dra"}
        for i, ip in enumerate(["127.0.0.41", "127.0.0.42"]):
            p = pod(f"dra-{i}", ip, True, labels)
            p["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "gpu"}]
            p["status"]["resourceClaimStatuses"] = [{"name": "gpu",
                                                     "resourceClaimName": f"dra-{i}-gpu-x"}]
            api.put("pods", p)
        api.put("resourceclaims", resource_claim("dra-0-gpu-x", "gpu-0"))
        api.put("resourceclaims", resource_claim("dra-1-gpu-x", "gpu-1"))
        api.put("resourceslices", resource_slice("node-1-gpu", {"gpu-0": h100, "gpu-1": a100}))
        port = sims.port
        gw = self.gateway(
            api, self.service_account(),
            discovery=f"{{selector: {{app: dra}}, port: {port}, dra: true}}",
            pool_extra=f"    accelerators: {{'{h100}': 2.0, '{a100}': 1.0}}\n"
                       "    scheduler: {scorers: [{name: capacity}], picker: max-score}")
        h_url, a_url = f"http://127.0.0.41:{port}", f"http://127.0.0.42:{port}"

        def capacities():
            _, _, body = request("GET", gw.admin + "/admin/endpoints")
            return {e["url"]: (e["accelerator"], e["capacity"])
                    for e in json.loads(body)["pools"][0]["endpoints"]}
        self.assertTrue(wait_until(lambda: capacities() == {h_url: (h100, 2), a_url: (a100, 1)},
                                   10), capacities())
        start = len(served_by(gw))
        threads = [LoadThread(gw.base) for _ in range(6)]
        time.sleep(4)
        for t in threads:
            t.finish()
        self.assertTrue(all(not t.failures for t in threads))
        time.sleep(0.2)
        served = served_by(gw)[start:]
        h, a = served.count(h_url), served.count(a_url)
        print(f"DRA split: H100 {h}, A100 {a}, ratio {h / max(a, 1):.2f}")
        self.assertGreater(a, 0)
        self.assertTrue(1.3 < h / a < 3.5, (h, a))

    def test_inference_objectives_set_model_priority(self):
        api = self.start_api()
        self.seed(api)
        api.put("inferenceobjectives", inference_objective("chat", "llama", 7, model=MODEL))
        api.put("inferenceobjectives", inference_objective("other-pool", "elsewhere", 99,
                                                           model=MODEL))
        gw = self.gateway(api, self.service_account(),
                          discovery=f"{{inference_pool: {{namespace: {NS}, name: llama}}, "
                                    "objectives: true}")

        def priority():
            _, _, body = request("GET", gw.admin + "/admin/config")
            return json.loads(body)["models"][0]["priority"]
        self.assertTrue(wait_until(lambda: priority() == 7, 5), priority())
        api.put("inferenceobjectives", inference_objective("chat", "llama", -1, model=MODEL))
        self.assertTrue(wait_until(lambda: priority() == -1, 5), priority())
        api.delete("inferenceobjectives", NS, "chat")
        self.assertTrue(wait_until(lambda: priority() == 0, 5), priority())

    def test_prefix_affinity_survives_a_new_pod(self):
        api = self.start_api()
        self.seed(api, ready=(0, 1), not_ready=())
        gw = self.gateway(api, self.service_account(),
                          pool_extra="    scheduler: {scorers: [{name: prefix-cache, weight: 1}],"
                                     " picker: max-score}")
        prompt = "You are a careful assistant. " * 40
        post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, prompt + "first"))
        self.assertTrue(wait_until(lambda: len(served_by(gw)) == 1, 5))
        home = served_by(gw)[0]
        # A third pod turns Ready: a new snapshot, and the learned prefix still points home.
        api.put("pods", pod("pod-2", self.ips[2], True, LABELS))
        self.assertTrue(wait_until(lambda: gw.metric("tokenway_discovery_endpoints", pool="p") == 3,
                                   5))
        time.sleep(0.3)  # the snapshot reaches the workers
        for i in range(5):
            post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, prompt + f"again {i}"))
        self.assertTrue(wait_until(lambda: len(served_by(gw)) == 6, 5))
        self.assertEqual(set(served_by(gw)), {home})

    def test_selector_with_ports_and_kubeconfig_client_certificate(self):
        api = self.start_api(tokens=(), client_certs=True)
        sims = PodSims(["127.0.0.31"], ports_per_pod=2)
        self.addCleanup(sims.stop)
        labels = {"app": "multi"}
        api.put("pods", pod("multi-0", "127.0.0.31", True, labels,
                            annotations={"tokenway.io/engine": "vllm",
                                         "tokenway.io/capacity": "2"}))
        api.put("pods", pod("other", self.ips[0], True, {"app": "other"}))

        def b64(name):
            import base64
            with open(os.path.join(self.tmp, name), "rb") as f:
                return base64.b64encode(f.read()).decode()
        kubeconfig = os.path.join(self.tmp, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
current-context: test
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:{api.port}
    certificate-authority: ca.crt
users:
- name: gw
  user:
    client-certificate-data: {b64("client.crt")}
    client-key-data: {b64("client.key")}
contexts:
- name: test
  context: {{cluster: fake, user: gw, namespace: {NS}}}
""")
        p = sims.port
        gw = self.gateway(api, "/nonexistent",
                          discovery=f"{{selector: {{app: multi}}, ports: [{p}, {p + 1}]}}",
                          kube_extra=f"  kubeconfig: {kubeconfig}")
        st, _, body = request("GET", gw.admin + "/admin/endpoints")
        eps = json.loads(body)["pools"][0]["endpoints"]
        self.assertEqual(sorted(e["url"] for e in eps),
                         [f"http://127.0.0.31:{p}", f"http://127.0.0.31:{p + 1}"])
        self.assertEqual({e["capacity"] for e in eps}, {2})
        for _ in range(6):
            st, _, _, _ = post_json(gw.base + "/v1/chat/completions", chat_body(MODEL, max_tokens=2))
            self.assertEqual(st, 200)
        both = {f"http://127.0.0.31:{p}", f"http://127.0.0.31:{p + 1}"}
        self.assertTrue(wait_until(lambda: len(served_by(gw)) == 6, 5))  # the log is flushed
        self.assertEqual(set(served_by(gw)), both)


if __name__ == "__main__":
    twtest.main()
