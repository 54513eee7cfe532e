#!/usr/bin/env bash
# Runs node-postgres's integration suite (brianc/node-postgres,
# packages/pg/test/integration/**/*-tests.js, one `node FILE` process per
# file as its Makefile's test-integration does) against a fresh pgts server,
# or PostgreSQL 15.
#
#   scripts/suites/node-postgres.sh [CHECKOUT]       (or NODE_POSTGRES_DIR=CHECKOUT)
#   SERVER=pg15 scripts/suites/node-postgres.sh ...   the same against PostgreSQL 15
#   ADAPTER=inproc scripts/suites/node-postgres.sh ... pgts with --adapter inproc
#   FILES='client/api-tests.js ...'                   only these files (under test/integration)
#
# Installs the monorepo's packages in the checkout (npm install, then
# tsc --build for pg-protocol) when they are missing. The server is set up as
# the project's CI (.github/workflows/ci.yml) sets up its PostgreSQL: user
# postgres, password postgres, md5 for TCP, SSL on, PGTESTNOSSL=true, the
# roles scram_test and scram_unicode_test with SCRAM secrets. CI's database
# is ci_db_test; pgts serves one database, so there it is "postgres".
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=${1:-${NODE_POSTGRES_DIR:-}}
if [ -z "$SRC" ] || [ ! -d "$SRC/packages/pg/test/integration" ]; then
  echo "usage: $0 CHECKOUT_OF_brianc/node-postgres (or NODE_POSTGRES_DIR=...)" >&2
  exit 2
fi
SRC=$(cd "$SRC" && pwd)
command -v psql >/dev/null || { echo "psql is needed (apt-get install postgresql-client)" >&2; exit 2; }

if [ ! -d "$SRC/node_modules/async" ] || [ ! -d "$SRC/node_modules/pg-copy-streams" ]; then
  echo "# npm install in $SRC"
  (cd "$SRC" && npm install --no-audit --no-fund --ignore-scripts) >"$WORK/npm-install.log" 2>&1 ||
    { tail -n 30 "$WORK/npm-install.log"; exit 1; }
fi
if [ ! -f "$SRC/packages/pg-protocol/dist/index.js" ]; then
  echo "# tsc --build in $SRC"
  (cd "$SRC" && ./node_modules/.bin/tsc --build) || exit 1
fi

if [ "$SERVER" = pg15 ]; then DB=${NP_DB:-ci_db_test}; else DB=${NP_DB:-postgres}; fi
start_server md5 1 || exit 1
if [ "$SERVER" = pg15 ]; then
  PGPASSWORD=postgres createdb -h "$SOCKDIR" -p "$PORT" -U postgres "$DB"
fi
ADMIN_DB=$DB psql_admin >"$WORK/setup.log" 2>&1 <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE scram_test LOGIN PASSWORD 'test4scram';
CREATE ROLE scram_unicode_test LOGIN PASSWORD U&'IX-\2168';
SQL
sed 's/^/# setup: /' "$WORK/setup.log"

cd "$SRC/packages/pg" || exit 1
if [ -n "${FILES:-}" ]; then
  # shellcheck disable=SC2086
  LIST=$(for f in $FILES; do echo "test/integration/$f"; done)
else
  LIST=$(find test/integration -name "*-tests.js" | sort)
fi
export PGUSER=postgres PGPASSWORD=postgres PGHOST=localhost PGPORT=$PORT PGDATABASE=$DB PGTESTNOSSL=true
export SCRAM_TEST_PGUSER=scram_test SCRAM_TEST_PGPASSWORD=test4scram
export SCRAM_TEST_PGUSER_UNICODE=scram_unicode_test SCRAM_TEST_PGPASSWORD_UNICODE=$'IX-\u2168'

PASS=0 FAIL=0 FAILED=()
mkdir -p "$WORK/logs"
START=$(date +%s)
for f in $LIST; do
  log="$WORK/logs/$(echo "${f#test/integration/}" | tr / _).log"
  t0=$(date +%s%N)
  timeout "${FILE_TIMEOUT:-120}" node "$f" postgres:// >"$log" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  if [ $rc = 0 ]; then
    PASS=$((PASS + 1))
    echo "PASS ${f#test/integration/} (${ms} ms)"
  else
    FAIL=$((FAIL + 1))
    FAILED+=("${f#test/integration/}")
    [ $rc = 124 ] && why="timed out after ${FILE_TIMEOUT:-120} s" || why="exit $rc"
    echo "FAIL ${f#test/integration/} ($why, ${ms} ms)"
    grep -v '^\s*at ' "$log" | grep -iE 'error|assert|expected|fail|timed out' | head -n 4 | cut -c1-300 | sed 's/^/#     /'
  fi
done
echo "node-postgres integration on $SERVER${ADAPTER:+ (--adapter $ADAPTER)}: $PASS of $((PASS + FAIL)) files pass, $FAIL fail ($(($(date +%s) - START)) s)"
[ $FAIL = 0 ] || echo "failed: ${FAILED[*]}"
[ "${KEEP:-0}" = 1 ] && echo "# per-file logs in $WORK/logs"
[ $FAIL = 0 ]
