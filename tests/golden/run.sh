#!/usr/bin/env bash
# tests/golden/run.sh [--update] [NAME...] - golden-file tests of the offline commands
# (extract, train, patterns, score, eval); NAMEs pick cases (train always runs). Each case's stdout plus a last line "[exit N]" is
# compared with tests/golden/<NAME>.out by diff -u; --update rewrites those files instead.
# Inputs are built in a temp dir: a small model trained on the Mal-API train split with a
# fixed seed (deterministic: same bytes on every run and for any --threads). Timings and the
# temp/data paths are normalised, so the files are stable. Needs $BUILD/malfam (make all) and
# $MF_DATA (default ../shared/data); a missing one is a failure, never a skip.
# Exit 0 when every case matches, 1 otherwise (the failing cases are named).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GOLDEN=$ROOT/tests/golden
BUILD=${BUILD:-build}
case $BUILD in /*) BIN=$BUILD/malfam ;; *) BIN=$ROOT/$BUILD/malfam ;; esac
MF_DATA=${MF_DATA:-$ROOT/../shared/data}

update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
only=" $* "

die() { echo "golden: FAIL: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no binary $BIN (run make all first)"
[ -d "$MF_DATA" ] || die "no data directory MF_DATA=$MF_DATA"
MF_DATA=$(cd "$MF_DATA" && pwd)
MA=$MF_DATA/mal-api-2019-808
REP=$MF_DATA/reports
for f in "$MA/calls.txt.gz" "$MA/index.csv" "$MA/ApiIndex.txt" "$REP/cape22_55dcd387.json" \
         "$REP/cuckoo12_drewboardman1.json.gz" "$REP/cape22_qakbot_0000a657.json.gz" \
         "$REP/cuckoo207_sodinokibi_nocalls.json"; do
    [ -r "$f" ] || die "missing input $f (MF_DATA=$MF_DATA)"
done
T=$(mktemp -d "${TMPDIR:-/tmp}/malfam-golden.XXXXXX") || die "mktemp"
trap 'rm -rf "$T"' EXIT
MODEL=$T/small.model
REPORTS=(cape22_55dcd387.json cuckoo207_benign_cmdkey.json cuckoo207_sodinokibi_nocalls.json
         cape22_qakbot_0000a657.json.gz cape24_suncrypt_0a0882b8.json.gz
         cuckoo12_drewboardman1.json.gz cuckoo20dev_demo_icqw3.json.gz)
for r in "${REPORTS[@]}"; do [ -r "$REP/$r" ] || die "missing input $REP/$r"; done

# ---- the cases: each prints what is compared; cwd is $T -------------------------------------

# a plain CAPE report, then gzip-compressed Cuckoo 1.2 one (call order, one name a line)
case_extract_cape22()       { "$BIN" extract "$REP/cape22_55dcd387.json"; }
case_extract_cuckoo12_gz()  { "$BIN" extract "$REP/cuckoo12_drewboardman1.json.gz"; }
# a large gzipped report, runs folded, against the Mal-API vocabulary: only the --stats line
case_extract_stats_gz() {
    "$BIN" extract --stats --fold --api-index "$MA/ApiIndex.txt" \
        "$REP/cape22_qakbot_0000a657.json.gz" 2>&1 >/dev/null |
        sed -E 's/"seconds":[0-9.e+-]+/"seconds":<t>/'
}
case_extract_nocalls()      { "$BIN" extract "$REP/cuckoo207_sodinokibi_nocalls.json"; }
case_extract_missing()      { "$BIN" extract no_such_report.json 2>&1; }

# the model every later case uses: 2 epochs of a tiny LSTM, traces cut at 200 calls
case_train() {
    "$BIN" train --calls "$MA/calls.txt.gz" --index "$MA/index.csv" \
        --api-index "$MA/ApiIndex.txt" --split train --out small.model --seed 11 \
        --epochs 2 --gen-epoch 1 --hidden 8 --embed 8 --dense 8 --gen-len 40 --max-len 200 \
        --threads 2 --quiet | sed -E 's/trained in [0-9.]+s/trained in <t>s/'
}
case_patterns()             { "$BIN" patterns small.model; }
case_patterns_family_ids()  { "$BIN" patterns small.model --family Adware --ids; }
case_info()                 { "$BIN" info small.model; }
case_info_bad()             { "$BIN" info "$MA/index.csv" 2>&1; }
case_patterns_missing()     { "$BIN" patterns small.model --family NoSuchFamily 2>&1 >/dev/null; }

# scoring options given to train are stored in the model and calibrated with it (lin_nov 5:
# the anchors of its two parts), answers use them; a value out of range is refused up front
case_train_scoring_opts() {
    local src=(--calls "$MA/calls.txt.gz" --index "$MA/index.csv" --api-index "$MA/ApiIndex.txt")
    "$BIN" train "${src[@]}" --split train --out nov5.model --no-lstm --max-len 200 \
        --lin-nov 5 --threads 2 --quiet > /dev/null || echo "train --lin-nov 5 failed"
    "$BIN" info nov5.model | grep -E 'score\.lin_nov|unknown\.linear\.a[0-9]'
    (cd "$REP" && "$BIN" score --model "$T/nov5.model" "${REPORTS[@]}")
    "$BIN" train "${src[@]}" --out bad.model --no-lstm --lin-nov 6 2>&1
    echo "[train --lin-nov 6: exit $?]"
    [ ! -e bad.model ] || echo "bad.model written"
}

# score: the model's default mode, a reference mode (knn, top 1) and the pattern mode
score() { (cd "$REP" && "$BIN" score --model "$MODEL" "$@" "${REPORTS[@]}"); }
case_score_default()        { score; }
case_score_knn_top1()       { score --mode knn --top 1; }
case_score_paper()          { score --mode paper; }
case_score_missing()        { "$BIN" score --model small.model no_such_report.json 2>&1; }
# for scripts: one JSON object a line with the path inside (checked with python's json), a
# report read from stdin, a directory where a report is expected, no --model
case_score_json() {
    score --json --top 1 | "${PYTHON:-python3}" -c '
import json, sys
for line in sys.stdin:
    a = json.loads(line)
    print(a["path"], a["verdict"], a["families"][0]["p"] if a["families"] else "-")'
}
case_score_stdin()          { "$BIN" score --model small.model - < "$REP/cape22_55dcd387.json"; }
case_score_dir()            { "$BIN" score --model small.model "$REP" 2>&1; }
case_score_nomodel()        { "$BIN" score "$REP/cape22_55dcd387.json" 2>&1; }

# eval on the test split, every mode: the table on stdout, then the JSON file (a newline
# inserted before each object of an array so that diffs are readable; JSON is checked valid)
eval_args=(--calls "$MA/calls.txt.gz" --index "$MA/index.csv")
case_eval_table()           { "$BIN" eval --model small.model "${eval_args[@]}" --leave-out Adware; }
case_eval_json() {
    "$BIN" eval --model small.model "${eval_args[@]}" --leave-out Adware \
        --json eval.json >/dev/null || return
    # the per-report predictions: one per scored report, each mode's guess; counted and the
    # first three shown, the rest of the file as it is
    "${PYTHON:-python3}" - eval.json <<'PY' || echo "eval.json: not valid JSON"
import json, sys
d = json.load(open(sys.argv[1]))
pr = d.pop("predictions")
n = d["modes"][0]["n"]
assert len(pr) == n and all(len(p["guesses"]) == len(d["modes"]) for p in pr), (len(pr), n)
for m in d["modes"]:
    ok = sum(p["guesses"][d["modes"].index(m)]["family"] == p["truth"] for p in pr)
    assert abs(ok / n - m["top1"]) < 1e-9, (m["mode"], ok, n, m["top1"])
print("predictions: %d reports x %d modes, top-1 agrees with each mode's table" % (n, len(d["modes"])))
for p in pr[:3]:
    print(json.dumps(p))
json.dump(d, open(sys.argv[1], "w"), separators=(",", ":"))
PY
    sed -E 's/(\[|\},)\{/\1\n{/g' eval.json
}
# a report list (evaluated as given): two families of the model and one it does not know; the
# tables show only classes with samples, foreignU counts the foreign report and is explained
reports_list() {
    printf '%s\n' "report_path,family" "$REP/cape22_55dcd387.json,Virus" \
        "$REP/cuckoo20dev_demo_icqw3.json.gz,Virus" "$REP/cape22_qakbot_0000a657.json.gz,Trojan" \
        "$REP/cuckoo12_drewboardman1.json.gz,Trojan" "$REP/cape24_suncrypt_0a0882b8.json.gz,Suncrypt" \
        > list.csv
}
case_eval_reports() { reports_list; "$BIN" eval --model small.model --reports list.csv --mode linear; }
# --leave-out all: the open-set lines with the ROC point and the mean line; the JSON's means
# are the means of its per-family rows; --quiet: no progress on stderr
case_eval_leave_out_all() {
    "$BIN" eval --model small.model "${eval_args[@]}" --mode knn --leave-out all --json lo.json \
        --quiet 2>quiet.txt | sed -n '/^open set/,$p' || return
    echo "stderr with --quiet: $(wc -c <quiet.txt) bytes"
    "${PYTHON:-python3}" - lo.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows, (mean,) = d["leave_out"], d["leave_out_mean"]
assert mean["families"] == len(rows) > 1, mean
for k in ("auroc", "false_unknown", "detected", "detected_at_rate"):
    want = sum(r[k] for r in rows) / len(rows)
    assert abs(mean[k] - want) < 1e-9, (k, mean[k], want)
    assert all(r["detected_at_rate"] <= 1 for r in rows)
print("leave_out_mean: the mean of %d rows in each figure" % len(rows))
PY
}
# --leave-out A,B: those two families (in the model's order), their rows as in --leave-out all
# and the mean of the two, a progress line on stderr after each (times normalised); a list with
# a name the model lacks is an error naming it
case_eval_leave_out_list() {
    "$BIN" eval --model small.model "${eval_args[@]}" --mode knn --leave-out Worms,Adware \
        2>progress.txt | sed -n '/^open set/,$p' || return
    sed -E 's/\(.* s, ETA .*\)$/(<t> s, ETA <t>)/' progress.txt
    "$BIN" eval --model small.model "${eval_args[@]}" --mode knn --leave-out Adware,NoSuch \
        2>&1 >/dev/null
}
# --leave-out of a family without samples here, or of no family at all: an error
case_eval_leave_out_bad() {
    reports_list
    "$BIN" eval --model small.model --reports list.csv --mode knn --leave-out Adware 2>&1
    echo "[exit $?]"
    "$BIN" eval --model small.model --reports list.csv --mode knn --leave-out NoSuch 2>&1
}
# the SVG: valid XML; axis labels never overlap (rotated, or apart), cut ones keep a tooltip
case_eval_svg() {
    "$BIN" eval --model small.model "${eval_args[@]}" --mode knn --svg e.svg >/dev/null || return
    "${PYTHON:-python3}" - e.svg <<'PY'
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
texts = ET.parse(sys.argv[1]).getroot().iter(ns + "text")
flat, rotated, cut, untitled = [], 0, 0, 0
for t in texts:
    label = "".join(t.itertext()) if t.find(ns + "title") is None else t.find(ns + "title").tail
    if label.endswith("..."):
        cut += 1
        untitled += t.find(ns + "title") is None
    if t.get("transform"):
        rotated += 1
        continue
    size, x, y = float(t.get("font-size")), float(t.get("x")), float(t.get("y"))
    w = len(label) * size * 0.6
    a = t.get("text-anchor")
    x0 = x - w if a == "end" else x - w / 2 if a == "middle" else x
    flat.append((y, x0, x0 + w, label))
over = [(p[3], q[3]) for i, p in enumerate(flat) for q in flat[i + 1:]
        if abs(p[0] - q[0]) < 6 and p[1] < q[2] and q[1] < p[2]]
print("svg: %d flat labels, %d rotated, %d cut (%d without a tooltip), %d overlapping%s" %
      (len(flat), rotated, cut, untitled, len(over), (": %s" % over[:3]) if over else ""))
PY
}
# no --model: reference modes of a model built in memory from the train split
case_eval_reference_json() {
    "$BIN" eval "${eval_args[@]}" --api-index "$MA/ApiIndex.txt" --mode knn \
        --json ref.json >/dev/null || return
    sed -E 's/(\[|\},)\{/\1\n{/g' ref.json
}

# every command's --help exits 0 and names each option its parser accepts (the "--x" string
# literals of its source files, --help itself aside) and, where it takes --mode, every mode name (core/score.c)
case_help() {
    local S=$ROOT/plugin/cli c files opts o missing h rc modes
    modes=$(sed -n '/mode_names\[MF_NMODES\] = {/,/};/p' "$ROOT/core/score.c" | grep -o '"[a-z]*"' |
            tr -d '"')
    [ "$(echo $modes | wc -w)" -ge 9 ] || { echo "no mode names found in core/score.c"; return; }
    for c in extract:extract.c eval:eval.c,source.c score:score.c,source.c classify:client.c \
             label:client.c train:train.c patterns:patterns.c info:info.c ping:client.c \
             stats:client.c reload:client.c; do
        files=${c#*:} c=${c%%:*}
        opts=$(for f in ${files//,/ }; do grep -o '"--[a-z][a-z0-9-]*"' "$S/$f"; done | tr -d '"' |
               sort -u | grep -vx -- --help)
        case $c in
            classify) opts=$(echo "$opts" | grep -vx -- '--from\|--store\|--quiet\|--expect') ;;
            label) opts=$(echo "$opts" | grep -vx -- '--expect') ;;
            ping|stats) opts="--socket --timeout" ;;
            reload) opts="--socket --timeout --expect" ;;
        esac
        h=$("$BIN" "$c" --help 2>&1); rc=$?
        missing=
        for o in $opts; do grep -q -- "$o\b" <<<"$h" || missing+=" $o"; done
        if grep -qx -- "--mode" <<<"$opts"; then
            for o in $modes; do grep -qw -- "$o" <<<"$h" || missing+=" mode:$o"; done
        fi
        echo "$c: exit $rc${missing:+, missing:$missing}"
    done
}

# the man pages name only files that `make install` puts there, or runtime and sandbox paths
# (sockets, models, stores); no literal $(PREFIX). Staged twice (PREFIX /usr and /usr/local).
# malfam(1) names every command (as .B/.BR) and MALFAM_SOCKET.
case_man_paths() {
    local st=$T/stage p f bad=0
    for p in /usr /usr/local; do
        make -s -C "$ROOT" install DESTDIR="$st" PREFIX=$p BUILD="$BUILD" >"$T/install.log" 2>&1 ||
            { echo "make install PREFIX=$p failed"; return; }
    done
    for f in "$ROOT"/conf/man/*.[158]; do
        grep -n '\$(' "$f" | sed "s|^|$(basename "$f"): literal \$(: |" && bad=1
        while read -r p; do
            case $p in
                /run/*|/var/lib/*|/opt/*|/tmp|/var/tmp|/.../*|/usr|[A-Z]*/*|*storage/analyses*|reports/report.json|\
                processing/reporting) continue ;;
                /*) [ -e "$st$p" ] && continue ;;
                *) [ -n "$(find "$st" -path "*/$p" -print -quit)" ] && continue ;;
            esac
            echo "$(basename "$f"): names $p, which make install does not install"; bad=1
        done < <(grep -v '^\.\\"' "$f" | sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' |
                 grep -oE '(^|[ ("])(/[A-Za-z0-9_./<>*-]+|[A-Za-z0-9_.<>*-]+/[A-Za-z0-9_./<>*-]+)' |
                 sed -E 's/^[ ("]//; s/[.,;:)]+$//' | sort -u)
    done
    [ $bad = 0 ] && echo "man pages: every path named is installed or a runtime path"
    # malfam(1) documents every command of commands.h, and MALFAM_SOCKET
    for p in $(sed -n 's/^CMD(\([a-z]*\),.*/\1/p' "$ROOT/plugin/cli/commands.h") MALFAM_SOCKET; do
        grep -q "^\.BR\? .*\b$p\b" "$ROOT/conf/man/malfam.1" || echo "malfam.1: no $p"
    done
}

