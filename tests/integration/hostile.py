#!/usr/bin/env python3
"""hostile.py - hostile clients against a running malfamd, for daemon_hostile.sh (stdlib only).

  hostile.py SOCKET PID PHASE [ARGS...]

Each phase runs one attack while a well-behaved client pings on its own connection, and
prints one line "PHASE: key=value ..." with what it measured; it exits 1 (with the reason on
stderr) when the daemon got it wrong. Latency figures are compared with the same client's
ping p99 measured without any attacker in the same run (phase "baseline"), so a loaded
machine moves both.
"""
import json, os, socket, sys, threading, time

SOCK, PID, PHASE, ARGS = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]


def connect(timeout=30):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(SOCK)
    return s


class Lines:
    """Answer lines of one connection."""
    def __init__(self, s):
        self.s, self.buf = s, b""

    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(1 << 16)
            if not d:
                raise IOError("closed without an answer")
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return json.loads(l)


def request(obj, body=None, timeout=60):
    s = connect(timeout)
    try:
        s.sendall(json.dumps(obj).encode() + b"\n" + (body or b""))
        return Lines(s).line()
    finally:
        s.close()


def status(key):
    """VmRSS / VmHWM of the daemon, in MiB."""
    for l in open("/proc/%d/status" % PID):
        if l.startswith(key + ":"):
            return int(l.split()[1]) / 1024.0
    return -1.0


def fail(msg):
    sys.stderr.write("FAIL: %s: %s\n" % (PHASE, msg))
    sys.exit(1)


def echo_server(path):
    """Child process: answers each line with a pong, as the daemon would, but doing nothing
    else. Pinged alongside the daemon, it measures what the machine's load alone costs a
    round trip (2 cores shared with other builds), so the daemon is not blamed for it."""
    pid = os.fork()
    if pid:
        return pid
    try:
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(1)
        c, _ = ls.accept()
        f = c.makefile("rb")
        for _ in f:
            c.sendall(b'{"ok":true,"pong":true}\n')
    finally:
        os._exit(0)


class Pinger:
    """The well-behaved client, in a process of its own (the attackers' threads must not
    slow it through Python's lock): pings on one connection, one at a time, until finish(),
    which returns the p99 of the round trips in ms and how many there were. Each ping of the
    daemon is followed by one of a do-nothing echo server (p99_echo: the machine's share)."""
    def __init__(self):
        self.echo_path = SOCK + ".echo"
        try:
            os.unlink(self.echo_path)
        except FileNotFoundError:
            pass
        self.echo_pid = echo_server(self.echo_path)
        # other children (tricklers) inherit these: stop is a byte, the result has a length
        self.ctl_r, self.ctl_w = os.pipe()
        self.res_r, self.res_w = os.pipe()

    def start(self):
        self.pid = os.fork()
        if self.pid:
            os.close(self.ctl_r)
            os.close(self.res_w)
            # started once its first pings went through (a connection that never completed a
            # request is the first one evicted when the daemon is full)
            self.ready = os.read(self.res_r, 1) == b"r"
            return
        os.close(self.ctl_w)
        os.close(self.res_r)
        lat, elat, errors, ready = [], [], [], False
        try:
            e = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            for _ in range(1000):  # the echo server starts beside us (slowly on a busy box)
                try:
                    e.connect(self.echo_path)
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    time.sleep(0.01)
            else:
                raise IOError("the echo server did not start")
            er = Lines(e)
            s = connect()
            r = Lines(s)
            os.set_blocking(self.ctl_r, False)
            while True:
                try:
                    if os.read(self.ctl_r, 1) in (b"", b"x"):
                        break
                except BlockingIOError:
                    pass
                t0 = time.monotonic()
                s.sendall(b'{"op":"ping"}\n')
                a = r.line()
                if not a.get("ok"):
                    errors.append(a)
                lat.append((time.monotonic() - t0) * 1e3)
                t0 = time.monotonic()
                e.sendall(b'{"op":"ping"}\n')
                er.line()
                elat.append((time.monotonic() - t0) * 1e3)
                if not ready:
                    os.write(self.res_w, b"r")
                    ready = True
                time.sleep(0.005)
        except Exception as ex:  # noqa: BLE001 - any failure is the daemon's
            errors.append(repr(ex))
        if not ready:
            os.write(self.res_w, b"e")
        out = json.dumps({"lat": lat, "elat": elat, "errors": errors[:3]}).encode()
        os.write(self.res_w, b"%10d" % len(out))
        while out:
            out = out[os.write(self.res_w, out):]
        os._exit(0)

    def finish(self):
        try:
            os.write(self.ctl_w, b"x")
        except BrokenPipeError:
            pass  # it stopped on an error, which it reports below
        os.close(self.ctl_w)
        data, want = b"", None
        while want is None or len(data) < want + 10:
            d = os.read(self.res_r, 1 << 20)
            if not d:
                break
            data += d
            if want is None and len(data) >= 10:
                want = int(data[:10])
        data = data[10:]
        os.close(self.res_r)
        os.waitpid(self.pid, 0)
        os.waitpid(self.echo_pid, 0)
        try:
            os.unlink(self.echo_path)
        except FileNotFoundError:
            pass
        res = json.loads(data)
        if res["errors"]:
            fail("the well-behaved client's ping failed: %s" % res["errors"])
        v, ev = sorted(res["lat"]), sorted(res["elat"])
        if len(v) < 10:
            fail("the well-behaved client got only %d pings through" % len(v))
        self.p99_echo = ev[min(len(ev) - 1, int(0.99 * len(ev)))] if ev else 0.0
        return v[min(len(v) - 1, int(0.99 * len(v)))], len(v)


