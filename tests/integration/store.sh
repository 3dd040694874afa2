#!/usr/bin/env bash
# store.sh - `malfam train --store` and `malfam label --store` on a Cuckoo/CAPE store built
# here from the real reports of $MF_DATA/reports and generated ones (gen_report.py, edited to
# carry CAPE list and string detections, Cuckoo signature families and target hashes), plus a
# broken report, an unreadable one (a directory), an analysis without a report, a `latest`
# symlink and a stray folder. Checks: the coverage table of each label source (cape, cuckoo,
# avclass:FILE, csv:FILE) against the expected text; a real training run from the store that
# equals training from the same reports through --reports; patterns and score see the
# families; label --store relabels every report through a real malfamd; the retraining unit
# (conf/malfam-retrain.service) run against that store and daemon replaces the served model,
# and fails when the training fails, the daemon serves another file or refuses the new model
# (then the file is rolled back).
# Usage: BUILD=build bash tests/integration/store.sh   (exit 0 = all passed)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
MALFAM=$BUILD/malfam
MALFAMD=$BUILD/malfamd
PY=${PYTHON:-/usr/bin/python3}
MF_DATA=${MF_DATA:-$ROOT/../shared/data}
GEN=$MF_DATA/../tools/gen_report.py
REP=$MF_DATA/reports
DPID=

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
[ -x "$MALFAM" ] && [ -x "$MALFAMD" ] || fail "binaries missing in $BUILD (make all)"
[ -d "$REP" ] && [ -r "$GEN" ] || fail "shared data or gen_report.py missing at $MF_DATA"
T=$(mktemp -d /tmp/malfam-store.XXXXXX) || fail mktemp
cleanup() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
A=$T/cwd/storage/analyses
mkdir -p "$A"

# ---- the store --------------------------------------------------------------------------------
"$PY" - "$A" "$REP" "$GEN" "$T" <<'PY' || fail "building the store"
import gzip, hashlib, json, os, shutil, subprocess, sys
A, REP, GEN, T = sys.argv[1:5]

def put(task, data=None, src=None, gz=False):
    d = os.path.join(A, str(task), "reports")
    os.makedirs(d)
    name = "report.json.gz" if gz else "report.json"
    if src:
        shutil.copy(src, os.path.join(d, name))
    else:
        with open(os.path.join(d, name), "w") as f:
            json.dump(data, f)

# real reports: CAPE 2.2 QakBot (string detection, tag Yara, signature families vawtrak and
# neverquest), CAPE 2.4 SunCrypt (list, Behavior) and CobaltStrikeStager (list, Yara), two
# without a label
put(1, src=os.path.join(REP, "cape22_qakbot_0000a657.json.gz"), gz=True)
put(2, src=os.path.join(REP, "cape24_suncrypt_0a0882b8.json.gz"), gz=True)
put(3, src=os.path.join(REP, "cape24_cobaltstrikestager_5d61700f.json.gz"), gz=True)
put(4, src=os.path.join(REP, "cuckoo207_benign_cmdkey.json"))
put(5, src=os.path.join(REP, "cape22_55dcd387.json"))

def gen(task, row, fmt, **edit):
    out = subprocess.check_output([sys.executable, GEN, "--row", str(row), "--calls", "300",
                                   "--format", fmt])
    r = json.loads(out)
    h = hashlib.sha256(b"sample %d" % task).hexdigest()
    r["target"]["file"]["sha256"] = h
    r["target"]["file"]["md5"] = h[:32]
    if "sigs" in edit:
        r["signatures"] += [{"name": "sig%d" % i, "families": f}
                            for i, f in enumerate(edit.pop("sigs"))]
    r.update(edit)
    put(task, r)
    return r["target"]["file"]

Y = lambda fam, by, d="": {"family": fam, "details": [{by: d}]}
H = {}
H[10] = gen(10, 0, "cape", detections=[Y("Trojan", "Yara", "ab12")], sigs=[["trojan"]])
H[11] = gen(11, 1, "cape", detections=[Y("trojan", "Behavior"), Y("Emotet", "Suricata", "x")],
            sigs=[["Trojan", "Emotet"], ["Trojan"]])
