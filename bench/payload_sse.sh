#!/usr/bin/env bash
# The response chain on streams, end to end (docs/benchmarks.md, "Payload processors"):
#   1. SSE events/s per gateway core with the default PII chain (bench/configs/payload-pii.yaml:
#      every detector, window 64) against the same gateway without processors
#      (bench/configs/observability-off.yaml): bench/feature-overhead.sh, which pins tokenway
#      (--workers 1) to core PROXY_CPU and the fixed backend and wrk to core LOAD_CPU, SSE_CONNS
#      streams of EVENTS content events each; events/s = streams/s x EVENTS.
#   2. Time to first token at the client through the same gateways in front of tokenway-sim
#      paced at about 50 tokens/s (--speed SIM_SPEED), one stream at a time
#      (tokenway-bench run --concurrency 1, random workload, INPUT_LEN prompt tokens, OUTPUT_LEN
#      output tokens), for three configurations side by side: no processors, the PII chain, and
#      a `patterns` chain (bench/configs/payload-patterns.yaml); interleaved in ROUNDS rounds of
#      REQUESTS requests each. The difference of the TTFT medians is the added first-token delay.
#   3. The same three gateways with a plain Python client: time to the first event with text and
#      to the first event with a non-blank word (what a word-level hold-back delays).
#
#   bench/payload_sse.sh [BUILD_DIR]          (default: build)
#
# Environment knobs: as bench/feature-overhead.sh (DURATION, WARMUP, ROUNDS, SSE_CONNS, EVENTS,
# PROXY_CPU, LOAD_CPU, BENCH_NICE), plus SKIP_EVENTS=1 (part 2 only), SIM_SPEED [0.36],
# REQUESTS [60], TTFT_ROUNDS [3], INPUT_LEN [64], OUTPUT_LEN [24].
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
SIM_SPEED=${SIM_SPEED:-0.36}
REQUESTS=${REQUESTS:-60}
TTFT_ROUNDS=${TTFT_ROUNDS:-3}
INPUT_LEN=${INPUT_LEN:-64}
OUTPUT_LEN=${OUTPUT_LEN:-24}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

if [[ -z "${SKIP_EVENTS:-}" && -z "${TW_BENCH_SESSION:-}" ]]; then
  LABEL=payload-pii "$ROOT/bench/feature-overhead.sh" "$ROOT/bench/configs/observability-off.yaml" \
    "$ROOT/bench/configs/payload-pii.yaml" "$BUILD"
fi

NAME=payload-sse
BENCH_ARGS=("$@")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TOKENWAY="$BUILD/src/main/tokenway"
SIM="$BUILD/tokenway-sim"
BENCH="$BUILD/tokenway-bench"
for bin in "$TOKENWAY" "$SIM" "$BENCH"; do
  [[ -x "$bin" ]] || { echo "$NAME: $bin not found; build first (make build)" >&2; exit 1; }
done

read -r P_SIM P_OFF P_OFFA P_PII P_PIIA P_PAT P_PATA < <(free_ports 7)
render() {  # render TEMPLATE OUT
  sed -e "s|@BACKEND@|http://127.0.0.1:$P_SIM|g" "$1" >"$2"
}
render "$ROOT/bench/configs/observability-off.yaml" "$WORK/off.yaml"
render "$ROOT/bench/configs/payload-pii.yaml" "$WORK/pii.yaml"
render "$ROOT/bench/configs/payload-patterns.yaml" "$WORK/patterns.yaml"

log "priority: nice $BENCH_NICE; machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
start sim "$LOAD_CPU" "$SIM" --port "$P_SIM" --model bench --speed "$SIM_SPEED"
declare -A PORT=([off]=$P_OFF [pii]=$P_PII [patterns]=$P_PAT)
declare -A ADMIN=([off]=$P_OFFA [pii]=$P_PIIA [patterns]=$P_PATA)
for c in off pii patterns; do
  start "$c" "$PROXY_CPU" "$TOKENWAY" --config "$WORK/$c.yaml" --listen "127.0.0.1:${PORT[$c]}" \
    --admin "127.0.0.1:${ADMIN[$c]}" --workers 1
done
for c in off pii patterns; do wait_ready "${PORT[$c]}" "$c"; done

ORDERS=("off pii patterns" "patterns pii off")
for ((r = 0; r < TTFT_ROUNDS; r++)); do
  for c in ${ORDERS[$((r % 2))]}; do
    taskset -c "$LOAD_CPU" "${PRIO[@]}" "$BENCH" run --url "http://127.0.0.1:${PORT[$c]}" \
      --model bench --workload random --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" \
      --concurrency 1 --requests "$REQUESTS" --seed $((r + 1)) --quiet \
      --out "$WORK/ttft-$c-$r.json" >/dev/null
    log "ttft round $r $c done"
  done
