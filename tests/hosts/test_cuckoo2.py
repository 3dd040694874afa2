"""Our Cuckoo 2.0.7 modules inside Cuckoo 2.0.7's real plugin runners.

The real cuckoo package (../shared/hosts/cuckoo-2.0.7, copied to a temp dir) gets our modules
from our real installer (hostinstall.py install-cuckoo --pkg --cwd); a temp CWD holds
storage/analyses/N/logs/*.bson written by gen_bson_logs.py from a real Cuckoo 2 report; then
python2.7 runs cuckoo2_run.py, which does what `cuckoo process -r N` does (process_task_range:
RunProcessing -> RunSignatures -> RunReporting) against the real malfamd with a small model
trained here. Third-party libraries Cuckoo imports but this path never calls are inert modules
in cuckoo2_stubs/ (../shared/hosts/README.md); six, dateutil, bson, pymongo and sqlalchemy are
Debian's pure-Python packages.

    cd /work/wt-cuckoo2 && BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/hosts/test_cuckoo2.py
"""

import glob
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
SHARED = os.path.join(TOP, "..", "shared")
MF_DATA = os.environ.get("MF_DATA") or os.path.join(SHARED, "data")
CUCKOO_SRC = os.environ.get("CUCKOO207") or os.path.join(SHARED, "hosts", "cuckoo-2.0.7")
GEN_BSON = os.path.join(SHARED, "tools", "gen_bson_logs.py")
BUILD = os.environ.get("BUILD") or os.path.join(TOP, "build")
DEB = "/usr/lib/python3/dist-packages"
# Debian 12's pure-Python packages whose source also runs on 2.7 (what they are: README above)
DEB_MODULES = {"six.py": "python3-six", "dateutil": "python3-dateutil", "bson": "python3-bson",
               "pymongo": "python3-pymongo", "gridfs": "python3-gridfs",
               "sqlalchemy": "python3-sqlalchemy"}
REPORTS = {"cuckoo207_benign_cmdkey.json": 71, "cuckoo20dev_demo_icqw3.json.gz": 3,
           "cuckoo207_sodinokibi_nocalls.json": 18}
SCORE_KEYS = ("families", "calls", "unknown", "model", "mode")

PY2_HELP = ("python2.7 is needed to run Cuckoo 2.0.7 (Python 2 only): `pyenv install 2.7.18` "
            "(standard library only is enough), or point PYTHON2=/path/to/python2.7 at one")


def find_python2():
    tried = []
    cands = [os.environ.get("PYTHON2")]
    cands += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7")))
    cands += sorted(glob.glob("/root/.pyenv/versions/2.7*/bin/python2.7"))
    cands += [shutil.which("python2.7"), shutil.which("python2")]
    for exe in cands:
        if not exe or exe in tried:
            continue
        tried.append(exe)
        try:
            out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 universal_newlines=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.strip() == "(2, 7)":
            return exe
    pytest.fail("no working python2.7 (tried %s). %s" % (", ".join(tried) or "nothing", PY2_HELP),
                pytrace=False)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, **kw)
    if r.returncode != 0:
        pytest.fail("%s failed (%d):\n%s" % (" ".join(cmd), r.returncode, r.stdout[-3000:]),
                    pytrace=False)
    return r.stdout


