#!/usr/bin/env python3
"""How fast a failing candidate is rolled back, and how many of its errors clients see first.

Usage: bench/rollout_rollback.py [--build build] [--runs 5] [--window 10s] [--min-samples 20]
       [--weight 10] [--tick 1s] [--clients 8] [--error-rate 1.0] [--speed 20]

Starts a stable tokenway-sim fleet (2 endpoints, model stable-llm), a candidate fleet (2
endpoints, candidate-llm) and the real gateway with alias `chat` split between them by a rollout
whose first step gives the candidate WEIGHT % (bake 1h: only a failure moves it). CLIENTS
streaming clients send requests back to back. After a healthy warm-up of one window, the
candidate fleet starts failing ERROR_RATE of its requests (POST /sim/faults, error_rate); the
run ends when /admin/rollouts says rolled_back, or after 5 windows.

Per run it prints: the time from the first request a client saw fail to the rollback (the
transition's timestamp in the rollout's history), the time from the fault's switch-on to the
rollback, the requests clients sent between the fault and the rollback, how many of them failed
(the candidate's errors that reached clients) and their share; then the median over the runs.
The gateway's defaults stand (upstream.max_attempts 3: a failed attempt is retried on the
candidate's other endpoint, which fails too).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--window", default="10s")
    p.add_argument("--min-samples", type=int, default=20)
    p.add_argument("--weight", type=int, default=10)
    p.add_argument("--tick", default="1s")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--error-rate", type=float, default=1.0)
    p.add_argument("--speed", default="20")
    return p.parse_args()


def seconds(text):
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    if text.endswith("m"):
        return float(text[:-1]) * 60
    return float(text)


def main():
    args = parse_args()
    os.environ["TOKENWAY_BIN_DIR"] = os.path.abspath(args.build)
    import twtest
    from test_gateway_rollout import ALIAS, CANDIDATE_MODEL, STABLE_MODEL, Load, rollout, rollout_yaml

    window = seconds(args.window)
    steps = f"[{{weight: {args.weight}, bake: 1h}}, {{weight: 100}}]"
    analysis = (f"{{window: {args.window}, min_samples: {args.min_samples}, "
                f"max_error_rate_delta: 0.05}}")
    rows = []
    for run in range(args.runs):
        state_dir = tempfile.mkdtemp(prefix="tokenway-rollout-bench-")
        state_file = os.path.join(state_dir, "state.json")
        with twtest.Sim(2, ["--model", STABLE_MODEL, "--speed", args.speed]) as stable, \
                twtest.Sim(2, ["--model", CANDIDATE_MODEL, "--speed", args.speed]) as candidate:
            config = rollout_yaml(stable.urls, candidate.urls, state_file, steps, analysis,
                                  tick=args.tick).replace("upstream:\n  max_attempts: 1\n", "")
            with twtest.Gateway(config, workers=2) as gw:
                load = Load(gw, clients=args.clients)
                try:
                    time.sleep(window)  # a healthy window first
                    fault_at = time.time()
                    for url in candidate.urls:
                        twtest.set_faults(url, error_rate=args.error_rate)
                    twtest.wait_until(lambda: rollout(gw)["state"] == "rolled_back",
                                      timeout=5 * window, interval=0.02)
                    time.sleep(1)
                finally:
                    load.stop()
                r = rollout(gw)
                if r["state"] != "rolled_back":
                    print(f"run {run + 1}: not rolled back within {5 * window:.0f} s: {r}")
                    continue
                rolled_back_at = r["history"][-1]["at_unix_ms"] / 1000.0
                results = load.snapshot()
                # A request is attributed to the moment it finished.
                between = [(t, s) for t, s, _ in results if fault_at <= t <= rolled_back_at]
                errors = [t for t, s in between if s != 200]
                late = [t for t, s, _ in results if t > rolled_back_at + 0.5 and s != 200]
                first_bad = min(errors) if errors else float("nan")
                rows.append({
                    "from_first_error": rolled_back_at - first_bad,
                    "from_fault": rolled_back_at - fault_at,
                    "requests": len(between),
                    "errors": len(errors),
                    "share": len(errors) / max(1, len(between)),
                    "late_errors": len(late),
                    "reason": r["history"][-1]["reason"],
                })
                row = rows[-1]
                print(f"run {run + 1}: rollback {row['from_first_error']:.2f} s after the first "
                      f"client error ({row['from_fault']:.2f} s after the fault); "
                      f"{row['errors']} of {row['requests']} client requests failed "
                      f"({100 * row['share']:.2f} %); errors after the rollback: "
                      f"{row['late_errors']}; {row['reason']}")
    if rows:
        med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
        print(f"\nmedian of {len(rows)} runs (window {args.window}, min_samples "
              f"{args.min_samples}, weight {args.weight} %, tick {args.tick}, "
              f"{args.clients} clients): first client error -> rollback "
              f"{med('from_first_error'):.2f} s; fault -> rollback {med('from_fault'):.2f} s; "
              f"client requests failed before the rollback {med('errors'):.0f} of "
              f"{med('requests'):.0f} ({100 * med('share'):.2f} %); after it "
              f"{sum(r['late_errors'] for r in rows)} in total")


if __name__ == "__main__":
    main()
