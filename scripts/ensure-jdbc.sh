#!/usr/bin/env bash
# Makes sure a Java runtime and PostgreSQL's JDBC driver are installed, for
# the tests that run a JDBC client against pgts (tests/helpers/jdbc.ts):
# Debian's libpostgresql-jdbc-java, and a headless JDK when there is no javac
# (`java File.java` compiles the source it runs). Prints the driver's jar path.
# Exits non-zero with the reason on stderr when it cannot.
set -euo pipefail
jar=/usr/share/java/postgresql.jar
need=()
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
[ -f "$jar" ] || need+=(libpostgresql-jdbc-java)
bash "$(dirname "$0")/apt-install.sh" "${need[@]}"
[ -f "$jar" ] || { echo "no $jar after installing libpostgresql-jdbc-java" >&2; exit 1; }
echo "$jar"
