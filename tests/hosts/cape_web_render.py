#!/usr/bin/env python3
# malfam - render CAPEv2's real analysis page with malfam's tab installed, and screenshot it.
# Part of malfam's tests (tests/hosts/test_cape_web.py) and of `make demo` (tests/demo.sh):
# one code path for both. Reads the CAPE tree in place (MF_HOSTS, default ../shared/hosts).
"""cape_web_render.py [--out DIR] [--report REPORT.json.gz]

Installs our templates into a temp copy of CAPE's web/templates exactly as
`make install-cape` does (hostinstall.install_cape on a temp CAPE root), renders the real
analysis/report.html with Debian's Django 3.2 (web_settings.py, web_urls.py) on an
`analysis` built from a real CAPE report the way web/analysis/views.py report() builds it,
plus a malfam answer, and takes headless Chromium screenshots with CAPE's web/static:

  cape-report-known.png      the "Family (malfam)" tab, a known family with its probability
  cape-report-unknown.png    the same tab for an unknown answer
  cape-overview-known.png    the Quick Overview with the detection badges (malfam's added)
  cape-overview-unknown.png  the Quick Overview of the unknown answer (no malfam badge)

Each PNG has its .html beside it.
"""

import argparse
import contextlib
import copy
import gzip
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
MODULE = os.path.join(TOP, "cuckoo_module")
DATA = os.environ.get("MF_DATA") or os.path.join(TOP, "..", "shared", "data")
REPORT = os.path.join(DATA, "reports", "cape24_suncrypt_0a0882b8.json.gz")

for _p in (HERE, MODULE):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def cape():
    """The CAPE tree's root. Importing web_settings puts CAPE's web/ and root first on
    sys.path (its `lib`, `analysis`...), so that waits until setup() or this call."""
    import web_settings
    return web_settings.CAPE


# Two answers in the shape malfamd gives in linear mode (tests/golden/score_*.out): decision
# values as scores (negative ones too), calibrated probabilities p, the novelty gate.
KNOWN = {
    "families": [
        {"family": "Ransomware", "score": -0.1187262535, "rel": 1, "p": 0.8302154541},
        {"family": "Trojan", "score": -1.940612316, "rel": 0.2431705594, "p": 0.0911845341},
        {"family": "Dropper", "score": -2.525412083, "rel": 0, "p": 0.0465013981},
    ],
    "unknown": False, "novelty": 0.4127711356, "threshold": 0.2335490781, "mode": "linear",
    "model": "49371f82", "calls": 200, "ms": 41.2,
    "explain": "shared with Ransomware: cryptencrypt, findfirstfilew, findnextfilew, "
               "movefilewithprogressw, ntwritefile, ntcreatefile, cryptgenrandom, "
               "getlogicaldrives; weighs most: findnextfilew>movefilewithprogressw, "
               "cryptencrypt>ntwritefile, getlogicaldrives",
}
UNKNOWN = {
    "families": [
        {"family": "Virus", "score": -0.3658149305, "rel": 1, "p": 0.2799422076},
        {"family": "Trojan", "score": -0.5507046598, "rel": 0.7806328145, "p": 0.1845685429},
        {"family": "Dropper", "score": -0.6255193969, "rel": 0.6918669409, "p": 0.1559383884},
    ],
    "unknown": True, "novelty": 0.1914061277, "threshold": 0.2335490781, "mode": "linear",
    "model": "49371f82", "calls": 200, "ms": 38.7,
    "explain": "shared with Virus: ntdelayexecution, ntterminateprocess, "
               "getsystemtimeasfiletime, regqueryvalueexw, regopenkeyexw, ntcreatesection, "
               "ntmapviewofsection, regclosekey; weighs most: getsystemtimeasfiletime, "
               "writeconsolea, ntclose>ntopenkey, ntqueryvaluekey>ntclose",
}
ANSWERS = {"known": KNOWN, "unknown": UNKNOWN}

# The MongoDB projection of web/analysis/views.py report() (CAPEv2 4da22e6), plus "malfam",
# which CUSTOM_SERVICES in custom/analysis_services.py adds (make install-cape).
PROJECTION = ("info", "target", "signatures", "malscore", "malstatus", "detections", "trid",
              "virustotal", "virustotal_summary", "malware_conf", "CAPE.configs",
              "capa_summary", "curtain", "mitre_attck", "statistics", "shots", "debug",
              "behavior.summary", "network.domains", "network.dns", "network.hosts",
              "reversinglabs", "tcr_config_lookup", "threatintelligence", "malfam")
EXISTENCE = ("sigma", "sysmon", "misp", "classification")

_STATE = {}


# ---- install + Django ------------------------------------------------------------------------


