"""One analysis through CAPEv2's real RunProcessing and RunReporting: every sink labelled.

Sinks: report.json (JsonDump, order 10), the document CAPE's MongoDB module (9999) inserts,
the document its ElasticSearchDB module (no order: 1) indexes. See conftest.py."""

SUNCRYPT = "cape24_suncrypt_0a0882b8.json.gz"   # `detections` a list (CAPE >= 2.3)


def malfam_detection(detections):
    """The block CAPE's add_family_detection made for us, or None."""
    for block in detections or []:
        if any("malfam" in d for d in block.get("details") or []):
            return block
    return None


def test_cape_module_order_in_the_real_runner(cape):
    r = cape(SUNCRYPT)
    assert r.out["processing"] == ["Malfam:2"]
    # what ran, in CAPE's order: ElasticSearchDB has no `order` (1) and stores before JsonDump
    assert r.out["reporting"] == ["BinGraph", "ElasticSearchDB", "JsonDump", "Malfam", "MongoDB"]
    assert r.out["reporting_errors"] == 0


def test_issue_13_every_sink_labelled(cape):
    r = cape(SUNCRYPT, processing={"add_detection": "yes"})
    m = r.out["malfam"]
    assert "error" not in m and m["via"] == "stream" and m["calls"] > 0
    assert m["families"] and m["unknown"] is False
    top = m["families"][0]["family"]
    for name, doc in (("report.json", r.report), ("mongodb", r.mongo),
                      ("elasticsearchdb", r.elastic)):
        assert doc["malfam"] == m, name
        block = malfam_detection(doc["detections"])
        assert block and block["family"] == top, (name, doc["detections"])
        # CAPE's own detection stays first
        assert doc["detections"][0]["family"] == "SunCrypt", name


def test_issue_13_daemon_down_every_sink_gets_the_error(cape, tmp_path):
    r = cape(SUNCRYPT, processing={"add_detection": "yes", "timeout": "1"},
             reporting={"timeout": "1"}, socket=str(tmp_path / "nobody.sock"))
    assert r.out["reporting_errors"] == 0
    assert r.out["reporting"][-1] == "MongoDB"          # the analysis went on to the end
    m = r.out["malfam"]
    assert m["error"].startswith("MF_EUNAVAILABLE") and m["code"] == "MF_EUNAVAILABLE"
    for doc in (r.report, r.mongo, r.elastic):
        assert doc["malfam"] == m
        assert malfam_detection(doc["detections"]) is None


def test_cape_reporting_module_is_the_fallback(cape):
    """Without the processing module (not installed, or a minproc=1 task) the reporting module
    labels report.json by write-back; MongoDB gets it, ElasticSearchDB (order 1) does not."""
    r = cape(SUNCRYPT, reporting={"add_detection": "yes"}, install_processing=False)
    assert r.out["processing"] == [] and r.out["reporting_errors"] == 0
    m = r.out["malfam"]
    assert "error" not in m and m["via"] == "report" and m["calls"] > 0
    assert r.report["malfam"]["families"] == m["families"]      # written back by malfamd
    assert r.mongo["malfam"] == m and malfam_detection(r.mongo["detections"])
    # what the fallback cannot reach: jsondump wrote detections before us, ES stored before us
    assert malfam_detection(r.report["detections"]) is None
    assert r.elastic["malfam"] is None


def test_cape_minproc_task_is_labelled_by_the_fallback(cape):
    """Task option minproc=1: CAPE runs only AnalysisInfo, BehaviorAnalysis and Debug, so our
    processing module is skipped; the reporting module labels report.json instead."""
    r = cape(SUNCRYPT, task_options="minproc=1")
    assert r.out["reporting_errors"] == 0
    m = r.out["malfam"]
    assert "error" not in m and m["via"] == "report"
    assert r.report["malfam"]["families"] == m["families"] and r.mongo["malfam"] == m
