# daemon_common.sh - helpers for the daemon_*.sh integration scripts (sourced; run alone it
# only defines functions). Each script gets a temp dir with a copy of the real reports under
# an allowed root, a config, and a started malfamd; everything is removed on exit.
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
MF_DATA=${MF_DATA:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared/data}
MALFAM=$(realpath "$BUILD/malfam" 2>/dev/null)
MALFAMD=$(realpath "$BUILD/malfamd" 2>/dev/null)
DPID=
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

fail() { echo "FAIL: $*" >&2; [ -n "${T:-}" ] && [ -f "$T/daemon.log" ] && tail -20 "$T/daemon.log" >&2; exit 1; }
ok() { echo "ok - $*"; }

# A model to serve: $MFD_TEST_MODEL, $BUILD/demo.model, or a small one trained now.
# Prints its path, or nothing when none can be had.
find_model() {
    if [ -n "${MFD_TEST_MODEL:-}" ] && [ -f "$MFD_TEST_MODEL" ]; then echo "$MFD_TEST_MODEL"; return; fi
    if [ -f "$BUILD/demo.model" ]; then realpath "$BUILD/demo.model"; return; fi
    if "$MALFAM" --help 2>/dev/null | grep -q '^ *train '; then
        local out="$BUILD/daemon-test.model"
        if [ ! -f "$out" ]; then
            "$MALFAM" train --calls "$MF_DATA/mal-api-2019-808/calls.txt.gz" \
                --index "$MF_DATA/mal-api-2019-808/index.csv" \
                --api-index "$MF_DATA/mal-api-2019-808/ApiIndex.txt" \
                --epochs 1 --hidden 16 --embed 8 --dense 16 --max-len 200 --out "$out" \
                >"$BUILD/daemon-test.train.log" 2>&1 || return
        fi
        realpath "$out"
    fi
}

# setup NAME: temp dir $T, root $T/root with the real reports (gz ones decompressed),
# config $T/d.conf with socket $T/s.sock; $MODEL chosen. Fails without a model: the script
# trains one itself, so a missing model is a broken build or data, never a reason to skip.
setup() {
    [ -x "$MALFAMD" ] && [ -x "$MALFAM" ] || fail "binaries missing in $BUILD"
    [ -d "$MF_DATA/reports" ] || fail "shared data missing at $MF_DATA"
    MODEL=$(find_model)
    [ -n "$MODEL" ] || fail "$1: no model: no \$MFD_TEST_MODEL, no $BUILD/demo.model, and" \
        "'$MALFAM train' could not make $BUILD/daemon-test.model (log:" \
        "$BUILD/daemon-test.train.log)"
    T=$(mktemp -d /tmp/malfamd-it.XXXXXX)
    trap 'cleanup' EXIT
    mkdir -p "$T/root/a" "$T/outside"
    for f in "$MF_DATA"/reports/*.json; do cp "$f" "$T/root/a/"; done
    for f in "$MF_DATA"/reports/*.json.gz; do b=$(basename "$f" .gz); gunzip -c "$f" > "$T/root/a/$b"; done
    cp "$MF_DATA"/reports/cuckoo12_drewboardman1.json.gz "$T/root/a/gz.json.gz"
    if [ -n "${MFD_MAX_REPORT_BYTES:-}" ]; then  # quick runs (valgrind in CI): small reports only
        find "$T/root/a" -type f -size +"${MFD_MAX_REPORT_BYTES}"c -delete
    fi
    chmod u+w "$T"/root/a/*
    cp "$MODEL" "$T/model"
    write_client
    MODE=${MFD_TEST_MODE:-}   # empty = the model's default (linear); knn if the model lacks it
    cat > "$T/d.conf" <<CONF
[malfamd]
socket = $T/s.sock
model = $T/model
allowed_roots = $T/root
mode = $MODE
max_jobs = 4
max_queue = 256
idle_timeout = ${MFD_IDLE:-60}
shutdown_timeout = 20
log_level = info
CONF
    "$MALFAMD" --check-config -c "$T/d.conf" >/dev/null 2>"$T/check.err" || {
        sed -i 's/^mode = .*/mode = knn/' "$T/d.conf"
        "$MALFAMD" --check-config -c "$T/d.conf" >/dev/null || fail "config: $(cat "$T/check.err")"
    }
}

cleanup() {
    [ -n "${DPID:-}" ] && kill -9 "$DPID" 2>/dev/null
    [ -n "${T:-}" ] && rm -rf "$T"
}

