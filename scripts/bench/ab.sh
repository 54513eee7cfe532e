#!/usr/bin/env bash
# Two commits of pgts side by side: the server CPU per transaction (see
# cpu-per-txn.sh) and TPS of one pgbench workload, rounds alternating between
# them so that other load on the machine hits both alike. The figure to
# judge a change of a few percent by; TPS alone moves ±15% run to run here.
#
#   bash scripts/bench/ab.sh BASE [HEAD] [-- start options] [--- pgbench options]
#   e.g. bash scripts/bench/ab.sh HEAD~3                       # connections: -n -C -S -c 4 -t 2000
#        bash scripts/bench/ab.sh main WORK -- --adapter bun --- -n -S -c 4 -T 5
#
# BASE and HEAD are commits (HEAD by default: the working tree as it is,
# uncommitted changes included). Each side gets a worktree under .tmp/ab
# (the working tree itself for the default HEAD), a fresh data directory
# initialised for pgbench (scale 1), and the fast configuration unless
# start options are given. ROUNDS (default 4) rounds; each prints one line
# per side, and the end prints each side's median.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BASE=${1:?usage: $0 BASE [HEAD] [-- start options] [--- pgbench options]}; shift
HEAD_REV=WORK
if [[ $# -gt 0 && $1 != -- && $1 != --- ]]; then HEAD_REV=$1; shift; fi
START=(--adapter inproc -c engine_placement=inline)
PGBENCH_ARGS=(-n -C -S -c 4 -t 2000)
if [[ ${1:-} == -- ]]; then
  shift; START=()
  while [[ $# -gt 0 && $1 != --- ]]; do START+=("$1"); shift; done
fi
if [[ ${1:-} == --- ]]; then shift; PGBENCH_ARGS=("$@"); fi
ROUNDS=${ROUNDS:-4}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
BUN=$ROOT/node_modules/.bin/bun
[ -x "$BUN" ] || npm install --no-audit --no-fund
bash scripts/ensure-postgres.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgts-ab.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for t in "$ROOT"/.tmp/ab/*; do [ -d "$t" ] && git -C "$ROOT" worktree remove --force "$t" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# tree REV: a directory holding that commit (the working tree for WORK).
tree() {
  if [[ $1 == WORK ]]; then echo "$ROOT"; return; fi
  local dir=$ROOT/.tmp/ab/$(git rev-parse --short "$1")
  if [ ! -d "$dir" ]; then
    git worktree add --detach --force "$dir" "$1" >/dev/null 2>&1
    ln -s "$ROOT/node_modules" "$dir/node_modules"
  fi
  echo "$dir"
}

# start NAME REV: a server of that commit; sets PORT_<NAME> and PID_<NAME>.
start() {
  local dir data port pid
  dir=$(tree "$2")
  data=$WORK/$1
  (cd "$dir" && "$BUN" src/bin/pgts.ts init -D "$data" >/dev/null 2>&1)
  (cd "$dir" && exec "$BUN" src/bin/pgts.ts start -D "$data" -p 0 "${START[@]}" \
    -c log_min_messages=warning >"$WORK/$1.log" 2>&1) &
  for _ in $(seq 300); do
    port=$(sed -n 4p "$data/postmaster.pid" 2>/dev/null || true)
    [[ -n $port && $port != 0 ]] && "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  pid=$(head -1 "$data/postmaster.pid")
  PIDS+=("$pid")
  "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s 1 -I dtGvp postgres >/dev/null 2>&1
  printf -v "PORT_$1" %s "$port"
  printf -v "PID_$1" %s "$pid"
  echo "$1: $2 in $dir, pid $pid, port $port"
}

start base "$BASE"
start head "$HEAD_REV"
echo "pgbench ${PGBENCH_ARGS[*]}; $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A CPU TPS
for side in base head; do # warm-up: JIT and caches, not counted
  port_var=PORT_$side
  "$PGBIN/pgbench" -h 127.0.0.1 -p "${!port_var}" -U postgres "${PGBENCH_ARGS[@]}" postgres >/dev/null 2>&1
done
for r in $(seq "$ROUNDS"); do
  for side in base head; do
    port_var=PORT_$side pid_var=PID_$side
    line=$(bash scripts/bench/cpu-per-txn.sh "${!pid_var}" "${!port_var}" "${PGBENCH_ARGS[@]}")
    cpu=$(grep -oP 'CPU \K\d+' <<<"$line")
    tps=$(grep -oP ', \K[\d.]+(?= tps)' <<<"$line")
    CPU[$side]+=" $cpu"
    TPS[$side]+=" ${tps%.*}"
    echo "round $r $side: $cpu µs CPU per transaction, ${tps%.*} tps"
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for side in base head; do
  echo "$side median: $(median "${CPU[$side]}") µs CPU per transaction, $(median "${TPS[$side]}") tps"
done
