#!/usr/bin/env bash
# The embedded default: 4 simulated model servers (tokenway-sim) and the gateway in front of
# them, OpenAI API on 127.0.0.1:8080, admin on 127.0.0.1:8081. Ctrl-C stops both.
set -euo pipefail
BUILD="${1:-build}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SIM="$ROOT/$BUILD/src/main/tokenway-sim"
[[ -x "$SIM" ]] || SIM="$(find "$ROOT/$BUILD" -name tokenway-sim -type f -perm -u+x | head -1)"
GW="$ROOT/$BUILD/src/main/tokenway"
CONFIG="$ROOT/deploy/examples/local-sim.yaml"
MODEL="meta-llama/Llama-3.1-8B-Instruct"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "tokenway: stopped" >&2
}
trap cleanup INT TERM EXIT

"$SIM" --port 8100 --count 4 --model "$MODEL" --lora sql-lora > /dev/null &
pids+=($!)
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:8103/health >/dev/null 2>&1 && break
  sleep 0.1
done
"$GW" --config "$CONFIG" &
pids+=($!)
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:8081/readyz >/dev/null 2>&1 && break
  sleep 0.1
done
cat >&2 <<MSG

tokenway is serving the OpenAI API at http://127.0.0.1:8080/v1 (admin: http://127.0.0.1:8081)
in front of 4 simulated model servers on ports 8100-8103. Try a streaming chat completion:

  curl -N http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"$MODEL","stream":true,"max_tokens":32,"messages":[{"role":"user","content":"Hello!"}]}'

Models: curl http://127.0.0.1:8080/v1/models   Metrics: curl http://127.0.0.1:8081/metrics
Status page: open http://127.0.0.1:8081/ in a browser.
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
