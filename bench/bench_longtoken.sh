#!/usr/bin/env bash
# One long number token (1 MiB and 15 MiB of digits) before a real report, read from a file:
# the time must grow linearly with the token (ratio 15 MiB / 1 MiB about 15; yajl re-reading
# a straddling token at every 64 KiB read made it about 130: 0.13 s -> 17.4 s).
set -eu
out=$BUILD/bench; mkdir -p "$out"
rep=$MF_DATA/reports/cuckoo207_benign_cmdkey.json
for mib in 1 15; do
    f=$out/longtoken_$mib.json
    [ -s "$f" ] || "$PYTHON" - "$rep" "$mib" > "$f" <<'PY'
import sys
rep = open(sys.argv[1]).read()
sys.stdout.write('{"big":' + '7' * (int(sys.argv[2]) << 20) + ',' + rep.lstrip()[1:])
PY
done
best() { # best of 3 wall seconds of malfam extract on a file
    local b=999999 t
    for _ in 1 2 3; do
        /usr/bin/time -f "%e" -o "$out/time.txt" "$BUILD/malfam" extract "$1" > /dev/null
        t=$(cat "$out/time.txt")
        b=$(awk -v a="$b" -v b="$t" 'BEGIN{print (b<a)?b:a}')
    done
    echo "$b"
}
t1=$(best "$out/longtoken_1.json")
t15=$(best "$out/longtoken_15.json")
echo "longtoken_1mib 1 $t1 1.00"
echo "longtoken_15mib 15 $t15 $(awk -v a="$t1" -v b="$t15" 'BEGIN{printf "%.1f", (a>0)?b/a:0}')"
echo "# ratio = 15 MiB seconds / 1 MiB seconds: linear is about 15 (times under 0.01 s read as 0)"
