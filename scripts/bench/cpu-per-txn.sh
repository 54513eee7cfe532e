#!/usr/bin/env bash
# Server CPU per transaction: the CPU time (user + system, all threads) a
# server process spends over one pgbench run, divided by the transactions
# pgbench completed. Unlike TPS it holds up on a machine shared with other
# work, which makes it the figure to compare servers by there.
#
#   bash scripts/bench/cpu-per-txn.sh PID PORT [PGBENCH ARGS...]
#   e.g. bash scripts/bench/cpu-per-txn.sh "$(head -1 data/postmaster.pid)" 5432 -n -C -S -c 4 -t 2000
#
# Counts only PID's own process (a server with child processes needs one
# call per child, or a sum); run it twice and keep the second (JIT warm-up).
set -euo pipefail
PID=${1:?usage: $0 PID PORT [PGBENCH ARGS...]}; PORT=${2:?port}; shift 2
PGBENCH=${PGBENCH:-/usr/lib/postgresql/15/bin/pgbench}
TICKS=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
before=$(cpu)
out=$("$PGBENCH" -h 127.0.0.1 -p "$PORT" -U "${PGUSER:-postgres}" "$@" "${PGDATABASE:-postgres}" 2>&1) || {
  echo "$out" >&2
  exit 1
}
after=$(cpu)
n=$(grep -oP 'actually processed: \K\d+' <<<"$out")
tps=$(grep -oP 'tps = \K[\d.]+' <<<"$out")
echo "pgbench $*: $n transactions, $tps tps, server CPU $(((after - before) * 1000000 / TICKS / n)) µs per transaction"
