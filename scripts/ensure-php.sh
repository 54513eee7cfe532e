#!/usr/bin/env bash
# Makes sure PHP and its PDO driver for PostgreSQL are installed, for the
# test that runs a PHP application against pgts (tests/helpers/php.ts):
# Debian's php-cli and php-pgsql. Prints the interpreter's path. Exits
# non-zero with the reason on stderr when it cannot.
set -euo pipefail
php=/usr/bin/php
has() { [ -x "$php" ] && "$php" -r 'exit(in_array("pgsql", PDO::getAvailableDrivers()) ? 0 : 1);' >/dev/null 2>&1; }
need=()
has || need+=(php-cli php-pgsql)
bash "$(dirname "$0")/apt-install.sh" "${need[@]}"
has || { echo "$php has no PDO pgsql driver after installing ${need[*]}" >&2; exit 1; }
echo "$php"