@pytest.fixture(scope="module")
def host():
    """python2.7, a temp site dir holding a copy of the real cuckoo package, and PYTHONPATH."""
    py2 = find_python2()
    if not os.path.isfile(os.path.join(CUCKOO_SRC, "cuckoo", "core", "plugins.py")):
        pytest.fail("no Cuckoo 2.0.7 code at %s (../shared/hosts/README.md)" % CUCKOO_SRC,
                    pytrace=False)
    missing = [pkg for name, pkg in sorted(DEB_MODULES.items())
               if not os.path.exists(os.path.join(DEB, name))]
    if missing:
        pytest.fail("apt-get install %s (Debian's pure-Python packages, run by python2.7 here)"
                    % " ".join(sorted(set(missing))), pytrace=False)
    top = tempfile.mkdtemp(prefix="mfc2-")
    site, deb = os.path.join(top, "site"), os.path.join(top, "deb")
    os.makedirs(deb)
    shutil.copytree(os.path.join(CUCKOO_SRC, "cuckoo"), os.path.join(site, "cuckoo"))
    for name in DEB_MODULES:
        os.symlink(os.path.join(DEB, name), os.path.join(deb, name))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [site, deb, os.path.join(HERE, "cuckoo2_stubs")]), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONHOME", None)
    yield {"py2": py2, "top": top, "pkg": os.path.join(site, "cuckoo"), "env": env}
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def model(host):
    for exe in ("malfam", "malfamd"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            pytest.fail("no %s/%s: run make -j2 all (or set BUILD)" % (BUILD, exe), pytrace=False)
    d = os.path.join(MF_DATA, "mal-api-2019-808")
    out = os.path.join(host["top"], "M")
    run([os.path.join(BUILD, "malfam"), "train", "--calls", os.path.join(d, "calls.txt.gz"),
         "--index", os.path.join(d, "index.csv"), "--api-index", os.path.join(d, "ApiIndex.txt"),
         "--epochs", "1", "--hidden", "16", "--embed", "8", "--dense", "16", "--max-len", "200",
         "--out", out, "--quiet"])
    return out


@pytest.fixture(scope="module")
def daemon(model):
    d = tempfile.mkdtemp(prefix="mf")          # short: Unix socket paths are ~107 bytes
    sock, conf = os.path.join(d, "d.sock"), os.path.join(d, "d.conf")
    with open(conf, "w") as f:
        f.write("[malfamd]\nsocket = %s\nmodel = %s\nallowed_roots = %s\nlog_level = warn\n"
                % (sock, model, os.path.realpath(tempfile.gettempdir())))
    log = open(os.path.join(d, "d.log"), "w+")
    proc = subprocess.Popen([os.path.join(BUILD, "malfamd"), "-c", conf, "--foreground"],
                            stdout=log, stderr=subprocess.STDOUT)
    end = time.time() + 20
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sock)
            s.close()
            break
        except OSError:
            s.close()
            if proc.poll() is not None or time.time() > end:
                log.seek(0)
                pytest.fail("malfamd did not start: " + log.read()[-500:], pytrace=False)
            time.sleep(0.05)
    yield {"socket": sock, "model": model, "dir": d}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(d, ignore_errors=True)


def set_section(path, section, values):
    """Set keys of one [section] of an INI file, as its owner would in an editor."""
    with open(path) as f:
        lines = f.read().split("\n")
    cur, done = None, set()
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            cur = s[1:-1]
        elif cur == section and "=" in s and not s.startswith("#"):
            key = s.split("=", 1)[0].strip()
            if key in values:
                lines[i] = "%s = %s" % (key, values[key])
                done.add(key)
    assert done == set(values), "%s: [%s] lacks %s" % (path, section, set(values) - done)
    with open(path, "w") as f:
        f.write("\n".join(lines))


class Analysis(object):
    """A CWD with our modules installed and enabled, and one analysis folder."""

    def __init__(self, host, report, socket_path, reporting=True, jsondump_calls=True,
                 task_options=None, processing=None):
        self.host = host
        self.task_options = task_options
        # a submitted task is the database's first one
        self.task_id = 1 if task_options else REPORTS[report]
        self.report = os.path.join(MF_DATA, "reports", report)
        self.cwd = tempfile.mkdtemp(prefix="cwd-", dir=host["top"])
        self.analysis = os.path.join(self.cwd, "storage", "analyses", str(self.task_id))
        run([host["py2"], os.path.join(HERE, "cuckoo2_run.py"), "init", self.cwd],
            env=host["env"])
        self.install_log = run([sys.executable, os.path.join(TOP, "cuckoo_module",
                                                              "hostinstall.py"),
                                "install-cuckoo", "--pkg", host["pkg"], "--cwd", self.cwd])
        assert "appended  %s" % os.path.join(self.cwd, "conf", "processing.conf") in \
            self.install_log, self.install_log
        conf = os.path.join(self.cwd, "conf")
        set_section(os.path.join(conf, "processing.conf"), "malfam",
                    dict({"enabled": "yes", "socket": socket_path}, **(processing or {})))
        set_section(os.path.join(conf, "reporting.conf"), "malfam",
                    {"enabled": "yes" if reporting else "no", "socket": socket_path})
        set_section(os.path.join(conf, "reporting.conf"), "mongodb", {"enabled": "yes"})
        set_section(os.path.join(conf, "reporting.conf"), "jsondump",
                    {"calls": "yes" if jsondump_calls else "no"})
        run([sys.executable, GEN_BSON, self.report, os.path.join(self.analysis, "logs")])

    def process(self):
        out = os.path.join(self.cwd, "seen.json")
        t = time.time()
        cmd = [self.host["py2"], os.path.join(HERE, "cuckoo2_run.py"), "process", self.cwd,
               str(self.task_id), out, "--mongo"]
        if self.task_options:
            cmd += ["--submit", "http://example.invalid/", self.task_options]
        run(cmd, env=self.host["env"], timeout=300)
        self.seconds = time.time() - t
        with open(out) as f:
            self.seen = json.load(f)
        with open(os.path.join(self.analysis, "reports", "report.json")) as f:
            self.report_json = json.load(f)
        return self.seen


