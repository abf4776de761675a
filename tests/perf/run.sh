#!/usr/bin/env bash
# Reproduce the whole performance table (docs/PERFORMANCE.md) on this
# machine with one command:
#
#   bash tests/perf/run.sh            # full run (~2–3 min on 2 cores)
#   bash tests/perf/run.sh --quick    # smaller sizes, shorter runs
#
# 1. installs the peers (tests/perf/peers.sh: apt oathtool etc. via
#    tests/matrix/setup.sh, privacyIDEA + gunicorn and pyotp venvs under
#    target/peers/),
# 2. builds fobsim in release,
# 3. runs `fobsim bench --json` (every group, peers included) and writes
#    target/perf/bench.json, target/perf/table.md, target/perf/lscpu.txt.
#
# Extra arguments go to `fobsim bench` (e.g. --only otp,verify).
# FOBSIM=path/to/fobsim skips the build.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
out="${FOBSIM_PERF_OUT:-$repo/target/perf}"
mkdir -p "$out"

echo "== peers"
bash tests/perf/peers.sh

fobsim=${FOBSIM:-}
if [ -z "$fobsim" ]; then
  echo "== cargo build --release --bin fobsim"
  cargo build --release --locked --quiet --bin fobsim
  target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  fobsim="$target_dir/release/fobsim"
fi

echo "== machine"
{ lscpu 2>/dev/null || cat /proc/cpuinfo; echo; uptime; } >"$out/lscpu.txt"
grep -E '^(Model name|CPU\(s\)|Thread|Core)' "$out/lscpu.txt" || true
echo "sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no), avx512f: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)"
uptime

echo "== $fobsim bench --json --out $out/table.md $*"
"$fobsim" bench --json --out "$out/table.md" "$@" >"$out/bench.json"
cat "$out/table.md"
echo "== wrote $out/bench.json and $out/table.md"
