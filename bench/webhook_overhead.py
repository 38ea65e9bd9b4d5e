#!/usr/bin/env python3
"""What a `webhook` payload processor adds to a request: latency (p50/p99) and gateway CPU per
request, against the same gateway without it. See docs/benchmarks.md.

    python3 bench/webhook_overhead.py [BUILD_DIR] [--requests N] [--rounds R]

Starts tokenway-sim (one endpoint, fast), a minimal allow-everything webhook (a separate Python
process: http.server, keep-alive), and two gateways (--workers 1): A without processors, B with
one `webhook` processor pointing at it. A single keep-alive client sends N sequential chat
requests (max_tokens 1) to A and to B in alternating rounds and reports, per gateway, the
latency percentiles and the gateway's CPU time per request (utime+stime from /proc over the
run, less the gateway's idle CPU rate measured before over the same wall time). The
difference B - A is what the webhook costs; the webhook's own time is included in the
latency, not in the gateway CPU. The client is Python, so absolute latencies include its own
overhead (the same for A and B).
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


class Allow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ANSWER = b'{"action":"allow"}'

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.ANSWER)))
        self.end_headers()
        self.wfile.write(self.ANSWER)

    def log_message(self, *args):
        pass


def serve_webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Allow)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_rate(pid, seconds=3.0):
    """The gateway's CPU seconds per second with no request (ticks, health checks, scrapes)."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)


def run(port, pid, body, n, idle_rate):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    lat = []
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        lat.append(time.perf_counter() - t0)
        if r.status != 200:
            raise RuntimeError(f"status {r.status}")
    # The background work of the run's wall time is not the requests'.
    cpu = cpu_seconds(pid) - cpu0 - idle_rate * (time.perf_counter() - wall0)
    conn.close()
    return lat, cpu


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-webhook":
        serve_webhook()
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ["TOKENWAY_BIN_DIR"] = os.path.abspath(args.build)
    import twtest  # after TOKENWAY_BIN_DIR is set

    hook = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-webhook"],
                            stdout=subprocess.PIPE)
    hook_port = int(hook.stdout.readline().split()[1])
    sim = twtest.Sim(count=1, args=["--speed", "100000"])
    base = f"""
pools:
  - name: p
    endpoints:
      - {sim.urls[0]}
models:
  - name: {twtest.MODEL}
    pool: p
"""
    with_hook = base + f"""processors:
  - name: hook
    type: webhook
    url: http://127.0.0.1:{hook_port}/check
    timeout: 1s
"""
    a = twtest.Gateway(base, workers=1)
    b = twtest.Gateway(with_hook, workers=1)
    body = json.dumps(twtest.chat_body(twtest.MODEL, "Hello there, how are you today?",
                                       max_tokens=1)).encode()
    results = {"A": ([], 0.0), "B": ([], 0.0)}
    try:
        idle = {"A": idle_cpu_rate(a.proc.pid), "B": idle_cpu_rate(b.proc.pid)}
        for name, g in (("A", a), ("B", b)):  # warm-up
            run(g.port, g.proc.pid, body, 200, idle[name])
        for r in range(args.rounds):
            order = (("A", a), ("B", b)) if r % 2 == 0 else (("B", b), ("A", a))
            for name, g in order:
                lat, cpu = run(g.port, g.proc.pid, body, args.requests, idle[name])
                results[name] = (results[name][0] + lat, results[name][1] + cpu)
        calls = b.metric("tokenway_payload_external_calls_total", processor="hook",
                         outcome="allow")
    finally:
        a.stop()
        b.stop()
        sim.stop()
        hook.terminate()
    total = args.requests * args.rounds
    print(f"{total} sequential requests per gateway, {args.rounds} alternating rounds; "
          f"webhook calls counted by B: {int(calls)}")
    print("| gateway | p50 ms | p99 ms | mean ms | gateway CPU µs/request |")
    print("|---|---|---|---|---|")
    rows = {}
    for name in ("A", "B"):
        lat, cpu = results[name]
        rows[name] = (pct(lat, 50) * 1e3, pct(lat, 99) * 1e3, statistics.mean(lat) * 1e3,
                      cpu / total * 1e6)
        label = "A (no processor)" if name == "A" else "B (webhook)"
        print(f"| {label} | {rows[name][0]:.3f} | {rows[name][1]:.3f} | {rows[name][2]:.3f} | "
              f"{rows[name][3]:.1f} |")
    d = [rows["B"][i] - rows["A"][i] for i in range(4)]
    print(f"| added by the webhook | {d[0]:.3f} | {d[1]:.3f} | {d[2]:.3f} | {d[3]:.1f} |")


if __name__ == "__main__":
    main()
