#!/bin/bash
# mpi.sh - `mpirun -np N malfam train` writes the very model file a single process writes with
# the same seed (cmp), on 1, 2 and 3 ranks (--oversubscribe: this machine has 2 cores), on a
# Mal-API subset with a tiny LSTM (families, the SVM's classes and calibration's rows spread
# over the ranks); a rank that fails fails the job and writes no model. Skips,
# saying why, only when this build has no MPI.
set -u
BUILD=${BUILD:-build}
MALFAM=$(realpath "$BUILD/malfam")
MF_DATA=${MF_DATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok - $*"; }
[ -x "$MALFAM" ] || fail "$BUILD/malfam missing"
D=$MF_DATA/mal-api-2019-808
[ -r "$D/calls.txt.gz" ] || fail "shared data missing at $MF_DATA"
if ! ldd "$MALFAM" | grep -q libmpi; then
    echo "SKIP: $BUILD/malfam is built without MPI (install libopenmpi-dev, rebuild; make MPI=1 insists)"
    exit 0
fi
command -v mpirun >/dev/null || fail "malfam links libmpi but mpirun is missing (openmpi-bin)"
T=$(mktemp -d /tmp/malfam-mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Open MPI's own allocations are not ours to judge under LeakSanitizer; the plain run keeps it
export ASAN_OPTIONS_MPI="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# every 4th training row of the index: 8 families, ~110 samples, calibration stays quick
awk -F, 'NR == 1 || ($3 == "train" && $1 % 4 == 0)' "$D/index.csv" > "$T/index.csv"
ARGS=(--calls "$D/calls.txt.gz" --index "$T/index.csv" --api-index "$D/ApiIndex.txt"
      --epochs 2 --gen-epoch 1 --hidden 8 --embed 4 --dense 8 --max-len 150 --gen-len 60
      --seed 7)
"$MALFAM" train "${ARGS[@]}" --quiet --out "$T/single.model" > "$T/single.out" 2>"$T/err" \
    || fail "single-process train: $(cat "$T/err")"
for n in 1 2 3; do
    # --bind-to none: each rank runs threads (calibration); core binding would serialise them.
    # -np 2 also shows its split (progress on stderr) and trains one family at a time.
    extra=(--quiet); [ $n = 2 ] && extra=(--threads 1)
    ASAN_OPTIONS=$ASAN_OPTIONS_MPI timeout 300 mpirun --bind-to none -np $n "$MALFAM" train \
        "${ARGS[@]}" "${extra[@]}" --out "$T/np$n.model" > "$T/np$n.out" 2>"$T/err" \
        || fail "mpirun -np $n: $(cat "$T/err")"
    cmp "$T/single.model" "$T/np$n.model" || fail "-np $n: model differs from the single process"
    ls "$T" | grep -q "np$n.model." && fail "-np $n: files left beside the output: $(ls "$T")"
    diff <(grep -v '^trained in' "$T/single.out") <(grep -v '^trained in' "$T/np$n.out") \
        || fail "-np $n: the family table differs"
    [ $n = 2 ] && cp "$T/err" "$T/np2.err"
done
ok "mpirun -np 1, 2, 3: model files identical to the single process (cmp)"
grep -q "MPI, 2 ranks; families (tokens) per rank: 4 ([0-9]*) 4 ([0-9]*)" "$T/np2.err" \
    || fail "no even split printed: $(grep MPI "$T/np2.err")"
[ "$(grep -c 'epoch 2/2' "$T/np2.err")" = 4 ] || fail "rank 0 should report its 4 families only"
ok "8 families over 2 ranks, 4 each by tokens; rank 0 alone speaks"
grep -q "MPI; SVM classes per rank: 4 4$" "$T/np2.err" \
    || fail "SVM fits not split over 2 ranks: $(grep SVM "$T/np2.err")"
ok "calibration's SVM classes over 2 ranks, 4 each"
# calibration's rows too: each mode's rows split, rank 1's scored there (it reports its time),
# and still the single-process model (cmp above)
for mode in likelihood combo fusion; do
    grep -Eq "MPI; calibration $mode rows per rank: [1-9][0-9]* \([0-9.]+s\) [1-9][0-9]* \([0-9.]+s\)$" \
        "$T/np2.err" || fail "calibration $mode not spread over 2 ranks: $(grep "calibration $mode" "$T/np2.err")"
done
ok "calibration's rows over 2 ranks (likelihood, combo, fusion), rank 1 scoring its own"

# --reports: extraction sharded by rank (every size-th report each, a scratch vocabulary,
# merged in list order): the same vocabulary, references and model; an unreadable report
# skipped (--skip-bad) on whichever rank reads it, counted once
PY=${PYTHON:-/usr/bin/python3}
printf 'report_path,family\n' > "$T/list.csv"
for r in 0 1 2 3 4 5 6 7 8 9 10 11; do
    "$PY" "$MF_DATA/../tools/gen_report.py" --row $((r * 50)) --calls 300 > "$T/r$r.json" \
        || fail "gen_report"
    echo "r$r.json,fam$((r % 3))" >> "$T/list.csv"
    [ $r = 4 ] && echo "missing.json,famx" >> "$T/list.csv"
done
RARGS=(--reports "$T/list.csv" --skip-bad --epochs 1 --hidden 8 --embed 4 --dense 8
       --gen-len 40 --seed 3 --quiet)
"$MALFAM" train "${RARGS[@]}" --out "$T/rsingle.model" > /dev/null 2>"$T/rsingle.err" \
    || fail "single-process --reports: $(cat "$T/rsingle.err")"
for n in 3; do
    ASAN_OPTIONS=$ASAN_OPTIONS_MPI timeout 300 mpirun --bind-to none -np $n "$MALFAM" train \
        "${RARGS[@]}" --out "$T/rnp$n.model" > /dev/null 2>"$T/err" \
        || fail "mpirun -np $n --reports: $(cat "$T/err")"
    cmp "$T/rsingle.model" "$T/rnp$n.model" || fail "--reports -np $n: model differs"
    grep -q "^malfam train: 1 unreadable reports left out" "$T/err" \
        || fail "-np $n: skipped report not counted once: $(cat "$T/err")"
done
ok "--reports sharded over 3 ranks: identical model, the bad report (rank 2's) counted once"

# a failure on any rank fails the job and leaves no model
rm -f "$T/bad.model"
if ASAN_OPTIONS=$ASAN_OPTIONS_MPI timeout 300 mpirun --bind-to none -np 2 "$MALFAM" train \
    "${ARGS[@]}" --quiet --hidden 0 --out "$T/bad.model" > /dev/null 2>"$T/err"; then
    fail "bad options under mpirun exit 0"
fi
[ ! -e "$T/bad.model" ] || fail "a failed job wrote a model"
grep -q "hidden" "$T/err" || fail "no reason given: $(cat "$T/err")"
ok "a bad run under mpirun fails with its reason and writes nothing"

# a plain run does not join MPI (no MPI_Init without mpirun): it works with no launcher around
env -u OMPI_COMM_WORLD_SIZE "$MALFAM" train --help > /dev/null || fail "plain train --help"
echo "mpi: all passed"
