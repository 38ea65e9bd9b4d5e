# Shared shell of the benchmark scripts (bench/overhead.sh, bench/feature-overhead.sh): priority,
# a work directory, request bodies, pinned processes, readiness, CPU accounting, a quiet machine.
# Source it after setting NAME (used in messages and the work directory's name); it re-executes
# the calling script in a session of its own when it raises priority (see BENCH_NICE).

if [[ -z "${BENCH_NICE:-}" ]]; then
  if [[ $(id -u) -eq 0 ]]; then BENCH_NICE=-20; else BENCH_NICE=0; fi
fi
PRIO=(nice -n "$BENCH_NICE")
# With autogroup scheduling (Debian's default) a nice value only counts inside its session's
# group: run the benchmark in a session of its own and give that whole group the nice level.
if [[ "$BENCH_NICE" -lt 0 && -z "${TW_BENCH_SESSION:-}" && -w /proc/self/autogroup ]] &&
   [[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo 0) == 1 ]]; then
  TW_BENCH_SESSION=1 BENCH_NICE=$BENCH_NICE setsid --wait "$0" "${BENCH_ARGS[@]}" &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; exit 130' INT TERM
  wait "$child"
  exit $?
fi
if [[ -n "${TW_BENCH_SESSION:-}" ]]; then
  echo "$BENCH_NICE" >/proc/self/autogroup 2>/dev/null || true
fi

WORK=$(mktemp -d "/tmp/tokenway-$NAME.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
HZ=$(getconf CLK_TCK)

# Request bodies: a small chat request (~300 B), a realistic long prompt (~12 KB), and the small
# one with "stream": true.
python3 - "$WORK" <<'EOF'
import json, sys
d = sys.argv[1]
small = {"model": "bench", "messages": [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely."},
    {"role": "user", "content": "Explain in two sentences what an inference gateway does "
                                "in front of a fleet of model servers."}],
    "max_tokens": 128, "temperature": 0.7}
para = ("The quarterly report covers revenue, churn and the migration of the billing service to "
        "the new cluster; list the three largest risks, who owns each, and what the mitigation "
        "plan says about dates, budgets and the fallback if the vendor slips again. ")
msgs = [{"role": "system", "content": "You are a careful analyst. Cite the section you rely on. " + para * 4}]
while len(json.dumps(msgs)) < 11600:
    msgs.append({"role": "user", "content": para * 3})
    msgs.append({"role": "assistant", "content": "Noted. " + para * 2})
msgs.append({"role": "user", "content": "Summarise the risks now."})
large = {"model": "bench", "messages": msgs, "max_tokens": 256, "temperature": 0.2}
stream = dict(small, stream=True)
for name, obj in (("small", small), ("large", large), ("stream", stream)):
    with open(f"{d}/{name}.json", "w") as f:
        f.write(json.dumps(obj, separators=(",", ":")))
EOF
for b in small large stream; do
  cat > "$WORK/$b.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$WORK/$b.json", "rb"))
wrk.body = f:read("*a")
f:close()
EOF
done

# --- processes --------------------------------------------------------------------------------
# start NAME CPU CMD...: runs CMD pinned to CPU, stdout and stderr to $WORK/NAME.log; with
# START_STDOUT=FILE set, stdout is appended to FILE instead (e.g. an access log on stdout).
start() {
  local name=$1 cpu=$2
  shift 2
  if [[ -n "${START_STDOUT:-}" ]]; then
    taskset -c "$cpu" "${PRIO[@]}" "$@" >>"$START_STDOUT" 2>"$WORK/$name.log" &
  else
    taskset -c "$cpu" "${PRIO[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  fi
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
wait_ready() {  # wait_ready PORT NAME
  local i
  for i in $(seq 1 100); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
            --data-binary @"$WORK/small.json" "http://127.0.0.1:$1/v1/chat/completions" || true) == 200 ]]; then
      return 0
    fi
    sleep 0.1
  done
  echo "$NAME: $2 on port $1 did not become ready; its log:" >&2
  cat "$WORK/$2.log" >&2 || true
  exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
core_busy() {  # "busy total" jiffies of CPU $1 from /proc/stat (busy = all but idle and iowait)
  awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}
share_of() {  # share_of "BUSY0 TOTAL0" "BUSY1 TOTAL1" -> busy fraction over the interval
  python3 -c "b0,t0=map(int,'$1'.split()); b1,t1=map(int,'$2'.split()); print(round((b1-b0)/max(t1-t0,1),3))"
}
# Foreign load: wait (at most WAIT_QUIET seconds) until both cores are < 15 % busy for a second.
wait_quiet() {
  local deadline=$((SECONDS + ${WAIT_QUIET:-30})) a0 a1 b0 b1 s0 s1
  while :; do
    a0=$(core_busy "$PROXY_CPU"); b0=$(core_busy "$LOAD_CPU"); sleep 1
    a1=$(core_busy "$PROXY_CPU"); b1=$(core_busy "$LOAD_CPU")
    s0=$(share_of "$a0" "$a1"); s1=$(share_of "$b0" "$b1")
    if python3 -c "import sys; sys.exit(0 if $s0 < 0.15 and $s1 < 0.15 else 1)"; then
      log "machine quiet (core $PROXY_CPU $s0, core $LOAD_CPU $s1 busy)"; return 0
    fi
    if ((SECONDS >= deadline)); then
      log "WARNING: machine busy (core $PROXY_CPU $s0, core $LOAD_CPU $s1 busy): numbers will be noisy"
      return 0
    fi
  done
}

# Free loopback ports, chosen by the kernel: free_ports N prints N of them.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
