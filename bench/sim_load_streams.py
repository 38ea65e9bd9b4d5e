#!/usr/bin/env python3
"""Load test of one tokenway-sim process: E endpoints x C concurrent streaming requests.

Usage: bench/sim_load_streams.py BUILD_DIR/tokenway-sim [--endpoints 8] [--streams 256]
       [--seconds 20] [--max-tokens 256] [--speed 1]
Starts the simulator pinned to CPU 0 (taskset) and this client on CPU 1, keeps every stream
busy (a new request as soon as one finishes, keep-alive), then reads GET /sim/stats of every
endpoint: step timer lateness (wall clock between a step's planned end and the moment the loop
ran it) p50/p99/max, the simulator's CPU use and CPU time per SSE event, and the machine's
load average (other processes on the simulator's core inflate the lateness). Standard library
only.
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.request


async def stream_worker(port, body, stop_at, counters):
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at:
            writer.write(request)
            tail = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                counters["bytes"] += len(data)
                counters["events"] += data.count(b"data: ")
                tail = (tail + data)[-16:]
                if tail.endswith(b"0\r\n\r\n"):
                    break
            counters["requests"] += 1
    finally:
        writer.close()


async def run(ports, streams, seconds, max_tokens):
    body = json.dumps({"model": "meta-llama/Llama-3.1-8B-Instruct", "stream": True,
                       "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "benchmark " * 100}]}).encode()
    counters = {"bytes": 0, "requests": 0, "events": 0}
    stop_at = time.monotonic() + seconds
    tasks = [asyncio.create_task(stream_worker(p, body, stop_at, counters))
             for p in ports for _ in range(streams)]
    await asyncio.gather(*tasks, return_exceptions=True)
    return counters


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sim")
    parser.add_argument("--endpoints", type=int, default=8)
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--speed", type=float, default=1)
    args = parser.parse_args()
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    proc = subprocess.Popen(pin + [args.sim, "--port", "0", "--count", str(args.endpoints),
                                   "--speed", str(args.speed)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if shutil.which("taskset"):
            os.sched_setaffinity(0, {1})
        ready = json.loads(proc.stdout.readline())
        ports = [e["port"] for e in ready["endpoints"]]
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        counters = asyncio.run(run(ports, args.streams, args.seconds, args.max_tokens))
        cpu_used = cpu_seconds(proc.pid) - cpu0
        cpu = cpu_used / (time.monotonic() - t0)
        p50s, p99s, maxes, steps = [], [], [], 0
        for port in ports:
            stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/sim/stats"))
            lateness = stats["step_lateness_us"]
            p50s.append(lateness["p50"])
            p99s.append(lateness["p99"])
            maxes.append(lateness["max"])
            steps += stats["steps"]
        print(json.dumps({
            "endpoints": args.endpoints, "streams_per_endpoint": args.streams,
            "seconds": args.seconds, "completed_requests": counters["requests"],
            "received_mb": round(counters["bytes"] / 1e6, 1), "steps": steps,
            "sse_events": counters["events"],
            "sse_events_per_s": round(counters["events"] / args.seconds),
            "sim_cpu_share": round(cpu, 3),
            "sim_cpu_us_per_event": round(cpu_used / max(counters["events"], 1) * 1e6, 2),
            "load_average_1m": os.getloadavg()[0],
            "step_lateness_us_p50_worst_endpoint": max(p50s),
            "step_lateness_us_p99_worst_endpoint": max(p99s),
            "step_lateness_us_max": max(maxes)}, indent=1))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