def ping_limit(p99_echo):
    """50 ms, plus headroom for a slow machine: 4x the same client's p99 without attackers,
    and 2x the p99 of a do-nothing echo server pinged alongside (the load of the moment)."""
    base = float(os.environ.get("BASE_P99", "0"))
    slow = float(os.environ.get("HOSTILE_SLOW", "1"))  # an instrumented daemon (ASan)
    return slow * (50.0 + 4 * base + 2 * p99_echo)


def check_ping(p):
    p99, n = p.finish()
    lim = ping_limit(p.p99_echo)
    if p99 > lim:
        fail("ping p99 %.1f ms under attack (limit %.1f ms: echo p99 %.1f, %d pings)"
             % (p99, lim, p.p99_echo, n))
    return "ping_p99_ms=%.1f echo_p99_ms=%.1f pings=%d" % (p99, p.p99_echo, n)


def body_tiny():
    return b'{"behavior":{"processes":[]}}'


def stream_req(body, rid, **kw):
    kw.update({"op": "classify_stream", "id": rid, "bytes": len(body)})
    return json.dumps(kw).encode() + b"\n" + body


def phase_baseline():
    p = Pinger()
    p.start()
    time.sleep(float(ARGS[0]) if ARGS else 1.0)
    p99, n = p.finish()
    print("baseline: ping_p99_ms=%.2f pings=%d" % (p99, n))


def phase_fill():
    """Fill the 8192-latency window with cheap classifications (4 pipelining clients)."""
    total, ncl = int(ARGS[0]), 4
    errs = []

    def worker(k):
        try:
            s = connect(120)
            r = Lines(s)
            n = total // ncl
            one = stream_req(body_tiny(), k)
            sent = got = 0
            while got < n:
                while sent < n and sent - got < 64:
                    s.sendall(one)
                    sent += 1
                a = r.line()
                got += 1
                if not a.get("ok"):
                    errs.append(a)
                    return
            s.close()
        except Exception as e:  # noqa: BLE001
            errs.append(repr(e))
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(ncl)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        fail("filling the latency window: %s" % errs[:3])
    n = request({"op": "stats"})["latency_ms"]["n"]
    print("fill: latencies=%d in %.1f s" % (n, time.monotonic() - t0))


def phase_stats_flood():
    """Item 8: one client pipelines N stats and reads them; another's ping p99 holds."""
    n = int(ARGS[0])
    p = Pinger()
    p.start()
    time.sleep(0.3)
    s = connect(300)
    r = Lines(s)
    t0 = time.monotonic()
    sender = threading.Thread(target=lambda: s.sendall(b'{"op":"stats"}\n' * n), daemon=True)
    sender.start()
    for i in range(n):
        a = r.line()
        if not a.get("ok"):
            fail("stats answer %d: %s" % (i, a))
    secs = time.monotonic() - t0
    sender.join()
    s.close()
    print("stats_flood: stats=%d in %.2f s %s" % (n, secs, check_ping(p)))


