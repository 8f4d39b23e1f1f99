#!/bin/sh
# Headless Chromium and its WebDriver from Debian, for the web page's browser test
# (tests/service/test_web_page.py, driven by Selenium). Idempotent; run as root on a fresh Debian CI machine
# before the tests (`.ci/run` calls it). Nothing downloads a browser of its own: Selenium is pointed at
# /usr/bin/chromium and /usr/bin/chromedriver.
set -eu
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi
chromium --version
