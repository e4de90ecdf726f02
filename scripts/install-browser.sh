#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for tests/frameworks/test_browser.py.
# Playwright's and Selenium Manager's own browser downloads fail on these
# machines, so the browser comes from apt. Called by scripts/test.sh only (the
# demo never installs a browser). Without root or apt it says so and returns 0:
# the browser test then skips with that reason.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: chromium missing and apt-get unavailable (not root?); the browser test will skip" >&2
    exit 0
fi
echo "install-browser: installing Debian chromium and chromium-driver"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
