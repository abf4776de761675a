#!/usr/bin/env bash
# Install the peers that `fobsim bench` measures. Reuses
# tests/matrix/setup.sh (apt: oathtool, faketime, ...; venvs under
# $FOBSIM_PEERS_DIR, default <repo>/target/peers: venv-pi with privacyIDEA)
# and adds what only the benchmark needs:
#   venv-pi:    gunicorn (privacyIDEA served like the anchors: 2 sync workers)
#   venv-pyotp: pyotp
# Idempotent: a stamp file per addition.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
peers="${FOBSIM_PEERS_DIR:-$repo/target/peers}"
pi_venv="${FOBSIM_PRIVACYIDEA_VENV:-$peers/venv-pi}"
pyotp_venv="${FOBSIM_PYOTP_VENV:-$peers/venv-pyotp}"
python="${PYTHON:-python3}"

if [ -f "$repo/tests/matrix/setup.sh" ]; then
  bash "$repo/tests/matrix/setup.sh"
else
  # Minimal fallback with the same paths as tests/matrix/setup.sh.
  if ! command -v oathtool >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends oathtool faketime >/dev/null
  fi
  if [ ! -x "$pi_venv/bin/pi-manage" ]; then
    mkdir -p "$(dirname "$pi_venv")"
    "$python" -m venv "$pi_venv"
    "$pi_venv/bin/pip" install -q --disable-pip-version-check privacyidea
    date -u +%FT%TZ >"$pi_venv/.fobsim-installed"
  fi
fi

if [ ! -f "$pi_venv/.fobsim-bench-gunicorn" ]; then
  echo "tests/perf/peers.sh: pip install gunicorn into $pi_venv"
  "$pi_venv/bin/pip" install -q --disable-pip-version-check gunicorn
  date -u +%FT%TZ >"$pi_venv/.fobsim-bench-gunicorn"
fi

if [ ! -f "$pyotp_venv/.fobsim-installed" ] || [ ! -x "$pyotp_venv/bin/python" ]; then
  echo "tests/perf/peers.sh: creating $pyotp_venv (pip install pyotp)"
  rm -rf "$pyotp_venv"
  mkdir -p "$(dirname "$pyotp_venv")"
  "$python" -m venv "$pyotp_venv"
  "$pyotp_venv/bin/pip" install -q --disable-pip-version-check pyotp
  date -u +%FT%TZ >"$pyotp_venv/.fobsim-installed"
fi
echo "tests/perf/peers.sh: peers ready ($pi_venv, $pyotp_venv, $(command -v oathtool))"
