#!/usr/bin/env bash
# Run every fobsim test. Installs the Debian packages the tests drive (real
# serial clients, usbip, the third-party OTP engines and their venvs,
# PostgreSQL) when run as root; otherwise says what to install and stops. A
# test whose tool is missing fails loudly; none skips.
set -euo pipefail
cd "$(dirname "$0")/.."

# curl and jq: README's sandbox section (tests/readme_up.rs).
packages=(socat picocom usbip curl jq)
need=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || command -v "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "tests/run.sh: the tests need: ${need[*]} (sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

# The third-party engines of the conformance matrix (apt + venvs under
# target/peers): the harness's matrix_* tests drive them.
bash tests/matrix/setup.sh
# PostgreSQL's binaries: the store's tests start their own server.
bash tests/pg/setup.sh
# Headless Chromium and chromedriver: the console adapter and browser tests.
bash tests/browser/setup.sh
# The AWS CLI and boto3 (README's AWS and sandbox sections are run by
# tests/readme_aws.rs and tests/readme_up.rs).
bash tests/aws/venv.sh

cargo test --workspace --locked "$@"
