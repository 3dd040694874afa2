"""The three adapters through the host doubles, on the real reports, against the fake daemon:
the happy path, the json.calls=0 fallback, and daemon absent / slow / garbage / error."""

import json
import os
import time

import pytest

import malfam_client as mc
from adapters import run_cape_reporting, run_cuckoo2_processing, run_cuckoo2_reporting
from runner import load_as

CUCKOO2 = "cuckoo207_benign_cmdkey.json"
CAPE = "cape22_55dcd387.json"


def opts(sock, **kw):
    o = {"enabled": True, "socket": sock, "timeout": 2, "top": 3, "write_back": True}
    o.update(kw)
    return o


def test_cuckoo2_processing_streams_the_behavior(fake, tmp_path):
    results = run_cuckoo2_processing(str(tmp_path), CUCKOO2, opts(fake.path), task_id=71)
    m = results["malfam"]
    assert m["via"] == "stream" and m["calls"] == 33 and m["families"][0]["family"] == "Trojan"
    req = fake.requests[-1]
    assert req["op"] == "classify_stream" and req["task_id"] == 71
    assert [p["calls"].passes for p in results["behavior"]["processes"]] == [1, 1]


def test_cuckoo2_processing_no_calls_report(fake, tmp_path):
    m = run_cuckoo2_processing(str(tmp_path), "cuckoo207_sodinokibi_nocalls.json",
                               opts(fake.path))["malfam"]
    assert m["calls"] == 0 and m["unknown"] is True and m["families"] == []


def test_cuckoo2_processing_registers_its_schema_section():
    from cuckoo.common import config as cc
    cc._cache[("processing", "stale")] = object()
    load_as("cuckoo2_processing.py", "cuckoo.processing.malfam")
    types = cc.Config.configuration["processing"]["malfam"]
    assert set(types) >= {"enabled", "socket", "timeout", "top", "write_back",
                          "add_detection", "min_score"}
    assert not [k for k in cc._cache if k[0] == "processing"]   # stale parse forgotten


def test_cuckoo2_config2_reads_our_section(tmp_path):
    from cuckoo.common import config as cc
    load_as("cuckoo2_processing.py", "cuckoo.processing.malfam")
    os.makedirs(str(tmp_path / "conf"))
    here = os.path.dirname(os.path.abspath(__file__))
    snippet = open(os.path.join(here, "..", "..", "conf", "cuckoo", "processing.conf")).read()
    (tmp_path / "conf" / "processing.conf").write_text(
        snippet.replace("enabled = no", "enabled = yes"))
    cc.CWD = str(tmp_path)
    try:
        o = cc.config2("processing", "malfam")
    finally:
        cc.CWD = None
        cc._cache.clear()
    assert o["enabled"] is True and o["top"] == 3 and o["socket"] == mc.DEFAULT_SOCKET
    assert mc.option(o, "timeout", 0, float) == 5.0


def test_cuckoo2_reporting_patches_report_json(fake, tmp_path):
    results, path = run_cuckoo2_reporting(str(tmp_path), CUCKOO2, opts(fake.path))
    assert results["malfam"]["via"] == "report"
    req = fake.requests[-1]
    assert req["op"] == "classify" and req["write_back"] is True and req["path"] == path
    assert json.load(open(path))["malfam"]["calls"] == 33


def test_cuckoo2_reporting_keeps_processing_answer_when_calls_stripped(fake, tmp_path):
    prior = {"families": [{"family": "Ransom", "score": 0.9}], "via": "stream", "calls": 33}
    from runner import lazy_results, load_report
    results = lazy_results(load_report(CUCKOO2))
    results["malfam"] = prior
    results, _ = run_cuckoo2_reporting(str(tmp_path), CUCKOO2, opts(fake.path),
                                       task_options={"json.calls": "0"}, results=results)
    assert results["malfam"] is prior and fake.requests == []