# start_daemon [extra shell prefix]: starts malfamd in the foreground, waits for its socket.
# $MFD_WRAPPER, when set, is a command line malfamd runs under, after the prefix (word-split
# on purpose), e.g. MFD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full": it must
# exec malfamd in the same process, so that signals and the exit status reach it.
start_daemon() {
    # shellcheck disable=SC2086
    "$@" ${MFD_WRAPPER:-} "$MALFAMD" -c "$T/d.conf" --foreground 2>>"$T/daemon.log" &
    DPID=$!
    local tries=100
    [ -n "${MFD_WRAPPER:-}" ] && tries=1200   # valgrind: the model loads 20-50x slower
    for _ in $(seq "$tries"); do
        [ -S "$T/s.sock" ] && "$PY" "$T/client.py" "$T/s.sock" ping >/dev/null 2>&1 && return 0
        kill -0 "$DPID" 2>/dev/null || fail "malfamd died at start"
        sleep 0.05
    done
    fail "malfamd did not come up"
}

stop_daemon() {
    kill -TERM "$DPID"
    wait "$DPID"
    local rc=$?
    DPID=
    return $rc
}

# req JSON [BODYFILE]: one request on a new connection; prints the answer line.
req() { "$PY" "$T/client.py" "$T/s.sock" raw "$@"; }
client() { "$PY" "$T/client.py" "$T/s.sock" "$@"; }

# The test client, written into $T (stdlib only).
write_client() {
    cat > "$T/client.py" <<'PYEOF'
import json, os, socket, sys, threading, time

sock_path = sys.argv[1]
cmd = sys.argv[2]

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(sock_path)
    return s

def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            raise IOError("closed without an answer")
        buf += d
    return buf.decode()

def request(obj_or_line, body=None):
    s = connect()
    try:
        line = obj_or_line if isinstance(obj_or_line, str) else json.dumps(obj_or_line)
        s.sendall(line.encode() + b"\n")
        if body is not None:
            s.sendall(body)
        return recv_line(s)
    finally:
        s.close()

if cmd == "ping":
    a = json.loads(request({"op": "ping"}))
    sys.exit(0 if a.get("ok") else 1)
elif cmd == "raw":
    body = open(sys.argv[4], "rb").read() if len(sys.argv) > 4 else None
    sys.stdout.write(request(sys.argv[3], body))
elif cmd == "hangup":
    # classify_stream header + part of the body, then close
    data = open(sys.argv[3], "rb").read()
    s = connect()
    s.sendall(('{"op":"classify_stream","id":"h","bytes":%d}\n' % len(data)).encode())
    s.sendall(data[: len(data) // 2])
    time.sleep(0.1)
    s.close()
elif cmd == "load":
    # load NCLIENTS NREQ FILE...: every answer must equal the serial reference for its file
    nclients, nreq, files = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
    ref = {}
    for f in files:
        a = json.loads(request({"op": "classify", "path": f}))
        assert a["ok"], a
        ref[f] = (a["families"], a["unknown"], a["calls"])
    errors, done, lock = [], [0], threading.Lock()
    def worker(k):
        try:
            s = connect()
            for i in range(nreq):
                f = files[(k + i) % len(files)]
                rid = "%d-%d" % (k, i)
                if i % 5 == 4:   # mix in streams of the same report
                    body = open(f, "rb").read()
                    s.sendall(('{"op":"classify_stream","id":"%s","bytes":%d}\n' % (rid, len(body))).encode() + body)
                else:
                    s.sendall((json.dumps({"op": "classify", "path": f, "id": rid}) + "\n").encode())
                a = json.loads(recv_line_buf(s))
                if not a.get("ok") or a.get("id") != rid or (a["families"], a["unknown"], a["calls"]) != ref[f]:
                    with lock:
                        errors.append((f, a))
                with lock:
                    done[0] += 1
            s.close()
        except Exception as e:
            with lock:
                errors.append(("exception", repr(e)))
    bufs = {}
    def recv_line_buf(s):
        buf = bufs.get(s, b"")
        while b"\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise IOError("closed without an answer")
            buf += d
        line, rest = buf.split(b"\n", 1)
        bufs[s] = rest
        return line.decode()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(nclients)]
    t0 = time.time()
    for t in ts: t.start()
    for t in ts: t.join()
    print("load: %d clients x %d requests: %d answered, %d wrong, %.2f s"
          % (nclients, nreq, done[0], len(errors), time.time() - t0))
    for e in errors[:5]:
        print("  wrong:", e)
    sys.exit(1 if errors or done[0] != nclients * nreq else 0)
elif cmd == "check_label":
    # check_label ORIG LABELLED: labelled = orig + one "malfam" key, every other byte equal
    orig = open(sys.argv[3], "rb").read()
    lab = open(sys.argv[4], "rb").read()
    d0 = json.loads(orig.decode("utf-8", "surrogateescape"))
    d1 = json.loads(lab.decode("utf-8", "surrogateescape"))
    m = d1.pop("malfam")
    d0.pop("malfam", None)
    assert d0 == d1, "other keys changed"
    assert "families" in m, m
    i = 0
    while i < len(orig) and orig[i] == lab[i]:
        i += 1
    tail = len(orig) - i
    assert lab[len(lab) - tail:] == orig[i:], "bytes after the key differ"
    assert lab.count(b'"malfam"') == orig.count(b'"malfam"') + (0 if b'"malfam"' in orig else 1)
    print("ok")
PYEOF
}
