#!/bin/bash
# bench_small.sh - the scale benchmark (bench/bench_scale.sh, `make bench-scale`) runs end to
# end on a tiny generated corpus: the generator is deterministic by seed, every figure is
# printed (train, model, load, RSS, every mode's latency or "unavailable", accuracy) and the
# closing table has its row. Figures are not judged here: that is `make bench-scale`'s job.
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

BENCH_SIZES=5x40 BENCH_REQS=3 BENCH_REPORTS=2 BENCH_MPI=0 BENCH_TEST=2 BENCH_DIR="$T/bench" BUILD=$BUILD \
    PYTHON=$PY MF_DATA=$MF_DATA timeout 600 bash bench/bench_scale.sh > "$T/out" 2>&1 \
    || fail "bench_scale.sh: $(tail -5 "$T/out")"
for k in train_s model_mb load_s rss_load_mb rss_reload_peak_mb accuracy_linear mpi2_speedup; do
    grep -q "^scale_5x40_$k " "$T/out" || fail "no $k figure: $(cat "$T/out")"
done
for m in paper likelihood multiset ngram nn knn combo fusion linear; do
    grep -Eq "^scale_5x40_${m}(_ms 3 p50 [0-9.]+ p99 [0-9.]+| unavailable)" "$T/out" \
        || fail "no latency line for $m: $(cat "$T/out")"
done
grep -q '^| 5 x 40 | ' "$T/out" || fail "no table row: $(cat "$T/out")"
ok "bench_scale.sh at 5x40: every figure and the table row"
echo "bench_small: all passed"
