#!/usr/bin/env bash
# Runs postgres.js's own test suite (porsager/postgres, tests/index.js, as
# `npm run test:esm` does) against a fresh pgts server, or PostgreSQL 15.
#
#   scripts/suites/postgres-js.sh [CHECKOUT]      (or POSTGRES_JS_DIR=CHECKOUT)
#   SERVER=pg15 scripts/suites/postgres-js.sh ...  the same against PostgreSQL 15
#   ADAPTER=inproc scripts/suites/postgres-js.sh ... pgts with --adapter inproc
#   PJS_SKIP='name|name' skips tests by exact name (ones that crash the process)
#   PJS_ONLY='name|name' runs only these tests (to rerun one that failed)
#
# The checkout is copied to a work directory and the copy is changed:
# - tests/test.js (the runner) goes on after a failed test (upstream stops
#   running tests after the first failure) and prints PASS/FAIL/SKIP lines;
#   an uncaught exception is printed (UNCAUGHT) instead of ending the process,
#   so the test that threw it times out and the others still run;
# - tests/bootstrap.js's setup (users, database, ssl) is done by this script
#   with psql beforehand, the same statements, against database $PJS_DB;
# - tests/index.js: the database is $PJS_DB ("postgres" on pgts, which serves
#   one database; postgres_js_test on PostgreSQL as upstream), and the ports
#   5432/5433 it hard-codes are this server's port and a closed one.
# pg_hba.conf is tests/pg_hba.conf; on pgts `samehost` (which pgts refuses)
# is written 127.0.0.1/32 and ::1/128.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=${1:-${POSTGRES_JS_DIR:-}}
if [ -z "$SRC" ] || [ ! -f "$SRC/tests/index.js" ]; then
  echo "usage: $0 CHECKOUT_OF_porsager/postgres (or POSTGRES_JS_DIR=...)" >&2
  exit 2
fi
SRC=$(cd "$SRC" && pwd)
if [ "$SERVER" = pg15 ]; then PJS_DB=${PJS_DB:-postgres_js_test}; else PJS_DB=${PJS_DB:-postgres}; fi
export PJS_DB

