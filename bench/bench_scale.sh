#!/usr/bin/env bash
# bench_scale.sh - issue 16's scale benchmark: for each F x R in BENCH_SIZES, a corpus (8x441 is
# the real Mal-API train split; other sizes come from bench/gen_corpus.py, F families of mutated
# real seed traces, R training references, a held-out split), then
#   train time and peak RSS (`malfam train`, LSTM made tiny: BENCH_TRAIN), model size,
#   daemon load time (start -> first "ping" answer), RSS after load (once the default mode has
#   served BENCH_REQS requests), peak RSS through a reload made while a client keeps asking,
#   p50/p99 per 1,000-call report in every mode (one client; "unavailable" when the model
#   cannot serve a mode), accuracy of the default mode on the held-out split (`malfam eval`),
#   the cost of `malfam eval --mode linear --leave-out A,B` (two families: seconds per family
#   left out, from eval's progress lines, and F x that for --leave-out all),
#   MPI speedup at 2 ranks on the same training, one core per rank (mpirun --bind-to core,
#   --threads 1): whole run and the distributed family phase ("trained in").
# Each figure is printed against its target (the issue's, set for 500x50000) and a table closes.
#   BENCH_SIZES  "8x441" (make bench; make bench-scale: "8x441 100x5000 500x50000")
#   BENCH_REQS   requests per mode [40]     BENCH_MPI  0 = skip the MPI runs [1]
#   BENCH_DIR    where corpora and models go [$BUILD/bench-scale] (corpora are kept)
#   BENCH_TEST   held-out samples per family [4]   BENCH_REPORTS  latency reports [5]
#   BENCH_GEN    more gen_corpus.py options (a cached corpus is reused: remove it to change)
#   BENCH_TRAIN  training options [tiny LSTM]; BENCH_TRAIN_BIG those from F x R >= 10^7 on
#                [--no-lstm: the issue's train target excludes the LSTM, and the LSTM modes'
#                calibration costs F networks per sample]
#   BENCH_REUSE  1 = a model left in BENCH_DIR by an earlier run is used, not retrained
#                (train time then "reused") [0]
set -u
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
MF_DATA=${MF_DATA:-$(cd "$(dirname "$0")/../../shared/data" && pwd)}
HERE=$(cd "$(dirname "$0")" && pwd)
SIZES=${BENCH_SIZES:-8x441}
REQS=${BENCH_REQS:-40}
DIR=${BENCH_DIR:-$BUILD/bench-scale}
TRAIN=${BENCH_TRAIN:---epochs 1 --hidden 8 --embed 4 --dense 8 --gen-len 200}
TRAIN_BIG=${BENCH_TRAIN_BIG:---no-lstm}
MODES="paper likelihood multiset ngram nn knn combo fusion linear"
MALAPI=$MF_DATA/mal-api-2019-808
MALFAM=$(realpath "$BUILD/malfam") MALFAMD=$(realpath "$BUILD/malfamd")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x "$MALFAM" ] && [ -x "$MALFAMD" ] || { echo "bench_scale: build first (make all)"; exit 1; }
mkdir -p "$DIR"
DIR=$(realpath "$DIR")
T=$(mktemp -d /tmp/malfam-scale.XXXXXX)
DPID=
trap '[ -n "$DPID" ] && kill -TERM $DPID 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/root"
for r in $(seq 1 2 $((2 * ${BENCH_REPORTS:-5}))); do   # 1,000-call reports around real traces
    "$PY" "$MF_DATA/../tools/gen_report.py" --row $r --calls 1000 > "$T/root/r$r.json" || exit 1
