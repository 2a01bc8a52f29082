#!/usr/bin/env bash
# Run first on any GPU machine (at most 10 minutes); --cpu: the reduced check CI runs.
# See benchmarks/gpu_check.py for what it runs and writes.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 benchmarks/gpu_check.py "$@"
