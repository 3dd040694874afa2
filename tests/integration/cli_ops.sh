#!/bin/bash
# cli_ops.sh - the operator commands against the real malfamd: `malfam ping|stats|reload`
# (JSON out, exit status), the errors that say what to check (no daemon, not a socket), and
# what `malfam label` prints for known and unknown answers, with its per-family summary.
set -u
. "$(dirname "$0")/daemon_common.sh"
setup cli_ops
start_daemon
A=$T/root/a
S=(--socket "$T/s.sock")

out=$("$MALFAM" ping "${S[@]}") || fail "ping exit $?: $out"
echo "$out" | grep -q '"ok":true,"pong":true' || fail "ping: $out"
out=$("$MALFAM" stats "${S[@]}") || fail "stats exit $?"
echo "$out" | grep -q '"latency_ms"' || fail "stats: $out"
out=$("$MALFAM" reload "${S[@]}") || fail "reload exit $?: $out"
echo "$out" | grep -q '"ok":true,"model":' || fail "reload: $out"
cp "$T/model" "$T/model.good"; echo "not a model" > "$T/model"
if out=$("$MALFAM" reload "${S[@]}" 2>"$T/err"); then fail "reload of a bad model exit 0"; fi
grep -q "MF_EFORMAT" "$T/err" || fail "bad reload: $(cat "$T/err")"
"$MALFAM" ping "${S[@]}" >/dev/null || fail "ping after a refused reload"
cp "$T/model.good" "$T/model"
ok "ping, stats, reload: JSON out, exit 0; a refused reload exits 1 with the reason"

# label: one line per report, a family or "unknown (closest: X)", and counts per family
"$MALFAM" label "${S[@]}" "$A"/cape22_55dcd387.json "$A"/cuckoo207_benign_cmdkey.json \
    "$A"/cuckoo207_sodinokibi_nocalls.json >"$T/label.out" 2>"$T/label.err" || fail "label"
grep -q "cuckoo207_sodinokibi_nocalls.json	unknown (no trace)" "$T/label.out" || fail "$(cat "$T/label.out")"
n_known=$(grep -vc "unknown (closest\|unknown (no trace)" "$T/label.out")
n_unk=$(grep -c "unknown (closest: " "$T/label.out")
grep -q "3 reports, 3 labelled ($n_known with a family, $n_unk unknown, 1 without a trace)" \
    "$T/label.err" || fail "summary: $(cat "$T/label.err")"
if [ "$n_known" -gt 0 ]; then grep -q "^families: " "$T/label.err" || fail "no family counts"; fi
stop_daemon || fail "stop"
# every answer unknown: the threshold above any score
echo "unknown_threshold = 1000" >> "$T/d.conf"
start_daemon
"$MALFAM" label "${S[@]}" "$A"/cape22_55dcd387.json "$A"/cuckoo207_benign_cmdkey.json \
    >"$T/label.out" 2>"$T/label.err" || fail "label (all unknown)"
