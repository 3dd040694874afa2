#!/bin/bash
# bench_lstm.sh - LSTM language model speed, run by bench/run.sh (make bench).
#
# Lines are `name n seconds ratio`:
#   sgemm_peak, sgemm_naive, lstm_train, lstm_flops, lstm_loglik   from $BUILD/bench_lstm
#   torch_train          tokens seconds tokens/s   bench/torch_lstm.py, same configuration
#   lstm_vs_torch        C-tokens/s torch-tokens/s ratio  (target >= 1.5)
#   train_model          tokens seconds tokens/s   malfam train, Mal-API train split, 2 threads
#   torch_model          tokens seconds ratio      torch, same families and settings, 2 processes;
#                                                  ratio = torch time / malfam time
# Both sides run under the same environment (OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE untouched),
# one BLAS thread each. BENCH_SECS sets the seconds per throughput figure (default 3);
# BENCH_SKIP_MODEL=1 skips the two whole-model runs (a few minutes).
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
DATA=${MF_DATA:-../shared/data}/mal-api-2019-808
SECS=${BENCH_SECS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
export OPENBLAS_NUM_THREADS=1

echo "# lstm: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset} OPENBLAS_NUM_THREADS=1"
out=$("$BUILD/bench_lstm" "$SECS") || { echo "bench_lstm failed" >&2; exit 1; }
echo "$out"
c_tps=$(echo "$out" | awk '$1 == "lstm_train" { print $4 }')

if t_out=$("$PYTHON" "$HERE/torch_lstm.py" "$SECS" 2>/dev/null); then
    echo "$t_out"
    t_tps=$(echo "$t_out" | awk '$1 == "torch_train" { print $4 }')
    awk -v c="$c_tps" -v t="$t_tps" 'BEGIN { printf "lstm_vs_torch %.0f %.0f %.2f\n", c, t, c / t }'
else
    echo "# torch_lstm.py: PyTorch unavailable under $PYTHON, comparison skipped"
    t_tps=""
fi

[ "${BENCH_SKIP_MODEL:-0}" = 1 ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BUILD/malfam" train --calls "$DATA/calls.txt.gz" --index "$DATA/index.csv" \
    --api-index "$DATA/ApiIndex.txt" --threads 2 --quiet --out "$tmp/model.bin" > "$tmp/train.txt" \
    || { echo "malfam train failed" >&2; exit 1; }
tokens=$(awk 'NR > 1 && NF >= 5 && $2 ~ /^[0-9]+$/ { s += $2 } END { print s }' "$tmp/train.txt")
secs=$(awk '$1 == "trained" { sub("s,", "", $3); print $3 }' "$tmp/train.txt")
epochs=20
awk -v n="$tokens" -v s="$secs" -v e=$epochs \
    'BEGIN { printf "train_model %d %.1f %.0f\n", n, s, n * e / s }'
if [ -n "$t_tps" ]; then
    # the same job for torch: each family's token count, default settings, 2 at a time
    t0=$(date +%s.%N)
    awk 'NR > 1 && NF >= 5 && $2 ~ /^[0-9]+$/ { print $2 }' "$tmp/train.txt" |
        xargs -P 2 -I{} "$PYTHON" "$HERE/torch_lstm.py" --family {} $epochs > /dev/null
    t1=$(date +%s.%N)
    awk -v n="$tokens" -v a="$t0" -v b="$t1" -v s="$secs" \
        'BEGIN { printf "torch_model %d %.1f %.2f\n", n, b - a, (b - a) / s }'
fi