H[12] = gen(12, 3, "cape", detections="Backdoor", malfamily_tag="Yara")
H[13] = gen(13, 2, "cape", detections=" BACKDOOR ", malfamily_tag="Behavior")
H[14] = gen(14, 9, "cuckoo2", sigs=[["Worms"], ["worms", "Trojan"]])
H[15] = gen(15, 9, "cuckoo2", sigs=[["worms"]])
H[16] = gen(16, 11, "cuckoo2", sigs=[["spyware"], ["adware"]])
H[17] = gen(17, 39, "cape", detections=[Y("Virus", "Yara", "cd34")])
H[18] = gen(18, 97, "cape", detections="qakbot ", malfamily_tag="Yara")

# a broken report, an unreadable one, an analysis without a report, `latest`, a stray folder
os.makedirs(os.path.join(A, "90", "reports"))
with open(os.path.join(A, "90", "reports", "report.json"), "w") as f:
    f.write('{"info": {"id": 90}, "behavior": {"processes": [')
os.makedirs(os.path.join(A, "91", "reports", "report.json"))
os.makedirs(os.path.join(A, "92", "logs"))
os.symlink(os.path.join(A, "18"), os.path.join(A, "latest"))
os.makedirs(os.path.join(A, "tmp", "reports"))

SUN = "aa2316ff30647295efac2c884b30b6e83a8515c2d2ff1df3c5d6091b404c73a9"
with open(os.path.join(T, "avclass.txt"), "w") as f:
    f.write("e2147b5333879f98d515cd9aa905d489\tqakbot\n")       # the real QakBot's md5
    f.write(SUN.upper() + "\tsuncrypt\n")                        # any case
    f.write("%s\ttrojan\n" % H[10]["md5"])
    f.write("%s\ttrojan\n" % H[11]["sha256"])
    f.write("%s\tbackdoor\n" % H[12]["md5"])
    f.write("%s\tSINGLETON:%s\n" % (H[13]["md5"], H[13]["md5"]))
    f.write("%s\tworms\n%s\ttrojan\n" % (H[14]["md5"], H[14]["sha256"]))  # md5 vs sha256
    f.write("%s\tworms\n" % H[15]["sha256"])
    f.write("%s\tspyware\n%s\tadware\n" % (H[16]["md5"], H[16]["md5"]))   # listed twice
    f.write("%s\tvirus\t12\tVIRUS\n" % H[17]["sha256"])                   # AVClass2 columns
    f.write("%s\tzbot\n" % ("0" * 64))                                      # not in the store
with open(os.path.join(T, "labels.csv"), "w") as f:
    f.write("key,family\n1,QakBot\n18,qakbot\n%s,SunCrypt\n10,Trojan\n%s,trojan\n"
            % (SUN, H[11]["md5"]))
    f.write("12,backdoor\n%s,Backdoor\n13,\"backdoor\"\n14,worms\n%s,trojan\n15,worms\n"
            % (H[12]["sha256"], H[14]["md5"]))
PY
ok "store: 5 real and 9 generated reports, a broken, an unreadable, one without a report"

# ---- coverage of each label source (dry runs) ---------------------------------------------------
coverage() { # SOURCE DIR: stdout of the dry run, the temp path replaced by <T>
    "$MALFAM" train --store "$2" --labels "$1" --dry-run --max-len 200 2>"$T/err.$3" |
        sed "s#$T#<T>#g"
}
check_coverage() { # NAME SOURCE DIR, the expected text on stdin
    local got want
    got=$(coverage "$2" "$3" "$1") || fail "$1: train --dry-run failed: $(cat "$T/err.$1")"
    want=$(cat)
    [ "$got" = "$want" ] || { diff -u <(echo "$want") <(echo "$got") >&2; fail "$1: coverage"; }
    # the broken and the unreadable report are named on stderr, the run did not stop
    grep -q "^malfam: $A/90/reports/report.json: malformed JSON: " "$T/err.$1" &&
        grep -q "^malfam: $A/91/reports/report.json: I/O error: " "$T/err.$1" ||
        { cat "$T/err.$1" >&2; fail "$1: skipped reports not reported"; }
    ok "coverage $2"
}

