#!/bin/bash
# daemon_files.sh - malfamd against racing processes and other users (issue 12): a root (or
# the directory above it) swapped for a symlink while reports are classified and written back
# (nothing outside the roots is read or written); a report replaced (temp + rename) every
# ~2 ms while write-backs run (no replacement lost); write-back only for a client that could
# write the report itself, errors that say nothing about paths outside the roots; a daemon
# that writes back as a group member; a big report whose trace is full early.
# The racing parts run MFD_RACE_SECONDS (3) each; `make soak` runs them longer.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/daemon_common.sh"
SECS=${MFD_RACE_SECONDS:-3}
OWNER=4242 DUID=4243 DGID=4244   # scratch ids: a report owner, the daemon's user and group
setup daemon_files
chmod 755 "$T"
sed -i "s|^allowed_roots = .*|allowed_roots = $T/root:$T/p/root|; s|^max_jobs = .*|max_jobs = 2\nsocket_mode = 0666|" "$T/d.conf"
mkdir -p "$T/p/root" "$T/o/root"
start_daemon
# two real reports the model gives different families: an answer tells which one was read
family() { req "{\"op\":\"classify\",\"path\":\"$1\"}" | "$PY" -c 'import json,sys; a=json.load(sys.stdin); print(a["families"][0]["family"] if a.get("families") else "")'; }
IN="" OUT="" fin="" fout=""
for f in "$T"/root/a/*.json; do
    fam=$(family "$f")
    [ -n "$fam" ] || continue
    if [ -z "$IN" ]; then IN=$f fin=$fam; elif [ "$fam" != "$fin" ]; then OUT=$f fout=$fam; break; fi
done
[ -n "$OUT" ] || fail "reports for the swap test: no two real reports with different families"
cp "$IN" "$T/p/root/r.json"; cp "$OUT" "$T/o/root/r.json"
[ "$(family "$T/p/root/r.json")" = "$fin" ] || fail "the swap test's inside copy changed family"

# ---- 1. root swapped for a symlink -----------------------------------------------------------
cat > "$T/swap.py" <<'PYEOF'
import os, sys, time
p, o, stop = sys.argv[1:4]
n = 0
while not os.path.exists(stop):
    n += 1
    # the root itself, then the directory above it, each for a moment a symlink to the decoy
    a, b = (p + "/root", o + "/root") if n % 2 else (p, o)
    os.rename(a, a + ".aside"); os.symlink(b, a)
    time.sleep(0.0003)
    os.unlink(a); os.rename(a + ".aside", a)
    time.sleep(0.0003)
print(n)
PYEOF
cat > "$T/hammer.py" <<'PYEOF'
import json, socket, sys, threading, time
sock, path, secs, fout = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
res = {"ok": 0, "err": 0, "escaped": 0, "wb": 0}
lock = threading.Lock()
def worker(k):
    s = socket.socket(socket.AF_UNIX); s.settimeout(120); s.connect(sock)
    f = s.makefile("rb"); end = time.time() + secs; i = 0
    while time.time() < end:
        batch = []
        for _ in range(16):
            i += 1
            batch.append(json.dumps({"op": "classify", "path": path, "id": "%d-%d" % (k, i),
                                     "write_back": i % 8 == 0}))
        s.sendall(("\n".join(batch) + "\n").encode())
        for _ in batch:
            a = json.loads(f.readline())
            with lock:
                if not a.get("ok"):
                    res["err"] += 1
                elif a["families"][0]["family"] == fout:
                    res["escaped"] += 1
                else:
                    res["ok"] += 1
                    res["wb"] += int(a["id"].split("-")[1]) % 8 == 0
    s.close()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
for t in ts: t.start()
for t in ts: t.join()
print("%d %d %d %d" % (res["ok"], res["err"], res["escaped"], res["wb"]))
PYEOF
before=$(sha256sum < "$T/o/root/r.json")
rm -f "$T/stop"
"$PY" "$T/swap.py" "$T/p" "$T/o" "$T/stop" > "$T/swaps" & SW=$!
set -- $("$PY" "$T/hammer.py" "$T/s.sock" "$T/p/root/r.json" "$SECS" "$fout") ; touch "$T/stop"; wait $SW
[ $# = 4 ] || fail "root swap: the client failed"
echo "root swap: $(cat "$T/swaps") swaps, $(( $1 + $2 + $3 )) answers: $1 ok inside ($4 written back), $2 refused, $3 on the file outside"
[ "$3" = 0 ] || fail "root swap: $3 answers read the report outside allowed_roots"
[ "$(sha256sum < "$T/o/root/r.json")" = "$before" ] || fail "root swap: the report outside was changed"
[ "$1" -gt 0 ] || fail "root swap: no answer at all was ok"
grep -q '"malfam"' "$T/p/root/r.json" || fail "root swap: the report inside was never labelled"
ok "root swapped for a symlink: 0 reads or writes outside allowed_roots"

# ---- 12. a report replaced by another process while write-backs run ---------------------------
cat > "$T/replace.py" <<'PYEOF'
import os, re, sys, time
path, stop = sys.argv[1], sys.argv[2]
body = open(path, "rb").read()
body = body[body.index(b"{") + 1:]
tmp = os.path.join(os.path.dirname(path), "replacer.tmp")
def put(k):
    with open(tmp, "wb") as f:
        f.write(b'{"seq": %d, ' % k + body)
    os.rename(tmp, path)
def seq():
    m = re.match(rb'\{"seq": (\d+)', open(path, "rb").read(64))
    return int(m.group(1)) if m else -1
last, lost, blink = 0, 0, 0
put(0)
while not os.path.exists(stop):
    if seq() != last:
        # an older copy holds the name: for the instant between the daemon's exchange and its
        # swap back (a reader can catch it there), or for good (lost)
        time.sleep(0.05)
        if seq() == last:
            blink += 1
        else:
            lost += 1
    last += 1
    put(last)
    # every ~2 ms, with a quiet 150 ms every 100, so that some write-backs also get through
    time.sleep(0.15 if last % 100 == 0 else 0.002)
lost += seq() != last
print(last, lost, blink)
PYEOF
cat > "$T/writeback.py" <<'PYEOF'
import json, socket, sys, threading, time
sock, path, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
res = {}
def worker(k):
    s = socket.socket(socket.AF_UNIX); s.settimeout(120); s.connect(sock)
    f = s.makefile("rb"); end = time.time() + secs
    while time.time() < end:
        s.sendall((json.dumps({"op": "classify", "path": path, "write_back": True}) + "\n").encode())
        a = json.loads(f.readline())
        key = "ok" if a.get("ok") else a.get("error")
        res[key] = res.get(key, 0) + 1
    s.close()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
for t in ts: t.start()
for t in ts: t.join()
print(res.get("ok", 0), res.get("MF_ECANCELED", 0), sum(res.values()))
PYEOF
R="$T/root/a/race.json"; cp "$T/root/a/cuckoo207_sodinokibi_nocalls.json" "$R"; rm -f "$T/stop"
"$PY" "$T/replace.py" "$R" "$T/stop" > "$T/repl" & RP=$!
set -- $("$PY" "$T/writeback.py" "$T/s.sock" "$R" "$SECS"); touch "$T/stop"; wait $RP
[ $# = 3 ] || fail "replace race: the client failed"
read -r nrep lost blink < "$T/repl"
echo "replace race: $nrep replacements, $lost lost, $blink seen older for an instant (swapped back); write-backs: $3 answers, $1 ok, $2 refused as changed"
[ "$lost" = 0 ] || fail "replace race: $lost replacements were overwritten by an older labelled copy"
[ "$1" -gt 0 ] || fail "replace race: no write-back succeeded"
ls -a "$T/root/a" | grep -q 'malfam-' && fail "replace race: temp files left: $(ls -a "$T/root/a" | grep malfam-)"
ok "report replaced every ~2 ms during write-backs: 0 replacements lost"

# ---- 3. write-back only for a client that could write the report itself ------------------------
# (a system python: the one in $PY may live where that user cannot read)
as_user() { setpriv --reuid=$OWNER --regid=$OWNER --clear-groups /usr/bin/python3 "$T/client.py" "$T/s.sock" raw "$@"; }
V="$T/root/a/victim.json"; cp "$IN" "$V"; chmod 644 "$V"
before=$(sha256sum < "$V")
a=$(as_user "{\"op\":\"classify\",\"path\":\"$V\",\"write_back\":true}")
echo "$a" | grep -q '"error":"MF_EPERM".*write_back refused' || fail "uid $OWNER wrote back a root-owned 0644 report: $a"
SMALL="$T/root/a/cuckoo207_sodinokibi_nocalls.json"
a=$(as_user "{\"op\":\"classify_stream\",\"bytes\":$(stat -c %s "$SMALL"),\"path\":\"$V\",\"write_back\":true}" "$SMALL")
echo "$a" | grep -q '"error":"MF_EPERM".*write_back refused' || fail "uid $OWNER wrote a streamed label into a root-owned report: $a"
[ "$(sha256sum < "$V")" = "$before" ] || fail "the root-owned report was changed"
a=$(as_user "{\"op\":\"classify\",\"path\":\"$V\"}")
echo "$a" | grep -q '"ok":true' || fail "uid $OWNER could not classify: $a"
chown $OWNER "$V"
a=$(as_user "{\"op\":\"classify\",\"path\":\"$V\",\"write_back\":true}")
echo "$a" | grep -q '"ok":true' || fail "the owner could not write back its own report: $a"
[ "$(stat -c %u "$V")" = $OWNER ] && grep -q '"malfam"' "$V" || fail "owner's write-back: not labelled or owner lost"
ok "write-back refused for a client that could not write the report (kept for its owner)"
ln -s /etc/shadow "$T/root/a/sh.json"; ln -s /etc/no-such-file "$T/root/a/none.json"
a1=$(as_user "{\"op\":\"classify\",\"path\":\"$T/root/a/sh.json\"}")
a2=$(as_user "{\"op\":\"classify\",\"path\":\"$T/root/a/none.json\"}")
a3=$(as_user "{\"op\":\"classify\",\"path\":\"/etc/shadow\"}")
[ "$a1" = "$a2" ] && [ "$a1" = "$a3" ] || fail "errors outside the roots differ: $a1 / $a2 / $a3"
echo "$a1" | grep -q 'shadow' && fail "the error names the target: $a1"
ok "a path outside the roots: one error, whether it exists or not, target not named"

# ---- 17. a big report whose trace is full early -------------------------------------------------
# (a daemon of its own with a 2 MiB report limit: the real reports above are bigger than that
# inflated, and with a full-length model their traces are never full)
stop_daemon || fail "malfamd did not stop cleanly"
echo "max_report_bytes = 2M" >> "$T/d.conf"
start_daemon
"$PY" "$MF_DATA/../tools/gen_report.py" --row 3 --calls 8000 --format cape > "$T/root/a/big.json"
size=$(stat -c %s "$T/root/a/big.json")
[ "$size" -gt 2000000 ] || fail "gen_report made only $size bytes"
a=$(req "{\"op\":\"classify\",\"path\":\"$T/root/a/big.json\"}")
echo "$a" | grep -q '"ok":true' || fail "big report ($size bytes, max_report_bytes 2M): $a"
a=$(req "{\"op\":\"classify\",\"path\":\"$T/root/a/big.json\",\"write_back\":true}")
echo "$a" | grep -q '"ok":true' || fail "big report written back ($size bytes, max_report_bytes 2M): $a"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "families" in d["malfam"]' "$T/root/a/big.json" \
    || fail "big report: not labelled"
ok "a $size-byte report whose trace is full early: classified and written back with max_report_bytes = 2M"
stop_daemon || fail "malfamd did not stop cleanly"

# ---- 13. the daemon writes back as a member of the report's group -------------------------------
mkdir -p "$T/g"; chown root:$DGID "$T/g"; chmod 2775 "$T/g"
cp "$IN" "$T/g/r.json"; chown $OWNER:$DGID "$T/g/r.json"; chmod 664 "$T/g/r.json"
chown $DUID:$DGID "$T"; rm -f "$T/s.sock"
sed -i "s|^allowed_roots = .*|allowed_roots = $T/g|" "$T/d.conf"
before=$(sha256sum < "$T/g/r.json")
copied=$(grep -c "linear weights copied (not mapped: " "$T/daemon.log")
mapped=$(grep -c "linear weights mapped (read lease held)" "$T/daemon.log")
start_daemon setpriv --reuid=$DUID --regid=$DGID --clear-groups
# the model is root's: no read lease without CAP_LEASE, so its weights are copied, not mapped
[ "$(grep -c "linear weights copied (not mapped: " "$T/daemon.log")" -gt "$copied" ] ||
    fail "no lease on another user's model, yet its weights were not copied"
a=$(req "{\"op\":\"classify\",\"path\":\"$T/g/r.json\",\"write_back\":true}")
echo "$a" | grep -q '"error":"MF_EPERM".*cannot keep owner.*CAP_CHOWN' || fail "group member without CAP_CHOWN: $a"
[ "$(sha256sum < "$T/g/r.json")" = "$before" ] || fail "refused write-back changed the report"
stop_daemon || fail "malfamd did not stop cleanly"
rm -f "$T/s.sock"
start_daemon setpriv --reuid=$DUID --regid=$DGID --clear-groups --inh-caps=+chown,+lease --ambient-caps=+chown,+lease
# CAP_LEASE (as the systemd unit grants): the lease, so the weights are mapped
[ "$(grep -c "linear weights mapped (read lease held)" "$T/daemon.log")" -gt "$mapped" ] ||
    fail "CAP_LEASE given, yet the weights were not mapped"
a=$(req "{\"op\":\"classify\",\"path\":\"$T/g/r.json\",\"write_back\":true}")
echo "$a" | grep -q '"ok":true' || fail "group member with CAP_CHOWN: $a"
[ "$(stat -c %u:%g:%a "$T/g/r.json")" = "$OWNER:$DGID:664" ] || fail "owner or mode not kept: $(stat -c %u:%g:%a "$T/g/r.json")"
"$PY" "$T/client.py" "$T/s.sock" check_label "$IN" "$T/g/r.json" > /dev/null || fail "group write-back: bad label"
stop_daemon || fail "malfamd did not stop cleanly"
ok "group member: refused with the reason without CAP_CHOWN, owner and mode kept with it; the model's weights copied without CAP_LEASE, mapped with it"
chown root:root "$T"
