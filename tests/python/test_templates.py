"""Our web templates rendered by Django on malfam answers produced by the adapters from the
real reports; then a static page of both and a headless Chromium screenshot of it."""

import os
import re

import pytest

from adapters import run_cape_reporting, run_cuckoo2_processing
from render import layout, render_cape, render_cuckoo2, screenshot, static_page

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.environ.get("BUILD") or os.path.join(HERE, "..", "..", "build")


def opts(sock):
    return {"enabled": True, "socket": sock, "timeout": 5, "top": 3, "write_back": True}


@pytest.fixture
def answers(daemon, tmp_path):
    """(CAPE answer, Cuckoo 2 answer), from the daemon under test on real reports."""
    cape, _ = run_cape_reporting(str(tmp_path), "cape22_55dcd387.json", opts(daemon.path))
    ck = run_cuckoo2_processing(str(tmp_path), "cuckoo207_benign_cmdkey.json", opts(daemon.path))
    return cape["malfam"], ck["malfam"]


def shown(html, m):
    """Every family with its 3-decimal score, and the model version, appear in html."""
    assert m["families"], m
    for f in m["families"]:
        assert ">%s<" % f["family"] in html
        assert "%.3f" % f["score"] in html
        # one number: the bar is as wide as the printed probability p when the answer has
        # one; else it shows "rel" (the score between the worst family and the best)
        width = int(round((f["p"] if "p" in f else f["rel"]) * 100))
        assert re.search(r"width: %d%%" % width, html), width
        if "p" in f:  # linear answers of a model with a fitted temperature: the probability
            assert ">%d%%</span>" % int(round(f["p"] * 100)) in html
    assert "model %s" % m["model"] in html


def test_cape_tab_renders_the_ranked_answer(answers, tmp_path):
    cape, _ = answers
    html = render_cape(layout(str(tmp_path)), cape)
    assert 'id="malfam-tab"' in html and 'id="malfam"' in html
    shown(html, cape)
    if not cape.get("unknown"):
        assert 'malfam-top">%s<' % cape["families"][0]["family"] in html


def test_cuckoo2_panel_renders_the_ranked_answer(answers, tmp_path):
    _, ck = answers
    html = render_cuckoo2(layout(str(tmp_path)), ck)
    shown(html, ck)
    assert "%d API calls scored" % ck["calls"] in html


def test_unknown_error_and_explain_are_shown(tmp_path):
    root = layout(str(tmp_path))
    unknown = {"families": [{"family": "Trojan", "score": 0.05}], "unknown": True,
               "model": "m-1", "calls": 0, "explain": "no API calls\nin any process"}
    for html in (render_cape(root, unknown), render_cuckoo2(root, unknown)):
        assert "Unknown family" in html and "no API calls were recorded" in html
        assert "no API calls<br>in any process" in html
        assert "malfam-top" not in html
    err = {"error": "MF_ETIMEDOUT: no answer from malfamd in 5.0 s", "code": "MF_ETIMEDOUT"}
    for html in (render_cape(root, err), render_cuckoo2(root, err)):
        assert "MF_ETIMEDOUT: no answer from malfamd" in html and "<table" not in html


def test_nothing_shown_without_a_malfam_key(tmp_path):
    root = layout(str(tmp_path))
    assert "malfam" not in render_cape(root, None).replace("analysis/malfam", "")
    assert "malfam-result" not in render_cuckoo2(root, None)


def test_probabilities_are_shown_when_present(tmp_path):
    root = layout(str(tmp_path))
    m = {"families": [{"family": "Virus", "score": 0.8, "rel": 1.0, "p": 0.62},
                      {"family": "Worms", "score": -0.4, "rel": 0.0, "p": 0.07}],
         "unknown": False, "model": "m-2", "calls": 40, "mode": "linear"}
    for html in (render_cape(root, m), render_cuckoo2(root, m)):
        shown(html, m)
        assert ">62%</span>" in html and ">7%</span>" in html
        # the bar and the percentage are one number (issue 14: a 40 % bar labelled 10 %)
        assert "width: 100%" not in html and "width: 0%" not in html
    del m["families"][0]["p"], m["families"][1]["p"]
    for html in (render_cape(root, m), render_cuckoo2(root, m)):
        assert "malfam-p" not in html


def test_unknown_says_what_its_number_is(tmp_path):
    """An unknown answer never shows a bare high number: the closest family comes with its
    probability, or with its raw score named as such; CAPE's badge says novelty."""
    root = layout(str(tmp_path))
    m = {"families": [{"family": "Virus", "score": 0.797, "rel": 1.0, "p": 0.12}],
         "unknown": True, "novelty": 0.05, "threshold": 0.06, "model": "m-3", "calls": 9,
         "mode": "linear"}
    for html in (render_cape(root, m), render_cuckoo2(root, m)):
        assert re.search(r"Closest known family: Virus, p 12%", html), html
    cape = render_cape(root, m)
    assert "novelty 0.05" in cape and "similarity 0.05" not in cape
    del m["families"][0]["p"]
    m["mode"] = "knn"
    for html in (render_cape(root, m), render_cuckoo2(root, m)):
        assert "Closest known family: Virus, raw knn score 0.797 (not a probability)" in html


def test_family_names_are_escaped(tmp_path):
    m = {"families": [{"family": "<script>x</script>", "score": 0.5}], "unknown": False,
         "model": "1"}
    html = render_cape(layout(str(tmp_path)), m)
    assert "<script>x" not in html and "&lt;script&gt;x" in html


def test_screenshot_of_the_rendered_page(answers, tmp_path):
    cape, ck = answers
    if not os.path.isdir(OUT):
        os.makedirs(OUT)
    html_path = os.path.join(OUT, "malfam-webui.html")
    png_path = os.path.join(OUT, "malfam-webui.png")
    if os.path.exists(png_path):
        os.remove(png_path)
    html = static_page(layout(str(tmp_path)), cape, ck, html_path)
    shown(html, cape)
    shown(html, ck)
    why = screenshot(html_path, png_path)
    if why:
        pytest.skip("no screenshot: %s (the page is at %s)" % (why, html_path))
    with open(png_path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20000, "screenshot is only %d bytes" % len(data)
