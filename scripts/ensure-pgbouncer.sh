#!/usr/bin/env bash
# Makes sure pgbouncer is installed: scripts/bench/upstream.ts runs it as the
# pooler reference next to pgts. Installs Debian's pgbouncer package when it
# is missing, without letting the package start its own service (a
# policy-rc.d that refuses every start, removed afterwards). Exits non-zero
# with the reason on stderr when it cannot.
set -euo pipefail
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "pgbouncer is missing and installing it needs root (apt-get install pgbouncer)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  ours=1
fi
trap 'if [ "$ours" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get -o DPkg::Lock::Timeout=600 install -y -qq pgbouncer >/dev/null 2>&1 ||
  { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq pgbouncer >/dev/null; }