check_coverage cape cape "$T/cwd" <<'EOF'
store <T>/cwd/storage/analyses: 17 analyses, 14 reports read, 2 skipped (unreadable or bad), 1 without a report
labels cape: 9 labelled (1 with disagreeing families: first detection kept), 0 conflicting (not used), 5 unlabelled
family                   reports  by
backdoor                       2  Behavior 1, Yara 1
qakbot                         2  Yara 2
trojan                         2  Behavior 1, Yara 1
cobaltstrikestager             1  Yara 1
suncrypt                       1  Behavior 1
virus                          1  Yara 1
dropped, fewer than --min-samples reports: cobaltstrikestager (1), suncrypt (1), virus (1)
training set: 6 reports, 3 families (--min-samples 2)
EOF

check_coverage cuckoo cuckoo "$T/cwd/storage" <<'EOF'
store <T>/cwd/storage/analyses: 17 analyses, 14 reports read, 2 skipped (unreadable or bad), 1 without a report
labels cuckoo: 5 labelled (2 with disagreeing families: majority kept), 2 conflicting (not used), 7 unlabelled
family                   reports
trojan                         2
worms                          2
suncrypt                       1
dropped, fewer than --min-samples reports: suncrypt (1)
training set: 4 reports, 2 families (--min-samples 2)
EOF

check_coverage avclass "avclass:$T/avclass.txt" "$A" <<'EOF'
store <T>/cwd/storage/analyses: 17 analyses, 14 reports read, 2 skipped (unreadable or bad), 1 without a report
labels avclass:<T>/avclass.txt: 7 labelled, 2 conflicting (not used), 5 unlabelled (file: 1 SINGLETON lines)
family                   reports  by
trojan                         2  md5 1, sha256 1
backdoor                       1  md5 1
qakbot                         1  md5 1
suncrypt                       1  sha256 1
virus                          1  sha256 1
worms                          1  sha256 1
dropped, fewer than --min-samples reports: backdoor (1), qakbot (1), suncrypt (1), virus (1), worms (1)
training set: 2 reports, 1 families (--min-samples 2)
EOF

check_coverage csv "csv:$T/labels.csv" "$T/cwd" <<'EOF'
store <T>/cwd/storage/analyses: 17 analyses, 14 reports read, 2 skipped (unreadable or bad), 1 without a report
labels csv:<T>/labels.csv: 8 labelled, 1 conflicting (not used), 5 unlabelled
family                   reports  by
backdoor                       2  task 2
qakbot                         2  task 2
trojan                         2  md5 1, task 1
suncrypt                       1  sha256 1
worms                          1  task 1
dropped, fewer than --min-samples reports: suncrypt (1), worms (1)
training set: 6 reports, 3 families (--min-samples 2)
EOF

# --min-samples 1 keeps every family; a bad source and a missing label file are usage errors
"$MALFAM" train --store "$T/cwd" --labels cape --min-samples 1 --dry-run 2>/dev/null |
    grep -q '^training set: 9 reports, 6 families' || fail "--min-samples 1"
"$MALFAM" train --store "$T/cwd" --labels vt --dry-run 2>"$T/e"; [ $? = 2 ] &&
    grep -q '^malfam: vt: invalid argument: --labels' "$T/e" || fail "bad --labels"
"$MALFAM" train --store "$T/cwd" --labels csv:"$T/none.csv" --dry-run 2>"$T/e"; [ $? = 2 ] &&
    grep -q "^malfam: $T/none.csv: I/O error: No such file" "$T/e" || fail "missing label file"
ok "--min-samples, bad --labels, missing label file"

# ---- a real training run: the store path = the --reports path ----------------------------------
OPTS=(--epochs 1 --hidden 16 --embed 8 --dense 16 --max-len 200 --gen-len 50 --seed 11
      --threads 2 --quiet)
"$MALFAM" train --store "$T/cwd" --labels "csv:$T/labels.csv" --out "$T/store.model" "${OPTS[@]}" \
    >"$T/train.out" 2>"$T/train.err" || { cat "$T/train.err" >&2; fail "train --store"; }