def install(workdir):
    """A temp CAPE root under workdir holding a copy of the tree's web/templates, with our
    templates installed by hostinstall.install_cape itself. Returns its templates dir."""
    import hostinstall
    root = os.path.join(workdir, "cape")
    templates = os.path.join(root, "web", "templates")
    shutil.copytree(os.path.join(cape(), "web", "templates"), templates)
    for d in ("modules/reporting", "modules/processing", "custom"):
        os.makedirs(os.path.join(root, d))
    # the packages a real checkout has, as the installer checks
    for d in ("modules/reporting", "modules/processing"):
        open(os.path.join(root, d, "__init__.py"), "w").close()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        hostinstall.install_cape(root)
    report = os.path.join(templates, "analysis", "report.html")
    with open(report) as f:
        if f.read().count(hostinstall.LINE_MARK) != 2:
            raise RuntimeError("install-cape did not patch %s:\n%s" % (report, log.getvalue()))
    return templates


def setup(workdir=None):
    """Install into workdir (a new temp dir if None) and configure Django on that copy, once
    per process (Django's settings cannot be configured twice). Returns the templates dir."""
    if "templates" in _STATE:
        return _STATE["templates"]
    from django.conf import settings
    lib = getattr(sys.modules.get("lib"), "__file__", None) or ""
    if settings.configured or (lib and not os.path.abspath(lib).startswith(cape() + os.sep)):
        # tests/python configures Django itself and puts host doubles named `lib` first
        raise RuntimeError("Django or a `lib` package other than CAPE's is already loaded in "
                           "this process: run tests/hosts in a pytest process of its own")
    workdir = workdir or tempfile.mkdtemp(prefix="mf-cape-web-")
    templates = install(workdir)
    import web_settings
    web_settings.TEMPLATES[0]["DIRS"] = [templates]
    # an absolute path: a file:// page resolves it to file:///...; Django would prefix a
    # "file://" URL with the script prefix
    web_settings.STATIC_URL = os.path.join(cape(), "web", "static") + "/"
    os.environ["DJANGO_SETTINGS_MODULE"] = "web_settings"
    import django
    with contextlib.redirect_stdout(io.StringIO()):   # CAPE's "Missed pyzipper dependency"
        django.setup()
        importlib.import_module("lib.cuckoo.common.utils")
        from django.template import engines
        engines["django"].engine.template_libraries   # import CAPE's tag libraries now
    _STATE["templates"] = templates
    return templates


# ---- the analysis, as views.py report() gives it to the template -----------------------------


def load_report(path=REPORT):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _project(doc, fields):
    out = {}
    for field in fields:
        head, _, rest = field.partition(".")
        if head not in doc:
            continue
        if not rest:
            out[head] = doc[head]
        elif isinstance(doc[head], dict) and rest in doc[head]:
            out.setdefault(head, {})[rest] = doc[head][rest]
    return out


def _count(doc, key, sub=None):
    v = doc.get(key)
    if sub and isinstance(v, dict):
        v = v.get(sub)
    return len(v) if isinstance(v, list) else 0


def results_with(report, malfam, add_detection=True):
    """The results dict after our reporting module ran (what MongoDB stores): malfam's answer,
    and with add_detection the top family in detections, as cape_reporting.Malfam does."""
    from lib.cuckoo.common.utils import add_family_detection
    import malfam_client
    results = copy.deepcopy(report)
    results["malfam"] = malfam
    best = malfam_client.top_family(malfam, 0.0)
    if best and add_detection:
        add_family_detection(results, best[0], "malfam", malfam_client.detection_text(malfam))
    return results


def analysis_of(results):
    """The `analysis` of views.py report(): the projected document, tab flags for the keys of
    the existence check (set to True), signature data split into calls, artefact counts."""
    a = _project(results, PROJECTION)
    for field in EXISTENCE:
        if results.get(field):
            a[field] = True
    for sig in a.get("signatures", []):
        data = sig.pop("data", [])
        calls = [d for d in data if isinstance(d, dict) and d.get("type") == "call"]
        if calls:
            sig["calls"] = calls
        sig["data"] = [d for d in data if not (isinstance(d, dict) and d.get("type") == "call")]
    if isinstance(a.get("CAPE"), dict) and a["CAPE"].get("configs"):
        a["malware_conf"] = a["CAPE"]["configs"]
    a["dropped"] = _count(results, "dropped")
    a["procdump"] = _count(results, "procdump")
    a["CAPE"] = _count(results, "CAPE", "payloads")
    a["procmemory"] = _count(results, "procmemory")
    a["memory"] = 0
    return a


def enabledconf():
    """views.py's `config`: every section's `enabled` of CAPE's default conf files."""
    import configparser
    conf = {}
    for name in ("integrations", "reporting", "processing", "auxiliary", "web", "distributed"):
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        cp.read(os.path.join(cape(), "conf", "default", "%s.conf.default" % name))
        for section in cp.sections():
            if "enabled" in cp[section]:
                conf[section] = cp[section]["enabled"].strip().lower() == "yes"
    return conf


class Visitor(object):
    """request.user of an anonymous visitor (WEB_AUTHENTICATION off)."""
    is_authenticated = False
    is_staff = False
    is_superuser = False
    username = ""


