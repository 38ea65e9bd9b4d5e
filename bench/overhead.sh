#!/usr/bin/env bash
# Gateway overhead, side by side in one run: the fixed backend direct, tokenway (--workers 1) and
# nginx (1 worker), each proxy pinned to core PROXY_CPU (0), wrk / the latency client / the
# backend pinned to core LOAD_CPU (1). See docs/benchmarks.md ("Gateway overhead").
#
#   bench/overhead.sh [BUILD_DIR]          (default: build; `make bench` passes it)
#
#
# Measures, for each target:
#   1. non-streaming requests/s with wrk -c32 (300 B and ~12 KB chat bodies), and per proxy core
#      (requests/s ÷ the proxy's CPU share from /proc/PID/stat during the run)
#   2. latency at one connection (p50/p99, own client), added over direct
#   3. proxy RSS after load (VmRSS)
#   4. SSE events/s with 64 concurrent streams × 100 events, no pacing, per proxy core
#   5. first-event delay of paced streams (first event 20 ms after the request, 1 connection,
#      200 streams), added over direct
# Prints a Markdown table and writes it plus raw numbers (JSON) to bench/results/overhead-<date>.*
#
# Throughput runs are interleaved in ROUNDS [2] rounds, ABBA order (direct, tokenway, nginx, then
# nginx, tokenway, direct), each DURATION s after its own WARMUP, so slow drift of the machine
# hits both proxies alike; requests/s and CPU shares are averaged over the rounds.
# Environment knobs (defaults in brackets): DURATION [6] s per wrk run, WARMUP [2] s, ROUNDS [2],
# CONNS [32], SSE_CONNS [64], EVENTS [100], LAT_REQUESTS [20000], PACED_STREAMS [200],
# PACED_MS [20], PROXY_CPU [0], LOAD_CPU [1], WAIT_QUIET [30] s to wait for an idle machine,
# BENCH_NICE [-20 as root, else 0]: every process of the benchmark (proxies, backend, wrk,
# client) runs at this nice level, so compiles elsewhere on the machine take less of its cores.
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

read -r P_BACK P_PACED P_TW P_TWA P_NG P_TWP P_TWPA P_NGP < <(free_ports 8)

SMALL_BYTES=$(stat -c %s "$WORK/small.json")
LARGE_BYTES=$(stat -c %s "$WORK/large.json")

