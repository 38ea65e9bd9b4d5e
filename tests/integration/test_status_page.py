"""The status page at the admin listener's `/`: served as one self-contained HTML document (GET,
HEAD, 405 otherwise), and rendered by headless Chromium against a gateway in front of the
`make run` fleet (4 simulated endpoints, pool llama-8b) under traffic: every pool and endpoint
URL with its health appears, rates and latencies fill in, a screenshot is a 1280x900 PNG, and
strings from the configuration cannot inject markup; the page's own Prometheus-text parser, rate
and histogram-quantile code checked in the browser on known inputs. The Chromium parts are
skipped when Chromium is not installed."""
import html
import http.client
import http.server
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, post_json, request, sse_events

CHROMIUM = shutil.which("chromium")
PAGE_SOURCE = os.path.join(os.path.dirname(__file__), "..", "..", "src", "gateway",
                           "status_page.html")
DASH = "\u2014"

# deploy/examples/local-sim.yaml with the simulator's ports (the harness overrides listen/admin).
LOCAL_SIM = """
pools:
  - name: llama-8b
    policy: least-request
    endpoints:
{endpoints}
models:
  - name: meta-llama/Llama-3.1-8B-Instruct
    pool: llama-8b
  - name: sql-lora
    pool: llama-8b
    parent: meta-llama/Llama-3.1-8B-Instruct
health:
  active:
    interval: 2s
"""


def chromium(url, *flags, timeout=180):
    """Runs headless Chromium on `url` with a private profile; returns its stdout."""
    profile = tempfile.mkdtemp(prefix="tokenway-chromium-")
    try:
        # Virtual time runs the page's 2 s refreshes back to back (network fetches pause it),
        # so the budget buys several refreshes in about a second of real time.
        cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--virtual-time-budget=20000", *flags, url]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"chromium exited {done.returncode}: "
                                 + done.stderr.decode(errors="replace")[-2000:])
        return done.stdout.decode()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Traffic:
    """Clients sending chat completions (streaming and not) until stopped."""

    def __init__(self, gw, clients=6):
        self.stop_event = threading.Event()
        self.ok = 0
        self.threads = [threading.Thread(target=self.run, args=(gw, i), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, gw, i):
        n = 0
        while not self.stop_event.is_set():
            n += 1
            body = chat_body(MODEL if n % 3 else "sql-lora", f"client {i} says hello {n}",
                             max_tokens=12, stream=bool(n % 2))
            if body["stream"]:
                st, _, _, _ = sse_events(gw.base + "/v1/chat/completions", body)
            else:
                st, _, _, _ = post_json(gw.base + "/v1/chat/completions", body)
            if st == 200:
                self.ok += 1

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)


def section(dom, attr, value):
    """The markup of the element whose `attr` is `value` (as the DOM serialises it)."""
    m = re.search(r'<(\w+)[^>]*\b' + attr + r'="' + re.escape(html.escape(value, quote=True))
                  + r'"', dom)
    if not m:
        return None
    return dom[m.start():dom.find(f"</{m.group(1)}>", m.end())]


def stat_value(block, key):
    """Text of a pool's stat (tags stripped), e.g. '696' or '—'."""
    m = re.search(r'data-stat="' + key + r'"><div class="k">[^<]*</div><div class="v">(.*?)</div>',
                  block)
    return re.sub(r"<[^>]+>", "", m.group(1)).strip() if m else None


class StatusPageServedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=1)
        cls.gw = Gateway(twtest.gateway_yaml(cls.sim.urls))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.sim.stop()

    def test_root_is_one_self_contained_html_document(self):
        st, hdrs, body = request("GET", self.gw.admin + "/")
        self.assertEqual(st, 200)
        self.assertEqual(hdrs["content-type"], "text/html; charset=utf-8")
        self.assertIn("connect-src 'self'", hdrs["content-security-policy"])
        with open(PAGE_SOURCE, "rb") as f:
            self.assertEqual(body, f.read(), "the binary serves src/gateway/status_page.html verbatim")
        text = body.decode()
        self.assertTrue(text.startswith("<!DOCTYPE html>"))
        self.assertIn("</html>", text)
        # Nothing loaded from elsewhere: no external scripts, styles, images or fonts.
        self.assertIsNone(re.search(r'\b(src|href)\s*=\s*"(https?:)?//', text))
        self.assertNotIn("@import", text)
        self.assertIsNone(re.search(r"url\(\s*['\"]?(https?:)?//", text))
        # The query string does not change what `/` is.
        st, _, again = request("GET", self.gw.admin + "/?refresh=1")
        self.assertEqual((st, again), (200, body))

    def test_head_has_the_headers_and_no_body_and_keeps_the_connection(self):
        _, _, full = request("GET", self.gw.admin + "/")
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.admin_port, timeout=10)
        try:
            conn.request("HEAD", "/")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(int(resp.getheader("content-length")), len(full))
            self.assertEqual(resp.read(), b"")
            # Same connection: a body sent after HEAD would be read as the next response.
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (200, b'{"status":"ok"}'))
        finally:
            conn.close()

    def test_other_methods_get_405(self):
        for method in ("POST", "PUT", "DELETE"):
            st, _, body = request(method, self.gw.admin + "/", b"x")
            self.assertEqual(st, 405, method)
            self.assertIn(b'"code":"method_not_allowed"', body)


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (apt-get install chromium); "
                                   "the status page is not rendered")
class StatusPageInChromiumTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(count=4, args=["--lora", "sql-lora", "--speed", "4"])
        endpoints = "\n".join(f"      - {u}" for u in cls.sim.urls)
        cls.gw = Gateway(LOCAL_SIM.format(endpoints=endpoints))
        cls.traffic = Traffic(cls.gw)
        twtest.wait_until(lambda: cls.traffic.ok >= 20, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.traffic.stop()
        cls.gw.stop()
        cls.sim.stop()

    def test_page_shows_the_fleet_live(self):
        dom = chromium(self.gw.admin + "/", "--dump-dom")
        self.assertIn('<div id="banner"></div>', dom, "the page could not reach the listener")
        self.assertRegex(dom, r'id="ready" class="pill ok">ready<')
        pool = section(dom, "data-pool", "llama-8b")
        self.assertIsNotNone(pool, dom[:4000])
        self.assertIn("<h2>llama-8b</h2>", pool)
        self.assertIn("meta-llama/Llama-3.1-8B-Instruct, sql-lora", pool)
        for url in self.sim.urls:
            row = section(pool, "data-endpoint", url)
            self.assertIsNotNone(row, f"{url} missing from the page")
            self.assertIn(f'<td class="url">{url}</td>', row)
            self.assertIn('data-state="healthy"', row)
        self.assertRegex(stat_value(pool, "ready"), r"^4 / 4( · want \d+)?$")
        # Under traffic the pool's rates and latencies fill in: tokens/s from the throughput
        # gauge, TTFT and TPOT from histogram deltas between refreshes.
        tokens = stat_value(pool, "tokens-out")
        self.assertNotEqual(tokens, DASH, pool)
        self.assertGreater(float(tokens.rstrip("kM")), 0, pool)
        for key in ("ttft", "tpot"):
            self.assertRegex(stat_value(pool, key), r"^[\d.]+ m?s / [\d.]+ m?s$", key)
        self.assertNotEqual(stat_value(pool, "rps"), DASH)

    def test_screenshot_is_a_1280x900_png(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "status.png")
            chromium(self.gw.admin + "/", f"--screenshot={path}", "--window-size=1280,900")
            with open(path, "rb") as f:
                head = f.read(24)
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
            self.assertEqual(struct.unpack(">II", head[16:24]), (1280, 900))
            self.assertGreater(os.path.getsize(path), 10000)


# Runs in the page (loaded from a file, so its own fetches fail harmlessly) against the functions
# it exposes as window.tokenwayStatus; writes "ok" or the first failure into #js-result.
SCRIPT_CHECKS = r"""
<pre id="js-result">running</pre>
<script>
(function () {
  const out = document.getElementById("js-result");
  try {
    const T = window.tokenwayStatus;
    const eq = (a, b, what) => {
      if (JSON.stringify(a) !== JSON.stringify(b))
        throw new Error(what + ": got " + JSON.stringify(a) + ", want " + JSON.stringify(b));
    };
    const near = (a, b, what) => { if (Math.abs(a - b) > 1e-9) throw new Error(what + ": " + a + " != " + b); };
    const m = T.parseMetrics([
      "# HELP a_total Help with \\ and \"quotes\".",
      "# TYPE a_total counter",
      'a_total{x="q\\"uo\\\\te",y="new\\nline",z="{,} =x"} 3',
      "b 1.5e3 1700000000000",
      'c_bucket{le="+Inf"} 7',
      "d NaN",
      'broken{x="unterminated} 1',
      "  ",
    ].join("\n"));
    eq(m.types.get("a_total"), "counter", "TYPE");
    eq(m.series.get("a_total")[0].labels, { x: 'q"uo\\te', y: "new\nline", z: "{,} =x" }, "labels");
    eq(m.series.get("a_total")[0].value, 3, "value");
    eq(m.series.get("b")[0].value, 1500, "exponent and timestamp");
    eq(m.series.get("c_bucket")[0].labels.le, "+Inf", "le");
    eq(Number.isNaN(m.series.get("d")[0].value), true, "NaN");
    eq(m.series.has("broken"), false, "malformed line skipped");

    const snap = (t, text) => ({ t, m: T.parseMetrics(text) });
    const h = (c1, c2, c3, inf, extra) =>
      `# TYPE h histogram\nh_bucket{pool="p",le="0.1"} ${c1}\nh_bucket{pool="p",le="0.5"} ${c2}\n` +
      `h_bucket{pool="p",le="1"} ${c3}\nh_bucket{pool="p",le="+Inf"} ${inf}\n` + (extra || "");
    const prev = snap(0, h(5, 5, 5, 5, "# TYPE r_total counter\nr_total 100\n"));
    const cur = snap(2000, h(15, 65, 105, 105, "# TYPE r_total counter\nr_total 110\n"));
    const q = T.quantiles(cur, prev, "h", l => l.pool === "p", [0.5, 0.9]);
    near(q[0], 0.1 + 0.4 * (40 / 50), "p50 interpolated in (0.1, 0.5]");
    near(q[1], 0.5 + 0.5 * (30 / 40), "p90 interpolated in (0.5, 1]");
    eq(T.quantiles(cur, cur, "h", () => true, [0.5]), null, "no observations");
    eq(T.quantiles(cur, prev, "h", l => l.pool === "other", [0.5]), null, "other pool");
    eq(T.quantiles(snap(2000, h(0, 0, 0, 4)), snap(0, h(0, 0, 0, 0)), "h", () => true, [0.9]),
       [1], "all above the last bound");
    eq(T.quantiles(cur, null, "h", () => true, [0.5]), null, "first refresh");
    eq(T.rate(cur, prev, "r_total", () => true), 5, "rate");
    eq(T.rate(prev, cur, "r_total", () => true), null, "counter reset");
    eq(T.rate(cur, prev, "absent_total", () => true), null, "absent family");
    eq(T.esc(`<a href='x'>&"`), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;", "esc");
    out.textContent = "ok";
  } catch (e) {
    out.textContent = "FAIL " + e.message;
  }
})();
</script>
"""


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (apt-get install chromium)")
class StatusPageScriptTest(unittest.TestCase):
    def test_metrics_parser_rates_and_quantiles(self):
        with Sim(count=1) as sim, Gateway(twtest.gateway_yaml(sim.urls)) as gw:
            _, _, page = request("GET", gw.admin + "/")
        page = page.decode()
        self.assertEqual(page.count("</body>"), 1)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "status-checks.html")
            with open(path, "w") as f:
                f.write(page.replace("</body>", SCRIPT_CHECKS + "</body>"))
            dom = chromium("file://" + path, "--dump-dom")
        m = re.search(r'<pre id="js-result">(.*?)</pre>', dom, re.S)
        self.assertIsNotNone(m)
        self.assertEqual(html.unescape(m.group(1)), "ok")


