"""Issue 13 regressions, each in CAPEv2's real runners with a real malfamd (conftest.py)."""

import os

from conftest import CAPE_SRC

SUNCRYPT = "cape24_suncrypt_0a0882b8.json.gz"   # `detections` a list
QAKBOT = "cape22_qakbot_0000a657.json.gz"       # `detections` the string "QakBot" (CAPE 2.2)


def malfam_blocks(detections):
    return [b for b in detections or [] if any("malfam" in d for d in b.get("details") or [])]


def test_issue_13_add_detection_fires_in_linear_mode(cape):
    """min_score 0 (the default) against the novelty, not the (negative) linear top score."""
    on = {"add_detection": "yes"}
    r = cape(SUNCRYPT, processing=on, reporting=on)
    m = r.out["malfam"]
    assert m["mode"] == "linear" and m["unknown"] is False and m["families"][0]["score"] < 0
    blocks = malfam_blocks(r.mongo["detections"])
    assert [b["family"] for b in blocks] == [m["families"][0]["family"]]
    assert m["novelty"] >= 0        # kept in the results: what min_score is compared with


def render_classification(analysis):
    """CAPE's real web/templates/analysis/classification.html, as report() hands it over."""
    import django
    from django.conf import settings
    if not settings.configured:
        settings.configure(TEMPLATES=[{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [os.path.join(CAPE_SRC, "web", "templates")]}])
        django.setup()
    from django.template.loader import get_template
    return get_template("analysis/classification.html").render({"analysis": analysis})


def test_issue_13_classification_option_never_breaks_report_page(cape):
    on = {"classification": "yes"}
    r = cape(SUNCRYPT, processing=on, reporting=on)
    assert "error" not in r.out["malfam"]
    doc = r.mongo
    # web/analysis/views.py report(): `classification` is not projected; the existence check
    # then sets it to True when the stored document has a truthy one.
    analysis = {"classification": True} if doc.get("classification") else {}
    render_classification(analysis)          # TypeError: 'bool' object is not iterable
    assert not r.out["classification"] and not r.report.get("classification")


def test_issue_13_string_detections_do_not_fail_reporting(cape):
    """A 2.2-era results dict: CAPE's add_family_detection iterates the string's characters
    and raises AttributeError. min_score -1 lets the top score through on every version."""
    on = {"add_detection": "yes", "min_score": "-1"}
    r = cape(QAKBOT, processing=on, reporting=on)
    assert r.out["reporting_errors"] == 0
    m = r.out["malfam"]
    assert "error" not in m
    for doc in (r.report, r.mongo, r.elastic):
        dets = doc["detections"]
        assert dets[0] == {"family": "QakBot", "details": []}
        assert [b["family"] for b in malfam_blocks(dets)] == [m["families"][0]["family"]]