# --- processes ---------------------------------------------------------------------------------
nginx_conf() {  # nginx_conf DIR LISTEN_PORT UPSTREAM_PORT
  mkdir -p "$1"
  sed -e "s|@DIR@|$1|g" -e "s|@LISTEN@|127.0.0.1:$2|" -e "s|@UPSTREAM@|127.0.0.1:$3|" \
    "$ROOT/bench/nginx.conf.in" >"$1/nginx.conf"
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

start backend "$LOAD_CPU" "$BACKEND" --listen "127.0.0.1:$P_BACK" --events "$EVENTS"
BACK_PID=$LAST_PID
start backend-paced "$LOAD_CPU" "$BACKEND" --listen "127.0.0.1:$P_PACED" --events 1 --interval-ms "$PACED_MS"
start tokenway "$PROXY_CPU" "$TOKENWAY" --upstream "http://127.0.0.1:$P_BACK" --model bench \
  --listen "127.0.0.1:$P_TW" --admin "127.0.0.1:$P_TWA" --workers 1 --no-access-log
TW_PID=$LAST_PID
nginx_conf "$WORK/nginx" "$P_NG" "$P_BACK"
start nginx "$PROXY_CPU" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
NG_MASTER=$LAST_PID
start tokenway-paced "$PROXY_CPU" "$TOKENWAY" --upstream "http://127.0.0.1:$P_PACED" --model bench \
  --listen "127.0.0.1:$P_TWP" --admin "127.0.0.1:$P_TWPA" --workers 1 --no-access-log
nginx_conf "$WORK/nginx-paced" "$P_NGP" "$P_PACED"
start nginx-paced "$PROXY_CPU" "$NGINX" -p "$WORK/nginx-paced" -c "$WORK/nginx-paced/nginx.conf" \
  -e "$WORK/nginx-paced/error.log"

wait_ready "$P_BACK" backend
wait_ready "$P_TW" tokenway
wait_ready "$P_NG" nginx
NG_PID=$(nginx_worker "$NG_MASTER")
RSS0_TW=$(rss_kb "$TW_PID")
RSS0_NG=$(rss_kb "$NG_PID")

wait_quiet
declare -A PORT=([direct]=$P_BACK [tokenway]=$P_TW [nginx]=$P_NG)
declare -A PPORT=([direct]=$P_PACED [tokenway]=$P_TWP [nginx]=$P_NGP)
declare -A PID=([direct]=$BACK_PID [tokenway]=$TW_PID [nginx]=$NG_PID)
TARGETS=(direct tokenway nginx)
RAW="$WORK/raw.txt"
: >"$RAW"

# run_wrk TEST TARGET LUA CONNS: warm-up, then a measured run; records req/s, CPU share, errors.
run_wrk() {
  local test=$1 target=$2 lua=$3 conns=$4
  local url="http://127.0.0.1:${PORT[$target]}/v1/chat/completions" pid=${PID[$target]}
  taskset -c "$LOAD_CPU" "${PRIO[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$lua" "$url" >/dev/null
  local c0 t0 c1 t1 out k0 k1 l0 l1
  k0=$(core_busy "$PROXY_CPU"); l0=$(core_busy "$LOAD_CPU")
  c0=$(cpu_ticks "$pid")
  t0=$(date +%s.%N)
  out=$(taskset -c "$LOAD_CPU" "${PRIO[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" -s "$lua" "$url")
  t1=$(date +%s.%N)
  c1=$(cpu_ticks "$pid")
  k1=$(core_busy "$PROXY_CPU"); l1=$(core_busy "$LOAD_CPU")
  local core0 core1
  core0=$(share_of "$k0" "$k1"); core1=$(share_of "$l0" "$l1")
  echo "$out" >"$WORK/wrk-$test-$target.txt"
  local rps non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out")
  local share
  share=$(python3 -c "print(round(($c1-$c0)/$HZ/($t1-$t0), 4))")
  echo "wrk $test $target ${rps:-0} $share ${non2xx:-0} ${sockerr:-0} $core0 $core1" >>"$RAW"
  log "$test $target: ${rps:-0} req/s, CPU share $share (core $PROXY_CPU busy $core0, core $LOAD_CPU busy $core1)${non2xx:+, NON-2XX $non2xx}${sockerr:+, socket errors $sockerr}"
}

ORDERS=("direct tokenway nginx" "nginx tokenway direct")
rounds() {  # rounds TEST LUA CONNS
  local r t
  for ((r = 0; r < ROUNDS; r++)); do
    for t in ${ORDERS[$((r % 2))]}; do run_wrk "$1" "$t" "$2" "$3"; done
  done
}
log "1. non-streaming, $CONNS connections, ${SMALL_BYTES} B body"
rounds small "$WORK/small.lua" "$CONNS"
log "1. non-streaming, $CONNS connections, ${LARGE_BYTES} B body"
rounds large "$WORK/large.lua" "$CONNS"
log "4. SSE, $SSE_CONNS streams x $EVENTS events, no pacing"
rounds sse "$WORK/stream.lua" "$SSE_CONNS"
echo "rss tokenway $(rss_kb "$TW_PID") $(hwm_kb "$TW_PID") $RSS0_TW" >>"$RAW"
echo "rss nginx $(rss_kb "$NG_PID") $(hwm_kb "$NG_PID") $RSS0_NG" >>"$RAW"
echo "rss nginx-master $(rss_kb "$NG_MASTER") $(hwm_kb "$NG_MASTER") 0" >>"$RAW"

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
for t in tokenway nginx; do taskset -a -p -c "$LOAD_CPU" "${PID[$t]}" >/dev/null; done
taskset -a -p -c "$LOAD_CPU" "$NG_MASTER" >/dev/null
for t in "${TARGETS[@]}"; do
  r=$(taskset -c "$LOAD_CPU" "${PRIO[@]}" "$CLIENT" --connect "127.0.0.1:${PORT[$t]}" --body-file "$WORK/small.json" \
        --mode json --requests "$LAT_REQUESTS" --warmup 1000)
  echo "lat onecore $t $r" >>"$RAW"
  log "latency small, one core, $t: $r"
done
for t in tokenway nginx; do taskset -a -p -c "$PROXY_CPU" "${PID[$t]}" >/dev/null; done
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
python3 - "$RAW" "$ROOT/bench/results/overhead-$STAMP" <<EOF
import json, sys
raw, out = sys.argv[1], sys.argv[2]
R = {"wrk": {}, "lat": {}, "fev": {}, "rss": {}}
for line in open(raw):
    f = line.split(None, 3)
    if f[0] == "wrk":
        test, target, rps, share, non2xx, sockerr, core0, core1 = line.split()[1:]
        R["wrk"].setdefault(test, {}).setdefault(target, {"rounds": []})["rounds"].append({
            "rps": float(rps), "cpu_share": float(share), "non2xx": int(non2xx),
            "socket_errors": int(sockerr), "proxy_core_busy": float(core0),
            "load_core_busy": float(core1)})
    elif f[0] in ("lat", "fev"):
        R[f[0]].setdefault(f[1], {})[f[2]] = json.loads(f[3])
    elif f[0] == "rss":
        _, who, rss, hwm, before = line.split()
        R["rss"][who] = {"rss_kb": int(rss), "hwm_kb": int(hwm), "before_kb": int(before)}
for ts in R["wrk"].values():  # average over the rounds (equal durations)
    for w in ts.values():
        rs = w["rounds"]
        for key in ("rps", "cpu_share", "proxy_core_busy", "load_core_busy"):
            w[key] = sum(r[key] for r in rs) / len(rs)
        for key in ("non2xx", "socket_errors"):
            w[key] = sum(r[key] for r in rs)
meta = {"date": "$STAMP", "nproc": $(nproc), "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')",
        "kernel": "$(uname -r)", "debian": "$(cat /etc/debian_version 2>/dev/null || echo ?)",
        "nginx": "$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')",
        "tokenway_commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo uncommitted)",
        "load_before": "$LOAD_BEFORE", "load_after": "$(cut -d' ' -f1-3 /proc/loadavg)",
        "duration_s": $DURATION, "warmup_s": $WARMUP, "rounds": $ROUNDS, "conns": $CONNS, "sse_conns": $SSE_CONNS,
        "events": $EVENTS, "lat_requests": $LAT_REQUESTS, "paced_streams": $PACED_STREAMS,
        "paced_ms": $PACED_MS, "small_body_bytes": $SMALL_BYTES, "large_body_bytes": $LARGE_BYTES,
        "proxy_cpu": $PROXY_CPU, "load_cpu": $LOAD_CPU, "nice": $BENCH_NICE}
R["meta"] = meta
W = R["wrk"]
for t in W.get("sse", {}).values():
    t["events_per_s"] = t["rps"] * $EVENTS
def per_core(test, target, key="rps"):
    w = W[test][target]
    return w[key] / w["cpu_share"] if w["cpu_share"] > 0 else 0.0
def k(x): return f"{x/1000:.1f}k"
def spread(test):  # per-round ratios, when there is more than one round
    t, n = W[test]["tokenway"]["rounds"], W[test]["nginx"]["rounds"]
    if len(t) < 2: return ""
    rs = [(a["rps"] / a["cpu_share"]) / (b["rps"] / b["cpu_share"]) for a, b in zip(t, n)]
    return " (rounds " + ", ".join(f"{x:.2f}" for x in rs) + ")"
rows = []
ok = lambda b: "met" if b else "**missed**"
for test, label in (("small", f"req/s, {$SMALL_BYTES} B body"), ("large", f"req/s, {$LARGE_BYTES} B body")):
    d, t, n = W[test]["direct"], W[test]["tokenway"], W[test]["nginx"]
    rows.append([label + " (raw)", k(d["rps"]), k(t["rps"]), k(n["rps"]), f"{t['rps']/n['rps']:.2f}", "", ""])
    rows.append(["proxy CPU share", f"{d['cpu_share']:.2f} (backend)", f"{t['cpu_share']:.2f}", f"{n['cpu_share']:.2f}", "", "", ""])
    r = per_core(test, "tokenway") / per_core(test, "nginx")
    rows.append([f"**req/s per proxy core, {$SMALL_BYTES if test == 'small' else $LARGE_BYTES} B**", "—",
                 k(per_core(test, "tokenway")), k(per_core(test, "nginx")), f"**{r:.2f}**{spread(test)}", "≥ 0.8× nginx", ok(r >= 0.8)])
s = W["sse"]
rows.append(["SSE events/s (raw)", k(s["direct"]["events_per_s"]), k(s["tokenway"]["events_per_s"]),
             k(s["nginx"]["events_per_s"]), f"{s['tokenway']['events_per_s']/s['nginx']['events_per_s']:.2f}", "", ""])
rows.append(["proxy CPU share", f"{s['direct']['cpu_share']:.2f} (backend)", f"{s['tokenway']['cpu_share']:.2f}", f"{s['nginx']['cpu_share']:.2f}", "", "", ""])
r = per_core("sse", "tokenway", "events_per_s") / per_core("sse", "nginx", "events_per_s")
rows.append(["**SSE events/s per proxy core**", "—", k(per_core("sse", "tokenway", "events_per_s")),
             k(per_core("sse", "nginx", "events_per_s")), f"**{r:.2f}**{spread('sse')}", "≥ 0.8× nginx", ok(r >= 0.8)])
for body in ("small", "large"):
    L = R["lat"][body]
    for q in ("p50", "p99"):
        d, t, n = (L[x][q + "_us"] for x in ("direct", "tokenway", "nginx"))
        rows.append([f"latency {q}, 1 conn, {body} body (µs)", f"{d:.1f}", f"{t:.1f}", f"{n:.1f}", "", "", ""])
        target = "≤ 40 µs" if q == "p50" else ""
        rows.append([f"**added {q}, {body} body (µs)**", "—", f"**{t-d:.1f}**", f"{n-d:.1f}", "", target,
                     ok(t - d <= 40) if q == "p50" else ""])
L = R["lat"]["onecore"]
d, t, n = (L[x]["p50_us"] for x in ("direct", "tokenway", "nginx"))
rows.append(["added p50, small body, proxy on the load core too (µs; diagnostic)", "—", f"{t-d:.1f}", f"{n-d:.1f}", "", "", ""])
F = R["fev"]["paced"]
for q in ("p50", "p99"):
    d, t, n = (F[x][q + "_us"] for x in ("direct", "tokenway", "nginx"))
    rows.append([f"first-event delay {q}, paced (ms)", f"{d/1000:.3f}", f"{t/1000:.3f}", f"{n/1000:.3f}", "", "", ""])
    rows.append([f"**added first-event delay {q} (ms)**", "—", f"**{(t-d)/1000:.3f}**", f"{(n-d)/1000:.3f}", "",
                 "≤ 0.5 ms" if q == "p50" else "", ok((t - d) <= 500) if q == "p50" else ""])
rt, rn = R["rss"]["tokenway"], R["rss"]["nginx"]
rows.append(["**RSS after load (MB)**", "—", f"**{rt['rss_kb']/1024:.1f}**", f"{rn['rss_kb']/1024:.1f} (worker; master {R['rss']['nginx-master']['rss_kb']/1024:.1f})",
             "", "≤ 25 MB", ok(rt["rss_kb"] <= 25 * 1024)])
errs = [(test, tgt, w["non2xx"], w["socket_errors"]) for test, ts in W.items() for tgt, w in ts.items()
        if w["non2xx"] or w["socket_errors"]]
head = ["measure", "direct", "tokenway", "nginx", "tokenway ÷ nginx", "target", "verdict"]
md = [f"Gateway overhead, {meta['date']} — {meta['nproc']} cores ({meta['cpu']}), kernel {meta['kernel']}, "
      f"Debian {meta['debian']}, nginx {meta['nginx']}, tokenway {meta['tokenway_commit']}, nice {meta['nice']}; "
      f"load average before {meta['load_before']}, after {meta['load_after']}.", "",
      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
md += ["| " + " | ".join(r) + " |" for r in rows]
foreign = [(test, tgt, round(w["proxy_core_busy"] - w["cpu_share"], 2)) for test, ts in W.items()
           for tgt, w in ts.items() if tgt != "direct" and w["proxy_core_busy"] - w["cpu_share"] > 0.05]
md += ["", "Core %d busy beyond the proxy itself (foreign load, > 5 %% flagged): %s" % (
    $PROXY_CPU, "; ".join(f"{a} {b} +{c:.2f}" for a, b, c in foreign) if foreign else "none")]
if errs:
    md += ["", "Errors during load (test, target, non-2xx, socket errors): " + "; ".join(map(str, errs))]
text = "\n".join(md) + "\n"
open(out + ".md", "w").write(text)
json.dump(R, open(out + ".json", "w"), indent=2)
print(text)
print(f"written: {out}.md, {out}.json")
EOF
