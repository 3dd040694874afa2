#!/usr/bin/env python3
"""equivalence.py - one report, one answer: `malfam score`, malfamd `classify` (a path) and
malfamd `classify_stream` (the bytes on the socket) must give the same calls, the same ranked
families and the same scores (to 1e-9) for every report, in every mode the model serves.

Reports: every real report of $MF_DATA/reports (plain and gzip, as they are) and generated
ones (../shared/tools/gen_report.py): Cuckoo 2, CAPE with "repeated" runs, gzip, multi-member
gzip, zlib, and one with many APIs no vocabulary knows. Models, both trained here: a default
one (Mal-API train split: fold, 1000 calls) and a --no-fold --max-len 0 one trained from a
list of generated CAPE reports (so "repeated" is expanded and every call is kept).

Environment: BUILD (binaries), MF_DATA, EQ_KEEP=1 keeps the temp dir. Exits non-zero on the
first setup failure, and after all comparisons when any differed.
"""
import gzip, json, math, os, shutil, signal, socket, subprocess, sys, tempfile, time, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("BUILD", "build"))
DATA = os.path.abspath(os.environ.get("MF_DATA", os.path.join(HERE, "../../../shared/data")))
GEN = os.path.join(DATA, "..", "tools", "gen_report.py")
MALFAM, MALFAMD = os.path.join(BUILD, "malfam"), os.path.join(BUILD, "malfamd")
MODES = ["paper", "likelihood", "multiset", "ngram", "nn", "knn", "combo", "fusion", "linear"]
TOP = 16  # every family of these models: the whole ranking is compared
TOL = 1e-9


