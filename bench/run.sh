#!/usr/bin/env bash
# One command: set up (cached), then run every scenario.  bench/run.sh [--quick] [run.py flags]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
bash "$HERE/setup.sh"
exec python3 "$HERE/run.py" "$@"
