#!/usr/bin/env bash
# Makes sure the openssl program is installed: the TLS tests make their
# certificates with it, and `pgts init --ssl` uses it. Installs Debian's
# openssl package when it is missing.
set -euo pipefail
if command -v openssl >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "openssl is missing; install the openssl package" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq openssl >/dev/null
