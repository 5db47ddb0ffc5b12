#!/usr/bin/env bash
# Load test: `feedsvc serve` (granian, preload, as in production) on a free loopback port,
# then wrk with 64 connections for DURATION seconds over a mix of routes (bench/mix.py,
# bench/mix.lua): topic feeds in every format, with and without gzip, previews, the index,
# OPML, /healthz, and If-None-Match revalidations (304).
#
# usage: bench/load.sh [DURATION] [--seeds DIR | --corpus N [--seed S]] [--connections C] [--threads T]
#   DURATION     seconds of load (default: $DURATION, else 30)
#   --seeds DIR  serve this folder (default: the project's seeds/)
#   --corpus N   serve N articles made by bench/gen_corpus.py (seed S, default 1) in a temp folder
# environment: DURATION, CONNECTIONS (64), THREADS (2), FEEDSVC_WORKERS (2), WRK_TIMEOUT (2s),
#   FEEDSVC (the feedsvc command; default .venv/bin/feedsvc), PYTHON (default .venv/bin/python),
#   FEEDSVC_CACHE_DIR (default: a folder in the temp folder, so every run starts cold),
#   KEEP_LOGS=1 keeps the temp folder (server log, wrk output, mix).
#
# Reports requests/s, p50/p99 latency, status counts and socket errors; exits 1 on any socket
# error, any status that is not 2xx/304, any 5xx, or an error in the server's log. The server is
# always stopped. Installs nothing: needs wrk on PATH.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
WORKERS=${FEEDSVC_WORKERS:-2}
WRK_TIMEOUT=${WRK_TIMEOUT:-2s}
SEEDS="$ROOT/seeds"
CORPUS=""
CORPUS_SEED=1

die() { echo "load.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) SEEDS=${2:?--seeds needs a folder}; shift 2 ;;
        --corpus) CORPUS=${2:?--corpus needs a count}; shift 2 ;;
        --seed) CORPUS_SEED=${2:?--seed needs a number}; shift 2 ;;
        --connections) CONNECTIONS=${2:?}; shift 2 ;;
        --threads) THREADS=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        [0-9]*) DURATION=$1; shift ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -gt 0 ] || die "DURATION must be a whole number of seconds, not '$DURATION'"

command -v wrk >/dev/null 2>&1 || die "wrk is not installed (it is not on PATH). Install it, e.g. 'apt-get install -y wrk' on Debian/Ubuntu, 'brew install wrk' on macOS."
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
FEEDSVC=${FEEDSVC:-$ROOT/.venv/bin/feedsvc}
[ -x "$PYTHON" ] || die "no Python at $PYTHON: create the venv (see README) or set PYTHON"
[ -x "$FEEDSVC" ] || FEEDSVC=$(command -v feedsvc) || die "no feedsvc command: install the project (see README) or set FEEDSVC"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/feedsvc-load.XXXXXX")
SERVER_PID=""
WRK_PID=""

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 150); do  # feedsvc.server.GRACEFUL_TIMEOUT is 10 s
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "load.sh: server $SERVER_PID did not stop on SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    local status=$?
    if [ -n "$WRK_PID" ] && kill -0 "$WRK_PID" 2>/dev/null; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    stop_server
    if [ "${KEEP_LOGS:-0}" = 1 ]; then
        echo "load.sh: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$CORPUS" ]; then
    SEEDS="$WORK/corpus"
    "$PYTHON" "$BENCH/gen_corpus.py" "$SEEDS" --count "$CORPUS" --seed "$CORPUS_SEED"
fi
[ -d "$SEEDS" ] || die "no folder $SEEDS"

PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE="http://127.0.0.1:$PORT"
LOG="$WORK/server.log"
echo "load.sh: feedsvc serve --seeds $SEEDS on $BASE ($WORKERS workers)"
# The parse cache goes to the temp folder: a cold start, as CI has, and nothing left in ~/.cache.
FEEDSVC_CACHE_DIR=${FEEDSVC_CACHE_DIR:-$WORK/cache} FEEDSVC_WORKERS=$WORKERS "$FEEDSVC" serve --seeds "$SEEDS" --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" >"$LOG" 2>&1 &
SERVER_PID=$!

