"""deploy/kubernetes: every overlay renders with `kubectl kustomize` and the result holds together.

Selectors of the Services, Deployments, PodDisruptionBudget, ServiceMonitor and InferencePools
match the pods they target (and no others); Service target ports, probe ports and InferencePool
target ports are container ports; the HTTPRoute sends to the InferencePool; the RBAC granted to
the gateway's service account covers every resource discovery reads for the config in the
ConfigMap (get, list, watch, in the right scope) and nothing more; the containers are hardened;
the config passes `tokenway --validate`; the tokenway-sim and tokenway-bench arguments are flags
those binaries accept; the Kueue Job is suspended and names its LocalQueue; each KEDA
ScaledObject scales an existing model-server Deployment of a configured pool through a Service
that reaches the gateway's scaler port. The checks are also run on broken copies of a render to
show that they fail."""
import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

import twtest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
OVERLAYS = ["sim", "vllm", "batch"]
KUBECTL = shutil.which("kubectl")
KUSTOMIZE = shutil.which("kustomize")
READ_VERBS = {"get", "list", "watch"}
NAMESPACE = "llm"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TOKENWAY_IMAGE = "tokenway:latest"
POD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet"}


RENDER = None  # the command that renders a kustomization directory


def kustomize_major(version_text):
    m = re.search(r"Kustomize Version: v?(\d+)", version_text) or \
        re.search(r"^(?:\{Version:)?(?:kustomize/)?v(\d+)", version_text.strip())
    return int(m.group(1)) if m else 0


def setUpModule():
    """kubectl's own kustomize when it is v5 (kubectl 1.27+), else a standalone kustomize v5."""
    global RENDER
    found = []
    if KUBECTL:
        v = subprocess.run([KUBECTL, "version", "--client"], capture_output=True, text=True,
                           timeout=30).stdout
        if kustomize_major(v) >= 5:
            RENDER = [KUBECTL, "kustomize"]
            return
        found.append(f"{KUBECTL} ({v.strip().splitlines()[0] if v.strip() else 'no version'})")
    if KUSTOMIZE:
        v = subprocess.run([KUSTOMIZE, "version"], capture_output=True, text=True,
                           timeout=30).stdout
        if kustomize_major(v) >= 5:
            RENDER = [KUSTOMIZE, "build"]
            return
        found.append(f"{KUSTOMIZE} ({v.strip()})")
    raise unittest.SkipTest(
        "deploy/kubernetes needs kustomize v5 (kubectl 1.27+ or a kustomize binary); found: "
        + (", ".join(found) or "neither kubectl nor kustomize (scripts/setup.sh installs "
                                "kubernetes-client)"))


def render(overlay):
    out = subprocess.run(RENDER + [os.path.join(KDIR, "overlays", overlay)],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(RENDER)} overlays/{overlay} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


class Render:
    """A rendered overlay with lookups by kind and name."""

    def __init__(self, docs):
        self.docs = docs

    def kind(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind, name=None, prefix=None):
        found = [d for d in self.kind(kind)
                 if (name is None or d["metadata"]["name"] == name)
                 and (prefix is None or d["metadata"]["name"].startswith(prefix))]
        if len(found) != 1:
            raise AssertionError(f"expected one {kind} {name or prefix or ''}, found {len(found)}")
        return found[0]

    def workloads(self):
        return [d for d in self.docs if d["kind"] in POD_KINDS]

    def gateway(self):
        return self.get("Deployment", "tokenway")

    def config_map(self):
        return self.get("ConfigMap", prefix="tokenway-config")

    def config(self):
        return yaml.safe_load(self.config_map()["data"]["tokenway.yaml"])


def ns(obj):
    return obj["metadata"].get("namespace")


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload):
    return pod_spec(workload)["containers"]


def matches(match_labels, labels):
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def selected(r, match_labels, namespace):
    return [w for w in r.workloads() if ns(w) == namespace and matches(match_labels, pod_labels(w))]


