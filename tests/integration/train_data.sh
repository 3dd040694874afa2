#!/bin/bash
# train_data.sh - `malfam train --reports` on a list as people write them: a header line,
# blanks around fields, a comment, a family with one sample (kept, noted; dropped with
# --min-samples 2) and one whose reports have no call (dropped by name), an unreadable report (stops the run, with a hint; left out and
# counted with --skip-bad). The model holds exactly the families that can be learnt.
set -u
BUILD=${BUILD:-build}
MALFAM=$(realpath "$BUILD/malfam")
MF_DATA=${MF_DATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}
PY=${PYTHON:-/usr/bin/python3}
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok - $*"; }
[ -x "$MALFAM" ] || fail "$BUILD/malfam missing"
[ -d "$MF_DATA/reports" ] || fail "shared data missing at $MF_DATA"
T=$(mktemp -d /tmp/malfam-traindata.XXXXXX)
trap 'rm -rf "$T"' EXIT
for r in 3 70 140 200; do
    "$PY" "$MF_DATA/../tools/gen_report.py" --row $r --calls 800 > "$T/g$r.json" || fail "gen"
done
cp "$MF_DATA/reports/cuckoo207_sodinokibi_nocalls.json" "$T/nocalls1.json"
cp "$MF_DATA/reports/cuckoo207_sodinokibi_nocalls.json" "$T/nocalls2.json"
cp "$MF_DATA/reports/cuckoo207_benign_cmdkey.json" "$T/lonely.json"
printf 'report_path , family\n g3.json , Trojan\ng70.json,Trojan \n# a comment\n\ng140.json,Worms\n' \
    > "$T/list.csv"
printf 'nocalls1.json,Empty\nnocalls2.json,Empty\ng200.json,Worms\nmissing.json,Worms\n' \
    >> "$T/list.csv"
printf 'lonely.json,Lonely\n' >> "$T/list.csv"
SMALL=(--epochs 1 --hidden 8 --embed 4 --dense 8 --quiet)

if "$MALFAM" train --reports "$T/list.csv" "${SMALL[@]}" --out "$T/m.model" >/dev/null \
    2>"$T/err"; then fail "an unreadable report did not stop the run"; fi
grep -q "list.csv:10: $T/missing.json: No such file" "$T/err" || fail "$(cat "$T/err")"
grep -q -- "--skip-bad" "$T/err" || fail "no hint: $(cat "$T/err")"
ok "an unreadable report stops the run, named with its line, and --skip-bad is suggested"

"$MALFAM" train --reports "$T/list.csv" --skip-bad "${SMALL[@]}" --out "$T/m.model" \
    >"$T/out" 2>"$T/err" || fail "train --skip-bad: $(cat "$T/err")"
grep -q "1 unreadable reports left out (first: .*missing.json" "$T/err" || fail "$(cat "$T/err")"
grep -q "dropped, fewer than --min-samples 1 samples or no call: Empty$" "$T/err" \
    || fail "drop line: $(cat "$T/err")"
grep -q "note: one sample only: Lonely$" "$T/err" || fail "one-sample note: $(cat "$T/err")"
fams=$(awk 'NR > 1 && $1 != "trained" {print $1}' "$T/out" | sort | tr '\n' ' ')
[ "$fams" = "Lonely Trojan Worms " ] || fail "families: '$fams'"
"$MALFAM" patterns "$T/m.model" | grep -q "^# model .*: 3 families" || fail "patterns"
ok "header, blanks and comments read; Empty (no call) dropped by name, Lonely (1 sample) noted"

"$MALFAM" train --reports "$T/list.csv" --skip-bad --min-samples 2 "${SMALL[@]}" \
    --out "$T/m2.model" >"$T/out" 2>"$T/err" || fail "min-samples 2: $(cat "$T/err")"
grep -q "min-samples 2 samples or no call: Empty, Lonely$" "$T/err" || fail "$(cat "$T/err")"
grep -q "^Lonely " "$T/out" && fail "Lonely kept with --min-samples 2"
printf 'nocalls1.json,Empty\n' > "$T/empty.csv"
if "$MALFAM" train --reports "$T/empty.csv" "${SMALL[@]}" --out "$T/e.model" 2>"$T/err"; then
    fail "a list with nothing to learn exit 0"; fi
grep -q "no family left to train" "$T/err" || fail "$(cat "$T/err")"
ok "--min-samples 2 drops one-sample families; nothing left to train is an error"
# eval of a report list: the list as given (it has no split); zero samples is an error
grep -v "missing.json" "$T/list.csv" > "$T/eval.csv"
"$MALFAM" eval --model "$T/m.model" --reports "$T/eval.csv" --mode knn >"$T/out" 2>"$T/err" \
    || fail "eval of a list: $(cat "$T/err")"
grep -q "^knn  *[1-9][0-9]* " "$T/out" || fail "eval of a list scored nothing: $(cat "$T/out")"
if "$MALFAM" eval --model "$T/m.model" --reports "$T/eval.csv" --split test >"$T/out" \
    2>"$T/err"; then fail "eval over zero samples exit 0"; fi
grep -q "no sample to score in the test split (a report list has no split" "$T/err" \
    || fail "$(cat "$T/err")"
ok "eval --reports scores the list as given; zero samples is an error, not a table of zeros"
echo "train_data: all passed"