grep -q '^training set: 6 reports, 3 families' "$T/train.out" || fail "train --store output"
# the same reports, families and order through --reports
printf '%s\n' "$A/1/reports/report.json.gz,qakbot" "$A/10/reports/report.json,trojan" \
    "$A/11/reports/report.json,trojan" "$A/12/reports/report.json,backdoor" \
    "$A/13/reports/report.json,backdoor" "$A/18/reports/report.json,qakbot" > "$T/list.csv"
"$MALFAM" train --reports "$T/list.csv" --out "$T/list.model" "${OPTS[@]}" >/dev/null 2>&1 ||
    fail "train --reports"
"$MALFAM" patterns "$T/store.model" > "$T/p.store" || fail "patterns"
"$MALFAM" patterns "$T/list.model" > "$T/p.list" || fail "patterns (list)"
diff -u "$T/p.list" "$T/p.store" >&2 || fail "store and list models differ"
for f in backdoor qakbot trojan; do
    grep -qw "$f" "$T/p.store" || fail "patterns: no family $f"
done
"$MALFAM" score --json --model "$T/store.model" "$A/12/reports/report.json" > "$T/score.json" ||
    fail "score"
"$PY" - "$T/score.json" <<'PY' || fail "score: families not those of the store"
import json, sys
a = json.loads(open(sys.argv[1]).readline())
fams = {f["family"] for f in a["families"]}
assert fams <= {"backdoor", "qakbot", "trojan"} and fams, fams
PY
ok "train --store = train --reports (same patterns); patterns and score see the families"

# ---- label --store through a real malfamd ------------------------------------------------------
cat > "$T/d.conf" <<CONF
[malfamd]
socket = $T/s.sock
model = $T/store.model
allowed_roots = $T/cwd
CONF
"$MALFAMD" -c "$T/d.conf" --foreground >"$T/daemon.log" 2>&1 &  # foreground: killed at exit
DPID=$!
for _ in $(seq 100); do [ -S "$T/s.sock" ] && break; sleep 0.05; done
[ -S "$T/s.sock" ] || { cat "$T/daemon.log" >&2; fail "malfamd did not start"; }
"$MALFAM" label --socket "$T/s.sock" --store "$T/cwd" >"$T/label.out" 2>"$T/label.err"
rc=$?
[ $rc = 1 ] || { cat "$T/label.err" >&2; fail "label --store: exit $rc, want 1 (bad reports)"; }
# the daemon writes answers into plain reports only: the 3 gzip ones are skipped and counted,
# the 2 bad ones fail
grep -q '^malfam label: 16 reports, 11 labelled ([0-9]* with a family, [0-9]* unknown, 0 without a trace), 3 skipped (gzip), 2 failed' "$T/label.err" ||
    { cat "$T/label.err" >&2; fail "label --store summary"; }
[ "$(cut -f1 "$T/label.out" | sed "s#$A/##; s#/.*##" | tr '\n' ' ')" = \
  "4 5 10 11 12 13 14 15 16 17 18 " ] || fail "label --store: task order"
"$PY" - "$A" <<'PY' || fail "label --store: answers not written"
import json, os, sys
A = sys.argv[1]
for t in (4, 5, 10, 18):
    r = json.load(open(os.path.join(A, str(t), "reports", "report.json")))
    assert "malfam" in r and r["malfam"]["families"], t
PY
ok "label --store: 11 plain reports labelled in task order, 3 gzip skipped, 2 failures counted"

# ---- the scheduled retraining (conf/malfam-retrain.service) against this store and daemon -----
# The unit's own ExecStart lines and environment, run in order as systemd runs a oneshot
# service (tests/tools/run_unit.py), with the settings file an operator would write.
id_of() { "$MALFAM" info "$1" | awk 'NR == 1 {print $2}' | tr -d ,; }
served() { "$MALFAM" stats --socket "$T/s.sock" |
           "$PY" -c 'import json, sys; print(json.load(sys.stdin)["model"])'; }
unit() { "$PY" "$ROOT/tests/tools/run_unit.py" "$ROOT/conf/malfam-retrain.service" \
             --env-file "$1" --map /usr/local/bin/malfam="$MALFAM"; }
