#!/usr/bin/env bash
# The cost of a gateway feature: the same load through two tokenway configurations side by side,
# one without the feature (A) and one with it (B), each tokenway (--workers 1) pinned to core
# PROXY_CPU (0), the fixed backend, wrk and the latency client pinned to core LOAD_CPU (1).
# See docs/benchmarks.md.
#
#   bench/feature-overhead.sh CONFIG_A CONFIG_B [BUILD_DIR]     (default build dir: build)
#
# The configurations are tokenway YAML files in which @BACKEND@ stands for the fixed backend's
# URL, @WORK@ for a scratch directory (access logs, key files) and @FIXTURES@ for bench/configs.
# tokenway's listen/admin/workers come from the command line. Measures, for A and B:
#   1. non-streaming requests/s with wrk -c CONNS (300 B chat body), and per proxy core
#      (medians over the rounds, with the range)
#   2. SSE streams/s with SSE_CONNS streams x EVENTS events, and per proxy core
#   3. latency at one connection (p50/p99, own client)
# Runs are interleaved in ROUNDS [3] rounds, alternating A B / B A, each DURATION [6] s after
# WARMUP [2] s. Prints a Markdown table and writes it plus the raw numbers (JSON) to
# bench/results/feature-<LABEL>-<date>.*  (LABEL defaults to the name of CONFIG_B).
# Environment knobs: DURATION, WARMUP, ROUNDS, CONNS [32], SSE_CONNS [64], EVENTS [100],
# LAT_REQUESTS [20000], PROXY_CPU, LOAD_CPU, WAIT_QUIET [30], BENCH_NICE (see bench/lib.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -lt 2 ]]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
CONFIG_A=$(realpath "$1")
CONFIG_B=$(realpath "$2")
BUILD=${3:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
LABEL=${LABEL:-$(basename "$CONFIG_B" .yaml)}
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
SSE_CONNS=${SSE_CONNS:-64}
EVENTS=${EVENTS:-100}
LAT_REQUESTS=${LAT_REQUESTS:-20000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

NAME=feature-overhead
BENCH_ARGS=("$@")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TOKENWAY="$BUILD/src/main/tokenway"
BACKEND="$BUILD/bench/tokenway-fixed-backend"
CLIENT="$BUILD/bench/tokenway-latency-client"
for bin in "$TOKENWAY" "$BACKEND" "$CLIENT"; do
  [[ -x "$bin" ]] || { echo "$NAME: $bin not found; build first (make build)" >&2; exit 1; }
done
for tool in wrk taskset python3 curl; do
  command -v "$tool" >/dev/null || { echo "$NAME: $tool missing (scripts/setup.sh --bench)" >&2; exit 1; }
done

read -r P_BACK P_A P_AA P_B P_BA < <(free_ports 5)
render() {  # render TEMPLATE OUT
  sed -e "s|@BACKEND@|http://127.0.0.1:$P_BACK|g" -e "s|@WORK@|$WORK|g" \
    -e "s|@FIXTURES@|$ROOT/bench/configs|g" "$1" >"$2"
}
render "$CONFIG_A" "$WORK/a.yaml"
render "$CONFIG_B" "$WORK/b.yaml"
"$TOKENWAY" --validate "$WORK/a.yaml" >/dev/null
"$TOKENWAY" --validate "$WORK/b.yaml" >/dev/null

log "priority: nice $BENCH_NICE; machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
start backend "$LOAD_CPU" "$BACKEND" --listen "127.0.0.1:$P_BACK" --events "$EVENTS"
start A "$PROXY_CPU" "$TOKENWAY" --config "$WORK/a.yaml" --listen "127.0.0.1:$P_A" \
  --admin "127.0.0.1:$P_AA" --workers 1
A_PID=$LAST_PID
start B "$PROXY_CPU" "$TOKENWAY" --config "$WORK/b.yaml" --listen "127.0.0.1:$P_B" \
  --admin "127.0.0.1:$P_BA" --workers 1
B_PID=$LAST_PID
wait_ready "$P_BACK" backend
wait_ready "$P_A" A
wait_ready "$P_B" B
wait_quiet

declare -A PORT=([A]=$P_A [B]=$P_B)
declare -A PID=([A]=$A_PID [B]=$B_PID)
RAW="$WORK/raw.txt"
: >"$RAW"
run_wrk() {  # run_wrk TEST TARGET LUA CONNS
  local test=$1 target=$2 lua=$3 conns=$4
  local url="http://127.0.0.1:${PORT[$target]}/v1/chat/completions" pid=${PID[$target]}
  taskset -c "$LOAD_CPU" "${PRIO[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$lua" "$url" >/dev/null
  local c0 c1 t0 t1 out rps non2xx share
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  out=$(taskset -c "$LOAD_CPU" "${PRIO[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" -s "$lua" "$url")
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  share=$(python3 -c "print(round(($c1-$c0)/$HZ/($t1-$t0), 4))")
  echo "wrk $test $target ${rps:-0} $share ${non2xx:-0}" >>"$RAW"
  log "$test $target: ${rps:-0} req/s, CPU share $share${non2xx:+, NON-2XX $non2xx}"
}
ORDERS=("A B" "B A")
for test in small sse; do
  lua="$WORK/small.lua"; conns=$CONNS
  [[ $test == sse ]] && { lua="$WORK/stream.lua"; conns=$SSE_CONNS; }
  for ((r = 0; r < ROUNDS; r++)); do
    for t in ${ORDERS[$((r % 2))]}; do run_wrk "$test" "$t" "$lua" "$conns"; done
  done
done
for t in A B; do
  r=$(taskset -c "$LOAD_CPU" "${PRIO[@]}" "$CLIENT" --connect "127.0.0.1:${PORT[$t]}" \
        --body-file "$WORK/small.json" --mode json --requests "$LAT_REQUESTS" --warmup 1000)
  echo "lat small $t $r" >>"$RAW"
  log "latency small $t: $r"
done

mkdir -p "$ROOT/bench/results"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
python3 - "$RAW" "$ROOT/bench/results/feature-$LABEL-$STAMP" "$1" "$2" <<'EOF'
import json, statistics, sys
raw, out, a_name, b_name = sys.argv[1:5]
W, L = {}, {}
for line in open(raw):
    f = line.split(None, 3)
    if f[0] == "wrk":
        test, target, rps, share, non2xx = line.split()[1:]
        W.setdefault(test, {}).setdefault(target, []).append(
            {"rps": float(rps), "cpu_share": float(share), "non2xx": int(non2xx)})
    else:
        L[f[2]] = json.loads(f[3])
# Each figure is the median over the rounds (robust to one disturbed round on a shared machine);
# the per-core figure is the median of each round's requests/s over that round's CPU share.
def med(test, t, key):
    return statistics.median(r[key] for r in W[test][t])
def per_core(test, t):
    return statistics.median(r["rps"] / max(r["cpu_share"], 1e-9) for r in W[test][t])
def spread(test, t):
    v = [r["rps"] / max(r["cpu_share"], 1e-9) for r in W[test][t]]
    return f"{min(v):,.0f}–{max(v):,.0f}"
rows = [["", f"A ({a_name})", f"B ({b_name})", "B / A"]]
for test, what in (("small", "non-streaming req/s"), ("sse", "SSE streams/s")):
    a, b = med(test, "A", "rps"), med(test, "B", "rps")
    rows.append([what, f"{a:,.0f}", f"{b:,.0f}", f"{b / a:.3f}"])
    a, b = per_core(test, "A"), per_core(test, "B")
    rows.append([f"**{what} per proxy core**", f"{a:,.0f}", f"{b:,.0f}", f"**{b / a:.3f}**"])
    rows.append([f"{what} per core, range over rounds", spread(test, "A"), spread(test, "B"), ""])
for q in ("p50", "p99"):
    a, b = L["A"][q + "_us"], L["B"][q + "_us"]
    rows.append([f"latency {q}, one connection (µs)", f"{a:.1f}", f"{b:.1f}", f"{b / a:.3f}"])
errors = sum(r["non2xx"] for t in W.values() for rs in t.values() for r in rs)
rows.append(["non-2xx responses", "", "", str(errors)])
md = "\n".join("| " + " | ".join(r) + " |" + ("\n|---|---|---|---|" if i == 0 else "")
               for i, r in enumerate(rows))
print(md)
open(out + ".md", "w").write(md + "\n")
json.dump({"wrk": W, "latency": L}, open(out + ".json", "w"), indent=1)
EOF
