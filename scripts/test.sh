#!/usr/bin/env bash
# The test run behind `npm test`: installs what the end-to-end tests need
# (PostgreSQL's client programs, when missing), runs bun test, and prints one
# closing line "N passed, N failed" from bun's own reports.
#
# With no arguments the test files are split into PGTS_TEST_SHARDS (default
# 2) bun test processes that run at once: most end-to-end tests wait on
# servers, timers and clients more than they compute, so two shards finish
# the suite in well under the time of one on a 2-CPU machine. Files are
# balanced by scripts/test-weights.tsv. Shard 1 prints as it goes; the
# others' reports follow when they are done. With arguments (files or
# filters) one bun test runs them, as before.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh || echo "warning: PostgreSQL client programs are missing; tests that need them will fail" >&2
bash scripts/ensure-openssl.sh || echo "warning: openssl is missing; the TLS tests will fail" >&2

shards=${PGTS_TEST_SHARDS:-2}
if [ "$#" -gt 0 ] || [ "$shards" -le 1 ]; then
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  ./node_modules/.bin/bun test --timeout 60000 "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  passed=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -n 1 | grep -Eo '[0-9]+')
  failed=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -n 1 | grep -Eo '[0-9]+')
  echo "${passed:-0} passed, ${failed:-0} failed"
  exit "$status"
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# Greedy balance: heaviest file first, each to the lightest shard so far.
find tests -name '*.test.ts' | sort | awk -v shards="$shards" -v dir="$dir" '
  FNR == NR {
    if ($0 !~ /^#/ && NF == 2) weight[$2] = $1
    next
  }
  { w = ($0 in weight) ? weight[$0] : 20; print w "\t" $0 }
' scripts/test-weights.tsv - | sort -t $'\t' -k1,1nr -k2 | awk -F '\t' -v shards="$shards" -v dir="$dir" '
  {
    best = 1
    for (s = 2; s <= shards; s++) if (load[s] < load[best]) best = s
    load[best] += $1
    print "./" $2 > (dir "/files." best)
  }
'

pids=()
for s in $(seq 1 "$shards"); do
  [ -s "$dir/files.$s" ] || continue
  if [ "$s" -eq 1 ]; then
    (./node_modules/.bin/bun test --timeout 60000 $(cat "$dir/files.$s") 2>&1 | tee "$dir/log.$s"
      exit "${PIPESTATUS[0]}") &
  else
    ./node_modules/.bin/bun test --timeout 60000 $(cat "$dir/files.$s") >"$dir/log.$s" 2>&1 &
  fi
  pids+=("$!:$s")
done

status=0
for entry in "${pids[@]}"; do
  wait "${entry%%:*}" || status=1
done
for s in $(seq 2 "$shards"); do
  [ -f "$dir/log.$s" ] || continue
  echo
  echo "==== shard $s of $shards ===="
  cat "$dir/log.$s"
done

passed=0
failed=0
for log in "$dir"/log.*; do
  p=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -n 1 | grep -Eo '[0-9]+')
  f=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -n 1 | grep -Eo '[0-9]+')
  # A shard that printed no summary ended abnormally: count it as a failure.
  if [ -z "$p" ] && [ -z "$f" ]; then f=1; status=1; fi
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
done
echo
echo "${passed} passed, ${failed} failed"
exit "$status"
