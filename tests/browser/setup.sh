#!/usr/bin/env bash
# Install what `fobsim run --engine console` and the browser tests drive:
# headless Chromium and its WebDriver server (Debian packages `chromium`
# and `chromium-driver`: /usr/bin/chromium, /usr/bin/chromedriver).
# Idempotent and fast when both are there (two dpkg checks); CI runs it as
# root on Debian.
#
# Elsewhere, point the adapter at your own builds with FOBSIM_CHROMIUM and
# FOBSIM_CHROMEDRIVER (see harness/engines/src/webdriver.rs).
set -euo pipefail

packages=(chromium chromium-driver)
need=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "tests/browser/setup.sh: need root and apt-get to install: ${need[*]}" >&2
    echo "  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "tests/browser/setup.sh: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for program in chromium chromedriver; do
  if ! command -v "$program" >/dev/null; then
    echo "tests/browser/setup.sh: $program is not on PATH after installing ${packages[*]}" >&2
    exit 1
  fi
done
