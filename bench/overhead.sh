#!/usr/bin/env bash
# Gateway overhead, side by side in one run: the fixed backend direct, tokenway as the quick flags
# start it (--workers 1, access log on), tokenway with a scheduler (tokenway-sched: a YAML config,
# one pool with the gie-default scheduler fed by engine-metrics scraping, access log to a file)
# and nginx (1 worker), each proxy pinned to core PROXY_CPU (0), wrk / the latency client / the
# backend pinned to core LOAD_CPU (1). See docs/benchmarks.md ("Gateway overhead").
#
#   bench/overhead.sh [BUILD_DIR]          (default: build; `make bench` passes it)
#
# Measures, for each target:
#   1. non-streaming requests/s with wrk -c32 (300 B and ~12 KB chat bodies), and per proxy core
#      (requests/s ÷ the proxy's CPU share from /proc/PID/stat during the run); wrk's p99
#   2. latency at one connection (p50/p99, own client), added over direct
#   3. proxy RSS after load (VmRSS)
#   4. SSE events/s with 64 concurrent streams × 100 events, no pacing, per proxy core
#   5. first-event delay of paced streams (first event 20 ms after the request, 1 connection,
#      200 streams), added over direct
#   6. a long prompt (~432 KiB, ≈ 100k tokens): requests/s per proxy core and proxy CPU µs per
#      request, also through tokenway-sched pools of POOL_SIZES [8 64] endpoints (one backend
#      process listening on 127.0.0.1..127.0.0.N, one port)
# Prints a Markdown table and writes it plus raw numbers (JSON) to bench/results/overhead-<date>.*
#
# Throughput runs are interleaved in ROUNDS [2] rounds, ABBA order (direct, tokenway,
# tokenway-sched, nginx, then the reverse), each DURATION s after its own WARMUP, so slow drift
# of the machine hits every proxy alike; requests/s and CPU shares are averaged over the rounds.
# Environment knobs (defaults in brackets): DURATION [6] s per wrk run, WARMUP [2] s, ROUNDS [2],
# CONNS [32], SSE_CONNS [64], EVENTS [100], LAT_REQUESTS [20000], PACED_STREAMS [200],
# PACED_MS [20], LONG_KIB [432], LONG_DURATION [4] s per long-prompt run, POOL_SIZES [8 64],
# PROXY_CPU [0], LOAD_CPU [1], WAIT_QUIET [30] s to wait for an idle machine, BENCH_NICE [-20 as root, else 0]: every process of the benchmark
# (proxies, backend, wrk, client) runs at this nice level, so compiles elsewhere on the machine
# take less of its cores.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
SSE_CONNS=${SSE_CONNS:-64}
EVENTS=${EVENTS:-100}
LAT_REQUESTS=${LAT_REQUESTS:-20000}
PACED_STREAMS=${PACED_STREAMS:-200}
PACED_MS=${PACED_MS:-20}
LONG_KIB=${LONG_KIB:-432}
LONG_DURATION=${LONG_DURATION:-4}
POOL_SIZES=${POOL_SIZES:-8 64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

NAME=overhead
BENCH_ARGS=("$@")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TOKENWAY="$BUILD/src/main/tokenway"
BACKEND="$BUILD/bench/tokenway-fixed-backend"
CLIENT="$BUILD/bench/tokenway-latency-client"
for bin in "$TOKENWAY" "$BACKEND" "$CLIENT"; do
  if [[ ! -x "$bin" ]]; then
    echo "overhead.sh: $bin not found; build first:" >&2
    echo "  cmake -S $ROOT -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD" >&2
    exit 1
  fi
done
NGINX=$(command -v nginx || true)
[[ -n "$NGINX" ]] || NGINX=/usr/sbin/nginx
for tool in wrk taskset python3 curl; do
  command -v "$tool" >/dev/null || { echo "overhead.sh: $tool missing (scripts/setup.sh --bench)" >&2; exit 1; }
done
[[ -x "$NGINX" ]] || { echo "overhead.sh: nginx missing (apt-get install nginx-light)" >&2; exit 1; }
MAX_POOL=1
for n in $POOL_SIZES; do
  if [[ ! "$n" =~ ^[0-9]+$ ]] || ((n < 2 || n > 254)); then
    echo "overhead.sh: POOL_SIZES entries must be 2..254 (got '$n')" >&2
    exit 1
  fi
  if ((n > MAX_POOL)); then MAX_POOL=$n; fi
done

read -r P_BACK P_PACED P_TW P_TWA P_TS P_TSA P_NG P_TWP P_TWPA P_TSP P_TSPA P_NGP < <(free_ports 12)

# The long prompt: English-like text from a fixed word list and a fixed seed (the same bytes on
# every run), about LONG_KIB KiB as one chat request: system prompt, a document, a question.
python3 - "$WORK" "$LONG_KIB" <<'EOF'
import json, random, sys
d, kib = sys.argv[1], int(sys.argv[2])
words = ("the of and to in is that for it as with was on be by this are from at or an have not "
         "which but all were when we there can more if has been one will their so what about "
         "would out up into only its time than other some could these two may first then do any "
         "like my now over such our man me even most made after also did many before must "
         "through back years where much your way well down should because each just those people "
         "how too little state good very make world still own see men work long get here between "
         "both life being under never day same another know while last might us great old year "
         "off come since against go came right used take three system service cluster request "
         "latency budget revenue customer migration report quarter vendor contract engineer "
         "deploy release model server gateway memory storage network region failure recovery "
         "schedule owner risk plan review audit policy billing capacity traffic incident").split()
rng = random.Random(20261207)
def sentence():
    w = [rng.choice(words) for _ in range(rng.randint(8, 22))]
    if rng.random() < 0.3:
        i = rng.randint(2, len(w) - 2)
        w[i - 1] += ","
    s = " ".join(w)
    return s[0].upper() + s[1:] + rng.choice(".....?")
paras, size = [], 0
while size < kib * 1024 - 600:
    p = " ".join(sentence() for _ in range(rng.randint(3, 7)))
    paras.append(p)
    size += len(p) + 2
body = {"model": "bench", "messages": [
    {"role": "system", "content": "You are a careful analyst. Answer from the document only and "
                                  "cite the paragraph you rely on."},
    {"role": "user", "content": "Here is the document:\n\n" + "\n\n".join(paras)},
    {"role": "user", "content": "List the three largest risks the document names, with owners."}],
    "max_tokens": 512, "temperature": 0.2}
with open(f"{d}/long.json", "w") as f:
    f.write(json.dumps(body, separators=(",", ":")))
EOF
cat >"$WORK/long.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$WORK/long.json", "rb"))
wrk.body = f:read("*a")
f:close()
EOF