# postgres.js has no dependencies; its tests need node and psql.
command -v node >/dev/null || { echo "node is needed" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql is needed (apt-get install postgresql-client)" >&2; exit 2; }

COPY="$WORK/postgres"
mkdir -p "$COPY"
(cd "$SRC" && tar --exclude=./node_modules --exclude=./.git -cf - .) | (cd "$COPY" && tar -xf -)

# CI's postgresql.conf: wal_level = logical, max_prepared_transactions = 100,
# ssl = on. pgts has no logical replication (it refuses wal_level at start).
if [ "$SERVER" = pg15 ]; then
  start_server trust 1 wal_level=logical max_prepared_transactions=100 listen_addresses=localhost || exit 1
else
  start_server trust 1 max_prepared_transactions=100 || exit 1
fi
MAIN=("$PORT" "$DATA" "$SERVER_PID")
# "Multiple hosts" needs a second server (CI has one on 5433): trust, postgres.
INSTANCE=2 start_server trust 0 || exit 1
PORT2=$PORT
PORT=${MAIN[0]} DATA=${MAIN[1]} SERVER_PID=${MAIN[2]}

# pg_hba.conf as the project's CI installs it.
if [ "$SERVER" = pg15 ]; then
  cp "$COPY/tests/pg_hba.conf" "$DATA/pg_hba.conf"
else
  awk -v db="$PJS_DB" '
    /^host/ { if ($2 == "postgres_js_test") $2 = db
              if ($4 == "samehost") { $4 = "127.0.0.1/32"; print; $4 = "::1/128" } }
    { print }' "$COPY/tests/pg_hba.conf" >"$DATA/pg_hba.conf"
fi
reload_server

# tests/bootstrap.js's statements.
if [ "$SERVER" = pg15 ]; then
  PGPASSWORD=postgres createdb -h "$SOCKDIR" -p "$PORT" -U postgres "$PJS_DB"
fi
psql_admin >"$WORK/bootstrap.log" 2>&1 <<SQL
alter system set ssl=on;
create user postgres_js_test;
alter system set password_encryption=md5;
select pg_reload_conf();
set password_encryption=md5;
create user postgres_js_test_md5 with password 'postgres_js_test_md5';
alter system set password_encryption='scram-sha-256';
select pg_reload_conf();
set password_encryption='scram-sha-256';
create user postgres_js_test_scram with password 'postgres_js_test_scram';
grant all on database "$PJS_DB" to postgres_js_test;
alter database "$PJS_DB" owner to postgres_js_test;
SQL
sed 's/^/# bootstrap: /' "$WORK/bootstrap.log"

# The copy's changes (see the header).
node - "$COPY" "$PORT" "$PORT2" <<'JS'
const fs = require('fs'), [dir, port, port2] = process.argv.slice(2)
const edit = (file, pairs) => {
  let s = fs.readFileSync(dir + file, 'utf8')
  for (const [a, b] of pairs) {
    if (!(typeof a === 'string' ? s.includes(a) : a.test(s))) throw new Error(file + ': no ' + a)
    s = s.replace(a, b)
  }
  fs.writeFileSync(dir + file, s)
}
edit('/tests/test.js', [
  ['    failed\n      ? (ignored++, ignore)\n      : fn()', '    fn()'],
  ["async function test(o, name, options, fn) {\n",
   "const skip = new Set((process.env.PJS_SKIP || '').split('|').filter(Boolean))\n" +
   "const onlyNames = new Set((process.env.PJS_ONLY || '').split('|').filter(Boolean))\n" +
   "async function test(o, name, options, fn) {\n" +
   "  if (onlyNames.size && !onlyNames.has(name)) return\n" +
   "  if (skip.has(name)) return console.log('SKIP', name)\n"],
  ["      tests[line].succeeded = true\n",
   "      tests[line].succeeded = true\n      console.log('PASS', name)\n"],
  ["      process.stdout.write('✅')\n", ""],
  ["      tests[line].failed = failed = true\n",
   "      tests[line].failed = failed = true\n" +
   "      console.log('FAIL', name, '::', (err instanceof Error ? err.message : util.inspect(err)).split('\\n')[0].slice(0, 300))\n" +
   "      cleanupAfterFailure()\n"],
  ["function exit() {\n",
   "function cleanupAfterFailure() {\n" +
   "  const r = spawnSync('psql', ['-X', '-q', '-d', process.env.PJS_DB, '-c', process.env.PJS_CLEANUP], { encoding: 'utf8' })\n" +
   "  if (r.status !== 0 || r.stderr) console.log('CLEANUP', (r.stderr || '').trim())\n" +
   "}\n" +
   "function exit() {\n" +
   "  setTimeout(() => { console.log('EXIT forced: open handles kept the process alive'); process.exit() }, 5000).unref()\n"],
  ["import util from 'util'\n", "import util from 'util'\nimport { spawnSync } from 'child_process'\n" +
   "process.on('uncaughtException', e => console.log('UNCAUGHT', String(e && e.stack || e).split('\\n')[0]))\n"],
])
edit('/tests/bootstrap.js', [[/^exec\(.*\n/gm, '']])
edit('/tests/index.js', [
  [/(db|database): 'postgres_js_test'/g, "$1: process.env.PJS_DB"],
  [/localhost:5432/g, 'localhost:' + port],
  [/localhost:5433/g, 'localhost:' + port2],
  ['port: 5433', 'port: ' + port2],
  ['socket.connect(5432)', 'socket.connect(' + port + ')'],
])
JS
[ $? = 0 ] || exit 1

# psql (tests/bootstrap.js's exec) reaches the server by its socket, as on CI.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nexec %s -h %s "$@"\n' "$(command -v psql)" "$SOCKDIR" >"$WORK/bin/psql"
chmod +x "$WORK/bin/psql"

# After a failed test: what it left behind would fail the tests after it
# (upstream's runner stops at the first failure instead).
export PJS_CLEANUP="set client_min_messages=warning;
drop schema if exists public cascade; create schema public authorization pg_database_owner;
grant usage on schema public to public;
do \$\$ declare r record; begin
  for r in select pubname from pg_publication loop execute format('drop publication %I', r.pubname); end loop;
  for r in select nspname from pg_namespace where nspname in ('a', 'b') loop
    execute format('drop schema %I cascade', r.nspname); end loop;
end \$\$;"

echo "# running tests/index.js (log: $WORK/tests.log)"
START=$(date +%s)
(cd "$COPY/tests" && PATH="$WORK/bin:$PATH" PGUSER=postgres PGPORT="$PORT" PGSOCKET="$SOCKDIR" \
  timeout "${SUITE_TIMEOUT:-1200}" node index.js) >"$WORK/tests.log" 2>&1
RC=$?
grep -E '^(PASS|FAIL|SKIP|UNCAUGHT) ' "$WORK/tests.log"
if [ -n "${PJS_ONLY:-}" ]; then
  TOTAL=$(echo "$PJS_ONLY" | tr '|' '\n' | grep -c .)
else
  TOTAL=$(grep -cE '^(t|ot)\(' "$COPY/tests/index.js")
fi
PASS=$(grep -c '^PASS ' "$WORK/tests.log")
FAIL=$(grep -c '^FAIL ' "$WORK/tests.log")
SKIP=$(grep -c '^SKIP ' "$WORK/tests.log")
echo "# tail of the runner's output (exit $RC):"
grep -vE '^(PASS|FAIL|SKIP|UNCAUGHT) ' "$WORK/tests.log" | tail -n 15 | sed 's/^/#   /'
echo "postgres.js on $SERVER${ADAPTER:+ (--adapter $ADAPTER)}: $PASS passed, $FAIL failed, $SKIP skipped, $((TOTAL - PASS - FAIL - SKIP)) not run, of $TOTAL tests ($(($(date +%s) - START)) s)"
[ "$FAIL" = 0 ] && [ "$PASS" = $((TOTAL - SKIP)) ]