done

# tokenway-bench's TTFT is the first event with non-empty text. The sim's tokens start with a
# space, which no detector's match can begin with, so that event leaves at once even when the
# window holds the word after it; the first *word* can wait for the next token. Measure both
# with a plain client: time to the first non-empty text and to the first non-blank text.
for ((r = 0; r < TTFT_ROUNDS; r++)); do
  for c in ${ORDERS[$((r % 2))]}; do
    taskset -c "$LOAD_CPU" "${PRIO[@]}" python3 - "${PORT[$c]}" "$REQUESTS" "$OUTPUT_LEN" \
      >"$WORK/word-$c-$r.json" <<'PY'
import http.client, json, sys, time
port, n, out_len = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = json.dumps({"model": "bench", "stream": True, "max_tokens": out_len,
                   "messages": [{"role": "user", "content": "Tell me about the weather."}]})
first_text, first_word = [], []
for _ in range(n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text_at = word_at = None
    while word_at is None:
        line = resp.readline()
        if not line:
            break
        if not line.startswith(b"data: {"):
            continue
        now = time.perf_counter()
        for ch in json.loads(line[6:]).get("choices", []):
            content = (ch.get("delta") or {}).get("content") or ""
            if content and text_at is None:
                text_at = now
            if content.strip() and word_at is None:
                word_at = now
    resp.read()
    conn.close()
    if text_at is not None and word_at is not None:
        first_text.append((text_at - t0) * 1e3)
        first_word.append((word_at - t0) * 1e3)
json.dump({"first_text_ms": first_text, "first_word_ms": first_word}, sys.stdout)
PY
    log "first word round $r $c done"
  done
done

mkdir -p "$ROOT/bench/results"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
python3 - "$WORK" "$TTFT_ROUNDS" "$ROOT/bench/results/payload-ttft-$STAMP" <<'PY'
import json, statistics, sys
work, rounds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# Each round's run summary (tokenway-bench --out); the figures are medians over the rounds.
R = {}
for c in ("off", "pii", "patterns"):
    runs = [json.load(open(f"{work}/ttft-{c}-{r}.json"))["runs"][0] for r in range(rounds)]
    R[c] = {"streams": sum(x["succeeded"] for x in runs),
            "failed": sum(x["failed"] for x in runs),
            "ttft_p50_ms": [x["ttft"]["p50_ms"] for x in runs],
            "ttft_p90_ms": [x["ttft"]["p90_ms"] for x in runs],
            "tpot_p50_ms": [x["tpot"]["p50_ms"] for x in runs]}
med = lambda c, k: statistics.median(R[c][k])
lines = ["| gateway | streams | TTFT p50 | TTFT p90 | TPOT p50 | added TTFT p50 (per round) |",
         "|---|---|---|---|---|---|"]
for c, what in (("off", "no processors"), ("pii", "default PII chain, window 64"),
                ("patterns", "3 user patterns, window 64")):
    added = [a - b for a, b in zip(R[c]["ttft_p50_ms"], R["off"]["ttft_p50_ms"])]
    lines.append(f"| {what} | {R[c]['streams']} ({R[c]['failed']} failed) | "
                 f"{med(c, 'ttft_p50_ms'):.2f} ms | {med(c, 'ttft_p90_ms'):.2f} ms | "
                 f"{med(c, 'tpot_p50_ms'):.2f} ms | {statistics.median(added):+.2f} ms "
                 f"({', '.join(f'{a:+.2f}' for a in added)}) |")
words = ["", "| gateway | first text p50 | first word p50 | added first word p50 (per round) |",
         "|---|---|---|---|"]
wmed = {}
for c in ("off", "pii", "patterns"):
    docs = [json.load(open(f"{work}/word-{c}-{r}.json")) for r in range(rounds)]
    wmed[c] = {k: [statistics.median(d[k]) for d in docs] for k in ("first_text_ms", "first_word_ms")}
    R[c]["plain_client"] = wmed[c]
for c, what in (("off", "no processors"), ("pii", "default PII chain, window 64"),
                ("patterns", "3 user patterns, window 64")):
    added = [a - b for a, b in zip(wmed[c]["first_word_ms"], wmed["off"]["first_word_ms"])]
    words.append(f"| {what} | {statistics.median(wmed[c]['first_text_ms']):.2f} ms | "
                 f"{statistics.median(wmed[c]['first_word_ms']):.2f} ms | "
                 f"{statistics.median(added):+.2f} ms ({', '.join(f'{a:+.2f}' for a in added)}) |")
lines += words
table = "\n".join(lines)
print(table)
open(out + ".md", "w").write(table + "\n")
json.dump(R, open(out + ".json", "w"), indent=1)
PY
