#!/usr/bin/env bash
# Makes sure PostgreSQL 15's programs (psql, pgbench, postgres, initdb) are
# installed; the end-to-end tests use them as real clients and as a reference
# server. Installs Debian's postgresql package when they are missing.
set -euo pipefail
bindir=/usr/lib/postgresql/15/bin
if [ -x "$bindir/psql" ] && [ -x "$bindir/pgbench" ] && [ -x "$bindir/postgres" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "PostgreSQL 15 is missing from $bindir; install the postgresql-15 package" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq postgresql-15 postgresql-client-15 >/dev/null
