#!/usr/bin/env bash
# Makes sure Debian's Python and its PostgreSQL drivers are installed, for
# the tests that run Python applications against pgts (tests/helpers/python.ts):
# python3-psycopg (psycopg 3), python3-psycopg2, python3-asyncpg and
# python3-django (Django 3.2, for tests/fixtures/python/pgts_django.py). Prints
# the interpreter's path (/usr/bin/python3: Debian's packages are for it,
# whatever other python3 comes first on PATH). Exits non-zero with the reason
# on stderr when it cannot.
set -euo pipefail
python=/usr/bin/python3
has() { [ -x "$python" ] && "$python" -c "import $1" >/dev/null 2>&1; }
need=()
[ -x "$python" ] || need+=(python3)
has psycopg || need+=(python3-psycopg)
has psycopg2 || need+=(python3-psycopg2)
has asyncpg || need+=(python3-asyncpg)
has django || need+=(python3-django)
bash "$(dirname "$0")/apt-install.sh" "${need[@]}"
for m in psycopg psycopg2 asyncpg django; do
  has "$m" || { echo "$python cannot import $m after installing ${need[*]}" >&2; exit 1; }
done
echo "$python"
