#!/usr/bin/env bash
# Runs the runtime benchmarks beside their Erlang anchors, alternating, ROUNDS times:
#   ring 1000 processes x 1000 rounds (per_hop_ns, spawn_us, peak RSS), pingpong 100,000
#   round trips (per_roundtrip_ns), dist_pingpong 10,000 round trips between two OS
#   processes on loopback (per_roundtrip_us; Erlang distribution for the anchor).
# Needs Erlang (apt-get install -y erlang-nox) and ../shared/bench/erlang.
# Prints one line per program and round, then a table of medians with the ratio
# runtime/Erlang (below 1 means the runtime is faster or smaller). OUT=FILE keeps the raw
# lines (default /tmp/bench-runtime.txt). docs/benchmarks.md quotes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
ERL_SRC=${ERL_SRC:-../shared/bench/erlang}
ERL_OUT=${ERL_OUT:-/tmp/erlbench}
OUT=${OUT:-/tmp/bench-runtime.txt}
mkdir -p "$ERL_OUT"
: > "$OUT"
erlc -o "$ERL_OUT" "$ERL_SRC"/*.erl
cargo build --release -q -p runtime --example ring --example pingpong --example dist_pingpong
EX=$PWD/target/release/examples
HOST=$(hostname -s)

# epmd (Erlang's port mapper) is started by the first `erl -sname`; stop it at the end
# only if it was not running before.
EPMD_WAS_RUNNING=0
epmd -names >/dev/null 2>&1 && EPMD_WAS_RUNNING=1
PONG_PID=""
cleanup() {
  if [[ -n $PONG_PID ]]; then kill "$PONG_PID" 2>/dev/null || true; fi
  if [[ $EPMD_WAS_RUNNING == 0 ]]; then epmd -kill >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

record() { tee -a "$OUT"; }

erl_dist_round() {
  (cd "$ERL_OUT" && exec erl -sname pong -setcookie benchcookie -noshell -s dist serve) &
  PONG_PID=$!
  local deadline=$(( $(date +%s) + 20 ))
  until epmd -names 2>/dev/null | grep -q '^name pong '; do
    if (( $(date +%s) > deadline )); then echo "erlang pong node did not register" >&2; exit 1; fi
    sleep 0.1
  done
  (cd "$ERL_OUT" && erl -sname ping -setcookie benchcookie -noshell -pa "$ERL_OUT" \
      -run dist client "pong@$HOST" 10000) | record
  # the client stops the pong node (it sends `stop`); make sure it is gone
  for _ in $(seq 1 50); do kill -0 "$PONG_PID" 2>/dev/null || break; sleep 0.1; done
  kill "$PONG_PID" 2>/dev/null || true
  wait "$PONG_PID" 2>/dev/null || true
  PONG_PID=""
}

for r in $(seq 1 "$ROUNDS"); do
  echo "# round $r ($(uptime | sed 's/.*load/load/'))" | record
  /usr/bin/time -f "rss_kb=%M" "$EX/ring" 1000 1000 5 2>&1 | paste -sd' ' | record
  (cd "$ERL_OUT" && /usr/bin/time -f "rss_kb=%M" erl -noshell -pa "$ERL_OUT" -run ring main 1000 1000 5 2>&1 | paste -sd' ') | record
  "$EX/pingpong" 100000 5 | record
  (cd "$ERL_OUT" && erl -noshell -pa "$ERL_OUT" -run pingpong main 100000 5) | record
  "$EX/dist_pingpong" 10000 | record
  erl_dist_round
done

python3 - "$OUT" <<'PY'
import re, statistics, sys
vals = {}
for line in open(sys.argv[1]):
    m = re.match(r"(runtime|erlang) (ring|pingpong|dist_pingpong|dist pingpong)\b", line)
    if not m:
        continue
    side, prog = m.group(1), m.group(2).replace("dist pingpong", "dist_pingpong")
    for k, v in re.findall(r"(\w+)=([0-9.]+)(?=\s|$)", line):
        vals.setdefault((prog, k, side), []).append(float(v))
rows = [("ring", "per_hop_ns", "ring: ns per hop"), ("ring", "spawn_us", "ring: spawn 1000 processes, µs"),
        ("ring", "rss_kb", "ring: peak RSS, KiB"), ("pingpong", "per_roundtrip_ns", "pingpong: ns per round trip"),
        ("dist_pingpong", "per_roundtrip_us", "TCP pingpong: µs per round trip")]
print(f"{'measure':<34} {'runtime':>10} {'erlang':>10} {'ratio':>7}  (medians of {sys.argv[1]})")
for prog, key, name in rows:
    a, b = vals.get((prog, key, "runtime")), vals.get((prog, key, "erlang"))
    if not a or not b:
        print(f"{name:<34} {'?':>10} {'?':>10}")
        continue
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{name:<34} {ma:>10.1f} {mb:>10.1f} {ma / mb:>7.2f}")
PY
