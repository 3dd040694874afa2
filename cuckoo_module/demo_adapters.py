#!/usr/bin/env python3
# malfam - run every host adapter once against a live malfamd (the end of `make demo`).
# Part of malfam; README.md, "Using with Cuckoo / CAPE".
"""demo_adapters.py --socket SOCK [--workdir DIR] [--out DIR] [--gen-rows 2,4,65]

For generated reports (../shared/tools/gen_report.py, Mal-API-2019 traces with a known
label) and the real reports in ../shared/data/reports, runs through the test doubles of the
hosts' base classes:
  Cuckoo 2 processing  (classify_stream of the in-memory calls)
  Cuckoo 2 reporting   (classify + write_back of reports/report.json)
  CAPE reporting       (classify + write_back, stream fallback when report.json has no calls)
and prints one labelled line per run. Analysis directories are made under --workdir, which
must be inside malfamd's allowed_roots. Then renders both web templates on the answers into
--out/malfam-webui.html and, if chromium is installed, screenshots it to malfam-webui.png.
Exit status 1 if any run came back with an error.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
TESTS = os.path.join(TOP, "tests", "python")
sys.path[:0] = [os.path.join(TESTS, "hostdoubles"), TESTS, HERE]

from runner import REPORTS, use_doubles  # noqa: E402

use_doubles()

from adapters import run_cape_reporting, run_cuckoo2_processing, run_cuckoo2_reporting  # noqa

GEN = os.path.join(os.path.dirname(REPORTS), "..", "tools", "gen_report.py")
REAL_CUCKOO2 = ["cuckoo207_benign_cmdkey.json", "cuckoo207_sodinokibi_nocalls.json",
                "cuckoo20dev_demo_icqw3.json.gz"]
REAL_CAPE = ["cape22_55dcd387.json", "cape24_suncrypt_0a0882b8.json.gz"]


def generate(workdir, row, fmt):
    path = os.path.join(workdir, "gen_row%d_%s.json" % (row, fmt))
    with open(path, "w") as f:
        subprocess.check_call([sys.executable, GEN, "--row", str(row), "--format", fmt],
                              stdout=f)
    with open(path) as f:
        custom = (json.load(f).get("info") or {}).get("custom") or ""
    label = custom.split("label=", 1)[1].split(",")[0] if "label=" in custom else "?"
    return path, label


def describe(m):
    if "error" in m:
        return "ERROR %s" % m["error"]
    fams = ", ".join("%s %.3f" % (f["family"], f["score"]) for f in m.get("families") or [])
    return "%-8s %s%s  [calls %s, model %s, via %s]" % (
        "unknown" if m.get("unknown") else "family", fams or "-",
        "", m.get("calls"), m.get("model"), m.get("via"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--workdir", default=os.path.join(TOP, "build", "demo-hosts"))
    ap.add_argument("--out", default=os.path.join(TOP, "build"))
    ap.add_argument("--gen-rows", default="2,4,65",
                    help="rows of calls.txt.gz (default: test-split Backdoor, Trojan, Worms)")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args(argv)
    for d in (a.workdir, a.out):
        if not os.path.isdir(d):
            os.makedirs(d)
    workdir = os.path.realpath(a.workdir)
    opts = {"enabled": True, "socket": a.socket, "timeout": a.timeout, "top": 3,
            "write_back": True, "add_detection": True, "min_score": 0.0}

    cuckoo2, cape = [], []
    for row in [int(r) for r in a.gen_rows.split(",") if r.strip()]:
        p, label = generate(workdir, row, "cuckoo2")
        cuckoo2.append((p, "generated row %d (label %s)" % (row, label)))
        p, label = generate(workdir, row, "cape")
        cape.append((p, "generated row %d (label %s)" % (row, label)))
    cuckoo2 += [(n, "real " + n) for n in REAL_CUCKOO2]
    cape += [(n, "real " + n) for n in REAL_CAPE]

    print("== malfam host adapters against %s" % a.socket)
    errors = 0
    answers = {}
    task = 0
    for name, what in cuckoo2:
        task += 1
        m = run_cuckoo2_processing(workdir, name, opts, task_id=task)["malfam"]
        print("cuckoo2 processing  %-52s %s" % (what, describe(m)))
        answers.setdefault("cuckoo2", m)
        errors += "error" in m
        task += 1
        res, _ = run_cuckoo2_reporting(workdir, name, opts, task_id=task)
        print("cuckoo2 reporting   %-52s %s" % (what, describe(res["malfam"])))
        errors += "error" in res["malfam"]
    for name, what in cape:
        for strip in (False, True):
            task += 1
            res, _ = run_cape_reporting(workdir, name, opts, task_id=task, strip_calls=strip)
            m = res["malfam"]
            label = what + (" (calls stripped)" if strip else "")
            print("cape reporting      %-52s %s" % (label, describe(m)))
            if not strip and "error" not in m and not m.get("unknown"):
                answers.setdefault("cape", m)
            errors += "error" in m
            if res.get("detections") and not strip:
                print("                    detections: %s" % json.dumps(res["detections"][-1:]))

    try:
        from render import layout, screenshot, static_page
        tpl = os.path.join(workdir, "templates")
        html = os.path.join(a.out, "malfam-webui.html")
        png = os.path.join(a.out, "malfam-webui.png")
        static_page(layout(tpl), answers.get("cape") or answers.get("cuckoo2"),
                    answers.get("cuckoo2"), html)
        why = screenshot(html, png)
        print("web UI page: %s; screenshot: %s" % (html, why or png))
    except ImportError as e:
        print("web UI page skipped (Django missing: %s)" % e)
    print("== %d run(s) with an error" % errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
