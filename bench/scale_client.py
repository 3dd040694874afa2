#!/usr/bin/env python3
"""scale_client.py - the malfamd side of the scale benchmark (bench/bench_scale.sh), over the
daemon's Unix socket, one request per line (docs/protocol.md).

  wait SOCK TIMEOUT [T0]     seconds until the daemon first answers "ping" (its load time),
                             counted from T0 (time.time() seconds, taken just before the
                             daemon started), else from when this starts
  stats SOCK                 the "stats" answer's mode and model id
  reload SOCK                seconds a "reload" takes to answer
  lat SOCK MODE N REPORT...  N classify requests in MODE over the reports in turn: "p50 p99"
                             in ms, or "unavailable <reason>" when the mode cannot answer
  busy-reload SOCK MODE REPORT...  a "reload" while another client keeps classifying in MODE
                             (from before it until 20 answers after it): "SECONDS ANSWERED
                             FAILED", FAILED counting requests that got no answer or an error
"""
import json
import socket
import sys
import threading
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s, s.makefile("rb")


def ask(s, f, req):
    s.sendall((json.dumps(req) + "\n").encode())
    line = f.readline()
    if not line:
        raise ConnectionError("daemon closed the connection")
    return json.loads(line)


def busy_reload(sock, mode, reports):
    done = threading.Event()
    count = {"ok": 0, "failed": 0, "after": 0}

    def classify():
        s, f = connect(sock)
        i = 0
        while count["after"] < 20:
            try:
                a = ask(s, f, {"op": "classify", "path": reports[i % len(reports)], "mode": mode})
                count["ok" if a.get("ok") else "failed"] += 1
            except (OSError, ValueError):
                count["failed"] += 1
                s, f = connect(sock)
            if done.is_set():
                count["after"] += 1
            i += 1

    t = threading.Thread(target=classify)
    t.start()
    time.sleep(0.2)  # requests in flight before the reload starts
    s, f = connect(sock)
    t0 = time.monotonic()
    a = ask(s, f, {"op": "reload"})
    took = time.monotonic() - t0
    done.set()
    t.join()
    if not a.get("ok"):
        print("failed %s" % a.get("error"))
        return 1
    print("%.3f %d %d" % (took, count["ok"], count["failed"]))
    return 0


def main():
    cmd, sock = sys.argv[1], sys.argv[2]
    if cmd == "wait":
        t0, limit = time.monotonic(), float(sys.argv[3])
        # the daemon's start, when given: this client's own start-up is then counted too
        since = time.time() - float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
        while time.monotonic() - t0 < limit:
            try:
                s, f = connect(sock)
                if ask(s, f, {"op": "ping"}).get("ok"):
                    print("%.3f" % (time.monotonic() - t0 + since))
                    return 0
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        print("timeout")
        return 1
    if cmd == "busy-reload":
        return busy_reload(sock, sys.argv[3], sys.argv[4:])
    s, f = connect(sock)
    if cmd == "stats":
        a = ask(s, f, {"op": "stats"})
        print(a.get("mode", "?"), a.get("model", "?"))
    elif cmd == "reload":
        t0 = time.monotonic()
        a = ask(s, f, {"op": "reload"})
        print("%.3f" % (time.monotonic() - t0) if a.get("ok") else "failed %s" % a.get("error"))
    elif cmd == "lat":
        mode, n, reports = sys.argv[3], int(sys.argv[4]), sys.argv[5:]
        lat = []
        for i in range(n):
            t0 = time.monotonic()
            a = ask(s, f, {"op": "classify", "path": reports[i % len(reports)], "mode": mode})
            if not a.get("ok"):
                print("unavailable %s" % json.dumps(a.get("error", a))[:80])
                return 0
            lat.append((time.monotonic() - t0) * 1e3)
        lat.sort()
        print("%.2f %.2f" % (lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