def phase_unread():
    """Item 4: a client pipelines N stats and never reads: the daemon's memory stays flat,
    the client is dropped after idle_timeout with a log line, pings are served meanwhile."""
    n, limit_mb = int(ARGS[0]), float(ARGS[1])
    p = Pinger()
    p.start()
    dropped0 = request({"op": "stats"}).get("dropped", 0)
    rss0 = status("VmRSS")
    s = connect(5)
    s.setblocking(False)
    data = memoryview(b'{"op":"stats"}\n' * n)
    off, peak, t0 = 0, rss0, time.monotonic()
    # send what the daemon takes (it stops taking once its answers are not read)
    while off < len(data) and time.monotonic() - t0 < 1:
        try:
            off += s.send(data[off:off + (1 << 16)])
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
        peak = max(peak, status("VmRSS"))
    time.sleep(0.3)
    peak = max(peak, status("VmRSS"))
    grow = peak - rss0
    # it is dropped after idle_timeout without reading
    t1, dropped = time.monotonic(), 0
    while time.monotonic() - t1 < 15 and not dropped:
        time.sleep(0.2)
        dropped = request({"op": "stats"}).get("dropped", 0) - dropped0
    s.close()
    res = check_ping(p)
    if grow > limit_mb:
        fail("RSS grew %.1f MiB while %d of %d stats bytes were taken unread (limit %.0f)"
             % (grow, off, len(data), limit_mb))
    if not dropped:
        fail("the client that does not read was not dropped")
    print("unread: sent=%d/%d bytes rss_growth_mib=%.1f dropped_after_s=%.1f %s"
          % (off, len(data), grow, time.monotonic() - t0, res))


def phase_junk_after_body():
    """Item 5: while a stream's last job waits for the (busy) pool, the same client floods
    more bytes: the daemon reads no more than a window of them."""
    junk_mb, limit_mb, bigs = int(ARGS[0]), float(ARGS[1]), ARGS[2:]
    p = Pinger()
    p.start()
    rss0 = status("VmRSS")
    # big reports take the only pool thread for a while: the stream's last job waits
    holders = [threading.Thread(target=lambda f=f: request({"op": "classify", "path": f}),
                                daemon=True) for f in bigs]
    for h in holders:
        h.start()
    time.sleep(0.2)
    s = connect(60)
    s.setblocking(False)
    data = memoryview(stream_req(body_tiny(), "j") + b"x" * (junk_mb << 20))
    off, peak, t0 = 0, rss0, time.monotonic()
    while off < len(data) and time.monotonic() - t0 < 3:
        try:
            off += s.send(data[off:off + (1 << 20)])
        except BlockingIOError:
            time.sleep(0.005)
        peak = max(peak, status("VmRSS"))
    for h in holders:
        h.join()
    peak = max(peak, status("VmRSS"))
    s.setblocking(True)
    a = Lines(s).line()
    s.close()
    res = check_ping(p)
    if not a.get("ok") or a.get("id") != "j":
        fail("the stream's answer: %s" % a)
    grow = peak - rss0
    if grow > limit_mb:
        fail("RSS grew %.1f MiB from %.1f MiB of bytes after a stream body (limit %.0f)"
             % (grow, off / 1048576.0, limit_mb))
    print("junk_after_body: junk_taken_mib=%.1f rss_growth_mib=%.1f %s"
          % (off / 1048576.0, grow, res))


def as_nobody():
    """Run the attackers under another uid when we can (root): the per-peer cap is then
    what keeps the well-behaved client's slots."""
    return os.geteuid() == 0


