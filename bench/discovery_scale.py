"""Discovery at scale: the real gateway discovers POOLS pools of PODS pods each from the fake
Kubernetes API server of the tests; prints the gateway's CPU time and RSS after the initial sync
and after a churn of every pod turning unready and Ready again, and the snapshot delay.

  python3 bench/discovery_scale.py [build dir] [pools] [pods per pool]

Endpoints are unroutable (10.x addresses): health checks and engine scraping are off, no request
is sent; only discovery works.
"""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))
os.environ.setdefault("TOKENWAY_BIN_DIR", sys.argv[1] if len(sys.argv) > 1 else "build")
import twtest  # noqa: E402
from fake_kube_api import FakeKubeApi, make_certs, pod  # noqa: E402

POOLS = int(sys.argv[2]) if len(sys.argv) > 2 else 100
PODS = int(sys.argv[3]) if len(sys.argv) > 3 else 10


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return cpu, rss / 1024


def endpoints(gw):
    _, _, body = twtest.request("GET", gw.admin + "/admin/endpoints")
    return sum(len(p["endpoints"]) for p in json.loads(body)["pools"])


def main():
    tmp = tempfile.mkdtemp(prefix="tokenway-scale-")
    make_certs(tmp)
    sa = os.path.join(tmp, "sa")
    os.mkdir(sa)
    for name, text in (("token", "token-1"), ("namespace", "llm")):
        with open(os.path.join(sa, name), "w") as f:
            f.write(text)
    os.link(os.path.join(tmp, "ca.crt"), os.path.join(sa, "ca.crt"))
    api = FakeKubeApi(tmp, bookmark_interval=0)
    api.start()
    for p in range(POOLS):
        for i in range(PODS):
            api.put("pods", pod(f"p{p}-{i}", f"10.{p // 200}.{p % 200}.{i + 1}", True,
                                {"pool": f"p{p}"}))
    os.environ["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
    os.environ["KUBERNETES_SERVICE_PORT"] = str(api.port)
    pools = "".join(f"  - name: p{p}\n    discovery: {{selector: {{pool: p{p}}}, port: 8000}}\n"
                    for p in range(POOLS))
    config = (f"pools:\n{pools}models:\n  - name: m\n    pool: p0\n"
              f"kubernetes: {{service_account_dir: {sa}}}\n"
              "health: {active: {enabled: false}}\nengine_metrics: {enabled: false}\n"
              "access_log: {enabled: false}\n")
    t0 = time.time()
    gw = twtest.Gateway(config, workers=1)
    total = POOLS * PODS
    assert twtest.wait_until(lambda: endpoints(gw) == total, 60), endpoints(gw)
    synced = time.time() - t0
    cpu0, rss0 = proc_stats(gw.proc.pid)
    print(f"{POOLS} pools x {PODS} pods: synced {total} endpoints in {synced:.2f} s "
          f"(process start included); CPU {cpu0:.2f} s, RSS {rss0:.1f} MiB")
    t1 = time.time()
    for p in range(POOLS):
        for i in range(PODS):
            api.put("pods", pod(f"p{p}-{i}", f"10.{p // 200}.{p % 200}.{i + 1}", False,
                                {"pool": f"p{p}"}))
    assert twtest.wait_until(lambda: endpoints(gw) == 0, 120)
    for p in range(POOLS):
        for i in range(PODS):
            api.put("pods", pod(f"p{p}-{i}", f"10.{p // 200}.{p % 200}.{i + 1}", True,
                                {"pool": f"p{p}"}))
    assert twtest.wait_until(lambda: endpoints(gw) == total, 120)
    churn = time.time() - t1
    cpu1, rss1 = proc_stats(gw.proc.pid)
    print(f"churn of {2 * total} pod events: {churn:.2f} s wall, gateway CPU "
          f"{cpu1 - cpu0:.2f} s, RSS {rss1:.1f} MiB")
    gw.stop()
    api.stop()


if __name__ == "__main__":
    main()
