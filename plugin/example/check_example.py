#!/usr/bin/env python3
"""check_example.py BUILD MODEL REPORTS_DIR - run plugin/example/example.c's binary and `malfam score`
on every report (*.json, *.json.gz) in REPORTS_DIR with MODEL and compare, report by report:
the calls scored, the best family (or the note "no trace" / "no known calls") and its score
(the example prints 6 decimals). Exit 0 when all agree, 1 otherwise; a missing binary, model or
report directory is a failure, never a skip."""

import json
import os
import subprocess
import sys


def die(msg):
    sys.exit("check-example: FAIL: " + msg)


def run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0:
        die("%s exited %d:\n%s" % (" ".join(argv[:3]), p.returncode, p.stderr))
    if argv[1:2] == ["score"]:  # --json: one object a line, the path inside
        return p.stdout.splitlines()
    return dict(line.split("\t", 1) for line in p.stdout.splitlines())


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    build, model, rep = sys.argv[1:]
    for f in (os.path.join(build, "example"), os.path.join(build, "malfam"), model):
        if not os.access(f, os.R_OK):
            die("missing " + f)
    if not os.path.isdir(rep):
        die("no report directory %s (set MF_DATA)" % rep)
    reports = sorted(os.path.join(rep, n) for n in os.listdir(rep)
                     if n.endswith((".json", ".json.gz")))
    if not reports:
        die("no reports in " + rep)
    ex = run([os.path.join(build, "example"), model] + reports)
    cli = run([os.path.join(build, "malfam"), "score", "--json", "--model", model] + reports)
    cli = dict((a["path"], a) for a in map(json.loads, cli))
    bad = 0
    for r in reports:
        want = cli.get(r, {})
        if "calls" not in want or r not in ex:
            print("%s: missing from %s" % (r, "malfam score" if "calls" not in want else
                                           "example"))
            bad += 1
            continue
        fam = want["families"]
        expect = (want["calls"], fam[0]["family"] if fam else want["note"],
                  fam[0]["score"] if fam else None)
        f = ex[r].split("\t")
        got = (int(f[0]), f[1], float(f[2]) if len(f) > 2 else None)
        same = got[:2] == expect[:2] and (expect[2] is None) == (got[2] is None) and \
            (got[2] is None or abs(got[2] - expect[2]) <= 1e-6 + 1e-9 * abs(expect[2]))
        print("%s %s: calls %d, %s%s" % ("ok  " if same else "DIFF", os.path.basename(r),
                                          got[0], got[1], "" if same else
                                          " (malfam score: %r)" % (expect,)))
        bad += not same
    if bad:
        die("%d of %d reports differ from malfam score" % (bad, len(reports)))
    print("check-example: %d reports, same calls, best family and score as malfam score"
          % len(reports))


if __name__ == "__main__":
    main()
