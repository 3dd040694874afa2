"""hostinstall.py (make install-cuckoo / install-cape) on fake host trees: files land where
the hosts load them, the edits are marked, a second install changes nothing, and uninstall
gives back the original tree byte for byte. Plus `make install DESTDIR=...`."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
HOSTINSTALL = os.path.join(TOP, "cuckoo_module", "hostinstall.py")

SUMMARY = """{% block content %}
<div class="row">
    <div class="col-md-12">{% include "analysis/pages/summary/_info.html" %}</div>
    <div class="col-md-12">{% include "analysis/pages/summary/_signatures.html" %}</div>
</div>
{% endblock %}
"""
REPORT = """<ul>
    {% if analysis.misp %}<li>MISP</li>{% endif %}
    {% if analysis.classification %}
        <li>Classification</li>
    {% endif %}
</ul>
<div class="tab-content">
    {% if analysis.classification %}
    <div class="tab-pane fade" id="classification"></div>
    {% endif %}
</div>
"""


def tree(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(text)


def snapshot(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def run(*args):
    p = subprocess.run([sys.executable, HOSTINSTALL] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    return p.stdout


@pytest.fixture
def cuckoo(tmp_path):
    root = str(tmp_path)
    tree(root, {
        "site-packages/cuckoo/__init__.py": "",
        "site-packages/cuckoo/processing/__init__.py": "",
        "site-packages/cuckoo/reporting/__init__.py": "",
        "site-packages/cuckoo/web/templates/analysis/pages/summary/index.html": SUMMARY,
        "cwd/conf/processing.conf": "[behavior]\nenabled = yes\n",
        "cwd/conf/reporting.conf": "[jsondump]\nenabled = yes\nindent = 4\ncalls = yes\n",
    })
    return root


def test_install_cuckoo_and_back(cuckoo):
    before = snapshot(cuckoo)
    pkg = os.path.join(cuckoo, "site-packages", "cuckoo")
    cwd = os.path.join(cuckoo, "cwd")
    out = run("install-cuckoo", "--pkg", pkg, "--cwd", cwd)
    assert "pip install/upgrade of Cuckoo removes them" in out
    for rel in ("processing/malfam.py", "reporting/malfam.py",
                "web/templates/analysis/pages/summary/_malfam.html"):
        assert os.path.isfile(os.path.join(pkg, rel)), rel
    assert os.path.isfile(os.path.join(cuckoo, "site-packages", "malfam_client.py"))
    summary = open(os.path.join(pkg, "web/templates/analysis/pages/summary/index.html")).read()
    lines = summary.splitlines()
    i = [n for n, l in enumerate(lines) if "_malfam.html" in l]
    assert len(i) == 1 and "_info.html" in lines[i[0] + 1] and "{# malfam #}" in lines[i[0]]
    conf = open(os.path.join(cwd, "conf", "processing.conf")).read()
    assert conf.startswith("[behavior]\nenabled = yes\n") and "[malfam]" in conf
    after = snapshot(cuckoo)
    assert "unchanged" in run("install-cuckoo", "--pkg", pkg, "--cwd", cwd)
    assert snapshot(cuckoo) == after                   # installing twice changes nothing
    out = run("uninstall-cuckoo", "--pkg", pkg, "--cwd", cwd)
    assert "removed" in out and "restored" in out
    assert snapshot(cuckoo) == before


def test_install_cuckoo_finds_the_package_through_its_python(cuckoo):
    pkg = os.path.join(cuckoo, "site-packages", "cuckoo")
    py = os.path.join(cuckoo, "python")
    with open(py, "w") as f:
        f.write("#!/bin/sh\nPYTHONPATH=%s exec %s \"$@\"\n"
                % (os.path.join(cuckoo, "site-packages"), sys.executable))
    os.chmod(py, 0o755)
    run("install-cuckoo", "--python", py)
    assert os.path.isfile(os.path.join(pkg, "processing", "malfam.py"))
    run("uninstall-cuckoo", "--python", py)
    assert not os.path.exists(os.path.join(pkg, "processing", "malfam.py"))


def test_installed_cuckoo_conf_is_what_the_module_reads(cuckoo):
    """The appended [malfam] block parses and config2() sees every key with the schema."""
    pkg = os.path.join(cuckoo, "site-packages", "cuckoo")
    cwd = os.path.join(cuckoo, "cwd")
    run("install-cuckoo", "--pkg", pkg, "--cwd", cwd)
    from cuckoo.common import config as cc
    from runner import load_as
    load_as("cuckoo2_reporting.py", "cuckoo.reporting.malfam")
    cc.CWD = cwd
    try:
        o = cc.config2("reporting", "malfam")
        assert cc.config("reporting:jsondump:calls") is True
    finally:
        cc.CWD = None
        cc._cache.clear()
    assert o["enabled"] is False and o["write_back"] is True and o["top"] == 3


@pytest.mark.parametrize("services", [None, "CUSTOM_SERVICES = ['mine']\n"
                                      "def handle_custom_service(s, t, h):\n"
                                      "    return {'x': 1}, s\n"])
def test_install_cape_and_back(tmp_path, services):
    root = str(tmp_path)
    files = {"modules/reporting/__init__.py": "", "modules/processing/__init__.py": "",
             "custom/__init__.py": "",
             "web/templates/analysis/report.html": REPORT}
    if services:
        files["custom/analysis_services.py"] = services
    tree(root, files)
    before = snapshot(root)
    out = run("install-cape", "--cape", root)
    for rel in ("modules/processing/malfam.py", "custom/conf/processing.conf.d/malfam.conf",
                "modules/reporting/malfam.py", "custom/malfam_client.py",
                "custom/conf/reporting.conf.d/malfam.conf",
                "web/templates/analysis/malfam/index.html"):
        assert os.path.isfile(os.path.join(root, rel)), rel
    report = open(os.path.join(root, "web/templates/analysis/report.html")).read()
    lines = report.splitlines()
    nav = [n for n, l in enumerate(lines) if "malfam/_nav.html" in l]
    pane = [n for n, l in enumerate(lines) if "malfam/_pane.html" in l]
    assert nav and pane and "<li>Classification" in lines[nav[0] + 2]
    assert "tab-pane" in lines[pane[0] + 2]
    ns = {}
    exec(open(os.path.join(root, "custom/analysis_services.py")).read(), ns)
    assert "malfam" in ns["CUSTOM_SERVICES"] and callable(ns["handle_custom_service"])
    if services:
        assert "mine" in ns["CUSTOM_SERVICES"] and ns["handle_custom_service"]("a", 1, "h")[0]
    assert "report.html is a tracked CAPE file" in out
    run("uninstall-cape", "--cape", root)
    assert snapshot(root) == before


def test_install_cape_keeps_a_tuned_drop_in(tmp_path):
    root = str(tmp_path)
    tree(root, {"modules/reporting/__init__.py": "", "modules/processing/__init__.py": "",
                "custom/conf/reporting.conf.d/malfam.conf": "[malfam]\nenabled = yes\ntop = 5\n"})
    assert "kept" in run("install-cape", "--cape", root)
    assert "top = 5" in open(os.path.join(root, "custom/conf/reporting.conf.d/malfam.conf")).read()


def test_make_install_destdir(tmp_path):
    build = os.environ.get("BUILD") or os.path.join(TOP, "build")
    missing = [p for p in ("conf/malfamd.conf", "conf/malfamd.service")
               if not os.path.exists(os.path.join(TOP, p))]
    if not os.path.exists(os.path.join(build, "malfamd")):
        missing.append(os.path.join(build, "malfamd") + " (make all; make check sets BUILD)")
    if missing:
        pytest.fail("make install needs: %s" % ", ".join(missing), pytrace=False)
    dest = str(tmp_path / "stage")
    p = subprocess.run(["make", "-s", "-C", TOP, "install", "BUILD=" + build, "DESTDIR=" + dest,
                        "PREFIX=/usr/local"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert p.returncode == 0, p.stdout
    for rel in ("usr/local/bin/malfam", "usr/local/sbin/malfamd", "usr/local/lib/libmalfam.a",
                "usr/local/include/malfam/mf.h", "usr/local/share/man/man1/malfam.1",
                "usr/local/share/man/man5/malfamd.conf.5", "usr/local/share/man/man8/malfamd.8",
                "usr/local/etc/malfam/malfamd.conf", "usr/local/lib/systemd/system/malfamd.service",
                "usr/local/etc/malfam/retrain.conf",
                "usr/local/lib/systemd/system/malfam-retrain.service",
                "usr/local/lib/systemd/system/malfam-retrain.timer",
                "usr/local/share/malfam/cuckoo_module/malfam_client.py"):
        assert os.path.isfile(os.path.join(dest, rel)), rel
    assert not os.path.exists(os.path.join(dest, "usr/local/include/malfam/internal.h"))
    # exactly the public headers: malfam.h and the ones it includes, no internal.h or *_priv.h
    with open(os.path.join(TOP, "core", "malfam.h")) as f:
        public = {l.split('"')[1] for l in f if l.startswith('#include "')} | {"malfam.h"}
    assert set(os.listdir(os.path.join(dest, "usr/local/include/malfam"))) == public
    assert os.access(os.path.join(dest, "usr/local/sbin/malfamd"), os.X_OK)
    unit = open(os.path.join(dest, "usr/local/lib/systemd/system/malfamd.service")).read()
    execs = [l for l in unit.splitlines() if l.startswith("ExecStart")]
    assert execs and all("/usr/local/sbin/malfamd " in l and
                         "-c /usr/local/etc/malfam/malfamd.conf" in l for l in execs), execs
    # the retraining unit runs the installed malfam and reads the installed settings
    unit = open(os.path.join(dest, "usr/local/lib/systemd/system/malfam-retrain.service")).read()
    execs = [l.split("=", 1)[1].lstrip("-") for l in unit.splitlines() if l.startswith("Exec")]
    progs = {e.split()[0] for e in execs}
    assert progs <= {"/usr/local/bin/malfam", "/bin/rm", "/bin/ln", "/bin/mv", "/bin/sh"}, progs
    assert [e.split()[1] for e in execs if e.startswith("/usr/local/bin/malfam ")] == \
        ["train", "reload"], execs
    assert "EnvironmentFile=-/usr/local/etc/malfam/retrain.conf" in unit.splitlines()
    # the binary's own default is the installed file (malfamd --check-config with no -c)
    p = subprocess.run([os.path.join(dest, "usr/local/sbin/malfamd"), "--check-config"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 2 and "/usr/local/etc/malfam/malfamd.conf" in p.stdout, p.stdout
    p = subprocess.run(["make", "-s", "-C", TOP, "uninstall", "DESTDIR=" + dest,
                        "PREFIX=/usr/local"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert p.returncode == 0, p.stdout
    left = [os.path.relpath(os.path.join(d, n), dest) for d, _, ns in os.walk(dest) for n in ns]
    assert sorted(left) == ["usr/local/etc/malfam/malfamd.conf", "usr/local/etc/malfam/retrain.conf"]


def test_make_uninstall_stops_the_units_first(tmp_path):
    """On the running system (no DESTDIR), uninstall disables and stops the timer, the
    retraining service and the daemon while their unit files still exist, then has systemd
    reload its units; under DESTDIR it never calls systemctl."""
    build = os.environ.get("BUILD") or os.path.join(TOP, "build")
    if not os.path.exists(os.path.join(build, "malfamd")):
        pytest.fail("make uninstall test needs %s/malfamd (make all)" % build, pytrace=False)
    prefix, log = tmp_path / "prefix", tmp_path / "systemctl.log"
    fake = tmp_path / "systemctl"
    units = prefix / "lib/systemd/system"
    # records its arguments and whether the timer's unit file was still there when called
    fake.write_text("#!/bin/sh\necho \"$* $(test -e %s/malfam-retrain.timer && echo present "
                    "|| echo gone)\" >> %s\n" % (units, log))
    fake.chmod(0o755)
    common = ["make", "-s", "-C", TOP, "BUILD=" + build, "PREFIX=" + str(prefix)]
    p = subprocess.run(common + ["install-files"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    # systemd running, this unit directory one it reads: told, while the units are there
    told = ["SYSTEMCTL=" + str(fake), "SYSTEMD_RUNNING=yes", "SYSTEMD_UNITDIRS=" + str(units)]
    p = subprocess.run(common + ["uninstall"] + told, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    assert log.read_text().splitlines() == [
        "disable --now malfam-retrain.timer malfam-retrain.service malfamd.service present",
        "daemon-reload gone"]
    assert not (units / "malfam-retrain.timer").exists()
    # never told: a staged uninstall (DESTDIR), a unit directory systemd does not read (another
    # installation's malfamd stays up), systemd not running, or no unit of ours there
    log.unlink()
    for extra in (["DESTDIR=" + str(tmp_path / "d")], ["SYSTEMD_UNITDIRS=/etc/systemd/system"],
                  ["SYSTEMD_RUNNING="], []):
        subprocess.run(common + ["install-files"], stdout=subprocess.PIPE, check=True)
        if not extra:  # the last: our unit file gone before uninstall
            (units / "malfamd.service").unlink()
        p = subprocess.run(common + ["uninstall"] + told + extra, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        assert p.returncode == 0, p.stdout
        assert not log.exists(), (extra, log.read_text())


def test_client_classify_takes_a_mode(fake, tmp_path):
    """The packaged client (import malfam_client) passes a scoring mode to the daemon, and
    sends none when the caller names none (the daemon's configured mode)."""
    import malfam_client as mc
    path = tmp_path / "report.json"
    path.write_text('{"behavior": {"processes": []}}')
    c = mc.Client(fake.path, 2)
    c.classify(str(path), mode="knn")
    assert fake.requests[-1]["mode"] == "knn"
    c.classify(str(path))
    assert "mode" not in fake.requests[-1]
    c.classify_stream([{"pid": 1, "calls": [{"api": "NtClose"}]}], mode="linear")
    assert fake.requests[-1]["mode"] == "linear"