def die(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


# ---- inputs ---------------------------------------------------------------------------------

def gen(row, calls, fmt):
    r = run([sys.executable, GEN, "--row", str(row), "--calls", str(calls), "--format", fmt])
    if r.returncode != 0:
        die("gen_report.py: " + r.stderr.decode())
    return json.loads(r.stdout.decode())


def with_repeated(rep):
    """CAPE's way: a run of one API in a process becomes one entry with "repeated": n - 1."""
    for p in rep["behavior"]["processes"]:
        out = []
        for c in p["calls"]:
            if out and out[-1]["api"] == c["api"]:
                out[-1]["repeated"] += 1
            else:
                c["repeated"] = 0
                out.append(c)
        p["calls"] = out
    return rep


def with_unknown(rep):
    """Every third call renamed to an API no vocabulary holds."""
    k = 0
    for p in rep["behavior"]["processes"]:
        for c in p["calls"]:
            if k % 3 == 0:
                c["api"] = "MadeUpApi%d" % (k % 37)
            k += 1
    return rep


def rows_of(labels, split, per):
    rows = {}
    with open(os.path.join(DATA, "mal-api-2019-808", "index.csv")) as f:
        next(f)
        for line in f:
            row, label, sp = line.strip().split(",")[:3]
            if label in labels and sp == split and len(rows.setdefault(label, [])) < per:
                rows[label].append(int(row))
    return rows


def make_inputs(root):
    for name in sorted(os.listdir(os.path.join(DATA, "reports"))):
        if name.endswith((".json", ".json.gz")):
            shutil.copy(os.path.join(DATA, "reports", name), root)
    dump = lambda d: json.dumps(d).encode()
    cuckoo2 = dump(gen(3, 4000, "cuckoo2"))
    cape = dump(with_repeated(gen(70, 4000, "cape")))
    files = {
        "gen_cuckoo2.json": cuckoo2,
        "gen_cape_repeated.json": cape,
        "gen_cape_repeated.json.gz": gzip.compress(cape),
        "gen_multimember.json.gz": gzip.compress(cuckoo2[:len(cuckoo2) // 2]) +
                                   gzip.compress(cuckoo2[len(cuckoo2) // 2:]),
        "gen_zlib.json": zlib.compress(cape),
        "gen_unknown.json": dump(with_unknown(gen(140, 3000, "cuckoo2"))),
    }
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    return sorted(os.path.join(root, n) for n in os.listdir(root))


# ---- models ---------------------------------------------------------------------------------

SMALL = ["--epochs", "1", "--hidden", "16", "--embed", "8", "--dense", "16", "--gen-len", "300",
         "--quiet"]


def train_default(out):
    d = os.path.join(DATA, "mal-api-2019-808")
    r = run([MALFAM, "train", "--calls", os.path.join(d, "calls.txt.gz"), "--index",
             os.path.join(d, "index.csv"), "--api-index", os.path.join(d, "ApiIndex.txt"),
             "--out", out] + SMALL)
    if r.returncode != 0:
        die("train default model: " + r.stderr.decode())


def train_nofold(out, tmp):
    """Trained from generated CAPE reports with "repeated", every call kept."""
    lst = os.path.join(tmp, "train.csv")
    with open(lst, "w") as f:
        for label, rows in sorted(rows_of({"Trojan", "Worms", "Adware"}, "train", 2).items()):
            for row in rows:
                path = os.path.join(tmp, "train_%d.json" % row)
                with open(path, "w") as g:
                    json.dump(with_repeated(gen(row, 1500, "cape")), g)
                f.write("%s,%s\n" % (path, label))
    r = run([MALFAM, "train", "--reports", lst, "--no-fold", "--max-len", "0", "--out", out]
            + SMALL)
    if r.returncode != 0:
        die("train --no-fold --max-len 0 model: " + r.stderr.decode())


# ---- the three paths ------------------------------------------------------------------------

def offline(model, mode, files):
    """malfam score: {path: value} or None when the model cannot serve the mode."""
    r = run([MALFAM, "score", "--json", "--model", model, "--mode", mode, "--top", str(TOP)]
            + files)
    if r.returncode != 0 and b"needs what this model lacks" in r.stderr:
        return None
    out = {}
    for line in r.stdout.decode().splitlines():
        value = json.loads(line)
        out[value.pop("path")] = value
    for f in files:  # a report malfam score could not answer: a difference, not a stop
        out.setdefault(f, {"error": "no answer line from malfam score"})
    return out


class Daemon:
    def __init__(self, tmp, name, model, root):
        self.sock = os.path.join(tmp, name + ".sock")
        conf = os.path.join(tmp, name + ".conf")
        with open(conf, "w") as f:
            f.write("[malfamd]\nsocket = %s\nmodel = %s\nallowed_roots = %s\nmax_jobs = 2\n"
                    "log_level = error\n" % (self.sock, model, root))
        self.log = open(os.path.join(tmp, name + ".log"), "wb")
        self.p = subprocess.Popen([MALFAMD, "-c", conf, "--foreground"], stderr=self.log)
        for _ in range(600):
            if os.path.exists(self.sock):
                try:
                    if self.ask({"op": "ping"})["ok"]:
                        return
                except OSError:
                    pass
            if self.p.poll() is not None:
                die("malfamd (%s) died at start" % name)
            time.sleep(0.05)
        die("malfamd (%s) did not come up" % name)

    def ask(self, req, body=None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(300)
        s.connect(self.sock)
        try:
            s.sendall(json.dumps(req).encode() + b"\n" + (body or b""))
            buf = b""
            while not buf.endswith(b"\n"):
                d = s.recv(1 << 16)
                if not d:
                    raise OSError("closed without an answer")
                buf += d
            return json.loads(buf.decode())
        finally:
            s.close()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        if self.p.wait(60) != 0:
            die("malfamd exited %d" % self.p.returncode)
        self.log.close()


# ---- comparison -----------------------------------------------------------------------------

def differences(a, b):
    """What differs between two answer values (daemon lines carry v/id/ok/ms besides)."""
    out = []
    for k in ("calls", "unknown", "note", "mode", "model", "explain", "verdict", "error"):
        if a.get(k) != b.get(k):
            out.append("%s: %r != %r" % (k, a.get(k), b.get(k)))
    for k in ("novelty", "threshold"):
        x, y = a.get(k), b.get(k)
        if (x is None) != (y is None) or (x is not None and abs(x - y) > TOL):
            out.append("%s: %r != %r" % (k, x, y))
    fa, fb = a.get("families", []), b.get("families", [])
    if [f["family"] for f in fa] != [f["family"] for f in fb]:
        out.append("ranking: %s != %s" % ([f["family"] for f in fa], [f["family"] for f in fb]))
    else:
        for x, y in zip(fa, fb):
            for k in ("score", "rel", "p"):
                if (k in x) != (k in y) or (k in x and abs(x[k] - y[k]) > TOL):
                    out.append("%s %s: %r != %r" % (x["family"], k, x.get(k), y.get(k)))
    return out


def main():
    for b in (MALFAM, MALFAMD):
        if not os.access(b, os.X_OK):
            die("%s missing: build first (make all)" % b)
    if not os.path.isdir(os.path.join(DATA, "reports")) or not os.path.exists(GEN):
        die("shared data or gen_report.py missing under %s" % os.path.dirname(DATA))
    tmp = tempfile.mkdtemp(prefix="malfam-eq.")
    t0 = time.time()
    try:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        files = make_inputs(root)
        models = [("default", os.path.join(tmp, "default.model")),
                  ("nofold-all", os.path.join(tmp, "nofold.model"))]
        train_default(models[0][1])
        train_nofold(models[1][1], tmp)
        passed = failed = 0
        for name, model in models:
            d = Daemon(tmp, name, model, root)
            served = []
            for mode in MODES:
                off = offline(model, mode, files)
                if off is None:  # the daemon must refuse it the same way
                    a = d.ask({"op": "classify", "path": files[0], "mode": mode})
                    if a.get("ok") or a.get("error") != "MF_EINVAL":
                        print("FAIL %s %s: CLI refuses the mode, daemon says %s" % (name, mode, a))
                        failed += 1
                    else:
                        passed += 1
                    continue
                served.append(mode)
                for f in files:
                    with open(f, "rb") as fh:
                        body = fh.read()
                    req = {"op": "classify", "path": f, "mode": mode, "top": TOP}
                    answers = [("classify", d.ask(req)),
                               ("classify_stream", d.ask({"op": "classify_stream", "mode": mode,
                                                          "top": TOP, "bytes": len(body)}, body))]
                    for how, a in answers:
                        diff = differences(off[f], a)
                        if diff:
                            failed += 1
                            print("FAIL %s %s %s %s: %s" % (name, mode, how, os.path.basename(f),
                                                            "; ".join(diff[:4])))
                        else:
                            passed += 1
            d.stop()
            print("model %s: modes %s, %d reports, each through malfam score, classify and "
                  "classify_stream" % (name, ",".join(served), len(files)))
        print("equivalence: %d comparisons in %.0f s" % (passed + failed, time.time() - t0))
        print("%d passed, %d failed" % (passed, failed))
        return 1 if failed else 0
    finally:
        if os.environ.get("EQ_KEEP"):
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
