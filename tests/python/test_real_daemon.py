"""The adapters against the real malfamd with a real model, on the real reports: answers,
write-back into report.json, the json.calls=0 fallback, and a real error answer."""

import json
import os

import malfam_client as mc
from adapters import run_cape_reporting, run_cuckoo2_processing, run_cuckoo2_reporting
from runner import load_report


def opts(sock, **kw):
    o = {"enabled": True, "socket": sock, "timeout": 30, "top": 3, "write_back": True}
    o.update(kw)
    return o


def valid(m, calls=None):
    assert "error" not in m, m
    assert isinstance(m["families"], list) and isinstance(m["unknown"], bool)
    assert m["model"] and m["v"] == 1
    scores = [f["score"] for f in m["families"]]
    for f in m["families"]:
        assert f["family"] and isinstance(f["score"], (int, float))
    assert scores == sorted(scores, reverse=True)
    if m["mode"] not in ("fusion", "linear", "likelihood"):  # the others are similarities
        assert all(0.0 <= x <= 1.0 for x in scores)
    assert all(0.0 <= f["rel"] <= 1.0 for f in m["families"])
    if calls is not None:
        assert m["calls"] == calls


def test_cuckoo2_processing_and_reporting_agree(real_daemon, tmp_path):
    root = str(tmp_path)
    for name in ("cuckoo207_benign_cmdkey.json", "cuckoo20dev_demo_icqw3.json.gz"):
        streamed = run_cuckoo2_processing(root, name, opts(real_daemon.path))["malfam"]
        valid(streamed)
        assert streamed["calls"] > 0 and streamed["via"] == "stream"
        res, path = run_cuckoo2_reporting(root, name, opts(real_daemon.path))
        valid(res["malfam"], streamed["calls"])
        assert res["malfam"]["families"] == streamed["families"]   # same trace, same answer
        written = json.load(open(path))
        assert written["malfam"]["families"] == streamed["families"]
        original = load_report(name)
        del written["malfam"]
        assert written == original                                  # nothing else changed


def test_no_trace_report(real_daemon, tmp_path):
    m = run_cuckoo2_processing(str(tmp_path), "cuckoo207_sodinokibi_nocalls.json",
                               opts(real_daemon.path))["malfam"]
    valid(m, 0)
    assert m["unknown"] is True


def test_cape_report_and_fallback(real_daemon, tmp_path):
    root = str(tmp_path)
    for name in ("cape22_55dcd387.json", "cape24_cobaltstrikestager_5d61700f.json.gz"):
        res, path = run_cape_reporting(root, name, opts(real_daemon.path))
        valid(res["malfam"])
        assert res["malfam"]["via"] == "report" and res["malfam"]["calls"] > 0
        assert json.load(open(path))["malfam"]["families"] == res["malfam"]["families"]
        res2, path2 = run_cape_reporting(root, name, opts(real_daemon.path), strip_calls=True)
        assert res2["malfam"]["via"] == "stream"
        assert res2["malfam"]["families"] == res["malfam"]["families"]
        # the file ends with the streamed answer, not the "no trace" one classify wrote first
        written = json.load(open(path2))["malfam"]
        assert written["calls"] == res2["malfam"]["calls"] > 0 and "note" not in written
        assert written["families"] == res2["malfam"]["families"]
        assert open(path2, "rb").read().count(b'"malfam"') == 1


def test_real_error_answer_is_recorded(real_daemon, tmp_path):
    """A path outside allowed_roots: the daemon refuses, the task still finishes."""
    c = mc.Client(real_daemon.path, 5)
    try:
        c.classify("/etc/hostname")
    except mc.MalfamError as e:
        assert e.code.startswith("MF_E")
    else:
        raise AssertionError("classify outside allowed_roots succeeded")


def test_stats(real_daemon):
    s = mc.Client(real_daemon.path, 5).stats()
    assert s["ok"] is True and s.get("model") == real_daemon.hello.get("model")
