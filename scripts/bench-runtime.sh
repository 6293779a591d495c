#!/usr/bin/env bash
# Runs the runtime benchmarks beside their Erlang anchors, alternating, ROUNDS times.
# Needs Erlang (apt-get install -y erlang-nox) and ../shared/bench/erlang.
# Prints one line per program and round; docs/benchmarks.md quotes the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
ERL_SRC=${ERL_SRC:-../shared/bench/erlang}
ERL_OUT=${ERL_OUT:-/tmp/erlbench}
mkdir -p "$ERL_OUT"
erlc -o "$ERL_OUT" "$ERL_SRC"/*.erl
cargo build --release -q -p runtime --example ring --example pingpong --example dist_pingpong
EX=target/release/examples
for r in $(seq 1 "$ROUNDS"); do
  echo "# round $r"
  /usr/bin/time -f "rss_kb=%M" "$EX/ring" 1000 1000 5 2>&1 | paste -sd' '
  (cd "$ERL_OUT" && /usr/bin/time -f "rss_kb=%M" erl -noshell -pa "$ERL_OUT" -run ring main 1000 1000 5 2>&1 | paste -sd' ')
  "$EX/pingpong" 100000 5
  (cd "$ERL_OUT" && erl -noshell -pa "$ERL_OUT" -run pingpong main 100000 5)
  "$EX/dist_pingpong" 10000
  (cd "$ERL_OUT" && erl -sname pong -setcookie benchcookie -noshell -s dist serve & echo $! > /tmp/erl-pong.pid)
  sleep 2
  (cd "$ERL_OUT" && erl -sname ping -setcookie benchcookie -noshell -pa "$ERL_OUT" -run dist client "pong@$(hostname -s)" 10000)
  kill "$(cat /tmp/erl-pong.pid)" 2>/dev/null || true
  pkill -f "sname pong" 2>/dev/null || true
done
