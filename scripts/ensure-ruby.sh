#!/usr/bin/env bash
# Makes sure Ruby, ActiveRecord and the pg gem are installed, for the test
# that runs a Rails application's ActiveRecord against pgts
# (tests/helpers/ruby.ts): Debian's ruby-activerecord and ruby-pg. Prints the
# interpreter's path. Exits non-zero with the reason on stderr when it cannot.
set -euo pipefail
ruby=/usr/bin/ruby
has() { [ -x "$ruby" ] && "$ruby" -e "require '$1'" >/dev/null 2>&1; }
need=()
has pg || need+=(ruby-pg)
has active_record || need+=(ruby-activerecord)
bash "$(dirname "$0")/apt-install.sh" "${need[@]}"
for m in pg active_record; do
  has "$m" || { echo "$ruby cannot require $m after installing ${need[*]}" >&2; exit 1; }
done
echo "$ruby"