[ "$(grep -c "	unknown (closest: " "$T/label.out")" = 2 ] || fail "unknown lines: $(cat "$T/label.out")"
grep -q "2 labelled (0 with a family, 2 unknown, 0 without a trace)" "$T/label.err" \
    || fail "summary: $(cat "$T/label.err")"
grep -q "	unknown (closest: [A-Za-z]*, p [0-9]* %)$" "$T/label.out" \
    || fail "unknown without its p: $(cat "$T/label.out")"
ok "label: unknown answers print 'unknown (closest: X, p N %)', the summary counts families and unknowns"

# for scripts: classify answers carry the path; a directory is named as such; label walks a
# store (gzip reports skipped and counted), reads --from FILE or -, and a report from stdin
"$MALFAM" classify "${S[@]}" "$A"/cape22_55dcd387.json "$A" >"$T/cl.out" 2>"$T/cl.err" &&
    fail "classify of a directory exit 0"
"$PY" - "$T/cl.out" "$A" <<'PY' || fail "classify JSON: $(cat "$T/cl.out")"
import json, sys
a, d = [json.loads(l) for l in open(sys.argv[1])]
assert a["path"].endswith("/cape22_55dcd387.json") and a["ok"] and "verdict" in a, a
assert d["path"] == sys.argv[2] and not d["ok"] and "is a directory" in d["message"], d
PY
grep -q "is a directory, not a report file" "$T/cl.err" || fail "dir: $(cat "$T/cl.err")"
St=$T/root/store/storage/analyses
mkdir -p "$St"/1/reports "$St"/2/reports "$St"/3/reports "$St"/4 "$St"/latest
cp "$A"/cape22_55dcd387.json "$St"/1/reports/report.json
cp "$A"/gz.json.gz "$St"/2/reports/report.json.gz
cp "$A"/cuckoo207_benign_cmdkey.json "$St"/3/reports/report.json
"$MALFAM" label "${S[@]}" "$T/root/store" >"$T/st.out" 2>"$T/st.err" || fail "label store: $(cat "$T/st.err")"
grep -q "3 reports, 2 labelled .* 1 skipped (gzip), 0 failed" "$T/st.err" || fail "store: $(cat "$T/st.err")"
grep -q "1 analyses without a report" "$T/st.err" || fail "store noreport: $(cat "$T/st.err")"
[ "$(cut -f1 "$T/st.out" | tr '\n' ' ')" = "$St/1/reports/report.json $St/3/reports/report.json " ] ||
    fail "store order: $(cat "$T/st.out")"
grep -q '"malfam"' "$St"/3/reports/report.json || fail "store report not written"
printf '%s\n\n%s\n' "$A"/cape22_55dcd387.json "$A"/cuckoo207_benign_cmdkey.json > "$T/list"
"$MALFAM" label "${S[@]}" --from "$T/list" >"$T/l.out" 2>"$T/l.err" || fail "--from: $(cat "$T/l.err")"
grep -q "^2 reports\|: 2 reports, 2 labelled" "$T/l.err" || fail "--from: $(cat "$T/l.err")"
"$MALFAM" label "${S[@]}" --from - < "$T/list" 2>"$T/l.err" | grep -c . | grep -qx 2 ||
    fail "--from -: $(cat "$T/l.err")"
"$MALFAM" label "${S[@]}" - < "$A"/cape22_55dcd387.json >"$T/l.out" 2>"$T/l.err" ||
    fail "label -: $(cat "$T/l.err")"
grep -q "^-	unknown (closest: .*(stdin: not stored)$" "$T/l.out" || fail "label -: $(cat "$T/l.out")"
mkdir -p "$T/root/empty"
if "$MALFAM" label "${S[@]}" "$T/root/empty" 2>"$T/l.err"; then fail "label of an empty dir exit 0"; fi
grep -q "a directory without reports" "$T/l.err" || fail "empty dir: $(cat "$T/l.err")"
ok "classify answers carry their path; label walks stores (gzip skipped), --from FILE|-, and -"

# a reload reads the config again: a new `model =` serves; a broken config is refused with its
# line, the running model kept
D=$MF_DATA/mal-api-2019-808
"$MALFAM" train --calls "$D/calls.txt.gz" --index "$D/index.csv" --api-index "$D/ApiIndex.txt" \
    --epochs 1 --hidden 8 --embed 4 --dense 8 --max-len 100 --seed 5 --out "$T/other.model" \
    --quiet >/dev/null 2>&1 || fail "train other.model"
v0=$("$MALFAM" ping "${S[@]}" | sed 's/.*"model":"\([^"]*\)".*/\1/')
sed -i "s|^model = .*|model = other.model|" "$T/d.conf"
out=$("$MALFAM" reload "${S[@]}") || fail "reload with a new model path: $out"
v1=$("$MALFAM" ping "${S[@]}" | sed 's/.*"model":"\([^"]*\)".*/\1/')
[ -n "$v1" ] && [ "$v1" != "$v0" ] || fail "model after reload: $v0 -> $v1"
"$MALFAM" stats "${S[@]}" | grep -q "\"model_path\":\"$T/other.model\"" || fail "stats model_path"
echo "bogus_key = 1" >> "$T/d.conf"
if "$MALFAM" reload "${S[@]}" 2>"$T/err"; then fail "reload of a bad config exit 0"; fi
grep -q "d.conf:[0-9]*: unknown key \"bogus_key\"" "$T/err" || fail "bad config: $(cat "$T/err")"
[ "$("$MALFAM" ping "${S[@]}" | sed 's/.*"model":"\([^"]*\)".*/\1/')" = "$v1" ] || fail "kept"
sed -i '/^bogus_key/d; s|^model = .*|model = '"$T"'/model|' "$T/d.conf"
kill -HUP "$DPID"
for _ in $(seq 100); do
    [ "$("$MALFAM" ping "${S[@]}" | sed 's/.*"model":"\([^"]*\)".*/\1/')" = "$v0" ] && break
    sleep 0.1
done
[ "$("$MALFAM" ping "${S[@]}" | sed 's/.*"model":"\([^"]*\)".*/\1/')" = "$v0" ] || fail "SIGHUP"
ok "reload and SIGHUP read the config again: a new model path serves, a bad config is refused"

# a bad mode in the config is refused with its line number
sed 's/^mode = .*/mode = bogus/' "$T/d.conf" > "$T/badmode.conf"
if "$MALFAMD" --check-config -c "$T/badmode.conf" 2>"$T/err"; then fail "mode = bogus passed"; fi
grep -q "badmode.conf:[0-9]*: mode: unknown scoring mode" "$T/err" || fail "bad mode: $(cat "$T/err")"
ok "config: a bad mode names its line"

# errors that say what to check
if "$MALFAM" ping --socket "$T/d.conf" 2>"$T/err"; then fail "ping on a file exit 0"; fi
grep -q "is not a socket" "$T/err" || fail "not a socket: $(cat "$T/err")"
stop_daemon || fail "stop"
if "$MALFAM" ping "${S[@]}" 2>"$T/err"; then fail "ping with no daemon exit 0"; fi
grep -q "is malfamd running" "$T/err" || fail "no daemon: $(cat "$T/err")"
ok "no daemon and not a socket: exit 1 and what to check"
echo "cli_ops: all passed"
