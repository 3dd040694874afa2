#!/usr/bin/env bash
# make demo: train (or reuse) a model on the Mal-API train split, start malfamd on a private
# socket, label generated and real reports through it, print the answers and the eval table
# of every mode on the test split, the same table for a (reused) kairos-mist model of real
# families, run each Cuckoo/CAPE adapter once, stop the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
MF_DATA=${MF_DATA:-$(cd ../shared/data && pwd)}
export MF_DATA
D=$MF_DATA/mal-api-2019-808
DEMO=$(pwd)/$BUILD/demo
MODEL=$(pwd)/$BUILD/demo.model
mkdir -p "$DEMO/reports"
say() { printf '\n== %s\n' "$*"; }

say "1. model: per-family LSTM on the train split ($MODEL)"
if [ -s "$MODEL" ] && [ "$MODEL" -nt "$BUILD/malfam" ]; then
    echo "reusing $MODEL (delete it to retrain)"
else
    "$BUILD/malfam" train --calls "$D/calls.txt.gz" --index "$D/index.csv" \
        --api-index "$D/ApiIndex.txt" --split train --out "$MODEL" --quiet
fi

say "2. reports: generated from test-split traces (Cuckoo 2 and CAPE layouts) and real ones"
rm -f "$DEMO"/reports/*.json
n=0
while IFS=, read -r row label split _; do
    [ "$split" = test ] || continue
    n=$((n + 1)); [ $((n % 23)) -eq 1 ] || continue        # a spread of test rows
    fmt=cuckoo2; [ $((n % 2)) -eq 0 ] && fmt=cape
    "$PYTHON" "$MF_DATA/../tools/gen_report.py" --row "$row" --format $fmt \
        > "$DEMO/reports/gen_row${row}_${label}.json"
done < <(tail -n +2 "$D/index.csv")
for f in "$MF_DATA"/reports/*.json "$MF_DATA"/reports/*.json.gz; do
    b=$(basename "$f" .gz)
    if [ "${f%.gz}" != "$f" ]; then gzip -dc "$f" > "$DEMO/reports/real_$b"; else cp "$f" "$DEMO/reports/real_$b"; fi
done
chmod u+w "$DEMO"/reports/*.json
ls "$DEMO/reports" | sed 's/^/  /'

say "3. daemon: malfamd on $DEMO/malfamd.sock"
cat > "$DEMO/malfamd.conf" <<CONF
[malfamd]
socket = $DEMO/malfamd.sock
model = $MODEL
allowed_roots = $DEMO
log = stderr
log_level = info
CONF
"$BUILD/malfamd" --check-config -c "$DEMO/malfamd.conf"
"$BUILD/malfamd" -c "$DEMO/malfamd.conf" --foreground 2> "$DEMO/malfamd.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -S "$DEMO/malfamd.sock" ] && break; sleep 0.1; done

say "4. label: classify + write back through the daemon"
"$BUILD/malfam" label --socket "$DEMO/malfamd.sock" "$DEMO"/reports/*.json
echo
echo "what landed in the reports (top-level key \"malfam\"):"
for f in "$DEMO"/reports/*.json; do
    "$PYTHON" - "$f" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
m = r.get("malfam", {})
truth = (r.get("info", {}).get("custom") or "").replace("label=", "") or "-"
# the answer's verdict: one confidence number (p, or the raw score named as such)
print("  %-48s truth %-10s -> %s" % (os.path.basename(sys.argv[1])[:48], truth,
                                     m.get("verdict") or m.get("error") or "(no answer)"))
PY
done

say "5. eval: every mode on the test split (fixed split from index.csv)"
"$BUILD/malfam" eval --model "$MODEL" --calls "$D/calls.txt.gz" --index "$D/index.csv" \
    --api-index "$D/ApiIndex.txt" --split test --mode all \
    --json "$BUILD/eval.json" --svg "$BUILD/eval.svg" | tee "$BUILD/eval.txt"
echo "eval JSON: $BUILD/eval.json, SVG: $BUILD/eval.svg"
say "5b. eval: real families (kairos-mist, MIST traces, 10 families), every mode on its test split"
K=$MF_DATA/kairos-mist
KMODEL=$(pwd)/$BUILD/demo-kairos.model
if [ -s "$KMODEL" ] && [ "$KMODEL" -nt "$BUILD/malfam" ]; then
    echo "reusing $KMODEL (delete it to retrain)"
else
    "$BUILD/malfam" train --calls "$K/calls.txt.gz" --index "$K/index.csv" \
        --api-index "$K/ApiIndex.txt" --split train --out "$KMODEL" --quiet
fi
"$BUILD/malfam" eval --model "$KMODEL" --calls "$K/calls.txt.gz" --index "$K/index.csv" \
    --api-index "$K/ApiIndex.txt" --split test --mode all > "$BUILD/eval-kairos.txt"
sed -n '1,/^$/p' "$BUILD/eval-kairos.txt"

say "5c. unknown families: each kairos-mist family left out in turn, default mode, test split"
"$BUILD/malfam" eval --model "$KMODEL" --calls "$K/calls.txt.gz" --index "$K/index.csv" \
    --api-index "$K/ApiIndex.txt" --split test --mode linear --leave-out all --quiet \
    | sed -n '/^open set/,$p' > "$BUILD/leave-out-kairos.txt"
cat "$BUILD/leave-out-kairos.txt"
echo "the same with a model trained with --lin-nov 5 (the compression-distance novelty; an"
echo "option, not the default: it loses on Mal-API's train split), mean over the ten:"
"$BUILD/malfam" train --calls "$K/calls.txt.gz" --index "$K/index.csv" --api-index "$K/ApiIndex.txt" \
    --split train --no-lstm --lin-nov 5 --out "$BUILD/demo-kairos-nov5.model" --quiet > /dev/null
"$BUILD/malfam" eval --model "$BUILD/demo-kairos-nov5.model" --calls "$K/calls.txt.gz" \
    --index "$K/index.csv" --api-index "$K/ApiIndex.txt" --split test --mode linear --leave-out all --quiet \
    | sed -n '/^open set/,$p' > "$BUILD/leave-out-kairos-nov5.txt"
grep 'mean of' "$BUILD/leave-out-kairos-nov5.txt"

say "6. adapters: Cuckoo 2 processing + CAPE reporting modules against the live daemon"
if [ -f cuckoo_module/demo_adapters.py ]; then
    "$PYTHON" cuckoo_module/demo_adapters.py --socket "$DEMO/malfamd.sock" \
        --workdir "$DEMO/hosts" --out "$BUILD" || echo "(adapter demo reported errors)"
fi

say "7. daemon stats, then stop"
"$PYTHON" - "$DEMO/malfamd.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"op":"stats","id":1}\n'); print(" ", s.makefile().readline().strip())
PY
kill -TERM $pid; wait $pid || true; trap - EXIT
tail -n 3 "$DEMO/malfamd.log"

say "8. CAPE web page: the real analysis page with the malfam tab, known and unknown answer"
if "$PYTHON" -c 'import django' 2>/dev/null; then
    "$PYTHON" tests/hosts/cape_web_render.py --out "$BUILD" || echo "(CAPE web render failed)"
else
    echo "skipped: Django is a test package (make deps-test installs it)"
fi

say "summary: accuracy of every mode on the test split (top-1, top-3, macro-F1 of top-1)"
echo "Mal-API-2019 (8 AV categories):"
sed -n '1,/^$/p' "$BUILD/eval.txt"
echo "kairos-mist (10 real families):"
sed -n '1,/^$/p' "$BUILD/eval-kairos.txt"
echo "kairos-mist, a family never seen (mean over the ten left out in turn):"
grep 'mean of' "$BUILD/leave-out-kairos.txt"
echo "  with --lin-nov 5:"
grep 'mean of' "$BUILD/leave-out-kairos-nov5.txt"
[ -f "$BUILD/malfam-webui.png" ] && echo "web UI screenshot: $BUILD/malfam-webui.png"
echo "labelled reports: $DEMO/reports/ (key \"malfam\"); daemon log: $DEMO/malfamd.log"
