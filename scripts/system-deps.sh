#!/usr/bin/env bash
# Debian packages the test suite needs, installed when missing:
#   postgresql  — a throwaway server (started by the tests on 127.0.0.1) for the metadata-DB tests
#   chromium    — the browser the end-to-end tests drive with Playwright (never a downloaded one)
#   openjdk-17-jre-headless, libxerial-sqlite-jdbc-java, libpostgresql-jdbc-java
#               — the Java runtime of engine: spark and the JDBC drivers of its Iceberg catalog
set -euo pipefail
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
compgen -G "/usr/lib/jvm/java-17-openjdk-*/bin/java" >/dev/null || need+=(openjdk-17-jre-headless)
[ -f /usr/share/java/xerial-sqlite-jdbc.jar ] || need+=(libxerial-sqlite-jdbc-java)
[ -f /usr/share/java/postgresql.jar ] || need+=(libpostgresql-jdbc-java)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: please install: ${need[*]} (apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