def trickler(n, secs, uid):
    """Child process: n connections announce a classify_stream and send a byte now and then."""
    pid = os.fork()
    if pid:
        return pid
    try:
        if uid is not None:
            os.setgid(uid)
            os.setuid(uid)
        conns = []
        for k in range(n):
            s = connect(5)
            s.sendall(json.dumps({"op": "classify_stream", "id": "t%d" % k,
                                  "bytes": 100000}).encode() + b"\n{")
            conns.append(s)
        t0 = time.monotonic()
        while time.monotonic() - t0 < secs:
            time.sleep(1.0)
            for s in conns:
                try:
                    s.send(b" ")
                except OSError:
                    pass
    finally:
        os._exit(0)


def phase_trickle():
    """Item 6: N connections trickle stream bodies; the well-behaved client is still served
    (a stream under another uid, or a classify by path under the same), and the tricklers
    are dropped by request_timeout."""
    n, path, timeout_s = int(ARGS[0]), ARGS[1], float(ARGS[2])
    p = Pinger()
    p.start()
    other = as_nobody()
    child = trickler(n, timeout_s + 4, 65534 if other else None)
    time.sleep(0.5)
    st = request({"op": "stats"})
    body = open(path, "rb").read()
    t0 = time.monotonic()
    if other:  # another uid: a stream of its own still gets a slot
        a = request({"op": "classify_stream", "id": "good", "bytes": len(body)}, body)
    else:     # the same uid: a quarter of the slots stays for requests that can run
        a = request({"op": "classify", "id": "good", "path": path})
    during = time.monotonic() - t0
    if not a.get("ok"):
        fail("the well-behaved client's request while %d connections trickle: %s" % (n, a))
    t1 = time.monotonic()
    while True:  # the tricklers that got a slot are dropped by request_timeout
        time.sleep(0.2)
        st2 = request({"op": "stats"})
        if st2.get("dropped", 0) - st.get("dropped", 0) >= st["inflight"] or time.monotonic() - t1 > 15:
            break
    a2 = request({"op": "classify_stream", "id": "after", "bytes": len(body)}, body)
    os.waitpid(child, 0)
    res = check_ping(p)
    if not a2.get("ok"):
        fail("stream after the tricklers: %s" % a2)
    if st2.get("dropped", 0) - st.get("dropped", 0) < st["inflight"]:
        fail("no trickler was dropped by request_timeout: %s" % st2)
    print("trickle: conns=%d other_uid=%d inflight_during=%d good_ms=%.0f dropped=%d busy=%d %s"
          % (n, other, st["inflight"], during * 1e3, st2.get("dropped", 0) - st.get("dropped", 0),
             st2["busy"], res))


def phase_tokens():
    """Item 7: N streams each send one legal ~15.5 MiB string token and stall; the daemon's
    peak RSS stays under memory_budget."""
    n, budget_mb, secs = int(ARGS[0]), float(ARGS[1]), float(ARGS[2])
    p = Pinger()
    p.start()
    head = b'{"behavior":{"processes":[{"calls":[{"api":"'
    tok = memoryview(head + b"A" * ((15 << 20) + (512 << 10)))
    stop = threading.Event()
    sent = []

    def attacker(k):
        try:
            s = connect(2)
            s.sendall(json.dumps({"op": "classify_stream", "id": "m%d" % k,
                                  "bytes": 32 << 20}).encode() + b"\n")
            s.setblocking(False)
            off = 0
            while off < len(tok) and not stop.is_set():
                try:
                    off += s.send(tok[off:off + (1 << 20)])
                except BlockingIOError:
                    time.sleep(0.01)
                except OSError:
                    break
            sent.append(off)
            stop.wait()
            s.close()
        except OSError:
            sent.append(-1)
    ts = [threading.Thread(target=attacker, args=(k,), daemon=True) for k in range(n)]
    for t in ts:
        t.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs:
        time.sleep(0.1)
    st = request({"op": "stats"})
    stop.set()
    for t in ts:
        t.join()
    hwm = status("VmHWM")
    res = check_ping(p)
    full = sum(1 for x in sent if x == len(tok))
    if hwm >= budget_mb:
        fail("peak RSS %.0f MiB with %d stalled 15.5 MiB tokens: over memory_budget %.0f MiB"
             % (hwm, full, budget_mb))
    print("tokens: streams=%d tokens_sent=%d mem_waits=%d peak_rss_mib=%.0f budget_mib=%.0f %s"
          % (n, full, st.get("mem_waits", 0), hwm, budget_mb, res))


