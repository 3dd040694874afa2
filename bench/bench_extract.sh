#!/usr/bin/env bash
# Extraction speed and memory on a generated 1M-call report (about 300 MB) and a 3M-call one:
# malfam extract against yajl's own json_verify (no work attached) on the same file, and a
# Python json.load extraction for scale. Targets: >= 0.9x json_verify's speed,
# peak RSS <= 16 MiB on both files, >= 20x faster than Python.
set -eu
out=$BUILD/bench; mkdir -p "$out"
gen() { # rows, calls, file
    [ -s "$3" ] || "$PYTHON" "$MF_DATA/../tools/gen_report.py" --row "$1" --calls "$2" > "$3"
}
gen 7 1000000 "$out/report_1m.json"
gen 7 3000000 "$out/report_3m.json"

# best of 3 wall seconds and the peak RSS (KiB) of a command
measure() {
    local best=999999 rss=0 t
    for _ in 1 2 3; do
        /usr/bin/time -f "%e %M" -o "$out/time.txt" "$@" > /dev/null
        read -r t r < "$out/time.txt"
        best=$(awk -v a="$best" -v b="$t" 'BEGIN{print (b<a)?b:a}')
        rss=$(( r > rss ? r : rss ))
    done
    echo "$best $rss"
}

for f in report_1m report_3m; do
    file=$out/$f.json
    size=$(stat -c %s "$file")
    read -r tv rv < <(measure sh -c "json_verify -q < '$file'")
    read -r te re < <(measure "$BUILD/malfam" extract "$file")
    calls=$("$BUILD/malfam" extract "$file" | wc -l)
    echo "extract_json_verify $f $tv 1.00 rss_kib=$rv bytes=$size"
    echo "extract_malfam $f $te $(awk -v a="$tv" -v b="$te" 'BEGIN{printf "%.2f", a/b}') rss_kib=$re calls=$calls"
    if [ "$f" = report_1m ]; then
        read -r tp rp < <(/usr/bin/time -f "%e %M" "$PYTHON" -c '
import json, sys
r = json.load(open(sys.argv[1]))
n = sum(1 for p in r["behavior"]["processes"] for c in p["calls"] if c["api"])
' "$file" 2>&1 >/dev/null | tail -1)
        echo "extract_python_json $f $tp $(awk -v a="$tp" -v b="$te" 'BEGIN{printf "%.2f", a/b}') rss_kib=$rp (ratio = python/malfam)"
    fi
done
echo "# ratio for malfam = json_verify seconds / malfam seconds (1.00 = as fast as bare yajl)"