class FakeAdmin(http.server.ThreadingHTTPServer):
    """An admin listener that serves the page and a /metrics with the pool-level families
    (TTFT, TPOT, tokens, saturation, replicas, cache), each scrape adding a known batch of
    observations, so the page's figures are known exactly. `throughput_only` leaves out the
    token counters, so the page must fall back to the throughput gauge."""

    POOL, EP = "gpu-pool", "http://10.0.0.7:8000"

    def __init__(self, throughput_only=False):
        super().__init__(("127.0.0.1", 0), FakeAdminHandler)
        self.scrapes = 0
        self.throughput_only = throughput_only
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def metrics(self):
        self.scrapes += 1
        n, pool, ep = self.scrapes, self.POOL, self.EP
        lines = []

        def hist(name, cumulative_per_scrape):
            lines.append(f"# TYPE {name} histogram")
            for le, c in cumulative_per_scrape:
                lines.append(f'{name}_bucket{{pool="{pool}",le="{le}"}} {c * n}')
            lines.append(f'{name}_sum{{pool="{pool}"}} {n}')
            lines.append(f'{name}_count{{pool="{pool}"}} {cumulative_per_scrape[-1][1] * n}')

        # Each scrape: 10 observations, 2 <= 50 ms, 5 <= 100 ms, 9 <= 250 ms: p50 100 ms, p90 250 ms.
        hist("tokenway_pool_time_to_first_token_seconds",
             [("0.05", 2), ("0.1", 5), ("0.25", 9), ("0.5", 10), ("+Inf", 10)])
        # 20 observations: 10 <= 10 ms, 18 <= 20 ms: p50 10 ms, p90 20 ms.
        hist("tokenway_pool_time_per_output_token_seconds",
             [("0.005", 0), ("0.01", 10), ("0.02", 18), ("0.05", 20), ("+Inf", 20)])
        lines += [
            "# TYPE tokenway_pool_token_throughput gauge",
            f'tokenway_pool_token_throughput{{pool="{pool}",type="output"}} 1234.4',
            f'tokenway_pool_token_throughput{{pool="{pool}",type="input"}} 56.78',
            "# TYPE tokenway_pool_saturation gauge",
            f'tokenway_pool_saturation{{pool="{pool}"}} 0.42',
            "# TYPE tokenway_pool_desired_replicas gauge",
            f'tokenway_pool_desired_replicas{{pool="{pool}"}} 6',
            "# TYPE tokenway_pool_queue_depth gauge",
            f'tokenway_pool_queue_depth{{pool="{pool}"}} 3',
            "# TYPE tokenway_prefix_affinity_blocks_total counter",
            f'tokenway_prefix_affinity_blocks_total{{pool="{pool}",result="hit"}} {7 * n}',
            f'tokenway_prefix_affinity_blocks_total{{pool="{pool}",result="miss"}} {3 * n}',
            "# TYPE tokenway_endpoint_responses_total counter",
            f'tokenway_endpoint_responses_total{{pool="{pool}",endpoint="{ep}",class="2xx"}} {9 * n}',
            f'tokenway_endpoint_responses_total{{pool="{pool}",endpoint="{ep}",class="5xx"}} 0',
        ]
        if not self.throughput_only:
            lines += [
                "# TYPE tokenway_endpoint_tokens_total counter",
                f'tokenway_endpoint_tokens_total{{pool="{pool}",endpoint="{ep}",type="input"}} {100 * n}',
                f'tokenway_endpoint_tokens_total{{pool="{pool}",endpoint="{ep}",type="output"}} {50 * n}',
                f'tokenway_endpoint_tokens_total{{pool="{pool}",endpoint="{ep}",type="cached"}} {30 * n}',
            ]
        return "\n".join(lines) + "\n"

    def stop(self):
        self.shutdown()
        self.server_close()


class FakeAdminHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        admin = self.server
        if self.path == "/":
            with open(PAGE_SOURCE, "rb") as f:
                body, ctype = f.read(), "text/html; charset=utf-8"
        elif self.path == "/metrics":
            body, ctype = admin.metrics().encode(), "text/plain; version=0.0.4"
        elif self.path in ("/admin/endpoints", "/admin/config", "/readyz"):
            doc = {
                "/admin/endpoints": {"generation": 3, "pools": [{
                    "name": admin.POOL, "policy": "scheduler", "endpoints": [{
                        "url": admin.EP, "healthy": True, "ejected": False, "ejected_for_ms": 0,
                        "eligible": True, "in_flight": 5, "accelerator": "H100-80GB",
                        "engine": {"kind": "vllm", "valid": True, "waiting": 2, "running": 17,
                                   "kv_utilisation": 0.875}}]}]},
                "/admin/config": {"models": [{"name": "llama", "pool": admin.POOL}]},
                "/readyz": {"status": "ready"},
            }[self.path]
            body, ctype = json.dumps(doc).encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (apt-get install chromium)")
class StatusPagePoolMetricsTest(unittest.TestCase):
    def test_pool_level_families_fill_every_figure(self):
        admin = FakeAdmin()
        try:
            dom = chromium(admin.url + "/", "--dump-dom")
        finally:
            admin.stop()
        self.assertGreaterEqual(admin.scrapes, 3)
        pool = section(dom, "data-pool", FakeAdmin.POOL)
        self.assertIsNotNone(pool, dom[:4000])
        self.assertEqual(stat_value(pool, "ttft"), "100 ms / 250 ms")
        self.assertEqual(stat_value(pool, "tpot"), "10 ms / 20 ms")
        # 50 output and 100 input tokens per 2 s refresh (virtual time keeps the 2 s exact).
        self.assertAlmostEqual(float(stat_value(pool, "tokens-out")), 25, delta=0.2)
        self.assertAlmostEqual(float(stat_value(pool, "tokens-in")), 50, delta=0.3)
        self.assertEqual(stat_value(pool, "saturation"), "42 %")
        self.assertEqual(stat_value(pool, "queue"), "3")
        self.assertEqual(stat_value(pool, "ready"), "1 / 1 · want 6")
        self.assertEqual(stat_value(pool, "cache"), "30 % · router 70 %")
        self.assertEqual(stat_value(pool, "errors"), "0.00")
        row = section(pool, "data-endpoint", FakeAdmin.EP)
        self.assertIn('style="width:88%"', row)       # KV-cache bar
        self.assertIn("H100-80GB", row)
        self.assertIn("<td>30 %</td>", re.sub(r"<small> (%)</small>", r" \1", row))

    def test_without_token_counters_tokens_come_from_the_throughput_gauge(self):
        admin = FakeAdmin(throughput_only=True)
        try:
            dom = chromium(admin.url + "/", "--dump-dom")
        finally:
            admin.stop()
        pool = section(dom, "data-pool", FakeAdmin.POOL)
        self.assertIsNotNone(pool, dom[:4000])
        self.assertEqual(stat_value(pool, "tokens-out"), "1234")
        self.assertEqual(stat_value(pool, "tokens-in"), "56.8")
        self.assertEqual(stat_value(pool, "cache"), "— · router 70 %")


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (apt-get install chromium)")
class StatusPageEscapingTest(unittest.TestCase):
    def test_configured_strings_are_text_not_markup(self):
        # A pool name is free text from the config; it reaches the page through the JSON of
        # /admin/endpoints and, escaped, through the labels of /metrics.
        name = '<img src=x onerror="document.title=1">\\ "q" &amp;'
        with Sim(count=1) as sim:
            yaml = twtest.gateway_yaml(sim.urls).replace("  - name: p\n", f"  - name: '{name}'\n")
            yaml = yaml.replace("    pool: p\n", f"    pool: '{name}'\n")
            with Gateway(yaml) as gw:
                for stream in (False, True):
                    st, _, _, _ = post_json(gw.base + "/v1/chat/completions",
                                            chat_body(MODEL, stream=stream))
                    self.assertEqual(st, 200)
                dom = chromium(gw.admin + "/", "--dump-dom")
        self.assertNotIn("<img", dom.split("<script>")[0])
        self.assertIn("<title>tokenway status</title>", dom)
        pool = section(dom, "data-pool", name)
        self.assertIsNotNone(pool, dom[:4000])
        self.assertIn("<h2>" + html.escape(name, quote=False) + "</h2>", pool)
        self.assertRegex(stat_value(pool, "ready"), r"^1 / 1( · want \d+)?$")


if __name__ == "__main__":
    twtest.main()
