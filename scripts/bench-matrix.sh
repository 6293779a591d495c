#!/usr/bin/env bash
# Benchmark matrix: for each node count, starts that many `paxoskv node` processes on free
# loopback ports with a cookie, runs `paxoskv bench --json` for each read ratio and client
# count, and appends one JSON line per run to OUT: the bench report plus
#   system "paxoskv", nodes, server_cpu_s (the nodes' utime+stime over the run, from
#   /proc/PID/stat), cpu_per_op_us ((server_cpu_s + the bench's cpu_user_s + cpu_sys_s)
#   / ops), host_busy_pct and other_pct (the whole host's busy share over the run, and the
#   part of it that was neither the nodes nor the bench: foreign load), latencies (the
#   `bench --latencies` file, relative to OUT's folder).
# Nodes are stopped after each node count and on exit (trap), by their process ids.
#
#   scripts/bench-matrix.sh OUT.jsonl
#     env: NODES="3 5 7" CLIENTS="1 16 64 256" READ_RATIOS="0.5" DURATION=10 KEYS=10000
#          VALUE_SIZE=16 COOKIE=benchmatrix PAXOSKV=target/release/paxoskv
#          FIRST=1 (the bench's server list starts at s2, a follower: client i starts at
#          server i of the list, so one client then talks to a follower, not to s1, the
#          leader; the row gets "first_server": "s2")
#          PAXOS=distinguished|basic (the nodes' --paxos; the row gets "paxos")
#   scripts/bench-matrix.sh --etcd RESULTS.txt OUT.jsonl
#     appends etcd-load's RESULT lines (../shared/bench/etcd/run.sh) to OUT in the same
#     shape (system "etcd", nodes 3; put = read_ratio 0, get = 1, sget = 1 with
#     "serializable": true); latency percentiles are taken from its p50/p90/p99/p999.
set -euo pipefail
cd "$(dirname "$0")/.."

etcd_to_jsonl() { # RESULTS.txt OUT
  python3 - "$1" "$2" <<'PY'
import json, sys
src, out = sys.argv[1], sys.argv[2]
rows = []
for line in open(src):
    if not line.startswith("RESULT "):
        continue
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    op, secs, ok = f["op"], float(f["secs"]), int(f["ok"])
    summary = {"count": ok, "throughput": float(f["ops_per_s"]),
               **{k + "_us": round(float(f[k + "_ms"]) * 1000) for k in ("p50", "p90", "p99", "p999")}}
    empty = {"count": 0, "throughput": 0.0, "p50_us": 0, "p90_us": 0, "p99_us": 0, "p999_us": 0}
    is_read = op in ("get", "sget")
    rows.append({"system": "etcd", "label": f["label"], "serializable": op == "sget",
                 "nodes": 3, "clients": int(f["clients"]), "duration_s": secs,
                 "read_ratio": 1.0 if is_read else 0.0, "keys": None, "value_size": None,
                 "ops": ok, "throughput": float(f["ops_per_s"]),
                 "read": summary if is_read else empty, "write": empty if is_read else summary,
                 "errors": int(f["errs"])})
with open(out, "a") as o:
    for r in rows:
        o.write(json.dumps(r) + "\n")
print(f"appended {len(rows)} etcd rows to {out}")
PY
}

