#!/usr/bin/env bash
# Install PostgreSQL for the tests that run the engine on it
# (engine/tests/postgres.rs, tests/replicas.rs, tests/store_postgres.rs, the
# rule and model tests' PostgreSQL runs). They start their own server from
# the package's binaries (initdb in a temp directory, run as the package's
# unprivileged `postgres` user when the tests run as root) and never use
# the system's cluster. Idempotent and fast when it is already there.
#
#   apt (as root):  postgresql
#
# Binaries elsewhere: set FOBSIM_PG_BIN to the directory of initdb and
# postgres (see engine/src/testing/postgres.rs).
set -euo pipefail

found() {
  if [ -n "${FOBSIM_PG_BIN:-}" ]; then
    [ -x "$FOBSIM_PG_BIN/initdb" ] && [ -x "$FOBSIM_PG_BIN/postgres" ]
    return
  fi
  command -v initdb >/dev/null && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if ! dpkg -s postgresql >/dev/null 2>&1 && ! found; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "tests/pg/setup.sh: need root and apt-get to install: postgresql" >&2
    echo "  sudo apt-get install postgresql" >&2
    exit 1
  fi
  echo "tests/pg/setup.sh: apt-get install postgresql"
  apt-get update -qq
  # The package's own cluster is not needed: the tests run their own.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

found || { echo "tests/pg/setup.sh: initdb and postgres still missing (FOBSIM_PG_BIN, PATH, /usr/lib/postgresql/*/bin)" >&2; exit 1; }
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "tests/pg/setup.sh: running as root, the tests run the server as the user postgres, which is missing (the postgresql package creates it)" >&2
  exit 1
fi
