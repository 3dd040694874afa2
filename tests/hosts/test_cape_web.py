"""CAPEv2's real analysis page with malfam's tab, rendered and screenshotted.

The real analysis/report.html of ../shared/hosts/capev2 with all its includes, our templates
installed by hostinstall.install_cape, Debian's Django 3.2 (web_settings.py, web_urls.py),
an `analysis` built from a real CAPE report the way views.py report() builds it, and a known
and an unknown malfam answer (cape_web_render.py, which `make demo` runs too). Standalone:

    cd /work/wt-webui && BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/hosts/test_cape_web.py
"""

import configparser
import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
OUT = os.environ.get("BUILD") or os.path.join(TOP, "build")
sys.path.insert(0, HERE)

import cape_web_render as cwr  # noqa: E402


@pytest.fixture(scope="module")
def cape_web(tmp_path_factory):
    """Our templates installed in a temp copy of CAPE's web/templates; Django set up on it."""
    return cwr.setup(str(tmp_path_factory.mktemp("cape")))


@pytest.fixture(scope="module")
def report(cape_web):
    return cwr.load_report()


def page_of(report, answer, **kw):
    return cwr.render(cwr.analysis_of(cwr.results_with(report, answer, **kw)))


def tab(html):
    """Our tab pane's HTML: from the card to the end of the malfam pane."""
    start = html.index('id="malfam-result"')
    return html[start:html.index('<div class="tab-pane', start) if '<div class="tab-pane' in
                html[start:] else len(html)]


def esc(text):
    from django.utils.html import escape
    return str(escape(text))


def test_the_install_patches_the_real_report_page(cape_web):
    with open(os.path.join(cape_web, "analysis", "report.html")) as f:
        lines = [l.strip() for l in f if "{# malfam #}" in l]
    assert lines == ['{% include "analysis/malfam/_nav.html" %}{# malfam #}',
                     '{% include "analysis/malfam/_pane.html" %}{# malfam #}']


def test_known_family_with_its_probability(report):
    m = cwr.KNOWN
    html = page_of(report, m)
    # the whole real page: CAPE's header, overview, tab list, and our tab among them
    assert "Quick Overview" in html and 'id="overview"' in html
    assert 'id="malfam-tab"' in html and 'id="malfam"' in html
    t = tab(html)
    top = m["families"][0]
    assert 'malfam-top">%s<' % top["family"] in t
    # ONE readable confidence: p as a percentage, the headline; no decision value before
    # the table (the raw score is secondary: its own muted column)
    assert '<span class="malfam-confidence">83%</span>' in t
    verdict = t[:t.index("<table")]
    assert not re.search(r"-?\d+\.\d{3}", verdict), verdict
    for f in m["families"]:
        assert ">%s<" % f["family"] in t
        assert ">%d%%</span>" % int(round(f["p"] * 100)) in t
        assert 'malfam-score small font-monospace text-white-50">%.3f<' % f["score"] in t
    assert esc(m["explain"]) in t
    assert "Unknown family" not in t and "malfam-unknown" not in t
    assert "model %s" % m["model"] in t
    # the overview's detection badge: CAPE's own _info.html, our family added by malfam
    badge = re.search(r'href="/analysis/search/detections:%s"[^>]*title="([^"]*)"'
                      % top["family"], html)
    assert badge and badge.group(1).startswith("malfam -> "), badge   # its tooltip
    assert "p 83%" in badge.group(1), badge.group(1)  # the same one number as the tab


def test_unknown_is_flagged(report):
    m = cwr.UNKNOWN
    html = page_of(report, m)
    t = tab(html)
    assert "malfam-unknown" in t and "Unknown family" in t
    assert "below the threshold 0.23" in t
    assert "Closest known family: Virus, p 28%." in t
    # the badge names what it shows: novelty (p x similarity in linear mode), not similarity
    assert "novelty " in t and "similarity 0" not in t
    assert "malfam-top" not in t and "malfam-confidence" not in t
    assert esc(m["explain"]) in t
    # not trusted: no detection badge for it (top_family gives None)
    assert "detections:Virus" not in html


def test_error_answer(report):
    html = page_of(report, {"error": "MF_ETIMEDOUT: no answer from malfamd in 5.0 s",
                            "code": "MF_ETIMEDOUT"})
    t = tab(html)
    assert "MF_ETIMEDOUT: no answer from malfamd" in t and "<table" not in t


def test_classification(report):
    """CAPE's views.py report() sets analysis.classification to True whenever the stored
    document has one (its existence check for tabs), and classification.html then iterates
    it: the whole page fails. Our module's output (classification = no, the default) has
    none, so the page renders; a list or dict (an ES-only page) renders too."""
    results = cwr.results_with(report, cwr.KNOWN)
    assert "classification" not in results
    assert "malfam-confidence" in cwr.render(cwr.analysis_of(results))
    for value in ([{"meta": "per thread", "results": [{"family": "x"}]}],
                  {"family_top": [["Ransomware", "-0.119"]], "details": []}):
        a = cwr.analysis_of(results)
        a["classification"] = value          # as given, without the existence check
        html = cwr.render(a)
        assert 'id="classification"' in html and "malfam-confidence" in html
    results["classification"] = {"family_top": [["Ransomware", "-0.119"]]}
    a = cwr.analysis_of(results)
    assert a["classification"] is True      # what views.py makes of it
    try:
        cwr.render(a)
    except TypeError as e:                   # CAPE 4da22e6: 'bool' object is not iterable
        assert "bool" in str(e)
        # so our modules never set it: the option is gone, and the shipped drop-in has none
        import malfam_client
        assert not malfam_client.DEFAULTS.get("classification")
        cp = configparser.ConfigParser()
        cp.read(os.path.join(TOP, "conf", "cape", "reporting.conf.d", "malfam.conf"))
        assert not cp.getboolean("malfam", "classification", fallback=False)


def test_screenshots(cape_web):
    """The four PNGs (build/cape-report-{known,unknown}.png, cape-overview-*.png); fails if
    chromium is missing. The tab really opens: Chromium's DOM after CAPE's scripts ran."""
    done = cwr.render_all(OUT)
    names = sorted(os.path.basename(p) for p in done["png"])
    assert names == ["cape-overview-known.png", "cape-overview-unknown.png",
                     "cape-report-known.png", "cape-report-unknown.png"]
    for png in done["png"]:
        with open(png, "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (1400, 1000), png
        assert len(data) > 60000, "%s is only %d bytes" % (png, len(data))
    dom = cwr.dump_dom(os.path.join(OUT, "cape-report-known.html"))
    pane = re.search(r'<div class="([^"]*)" id="malfam"', dom)
    assert pane and "active" in pane.group(1).split(), pane
    overview = re.search(r'<div class="([^"]*)" id="overview"', dom)
    assert "active" not in overview.group(1).split()
