#!/usr/bin/env python3
"""RAG-like workload against the response cache: questions drawn from a Zipf distribution, each
asked in one of several paraphrases (case, punctuation, filler words), streamed, temperature 0,
through the real gateway in front of one tokenway-sim endpoint (real-time engine model). Runs
the same request sequence three times — no cache, exact cache, exact + semantic cache — and
prints hit rate and TTFT percentiles (time to the first content event) for each.

  TOKENWAY_BIN_DIR=build python3 bench/cache_rag.py [--requests 400] [--questions 100]
      [--zipf 1.1] [--threads 4] [--threshold 0.85]
"""
import argparse
import json
import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))
from twtest import MODEL, Gateway, Sim, gateway_yaml, request  # noqa: E402

TOPICS = ["invoice", "refund", "contract", "shipment", "warranty", "account", "password",
          "policy", "delivery", "discount", "subscription", "upgrade", "return", "billing"]
VERBS = ["How do I request a", "What is the deadline for a", "Who approves a",
         "Where can I find the form for a", "Can I cancel a", "How long does a"]


def question(i):
    return f"{VERBS[i % len(VERBS)]} {TOPICS[(i // len(VERBS)) % len(TOPICS)]} in region {i}?"


def paraphrase(q, k):
    if k == 0:
        return q
    if k == 1:
        return q.lower().rstrip("?")
    if k == 2:
        return "Please tell me: " + q
    return q.replace("?", ", thanks?")


def zipf_sequence(n, questions, s, seed=7):
    rng = random.Random(seed)
    weights = [1.0 / (r ** s) for r in range(1, questions + 1)]
    picks = rng.choices(range(questions), weights=weights, k=n)
    return [(q, rng.randrange(4)) for q in picks]


def ttft(url, body):
    """Streams one request; (seconds to the first content event, x-tokenway-cache header)."""
    import http.client
    host, port = url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    header = resp.getheader("x-tokenway-cache") or "off"
    first = None
    buf = b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        buf += chunk
        if first is None and b'"content":"' in buf and b'"content":""' not in buf.split(b"\n\n")[-1]:
            first = time.perf_counter() - start
    conn.close()
    return (first if first is not None else time.perf_counter() - start), header


def run(label, cache_yaml, sim_urls, seq, threads):
    results = [None] * len(seq)
    with Gateway(gateway_yaml(sim_urls, extra="access_log: {enabled: false}\n" + cache_yaml),
                 workers=1) as gw:
        nxt = [0]
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(seq):
                    return
                q, k = seq[i]
                body = {"model": MODEL, "temperature": 0, "stream": True,
                        "messages": [{"role": "user", "content": paraphrase(question(q), k)}]}
                results[i] = ttft(gw.base, body)

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    times = sorted(r[0] * 1000 for r in results)
    hits = sum(1 for r in results if r[1] == "hit")
    pct = lambda p: times[min(len(times) - 1, int(p / 100 * len(times)))]
    return {"config": label, "requests": len(seq), "hit_rate": hits / len(seq),
            "ttft_ms_p50": pct(50), "ttft_ms_p90": pct(90), "ttft_ms_p99": pct(99),
            "ttft_ms_mean": statistics.fmean(times)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--threshold", type=float, default=0.85)
    a = ap.parse_args()
    seq = zipf_sequence(a.requests, a.questions, a.zipf)
    rows = []
    with Sim(1, ["--output-len-mean", "20"]) as sim:
        for label, cfg in (("no cache", ""), ("exact", "cache: {}\n"),
                           ("exact + semantic",
                            f"cache:\n  semantic: {{threshold: {a.threshold}}}\n")):
            rows.append(run(label, cfg, sim.urls, seq, a.threads))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| config | hit rate | TTFT p50 | p90 | p99 | mean |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['hit_rate']:.1%} | {r['ttft_ms_p50']:.1f} ms | "
              f"{r['ttft_ms_p90']:.1f} ms | {r['ttft_ms_p99']:.1f} ms | {r['ttft_ms_mean']:.1f} ms |")


if __name__ == "__main__":
    main()