done
has_mpi=0
ldd "$MALFAM" | grep -q libmpi && command -v mpirun > /dev/null && has_mpi=1
target() { echo "target(500x50000) $1"; }
rss() { awk -v k="$2:" '$1 == k {print int($2 / 1024)}' /proc/$1/status; }
TABLE="| F x R | train | model | load | RSS load | RSS peak reload | $(echo $MODES | sed 's/ / p50 | /g') p50 | accuracy | leave-out / family (all) | MPI x2 |
|---|---|---|---|---|---|$(for m in $MODES; do printf -- '---|'; done)---|---|---|"
fail=0
for size in $SIZES; do
    F=${size%x*} R=${size#*x}
    C=$DIR/c$size
    if [ "$size" = 8x441 ]; then
        C=$MALAPI
    elif [ ! -s "$C/calls.txt.gz" ]; then
        "$PY" "$HERE/gen_corpus.py" --families "$F" --refs "$R" --test-per-family "${BENCH_TEST:-4}" \
            --seed 1 ${BENCH_GEN:-} --data "$MALAPI" --out "$C" || { echo "!! $size: corpus"; fail=1; continue; }
    fi
    SRC=(--calls "$C/calls.txt.gz" --index "$C/index.csv" --api-index "$C/ApiIndex.txt")
    M=$DIR/m$size.model
    TR=$TRAIN
    [ $((F * R)) -ge 10000000 ] && TR=$TRAIN_BIG
    echo "## $size: corpus $C, train options: $TR"
    if [ "${BENCH_REUSE:-0}" = 1 ] && [ -s "$M" ]; then
        echo "scale_${size}_train_s 1 reused  ($M from an earlier run)"; tr_s=reused
    else
        /usr/bin/time -f "%e %M" -o "$T/time" "$MALFAM" train "${SRC[@]}" $TR --quiet --out "$M" \
            > "$T/train.out" 2> "$T/train.err" || { echo "!! $size: train: $(tail -3 "$T/train.err")"; fail=1; continue; }
        read -r tr_s tr_kb < "$T/time"
        echo "scale_${size}_train_s 1 $tr_s  peak RSS $((tr_kb / 1024)) MB  $(target '<= 900 s (15 min, LSTM excluded)')"
    fi
    msize=$(stat -L -c %s "$M")
    mb=$(awk -v b="$msize" 'BEGIN {printf "%.1f", b / 1048576}')
    echo "scale_${size}_model_mb 1 $mb"

    cat > "$T/d.conf" <<CONF
socket = $T/s.sock
model = $M
allowed_roots = $T/root
max_jobs = 1
max_queue = 64
log_level = warn
CONF
    rm -f "$T/s.sock"
    t0=$(date +%s.%N)
    "$MALFAMD" -c "$T/d.conf" --foreground 2> "$T/daemon.log" &
    DPID=$!
    load_s=$("$PY" "$HERE/scale_client.py" wait "$T/s.sock" 3600 "$t0")
    if [ "$load_s" = timeout ] || ! kill -0 $DPID 2>/dev/null; then
        echo "!! $size: daemon did not start: $(tail -3 "$T/daemon.log")"; fail=1; DPID=; continue
    fi
    rss_cold=$(rss $DPID VmRSS)
    read -r dmode _ < <("$PY" "$HERE/scale_client.py" stats "$T/s.sock")
    reports=("$T"/root/r*.json)
    echo "scale_${size}_load_s 1 $load_s  $(target '<= 2 s')"
    # RSS once the default mode has served: LINR's weights are a mapping of the model file,
    # resident as reports touch them, so RSS before any request would flatter the figure
    "$PY" "$HERE/scale_client.py" lat "$T/s.sock" "$dmode" "$REQS" "${reports[@]}" > /dev/null
    rss_load=$(rss $DPID VmRSS) anon=$(rss $DPID RssAnon) file=$(rss $DPID RssFile)
    echo "scale_${size}_rss_load_mb 1 $rss_load  (after $REQS $dmode requests: anonymous $anon MB, file-backed $file MB; $rss_cold MB before any)  $(target '<= 300 MB')"
    # the reload while another client keeps asking: nothing may fail, and the peak counts both
    # models while the old one finishes its requests
    read -r reload_s busy_ok busy_failed < <("$PY" "$HERE/scale_client.py" busy-reload "$T/s.sock" "$dmode" "${reports[@]}")
    rss_peak=$(rss $DPID VmHWM) rss_after=$(rss $DPID VmRSS)
    echo "scale_${size}_rss_reload_peak_mb 1 $rss_peak  (reload ${reload_s} s under load: $busy_ok answered, ${busy_failed:-?} failed; RSS after $rss_after MB)  $(target "<= 1.5 x load = $((rss_load * 3 / 2)) MB")"
    [ "${busy_failed:-1}" = 0 ] || { echo "!! $size: requests failed through the reload"; fail=1; }
    row="| $F x $R | ${tr_s} s | $mb MB | $load_s s | $rss_load MB | $rss_peak MB |"
    for mode in $MODES; do
        out=$("$PY" "$HERE/scale_client.py" lat "$T/s.sock" "$mode" "$REQS" "${reports[@]}")
        if [ "${out%% *}" = unavailable ]; then
            echo "scale_${size}_${mode} unavailable (${out#unavailable })"; row="$row n/a |"
        else
            read -r p50 p99 <<< "$out"
            tgt=""; [ "$mode" = "$dmode" ] && tgt="  (default mode) $(target '<= 10 ms p50')"
            echo "scale_${size}_${mode}_ms $REQS p50 $p50 p99 $p99$tgt"; row="$row $p50 |"
        fi
    done
    kill -TERM $DPID; wait $DPID 2>/dev/null; DPID=

    acc=$("$MALFAM" eval --model "$M" "${SRC[@]}" --split test --mode "$dmode" 2>&1 |
          awk -v m="$dmode" '$1 == m && $2 ~ /^[0-9]+$/ {print $3; exit}')
    echo "scale_${size}_accuracy_${dmode} 1 ${acc:-?}  (top-1 on the held-out split, malfam eval)"
    row="$row ${acc:-?} |"

    # eval's open-set cost: each family left out refits linear's SVM over the other F - 1
    # families and the out-of-fold fits that calibrate its threshold (5, or 1 beyond 2,000 references); timed on two families
    # with held-out samples (eval's progress line after each gives its seconds)
    two=$(awk -F, 'NR > 1 && $3 == "test" && !seen[$2]++ {print $2}' "$C/index.csv" | head -2 |
          paste -sd,)
    /usr/bin/time -f "%e" -o "$T/time" "$MALFAM" eval --model "$M" "${SRC[@]}" --split test \
        --mode linear --leave-out "$two" > "$T/lo.out" 2> "$T/lo.err" ||
        { echo "!! $size: eval --leave-out $two: $(tail -3 "$T/lo.err")"; fail=1; }
    lo=$(sed -nE 's/^malfam eval: leave-out [0-9]+\/[0-9]+ linear (.*) \(([0-9.]+) s, ETA .*/\1 \2/p' "$T/lo.err" |
         awk -v F="$F" -v w="$(tail -1 "$T/time")" '
             function dur(x) {return x < 100 ? sprintf("%.0f s", x) : x < 6000 ? sprintf("%.0f min", x / 60) : sprintf("%.1f h", x / 3600)}
             {n++; sum += $2; each = each sprintf("%s%s %.1f s", n > 1 ? ", " : "", $1, $2)}
             END {if (n == 0) exit; per = sum / n; all = F * per + (w - sum)
                  printf "%.2f  (%s; whole eval %.1f s) --leave-out all ~ F x %.2f s + %.1f s (loading, the table) = %s",
                         per, each, w, per, w - sum, dur(all)}')
    [ -n "$lo" ] || { echo "!! $size: no leave-out progress line: $(tail -3 "$T/lo.err")"; fail=1; }
    echo "scale_${size}_leave_out_s 2 ${lo:-?}"
    row="$row ${lo%% *} s (${lo##* = }) |"

    if [ "${BENCH_MPI:-1}" = 1 ] && [ $has_mpi = 1 ]; then
        for n in 1 2; do
            t0=$(date +%s.%N)
            mpirun --bind-to core --oversubscribe -np $n "$MALFAM" train "${SRC[@]}" $TR \
                --threads 1 --quiet --out "$T/mpi$n.model" > "$T/mpi$n.out" 2> "$T/mpi.err" ||
                { echo "!! $size: mpirun -np $n: $(tail -3 "$T/mpi.err")"; fail=1; }
            eval "mpi_total$n=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')"
            eval "mpi_phase$n=$(awk '/^trained in/ {sub("s,", "", $3); print $3}' "$T/mpi$n.out")"
        done
        cmp -s "$T/mpi1.model" "$T/mpi2.model" || { echo "!! $size: 1 and 2 ranks wrote different models"; fail=1; }
        sp=$(awk -v a="$mpi_total1" -v b="$mpi_total2" 'BEGIN {printf "%.2f", a / b}')
        spf=$(awk -v a="$mpi_phase1" -v b="$mpi_phase2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
        echo "scale_${size}_mpi2_speedup 1 $sp  (whole train ${mpi_total1} s -> ${mpi_total2} s; family phase ${mpi_phase1} s -> ${mpi_phase2} s = ${spf}x)  $(target '>= 1.7')"
        row="$row ${sp}x (families ${spf}x) |"
    else
        echo "scale_${size}_mpi2_speedup unavailable (BENCH_MPI=0 or a build without MPI)"
        row="$row n/a |"
    fi
    TABLE="$TABLE
$row"
done
echo "# scale table (default mode: ${dmode:-?}; latency = p50 ms per 1,000-call report, one client)"
echo "$TABLE"
exit $fail