def phase_slowloris():
    """Item 10 (daemon under a low ulimit -n): N connections send half a request line and
    hold. A client connected before keeps getting answers (a classify opens files too),
    newcomers are served once idle ones are evicted, refusals and evictions are logged."""
    n, path = int(ARGS[0]), ARGS[1]
    old = connect(30)
    r = Lines(old)
    # served once before the storm: a connection that never completed a request is the first
    # one evicted, and the keep thread's first ping could come after the slots are full
    old.sendall(b'{"op":"ping"}\n')
    if not r.line().get("ok"):
        fail("the connected client's first ping")
    p = Pinger()
    p.start()
    # the connected client stays active (an idle one may be the one evicted, by design)
    stop, olderr = threading.Event(), []

    def keep():
        while not stop.is_set():
            try:
                old.sendall(b'{"op":"ping"}\n')
                if not r.line().get("ok"):
                    olderr.append("ping refused")
            except OSError as e:
                olderr.append(repr(e))
                return
            time.sleep(0.02)
    kt = threading.Thread(target=keep)
    kt.start()
    held, failed = [], 0
    for k in range(n):
        for attempt in range(20):  # a full listen backlog refuses for a moment
            try:
                s = connect(5)
                s.sendall(b'{"op":')
                held.append(s)
                break
            except (BlockingIOError, ConnectionRefusedError):
                time.sleep(0.005)
            except OSError:
                break
        else:
            failed += 1
    time.sleep(0.3)
    stop.set()
    kt.join()
    if olderr:
        fail("the connected client lost its connection: %s" % olderr[:3])
    old.sendall(json.dumps({"op": "classify", "id": "old", "path": path}).encode() + b"\n")
    a = r.line()
    if not a.get("ok"):
        fail("the connected client's classify among %d slowloris connections: %s" % (n, a))
    served = 0
    for k in range(5):
        try:
            if request({"op": "ping"}, timeout=10).get("ok"):
                served += 1
        except OSError:
            pass
    st = request({"op": "stats"})
    for s in held:
        s.close()
    old.close()
    res = check_ping(p)
    if served != 5:
        fail("%d of 5 newcomers served among %d slowloris connections" % (served, n))
    if st.get("evicted", 0) < 1:
        fail("no idle connection evicted: %s" % st)
    print("slowloris: conns=%d connect_failed=%d max_connections=%d evicted=%d refused=%d "
          "newcomers_served=%d/5 %s" % (n, failed, st.get("max_connections", 0), st.get("evicted", 0),
                                       st.get("refused", 0), served, res))


def phase_halfclose():
    """Item 11: the README's `printf ... | cat - calls.json | socat` client: the request,
    the body, then a half-close; the answer must come, and the write-back happen once."""
    runs, body_path, target = int(ARGS[0]), ARGS[1], ARGS[2]
    body = open(body_path, "rb").read()
    got = 0
    for i in range(runs):
        s = connect(60)
        s.sendall(stream_req(body, i, path=target, write_back=True))
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            data += d
        s.close()
        lines = [json.loads(l) for l in data.splitlines() if l.strip()]
        if len(lines) == 1 and lines[0].get("ok") and lines[0].get("id") == i:
            got += 1
    # several requests then a half-close: all answered, in order
    s = connect(60)
    s.sendall(b'{"op":"ping","id":1}\n' + stream_req(body_tiny(), 2) + b'{"op":"stats","id":3}\n')
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        data += d
    ids = [json.loads(l).get("id") for l in data.splitlines() if l.strip()]
    doc = json.load(open(target, encoding="utf-8", errors="surrogateescape"))
    nkeys = open(target, "rb").read().count(b'"malfam"')
    if got != runs:
        fail("%d of %d half-closed classify_stream requests answered" % (got, runs))
    if ids != [1, 2, 3]:
        fail("pipelined requests then a half-close: answers %s" % ids)
    if "malfam" not in doc or nkeys != 1:
        fail("the report holds %d \"malfam\" keys" % nkeys)
    print("halfclose: answered=%d/%d pipelined=%s malfam_keys=%d" % (got, runs, ids, nkeys))


globals()["phase_" + PHASE]()
