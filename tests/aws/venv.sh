#!/usr/bin/env bash
# The Python venv with boto3 and the AWS CLI that the AWS-client tests use
# (tests/aws/run.sh's e2e.py, and tests/readme_aws.rs, which cargo test
# runs). Made once, reused: $FOBSIM_AWS_VENV, else target/aws-venv.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=${FOBSIM_AWS_VENV:-target/aws-venv}
if ! "$venv/bin/python" -c 'import boto3, awscli' >/dev/null 2>&1; then
    echo "== making the venv $venv (boto3, awscli)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check boto3 awscli
fi
