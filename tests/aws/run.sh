#!/usr/bin/env bash
# End-to-end tests of `fobsim serve` with real AWS clients.
#
# Makes a Python venv with boto3 and the AWS CLI (reused between runs),
# builds fobsim (unless FOBSIM points at a binary), then runs e2e.py:
# `fobsim emulate` (codes read over its ptys) + `fobsim serve`, both on
# manual clocks moved in lockstep. Ends with `N passed, N failed`; exits
# non-zero on any failure.
#
#   bash tests/aws/run.sh                  # build and run
#   FOBSIM=target/release/fobsim bash tests/aws/run.sh
#   FOBSIM_AWS_VENV=/tmp/venv bash tests/aws/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=${FOBSIM_AWS_VENV:-target/aws-venv}
bash tests/aws/venv.sh

fobsim=${FOBSIM:-}
if [ -z "$fobsim" ]; then
    echo "== cargo build --bin fobsim"
    cargo build --locked --quiet --bin fobsim
    target_dir=$(cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    fobsim="$target_dir/debug/fobsim"
fi

echo "== e2e with $fobsim"
exec "$venv/bin/python" tests/aws/e2e.py --fobsim "$fobsim"
