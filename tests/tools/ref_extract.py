#!/usr/bin/env python3
"""Reference API-name extraction with the stdlib json module, for the C extractor's tests.

  ref_extract.py REPORT[.gz] [asis|expand|fold] > names.txt
  ref_extract.py --malapi ROW CALLS > names.txt   (what gen_report.py --row ROW --calls CALLS
                                                  puts in its report, from the Mal-API files)
"""
import gzip
import json
import os
import sys


def report_names(path, mode):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8") as f:
        r = json.load(f)
    procs = r.get("behavior", {}).get("processes", []) if "behavior" in r else r.get("processes", [])
    for p in procs:
        last = None
        for c in p.get("calls", []):
            api = c["api"].lower()
            n = 1 + c.get("repeated", 0) if mode == "expand" else 1
            for _ in range(n):
                if mode == "fold" and api == last:
                    continue
                last = api
                yield api


def malapi_names(row, calls):
    data = os.path.join(os.environ.get("MF_DATA", "../shared/data"), "mal-api-2019-808")
    names = {}
    for line in open(os.path.join(data, "ApiIndex.txt")):
        if "=" in line:
            n, i = line.strip().rsplit("=", 1)
            names[int(i)] = n
    with gzip.open(os.path.join(data, "calls.txt.gz"), "rt") as f:
        for i, line in enumerate(f):
            if i == row:
                ids = [int(x) for x in line.strip().split(",")]
                break
    trace = [names.get(i, "__missing__") for i in ids]
    for k in range(calls or len(trace)):
        yield trace[k % len(trace)]


def main():
    out = sys.stdout
    if sys.argv[1] == "--malapi":
        it = malapi_names(int(sys.argv[2]), int(sys.argv[3]))
    else:
        it = report_names(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "asis")
    for name in it:
        out.write(name + "\n")


if __name__ == "__main__":
    main()
