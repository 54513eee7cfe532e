#!/usr/bin/env bash
# Runs PostgreSQL 18's own regression tests (src/test/regress: each test of
# parallel_schedule in its order, one at a time, through psql) against a
# fresh pgts server, and compares each output with PostgreSQL 18's expected
# one.
#
#   scripts/suites/pg-regress.sh [REGRESS_DIR]       (or PG_REGRESS_DIR=...)
#   ADAPTER=subprocess scripts/suites/pg-regress.sh   pgts with --adapter subprocess
#   TESTS='json jsonb insert' scripts/suites/pg-regress.sh   only these (test_setup runs first)
#
# REGRESS_DIR holds sql/, expected/, data/ and parallel_schedule of
# PostgreSQL 18's src/test/regress. Without one, the sources come from
# Debian's postgresql-18 source package (sid's, through a private apt
# configuration, as root) into ${TMPDIR:-/tmp}/pg-regress-18, once.
#
# What differs from pg_regress: the client is psql 15 (no \bind, \parse,
# \getenv…, other \d footers: those tests differ for that alone); C test
# functions of regress.so do not load (the engine runs no native code);
# `COPY … FROM :'filename'` runs as psql's \copy (the engine reads no host
# files); psql_pipeline is left out (psql 15 runs its \watch for ever).
# Prints DIFF lines (diff lines against the expected output) and the totals;
# KEEP=1 keeps the outputs ($WORK/out) to read.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=${1:-${PG_REGRESS_DIR:-}}
if [ -z "$SRC" ]; then
  SRC="${TMPDIR:-/tmp}/pg-regress-18"
  if [ ! -f "$SRC/parallel_schedule" ]; then
    [ "$(id -u)" = 0 ] || { echo "fetching PostgreSQL 18's sources needs root (apt-get source)" >&2; exit 2; }
    echo "# fetching PostgreSQL 18's regression tests (Debian's postgresql-18 source) into $SRC"
    apt_dir="$WORK/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
    echo "deb-src [trusted=yes] http://deb.debian.org/debian sid main" >"$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir")
    (cd "$apt_dir" && apt-get "${apt_opts[@]}" update -qq &&
      apt-get "${apt_opts[@]}" source --download-only -qq postgresql-18) >"$WORK/apt.log" 2>&1 ||
      { tail -n 20 "$WORK/apt.log"; exit 1; }
    tarball=$(ls "$apt_dir"/postgresql-18_*.orig.tar.* | head -n 1)
    top=$(tar tf "$tarball" | head -n 1 | cut -d/ -f1)
    mkdir -p "$SRC"
    tar xf "$tarball" -C "$WORK" "$top/src/test/regress/sql" "$top/src/test/regress/expected" \
      "$top/src/test/regress/data" "$top/src/test/regress/parallel_schedule" || exit 1
    cp -r "$WORK/$top/src/test/regress/." "$SRC/"
  fi
fi
SRC=$(cd "$SRC" && pwd)
[ -f "$SRC/parallel_schedule" ] || { echo "no parallel_schedule in $SRC" >&2; exit 2; }

start_server trust 0 fsync=off || exit 1
psql_admin -c "CREATE DATABASE regression" >/dev/null || exit 1

if [ -n "${TESTS:-}" ]; then
  LIST="test_setup ${TESTS}"
else
  LIST=$(grep '^test:' "$SRC/parallel_schedule" | sed 's/^test://' | tr ' ' '\n' | grep -v '^$' | grep -vx psql_pipeline)
fi

# `COPY x FROM :'filename'` (the file psql's variable names) as psql's \copy of that file.
COPY_TO_CLIENT='
/^\\set filename :abs_srcdir '"'"'/ { p = $0; sub(/^\\set filename :abs_srcdir '"'"'/, "", p); sub(/'"'"'.*$/, "", p); fn = src p }
/^\\set filename :abs_builddir '"'"'/ { p = $0; sub(/^\\set filename :abs_builddir '"'"'/, "", p); sub(/'"'"'.*$/, "", p); fn = bld p }
/^(COPY|copy) .* (FROM|from|TO|to) :'"'"'filename'"'"'.*;[ \t]*$/ {
  line = $0; sub(/;[ \t]*$/, "", line); sub(/:'"'"'filename'"'"'/, "'"'"'" fn "'"'"'", line)
  print "\\copy " substr(line, 6); next
}
{ print }'
to_client() { awk -v src="$SRC" -v bld="$WORK/build" "$COPY_TO_CLIENT" "$1"; }

# pg_regress's environment: its time zone, date style, interval style and
# the settings it gives its database.
export PG_ABS_SRCDIR=$SRC PG_ABS_BUILDDIR=$WORK/build PG_LIBDIR=$WORK/nolib PG_DLSUFFIX=.so
export PGTZ=America/Los_Angeles PGDATESTYLE="Postgres, MDY" PGOPTIONS="-c intervalstyle=postgres_verbose"
SETTINGS="SET lc_messages TO 'C'; SET lc_monetary TO 'C'; SET lc_numeric TO 'C'; SET lc_time TO 'C'; SET bytea_output TO 'hex'; SET timezone_abbreviations TO 'Default';"
mkdir -p "$WORK/build/results" "$WORK/out"

SAME=0 DIFFER=0
START=$(date +%s)
for t in $LIST; do
  # A test that ended the cluster (its crash cycle) fails alone, not the next ones.
  for _ in $(seq 1 120); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.5; done
  out="$WORK/out/$t.out"
  { echo "$SETTINGS"; to_client "$SRC/sql/$t.sql"; } |
    timeout "${TEST_TIMEOUT:-300}" psql -X -a -q -h 127.0.0.1 -p "$PORT" -U postgres -d regression \
      -v HIDE_TABLEAM=on -v HIDE_TOAST_COMPRESSION=on >"$out" 2>&1
  best=
  for e in "$SRC/expected/$t.out" "$SRC"/expected/"${t}"_[0-9].out; do
    [ -f "$e" ] || continue
    n=$(diff <(to_client "$e") <(tail -n +2 "$out") | grep -c '^[<>]')
    if [ -z "$best" ] || [ "$n" -lt "$best" ]; then best=$n; fi
  done
  if [ "${best:-1}" = 0 ]; then
    SAME=$((SAME + 1))
  else
    DIFFER=$((DIFFER + 1))
    echo "DIFF $t (${best:-no expected output} lines)"
  fi
done
if grep -q "terminating any other active server processes" "$WORK/server.log"; then
  echo "# the cluster went through its crash cycle:"
  grep -B3 "terminating any other active server processes" "$WORK/server.log" | head -n 20 | sed 's/^/#   /'
fi
echo "PostgreSQL 18's regression tests on $SERVER${ADAPTER:+ (--adapter $ADAPTER)}: $SAME of $((SAME + DIFFER)) as expected, $DIFFER differ ($(($(date +%s) - START)) s)"
[ "${KEEP:-0}" = 1 ] && echo "# outputs in $WORK/out, server log $WORK/server.log"
exit 0
