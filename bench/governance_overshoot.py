#!/usr/bin/env python3
"""Token-limit accuracy across replicas: tokens admitted per window against the limit.

Usage: bench/governance_overshoot.py [--build build] [--limit 20000] [--window 10s]
       [--windows 6] [--clients 64] [--max-tokens 200] [--speed 10] [--endpoints 4]

Starts one redis-server (free loopback port, no persistence), one tokenway-sim fleet and two
tokenway replicas (one worker each) that share the Redis limiter, with one tenant whose
tokens_per_minute is LIMIT per governance.window. CLIENTS streaming clients of that tenant,
spread over both replicas, send requests back to back (honouring Retry-After on 429) for
WINDOWS whole windows. The same load runs twice: `charge: reserve` (tokenway: estimated input +
max_tokens reserved at admission, settled with real usage) and `charge: post_hoc` (count only
after the response, as other gateways do).

From both replicas' access logs: every request's admission window (start = ts - duration), the
tokens admitted per window (prompt + completion of each 200), the overshoot over LIMIT, and the
429s answered in a window that ended with room for that request (false rejects). Prints a
Markdown table. Standard library only; reuses tests/integration/twtest.py to run the binaries.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

KEY = "sk-bench-overshoot-0123456789"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_window(text):
    if text.endswith("ms"):
        return int(text[:-2])
    if text.endswith("s"):
        return int(float(text[:-1]) * 1000)
    raise SystemExit("--window must end in s or ms")


def config(urls, args, redis_port, charge):
    import hashlib
    eps = "\n".join(f"      - {u}" for u in urls)
    return f"""
pools:
  - name: p
    policy: least-request
    endpoints:
{eps}
models:
  - name: {MODEL}
    pool: p
governance:
  backend: redis
  window: {args.window}
  charge: {charge}
  redis: {{address: 127.0.0.1:{redis_port}, timeout: 200ms, fail_mode: closed,
           key_prefix: 'bench-{charge}-{int(time.time())}:'}}
  tenants:
    - name: bench
      keys: [{{id: k, sha256: {hashlib.sha256(KEY.encode()).hexdigest()}}}]
      limits: {{tokens_per_minute: {args.limit}}}
"""


def client(port, body, stop, results):
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + KEY}
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            results.append(resp.status)
            if resp.status == 429:
                wait = float(resp.getheader("Retry-After", "1"))
                stop.wait(wait + random.uniform(0, 0.05))
        except (OSError, http.client.HTTPException):
            if conn:
                conn.close()
            conn = None
            stop.wait(0.05)


def run(mode, urls, args, redis_port, window_ms):
    from twtest import Gateway
    cfg = config(urls, args, redis_port, mode)
    gws = [Gateway(cfg, workers=1), Gateway(cfg, workers=1)]
    body = json.dumps({
        "model": MODEL, "stream": True, "max_tokens": args.max_tokens,
        "messages": [{"role": "user", "content": "Summarise the history of the printing press."}],
    }).encode()
    try:
        # Start just after a window boundary so that the measured windows are whole.
        now_ms = time.time() * 1000
        time.sleep((window_ms - now_ms % window_ms) / 1000 + 0.01)
        first = int(time.time() * 1000 // window_ms)
        stop = threading.Event()
        results = []
        threads = [threading.Thread(target=client, args=(gws[i % 2].port, body, stop, results),
                                    daemon=True) for i in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(args.windows * window_ms / 1000)
        stop.set()
        for t in threads:
            t.join(120)
        time.sleep(0.5)
    finally:
        for g in gws:
            g.stop()
    last = first + args.windows - 1
    admitted, rejects, request_tokens = {}, {}, []
    for g in gws:
        for line in g.access_log():
            if line.get("tenant") != "bench":
                continue
            start_ms = line["ts"] * 1000 - line["duration_ms"]
            w = int(start_ms // window_ms)
            if line["status"] == 200:
                tokens = max(0, line["prompt_tokens"]) + max(0, line["completion_tokens"])
                admitted[w] = admitted.get(w, 0) + tokens
                request_tokens.append(tokens)
            elif line["status"] == 429:
                rejects[w] = rejects.get(w, 0) + 1
    per_request = max(request_tokens) if request_tokens else 0
    rows = []
    for w in range(first, last + 1):
        a = admitted.get(w, 0)
        r = rejects.get(w, 0)
        false_rejects = r if a + per_request <= args.limit else 0
        rows.append((w - first + 1, a, max(0, a - args.limit), r, false_rejects))
    return rows, per_request


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--limit", type=int, default=20000)
    ap.add_argument("--window", default="10s")
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--speed", type=float, default=10)
    ap.add_argument("--endpoints", type=int, default=4)
    args = ap.parse_args()
    os.environ["TOKENWAY_BIN_DIR"] = os.path.abspath(args.build)
    from twtest import Sim
    window_ms = parse_window(args.window)
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = Sim(args.endpoints, ["--speed", str(args.speed)])
    try:
        time.sleep(0.3)
        out = {}
        for mode in ("reserve", "post_hoc"):
            out[mode] = run(mode, sim.urls, args, redis_port, window_ms)
    finally:
        sim.stop()
        redis.send_signal(signal.SIGTERM)
        redis.wait(10)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"limit L = {args.limit} tokens per {args.window} window; {args.clients} streaming "
          f"clients of one tenant over 2 replicas sharing one Redis; max_tokens "
          f"{args.max_tokens}; sim x{args.speed}, {args.endpoints} endpoints; "
          f"{os.cpu_count()} cores, load average {' '.join(load)}")
    print()
    print("| charge | window | tokens admitted | vs L | overshoot | 429s | false rejects |")
    print("|---|---|---|---|---|---|---|")
    for mode, (rows, per_request) in out.items():
        for w, a, over, r, fr in rows:
            print(f"| {mode} | {w} | {a} | {a / args.limit:.2f} L | {over} | {r} | {fr} |")
    print()
    for mode, (rows, per_request) in out.items():
        worst = max(r[2] for r in rows)
        false = sum(r[4] for r in rows)
        print(f"{mode}: worst overshoot {worst} tokens ({worst / max(per_request, 1):.1f} "
              f"requests of {per_request} tokens), false rejects {false}")


if __name__ == "__main__":
    main()
