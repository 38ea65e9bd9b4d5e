#!/usr/bin/env bash
# The endpoint-picker front door under load: tokenway with `epp.listen` (defaults otherwise, access
# log on, --workers 1) pinned to core PROXY_CPU (0); a tokenway-sim fleet and `tokenway-bench epp`
# (playing Envoy's ext_proc filter) pinned to core LOAD_CPU (1). See docs/benchmarks.md
# ("Endpoint-picker mode").
#
#   bench/epp.sh [BUILD_DIR]          (default: build)
#
# Runs, each DURATION s after WARMUP s (the picker's CPU read from /proc/PID/stat over the
# measured window):
#   picks        1k-token prompts, closed loop at concurrency PICK_CONC [32], response fabricated
#                by the client (--no-upstream, one token event): picks/s, decision latency
#                (request_headers written → pick received) p50/p99, picker CPU µs per request
#   picks@RATE   the same at open-loop Poisson rates PICK_RATES ["2000 5000"] req/s: decision
#                latency at a given load rather than at saturation
#   long-c20, long-c150   ≈ 220 KB prompts (LONG_TOKENS [35000] tokens) at concurrency 20 and
#                150 forwarded to the sim fleet (as in GIE #2928, where the engine bounds the
#                rate): decision latency growth with concurrency, CPU per request
#   long-max     the 220 KB prompts at concurrency 20 with --no-upstream: the picker's capacity
#   chunks       small prompts, --no-upstream with CHUNK_EVENTS [1000] events per response (one
#                response_body message each), concurrency CHUNK_CONC [16]: chunks/s per core
#   e2e          1k-token streaming prompts forwarded to the sim fleet (the picked endpoint),
#                concurrency E2E_CONC [16]: the whole Envoy path with a real upstream
# Prints a Markdown table and writes it and the raw JSON of every run to
# bench/results/epp-<date>.{md,json}.
# Environment knobs: DURATION [10], WARMUP [2], PICK_CONC, PICK_RATES, LONG_TOKENS, CHUNK_EVENTS,
# CHUNK_CONC, E2E_CONC, SIM_COUNT [4], SIM_SPEED [50] (engine clock ×), CHUNK_SIZE [16384]
# (request body bytes per request_body message), PROXY_CPU [0], LOAD_CPU [1], WAIT_QUIET [30],
# BENCH_NICE [-20 as root, else 0].
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PICK_CONC=${PICK_CONC:-32}
PICK_RATES=${PICK_RATES:-2000 5000}
LONG_TOKENS=${LONG_TOKENS:-35000}
CHUNK_EVENTS=${CHUNK_EVENTS:-1000}
CHUNK_CONC=${CHUNK_CONC:-16}
E2E_CONC=${E2E_CONC:-16}
SIM_COUNT=${SIM_COUNT:-4}
SIM_SPEED=${SIM_SPEED:-50}
CHUNK_SIZE=${CHUNK_SIZE:-16384}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

NAME=epp
BENCH_ARGS=("$@")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

find_bin() {
  local b
  for b in "$BUILD/$1" "$BUILD/src/main/$1"; do
    if [[ -x "$b" ]]; then echo "$b"; return 0; fi
  done
  echo "epp.sh: $1 not found under $BUILD; build first:" >&2
  echo "  cmake --build $BUILD --target tokenway tokenway-sim tokenway-bench" >&2
  exit 1
}
TOKENWAY=$(find_bin tokenway)
SIM=$(find_bin tokenway-sim)
BENCH=$(find_bin tokenway-bench)
for tool in taskset python3; do
  command -v "$tool" >/dev/null || { echo "epp.sh: $tool missing" >&2; exit 1; }
done

read -r P_HTTP P_ADMIN P_EPP < <(free_ports 3)

log "priority: nice $BENCH_NICE, $(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup')"
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# The fleet: one tokenway-sim process serving SIM_COUNT endpoints; its first stdout line names them.
start sim "$LOAD_CPU" "$SIM" --port 0 --count "$SIM_COUNT" --model bench --speed "$SIM_SPEED"
for i in $(seq 1 100); do
  if [[ -s "$WORK/sim.log" ]] && head -1 "$WORK/sim.log" | grep -q endpoints; then break; fi
  sleep 0.1
done
mapfile -t SIM_URLS < <(head -1 "$WORK/sim.log" | python3 -c \
  'import json,sys; [print(e["url"]) for e in json.load(sys.stdin)["endpoints"]]')