old=$(id_of "$T/store.model")
[ -n "$old" ] && [ "$(served)" = "$old" ] || fail "retrain: the daemon does not serve store.model"
cat > "$T/retrain.conf" <<CONF
# retrain.conf as an operator writes it
MALFAM_STORE=$T/cwd
MALFAM_LABELS=csv:$T/labels.csv
MALFAM_MODEL=$T/store.model
MALFAM_SOCKET=$T/s.sock
MALFAM_TRAIN_OPTS=--epochs 1 --hidden 16 --embed 8 --dense 16 --max-len 200 --gen-len 50 --seed 12 --threads 2
CONF
unit "$T/retrain.conf" >"$T/retrain.out" 2>"$T/retrain.err" ||
    { cat "$T/retrain.err" >&2; fail "retrain unit"; }
new=$(id_of "$T/store.model")
[ -n "$new" ] && [ "$new" != "$old" ] || fail "retrain: the model file did not change"
[ "$(served)" = "$new" ] || fail "retrain: the daemon serves $(served), not the new model $new"
[ -e "$T/store.model.new" ] && fail "retrain: store.model.new left behind"
# a training that fails (its label file is gone): nothing is moved or reloaded, the unit fails
sed "s|^MALFAM_LABELS=.*|MALFAM_LABELS=csv:$T/gone.csv|" "$T/retrain.conf" > "$T/retrain-bad.conf"
unit "$T/retrain-bad.conf" >/dev/null 2>"$T/retrain.err" &&
    fail "retrain with a missing label file succeeded"
grep -q "gone.csv" "$T/retrain.err" || fail "retrain: no word on the missing file: $(cat "$T/retrain.err")"
grep -q "^run_unit: /bin/mv" "$T/retrain.err" && fail "retrain: a model moved after a failed training"
[ "$(id_of "$T/store.model")" = "$new" ] && [ "$(served)" = "$new" ] ||
    fail "retrain: a failed run changed the model"
# a model path that is not the daemon's: trained and reloaded, but the reload's check fails
# (another seed: the same settings would train the very same bytes, hence the same id)
sed "s|^MALFAM_MODEL=.*|MALFAM_MODEL=$T/elsewhere.model|; s|--seed 12|--seed 13|" \
    "$T/retrain.conf" > "$T/retrain-other.conf"
unit "$T/retrain-other.conf" >/dev/null 2>"$T/retrain.err" &&
    fail "retrain into a model the daemon does not serve succeeded"
grep -q "malfamd serves model $new, not $T/elsewhere.model's" "$T/retrain.err" ||
    fail "retrain: no word on the model served: $(cat "$T/retrain.err")"
[ "$(served)" = "$new" ] || fail "retrain: the daemon's model changed"
# a model the daemon refuses (no networks, for a daemon set to likelihood): not served, and
# the file it replaced is put back, so that a restart serves the model that ran before
printf 'mode = likelihood\n' >> "$T/d.conf"
"$MALFAM" reload --socket "$T/s.sock" >/dev/null 2>"$T/e" || fail "reload in mode likelihood: $(cat "$T/e")"
sed "s|^MALFAM_TRAIN_OPTS=.*|MALFAM_TRAIN_OPTS=--no-lstm --threads 2|" "$T/retrain.conf" \
    > "$T/retrain-nonet.conf"
unit "$T/retrain-nonet.conf" >/dev/null 2>"$T/retrain.err" &&
    fail "retrain of a model the daemon refuses succeeded"
grep -q "likelihood" "$T/retrain.err" || fail "retrain: no word on the refusal: $(cat "$T/retrain.err")"
[ "$(served)" = "$new" ] || fail "retrain: the daemon serves $(served) after a refused model"
[ "$(id_of "$T/store.model")" = "$new" ] ||
    fail "retrain: the refused model was left in place of $new ($(id_of "$T/store.model"))"
[ -e "$T/store.model.prev" ] || [ -e "$T/store.model.new" ] && fail "retrain: .prev or .new left"
ok "retrain unit: trained from the store, renamed over the served model, reloaded ($old -> $new); a failed training changes nothing; a model path the daemon does not serve fails the unit; a model the daemon refuses is rolled back on disk"

