#!/usr/bin/env bash
# Runs every benchmark (--quick unless FULL=1; the service's always in full, as its p99 at
# 64 connections needs more than --quick's 14 requests per connection) on the plain build (.venv) and then on the
# compiled one (.venv-compiled, built by `make compiled`), one after the other, and keeps
# each one's printed tables under benchmarks/results/<build>/<bench>.md. Run it from the
# repository root on an otherwise idle machine: `bash benchmarks/run_all.sh` (BENCHES=... and
# BUILDS=plain|compiled narrow it).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=--quick
[ "${FULL:-0}" = 1 ] && quick=
benches=${BENCHES:-"bench_drive bench_read_floor bench_file_reads bench_aiofiles bench_storage bench_writes bench_wal bench_loop_lag bench_service"}
for build in ${BUILDS:-plain compiled}; do
    python=.venv/bin/python
    [ "$build" = compiled ] && python=.venv-compiled/bin/python
    mkdir -p "benchmarks/results/$build"
    for bench in $benches; do
        echo "== $build $bench" >&2
        # Each script appends the checkout to sys.path, so .venv-compiled's installed
        # (compiled) package is the one imported there.
        flags=$quick
        [ "$bench" = bench_service ] && flags=
        "$python" "benchmarks/$bench.py" $flags > "benchmarks/results/$build/$bench.md"
    done
done