def test_cape_reporting_classifies_and_writes_back(fake, tmp_path):
    results, path = run_cape_reporting(
        str(tmp_path), CAPE, opts(fake.path, add_detection=True, min_score="0.4",
                                  classification=True))
    m = results["malfam"]
    assert m["via"] == "report" and m["calls"] == 116
    assert json.load(open(path))["malfam"]["families"][0]["family"] == "Trojan"
    assert {"family": "Trojan", "details": [{"malfam": "raw jaccard score 0.41, not a probability"}]} in results["detections"]
    # classification = yes is ignored: CAPE's report view turns a stored one into True and
    # its template iterates it (tests/hosts/test_cape_bugs.py)
    assert "classification" not in results


def test_cape_detection_needs_min_score(fake, tmp_path):
    results, _ = run_cape_reporting(str(tmp_path), CAPE,
                                    opts(fake.path, add_detection=True, min_score="0.5"))
    assert "detections" not in results and "classification" not in results


def test_cape_falls_back_to_streaming_when_report_has_no_calls(fake, tmp_path):
    results, _ = run_cape_reporting(str(tmp_path), CAPE, opts(fake.path), strip_calls=True)
    ops = [r["op"] for r in fake.requests]
    assert ops == ["classify", "classify_stream"]
    m = results["malfam"]
    assert m["via"] == "stream" and m["calls"] == 116
    assert [p["calls"].passes for p in results["behavior"]["processes"]] == [1]


def test_cape_fallback_writes_the_streamed_answer_into_report_json(fake, tmp_path):
    """json.calls=0: the file's "no calls" answer must not stay in report.json."""
    results, path = run_cape_reporting(str(tmp_path), CAPE, opts(fake.path), strip_calls=True)
    first, stream = fake.requests
    assert first["write_back"] is True and first["path"] == path
    assert stream["op"] == "classify_stream" and stream["write_back"] is True
    assert stream["path"] == path
    written = json.load(open(path))["malfam"]
    assert written["calls"] == 116 == results["malfam"]["calls"]
    assert written["families"] == results["malfam"]["families"]


def test_cape_fallback_without_write_back_leaves_report_json(fake, tmp_path):
    results, path = run_cape_reporting(str(tmp_path), CAPE, opts(fake.path, write_back=False),
                                       strip_calls=True)
    assert [r.get("write_back") for r in fake.requests] == [False, None]
    assert "path" not in fake.requests[1] and "malfam" not in json.load(open(path))
    assert results["malfam"]["calls"] == 116


def test_cuckoo2_reporting_streams_into_report_json_when_calls_stripped(fake, tmp_path):
    """No processing answer to keep: stream the calls and store the answer in the file."""
    results, path = run_cuckoo2_reporting(str(tmp_path), CUCKOO2, opts(fake.path),
                                          task_options={"json.calls": "0"})
    assert [r["op"] for r in fake.requests] == ["classify_stream"]
    assert fake.requests[0]["path"] == path and fake.requests[0]["write_back"] is True
    assert results["malfam"]["via"] == "stream"
    assert json.load(open(path))["malfam"]["calls"] == results["malfam"]["calls"] == 33


ADAPTERS = [
    ("cuckoo2-processing", lambda root, o: run_cuckoo2_processing(root, CUCKOO2, o)),
    ("cuckoo2-reporting", lambda root, o: run_cuckoo2_reporting(root, CUCKOO2, o)[0]),
    ("cape-reporting", lambda root, o: run_cape_reporting(root, CAPE, o)[0]),
]


@pytest.mark.parametrize("name,run", ADAPTERS, ids=[a[0] for a in ADAPTERS])
@pytest.mark.parametrize("mode,code", [("absent", mc.E_UNAVAILABLE), ("slow", mc.E_TIMEOUT),
                                       ("garbage", mc.E_PROTO), ("error", "MF_EJSON"),
                                       ("close", mc.E_IO)])
def test_daemon_trouble_never_breaks_the_analysis(fake, tmp_path, name, run, mode, code):
    if mode == "absent":
        fake.close()
    else:
        fake.mode, fake.delay = mode, 10
    t = time.time()
    results = run(str(tmp_path), opts(fake.path, timeout=1))
    elapsed = time.time() - t
    m = results["malfam"]
    assert m["code"] == code and m["error"].startswith(code)
    assert elapsed < 1 + 1.0, "took %.2f s with timeout 1 s" % elapsed
    assert "behavior" in results and "detections" not in results
