#!/usr/bin/env bash
# `npm start`: the one command that runs a pgts server on a fresh machine.
# Creates the data directory on first use (PGDATA, default ./data), then
# starts the server in the foreground on PORT (default 5432) and prints how
# to connect. Stop it with Ctrl-C (a fast shutdown).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${PGDATA:-./data}
port=${PORT:-5432}
bun=./node_modules/.bin/bun
if [ ! -f "$data/PGTS_VERSION" ]; then
  "$bun" mod.ts init -D "$data" -U "${PGUSER:-postgres}"
fi
sockdir=$(cd "$data" && pwd)
cat <<MSG

pgts is starting on port $port. Connect with:

    psql -h 127.0.0.1 -p $port -U ${PGUSER:-postgres} postgres
    psql -h $sockdir -p $port -U ${PGUSER:-postgres} postgres   (Unix socket)

MSG
exec "$bun" mod.ts start -D "$data" -p "$port" -c "unix_socket_directories=$sockdir" "$@"
