"""A tiny stand-in for malfamd speaking its socket protocol, for tests that need a daemon
misbehaving on purpose (slow, garbage, error answers, hang-ups) or no model at all.

Modes: ok, slow (answer after `delay` s), garbage (a non-JSON line), error (ok:false),
close (hang up without answering), silent (accept, never read: the client's send blocks)."""

import gzip
import json
import os
import socket
import threading
import time

FAMILIES = [{"family": "Trojan", "score": 0.41, "rel": 1.0},
            {"family": "Backdoor", "score": 0.22, "rel": 0.61},
            {"family": "Worms", "score": 0.13, "rel": 0.42}]


def count_calls(doc):
    behavior = doc.get("behavior", doc)
    return sum(len(p.get("calls") or []) for p in behavior.get("processes") or [])


class FakeDaemon(object):
    def __init__(self, path, mode="ok", delay=0.0):
        self.path = path
        self.mode = mode
        self.delay = delay
        self.requests = []
        self.bodies = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn):
        try:
            if self.mode == "silent":
                self._stop.wait()
                return
            f = conn.makefile("rb")
            req = json.loads(f.readline().decode("utf-8"))
            self.requests.append(req)
            body = f.read(req["bytes"]) if req.get("op") == "classify_stream" else None
            if body is not None:
                self.bodies.append(body)
            if self.mode == "slow":
                self._stop.wait(self.delay)
            if self.mode == "close":
                return
            if self.mode == "garbage":
                conn.sendall(b"<html>502 Bad Gateway</html>\n")
                return
            if self.mode == "error":
                answer = {"id": req.get("id"), "ok": False, "error": "MF_EJSON",
                          "message": "byte 12: unexpected '}'"}
            else:
                answer = self._answer(req, body)
            conn.sendall((json.dumps(answer) + "\n").encode("utf-8"))
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def _answer(self, req, body):
        op = req.get("op")
        base = {"v": 1, "id": req.get("id"), "ok": True}
        if op in ("ping", "reload"):
            return base
        if op == "stats":
            base.update(requests=len(self.requests), model="fake-1")
            return base
        if op == "classify":
            path = req["path"]
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        else:
            doc = json.loads(body.decode("utf-8"))
        calls = count_calls(doc)
        base.update(families=FAMILIES[:req.get("top") or 3] if calls else [],
                    unknown=not calls, mode="jaccard", model="fake-1", calls=calls, ms=1.5,
                    explain="%d calls scored by the fake daemon" % calls)
        if req.get("write_back"):
            # classify labels the file it scored; classify_stream the file at "path"
            if op != "classify":
                path = req["path"]
                with open(path, "rb") as f:
                    doc = json.loads(f.read().decode("utf-8"))
            doc["malfam"] = dict((k, v) for k, v in base.items() if k not in ("id", "ok"))
            with open(path, "w") as f:
                json.dump(doc, f)
        return base
