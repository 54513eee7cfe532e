#!/usr/bin/env bash
# The test run behind `npm test`: installs what the end-to-end tests need
# (PostgreSQL's client programs, when missing), runs bun test, and prints one
# closing line "N passed, N failed" from bun's own report.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh || echo "warning: PostgreSQL client programs are missing; tests that need them will fail" >&2
bash scripts/ensure-openssl.sh || echo "warning: openssl is missing; the TLS tests will fail" >&2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
./node_modules/.bin/bun test --timeout 60000 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -n 1 | grep -Eo '[0-9]+')
failed=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -n 1 | grep -Eo '[0-9]+')
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