def score(model, report):
    out = run([os.path.join(BUILD, "malfam"), "score", "--json", "--model", model, "--top", "3",
               report])
    answer = json.loads(out)
    assert answer.pop("path") == report
    return answer


def pick(answer):
    return dict((k, answer.get(k)) for k in SCORE_KEYS)


def names(entries):
    return [e["class"] for e in entries]


def errors_from_us(seen):
    return [r for r in seen["log"] if r["exc"] or ("malfam" in r["name"] and
                                                   r["level"] in ("ERROR", "CRITICAL"))]


@pytest.mark.parametrize("report", ["cuckoo207_benign_cmdkey.json",
                                    "cuckoo20dev_demo_icqw3.json.gz"])
def test_real_runner_answer_equals_malfam_score(host, daemon, report):
    a = Analysis(host, report, daemon["socket"])
    seen = a.process()
    want = pick(score(daemon["model"], a.report))
    assert want["calls"] > 0

    # processing: streamed from the real lazy call lists, the same answer as `malfam score`
    proc = seen["results_before_reporting"]["malfam"]
    assert proc["via"] == "stream", proc
    assert pick(proc) == want
    with gzip.open(a.report, "rt") if a.report.endswith(".gz") else open(a.report) as f:
        original = json.load(f)
    assert proc["sent_calls"] == sum(len(p["calls"]) for p in original["behavior"]["processes"])
    # iterating the lazy lists left them whole for Cuckoo's own consumers (jsondump)
    assert ([(p["pid"], [c["api"] for c in p["calls"]])
             for p in a.report_json["behavior"]["processes"]] ==
            [(p["pid"], [c["api"] for c in p["calls"]])
             for p in original["behavior"]["processes"]])

    # reporting: the daemon scored report.json and wrote the answer into it
    final = seen["results"]["malfam"]
    assert final["via"] == "report", final
    assert pick(final) == want
    assert pick(a.report_json["malfam"]) == want
    assert "via" not in a.report_json["malfam"]     # the daemon's own write, not jsondump's

    # MongoDB stores what the reporting module left in results
    docs = seen["mongo"]["analysis"]
    assert len(docs) == 1 and docs[0]["info_id"] == a.task_id
    assert docs[0]["malfam"] == final
    assert seen["mongo"]["calls_chunks"] >= 1

    assert errors_from_us(seen) == []


def test_real_runner_module_order(host, daemon):
    a = Analysis(host, "cuckoo207_benign_cmdkey.json", daemon["socket"])
    seen = a.process()
    proc = names(seen["processing"])
    assert proc.index("Malfam") > proc.index("BehaviorAnalysis")
    ours = [e for e in seen["processing"] if e["class"] == "Malfam"][0]
    assert ours == {"class": "Malfam", "module": "cuckoo.processing.malfam", "order": 2,
                    "key": "malfam", "kept": True, "enabled": True}

    rep = seen["reporting"]
    order = names(rep)
    assert order.index("JsonDump") < order.index("MalfamReport") < order.index("MongoDB")
    ours = rep[order.index("MalfamReport")]
    assert ours["module"] == "cuckoo.reporting.malfam" and ours["order"] == 1
    assert ours["report_json_before"] and ours["malfam_changed"]
    # everything after us sees our answer; only we changed it
    assert [e["class"] for e in rep if e["malfam_changed"]] == ["MalfamReport"]


