#!/usr/bin/env bash
# bench_score.sh - scoring speed per mode (bench/bench_score.c), run by bench/run.sh.
# One BLAS thread so the likelihood figure compares with the LSTM bench.
set -euo pipefail
BUILD=${BUILD:-build}
echo "== bench_score: one 10k-call trace vs 100 families; name n seconds-per-trace ratio-to-one-pass"
OPENBLAS_NUM_THREADS=1 "$BUILD/bench_score" "${BENCH_SECONDS:-1}"
