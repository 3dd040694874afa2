#!/bin/bash
# bench_small.sh - the scale benchmark (bench/bench_scale.sh, `make bench-scale`) runs end to
# end on a tiny generated corpus: the generator is deterministic by seed, every figure is
# printed (train, model, load, RSS, every mode's latency or "unavailable", accuracy, eval's
# leave-out cost) and the closing table has its row. Figures are not judged here: that is
# `make bench-scale`'s job.
set -u
BUILD=${BUILD:-build}
MF_DATA=${MF_DATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}
PY=${PYTHON:-/usr/bin/python3}
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok - $*"; }
[ -x "$BUILD/malfamd" ] || fail "$BUILD/malfamd missing"
[ -d "$MF_DATA/mal-api-2019-808" ] || fail "shared data missing at $MF_DATA"
T=$(mktemp -d /tmp/malfam-benchsmall.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$(dirname "$0")/../.."

gen() { "$PY" bench/gen_corpus.py --families 5 --refs 40 --test-per-family 2 --seed "$1" \
        --data "$MF_DATA/mal-api-2019-808" --out "$2" > /dev/null || fail "gen_corpus"; }
gen 3 "$T/a"; gen 3 "$T/b"; gen 4 "$T/c"
cmp -s "$T/a/calls.txt.gz" "$T/b/calls.txt.gz" && cmp -s "$T/a/index.csv" "$T/b/index.csv" \
    || fail "same seed, different corpus"
! cmp -s "$T/a/calls.txt.gz" "$T/c/calls.txt.gz" || fail "another seed, same corpus"
[ "$(grep -c ',train$' "$T/a/index.csv")" = 40 ] && [ "$(grep -c ',test$' "$T/a/index.csv")" = 10 ] \
    || fail "expected 40 train + 10 test rows"
ok "gen_corpus: deterministic by seed, R training + held-out rows per family"

# --no-lstm (the train-time target's form): references and linear only, the same file on 1 and
# 2 threads (the SVM classes and calibration's references run over them), the LSTM modes
# unavailable by name; extending a model with it is refused
SRC=(--calls "$T/a/calls.txt.gz" --index "$T/a/index.csv" --api-index "$T/a/ApiIndex.txt")
for t in 1 2; do
    "$BUILD/malfam" train "${SRC[@]}" --no-lstm --threads $t --out "$T/nl$t.model" \
        > /dev/null 2> "$T/nl$t.err" || fail "train --no-lstm: $(cat "$T/nl$t.err")"
done
cmp -s "$T/nl1.model" "$T/nl2.model" || fail "--no-lstm: 1 and 2 threads wrote different models"
grep -q "^malfam train: --no-lstm: .*likelihood and fusion will be unavailable" "$T/nl1.err" \
    || fail "train does not say what --no-lstm leaves out: $(cat "$T/nl1.err")"
"$BUILD/malfam" info "$T/nl1.model" > "$T/info" || fail "info on a --no-lstm model"
for m in likelihood fusion; do
    grep -q "^  $m *unavailable (needs an LSTM per family; this model has none)" "$T/info" \
        || fail "info: $m not unavailable by name: $(cat "$T/info")"
done
grep -q "^  paper *unavailable (needs a pattern per family" "$T/info" || fail "info: paper"
grep -Eq "^  linear +[-0-9.e]+ +\(default\)" "$T/info" || fail "info: linear not the default"
grep -Eq "^  (nn|knn|combo) +[-0-9.e]+$" "$T/info" || fail "info: reference modes missing"
! "$BUILD/malfam" train --model "$T/nl1.model" --add-family x "${SRC[@]}" --no-lstm \
    --out "$T/nl3.model" > /dev/null 2>&1 || fail "--no-lstm with --model accepted"
ok "train --no-lstm: linear + reference modes, same file on 1 and 2 threads, LSTM modes named unavailable"

BENCH_SIZES=5x40 BENCH_REQS=3 BENCH_REPORTS=2 BENCH_MPI=0 BENCH_TEST=2 BENCH_DIR="$T/bench" BUILD=$BUILD \
    PYTHON=$PY MF_DATA=$MF_DATA timeout 600 bash bench/bench_scale.sh > "$T/out" 2>&1 \
    || fail "bench_scale.sh: $(tail -5 "$T/out")"
for k in train_s model_mb load_s rss_load_mb rss_reload_peak_mb accuracy_linear leave_out_s mpi2_speedup; do
    grep -q "^scale_5x40_$k " "$T/out" || fail "no $k figure: $(cat "$T/out")"
done
for m in paper likelihood multiset ngram nn knn combo fusion linear; do
    grep -Eq "^scale_5x40_${m}(_ms 3 p50 [0-9.]+ p99 [0-9.]+| unavailable)" "$T/out" \
        || fail "no latency line for $m: $(cat "$T/out")"
done
# eval's leave-out cost: two families timed, seconds per family and the extrapolation to all
grep -Eq '^scale_5x40_leave_out_s 2 [0-9.]+  \(fam[0-9]+ [0-9.]+ s, fam[0-9]+ [0-9.]+ s; .* --leave-out all ~ F x ' "$T/out" \
    || fail "no leave-out cost: $(grep leave_out "$T/out")"
grep -q '^| 5 x 40 | ' "$T/out" || fail "no table row: $(cat "$T/out")"
ok "bench_scale.sh at 5x40: every figure and the table row"
echo "bench_small: all passed"
