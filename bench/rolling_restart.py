"""Rolling restart of the model-server fleet under load: the real gateway discovers an
InferencePool's pods from the fake Kubernetes API server of the tests and routes a steady
streaming load (tokenway-bench) to tokenway-sim processes, one per pod address, while every pod
is replaced the way a Deployment with maxSurge 1 / maxUnavailable 0 does it:

  1. a new pod appears (not Ready), its server starts, the pod turns Ready;
  2. the old pod gets its deletionTimestamp and, at the same moment, its server gets SIGTERM
     (no preStop delay: the gateway learns of the deletion while the server is already
     draining); the server closes its listener and finishes the requests it has;
  3. when the server has exited, the pod object is deleted.

Prints the requests sent, failed (by kind), the gateway's retries, and where traffic went.

  python3 bench/rolling_restart.py [build dir] [--pods 4] [--rounds 2] [--rate 16]
                                   [--speed 2] [--duration 60]

Defaults of the gateway are on (access log included); only discovery and active health-check
timings are set.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--pods", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2, help="full fleet replacements")
    ap.add_argument("--rate", type=float, default=16, help="requests/s (Poisson)")
    ap.add_argument("--speed", type=float, default=2, help="tokenway-sim --speed")
    ap.add_argument("--duration", type=int, default=60, help="seconds of load")
    ap.add_argument("--out", default="", help="write the summary JSON here")
    return ap.parse_args()


ARGS = parse_args()
os.environ.setdefault("TOKENWAY_BIN_DIR", os.path.abspath(ARGS.build))
import twtest  # noqa: E402
from fake_kube_api import FakeKubeApi, free_port, inference_pool, make_certs, pod  # noqa: E402

NS = "llm"
LABELS = {"app": "vllm-llama"}
MODEL = twtest.MODEL


class PodServer:
    """tokenway-sim on one pod address."""

    def __init__(self, ip, port, speed):
        self.ip = ip
        self.proc = subprocess.Popen(
            [twtest.bin_path("tokenway-sim"), "--host", ip, "--port", str(port), "--speed",
             str(speed), "--drain-timeout", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if not self.proc.stdout.readline():
            raise RuntimeError("tokenway-sim did not start on " + ip)

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)

    def wait(self):
        rc = self.proc.wait(60)
        self.proc.stdout.close()
        return rc


def main():
    tmp = tempfile.mkdtemp(prefix="tokenway-rolling-")
    make_certs(tmp)
    sa = os.path.join(tmp, "sa")
    os.mkdir(sa)
    for name, text in (("token", "token-1"), ("namespace", NS)):
        with open(os.path.join(sa, name), "w") as f:
            f.write(text)
    shutil.copy(os.path.join(tmp, "ca.crt"), os.path.join(sa, "ca.crt"))
    api = FakeKubeApi(tmp)
    api.start()
    port = free_port()
    api.put("inferencepools", inference_pool("llama", LABELS, [port]))

    next_ip = [40]

    def new_ip():
        next_ip[0] += 1
        return f"127.0.0.{next_ip[0]}"

    servers = {}  # pod name -> PodServer
    for i in range(ARGS.pods):
        name = f"vllm-{i}"
        servers[name] = PodServer(new_ip(), port, ARGS.speed)
        api.put("pods", pod(name, servers[name].ip, True, LABELS))

    os.environ["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
    os.environ["KUBERNETES_SERVICE_PORT"] = str(api.port)
    config = f"""
pools:
  - name: llama
    discovery: {{inference_pool: {{namespace: {NS}, name: llama}}}}
models:
  - name: {MODEL}
    pool: llama
kubernetes:
  service_account_dir: {sa}
"""
    gw = twtest.Gateway(config, workers=2)
    assert twtest.wait_until(
        lambda: twtest.request("GET", gw.admin + "/readyz")[0] == 200, 20), gw.err.lines[-10:]

    results = os.path.join(tmp, "load.json")
    load = subprocess.Popen(
        [twtest.bin_path("tokenway-bench"), "run", "--url", gw.base, "--model", MODEL,
         "--workload", "sharegpt", "--rate", str(ARGS.rate), "--duration",
         f"{ARGS.duration}s", "--stream", "--out", results, "--quiet", "--drain", "60s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    log = []
    t0 = time.time()

    def note(text):
        log.append(f"{time.time() - t0:6.2f}s {text}")

    time.sleep(3)
    generation = 0
    replacements = 0
    for rnd in range(ARGS.rounds):
        generation += 1
        for old in sorted(servers):
            if not old.startswith("vllm-"):
                continue
            new = f"{old.split('-g')[0]}-g{generation}"
            server = PodServer(new_ip(), port, ARGS.speed)
            api.put("pods", pod(new, server.ip, False, LABELS))
            time.sleep(0.5)  # container start, readiness probe
            api.put("pods", pod(new, server.ip, True, LABELS))
            servers[new] = server
            note(f"{new} Ready on {server.ip}")
            time.sleep(1.0)
            victim = servers.pop(old)
            api.put("pods", pod(old, victim.ip, True, LABELS, deleting=True))
            victim.terminate()
            rc = victim.wait()
            api.delete("pods", NS, old)
            note(f"{old} on {victim.ip} terminated (exit {rc})")
            replacements += 1
            time.sleep(0.5)
    _, err = load.communicate(timeout=ARGS.duration + 120)
    with open(results) as f:
        report = json.load(f)

    served = {}
    for line in gw.access_log():
        ep = line.get("endpoint") or "-"
        served[ep] = served.get(ep, 0) + 1
    retries = gw.metric("tokenway_retries_total")
    statuses = {}
    failures = []
    for line in gw.access_log():
        statuses[line.get("status")] = statuses.get(line.get("status"), 0) + 1
        if line.get("status") != 200:
            failures.append(line)
    gw.stop()
    for s in servers.values():
        s.terminate()
        s.wait()
    api.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    rate = report["runs"][0]
    summary = {
        "pods": ARGS.pods, "replacements": replacements, "rate": ARGS.rate,
        "duration_s": ARGS.duration, "sim_speed": ARGS.speed,
        "requests": rate.get("measured"), "unfinished": rate.get("unfinished"), "succeeded": rate.get("succeeded"),
        "failed": rate.get("failed"), "errors": rate.get("errors"),
        "gateway_statuses": statuses, "gateway_retries": retries,
        "served_by_endpoint": served, "failed_requests": failures,
    }
    for line in log:
        print(line)
    print(json.dumps(summary, indent=2, sort_keys=True))
    if ARGS.out:
        with open(ARGS.out, "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
