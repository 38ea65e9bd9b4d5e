"""deploy/grafana/tokenway-dashboard.json against a live gateway: every metric family any panel or
template variable queries is exported by /metrics (a `# TYPE` line, and samples once traffic of
every kind went through: streaming and not, a LoRA model, upstream 500s, an unknown model, flow
control); every label a query matches or groups by exists on those families, and every literal
value it matches on occurs; every expression is valid PromQL (promtool); the dashboard has the
`${datasource}`, `pool` and `endpoint` variables and a panel for each topic it promises."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, chat_body, post_json, set_faults, sse_events

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "grafana",
                         "tokenway-dashboard.json")
PROMTOOL = shutil.which("promtool")

# PromQL words that are not metric names (functions are recognised by the "(" after them).
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset", "inf", "nan", "le"}
# What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                "$pool": ".*", "$endpoint": ".*", "$model": ".*"}


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def all_panels(dashboard):
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])


def queries(dashboard):
    """(where, PromQL) for every panel target and every query variable."""
    for p in all_panels(dashboard):
        for t in p.get("targets", []):
            yield f"panel '{p['title']}' {t['refId']}", t["expr"]
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q)
        if m:  # label_values(series, label): the series selector is the query
            yield f"variable '{v['name']}'", m.group(1)
        elif not re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", q):
            yield f"variable '{v['name']}'", q


def metric_names(expr):
    """Metric names an expression reads (histogram series reduced to their family)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                 # string literals
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)                          # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                         # range selectors
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(re.sub(r"_(bucket|sum|count)$", "", word))
    return names


class Exported:
    """What a /metrics text exports: sample counts and label values per family. `merge` keeps
    the most of both over several scrapes (queue gauges have samples only while something
    waits)."""

    def __init__(self):
        self.samples = {}   # family -> samples in the scrape that had the most
        self.labels = {}    # family -> {label: {values}}

    def merge(self, metrics_text):
        counts = {}
        for line in metrics_text.splitlines():
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if m:
                counts.setdefault(m.group(1), 0)
                self.labels.setdefault(m.group(1), {})
                continue
            if not line or line.startswith("#"):
                continue
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            family = name if name in counts else re.sub(r"_(bucket|sum|count)$", "", name)
            if family not in counts:
                continue
            counts[family] += 1
            for label, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line):
                self.labels[family].setdefault(label, set()).add(value)
        for family, n in counts.items():
            self.samples[family] = max(self.samples.get(family, 0), n)


def selectors(expr):
    """(metric, label, op, value) for every label matcher of every selector in `expr`."""
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"',
                                           m.group(2)):
            yield m.group(1), label, op, value


def grouping_labels(expr):
    return {l.strip() for m in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
            for l in m.group(1).split(",") if l.strip()}


class MetricNamesTest(unittest.TestCase):
    def test_extraction(self):
        self.assertEqual(metric_names(
            'histogram_quantile(0.9, sum by (le, pool) (rate(x_seconds_bucket{pool=~"$pool", '
            'a="b(c)"}[$__rate_interval])))'), {"x_seconds"})
        self.assertEqual(metric_names(
            'sum(rate(a_total{type="cached"}[5m])) / on (pool) group_left sum(b) > bool 0.5'),
            {"a_total", "b"})
        self.assertEqual(metric_names("max by (endpoint) (kv) or vector(0)"), {"kv"})


class GrafanaDashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dashboard = load_dashboard()
        cls.queries = list(queries(cls.dashboard))
        cls.wanted = {}  # family -> where it is first queried
        for where, expr in cls.queries:
            for name in metric_names(expr):
                cls.wanted.setdefault(name, where)
        assert len(cls.wanted) > 30, cls.wanted
        cls.live = cls.run_live_gateway()

    def test_has_the_variables_and_topics(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for name in ("pool", "endpoint"):
            self.assertEqual(variables[name]["type"], "query")
            self.assertIn("label_values(", variables[name]["definition"])
        self.assertGreaterEqual(self.dashboard["schemaVersion"], 38)  # Grafana 10
        ids = [p["id"] for p in all_panels(self.dashboard)]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        for p in all_panels(self.dashboard):
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            if p["type"] != "row":
                self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${datasource}"})
                for t in p["targets"]:
                    self.assertEqual(t["datasource"]["uid"], "${datasource}")
        titles = " | ".join(p["title"].lower() for p in all_panels(self.dashboard))
        for topic in ("time to first token", "time per output token", "tokens/s", "queue depth",
                      "queue time", "prefix-cache hit rate", "errors by kind", "status class",
                      "in flight (per endpoint)", "kv-cache utilisation", "engine waiting",
                      "saturation", "desired replicas"):
            self.assertIn(topic, titles)
        exprs = " ".join(e for _, e in self.queries)
        for needle in ('pool=~"$pool"', 'endpoint=~"$endpoint"', "histogram_quantile(0.99",
                       "tokenway_pool_time_to_first_token_seconds_bucket",
                       "gen_ai_server_time_to_first_token_seconds_bucket",
                       'tokenway_endpoint_tokens_total{pool=~"$pool", type="cached"}',
                       "tokenway_prefix_affinity_blocks_total"):
            self.assertIn(needle, exprs)

    @unittest.skipIf(PROMTOOL is None, "promtool is not installed (apt-get install prometheus)")
    def test_every_expression_is_valid_promql(self):
        # Each query as a recording rule, with Grafana's variables replaced as Grafana would.
        rules = []
        for i, (where, expr) in enumerate(self.queries):
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            self.assertNotIn("$", expr, f"{where}: unknown variable")
            rules.append({"record": f"tokenway:dashboard_query_{i}", "expr": expr})
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)  # JSON is YAML
        try:
            done = subprocess.run([PROMTOOL, "check", "rules", f.name], capture_output=True,
                                  text=True, timeout=60)
        finally:
            os.unlink(f.name)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_every_queried_family_is_exported(self):
        missing = sorted(n for n in self.wanted if n not in self.live.samples)
        empty = sorted(n for n in self.wanted if self.live.samples.get(n) == 0)
        self.assertFalse(empty, "exported without samples after traffic: " + ", ".join(empty))
        self.assertFalse(missing, "queried by the dashboard but not exported: " +
                         ", ".join(f"{n} ({self.wanted[n]})" for n in missing))

    def test_every_queried_label_and_value_is_exported(self):
        # Families the gateway does not export are the previous test's failure, not this one's.
        problems = []
        for where, expr in self.queries:
            families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in metric_names(expr)}
            families &= set(self.live.labels)
            for metric, label, op, value in selectors(expr):
                family = re.sub(r"_(bucket|sum|count)$", "", metric)
                if family not in self.live.labels:
                    continue
                values = self.live.labels[family].get(label)
                if values is None:
                    problems.append(f"{where}: {family} has no label {label}")
                elif op == "=" and "$" not in value and value not in values:
                    problems.append(f"{where}: {family}{{{label}}} never is {value!r} "
                                    f"(seen: {sorted(values)})")
            known = {l for f in families for l in self.live.labels[f]} | {"le"}
            for label in grouping_labels(expr):
                if families and label not in known:
                    problems.append(f"{where}: grouping by {label}, which none of "
                                    f"{sorted(families)} has")
        self.assertFalse(problems, "\n".join(problems))

    @classmethod
    def run_live_gateway(cls):
        """Every kind of traffic through a gateway; returns what its /metrics exported."""
        live = Exported()
        with Sim(count=2, args=["--lora", "sql-lora"]) as sim, \
                Sim(count=1, args=["--model", "flaky-model"]) as failing:
            yaml = f"""
pools:
  - name: chat
    scheduler:
      scorers: [{{name: queue-depth, weight: 2}}, {{name: kv-cache, weight: 2}},
                {{name: prefix-cache, weight: 3}}, {{name: predicted-latency, weight: 1}}]
      slo: {{min_samples: 1}}
    flow_control:
      max_in_flight: 1
      queue_ttl: 5s
    endpoints:
{chr(10).join(f"      - {u}" for u in sim.urls)}
  - name: flaky
    policy: round-robin
    endpoints:
      - {failing.urls[0]}
models:
  - name: {MODEL}
    pool: chat
  - name: sql-lora
    pool: chat
    parent: {MODEL}
  - name: flaky-model
    pool: flaky
health:
  active:
    interval: 200ms
  passive:
    consecutive_failures: 100
"""
            with Gateway(yaml) as gw:
                url = gw.base + "/v1/chat/completions"
                prompt = "You are a helpful assistant. " * 20
                for i in range(4):
                    for model in (MODEL, "sql-lora"):
                        st, _, _, raw = post_json(url, chat_body(model, prompt + str(i)))
                        assert st == 200, raw
                        st, _, _, raw = sse_events(url, chat_body(model, prompt + str(i),
                                                                  stream=True))
                        assert st == 200, raw
                # Concurrent requests past max_in_flight wait in the flow-control queue;
                # scrape while they do.
                threads = [threading.Thread(target=post_json, args=(url, chat_body(
                    MODEL, f"queued {i}", max_tokens=64))) for i in range(6)]
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads):
                    live.merge(gw.metrics())
                for t in threads:
                    t.join(60)
                # Upstream 500s, and a client error.
                set_faults(failing.urls[0], error_rate=1.0)
                st, _, _, _ = post_json(url, chat_body("flaky-model"))
                assert st >= 500, st
                set_faults(failing.urls[0], error_rate=0.0)
                st, _, _, _ = post_json(url, chat_body("no-such-model"))
                assert st == 404, st
                live.merge(gw.metrics())
        return live


if __name__ == "__main__":
    twtest.main()
