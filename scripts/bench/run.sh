#!/usr/bin/env bash
# The side-by-side bench from a fresh clone, in one command:
#   bash scripts/bench/run.sh [--quick] [--adapter inproc:fsync=off,subprocess:fsync=off,deno+inproc:fsync=off] [--write]
# (pgts fsyncs by default; pglite-socket never does: compare like with like)
# Installs what is missing (node_modules, PostgreSQL 15's programs), then
# runs scripts/bench/compare.ts, which starts pgts, pglite-socket and
# PostgreSQL 15 on loopback with the reference scripts of ../shared/bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x node_modules/.bin/bun ] || npm install --no-audit --no-fund  # not npm ci: see the README
bash scripts/ensure-postgres.sh
[ -d ../shared/bench ] || [ -n "${BENCH_SHARED:-}" ] || {
  echo "the reference scripts are missing: expected ../shared/bench (or set BENCH_SHARED)" >&2
  exit 1
}
exec ./node_modules/.bin/bun scripts/bench/compare.ts "$@"
