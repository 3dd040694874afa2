#!/bin/bash
# daemon_basic.sh - the real malfamd on a temp socket: every op and error, write-back on every
# real report, hostile input, hang-up mid-stream, 64 concurrent clients, reload under load, a
# bad model refused, a second daemon refused, SIGTERM.
set -u
. "$(dirname "$0")/daemon_common.sh"
setup daemon_basic
start_daemon
A=$T/root/a

# ping / stats carry the protocol version
a=$(req '{"op":"ping","id":"p1"}'); echo "$a" | grep -q '"v":1,"id":"p1","ok":true' || fail "ping: $a"
a=$(req '{"op":"stats"}'); echo "$a" | grep -q '"latency_ms"' || fail "stats: $a"
ok "ping, stats"

# classify every real report (plain, decompressed, and a gzip file read as it is)
for f in "$A"/*.json "$A"/gz.json.gz; do
    a=$(req "{\"op\":\"classify\",\"id\":7,\"path\":\"$f\",\"top\":2}")
    echo "$a" | grep -q '"ok":true' || fail "classify $f: $a"
done
a=$(req "{\"op\":\"classify\",\"path\":\"$A/cuckoo207_sodinokibi_nocalls.json\"}")
echo "$a" | grep -q '"families":\[\].*"note":"no trace"' || fail "no-trace report: $a"
ok "classify: $(ls "$A" | wc -l) reports"

# the CLI client prints the same answer
"$MALFAM" classify --socket "$T/s.sock" "$A/cape22_55dcd387.json" | grep -q '"ok":true' || fail "malfam classify"

# write-back through `malfam label`: original minus the key, byte for byte; twice = one key
mkdir -p "$T/orig"; cp "$A"/*.json "$T/orig/"
"$MALFAM" label --socket "$T/s.sock" "$A"/*.json >/dev/null 2>"$T/label.err" || fail "label: $(cat "$T/label.err")"
for f in "$T"/orig/*.json; do
    client check_label "$f" "$A/$(basename "$f")" >/dev/null || fail "write-back changed $(basename "$f")"
done
mode_before=$(stat -c %a "$A/cape22_55dcd387.json")
"$MALFAM" label --socket "$T/s.sock" "$A/cape22_55dcd387.json" >/dev/null 2>&1 || fail "relabel"
[ "$(grep -o '"malfam"' "$A/cape22_55dcd387.json" | wc -l)" = 1 ] || fail "relabel duplicated the key"
[ "$(stat -c %a "$A/cape22_55dcd387.json")" = "$mode_before" ] || fail "mode changed"
ls -a "$A" | grep -q 'malfam-.*tmp' && fail "temp file left behind"
a=$(req "{\"op\":\"classify\",\"path\":\"$A/gz.json.gz\",\"write_back\":true}")
echo "$a" | grep -q '"error":"MF_EINVAL".*gzip' || fail "write_back on gzip: $a"
ok "write-back: every report preserved, relabel replaces, mode kept, gzip refused"

# errors: each gets its code, and the daemon goes on
cp "$T/orig/cape22_55dcd387.json" "$T/outside/secret.json"
ln -s "$T/outside/secret.json" "$A/escape.json"
ln -s "$T/outside" "$A/outdir"
mkfifo "$A/fifo.json"
head -c 100000 "$T/orig/cape22_55dcd387.json" > "$A/truncated.json"
printf '{"behavior":{"processes":[{"calls":[{"api":"NtClose"' > "$A/hostile.json"
printf '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[' > "$A/deep.json"
expect() { # expect CODE JSON
    local a; a=$(req "$2"); echo "$a" | grep -q "\"error\":\"$1\"" || fail "wanted $1 for $2, got: $a"
}
expect MF_EPERM "{\"op\":\"classify\",\"path\":\"/etc/passwd\"}"
expect MF_EPERM "{\"op\":\"classify\",\"path\":\"$A/escape.json\"}"
expect MF_EPERM "{\"op\":\"classify\",\"path\":\"$A/outdir/secret.json\"}"
expect MF_EPERM "{\"op\":\"classify\",\"path\":\"$A/../../outside/secret.json\"}"
expect MF_EPERM "{\"op\":\"classify\",\"path\":\"$A/fifo.json\"}"
expect MF_EPERM "{\"op\":\"classify\",\"path\":\"$A\"}"
expect MF_ENOENT "{\"op\":\"classify\",\"path\":\"$A/vanished.json\"}"
expect MF_EINVAL "{\"op\":\"classify\",\"path\":\"relative.json\"}"
expect MF_EJSON "{\"op\":\"classify\",\"path\":\"$A/truncated.json\"}"
expect MF_EJSON "{\"op\":\"classify\",\"path\":\"$A/hostile.json\"}"
a=$(req "{\"op\":\"classify\",\"path\":\"$A/deep.json\"}"); echo "$a" | grep -q '"ok":false' || fail "deep: $a"
expect MF_EJSON 'not json'
expect MF_EJSON '[1,2]'
expect MF_EINVAL '{"op":"explode"}'
expect MF_EINVAL '{"op":"classify"}'
expect MF_EINVAL '{"op":"classify_stream","bytes":-1}'
expect MF_ELIMIT "$(head -c 70000 /dev/zero | tr '\0' 'x')"
expect MF_ELIMIT '{"op":"classify_stream","bytes":99999999999999}'
cmp -s "$T/orig/cape22_55dcd387.json" "$T/outside/secret.json" || fail "a file outside the root changed"
ok "errors: outside, symlink escapes, .., FIFO, dir, vanished, relative, truncated, hostile, deep, bad lines, oversized"

# classify_stream: a report and a bare behavior object; a hang-up mid-stream costs nothing
a=$(req '{"op":"classify_stream","id":"s","bytes":'"$(stat -c %s "$T/orig/cape22_55dcd387.json")"'}' "$T/orig/cape22_55dcd387.json")
b=$(req "{\"op\":\"classify\",\"id\":\"s\",\"path\":\"$T/outside/secret.json\"}")
echo "$a" | grep -q '"ok":true' || fail "stream: $a"
printf '{"processes":[{"process_name":"x.exe","calls":[{"api":"NtClose"},{"api":"NtOpenKey"}]}]}' > "$T/bare.json"
a=$(req '{"op":"classify_stream","bytes":'"$(stat -c %s "$T/bare.json")"'}' "$T/bare.json")
echo "$a" | grep -q '"ok":true.*"calls":2' || fail "bare stream: $a"
for _ in 1 2 3; do client hangup "$T/orig/cape22_55dcd387.json"; done
a=$(req '{"op":"classify_stream","id":"after","bytes":'"$(stat -c %s "$T/orig/cape22_55dcd387.json")"'}' "$T/orig/cape22_55dcd387.json")
echo "$a" | grep -q '"ok":true' || fail "answer after hang-ups: $a"
ref=$(echo "$a" | grep -o '"families":[^]]*]')
a2=$(req '{"op":"classify_stream","bytes":'"$(stat -c %s "$T/orig/cape22_55dcd387.json")"'}' "$T/orig/cape22_55dcd387.json")
[ "$(echo "$a2" | grep -o '"families":[^]]*]')" = "$ref" ] || fail "answers differ after hang-ups"
grep -q 'hung up mid-request' "$T/daemon.log" || fail "hang-up not logged"
ok "classify_stream: report, bare processes, 3 hang-ups mid-body then the right answer"

# classify_stream + write_back (CAPE, json.calls=0): report.json holds no calls, classify +
# write_back stores "no trace"; the calls streamed from memory then replace that answer.
# A temp file of a killed earlier write-back (dead PID) is removed and counted.
mkdir -p "$T/root/cape/reports"; R=$T/root/cape/reports/report.json
cp "$T/orig/cuckoo207_sodinokibi_nocalls.json" "$R"
a=$(req "{\"op\":\"classify\",\"path\":\"$R\",\"write_back\":true}")
echo "$a" | grep -q '"note":"no trace"' || fail "no-calls classify: $a"
grep -q '"note":"no trace"' "$R" || fail "no-calls answer not written"
dead=$(sh -c 'echo $$'); kill -0 "$dead" 2>/dev/null && fail "pid $dead is alive"
printf '{"half' > "$T/root/cape/reports/.report.json.malfam-$dead-1.tmp"
body=$T/orig/cape22_55dcd387.json
a=$(req "{\"op\":\"classify_stream\",\"id\":\"sw\",\"bytes\":$(stat -c %s "$body"),\"path\":\"$R\",\"write_back\":true}" "$body")
echo "$a" | grep -q '"id":"sw","ok":true' || fail "stream write_back: $a"
"$PY" - "$R" "$a" "$T/orig/cuckoo207_sodinokibi_nocalls.json" <<'PYEOF' || fail "report.json after stream write_back"
import json, sys
doc, ans = json.load(open(sys.argv[1])), json.loads(sys.argv[2])
orig = json.load(open(sys.argv[3]))
m = doc.pop("malfam")
assert ans["calls"] > 0 and m["calls"] == ans["calls"], (m, ans)
assert m["families"] == ans["families"] and "note" not in m, m
assert doc == orig
assert open(sys.argv[1], "rb").read().count(b'"malfam"') == 1
PYEOF
ls -a "$T/root/cape/reports" | grep -q 'malfam-.*tmp' && fail "stale temp file not removed"
req '{"op":"stats"}' | grep -q '"stale_tmp_removed":[1-9]' || fail "stale temp not counted"
expect MF_EINVAL '{"op":"classify_stream","bytes":2,"write_back":true}'
a=$(req "{\"op\":\"classify_stream\",\"bytes\":$(stat -c %s "$body"),\"path\":\"$T/outside/secret.json\",\"write_back\":true}" "$body")
echo "$a" | grep -q '"error":"MF_EPERM"' || fail "stream write_back outside the roots: $a"
cmp -s "$T/orig/cape22_55dcd387.json" "$T/outside/secret.json" || fail "a file outside the root changed"
ok "classify_stream + write_back: the streamed answer replaces the file's no-calls one; stale temp removed"

# 64 concurrent clients, mixed sizes, classify + stream
mkdir -p "$T/root/b"; cp "$T"/orig/*.json "$T/root/b/"
files=$(ls "$T"/root/b/*.json | head -5)
LOADN=${MFD_LOAD_REQS:-10}   # requests per client; fewer under valgrind (daemon_valgrind.sh)
client load 64 "$LOADN" $files || fail "64 clients"
ok "64 clients x $LOADN requests: all answers equal the serial reference"

# reload under load: none fails; a bad model is refused and the old one kept
ver=$(req '{"op":"ping"}' | grep -o '"model":"[^"]*"')
client load 16 $((LOADN * 2)) $files > "$T/load.out" 2>&1 &
LP=$!
for _ in 1 2 3 4 5; do
    a=$(req '{"op":"reload"}'); echo "$a" | grep -q '"ok":true' || echo "$a" | grep -q 'already in progress' || fail "reload: $a"
    kill -HUP "$DPID"; sleep 0.1
done
wait $LP || fail "requests failed during reload: $(cat "$T/load.out")"
cp "$T/model" "$T/model.good"
printf 'not a model' > "$T/model"
# the reloads above may still run (a load trains the linear SVM: seconds under valgrind)
for _ in $(seq 1 120); do
    a=$(req '{"op":"reload"}'); echo "$a" | grep -q 'already in progress' || break; sleep 0.5
done
echo "$a" | grep -q '"ok":false' || fail "bad model accepted: $a"
[ "$(req '{"op":"ping"}' | grep -o '"model":"[^"]*"')" = "$ver" ] || fail "model changed after a bad reload"
client load 4 5 $files >/dev/null || fail "classify after a bad reload"
grep -q 'reload refused, keeping model' "$T/daemon.log" || fail "refused reload not logged"
cp "$T/model.good" "$T/model"
ok "reload x10 under load (16 clients), bad model refused, old kept"

# a second daemon on the same socket is refused; the first keeps answering
"$MALFAMD" -c "$T/d.conf" --foreground 2>"$T/second.err" && fail "second daemon started"
grep -q 'another daemon' "$T/second.err" || fail "second daemon: $(cat "$T/second.err")"
req '{"op":"ping"}' | grep -q '"ok":true' || fail "first daemon gone"
ok "a live daemon's socket is not taken"

# SIGTERM: exit 0, socket removed; then a stale socket file is replaced at the next start
stop_daemon || fail "SIGTERM exit status $?"
[ -e "$T/s.sock" ] && fail "socket left after SIGTERM"
"$PY" -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$T/s.sock"
start_daemon
req '{"op":"ping"}' | grep -q '"ok":true' || fail "start over a stale socket"
stop_daemon || fail "second SIGTERM"
ok "SIGTERM exits 0 and removes the socket; a stale socket is replaced"
echo "daemon_basic: all passed"
