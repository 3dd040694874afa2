#!/bin/bash
# daemon_faults.sh - faults during write-back: kill -9 at random moments (MFD_KILL_TRIALS,
# default 10; the long run uses 100), disk full (file-size limit), a report appended to while
# it is labelled, an idle client, the model truncated in place. The report must always parse
# and be the original or the labelled version; nothing else may be lost.
set -u
. "$(dirname "$0")/daemon_common.sh"
MFD_IDLE=1 setup daemon_faults
TRIALS=${MFD_KILL_TRIALS:-10}
K=$T/root/k
mkdir -p "$K"
cp "$T/root/a/cape22_qakbot_0000a657.json" "$T/orig.json"     # 34 MB: write-back takes a while
cp "$T/orig.json" "$K/r.json"
label_req="{\"op\":\"classify\",\"path\":\"$K/r.json\",\"write_back\":true}"

# the labelled version, once, as the reference
start_daemon
t0=$(date +%s%N)
req "$label_req" | grep -q '"ok":true' || fail "reference label"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
cp "$K/r.json" "$T/labelled.json"
"$PY" -c "import json,sys; json.load(open(sys.argv[1]))" "$T/labelled.json" || fail "labelled report does not parse"
client check_label "$T/orig.json" "$T/labelled.json" >/dev/null || fail "labelled report changed other bytes"
ok "reference write-back of a 34 MB report: ${ms} ms"

# idle client: closed after idle_timeout (1 s here)
a=$("$PY" - "$T/s.sock" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(2.5)
try:
    s.sendall(b'{"op":"ping"}\n'); print(repr(s.recv(100)))
except OSError as e:
    print("closed", e)
PY
)
case "$a" in *closed*|"b''") ;; *) fail "idle client not disconnected: $a";; esac
ok "idle client disconnected"

# kill -9 at random moments of a write-back, daemon restarted over its stale socket each time
orig_n=0; lab_n=0
for i in $(seq "$TRIALS"); do
    cp "$T/orig.json" "$K/r.json"
    [ -n "$DPID" ] || start_daemon
    req "$label_req" >/dev/null 2>&1 &
    RP=$!
    sleep "$(awk -v r=$RANDOM -v m="$ms" 'BEGIN{printf "%.3f", r / 32768 * m * 1.2 / 1000}')"
    kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
    wait $RP 2>/dev/null
    if cmp -s "$K/r.json" "$T/orig.json"; then orig_n=$((orig_n + 1))
    elif cmp -s "$K/r.json" "$T/labelled.json"; then lab_n=$((lab_n + 1))
    else fail "trial $i: the report is neither the original nor the labelled one"; fi
    # a killed write may leave its temp file (never a broken report); the next write-back
    # of r.json removes it, as the killed daemon's PID is dead
done
ok "kill -9 x$TRIALS during write-back: $orig_n original, $lab_n labelled, 0 broken"
[ -n "$DPID" ] || start_daemon
left=$(ls -a "$K" | grep -c 'malfam-.*tmp')
req "$label_req" | grep -q '"ok":true' || fail "label after the kill trials"
ls -a "$K" | grep -q 'malfam-.*tmp' && fail "stale temp files of killed daemons left"
req '{"op":"stats"}' | grep -q "\"stale_tmp_removed\":$left[,}]" || fail "stale temps not counted ($left)"
stop_daemon || fail "SIGTERM after the kill trials"
ok "stale temps of killed write-backs: $left removed by the next write-back, counted in stats"

# disk full: a file-size limit below the report size; the write fails, the original stays
cp "$T/orig.json" "$K/r.json"
start_daemon bash -c 'ulimit -f 20000; exec "$@"' _
a=$(req "$label_req")
echo "$a" | grep -q '"ok":false.*write-back' || fail "disk full: $a"
cmp -s "$K/r.json" "$T/orig.json" || fail "disk full changed the report"
ls -a "$K" | grep -q 'malfam-.*tmp' && fail "temp file left after a failed write"
req '{"op":"ping"}' | grep -q '"ok":true' || fail "daemon gone after disk full"
stop_daemon || fail "SIGTERM after disk full"
ok "disk full (file-size limit): error answer, original untouched, temp removed"

# a report appended to while it is labelled: refused, and no appended byte lost
start_daemon
cp "$T/orig.json" "$K/r.json"
"$PY" - "$K/r.json" <<'PY' &
import sys, time
end = time.time() + 3
while time.time() < end:
    with open(sys.argv[1], "a") as f:
        f.write(" ")
    time.sleep(0.001)
PY
WP=$!
sleep 0.2
a=$(req "$label_req")
wait $WP
echo "$a" | grep -q '"ok":false.*changed' || fail "appended report: $a"
n=$(($(stat -c %s "$K/r.json") - $(stat -c %s "$T/orig.json")))
[ "$n" -gt 0 ] && cmp -s -n "$(stat -c %s "$T/orig.json")" "$K/r.json" "$T/orig.json" || fail "appended bytes lost"
stop_daemon || fail "SIGTERM"
ok "report appended to while labelled: refused (changed), $n appended bytes kept"
# the model rewritten in place (cp over it instead of a rename): its linear weights are a
# mapping of the file under a read lease, so the writer waits while the daemon copies them in;
# then the daemon answers on with the model it had, and a reload refuses the empty file
start_daemon
grep -q " $T/model\$" /proc/$DPID/maps || fail "the model's weights are not mapped (a model written before the ALGN section? retrain $MODEL)"
cls="{\"op\":\"classify\",\"path\":\"$T/root/a/cape22_55dcd387.json\"}"
before=$(req "$cls")
echo "$before" | grep -q '"ok":true' || fail "classify before the rewrite: $before"
id=$(echo "$before" | sed 's/.*"model":"\([0-9a-f]*\)".*/\1/')
t0=$(date +%s%N)
: > "$T/model"                                  # blocks until the daemon lets go of its lease
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q "is being rewritten in place: its linear weights are copied" "$T/daemon.log" || fail "no copy logged"
grep -q " $T/model" /proc/$DPID/maps && fail "the truncated file is still mapped"
after=$(req "$cls")
[ "$(echo "$before" | sed 's/"ms":[0-9.]*//')" = "$(echo "$after" | sed 's/"ms":[0-9.]*//')" ] ||
    fail "another answer after the rewrite: $after"
req '{"op":"reload"}' | grep -q '"ok":false' || fail "a reload of the empty file was not refused"
req "$cls" | grep -q "\"model\":\"$id\"" || fail "the model changed after a refused reload"
stop_daemon || fail "SIGTERM after the rewrite"
ok "model truncated in place under the daemon: the writer waited ${ms} ms for the copy, same answers, reload refused"
echo "daemon_faults: all passed"