def test_real_runner_daemon_down(host, daemon):
    gone = os.path.join(daemon["dir"], "nobody.sock")
    a = Analysis(host, "cuckoo207_benign_cmdkey.json", gone)
    seen = a.process()
    for where in (seen["results_before_reporting"]["malfam"], seen["results"]["malfam"],
                  a.report_json["malfam"], seen["mongo"]["analysis"][0]["malfam"]):
        assert where["error"].startswith("MF_EUNAVAILABLE"), where
        assert "families" not in where
    # the analysis itself went through: behavior processed, report.json and Mongo written
    assert "behavior" in a.report_json and a.report_json["info"]["id"] == a.task_id
    assert errors_from_us(seen) == []
    warned = [r["msg"] for r in seen["log"] if "malfam" in r["name"] and r["level"] == "WARNING"]
    assert len(warned) == 2 and all("MF_EUNAVAILABLE" in m for m in warned), warned


@pytest.mark.parametrize("how", ["conf", "task"])
def test_real_runner_jsondump_without_calls(host, daemon, how):
    """jsondump leaves the calls out (reporting.conf [jsondump] calls = no, or the task
    option json.calls=0 of `cuckoo submit -o`)."""
    if how == "conf":
        a = Analysis(host, "cuckoo207_benign_cmdkey.json", daemon["socket"],
                     jsondump_calls=False)
    else:
        a = Analysis(host, "cuckoo207_benign_cmdkey.json", daemon["socket"],
                     task_options="json.calls=0")
    seen = a.process()
    assert seen["results"]["info"]["options"] == ("json.calls=0" if how == "task" else "")
    want = pick(score(daemon["model"], a.report))
    assert all(p["calls"] == [] for p in a.report_json["behavior"]["processes"])
    # report.json has no calls to score: the processing answer stays, everywhere
    proc = seen["results_before_reporting"]["malfam"]
    assert pick(proc) == want and proc["via"] == "stream"
    assert seen["results"]["malfam"] == proc
    assert a.report_json["malfam"] == proc              # written by jsondump
    assert seen["mongo"]["analysis"][0]["malfam"] == proc
    assert errors_from_us(seen) == []


def test_real_runner_processing_only(host, daemon):
    """Reporting module off (its default): the processing answer is what every sink holds.
    A [malfam] value set in processing.conf reaches the module through Cuckoo's typed config
    (top = 2, timeout = 2.5)."""
    a = Analysis(host, "cuckoo207_benign_cmdkey.json", daemon["socket"], reporting=False,
                 processing={"top": "2", "timeout": "2.5"})
    seen = a.process()
    want = pick(score(daemon["model"], a.report))
    want["families"] = want["families"][:2]
    proc = seen["results"]["malfam"]
    assert pick(proc) == want
    assert "MalfamReport" not in [e["class"] for e in seen["reporting"] if e["malfam_changed"]]
    assert a.report_json["malfam"] == proc
    assert seen["mongo"]["analysis"][0]["malfam"] == proc



def test_issue_13_cuckoo2_report_without_calls_read_once(host, daemon):
    """A real 2.0.7 analysis whose sample process is missing (lsass.exe only, no calls):
    report.json, written by jsondump with the calls, holds all of them, so its "no trace"
    answer is final; the reporting module used to stream the (lazy, re-parsed) calls again
    for the same answer, as CAPE must for its empty-looking lists."""
    a = Analysis(host, "cuckoo207_sodinokibi_nocalls.json", daemon["socket"])
    seen = a.process()
    want = score(daemon["model"], a.report)
    assert want["calls"] == 0 and want["families"] == [] and want["note"] == "no trace"
    assert pick(seen["results_before_reporting"]["malfam"]) == pick(want)
    final = seen["results"]["malfam"]
    assert pick(final) == pick(want)
    assert final["via"] == "report", final
    assert "sent_calls" not in final
    assert a.report_json["malfam"] == want
    assert seen["mongo"]["analysis"][0]["malfam"] == final
    assert not [r for r in seen["log"] if "streaming them" in r["msg"]]
    assert errors_from_us(seen) == []