((${#SIM_URLS[@]} == SIM_COUNT)) || { echo "epp.sh: the simulator did not start:" >&2; cat "$WORK/sim.log" >&2; exit 1; }

# The gateway: the endpoint-picker listener next to the HTTP one, the access log to a file,
# everything else at its default.
{
  echo "access_log:"
  echo "  enabled: true"
  echo "  path: $WORK/access.log"
  echo "epp:"
  echo "  listen: 127.0.0.1:$P_EPP"
  echo "pools:"
  echo "  - name: bench"
  echo "    engine: vllm"
  echo "    endpoints:"
  for u in "${SIM_URLS[@]}"; do echo "      - $u"; done
  echo "models:"
  echo "  - name: bench"
  echo "    pool: bench"
} >"$WORK/gateway.yaml"
"$TOKENWAY" --validate "$WORK/gateway.yaml" >/dev/null
start tokenway "$PROXY_CPU" "$TOKENWAY" --config "$WORK/gateway.yaml" \
  --listen "127.0.0.1:$P_HTTP" --admin "127.0.0.1:$P_ADMIN" --workers 1
TW_PID=$LAST_PID
ready=0
for i in $(seq 1 100); do
  if "$BENCH" epp --epp "127.0.0.1:$P_EPP" --model bench --workload random --input-len 16 \
      --output-len 1 --concurrency 1 --requests 1 --no-stream --no-upstream --quiet \
      >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
((ready)) || { echo "epp.sh: the picker did not answer; its log:" >&2; cat "$WORK/tokenway.log" >&2; exit 1; }

wait_quiet

# run NAME ARGS...: one tokenway-bench epp run, pinned to LOAD_CPU, JSON to $WORK/NAME.json.
RUNS=()
run() {
  local name=$1
  shift
  log "run $name: $*"
  taskset -c "$LOAD_CPU" "${PRIO[@]}" "$BENCH" epp --epp "127.0.0.1:$P_EPP" --model bench \
    --epp-pid "$TW_PID" --chunk-size "$CHUNK_SIZE" --duration "${DURATION}s" \
    --warmup "${WARMUP}s" --drain 10s --timeout 60s --quiet --out "$WORK/$name.json" "$@" \
    >"$WORK/$name.txt" 2>&1 || true
  RUNS+=("$name")
}
ONE_K=(--workload random --input-len 1000 --output-len 16 --range-ratio 1)
run picks "${ONE_K[@]}" --concurrency "$PICK_CONC" --no-upstream --events 1 --no-stream
for rate in $PICK_RATES; do
  run "picks@$rate" "${ONE_K[@]}" --rate "$rate" --no-upstream --events 1 --no-stream
done
LONG=(--workload random --input-len "$LONG_TOKENS" --output-len 16 --range-ratio 1)
run long-c20 "${LONG[@]}" --concurrency 20 --no-stream
run long-c150 "${LONG[@]}" --concurrency 150 --no-stream
run long-max "${LONG[@]}" --concurrency 20 --no-upstream --events 1 --no-stream
run chunks --workload random --input-len 100 --output-len 16 --range-ratio 1 \
  --concurrency "$CHUNK_CONC" --no-upstream --events "$CHUNK_EVENTS"
run e2e "${ONE_K[@]}" --concurrency "$E2E_CONC" --stream

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$ROOT/bench/results"
STAMP=$(date -u +%Y%m%d-%H%M%S)
python3 - "$WORK" "$ROOT/bench/results/epp-$STAMP" "$LOAD_BEFORE" "$LOAD_AFTER" "${RUNS[@]}" <<'EOF'
import json, os, sys
work, out, load_before, load_after, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
rows, raw = [], {}
for name in runs:
    path = f"{work}/{name}.json"
    if not os.path.exists(path):
        rows.append(f"| {name} | run failed: " + open(f"{work}/{name}.txt").read().strip()[-200:].replace("\n", " ") + " |")
        continue
    d = json.load(open(path))
    raw[name] = d
    r, e = d["runs"][0], d["epp"][0]
    dec = e["decision_latency"]
    share = e.get("picker_cpu_s", 0) / e["cpu_window_s"] if e.get("cpu_window_s") else 0
    per_core = lambda v: f"{v / share:,.0f}" if share > 0 else "–"
    errors = r.get("errors", {})
    nerr = sum(v for v in errors.values()) if isinstance(errors, dict) else 0
    rows.append(
        f"| {name} | {e['picks_per_s']:,.0f} | {dec['p50_ms']:.3f} | {dec['p99_ms']:.3f} | "
        f"{e['response_chunks_per_s']:,.0f} | {share:.2f} | "
        f"{e.get('cpu_us_per_request', 0):.1f} | {per_core(e['picks_per_s'])} | "
        f"{per_core(e['response_chunks_per_s'])} | "
        f"{e.get('client_cpu_s', 0) / e['cpu_window_s'] if e.get('cpu_window_s') else 0:.2f} | "
        f"{nerr + sum(e['failures'].values())} |")
table = ("| run | picks/s | decision p50 ms | decision p99 ms | response chunks/s | picker cores | "
         "picker CPU µs/request | picks/s per picker core | chunks/s per picker core | "
         "load generator cores | errors |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
note = f"\nload average before {load_before}, after {load_after}\n"
print(table + note)
open(out + ".md", "w").write(table + note)
json.dump(raw, open(out + ".json", "w"), indent=1)
EOF
for name in "${RUNS[@]}"; do
  { echo "## $name"; cat "$WORK/$name.txt"; } >>"$ROOT/bench/results/epp-$STAMP.txt"
done
log "written bench/results/epp-$STAMP.{md,json,txt}"
