#!/usr/bin/env bash
# bench_daemon.sh - malfamd under load: requests/s and p50/p99 at 1, 8 and 64 clients for
# generated 1 MB and 100 MB reports, every answer checked against the offline library path,
# daemon RSS before/after; reference = `malfam extract` of the same file in the same run.
# Lines "daemon_<size>_c<clients> n seconds ratio", ratio = daemon p50 / extract time.
set -u
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
MF_DATA=${MF_DATA:-$(cd ../shared/data && pwd)}
GEN=${GEN:-$MF_DATA/../tools/gen_report.py}
MODEL=${MFD_BENCH_MODEL:-${MFD_TEST_MODEL:-$BUILD/demo.model}}
[ -f "$MODEL" ] || MODEL=$BUILD/daemon-test.model   # trained by tests/integration/daemon_common.sh
MODE=${MFD_BENCH_MODE:-knn}
BIG_CALLS=${MFD_BENCH_BIG_CALLS:-330000}   # about 100 MB in the cuckoo2 layout
if [ ! -f "$MODEL" ]; then
    echo "bench_daemon: SKIP (no model: set MFD_BENCH_MODEL or run make demo for $BUILD/demo.model)"
    exit 0
fi
T=$(mktemp -d /tmp/malfamd-bench.XXXXXX)
DPID=
trap '[ -n "$DPID" ] && kill -TERM $DPID 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/root"
"$PY" "$GEN" --row 3 --calls 3300 --format cuckoo2 > "$T/root/r1mb.json"
"$PY" "$GEN" --row 5 --calls 3300 --format cape > "$T/root/r1mb_cape.json"
"$PY" "$GEN" --row 7 --calls "$BIG_CALLS" --format cuckoo2 > "$T/root/r100mb.json"
printf '# reports: 1 MB = %s + %s bytes, 100 MB = %s bytes\n' "$(stat -c %s "$T/root/r1mb.json")" \
    "$(stat -c %s "$T/root/r1mb_cape.json")" "$(stat -c %s "$T/root/r100mb.json")"

# reference: offline extraction of the same files (best of 3)
ext_ms() {
    local best=999999999 t0 t
    for _ in 1 2 3; do
        t0=$(date +%s%N); "$BUILD/malfam" extract "$1" > /dev/null; t=$(( ($(date +%s%N) - t0) / 1000 ))
        [ $t -lt $best ] && best=$t
    done
    echo "scale=3; $best / 1000" | bc
}
E1=$(ext_ms "$T/root/r1mb.json"); E100=$(ext_ms "$T/root/r100mb.json")
echo "extract_1MB 1 $(echo "scale=6; $E1 / 1000" | bc) 1.000"
echo "extract_100MB 1 $(echo "scale=6; $E100 / 1000" | bc) 1.000"

cat > "$T/d.conf" <<CONF
socket = $T/s.sock
model = $(realpath "$MODEL")
allowed_roots = $T/root
mode = $MODE
max_jobs = $(nproc)
max_queue = 1024
max_report_bytes = 1G
log_level = warn
CONF
"$BUILD/malfamd" -c "$T/d.conf" --foreground 2> "$T/daemon.log" &
DPID=$!
for _ in $(seq 200); do [ -S "$T/s.sock" ] && break; sleep 0.05; done
echo "# daemon RSS at start: $(grep VmRSS /proc/$DPID/status | awk '{print $2}') KiB (model $(stat -c %s "$MODEL") bytes on disk)"

run() { # run NAME CLIENTS REQS EXTRACT_MS FILES...
    local name=$1 c=$2 n=$3 ref=$4; shift 4
    local out; out=$("$BUILD/bench_load" -s "$T/s.sock" -c "$c" -n "$n" --stream 20 --invalid 5 \
        --model "$MODEL" --mode "$MODE" --name "$name" "$@") || echo "!! $name: unexpected answers"
    echo "$out" | grep '^#'
    echo "$out" | grep -v '^#' | awk -v r="$ref" '{printf "%s %s %s %.3f\n", $1, $2, $3, $4 / r}'
}
for c in 1 8 64; do run "daemon_1MB_c$c" $c 40 "$E1" "$T/root/r1mb.json" "$T/root/r1mb_cape.json"; done
for c in 1 8; do run "daemon_100MB_c$c" $c 3 "$E100" "$T/root/r100mb.json"; done
run daemon_100MB_c64 64 1 "$E100" "$T/root/r100mb.json"
echo "# daemon RSS at the end: $(grep VmRSS /proc/$DPID/status | awk '{print $2}') KiB, peak $(grep VmHWM /proc/$DPID/status | awk '{print $2}') KiB"
kill -TERM $DPID; wait $DPID; DPID=