# Wait until it answers (or dies).
ready=0
for _ in $(seq 1 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "load.sh: the server exited before answering; its log:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    if "$PYTHON" - "$BASE/healthz" <<'EOF' 2>/dev/null; then
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as answer:
    sys.exit(0 if answer.status == 200 else 1)
EOF
        ready=1
        break
    fi
    sleep 0.1
done
[ "$ready" = 1 ] || { echo "load.sh: the server did not answer /healthz within 30 s; its log:" >&2; cat "$LOG" >&2; exit 1; }

"$PYTHON" "$BENCH/mix.py" "$BASE" "$WORK/mix.txt" || { tail -n 50 "$LOG" >&2; exit 1; }

echo "load.sh: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --timeout $WRK_TIMEOUT --latency"
# In the background, so that a SIGINT/SIGTERM is handled at once (bash runs traps between commands).
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
    -s "$BENCH/mix.lua" "$BASE" -- "$WORK/mix.txt" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!
wrk_status=0
wait "$WRK_PID" || wrk_status=$?
WRK_PID=""
cat "$WORK/wrk.out"
[ "$wrk_status" = 0 ] || echo "load.sh: wrk exited with status $wrk_status" >&2

alive=1
kill -0 "$SERVER_PID" 2>/dev/null || alive=0
stop_server

# Summary and verdict.
RESULT=$(grep '^MIXRESULT ' "$WORK/wrk.out" | tail -n 1 || true)
[ -n "$RESULT" ] || { echo "load.sh: FAIL: wrk printed no result line" >&2; exit 1; }
get() { echo "$RESULT" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f ms", us / 1000 }'; }
socket_errors=$(( $(get connect) + $(get read) + $(get write) + $(get timeout) ))
bad_status=$(( $(get s3xx) + $(get s4xx) + $(get s5xx) + $(get other) ))
# Server-side errors: tracebacks, granian's "[ERROR] Unexpected exit from worker-N" (a crash), a
# worker killed because it did not stop within the graceful timeout, 5xx in the access log.
grep -E ' (ERROR|CRITICAL) |\[(ERROR|CRITICAL)\]|Traceback|refused to gracefully stop' "$LOG" >"$WORK/server-errors.txt" || true
access_5xx=$(grep -cE '" 5[0-9][0-9] ' "$LOG" || true)
server_errors=$(wc -l <"$WORK/server-errors.txt")

echo
echo "== load.sh summary ($([ -n "$CORPUS" ] && echo "generated corpus of $CORPUS articles" || echo "$SEEDS"), ${DURATION}s, $CONNECTIONS connections, $WORKERS workers)"
echo "requests:        $(get requests) ($(get rps) requests/s)"
echo "latency:         p50 $(ms "$(get p50_us)"), p90 $(ms "$(get p90_us)"), p99 $(ms "$(get p99_us)"), max $(ms "$(get max_us)")"
echo "statuses:        2xx $(get s2xx), 304 $(get s304), other 3xx $(get s3xx), 4xx $(get s4xx), 5xx $(get s5xx), other $(get other)"
echo "non-2xx/3xx:     $(get status_errors) (wrk's count: 4xx and 5xx)"
echo "socket errors:   connect $(get connect), read $(get read), write $(get write), timeout $(get timeout)"
echo "server log:      $server_errors error lines, $access_5xx 5xx in the access log"

failed=0
[ "$socket_errors" -eq 0 ] || { echo "load.sh: FAIL: $socket_errors socket errors" >&2; failed=1; }
[ "$bad_status" -eq 0 ] || { echo "load.sh: FAIL: $bad_status responses that are not 2xx/304 ($(get s5xx) of them 5xx)" >&2; failed=1; }
[ "$(get status_errors)" -eq 0 ] || { echo "load.sh: FAIL: wrk counted $(get status_errors) non-2xx/3xx responses" >&2; failed=1; }
[ "$(get requests)" -gt 0 ] || { echo "load.sh: FAIL: no request completed" >&2; failed=1; }
[ "$access_5xx" -eq 0 ] || { echo "load.sh: FAIL: $access_5xx 5xx responses in the server's access log" >&2; failed=1; }
[ "$alive" = 1 ] || { echo "load.sh: FAIL: the server died during the run" >&2; failed=1; }
if [ "$server_errors" -gt 0 ]; then
    echo "load.sh: FAIL: errors in the server's log (first 40 lines):" >&2
    head -n 40 "$WORK/server-errors.txt" >&2
    failed=1
fi
if [ "$failed" = 0 ]; then
    echo "load.sh: OK"
else
    echo "load.sh: server log tail:" >&2
    grep -v '"GET ' "$LOG" | tail -n 30 >&2
fi
exit "$failed"