CASES=(extract_cape22 extract_cuckoo12_gz extract_stats_gz extract_nocalls extract_missing
       train train_scoring_opts patterns patterns_family_ids patterns_missing info info_bad
       score_default score_knn_top1 score_paper score_missing score_json score_stdin score_dir
       score_nomodel help man_paths eval_reports eval_leave_out_bad eval_leave_out_all eval_leave_out_list eval_svg
       eval_table eval_json eval_reference_json)

# ---- runner ----------------------------------------------------------------------------------
for n in $only; do
    [[ " ${CASES[*]} " == *" $n "* ]] || die "no case named $n (cases: ${CASES[*]})"
done
cd "$T" || die "cd $T"
failed=() ran=0
t0=$SECONDS
for c in "${CASES[@]}"; do
    if [ "$only" != "  " ] && [[ $only != *" $c "* ]] && [ "$c" != train ]; then continue; fi
    out=$T/$c.out
    "case_$c" > "$out.raw" 2> "$T/$c.err"
    echo "[exit $?]" >> "$out.raw"
    sed -e "s|$T|<tmp>|g" -e "s|$MF_DATA|<data>|g" "$out.raw" > "$out"
    if [ "$c" = train ] && [ ! -s "$MODEL" ]; then
        cat "$T/$c.err" >&2
        die "training the test model failed; every later case needs it"
    fi
    ran=$((ran + 1))
    if [ $update = 1 ]; then
        cp "$out" "$GOLDEN/$c.out"
    elif [ ! -f "$GOLDEN/$c.out" ]; then
        echo "golden: $c: no tests/golden/$c.out (run tests/golden/run.sh --update)" >&2
        failed+=("$c")
    elif ! diff -u --label "tests/golden/$c.out" --label "$c (this run)" "$GOLDEN/$c.out" "$out"
    then
        [ -s "$T/$c.err" ] && sed 's/^/  stderr: /' "$T/$c.err" | head -20 >&2
        failed+=("$c")
    fi
done
secs=$((SECONDS - t0))
if [ $update = 1 ]; then
    echo "golden: rewrote $ran files in tests/golden/ (${secs}s)"
elif [ ${#failed[@]} -gt 0 ]; then
    echo "golden: FAIL: ${#failed[@]} of $ran differ: ${failed[*]}" >&2
    exit 1
else
    echo "golden: ok, $ran cases (${secs}s)"
fi
