#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for tests/frameworks/test_browser.py.
# Playwright's and Selenium Manager's own browser downloads fail on these
# machines, so the browser comes from apt. Called by scripts/test.sh only (the
# demo never installs a browser).
#
# It never fails the gate: without root or apt, or when apt stays locked by
# another process (unattended-upgrades, another agent's apt-get) for longer than
# INSTALL_BROWSER_LOCK_WAIT seconds (default 300), or when the install itself
# fails, it says so and returns 0; the browser test then skips with its reason.
set -uo pipefail
# CHROMIUM_BIN / CHROMEDRIVER_BIN / INSTALL_BROWSER_POLL exist for tests/unit/test_scripts.py.
if [ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] && [ -x "${CHROMEDRIVER_BIN:-/usr/bin/chromedriver}" ]; then
    exit 0
fi
skip() {
    echo "install-browser: $*; the browser test will skip" >&2
    exit 0
}
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    skip "chromium missing and apt-get unavailable (not root?)"
fi

wait_total="${INSTALL_BROWSER_LOCK_WAIT:-300}"
deadline=$((SECONDS + wait_total))
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Run apt-get, waiting (bounded) while another process holds the apt/dpkg lock.
# apt's own DPkg::Lock::Timeout covers the dpkg frontend lock; the lists lock of
# `apt-get update` is not covered by it on every apt version, so exit 100 with
# "Could not get lock" is retried here too, until the deadline.
apt() {
    local told=no
    while true; do
        local left=$((deadline - SECONDS))
        ((left < 1)) && left=1
        if DEBIAN_FRONTEND=noninteractive apt-get -o "DPkg::Lock::Timeout=$left" "$@" \
            >"$log" 2>&1; then
            return 0
        fi
        if grep -q -e "Could not get lock" -e "Unable to acquire the dpkg frontend lock" \
            -e "Unable to lock directory" "$log" && ((SECONDS < deadline)); then
            if [ "$told" = no ]; then
                echo "install-browser: apt is locked by another process; waiting up to" \
                    "$((deadline - SECONDS)) s more (INSTALL_BROWSER_LOCK_WAIT)" >&2
                told=yes
            fi
            sleep "${INSTALL_BROWSER_POLL:-5}"
            continue
        fi
        tail -n 3 "$log" >&2
        return 1
    done
}

echo "install-browser: installing Debian chromium and chromium-driver (~1-2 min on a first run)"
apt update -qq || skip "apt-get update failed or apt stayed locked for ${wait_total} s"
apt install -y -qq chromium chromium-driver \
    || skip "apt-get install chromium chromium-driver failed or apt stayed locked for ${wait_total} s"
echo "install-browser: done"
