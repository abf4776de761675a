#!/usr/bin/env bash
# Install the third-party engines that `fobsim matrix` and the
# harness/tests/matrix_*.rs tests drive. Idempotent and fast when
# everything is already there (a few dpkg/stat checks).
#
#   apt (as root):  oathtool libpam-oath pamtester libpam-google-authenticator faketime
#   venvs:          $FOBSIM_PEERS_DIR/venv-pi      (pip: privacyidea)
#                   $FOBSIM_PEERS_DIR/venv-moto    (pip: moto[server])
#                   $FOBSIM_PEERS_DIR/venv-django  (pip: django-otp, which brings Django)
#                   $FOBSIM_PEERS_DIR/venv-client  (pip: requests, pyotp, playwright: the Python client of
#                                                   the fob panel's control API, tests/control_api_python.rs,
#                                                   the Python examples of docs/control-api.md and
#                                                   docs/img/screenshots.py; Playwright drives the system
#                                                   Chromium of tests/browser/setup.sh: its wheel brings
#                                                   its own driver, no `playwright install`)
#
# FOBSIM_PEERS_DIR defaults to <repo>/target/peers, the well-known path the
# adapters look in (see harness/engines/src/lib.rs and docs/conformance.md).
# Override one venv with FOBSIM_PRIVACYIDEA_VENV / FOBSIM_MOTO_VENV /
# FOBSIM_DJANGO_VENV / FOBSIM_CLIENT_VENV.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
peers="${FOBSIM_PEERS_DIR:-$repo/target/peers}"
pi_venv="${FOBSIM_PRIVACYIDEA_VENV:-$peers/venv-pi}"
moto_venv="${FOBSIM_MOTO_VENV:-$peers/venv-moto}"
django_venv="${FOBSIM_DJANGO_VENV:-$peers/venv-django}"
client_venv="${FOBSIM_CLIENT_VENV:-$peers/venv-client}"
python="${PYTHON:-python3}"

packages=(oathtool libpam-oath pamtester libpam-google-authenticator faketime)
need=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "tests/matrix/setup.sh: need root and apt-get to install: ${need[*]}" >&2
    echo "  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "tests/matrix/setup.sh: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# venv DIR STAMP PIP-ARGS...: create DIR and pip-install unless STAMP exists.
venv() {
  local dir="$1" stamp="$1/.fobsim-installed" ; shift
  if [ -f "$stamp" ] && [ -x "$dir/bin/python" ]; then
    return 0
  fi
  echo "tests/matrix/setup.sh: creating $dir (pip install $*)"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  "$python" -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@"
  date -u +%FT%TZ >"$stamp"
}
venv "$pi_venv" privacyidea
venv "$moto_venv" 'moto[server]'
venv "$django_venv" django-otp
# Playwright pinned: its driver speaks to the system Chromium (not one it downloads).
playwright_pin=playwright==1.65.3
venv "$client_venv" requests pyotp "$playwright_pin"
# A client venv made before Playwright joined it gets it added.
"$client_venv/bin/python" -c 'import playwright' 2>/dev/null \
  || "$client_venv/bin/pip" install -q --disable-pip-version-check "$playwright_pin"

for tool in oathtool pamtester faketime; do
  command -v "$tool" >/dev/null || { echo "setup.sh: $tool still missing" >&2; exit 1; }
done
for f in "$pi_venv/bin/pi-manage" "$moto_venv/bin/moto_server"; do
  [ -x "$f" ] || { echo "setup.sh: $f missing after install" >&2; exit 1; }
done
"$django_venv/bin/python" -c 'import django, django_otp' \
  || { echo "setup.sh: django-otp missing in $django_venv after install" >&2; exit 1; }
"$client_venv/bin/python" -c 'import requests, pyotp, playwright' \
  || { echo "setup.sh: requests/pyotp/playwright missing in $client_venv after install" >&2; exit 1; }
echo "tests/matrix/setup.sh: engines ready (peers in $peers)"
