#!/bin/sh
# The Debian packages the tests run for real, installed when absent (`make test` calls this first):
# - PostgreSQL, for the service's store tests (each session starts a throw-away cluster with initdb/pg_ctl
#   in a temporary folder; the package's own cluster is stopped, nothing else is started here);
# - headless Chromium and its WebDriver, for the web page's browser test (Selenium is pointed at
#   /usr/bin/chromium and /usr/bin/chromedriver; nothing downloads a browser of its own).
# Idempotent. Installing needs root; without it, the tests that need a missing package skip and say why.
set -eu
need=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
command -v chromium >/dev/null 2>&1 || need="$need chromium fonts-dejavu-core"
command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
if [ -n "$need" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "test-services: not installing$need (needs root and apt-get): the tests that use them will skip" >&2
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $need >/dev/null
fi
if command -v pg_lsclusters >/dev/null 2>&1 && command -v service >/dev/null 2>&1; then
    service postgresql stop >/dev/null 2>&1 || true
fi
