#!/usr/bin/env bash
# The test run behind `npm test`: installs what the end-to-end tests need
# (PostgreSQL's client programs, when missing), runs bun test, and prints one
# closing line "N passed, N failed" from bun's own reports.
#
# With no arguments the test files are split into PGTS_TEST_SHARDS (default
# 3) bun test processes that run at once: end-to-end tests wait on servers,
# timers and clients between their computing, so on a 2-CPU machine two
# shards finish the suite in well under the time of one, and three keep
# both CPUs busy (98% on 2026-12-07: 750 s against two shards' 872). Files are
# balanced by scripts/test-weights.tsv. Shard 1 prints as it goes; the
# others' reports follow when they are done. With arguments (files or
# filters) one bun test runs them, as before.
#
# The end-to-end files of scripts/test-deno.txt, or the directories or files
# in PGTS_TEST_DENO (empty: none), run a second time against the server
# under Deno (the Deno pass): with PGTS_TEST_RUNTIME=deno,
# tests/helpers/pgts.ts starts every server a test does not give a runtime
# as `deno run -A mod.ts start`. Each file's Deno run
# is an item of its own in the balance (weight key `deno:FILE`), run by its
# shard in a second bun test after the first; the closing line counts both.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh || echo "warning: PostgreSQL client programs are missing; tests that need them will fail" >&2
bash scripts/ensure-openssl.sh || echo "warning: openssl is missing; the TLS tests will fail" >&2

# The tests' data directories, sockets and scratch files go to a directory
# of their own on a RAM file system (/dev/shm) where there is one, removed at
# the end. The suite makes and removes clusters of ~1,000 files hundreds of
# times, and on ext4 each new inode then searches past the recently deleted
# ones (find_inode_bit, recently_deleted): in a run with the whole suite under
# Deno too, a seventh of all CPU went there. PGTS_TEST_TMPDIR names another
# parent; empty keeps the caller's TMPDIR.
scratch_parent=${PGTS_TEST_TMPDIR-/dev/shm}
scratch=
# Not on a noexec mount (Docker mounts /dev/shm so): the power-cut test loads
# a shim it builds there with LD_PRELOAD.
if [ -n "$scratch_parent" ] && [ -d "$scratch_parent" ] && [ -w "$scratch_parent" ] &&
  ! findmnt -no OPTIONS -T "$scratch_parent" 2>/dev/null | grep -qw noexec; then
  # 1777 like /tmp: the unprivileged user that runs PostgreSQL 15 reaches its directories.
  if scratch=$(mktemp -d "$scratch_parent/pgts-tests.XXXXXX") && chmod 1777 "$scratch"; then
    export TMPDIR=$scratch
  else
    scratch=
  fi
fi
cleanup() {
  # Tests that mount a file system below it (the full-disk tests) unmount their own.
  [ -z "$scratch" ] || rm -rf "$scratch"
}

shards=${PGTS_TEST_SHARDS:-3}
if [ "$#" -gt 0 ] || [ "$shards" -le 1 ]; then
  log=$(mktemp)
  trap 'rm -f "$log"; cleanup' EXIT
  ./node_modules/.bin/bun test --timeout 60000 "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  passed=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -n 1 | grep -Eo '[0-9]+')
  failed=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -n 1 | grep -Eo '[0-9]+')
  echo "${passed:-0} passed, ${failed:-0} failed"
  exit "$status"
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"; cleanup' EXIT

# The Deno pass: the files listed in scripts/test-deno.txt (why those: its
# header), or the directories and files PGTS_TEST_DENO names (empty: none).
# Not run twice even when named: files whose servers do not follow
# PGTS_TEST_RUNTIME (the HTTP tests that serve from bun test's own process)
# and files that already start the server under Deno themselves.
deno_skip='^tests/http/(admin|input|neon|deno)\.test\.ts$|^tests/e2e/upstream/http_requests_share_the_pool\.test\.ts$|^tests/e2e/postmaster/deno\.test\.ts$|^tests/e2e/sql/other_runtimes_serve_the_same_sql\.test\.ts$'
if [ -n "${PGTS_TEST_DENO+set}" ]; then
  deno_paths=$PGTS_TEST_DENO