def container_port(workload, port):
    """The containerPort that `port` (a number or a port name) names in the workload's pods."""
    for c in containers(workload):
        for p in c.get("ports", []):
            if p["containerPort"] == port or p.get("name") == port:
                return p["containerPort"]
    return None


def flag_value(args, flag):
    for a in args:
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    if flag in args:
        return args[args.index(flag) + 1]
    return None


# ---- checks: each returns a list of problems (empty when the render is right) ----

def check_selectors(r):
    problems = []
    for w in r.workloads():
        sel = w["spec"].get("selector", {})
        if w["kind"] == "Job" and not sel:
            continue
        if "matchExpressions" in sel:
            problems.append(f"{w['kind']} {w['metadata']['name']}: matchExpressions not checked")
        if not matches(sel.get("matchLabels", {}), pod_labels(w)):
            problems.append(f"{w['kind']} {w['metadata']['name']}: selector does not match its pods")
        for t in pod_spec(w).get("topologySpreadConstraints", []):
            if not matches(t["labelSelector"]["matchLabels"], pod_labels(w)):
                problems.append(f"{w['metadata']['name']}: topology spread selects other pods")
    for s in r.kind("Service"):
        targets = selected(r, s["spec"].get("selector", {}), ns(s))
        if len(targets) != 1:
            problems.append(f"Service {s['metadata']['name']} selects {len(targets)} workloads")
            continue
        for p in s["spec"]["ports"]:
            if container_port(targets[0], p.get("targetPort", p["port"])) is None:
                problems.append(f"Service {s['metadata']['name']} port {p['port']}: targetPort "
                                f"{p.get('targetPort')} is no container port")
    for pdb in r.kind("PodDisruptionBudget"):
        targets = selected(r, pdb["spec"]["selector"]["matchLabels"], ns(pdb))
        if len(targets) != 1:
            problems.append(f"PDB {pdb['metadata']['name']} selects {len(targets)} workloads")
        elif pdb["spec"].get("minAvailable", 0) >= targets[0]["spec"]["replicas"]:
            problems.append(f"PDB {pdb['metadata']['name']} allows no disruption")
    for sm in r.kind("ServiceMonitor"):
        svcs = [s for s in r.kind("Service") if ns(s) == ns(sm)
                and matches(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        if len(svcs) != 1:
            problems.append(f"ServiceMonitor {sm['metadata']['name']} selects {len(svcs)} Services")
            continue
        for ep in sm["spec"]["endpoints"]:
            ports = [p for p in svcs[0]["spec"]["ports"] if p.get("name") == ep["port"]]
            if len(ports) != 1:
                problems.append(f"ServiceMonitor port {ep['port']} is not a Service port name")
                continue
            target = selected(r, svcs[0]["spec"]["selector"], ns(svcs[0]))[0]
            admin_port = int(r.config()["admin"].rsplit(":", 1)[1])
            if container_port(target, ports[0]["targetPort"]) != admin_port or \
                    ep.get("path") != "/metrics":
                problems.append("ServiceMonitor does not scrape /metrics on the admin port")
    return problems


def check_gateway(r):
    problems = []
    gw = r.gateway()
    cfg = r.config()
    if gw["spec"]["replicas"] != 2:
        problems.append(f"gateway replicas {gw['spec']['replicas']}, want 2")
    if not pod_spec(gw).get("topologySpreadConstraints"):
        problems.append("gateway has no topologySpreadConstraints")
    c = containers(gw)[0]
    if c["image"] != TOKENWAY_IMAGE:
        problems.append(f"gateway image {c['image']}")
    listen_port = int(cfg["listen"].rsplit(":", 1)[1])
    admin_port = int(cfg["admin"].rsplit(":", 1)[1])
    if (cfg["listen"].split(":")[0], cfg["admin"].split(":")[0]) != ("0.0.0.0", "0.0.0.0"):
        problems.append("listen/admin must bind 0.0.0.0 in a pod")
    if container_port(gw, listen_port) != 8080 or container_port(gw, admin_port) != 8081:
        problems.append("config listen/admin ports are not the container ports 8080/8081")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or container_port(gw, get.get("port")) != admin_port:
            problems.append(f"gateway {probe} is not GET {path} on the admin port")
    res = c.get("resources", {})
    for k in ("cpu", "memory"):
        if k not in res.get("requests", {}):
            problems.append(f"gateway has no {k} request")
    if "memory" not in res.get("limits", {}):
        problems.append("gateway has no memory limit")
    # The config file the gateway reads is the ConfigMap's key.
    cm = r.config_map()
    vols = {v["name"]: v for v in pod_spec(gw).get("volumes", [])}
    config_path = flag_value(c.get("args", []), "--config")
    mounted = [m for m in c.get("volumeMounts", [])
               if vols.get(m["name"], {}).get("configMap", {}).get("name") == cm["metadata"]["name"]]
    if len(mounted) != 1 or config_path != mounted[0]["mountPath"] + "/tokenway.yaml":
        problems.append(f"--config {config_path} is not the mounted ConfigMap's tokenway.yaml")
    sa = pod_spec(gw).get("serviceAccountName")
    if not any(s["metadata"]["name"] == sa for s in r.kind("ServiceAccount")):
        problems.append(f"gateway service account {sa} does not exist")
    return problems


def check_hardening(r):
    """Every container running the tokenway image, and its pod, is locked down."""
    problems = []
    for w in r.workloads():
        for c in containers(w):
            if c["image"] != TOKENWAY_IMAGE:
                continue
            name = f"{w['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext", {})
            psc = pod_spec(w).get("securityContext", {})
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append(f"{name}: runAsNonRoot not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: root filesystem writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: privilege escalation allowed")
            if sc.get("privileged"):
                problems.append(f"{name}: privileged")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or \
                    sc.get("capabilities", {}).get("add"):
                problems.append(f"{name}: capabilities not dropped")
    return problems


def required_access(r):
    """(apiGroup, resource, namespace or None for cluster scope) discovery reads for the config."""
    cfg = r.config()
    own = ns(r.gateway())
    objective_group = cfg.get("kubernetes", {}).get(
        "objective_api", "inference.networking.x-k8s.io/v1alpha2").split("/")[0]
    need = set()
    for pool in cfg.get("pools", []):
        d = pool.get("discovery")
        if not d:
            continue
        ip = d.get("inference_pool")
        space = (ip or {}).get("namespace") or d.get("namespace") or own
        need.add(("", "pods", space))
        if ip:
            need.add(("inference.networking.k8s.io", "inferencepools", space))
        if d.get("objectives"):
            need.add((objective_group, "inferenceobjectives", space))
        if d.get("dra"):
            need.add(("resource.k8s.io", "resourceclaims", space))
            need.add(("resource.k8s.io", "resourceslices", None))
    return need


def granted_rules(r):
    """(rule, namespace or None) for every rule bound to the gateway's service account."""
    gw = r.gateway()
    sa = (pod_spec(gw).get("serviceAccountName", "default"), ns(gw))
    out = []
    for kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        for b in r.kind(kind):
            if not any(s["kind"] == "ServiceAccount" and (s["name"], s.get("namespace")) == sa
                       for s in b.get("subjects", [])):
                continue
            ref = b["roleRef"]
            roles = [x for x in r.kind(ref["kind"]) if x["metadata"]["name"] == ref["name"]
                     and (ref["kind"] == "ClusterRole" or ns(x) == ns(b))]
            if len(roles) != 1:
                raise AssertionError(f"{kind} {b['metadata']['name']}: {ref['kind']} "
                                     f"{ref['name']} not in the render")
            scope = ns(b) if kind == "RoleBinding" else None
            out += [(rule, scope) for rule in roles[0].get("rules", [])]
    return out


def check_rbac(r):
    problems = []
    need = required_access(r)
    if not need:
        problems.append("the config discovers nothing")
    rules = granted_rules(r)
    for group, resource, space in sorted(need, key=str):
        ok = any(group in rule.get("apiGroups", []) and resource in rule.get("resources", [])
                 and READ_VERBS <= set(rule.get("verbs", [])) and scope in (None, space)
                 for rule, scope in rules)
        if not ok:
            where = f"namespace {space}" if space else "cluster scope"
            problems.append(f"no get/list/watch on {group or 'core'}/{resource} in {where}")
    allowed = {(g, res) for g, res, _ in need}
    for rule, scope in rules:
        for field in ("apiGroups", "resources", "verbs"):
            if "*" in rule.get(field, []):
                problems.append(f"wildcard in {field}: {rule}")
        if rule.get("nonResourceURLs"):
            problems.append(f"nonResourceURLs granted: {rule}")
        if set(rule.get("verbs", [])) - READ_VERBS:
            problems.append(f"verbs beyond get/list/watch: {rule}")
        for g in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                if (g, res) not in allowed:
                    problems.append(f"{g or 'core'}/{res} granted but not read by discovery")
                elif scope is None and (g, res, None) not in need:
                    problems.append(f"{g or 'core'}/{res} granted cluster-wide, needed per namespace")
    return problems


def check_inference_pools(r):
    problems = []
    cfg = r.config()
    gw = r.gateway()
    for pool in cfg["pools"]:
        ip = (pool.get("discovery") or {}).get("inference_pool")
        if not ip:
            continue
        space = ip.get("namespace") or ns(gw)
        found = [p for p in r.kind("InferencePool")
                 if p["metadata"]["name"] == ip["name"] and ns(p) == space]
        if len(found) != 1:
            problems.append(f"InferencePool {space}/{ip['name']} of pool {pool['name']} missing")
            continue
        p = found[0]
        if p["apiVersion"] != "inference.networking.k8s.io/v1":
            problems.append(f"InferencePool apiVersion {p['apiVersion']}")
        servers = selected(r, p["spec"]["selector"]["matchLabels"], space)
        if not servers or gw in servers:
            problems.append(f"InferencePool {ip['name']} selects {len(servers)} workloads "
                            "(want the model servers and not the gateway)")
        for w in servers:
            if not containers(w)[0].get("readinessProbe"):
                problems.append(f"{w['metadata']['name']}: model server without readinessProbe")
            for tp in p["spec"]["targetPorts"]:
                if container_port(w, tp["number"]) != tp["number"]:
                    problems.append(f"InferencePool targetPort {tp['number']} is no container port "
                                    f"of {w['metadata']['name']}")
    for route in r.kind("HTTPRoute"):
        for rule in route["spec"]["rules"]:
            for ref in rule["backendRefs"]:
                pools = [p for p in r.kind("InferencePool")
                         if p["metadata"]["name"] == ref["name"] and ns(p) == ns(route)]
                if ref.get("kind") != "InferencePool" or \
                        ref.get("group") != "inference.networking.k8s.io" or len(pools) != 1:
                    problems.append(f"HTTPRoute backendRef {ref} is not an InferencePool here")
    return problems


SCALER_METRICS = {"desired_replicas", "queue_depth", "output_tokens_per_second",
                  "input_tokens_per_second", "saturation"}


def check_scaled_objects(r):
    """Every KEDA ScaledObject scales a model-server Deployment of a pool the gateway serves, and its
    external trigger's scalerAddress is a Service port that reaches the gateway's scaler listener."""
    problems = []
    cfg = r.config()
    gw = r.gateway()
    pools = {p["name"]: p for p in cfg["pools"]}
    keda_listen = cfg.get("autoscaling", {}).get("keda", {}).get("listen")
    for so in r.kind("ScaledObject"):
        name = so["metadata"]["name"]
        if so["apiVersion"] != "keda.sh/v1alpha1":
            problems.append(f"ScaledObject {name}: apiVersion {so['apiVersion']}")
        ref = so["spec"]["scaleTargetRef"]
        targets = [w for w in r.kind(ref.get("kind", "Deployment"))
                   if w["metadata"]["name"] == ref.get("name") and ns(w) == ns(so)]
        if ref.get("apiVersion", "apps/v1") != "apps/v1" or len(targets) != 1:
            problems.append(f"ScaledObject {name}: scaleTargetRef {ref} is no Deployment here")
        elif targets[0] is gw:
            problems.append(f"ScaledObject {name} scales the gateway")
        triggers = so["spec"].get("triggers", [])
        if not triggers:
            problems.append(f"ScaledObject {name} has no trigger")
        for t in triggers:
            if t.get("type") not in ("external", "external-push"):
                problems.append(f"ScaledObject {name}: trigger type {t.get('type')}")
                continue
            md = t.get("metadata", {})
            pool = md.get("pool", name)
            if pool not in pools:
                problems.append(f"ScaledObject {name}: pool {pool} is not in the gateway's config")
            else:
                # The pool's InferencePool selects the Deployment being scaled.
                ip = (pools[pool].get("discovery") or {}).get("inference_pool") or {}
                found = [p for p in r.kind("InferencePool") if p["metadata"]["name"] == ip.get("name")
                         and ns(p) == (ip.get("namespace") or ns(gw))]
                if targets and (len(found) != 1 or targets[0] not in
                                selected(r, found[0]["spec"]["selector"]["matchLabels"], ns(found[0]))):
                    problems.append(f"ScaledObject {name} scales no model server of pool {pool}")
            if md.get("metric", "desired_replicas") not in SCALER_METRICS:
                problems.append(f"ScaledObject {name}: unknown metric {md.get('metric')}")
            try:
                if float(md.get("target", "1")) <= 0:
                    raise ValueError
            except ValueError:
                problems.append(f"ScaledObject {name}: target {md.get('target')} is not positive")
            if t.get("metricType", "AverageValue") not in ("AverageValue", "Value"):
                problems.append(f"ScaledObject {name}: metricType {t.get('metricType')}")
            if not keda_listen:
                problems.append("the gateway's config has no autoscaling.keda.listen")
                continue
            host, _, port = md.get("scalerAddress", "").rpartition(":")
            labels = host.split(".")
            svc_name, svc_ns = labels[0], labels[1] if len(labels) > 1 else ns(so)
            if len(labels) > 2 and labels[2:] not in (["svc"], ["svc", "cluster", "local"]):
                problems.append(f"ScaledObject {name}: scalerAddress {host} is not a Service name")
                continue
            svcs = [x for x in r.kind("Service") if x["metadata"]["name"] == svc_name
                    and ns(x) == svc_ns]
            if len(svcs) != 1:
                problems.append(f"ScaledObject {name}: scalerAddress names no Service {svc_ns}/{svc_name}")
                continue
            svc = svcs[0]
            ports = [p for p in svc["spec"]["ports"] if str(p["port"]) == port]
            if len(ports) != 1:
                problems.append(f"ScaledObject {name}: port {port} is no port of Service {svc_name}")
                continue
            backends = selected(r, svc["spec"].get("selector", {}), ns(svc))
            cport = container_port(gw, ports[0].get("targetPort", ports[0]["port"]))
            if backends != [gw] or cport != int(keda_listen.rsplit(":", 1)[1]):
                problems.append(f"ScaledObject {name}: {svc_name}:{port} does not reach the "
                                f"gateway's scaler listener {keda_listen}")
            elif svc["spec"].get("clusterIP") == "None" and ports[0]["port"] != cport:
                # A headless Service's clients dial the pods: only the container port answers.
                problems.append(f"ScaledObject {name}: headless {svc_name} port {port} is not the "
                                f"container port {cport}")
    return problems


class DeployRenderTest(unittest.TestCase):
    renders = {}

    @classmethod
    def setUpClass(cls):
        cls.renders = {o: Render(render(o)) for o in OVERLAYS}

    def each(self):
        return list(self.renders.items())

    def test_objects_and_namespace(self):
        for overlay, r in self.each():
            for d in r.docs:
                self.assertIn("apiVersion", d)
                self.assertTrue(d["metadata"]["name"])
                if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                    self.assertEqual(ns(d), NAMESPACE, f"{overlay}: {d['kind']} {d['metadata']['name']}")
            for kind in ("ServiceAccount", "Role", "RoleBinding", "Service",
                         "PodDisruptionBudget", "ServiceMonitor", "InferencePool"):
                self.assertTrue(r.kind(kind), f"{overlay}: no {kind}")
            self.assertEqual(r.get("ServiceMonitor")["apiVersion"], "monitoring.coreos.com/v1")
            svc = r.get("Service", "tokenway")
            self.assertEqual({(p["name"], p["port"]) for p in svc["spec"]["ports"]},
                             {("http", 8080), ("admin", 8081)})

    def test_dashboard_config_map(self):
        with open(os.path.join(ROOT, "deploy", "grafana", "tokenway-dashboard.json")) as f:
            source = json.load(f)
        for overlay, r in self.each():
            cm = r.get("ConfigMap", "tokenway-dashboard")
            self.assertEqual(cm["metadata"]["labels"].get("grafana_dashboard"), "1")
            self.assertEqual(json.loads(cm["data"]["tokenway-dashboard.json"]), source)

    def test_selectors_and_ports(self):
        for overlay, r in self.each():
            self.assertEqual(check_selectors(r), [], overlay)

    def test_gateway_deployment(self):
        for overlay, r in self.each():
            self.assertEqual(check_gateway(r), [], overlay)

    def test_hardening(self):
        for overlay, r in self.each():
            self.assertEqual(check_hardening(r), [], overlay)

    def test_rbac_exactly_what_discovery_reads(self):
        for overlay, r in self.each():
            self.assertEqual(check_rbac(r), [], overlay)
        # The vLLM overlay's config turns DRA on: claims in the namespace, slices cluster-wide.
        self.assertIn(("resource.k8s.io", "resourceslices", None),
                      required_access(self.renders["vllm"]))
        self.assertNotIn(("resource.k8s.io", "resourceclaims", NAMESPACE),
                         required_access(self.renders["sim"]))

    def test_inference_pool_and_route(self):
        for overlay, r in self.each():
            self.assertEqual(check_inference_pools(r), [], overlay)
        route = self.renders["vllm"].get("HTTPRoute")
        self.assertEqual(route["apiVersion"], "gateway.networking.k8s.io/v1")
        self.assertEqual(route["spec"]["rules"][0]["backendRefs"][0]["name"], "llama-8b")

    def test_config_validates(self):
        tokenway = twtest.bin_path("tokenway")
        for overlay, r in self.each():
            cfg = r.config()
            self.assertEqual([m["name"] for m in cfg["models"]], [MODEL])
            self.assertTrue(all(p.get("discovery") for p in cfg["pools"]))
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"k8s-{overlay}-",
                                             delete=False) as f:
                f.write(r.config_map()["data"]["tokenway.yaml"])
            try:
                out = subprocess.run([tokenway, "--validate", f.name], capture_output=True,
                                     text=True, timeout=30)
            finally:
                os.unlink(f.name)
            self.assertEqual(out.returncode, 0, f"{overlay}: {out.stdout}{out.stderr}")
            self.assertIn("ok (1 pools, 1 models)", out.stdout + out.stderr)

    def test_dra_claim(self):
        r = self.renders["vllm"]
        tmpl = r.get("ResourceClaimTemplate")
        self.assertEqual(tmpl["apiVersion"], "resource.k8s.io/v1")
        req = tmpl["spec"]["spec"]["devices"]["requests"][0]
        self.assertEqual(req["exactly"]["deviceClassName"], "gpu.nvidia.com")
        cel = req["exactly"]["selectors"][0]["cel"]["expression"]
        self.assertIn("device.capacity['gpu.nvidia.com'].memory", cel)
        self.assertIn("quantity('80Gi')", cel)
        vllm = r.get("Deployment", "llama-8b-vllm")
        claims = pod_spec(vllm)["resourceClaims"]
        self.assertEqual(claims, [{"name": "gpu", "resourceClaimTemplateName":
                                   tmpl["metadata"]["name"]}])
        self.assertEqual(containers(vllm)[0]["resources"]["claims"], [{"name": "gpu"}])
        self.assertEqual(flag_value(containers(vllm)[0]["args"], "--model"), MODEL)

    def test_sim_fleet(self):
        sim_help = subprocess.run([twtest.bin_path("tokenway-sim"), "--help"], capture_output=True,
                                  text=True, timeout=30).stdout
        for overlay in ("sim", "batch"):
            r = self.renders[overlay]
            sim = r.get("Deployment", "llama-8b-sim")
            c = containers(sim)[0]
            self.assertEqual(c["command"], ["tokenway-sim"])
            for a in c["args"]:
                self.assertIn(a.split("=")[0] + " ", sim_help, f"tokenway-sim has no {a}")
            self.assertEqual(flag_value(c["args"], "--host"), "0.0.0.0")
            self.assertEqual(flag_value(c["args"], "--model"), MODEL)
            port = int(flag_value(c["args"], "--port"))
            self.assertEqual(container_port(sim, port), port)
        self.assertFalse(any(w["metadata"]["name"] == "llama-8b-sim"
                             for w in self.renders["vllm"].workloads()))

    def test_kueue_bench_job(self):
        r = self.renders["batch"]
        job = r.get("Job", "tokenway-bench")
        self.assertIs(job["spec"]["suspend"], True)
        queue = job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
        lq = r.get("LocalQueue", queue)
        self.assertEqual(lq["apiVersion"], "kueue.x-k8s.io/v1beta2")
        self.assertEqual(pod_spec(job)["restartPolicy"], "Never")
        c = containers(job)[0]
        self.assertEqual(c["command"], ["tokenway-bench"])
        self.assertEqual(c["args"][0], "run")
        bench_help = subprocess.run([twtest.bin_path("tokenway-bench"), "run", "--help"],
                                    capture_output=True, text=True, timeout=30).stdout
        for a in c["args"][1:]:
            self.assertIn("  " + a.split("=")[0], bench_help, f"tokenway-bench run has no {a}")
        # The benchmark goes through the gateway Service's http port with the served model.
        url = flag_value(c["args"], "--url")
        host, port = url.removeprefix("http://").split(":")
        svc = r.get("Service", host)
        http = [p for p in svc["spec"]["ports"] if p["port"] == int(port)]
        self.assertEqual(len(http), 1)
        self.assertEqual(container_port(r.gateway(), http[0]["targetPort"]), 8080)
        self.assertEqual(flag_value(c["args"], "--model"), MODEL)
        for overlay in ("sim", "vllm"):
            self.assertFalse(self.renders[overlay].kind("Job"))

    def test_keda_scaled_objects(self):
        for overlay, r in self.each():
            self.assertEqual(len(r.kind("ScaledObject")), 1, overlay)
            self.assertEqual(check_scaled_objects(r), [], overlay)
        for overlay, target in (("sim", "llama-8b-sim"), ("vllm", "llama-8b-vllm")):
            so = self.renders[overlay].get("ScaledObject")
            self.assertEqual(so["spec"]["scaleTargetRef"]["name"], target)
        # The sim fleet scales from zero: the gateway holds requests while it has no pod.
        self.assertEqual(self.renders["sim"].get("ScaledObject")["spec"]["minReplicaCount"], 0)
        self.assertIn("scale_from_zero", self.renders["sim"].config()["pools"][0])

    def test_checks_catch_broken_renders(self):
        """Each check fails on a render broken the way a manifest edit could break it."""
        base = self.renders["vllm"]

        def broken(edit):
            docs = copy.deepcopy(base.docs)
            r = Render(docs)
            edit(r)
            return r

        def svc_port(r):
            r.get("Service", "tokenway")["spec"]["ports"][1]["targetPort"] = 9090
        self.assertTrue(check_selectors(broken(svc_port)))

        def pdb_sel(r):
            r.get("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]["x"] = "y"
        self.assertTrue(check_selectors(broken(pdb_sel)))

        def probe(r):
            containers(r.gateway())[0]["readinessProbe"]["httpGet"]["port"] = "http"
        self.assertTrue(check_gateway(broken(probe)))

        def writable(r):
            containers(r.gateway())[0]["securityContext"]["readOnlyRootFilesystem"] = False
        self.assertTrue(check_hardening(broken(writable)))

        def no_slices(r):
            r.docs.remove(r.get("ClusterRoleBinding"))
        self.assertTrue(any("resourceslices" in p for p in check_rbac(broken(no_slices))))

        def wildcard(r):
            r.get("Role")["rules"][0]["verbs"] = ["*"]
        self.assertTrue(check_rbac(broken(wildcard)))

        def secrets(r):
            r.get("Role")["rules"].append(
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
        self.assertTrue(check_rbac(broken(secrets)))

        def pool_port(r):
            r.get("InferencePool")["spec"]["targetPorts"][0]["number"] = 8001
        self.assertTrue(check_inference_pools(broken(pool_port)))

        def route(r):
            r.get("HTTPRoute")["spec"]["rules"][0]["backendRefs"][0]["name"] = "other"
        self.assertTrue(check_inference_pools(broken(route)))

        def scale_target(r):
            r.get("ScaledObject")["spec"]["scaleTargetRef"]["name"] = "llama-8b"
        self.assertTrue(check_scaled_objects(broken(scale_target)))

        def scale_gateway(r):
            r.get("ScaledObject")["spec"]["scaleTargetRef"]["name"] = "tokenway"
        self.assertTrue(check_scaled_objects(broken(scale_gateway)))

        def scaler_port(r):
            r.get("ScaledObject")["spec"]["triggers"][0]["metadata"]["scalerAddress"] = \
                "tokenway-scaler.llm.svc.cluster.local:8081"
        self.assertTrue(check_scaled_objects(broken(scaler_port)))

        def scaler_service(r):
            r.get("ScaledObject")["spec"]["triggers"][0]["metadata"]["scalerAddress"] = \
                "tokenway-scaler.other.svc.cluster.local:9100"
        self.assertTrue(check_scaled_objects(broken(scaler_service)))

        def scaler_api_port(r):  # the API Service: its pods answer HTTP there, not the scaler
            r.get("ScaledObject")["spec"]["triggers"][0]["metadata"]["scalerAddress"] = \
                "tokenway.llm:8080"
        self.assertTrue(check_scaled_objects(broken(scaler_api_port)))

        def scaler_pool(r):
            r.get("ScaledObject")["spec"]["triggers"][0]["metadata"]["pool"] = "mistral"
        self.assertTrue(check_scaled_objects(broken(scaler_pool)))

        def keda_off(r):
            cm = r.config_map()
            cfg = yaml.safe_load(cm["data"]["tokenway.yaml"])
            del cfg["autoscaling"]
            cm["data"]["tokenway.yaml"] = yaml.safe_dump(cfg)
        self.assertTrue(check_scaled_objects(broken(keda_off)))

        def listen_port(r):
            cm = r.config_map()
            cfg = yaml.safe_load(cm["data"]["tokenway.yaml"])
            cfg["autoscaling"]["keda"]["listen"] = "0.0.0.0:9200"
            cm["data"]["tokenway.yaml"] = yaml.safe_dump(cfg)
        self.assertTrue(check_scaled_objects(broken(listen_port)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
