#!/usr/bin/env bash
# ./tools/bench ingest [--messages N] [--series N] [--qos 0|1|all] [--durability normal|strict]
#
# Benchmarks report ratios against the physical limits measured in the same
# run (LIMITS.md): e.g. edgelambdad's ingest rate against a Paho subscriber
# that only counts the same stream through the same broker.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$EL_ROOT"
el_install_deps
el_build build/bench Release >/dev/null
exec python3 tools/lib/bench.py --build build/bench "$@"
