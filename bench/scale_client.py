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
"""
import json
import socket
import sys
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