def render(analysis):
    """HTML of analysis/report.html, with the context keys views.py report() passes."""
    setup()
    from django.conf import settings
    from django.template.loader import render_to_string
    from django.test import RequestFactory
    request = RequestFactory().get("/analysis/%s/" % analysis["info"]["id"])
    request.user = Visitor()
    stats = {"total": 0.0}
    for cat in ("processing", "signatures", "reporting"):
        t = sum(i.get("time", 0) for i in (analysis.get("statistics") or {}).get(cat) or [])
        stats[cat] = "%.2f" % t
        stats["total"] += t
    stats["total"] = "%.2f" % stats["total"]
    ctx = {
        "title": "Analysis Report", "can_toggle_visibility": False,
        "task_visibility": "private", "task_has_tenant": False, "visibility_choices": [],
        "analysis": analysis, "file": analysis.get("target", {}).get("file", {}),
        "id": analysis["info"]["id"], "tab_name": "static",
        "source_url": analysis["info"].get("source_url", ""),
        "domainlookups": {}, "iplookups": {}, "settings": settings, "config": enabledconf(),
        "reports_exist": {"json": True}, "stats_total": stats,
        "graphs": {"vba2graph": {"enabled": False, "content": {}},
                   "bingraph": {"enabled": False, "content": {}}},
        "on_demand": {}, "existent_tasks": {}, "user": request.user,
    }
    return render_to_string("analysis/report.html", ctx, request=request)


# ---- screenshots ------------------------------------------------------------------------------

# Opens our tab the way a click does (Bootstrap's Tab API, CAPE's bootstrap.bundle.min.js).
SHOW_TAB = """<script>
window.addEventListener("load", function () {
    bootstrap.Tab.getOrCreateInstance(document.querySelector("#malfam-tab")).show();
});
</script>
</body>"""


def chromium(html_path, args, timeout=90):
    """Run headless Chromium (tests/python/render.py's flags, a new empty profile) on a local
    page with extra args; returns its stdout. Raises RuntimeError if it cannot."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise RuntimeError("chromium is not installed (Debian package `chromium`; make deps)")
    profile = tempfile.mkdtemp(prefix="mf-chromium-")
    try:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile,
               # no fade transition (Bootstrap drops it under reduced motion): a shot taken
               # mid-fade showed a half-transparent pane; virtual time lets fonts finish and
               # the shot waits for a fully composited frame
               "--force-prefers-reduced-motion", "--virtual-time-budget=5000",
               "--run-all-compositor-stages-before-draw"] + args + ["file://" + os.path.abspath(html_path)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("chromium failed (%d): %s"
                               % (p.returncode, p.stderr[-600:].decode("utf-8", "replace")))
        return p.stdout.decode("utf-8", "replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(html_path, png_path, size=(1400, 1000)):
    """A size[0] x size[1] PNG of the page's top."""
    if os.path.exists(png_path):
        os.remove(png_path)
    chromium(html_path, ["--hide-scrollbars", "--window-size=%d,%d" % size,
                         "--screenshot=" + png_path])
    if not os.path.exists(png_path):
        raise RuntimeError("chromium wrote no %s" % png_path)
    return png_path


def dump_dom(html_path):
    """The page's DOM after its scripts ran."""
    return chromium(html_path, ["--dump-dom"])


def page(out, name, html, tab):
    """Write out/<name>.html (with our tab opened if tab) and screenshot it to <name>.png."""
    if tab:
        html = html.replace("</body>", SHOW_TAB, 1)
    html_path = os.path.join(out, name + ".html")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(html)
    return screenshot(html_path, os.path.join(out, name + ".png"))


def render_all(out, report_path=REPORT, shots=True):
    """Render the page for each answer (known, unknown); with shots, write the four PNGs.
    Returns {"known": html, "unknown": html, "png": [paths]}."""
    os.makedirs(out, exist_ok=True)
    report = load_report(report_path)
    done = {"png": []}
    for kind, answer in sorted(ANSWERS.items()):
        html = render(analysis_of(results_with(report, answer)))
        done[kind] = html
        if shots:
            done["png"].append(page(out, "cape-report-" + kind, html, tab=True))
            done["png"].append(page(out, "cape-overview-" + kind, html, tab=False))
    return done


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("BUILD") or os.path.join(TOP, "build"))
    ap.add_argument("--report", default=REPORT, help="a CAPE report.json(.gz)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mf-cape-web-") as work:
        setup(work)
        done = render_all(a.out, a.report)
    what = {"cape-report-known": "the Family (malfam) tab, a known family and its probability",
            "cape-report-unknown": "the same tab, an unknown answer",
            "cape-overview-known": "the Quick Overview, malfam's detection badge beside CAPE's",
            "cape-overview-unknown": "the Quick Overview of the unknown answer (no badge)"}
    print("CAPE's analysis page (%s) with the malfam tab:" % os.path.basename(a.report))
    for png in done["png"]:
        print("  %-44s %s" % (png, what[os.path.basename(png)[:-4]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
