#!/usr/bin/env bash
# Installs Debian packages for the scripts that make sure a test's programs
# are there (ensure-jdbc.sh, ensure-python.sh): as root, without an
# `apt-get update` first, then with one if that failed. Exits non-zero with
# the reason on stderr when not root. Waits up to ten minutes for dpkg's lock:
# the test shards run at once, and one shard's install held it while
# another's failed at once ("Could not get lock /var/lib/dpkg/lock-frontend"),
# which skipped that shard's JDBC tests.
#
#   bash scripts/apt-install.sh PACKAGE...
set -euo pipefail
[ "$#" -gt 0 ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing $*; installing needs root (apt-get install $*)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null 2>&1 ||
  { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null; }
