"""Render our web templates with Django's engine (python3-django), laid out as installed."""

import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
TPL = os.path.join(HERE, "..", "..", "cuckoo_module", "templates")

# Host pages reduced to what matters: where our lines go. Written for these tests.
CAPE_REPORT = """<ul class="nav nav-tabs">
    <li class="nav-item"><a class="nav-link active" href="#overview">Overview</a></li>
    {% include "analysis/malfam/_nav.html" %}
    {% if analysis.classification %}<li>Classification</li>{% endif %}
</ul>
<div class="tab-content">
    <div class="tab-pane fade show active" id="overview">overview</div>
    {% include "analysis/malfam/_pane.html" %}
</div>
"""
CUCKOO2_SUMMARY = """<div class="row">
    <div class="col-md-12">{% include "analysis/pages/summary/_malfam.html" %}</div>
</div>
"""


def _engine(root):
    import django
    from django.conf import settings
    from django.template import Engine
    if not settings.configured:
        settings.configure(USE_I18N=False)
        django.setup()
    return Engine(dirs=[root], debug=True)


def layout(root):
    """Install the templates under `root` the way hostinstall.py places them."""
    cape = os.path.join(root, "analysis", "malfam")
    summary = os.path.join(root, "analysis", "pages", "summary")
    for d in (cape, summary):
        if not os.path.isdir(d):
            os.makedirs(d)
    shutil.copy(os.path.join(TPL, "cape", "malfam.html"), os.path.join(cape, "index.html"))
    shutil.copy(os.path.join(TPL, "cape", "malfam_nav.html"), os.path.join(cape, "_nav.html"))
    shutil.copy(os.path.join(TPL, "cape", "malfam_pane.html"), os.path.join(cape, "_pane.html"))
    shutil.copy(os.path.join(TPL, "cuckoo2", "_malfam.html"), os.path.join(summary, "_malfam.html"))
    with open(os.path.join(root, "cape_report.html"), "w") as f:
        f.write(CAPE_REPORT)
    with open(os.path.join(root, "cuckoo2_summary.html"), "w") as f:
        f.write(CUCKOO2_SUMMARY)
    return root


def render_cape(root, malfam):
    from django.template import Context
    t = _engine(root).get_template("cape_report.html")
    return t.render(Context({"analysis": {"malfam": malfam, "info": {"id": 1}}}))


def render_cuckoo2(root, malfam):
    from django.template import Context
    t = _engine(root).get_template("cuckoo2_summary.html")
    return t.render(Context({"report": {"analysis": {"malfam": malfam}}}))


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>malfam result</title>
<style>
body {{ font-family: sans-serif; background: #212529; color: #f8f9fa; margin: 24px; width: 900px; }}
.card {{ border: 1px solid #6c757d; border-radius: 6px; margin-bottom: 16px; }}
.card-header, .panel-heading {{ padding: 8px 12px; border-bottom: 1px solid #6c757d; }}
.card-body, .panel-footer {{ padding: 12px; }}
table {{ width: 100%; border-collapse: collapse; }} td, th {{ padding: 4px 8px; text-align: left; }}
.progress {{ background: #495057; height: 14px; border-radius: 4px; display: inline-block; width: 70%; }}
.progress-bar {{ height: 100%; border-radius: 4px; background: #0dcaf0; }}
.bg-warning, .progress-bar-danger {{ background: #ffc107 !important; }}
.malfam-top {{ color: #ffc107; }} .tab-pane {{ display: block; }} .panel {{ border: 1px solid #6c757d; }}
h2 {{ font-size: 16px; color: #adb5bd; }}
</style></head><body>
<h2>CAPEv2 tab</h2>
{cape}
<h2>Cuckoo 2.0.7 summary panel</h2>
{cuckoo2}
</body></html>
"""


def static_page(root, cape_malfam, cuckoo2_malfam, out_path):
    html = PAGE.format(cape=render_cape(root, cape_malfam),
                       cuckoo2=render_cuckoo2(root, cuckoo2_malfam))
    with open(out_path, "w") as f:
        f.write(html)
    return html


def screenshot(html_path, png_path, timeout=60):
    """Headless Chromium screenshot of a local file. Returns None on success, else why not."""
    import subprocess
    import tempfile
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        return "chromium is not installed (Debian package `chromium`)"
    profile = tempfile.mkdtemp(prefix="mf-chromium-")
    try:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--user-data-dir=" + profile,
               "--window-size=1000,1100", "--screenshot=" + png_path,
               "file://" + os.path.abspath(html_path)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        if p.returncode != 0 or not os.path.exists(png_path):
            return "chromium failed (%d): %s" % (p.returncode, p.stdout[-400:])
        return None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
