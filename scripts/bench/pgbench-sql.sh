#!/usr/bin/env bash
# pgbench through pgts (Bun subprocess adapter) next to pglite-socket (bun) and
# PostgreSQL 15, in one run: select-only TPS with 1 and 4 clients, and the
# connection rate (-C, a new connection per transaction) with 4 clients.
# Prints TPS per server and the ratios pgts/pg and pgts/pglite-socket.
#
#   scripts/bench/pgbench-sql.sh            # DUR=10 ROUNDS=1
#   DUR=5 ROUNDS=3 scripts/bench/pgbench-sql.sh
#
# The order of the servers rotates every round; each result is the median over rounds.
# Needs ../shared/bench (BENCH_SHARED) for pg-reference.sh and peer-pglite-socket.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${BENCH_SHARED:-$ROOT/../shared/bench}
export PATH=/usr/lib/postgresql/15/bin:$PATH PGUSER=postgres PGDATABASE=postgres PGHOST=127.0.0.1 PGSSLMODE=disable
DUR=${DUR:-10}; ROUNDS=${ROUNDS:-1}
OUT=$(mktemp -d -t pgts-pgbench.XXXXXX)
declare -A PORT=([pg]=25442 [pglite]=25443 [pgts]=25444) WRAP
SERVERS=(pgts pglite pg)
TESTS=("select_c1:-S -c 1" "select_c4:-S -c 4" "connect_c4:-C -S -c 4")

cleanup() {
  for s in "${SERVERS[@]}"; do
    [[ -n ${WRAP[$s]:-} ]] && kill -TERM "${WRAP[$s]}" 2>/dev/null && wait "${WRAP[$s]}" 2>/dev/null
  done
  rm -rf "$OUT"
}
trap cleanup EXIT

ready() { for _ in $(seq 600); do psql -p "$1" -Atc 'select 1' >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

"$B/pg-reference.sh" "${PORT[pg]}" >"$OUT/pg.log" 2>&1 & WRAP[pg]=$!
"$B/peer-pglite-socket.sh" bun "${PORT[pglite]}" >"$OUT/pglite.log" 2>&1 & WRAP[pglite]=$!
"$ROOT/node_modules/.bin/bun" "$ROOT/mod.ts" init -D "$OUT/pgts" >"$OUT/pgts-init.log" 2>&1
"$ROOT/node_modules/.bin/bun" "$ROOT/mod.ts" start -D "$OUT/pgts" -p "${PORT[pgts]}" \
  -c "unix_socket_directories=$OUT/pgts" >"$OUT/pgts.log" 2>&1 & WRAP[pgts]=$!
for s in "${SERVERS[@]}"; do
  ready "${PORT[$s]}" || { echo "$s did not start" >&2; cat "$OUT/$s.log" >&2; exit 1; }
  # Server-side data generation: pglite-socket does not survive pgbench's client-side COPY.
  pgbench -p "${PORT[$s]}" -i -s 1 -I dtGvp >"$OUT/init-$s.log" 2>&1
done

declare -A TPS
for ((r = 0; r < ROUNDS; r++)); do
  for t in "${TESTS[@]}"; do
    name=${t%%:*}; args=${t#*:}
    for ((i = 0; i < ${#SERVERS[@]}; i++)); do
      s=${SERVERS[$(((i + r) % ${#SERVERS[@]}))]}
      # shellcheck disable=SC2086
      line=$(pgbench -n -p "${PORT[$s]}" -T "$DUR" $args 2>&1 | tee "$OUT/$name-$s-$r.log" |
        grep -E '^tps = ' | sed -E 's/tps = ([0-9.]+).*/\1/')
      failed=$(grep -oE 'failed transactions: [0-9]+' "$OUT/$name-$s-$r.log" | grep -oE '[0-9]+$' || echo "?")
      TPS[$name,$s]="${TPS[$name,$s]:-} ${line:-0}"
      echo "round $r $name $s tps=${line:-0} failed=$failed" >&2
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '%-12s %12s %14s %12s %10s %14s\n' test pgts pglite-socket postgres pgts/pg pgts/pglite
for t in "${TESTS[@]}"; do
  name=${t%%:*}
  a=$(echo "${TPS[$name,pgts]}" | median); b=$(echo "${TPS[$name,pglite]}" | median); c=$(echo "${TPS[$name,pg]}" | median)
  awk -v n="$name" -v a="$a" -v b="$b" -v c="$c" \
    'BEGIN {printf "%-12s %12.0f %14.0f %12.0f %10.3f %14.3f\n", n, a, b, c, (c > 0 ? a / c : 0), (b > 0 ? a / b : 0)}'
done
