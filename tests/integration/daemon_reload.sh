#!/bin/bash
# daemon_reload.sh - a model rolled out under load (issue 16 item 5): clients keep classifying
# (classify and classify_stream; the served mode, knn and likelihood, which each model builds on
# its first request: views, networks read from the file) on open connections while the daemon reloads MFD_RELOADS times (default 6), the
# model file swapped each time between two models with different ids. Every request must be
# answered ok (none dropped, none refused), each reload's answer must name the new model, and
# every request sent after a reload answered must carry that model's id. A reload that does
# not fit within the timeouts is a failure, not a skip.
set -u
. "$(dirname "$0")/daemon_common.sh"
setup daemon_reload
RELOADS=${MFD_RELOADS:-6}

# model B: model A with one extra section of an unknown tag, which the loader skips: the same
# answers under another id (the id is the file's checksum)
"$PY" - "$T/model" "$T/model.b" <<'PY' || fail "making model B"
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
magic, ver, res, plen = struct.unpack_from("<8sIIQ", d, 0)
body = d[24:24 + plen] + struct.pack("<4sIQ", b"XTST", 0, 8) + b"rollout!"
head = struct.pack("<8sIIQ", magic, ver, res, len(body))
out = head + body
open(sys.argv[2], "wb").write(out + struct.pack("<I", zlib.crc32(out) & 0xffffffff))
PY
cp "$T/model" "$T/model.a"
idA=$("$MALFAM" info "$T/model.a" | awk 'NR == 1 {print $2; exit}' | tr -d ,)
idB=$("$MALFAM" info "$T/model.b" | awk 'NR == 1 {print $2; exit}' | tr -d ,)
[ -n "$idA" ] && [ -n "$idB" ] && [ "$idA" != "$idB" ] || fail "model ids: '$idA' '$idB'"

start_daemon
files=$(ls -Sr "$T"/root/a/*.json | head -4)   # the 4 smallest: quick under ASan too
# shellcheck disable=SC2086
out=$(timeout 240 "$PY" - "$T/s.sock" "$T" "$RELOADS" "$idA" "$idB" $files <<'PY' 2>&1
import json, os, shutil, socket, sys, threading, time

sock, tdir, nrel, ids, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:6], sys.argv[6:]

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(sock)
    return s

def reader(s):
    buf = b""
    while True:
        while b"\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise IOError("connection closed by the daemon")
            buf += d
        line, buf = buf.split(b"\n", 1)
        yield json.loads(line)

stop = threading.Event()
log, errors, lock = [], [], threading.Lock()

def worker(k):
    try:
        s = connect()
        answers = reader(s)
        i = 0
        while not stop.is_set():
            f = files[(k + i) % len(files)]
            rid = "%d-%d" % (k, i)
            req = {"op": "classify", "path": f, "id": rid}
            if i % 4 in (1, 2):  # built on first use: knn's views, likelihood's networks
                req["mode"] = "knn" if i % 4 == 1 else "likelihood"
            t0 = time.monotonic()
            if i % 4 == 3:
                body = open(f, "rb").read()
                req = {"op": "classify_stream", "id": rid, "bytes": len(body)}
                s.sendall((json.dumps(req) + "\n").encode() + body)
            else:
                s.sendall((json.dumps(req) + "\n").encode())
            a = next(answers)
            with lock:
                if not a.get("ok") or a.get("id") != rid:
                    errors.append(a)
                log.append((t0, time.monotonic(), a.get("model")))
            i += 1
        s.close()
    except Exception as e:
        with lock:
            errors.append("worker %d: %r" % (k, e))

ws = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
for w in ws:
    w.start()
time.sleep(0.3)
marks = []  # (time the reload was asked, time it was answered, model id it named)
for r in range(nrel):
    want = ids[(r + 1) % 2]
    shutil.copyfile(os.path.join(tdir, "model.b" if want == ids[1] else "model.a"),
                    os.path.join(tdir, "model.new"))
    os.rename(os.path.join(tdir, "model.new"), os.path.join(tdir, "model"))
    s = connect()
    ts = time.monotonic()
    s.sendall(b'{"op":"reload","id":"r"}\n')
    a = next(reader(s))
    s.close()
    if not a.get("ok") or a.get("model") != want:
        sys.exit("reload %d: %s (wanted model %s)" % (r, a, want))
    marks.append((ts, time.monotonic(), want))
    time.sleep(0.3)
stop.set()
for w in ws:
    w.join()
if errors:
    sys.exit("%d errors, first: %s" % (len(errors), errors[0]))
late = 0
for t0, t1, model in log:
    # sent after reload r was answered: its model, or one of a reload asked before the answer
    # came (the daemon may take the request up after that one swapped the model)
    want = {ids[0]}
    for ts, td, m in marks:
        if td < t0:
            want = {m}
        elif ts < t1:
            want = want | {m}
    if model not in want:
        late += 1
if late:
    sys.exit("%d answers with another model than the one reloaded before they were sent" % late)
after = sum(1 for t0, _, _ in log if t0 > marks[0][1])
if after < nrel:
    sys.exit("only %d requests after the first reload" % after)
s = connect()
s.sendall(b'{"op":"stats","id":"s"}\n')
st = next(reader(s))
bad = {k: st.get(k) for k in ("dropped", "refused", "reload_failures", "busy") if st.get(k)}
if bad or st.get("reloads") != nrel:
    sys.exit("stats: %s, reloads %s" % (bad, st.get("reloads")))
print("%d requests, %d after the first reload, %d reloads" % (len(log), after, nrel))
PY
) || fail "reloads under load: $out"
ok "reloads under load ($out): every request answered ok, each with the model reloaded before it"
grep -q "mode knn built on first use" "$T/daemon.log" || fail "knn not built on first use"
grep -q "mode likelihood built on first use" "$T/daemon.log" || fail "likelihood not built on first use"
n=$(grep -c "SVM fits: 0" "$T/daemon.log")
[ "$n" -ge $((RELOADS + 1)) ] || fail "a load fitted an SVM (model with LINR): $(grep 'SVM fits' "$T/daemon.log" | head -3)"
ok "start and every reload built the served mode alone and fitted no SVM ($n loads)"
stop_daemon || fail "malfamd exit status"
ok "clean stop"
