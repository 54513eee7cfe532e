# Shared by node-postgres.sh and postgres-js.sh: a fresh server on a free
# port (pgts, or PostgreSQL 15 for comparison), stopped and removed on exit.
# Source it; it defines start_server, stop_server and psql_admin.
#
#   SERVER=pgts|pg15   which server (default pgts)
#   ADAPTER=NAME       pgts's --adapter (default: pgts's own default)
#   RUNTIME=bun|deno   what pgts starts under: `bun mod.ts start` (default) or `deno run -A mod.ts start`
#   KEEP=1             keep the work directory (logs) after the run

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUN="$ROOT/node_modules/.bin/bun"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
SERVER=${SERVER:-pgts}
ADAPTER=${ADAPTER:-}
RUNTIME=${RUNTIME:-bun}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/suites-run-XXXXXX")
chmod 755 "$WORK"
SERVER_PID=""
PORT=""
STARTED=() # "pid data-dir" of every server started, for cleanup

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# The OS user that runs postgres when we are root (PostgreSQL refuses root).
pg_os_user() {
  if [ "$(id -u)" != 0 ]; then return; fi
  local u=${PG_OS_USER:-postgres}
  id -u "$u" >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin "$u"
  echo "$u"
}

as_pg_user() {
  local u
  u=$(pg_os_user)
  if [ -n "$u" ]; then runuser -u "$u" -- "$@"; else "$@"; fi
}

# start_server AUTH SSL(0|1) [NAME=VALUE...]: a cluster whose superuser is
# "postgres" with password "postgres", pg_hba.conf `local all all trust` and
# `host all all all AUTH` (replace $DATA/pg_hba.conf before start to change),
# settings NAME=VALUE passed as -c. Sets PORT, DATA, SOCKDIR, SERVER_PID.
# INSTANCE=N start_server ... starts another one (data directory dataN).
start_server() {
  local auth=$1 ssl=$2
  shift 2
  PORT=$(free_port)
  DATA="$WORK/data${INSTANCE:-}"
  SOCKDIR="$WORK"
  printf 'postgres\n' >"$WORK/pwfile"
  local settings=()
  for kv in "$@"; do settings+=(-c "$kv"); done
  if [ "$SERVER" = pg15 ]; then
    local u
    u=$(pg_os_user)
    [ -n "$u" ] && chown "$u" "$WORK" "$WORK/pwfile"
    as_pg_user "$PG_BIN/initdb" -D "$DATA" -U postgres --pwfile="$WORK/pwfile" \
      --auth-local=trust --auth-host="$auth" -E UTF8 --no-locale --no-sync >"$WORK/initdb.log" 2>&1 ||
      { cat "$WORK/initdb.log"; return 1; }
    if [ "$ssl" = 1 ]; then
      openssl req -new -x509 -nodes -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$DATA/server.key" -out "$DATA/server.crt" >/dev/null 2>&1
      [ -n "$u" ] && chown "$u" "$DATA/server.key" "$DATA/server.crt"
      chmod 600 "$DATA/server.key"
      echo "ssl = on" >>"$DATA/postgresql.conf"
    fi
    as_pg_user "$PG_BIN/postgres" -D "$DATA" -p "$PORT" -k "$SOCKDIR" \
      -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100 "${settings[@]}" \
      >"$WORK/server${INSTANCE:-}.log" 2>&1 &
    SERVER_PID=$!
    STARTED+=("$SERVER_PID $DATA")
  else
    local init=(init -D "$DATA" -U postgres -A "$auth" --pwfile "$WORK/pwfile")
    [ "$ssl" = 1 ] && init+=(--ssl)
    (cd "$ROOT" && "$BUN" mod.ts "${init[@]}") >"$WORK/init.log" 2>&1 ||
      { cat "$WORK/init.log"; return 1; }
    # local (Unix socket) connections trust, as initdb --auth-local=trust
    sed -i 's/^\(local[[:space:]].*[[:space:]]\)[a-z0-9-]*$/\1trust/' "$DATA/pg_hba.conf"
    local adapter=()
    [ -n "$ADAPTER" ] && adapter=(--adapter "$ADAPTER")
    local run=("$BUN")
    [ "$RUNTIME" = deno ] && run=("$ROOT/node_modules/.bin/deno" run -A)
    (cd "$ROOT" && exec "${run[@]}" mod.ts start -D "$DATA" -p "$PORT" "${adapter[@]}" \
      -c "unix_socket_directories=$SOCKDIR" "${settings[@]}") >"$WORK/server${INSTANCE:-}.log" 2>&1 &
    SERVER_PID=$!
    STARTED+=("$SERVER_PID $DATA")
  fi
  local i
  for i in $(seq 1 300); do
    if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
      local under=""
      [ "$SERVER" = pg15 ] || under=" ($RUNTIME)"
      echo "# $SERVER${ADAPTER:+ --adapter $ADAPTER}$under on 127.0.0.1:$PORT (socket dir $SOCKDIR), work dir $WORK"
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "server did not start:" >&2
  cat "$WORK/server${INSTANCE:-}.log" >&2
  return 1
}

# Re-read pg_hba.conf after the script changed it.
reload_server() {
  if [ "$SERVER" = pg15 ]; then
    as_pg_user "$PG_BIN/pg_ctl" -D "$DATA" reload >/dev/null
  else
    (cd "$ROOT" && "$BUN" mod.ts reload -D "$DATA") >/dev/null
  fi
  sleep 0.5
}

psql_admin() {
  PGPASSWORD=postgres psql -X -q -v ON_ERROR_STOP=0 -h "$SOCKDIR" -p "$PORT" -U postgres -d "${ADMIN_DB:-postgres}" "$@"
}

# stop_server [PID DATA]: the last server started, or the one given.
stop_server() {
  local SERVER_PID=${1:-$SERVER_PID} DATA=${2:-${DATA:-}}
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    if [ "$SERVER" = pg15 ]; then
      kill -INT "$SERVER_PID" 2>/dev/null
    else
      (cd "$ROOT" && "$BUN" mod.ts stop -D "$DATA" -m fast) >/dev/null 2>&1 || kill -INT "$SERVER_PID" 2>/dev/null
    fi
    local i
    for i in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
}

cleanup() {
  local s
  for s in "${STARTED[@]}"; do
    # shellcheck disable=SC2086
    stop_server $s
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