SMALL_BYTES=$(stat -c %s "$WORK/small.json")
LARGE_BYTES=$(stat -c %s "$WORK/large.json")
LONG_BYTES=$(stat -c %s "$WORK/long.json")

# --- processes ---------------------------------------------------------------------------------
nginx_conf() {  # nginx_conf DIR LISTEN_PORT UPSTREAM_PORT
  mkdir -p "$1"
  sed -e "s|@DIR@|$1|g" -e "s|@LISTEN@|127.0.0.1:$2|" -e "s|@UPSTREAM@|127.0.0.1:$3|" \
    "$ROOT/bench/nginx.conf.in" >"$1/nginx.conf"
}
# sched_conf FILE BACKEND_PORT ENDPOINTS ACCESS_LOG: tokenway-sched's configuration — one pool of
# ENDPOINTS endpoints (127.0.0.1..127.0.0.N, all on BACKEND_PORT) scheduled by the gie-default
# profile (queue-depth, kv-cache and prefix-cache scorers, the engine signals scraped at the
# default interval), the access log appended to a file; everything else at its default.
sched_conf() {
  local i
  {
    echo "access_log:"
    echo "  enabled: true"
    echo "  path: $4"
    echo "pools:"
    echo "  - name: bench"
    echo "    engine: vllm"
    echo "    scheduler: {preset: gie-default}"
    echo "    endpoints:"
    for ((i = 1; i <= $3; i++)); do echo "      - http://127.0.0.$i:$2"; done
    echo "models:"
    echo "  - name: bench"
    echo "    pool: bench"
  } >"$1"
  "$TOKENWAY" --validate "$1" >/dev/null
}
nginx_worker() {  # the worker process of an nginx master
  local i kids
  for i in $(seq 1 50); do
    kids=$(cat "/proc/$1/task/$1/children" 2>/dev/null || true)
    if [[ -n "$kids" ]]; then echo "${kids%% *}"; return 0; fi
    sleep 0.1
  done
  echo "overhead.sh: nginx worker not found" >&2
  exit 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

log "priority: nice $BENCH_NICE, $(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup')"
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# One backend process serves every target; it also listens on 127.0.0.2..127.0.0.MAX_POOL (same
# port) so that the larger tokenway-sched pools have distinct endpoints.
BACK_LISTEN=()
for ((i = 1; i <= MAX_POOL; i++)); do BACK_LISTEN+=(--listen "127.0.0.$i:$P_BACK"); done
start backend "$LOAD_CPU" "$BACKEND" "${BACK_LISTEN[@]}" --events "$EVENTS"
BACK_PID=$LAST_PID
start backend-paced "$LOAD_CPU" "$BACKEND" --listen "127.0.0.1:$P_PACED" --events 1 --interval-ms "$PACED_MS"
# tokenway as the quick flags start it; its stdout (the access log) goes to a file, as a user
# redirecting the logs would have it.
START_STDOUT="$WORK/tokenway.access.log" start tokenway "$PROXY_CPU" "$TOKENWAY" \
  --upstream "http://127.0.0.1:$P_BACK" --model bench --listen "127.0.0.1:$P_TW" \
  --admin "127.0.0.1:$P_TWA" --workers 1
TW_PID=$LAST_PID
sched_conf "$WORK/sched.yaml" "$P_BACK" 1 "$WORK/tokenway-sched.access.log"
start tokenway-sched "$PROXY_CPU" "$TOKENWAY" --config "$WORK/sched.yaml" \
  --listen "127.0.0.1:$P_TS" --admin "127.0.0.1:$P_TSA" --workers 1
TS_PID=$LAST_PID
nginx_conf "$WORK/nginx" "$P_NG" "$P_BACK"
start nginx "$PROXY_CPU" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
NG_MASTER=$LAST_PID
START_STDOUT="$WORK/tokenway-paced.access.log" start tokenway-paced "$PROXY_CPU" "$TOKENWAY" \
  --upstream "http://127.0.0.1:$P_PACED" --model bench --listen "127.0.0.1:$P_TWP" \
  --admin "127.0.0.1:$P_TWPA" --workers 1
sched_conf "$WORK/sched-paced.yaml" "$P_PACED" 1 "$WORK/tokenway-sched-paced.access.log"
start tokenway-sched-paced "$PROXY_CPU" "$TOKENWAY" --config "$WORK/sched-paced.yaml" \
  --listen "127.0.0.1:$P_TSP" --admin "127.0.0.1:$P_TSPA" --workers 1
nginx_conf "$WORK/nginx-paced" "$P_NGP" "$P_PACED"
start nginx-paced "$PROXY_CPU" "$NGINX" -p "$WORK/nginx-paced" -c "$WORK/nginx-paced/nginx.conf" \
  -e "$WORK/nginx-paced/error.log"

wait_ready "$P_BACK" backend
wait_ready "$P_TW" tokenway
wait_ready "$P_TS" tokenway-sched
wait_ready "$P_NG" nginx
NG_PID=$(nginx_worker "$NG_MASTER")
RSS0_TW=$(rss_kb "$TW_PID")
RSS0_TS=$(rss_kb "$TS_PID")
RSS0_NG=$(rss_kb "$NG_PID")

wait_quiet
declare -A PORT=([direct]=$P_BACK [tokenway]=$P_TW [tokenway-sched]=$P_TS [nginx]=$P_NG)
declare -A PPORT=([direct]=$P_PACED [tokenway]=$P_TWP [tokenway-sched]=$P_TSP [nginx]=$P_NGP)
declare -A PID=([direct]=$BACK_PID [tokenway]=$TW_PID [tokenway-sched]=$TS_PID [nginx]=$NG_PID)
declare -A ACCESS_LOG=([tokenway]="$WORK/tokenway.access.log"
                       [tokenway-sched]="$WORK/tokenway-sched.access.log")
TARGETS=(direct tokenway tokenway-sched nginx)
RAW="$WORK/raw.txt"
: >"$RAW"

us_of() {  # wrk's latency figure ("812.00us", "1.23ms", "2.01s") in µs
  python3 -c "
import sys; v = '$1'
for u, f in (('us', 1), ('ms', 1e3), ('s', 1e6)):
    if v.endswith(u): print(round(float(v[:-len(u)]) * f, 1)); sys.exit()
print(0)"
}

# run_wrk TEST TARGET LUA CONNS: warm-up, then a measured run (RUN_DURATION, else DURATION s); records req/s, CPU share, errors,
# wrk's p99 and the number of access-log lines the measured run wrote (the log is emptied around
# it, which also keeps the work directory small).
run_wrk() {
  local test=$1 target=$2 lua=$3 conns=$4
  local url="http://127.0.0.1:${PORT[$target]}/v1/chat/completions" pid=${PID[$target]}
  local alog=${ACCESS_LOG[$target]:-}
  taskset -c "$LOAD_CPU" "${PRIO[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$lua" "$url" >/dev/null
  if [[ -n "$alog" ]]; then : >"$alog"; fi
  local c0 t0 c1 t1 out k0 k1 l0 l1
  k0=$(core_busy "$PROXY_CPU"); l0=$(core_busy "$LOAD_CPU")
  c0=$(cpu_ticks "$pid")
  t0=$(date +%s.%N)
  out=$(taskset -c "$LOAD_CPU" "${PRIO[@]}" wrk -t1 -c"$conns" -d"${RUN_DURATION:-$DURATION}s" --latency -s "$lua" "$url")
  t1=$(date +%s.%N)
  c1=$(cpu_ticks "$pid")
  k1=$(core_busy "$PROXY_CPU"); l1=$(core_busy "$LOAD_CPU")
  local core0 core1 loglines=-1
  core0=$(share_of "$k0" "$k1"); core1=$(share_of "$l0" "$l1")
  if [[ -n "$alog" ]]; then loglines=$(wc -l <"$alog"); : >"$alog"; fi
  echo "$out" >"$WORK/wrk-$test-$target.txt"
  local rps reqs non2xx sockerr p99 share
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out")
  p99=$(us_of "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  share=$(python3 -c "print(round(($c1-$c0)/$HZ/($t1-$t0), 4))")
  echo "wrk $test $target ${rps:-0} $share ${non2xx:-0} ${sockerr:-0} $core0 $core1 $p99 ${reqs:-0} $loglines" >>"$RAW"
  log "$test $target: ${rps:-0} req/s, CPU share $share, p99 $p99 µs (core $PROXY_CPU busy $core0, core $LOAD_CPU busy $core1)${non2xx:+, NON-2XX $non2xx}${sockerr:+, socket errors $sockerr}$(if ((loglines >= 0)); then echo ", access log $loglines lines"; fi)"
}

rounds() {  # rounds TEST LUA CONNS TARGET...: the targets in order, then reversed, and so on
  local test=$1 lua=$2 conns=$3 r i t
  shift 3
  local order
  for ((r = 0; r < ROUNDS; r++)); do
    order=("$@")
    if ((r % 2 == 1)); then
      order=()
      for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done
    fi
    for t in "${order[@]}"; do run_wrk "$test" "$t" "$lua" "$conns"; done
  done
}
rss_line() {  # rss_line WHEN WHO PID BEFORE_KB
  echo "rss $1 $2 $(rss_kb "$3") $(hwm_kb "$3") $4" >>"$RAW"
}

log "1. non-streaming, $CONNS connections, ${SMALL_BYTES} B body"
rounds small "$WORK/small.lua" "$CONNS" "${TARGETS[@]}"
log "1. non-streaming, $CONNS connections, ${LARGE_BYTES} B body"
rounds large "$WORK/large.lua" "$CONNS" "${TARGETS[@]}"
log "4. SSE, $SSE_CONNS streams x $EVENTS events, no pacing"
rounds sse "$WORK/stream.lua" "$SSE_CONNS" "${TARGETS[@]}"
rss_line load tokenway "$TW_PID" "$RSS0_TW"
rss_line load tokenway-sched "$TS_PID" "$RSS0_TS"
rss_line load nginx "$NG_PID" "$RSS0_NG"
rss_line load nginx-master "$NG_MASTER" 0

# 6. The long prompt, also through tokenway-sched pools of several endpoints. Those gateways run
# only for this part, so their engine-metrics scraping does not load the proxy core otherwise.
log "6. long prompt, ${LONG_BYTES} B body, $CONNS connections; tokenway-sched pools of 1 $POOL_SIZES endpoints"
LONG_TARGETS=(direct tokenway tokenway-sched)
POOL_PIDS=()
declare -A ADMIN_PORT=([1]=$P_TSA)
for n in $POOL_SIZES; do
  read -r pp pa < <(free_ports 2)
  sched_conf "$WORK/sched-$n.yaml" "$P_BACK" "$n" "$WORK/tokenway-sched-$n.access.log"
  start "tokenway-sched-$n" "$PROXY_CPU" "$TOKENWAY" --config "$WORK/sched-$n.yaml" \
    --listen "127.0.0.1:$pp" --admin "127.0.0.1:$pa" --workers 1
  PID[tokenway-sched-$n]=$LAST_PID
  PORT[tokenway-sched-$n]=$pp
  ADMIN_PORT[$n]=$pa
  ACCESS_LOG[tokenway-sched-$n]="$WORK/tokenway-sched-$n.access.log"
  POOL_PIDS+=("$LAST_PID")
  LONG_TARGETS+=("tokenway-sched-$n")
  wait_ready "$pp" "tokenway-sched-$n"
done
LONG_TARGETS+=(nginx)
sleep 1  # some engine-metrics scrapes, so that every endpoint's signals are fresh
for n in 1 $POOL_SIZES; do  # how many endpoints the scheduler sees with valid engine signals
  valid=$(curl -s "http://127.0.0.1:${ADMIN_PORT[$n]}/admin/endpoints" | grep -o '"valid": *true' | wc -l)
  log "tokenway-sched-$n: $valid of $n endpoints with valid engine signals"
  echo "valid $n $valid" >>"$RAW"
done
RUN_DURATION=$LONG_DURATION rounds long "$WORK/long.lua" "$CONNS" "${LONG_TARGETS[@]}"
rss_line long tokenway "$TW_PID" "$RSS0_TW"
rss_line long tokenway-sched "$TS_PID" "$RSS0_TS"
rss_line long nginx "$NG_PID" "$RSS0_NG"
for p in "${POOL_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done

log "2. latency at one connection ($LAT_REQUESTS requests each)"
for body in small large; do
  for t in "${TARGETS[@]}"; do
    r=$(taskset -c "$LOAD_CPU" "${PRIO[@]}" "$CLIENT" --connect "127.0.0.1:${PORT[$t]}" --body-file "$WORK/$body.json" \
          --mode json --requests "$LAT_REQUESTS" --warmup 1000)
    echo "lat $body $t $r" >>"$RAW"
    log "latency $body $t: $r"
  done
done

# The same at one connection with the proxy moved onto the load core too: no cross-core wake-ups,
# so the difference to direct is the proxy's own processing (a diagnostic, not the target).
log "2b. latency at one connection, everything on core $LOAD_CPU"
for t in tokenway tokenway-sched nginx; do taskset -a -p -c "$LOAD_CPU" "${PID[$t]}" >/dev/null; done
taskset -a -p -c "$LOAD_CPU" "$NG_MASTER" >/dev/null
for t in "${TARGETS[@]}"; do
  r=$(taskset -c "$LOAD_CPU" "${PRIO[@]}" "$CLIENT" --connect "127.0.0.1:${PORT[$t]}" --body-file "$WORK/small.json" \
        --mode json --requests "$LAT_REQUESTS" --warmup 1000)
  echo "lat onecore $t $r" >>"$RAW"
  log "latency small, one core, $t: $r"
done
for t in tokenway tokenway-sched nginx; do taskset -a -p -c "$PROXY_CPU" "${PID[$t]}" >/dev/null; done
taskset -a -p -c "$PROXY_CPU" "$NG_MASTER" >/dev/null

log "5. first-event delay, paced streams (first event after $PACED_MS ms), $PACED_STREAMS streams"
wait_ready "$P_PACED" backend-paced
for t in "${TARGETS[@]}"; do
  wait_ready "${PPORT[$t]}" "$([[ $t == direct ]] && echo backend-paced || echo "$t-paced")"
  r=$(taskset -c "$LOAD_CPU" "${PRIO[@]}" "$CLIENT" --connect "127.0.0.1:${PPORT[$t]}" --body-file "$WORK/stream.json" \
        --mode stream --requests "$PACED_STREAMS" --warmup 10)
  echo "fev paced $t $r" >>"$RAW"
  log "first event $t: $r"
done

# --- report -----------------------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
META=$(python3 -c 'import json, sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
  date "$STAMP" nproc "$(nproc)" cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" \
  kernel "$(uname -r)" debian "$(cat /etc/debian_version 2>/dev/null || echo ?)" \
  nginx "$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')" \
  tokenway_commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo uncommitted)" \
  load_before "$LOAD_BEFORE" load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
  duration_s "$DURATION" long_duration_s "$LONG_DURATION" warmup_s "$WARMUP" rounds "$ROUNDS" conns "$CONNS" sse_conns "$SSE_CONNS" \
  events "$EVENTS" lat_requests "$LAT_REQUESTS" paced_streams "$PACED_STREAMS" paced_ms "$PACED_MS" \
  small_body_bytes "$SMALL_BYTES" large_body_bytes "$LARGE_BYTES" long_body_bytes "$LONG_BYTES" \
  pool_sizes "$POOL_SIZES" proxy_cpu "$PROXY_CPU" load_cpu "$LOAD_CPU" nice "$BENCH_NICE")
python3 - "$RAW" "$ROOT/bench/results/overhead-$STAMP" "$META" <<'EOF'
import json, sys
raw, out, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for key in ("nproc", "duration_s", "long_duration_s", "warmup_s", "rounds", "conns", "sse_conns", "events", "lat_requests",
            "paced_streams", "paced_ms", "small_body_bytes", "large_body_bytes", "long_body_bytes",
            "proxy_cpu", "load_cpu", "nice"):
    meta[key] = int(meta[key])
meta["pool_sizes"] = [int(n) for n in meta["pool_sizes"].split()]
R = {"meta": meta, "wrk": {}, "lat": {}, "fev": {}, "rss": {}, "valid_endpoints": {}}
for line in open(raw):
    f = line.split(None, 3)
    if f[0] == "wrk":
        test, target, rps, share, non2xx, sockerr, core0, core1, p99, reqs, loglines = line.split()[1:]
        R["wrk"].setdefault(test, {}).setdefault(target, {"rounds": []})["rounds"].append({
            "rps": float(rps), "cpu_share": float(share), "non2xx": int(non2xx),
            "socket_errors": int(sockerr), "proxy_core_busy": float(core0),
            "load_core_busy": float(core1), "p99_us": float(p99), "requests": int(reqs),
            "access_log_lines": int(loglines)})
    elif f[0] in ("lat", "fev"):
        R[f[0]].setdefault(f[1], {})[f[2]] = json.loads(f[3])
    elif f[0] == "rss":
        _, when, who, rss, hwm, before = line.split()
        R["rss"].setdefault(when, {})[who] = {"rss_kb": int(rss), "hwm_kb": int(hwm), "before_kb": int(before)}
    elif f[0] == "valid":
        R["valid_endpoints"][f[1]] = int(f[2])
W = R["wrk"]
for ts in W.values():  # average over the rounds (equal durations)
    for w in ts.values():
        rs = w["rounds"]
        for key in ("rps", "cpu_share", "proxy_core_busy", "load_core_busy", "p99_us"):
            w[key] = sum(r[key] for r in rs) / len(rs)
        for key in ("non2xx", "socket_errors", "requests", "access_log_lines"):
            w[key] = sum(r[key] for r in rs)
        w["cpu_us_per_request"] = w["cpu_share"] / w["rps"] * 1e6 if w["rps"] > 0 else 0.0
for t in W.get("sse", {}).values():
    t["events_per_s"] = t["rps"] * meta["events"]

GW = ("tokenway", "tokenway-sched")
def per_core(test, target, key="rps"):
    w = W[test][target]
    return w[key] / w["cpu_share"] if w["cpu_share"] > 0 else 0.0
def k(x): return f"{x/1000:.1f}k"
def ratio(a, b): return a / b if b else float("nan")
def spread(test, target):  # per-round per-core ratios to nginx, when there is more than one round
    t, n = W[test][target]["rounds"], W[test]["nginx"]["rounds"]
    if len(t) < 2: return ""
    rs = [ratio(a["rps"] / a["cpu_share"], b["rps"] / b["cpu_share"]) for a, b in zip(t, n)]
    return " (" + ", ".join(f"{x:.2f}" for x in rs) + ")"
def p99_spread(test, target):  # per-round p99 ratios to nginx (one slow round shows here)
    t, n = W[test][target]["rounds"], W[test]["nginx"]["rounds"]
    if len(t) < 2: return ""
    return " (" + ", ".join(f"{ratio(a['p99_us'], b['p99_us']):.2f}" for a, b in zip(t, n)) + ")"
ok = lambda b: "met" if b else "**missed**"
both = lambda f: " / ".join(ok(f(g)) for g in GW)
rows = []
def row(label, d, t, s, n, rt="", rs="", target="", verdict=""):
    rows.append([label, d, t, s, n, rt, rs, target, verdict])

def throughput(test, nbytes, per_core_target):
    d, t, s, n = (W[test][x] for x in ("direct",) + GW + ("nginx",))
    row(f"req/s, {nbytes} B body (raw)", k(d["rps"]), k(t["rps"]), k(s["rps"]), k(n["rps"]),
        f"{ratio(t['rps'], n['rps']):.2f}", f"{ratio(s['rps'], n['rps']):.2f}")
    row("proxy CPU share", f"{d['cpu_share']:.2f} (backend)", f"{t['cpu_share']:.2f}", f"{s['cpu_share']:.2f}",
        f"{n['cpu_share']:.2f}")
    r = {g: ratio(per_core(test, g), per_core(test, "nginx")) for g in GW}
    row(f"**req/s per proxy core, {nbytes} B**", "—", k(per_core(test, "tokenway")),
        k(per_core(test, "tokenway-sched")), k(per_core(test, "nginx")),
        f"**{r['tokenway']:.2f}**{spread(test, 'tokenway')}", f"**{r['tokenway-sched']:.2f}**{spread(test, 'tokenway-sched')}",
        f"≥ {per_core_target}× nginx" if per_core_target else "",
        both(lambda g: r[g] >= per_core_target) if per_core_target else "")
    return d, t, s, n

for test, key in (("small", "small_body_bytes"), ("large", "large_body_bytes")):
    d, t, s, n = throughput(test, meta[key], 1.1)
    row(f"**p99 at {meta['conns']} connections, {meta[key]} B (ms)**", f"{d['p99_us']/1000:.2f}",
        f"**{t['p99_us']/1000:.2f}**", f"**{s['p99_us']/1000:.2f}**", f"{n['p99_us']/1000:.2f}",
        f"{ratio(t['p99_us'], n['p99_us']):.2f}{p99_spread(test, 'tokenway')}",
        f"{ratio(s['p99_us'], n['p99_us']):.2f}{p99_spread(test, 'tokenway-sched')}")
S = W["sse"]
row("SSE events/s (raw)", *(k(S[x]["events_per_s"]) for x in ("direct",) + GW + ("nginx",)),
    *(f"{ratio(S[g]['events_per_s'], S['nginx']['events_per_s']):.2f}" for g in GW))
row("proxy CPU share", f"{S['direct']['cpu_share']:.2f} (backend)", *(f"{S[x]['cpu_share']:.2f}" for x in GW + ("nginx",)))
r = {g: ratio(per_core("sse", g, "events_per_s"), per_core("sse", "nginx", "events_per_s")) for g in GW}
row("**SSE events/s per proxy core**", "—", *(k(per_core("sse", x, "events_per_s")) for x in GW + ("nginx",)),
    *(f"**{r[g]:.2f}**{spread('sse', g)}" for g in GW), "≥ 0.8× nginx", both(lambda g: r[g] >= 0.8))
for body in ("small", "large"):
    L = R["lat"][body]
    for q in ("p50", "p99"):
        d, t, s, n = (L[x][q + "_us"] for x in ("direct",) + GW + ("nginx",))
        row(f"latency {q}, 1 conn, {body} body (µs)", f"{d:.1f}", f"{t:.1f}", f"{s:.1f}", f"{n:.1f}")
        row(f"**added {q}, 1 conn, {body} body (µs)**", "—", f"**{t-d:.1f}**", f"**{s-d:.1f}**", f"{n-d:.1f}",
            f"{ratio(t-d, n-d):.2f}", f"{ratio(s-d, n-d):.2f}",
            "≤ 40 µs" if q == "p50" else "", both(lambda g: L[g]["p50_us"] - d <= 40) if q == "p50" else "")
L = R["lat"]["onecore"]
d, t, s, n = (L[x]["p50_us"] for x in ("direct",) + GW + ("nginx",))
row("added p50, small body, proxy on the load core too (µs; diagnostic)", "—", f"{t-d:.1f}", f"{s-d:.1f}", f"{n-d:.1f}",
    f"{ratio(t-d, n-d):.2f}", f"{ratio(s-d, n-d):.2f}")
F = R["fev"]["paced"]
for q in ("p50", "p99"):
    d, t, s, n = (F[x][q + "_us"] for x in ("direct",) + GW + ("nginx",))
    row(f"first-event delay {q}, paced (ms)", f"{d/1000:.3f}", f"{t/1000:.3f}", f"{s/1000:.3f}", f"{n/1000:.3f}")
    row(f"**added first-event delay {q} (ms)**", "—", f"**{(t-d)/1000:.3f}**", f"**{(s-d)/1000:.3f}**", f"{(n-d)/1000:.3f}",
        "", "", "≤ 0.5 ms" if q == "p50" else "",
        both(lambda g: F[g]["p50_us"] - d <= 500) if q == "p50" else "")
for when, label in (("load", "**RSS after load (MB)**"), ("long", f"RSS after the long-prompt runs (MB)")):
    rr = R["rss"][when]
    master = f"; master {R['rss']['load']['nginx-master']['rss_kb']/1024:.1f}" if when == "load" else ""
    row(label, "—", *(f"{rr[g]['rss_kb']/1024:.1f}" for g in GW), f"{rr['nginx']['rss_kb']/1024:.1f} (worker{master})",
        *(f"{ratio(rr[g]['rss_kb'], rr['nginx']['rss_kb']):.2f}" for g in GW),
        "≤ 25 MB" if when == "load" else "", both(lambda g: rr[g]["rss_kb"] <= 25 * 1024) if when == "load" else "")
d, t, s, n = throughput("long", meta["long_body_bytes"], 0)
row(f"**proxy CPU µs per request, {meta['long_body_bytes']} B**", "—",
    *(f"**{W['long'][x]['cpu_us_per_request']:.0f}**" for x in GW), f"{n['cpu_us_per_request']:.0f}",
    *(f"{ratio(W['long'][g]['cpu_us_per_request'], n['cpu_us_per_request']):.2f}" for g in GW))
row(f"p99 at {meta['conns']} connections, {meta['long_body_bytes']} B (ms)", f"{d['p99_us']/1000:.2f}",
    f"{t['p99_us']/1000:.2f}", f"{s['p99_us']/1000:.2f}", f"{n['p99_us']/1000:.2f}",
    f"{ratio(t['p99_us'], n['p99_us']):.2f}{p99_spread('long', 'tokenway')}",
    f"{ratio(s['p99_us'], n['p99_us']):.2f}{p99_spread('long', 'tokenway-sched')}")

# The long prompt through tokenway-sched pools of growing size.
P = [("1", W["long"]["tokenway-sched"])] + [(str(p), W["long"][f"tokenway-sched-{p}"]) for p in meta["pool_sizes"]]
ng = W["long"]["nginx"]
prow = [["tokenway-sched pool, endpoints"] + [p for p, _ in P] + ["nginx"],
        ["req/s (raw)"] + [k(w["rps"]) for _, w in P] + [k(ng["rps"])],
        ["proxy CPU share"] + [f"{w['cpu_share']:.2f}" for _, w in P] + [f"{ng['cpu_share']:.2f}"],
        ["req/s per proxy core"] + [k(w["rps"] / w["cpu_share"]) if w["cpu_share"] else "—" for _, w in P]
        + [k(ng["rps"] / ng["cpu_share"]) if ng["cpu_share"] else "—"],
        ["**proxy CPU µs per request**"] + [f"**{w['cpu_us_per_request']:.0f}**" for _, w in P]
        + [f"{ng['cpu_us_per_request']:.0f}"],
        ["÷ nginx's CPU per request"] + [f"{ratio(w['cpu_us_per_request'], ng['cpu_us_per_request']):.2f}" for _, w in P] + [""],
        [f"p99 at {meta['conns']} connections (ms)"] + [f"{w['p99_us']/1000:.2f}" for _, w in P] + [f"{ng['p99_us']/1000:.2f}"],
        ["endpoints with valid engine signals at the start"] + [str(R["valid_endpoints"].get(p, "?")) for p, _ in P] + [""]]

errs = [(test, tgt, w["non2xx"], w["socket_errors"]) for test, ts in W.items() for tgt, w in ts.items()
        if w["non2xx"] or w["socket_errors"]]
head = ["measure", "direct", "tokenway", "tokenway-sched", "nginx", "tokenway ÷ nginx", "tokenway-sched ÷ nginx",
        "target", "verdict (tokenway / tokenway-sched)"]
md = [f"Gateway overhead, {meta['date']} — {meta['nproc']} cores ({meta['cpu']}), kernel {meta['kernel']}, "
      f"Debian {meta['debian']}, nginx {meta['nginx']}, tokenway {meta['tokenway_commit']}, nice {meta['nice']}; "
      f"load average before {meta['load_before']}, after {meta['load_after']}. tokenway: quick flags, access "
      f"log to a file; tokenway-sched: gie-default scheduler, engine-metrics scraping, access log to a file.", "",
      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
md += ["| " + " | ".join(r) + " |" for r in rows]
md += ["", f"Long prompt ({meta['long_body_bytes']} B) by pool size:", "",
       "| " + " | ".join(prow[0]) + " |", "|" + "---|" * len(prow[0])]
md += ["| " + " | ".join(r) + " |" for r in prow[1:]]
logged = []
for tgt in dict.fromkeys(t for ts in W.values() for t in ts if t.startswith("tokenway")):
    lines = sum(ts[tgt]["access_log_lines"] for ts in W.values() if tgt in ts)
    reqs = sum(ts[tgt]["requests"] for ts in W.values() if tgt in ts)
    logged.append(f"{tgt} {ratio(lines, reqs):.2f}")
md += ["", "Access-log lines per request completed in the measured runs: " + "; ".join(logged)]
foreign = [(test, tgt, round(w["proxy_core_busy"] - w["cpu_share"], 2)) for test, ts in W.items()
           for tgt, w in ts.items() if tgt != "direct" and w["proxy_core_busy"] - w["cpu_share"] > 0.05]
md += ["", "Core %d busy beyond the proxy itself (foreign load, > 5 %% flagged): %s" % (
    meta["proxy_cpu"], "; ".join(f"{a} {b} +{c:.2f}" for a, b, c in foreign) if foreign else "none")]
if errs:
    md += ["", "Errors during load (test, target, non-2xx, socket errors): " + "; ".join(map(str, errs))]
text = "\n".join(md) + "\n"
open(out + ".md", "w").write(text)
json.dump(R, open(out + ".json", "w"), indent=2)
print(text)
print(f"written: {out}.md, {out}.json")
EOF
