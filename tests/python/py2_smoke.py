"""Run by test_py2.py under a real Python 2.7: the client and both Cuckoo 2 adapters, through
the host doubles, on the real Cuckoo 2.0.7 reports, against the daemon at argv[1]. Prints
one JSON line per run. Must itself stay Python 2.7 and 3 compatible."""

import io
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "hostdoubles"))
sys.path.insert(0, HERE)

from runner import use_doubles  # noqa: E402

use_doubles()

import malfam_client as mc  # noqa: E402
from adapters import run_cuckoo2_processing, run_cuckoo2_reporting  # noqa: E402


def main(sock):
    out = io.BytesIO()
    # A Python 2 byte string that is not UTF-8, as a process name may be.
    n, calls = mc.write_behavior([{"pid": 1, "process_name": "caf\xe9.exe",
                                   "calls": iter([{"api": "NtClose"}])}], out)
    json.loads(out.getvalue().decode("ascii"))
    print(json.dumps({"write_behavior": [n, calls]}))
    opts = {"enabled": True, "socket": sock, "timeout": "2", "top": 3, "write_back": True}
    root = tempfile.mkdtemp(prefix="mf-py2-")
    try:
        for name in ("cuckoo207_benign_cmdkey.json", "cuckoo207_sodinokibi_nocalls.json"):
            res = run_cuckoo2_processing(root, name, opts)
            print(json.dumps({"processing": name, "malfam": res["malfam"]}))
            res, path = run_cuckoo2_reporting(root, name, opts)
            with open(path) as f:
                written = json.load(f).get("malfam")
            print(json.dumps({"reporting": name, "malfam": res["malfam"],
                              "written": written is not None}))
        absent = dict(opts, socket=os.path.join(root, "absent.sock"))
        res = run_cuckoo2_processing(root, "cuckoo207_benign_cmdkey.json", absent)
        print(json.dumps({"absent": res["malfam"]}))
    finally:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
