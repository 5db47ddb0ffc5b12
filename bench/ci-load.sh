#!/usr/bin/env bash
# CI's short load and soak tests: bench/load.sh for 5 s, then bench/soak.py for 10 s.
# Fails (exit 1) on any error either reports: a socket error, a 4xx/5xx, an entry missing from
# a feed while its file is valid, an error in the server's log, a server that dies. Needs wrk.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}

command -v wrk >/dev/null 2>&1 || { echo "ci-load.sh: wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

echo "== bench/load.sh 5 (the project's seeds)"
timeout --kill-after=10 180 bash "$BENCH/load.sh" 5

echo "== bench/soak.py --duration 10 (200 generated articles, files changed every second)"
timeout --kill-after=10 240 "$PYTHON" "$BENCH/soak.py" --duration 10