else
  deno_paths=$(grep -Ev '^(#|$)' scripts/test-deno.txt)
fi

# One item per run of a file: "bun FILE" for every file, "deno FILE" for the
# files of the Deno pass.
{
  find tests -name '*.test.ts' | sort | sed 's/^/bun\t/'
  for d in $deno_paths; do
    find "$d" -name '*.test.ts' | sort | grep -Ev "$deno_skip" | sed 's/^/deno\t/'
  done
} >"$dir/items"

# Greedy balance: heaviest run first, each to the lightest shard so far. A
# file's Deno run not in the weights counts as its Bun run does; a file not
# listed at all counts as 20 s.
awk -F '\t' '
  FNR == NR {
    if ($0 !~ /^#/ && NF == 2) weight[$2] = $1
    next
  }
  {
    key = ($1 == "deno") ? "deno:" $2 : $2
    w = (key in weight) ? weight[key] : (($2 in weight) ? weight[$2] : 20)
    print w "\t" $1 "\t" $2
  }
' scripts/test-weights.tsv "$dir/items" | sort -t $'\t' -k1,1nr -k3 | awk -F '\t' -v shards="$shards" -v dir="$dir" '
  {
    best = 1
    for (s = 2; s <= shards; s++) if (load[s] < load[best]) best = s
    load[best] += $1
    print "./" $3 > (dir "/files." best "." $2)
  }
'

# A shard's Bun runs, then its Deno runs, each one bun test; shard 1 prints
# as it goes, the others write their logs.
run_shard() {
  local s=$1 status=0 runtime
  for runtime in bun deno; do
    [ -s "$dir/files.$s.$runtime" ] || continue
    # The JUnit report is for the files' times (PGTS_TEST_TIMES below).
    local junit=(--reporter=junit --reporter-outfile="$dir/junit.$s.$runtime.xml")
    if [ "$s" -eq 1 ]; then
      PGTS_TEST_RUNTIME=$runtime ./node_modules/.bin/bun test --timeout 60000 "${junit[@]}" \
        $(cat "$dir/files.$s.$runtime") 2>&1 | tee "$dir/log.$s.$runtime"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    else
      PGTS_TEST_RUNTIME=$runtime ./node_modules/.bin/bun test --timeout 60000 "${junit[@]}" \
        $(cat "$dir/files.$s.$runtime") >"$dir/log.$s.$runtime" 2>&1 || status=1
    fi
  done
  return "$status"
}

pids=()
for s in $(seq 1 "$shards"); do
  run_shard "$s" &
  pids+=("$!:$s")
done

status=0
for entry in "${pids[@]}"; do
  wait "${entry%%:*}" || status=1
done
for s in $(seq 2 "$shards"); do
  for runtime in bun deno; do
    [ -f "$dir/log.$s.$runtime" ] || continue
    echo
    echo "==== shard $s of $shards, server under $runtime ===="
    cat "$dir/log.$s.$runtime"
  done
done

# PGTS_TEST_TIMES=FILE: each file's wall time in this run (its hooks and
# servers included), as scripts/test-weights.tsv's lines, heaviest first.
if [ -n "${PGTS_TEST_TIMES:-}" ]; then
  for x in "$dir"/junit.*.xml; do
    [ -f "$x" ] || continue
    runtime=${x%.xml}
    runtime=${runtime##*.}
    grep -o '<testsuite name="tests/[^"]*" file="[^"]*"[^>]* time="[0-9.]*"' "$x" |
      sed -E 's/.* file="([^"]*)".* time="([0-9.]*)"/\2\t\1/' |
      awk -F '\t' -v r="$runtime" '{ printf "%d\t%s%s\n", $1 + 0.5, (r == "deno" ? "deno:" : ""), $2 }'
  done | sort -t $'\t' -k1,1nr >"$PGTS_TEST_TIMES"
fi

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
