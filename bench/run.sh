#!/usr/bin/env bash
# One command: set up (cached), then run every scenario.  bench/run.sh [--quick] [run.py flags]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
bash "$HERE/setup.sh" "$@"  # reads --only: the engines scenario needs more
exec python3 "$HERE/run.py" "$@"
