#!/bin/sh
# Debian packages the service's tests start for real: PostgreSQL (a throw-away cluster per test session,
# made with initdb/pg_ctl in a temporary folder; nothing is started here). Idempotent; run as root on a
# fresh CI machine before the tests (`.ci/run` calls it).
set -eu
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
# the package's own cluster is not needed: the tests start their own
if command -v pg_lsclusters >/dev/null 2>&1 && command -v service >/dev/null 2>&1; then
    service postgresql stop >/dev/null 2>&1 || true
fi