if [[ ${1:-} == --etcd ]]; then
  [[ $# == 3 ]] || { echo "usage: $0 --etcd RESULTS.txt OUT.jsonl" >&2; exit 2; }
  etcd_to_jsonl "$2" "$3"
  exit 0
fi
[[ $# == 1 ]] || { echo "usage: $0 OUT.jsonl (or --etcd RESULTS.txt OUT.jsonl)" >&2; exit 2; }

OUT=$(realpath -m "$1")
NODES=${NODES:-3 5 7}
CLIENTS=${CLIENTS:-1 16 64 256}
READ_RATIOS=${READ_RATIOS:-0.5}
DURATION=${DURATION:-10}
KEYS=${KEYS:-10000}
VALUE_SIZE=${VALUE_SIZE:-16}
COOKIE=${COOKIE:-benchmatrix}
# The cookie goes in the environment, never argv (ps shows argv to every user).
export PAXOSKV_COOKIE=$COOKIE
PAXOSKV=${PAXOSKV:-target/release/paxoskv}
PAXOS=${PAXOS:-distinguished}
OUTDIR=$(dirname "$OUT")
LATDIR=$OUTDIR/latencies
RUNDIR=$(mktemp -d /tmp/bench-matrix.XXXXXX)
mkdir -p "$OUTDIR" "$LATDIR"

if [[ ! -x $PAXOSKV || ${BUILD:-1} == 1 ]]; then
  cargo build --release -q --bin paxoskv
fi

NODE_PIDS=()
stop_nodes() {
  local pid
  for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${NODE_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  NODE_PIDS=()
}
trap 'stop_nodes; rm -rf "$RUNDIR"' EXIT
trap 'exit 130' INT TERM

free_ports() { # N: N distinct free loopback ports (bound to port 0, then released)
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# CPU ticks of the whole host: busy total.
host_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
# utime+stime ticks of the running nodes (fields 14 and 15; the name field has no spaces).
node_ticks() {
  local t=0 pid
  for pid in "${NODE_PIDS[@]}"; do t=$((t + $(awk '{print $14+$15}' "/proc/$pid/stat"))); done
  echo "$t"
}

start_nodes() { # N: starts s1..sN, waits for each to print "ready"; sets SERVERS
  local n=$1 i ports peers="" deadline
  read -r -a ports <<< "$(free_ports "$n")"
  for i in $(seq 1 "$n"); do peers+="${peers:+,}s$i=127.0.0.1:${ports[$((i-1))]}"; done
  for i in $(seq 1 "$n"); do
    "$PAXOSKV" node --name "s$i" --listen "127.0.0.1:${ports[$((i-1))]}" --peers "$peers" \
      --paxos "$PAXOS" > "$RUNDIR/s$i.out" 2> "$RUNDIR/s$i.log" &
    NODE_PIDS+=("$!")
  done
  deadline=$(( $(date +%s) + 30 ))
  for i in $(seq 1 "$n"); do
    until grep -q '^ready' "$RUNDIR/s$i.out" 2>/dev/null; do
      if (( $(date +%s) > deadline )) || ! kill -0 "${NODE_PIDS[$((i-1))]}" 2>/dev/null; then
        echo "node s$i did not start:" >&2; tail -5 "$RUNDIR/s$i.log" >&2; exit 1
      fi
      sleep 0.1
    done
  done
  SERVERS=$peers
}

HZ=$(getconf CLK_TCK)
for n in $NODES; do
  start_nodes "$n"
  echo "# $n nodes: $SERVERS" >&2
  for ratio in $READ_RATIOS; do
    for c in $CLIENTS; do
      lat="$LATDIR/n$n-r$ratio-c$c-$(date +%H%M%S).txt"
      read -r hb0 ht0 < <(host_ticks); s0=$(node_ticks)
      order=$SERVERS
      if [[ ${FIRST:-0} != 0 ]]; then
        IFS=, read -r -a parts <<< "$SERVERS"
        order=$(IFS=,; echo "${parts[*]:$FIRST},${parts[*]:0:$FIRST}")
      fi
      json=$("$PAXOSKV" bench --servers "$order" --clients "$c" \
        --duration "$DURATION" --read-ratio "$ratio" --keys "$KEYS" --value-size "$VALUE_SIZE" \
        --json --latencies "$lat")
      read -r hb1 ht1 < <(host_ticks); s1=$(node_ticks)
      python3 - "$json" "$n" "$s0" "$s1" "$hb0" "$ht0" "$hb1" "$ht1" "$HZ" \
          "$(realpath --relative-to="$OUTDIR" "$lat")" "${order%%=*}" "$PAXOS" <<'PY' | tee -a "$OUT"
import json, sys
r = json.loads(sys.argv[1])
n, s0, s1, hb0, ht0, hb1, ht1, hz = map(int, sys.argv[2:10])
server = (s1 - s0) / hz
bench = r["cpu_user_s"] + r["cpu_sys_s"]
total = max(ht1 - ht0, 1)
host = 100 * (hb1 - hb0) / total
other = max(host - 100 * ((s1 - s0) + bench * hz) / total, 0)
r = {"system": "paxoskv", "nodes": n, **r, "server_cpu_s": round(server, 3),
     "cpu_per_op_us": round((server + bench) / max(r["ops"], 1) * 1e6, 1),
     "host_busy_pct": round(host, 1), "other_pct": round(other, 1), "latencies": sys.argv[10],
     "first_server": sys.argv[11], "paxos": sys.argv[12]}
print(json.dumps(r))
PY
    done
  done
  stop_nodes
done
