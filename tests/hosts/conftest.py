"""CAPEv2's real plugin runners with our adapters, as `make install-cape` installs them.

Each test gets a temporary copy of the parts of ../shared/hosts/capev2 the runners need (read
in place otherwise, never copied into the repo), our real installer run on it, a real CAPE
report as storage/analyses/<id>/reports/report.json, and a real malfamd with a small model
trained here. The analysis runs in a child /usr/bin/python3 (CAPE reads its config at import
time): this file is also that child's driver (`python3 conftest.py TREE TASK_ID OUT OPTIONS`).

What the test supplies, and why (the shared tree's README, "known facts"):
- inert lib.cuckoo.core.database / data.task / data.machines: Debian's SQLAlchemy is 1.4,
  CAPE's database layer needs 2.0, and the reporting runner never touches the task database;
- dev_utils.mongodb / dev_utils.elasticsearchdb and the `elasticsearch` client: the database
  connections, replaced by recorders. CAPE's MongoDB and ElasticSearchDB modules run their
  real code up to the insert / index call, which records the document it is handed;
- modules/processing/__init__.py: a real checkout has it (the shared tree holds only
  modules/reporting). No CAPE processing module other than ours is run: `behavior` comes from
  the real report, as when CAPE reprocesses a task whose logs are gone.
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
MF_DATA = os.environ.get("MF_DATA") or os.path.join(TOP, "..", "shared", "data")
CAPE_SRC = os.environ.get("MF_CAPE") or os.path.join(TOP, "..", "shared", "hosts", "capev2")
PYTHON = os.environ.get("CAPE_PYTHON") or "/usr/bin/python3"

# Debian packages CAPEv2's reporting import chain needs (Makefile DEB_PKGS has them).
CAPE_DEBS = ("python3-pymongo python3-sqlalchemy python3-tz python3-pefile python3-magic "
             "python3-yara python3-dnspython python3-tldextract python3-cachetools "
             "python3-jinja2 python3-chardet python3-packaging python3-pycryptodome "
             "python3-olefile python3-pil").split()

# Parts of the CAPE tree the runners and the installer use (web/static is not needed).
CAPE_PARTS = ("lib", "modules", "conf", "custom", "data", "utils", "web/templates")

INERT = {
    "lib/cuckoo/core/database.py": (
        "# inert stand-in (tests/hosts/conftest.py): CAPE's needs SQLAlchemy 2.0\n"
        "class _Database(object):\n"
        "    def __init__(self, *a, **k):\n        pass\n"
        "    def __getattr__(self, name):\n"
        "        raise RuntimeError('task database used by the reporting run: %s' % name)\n"
        "Database = _Database\n"),
    "lib/cuckoo/core/data/task.py": (
        "# inert stand-in (tests/hosts/conftest.py)\n"
        "class Task(object):\n    pass\n"
        "TASK_REPORTED = 'reported'\nTASK_COMPLETED = 'completed'\n"
        "TASK_FAILED_PROCESSING = 'failed_processing'\nTASK_BANNED = 'banned'\n"),
    "lib/cuckoo/core/data/machines.py": (
        "# inert stand-in (tests/hosts/conftest.py)\n"
        "class Machine(object):\n    pass\n"),
}

RECORDERS = {
    "dev_utils/__init__.py": "",
    "dev_utils/mongodb.py": (
        "# recorder (tests/hosts/conftest.py): what CAPE's mongodb module would insert\n"
        "INSERTED = []\n"
        "class _Res(object):\n"
        "    def __init__(self, i):\n        self.inserted_id = i\n"
        "def mongo_insert_one(collection, doc):\n"
        "    INSERTED.append((collection, doc))\n"
        "    return _Res('%s-%d' % (collection, len(INSERTED)))\n"
        "def mongo_collection_names():\n    return ['cuckoo_schema']\n"
        "def mongo_find_one(collection, *a, **k):\n"
        "    return {'version': '1'} if collection == 'cuckoo_schema' else None\n"
        "def _noop(*a, **k):\n    return None\n"
        "mongo_create_index = mongo_delete_data = mongo_delete_many = mongo_update_one = _noop\n"),
    "dev_utils/elasticsearchdb.py": (
        "# recorder (tests/hosts/conftest.py): what CAPE's elasticsearchdb module would index\n"
        "INDEXED = []\n"
        "ANALYSIS_INDEX_MAPPING_SETTINGS = {}\n"
        "class _Indices(object):\n"
        "    def create(self, *a, **k):\n        return None\n"
        "class _Handler(object):\n"
        "    indices = _Indices()\n"
        "    def index(self, index=None, body=None, **k):\n"
        "        INDEXED.append((index, body))\n"
        "elastic_handler = _Handler()\n"
        "def daily_analysis_index_exists():\n    return True\n"
        "def daily_calls_index_exists():\n    return True\n"
        "def get_daily_analysis_index():\n    return 'cape-analysis'\n"
        "def get_daily_calls_index():\n    return 'cape-calls'\n"
        "def delete_analysis_and_related_calls(*a, **k):\n    return None\n"),
    "_stubs/elasticsearch/__init__.py": "",
    "_stubs/elasticsearch/exceptions.py": (
        "class AuthorizationException(Exception):\n    pass\n"
        "class ConnectionError(Exception):\n    pass\n"
        "class RequestError(Exception):\n    pass\n"),
    "_stubs/elasticsearch/helpers.py": (
        "def parallel_bulk(client, actions, **k):\n"
        "    for n, _ in enumerate(actions):\n"
        "        yield True, {'index': {'_id': 'calls-%d' % n}}\n"),
}

# The site's reporting.conf: both stores on (CAPE's default has them off).
SITE_REPORTING = "[mongodb]\nenabled = yes\n\n[elasticsearchdb]\nenabled = yes\n"


def _write(path, text):
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        os.makedirs(d)
    with open(path, "w") as f:
        f.write(text)


def _ini(section, values):
    return "[%s]\n%s" % (section, "".join("%s = %s\n" % kv for kv in sorted(values.items())))


def run_analysis(tree, task_id, out, options=""):
    """The child: load CAPE's real runners from `tree` and process one task."""
    sys.path[:0] = [tree, os.path.join(tree, "_stubs")]
    os.chdir(tree)
    import logging
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    import modules.processing
    import modules.reporting
    from lib.cuckoo.core.plugins import (RunProcessing, RunReporting, import_package,
                                         list_plugins)

    import_package(modules.processing)
    import_package(modules.reporting)
    analysis = os.path.join(tree, "storage", "analyses", str(task_id))
    with open(os.path.join(analysis, "reports", "report.json")) as f:
        results = json.load(f)
    results["statistics"] = {"processing": [], "signatures": [], "reporting": []}
    task = {"id": task_id, "category": "file", "options": options, "platform": "windows"}
    results = RunProcessing(task, results).run()
    errors = RunReporting(task, results).run()

    from dev_utils import elasticsearchdb, mongodb
    docs = [d for c, d in mongodb.INSERTED if c == "analysis"]
    report = {
        "reporting_errors": errors,
        "processing": [m.__name__ + ":" + str(m.order)
                       for m in sorted(list_plugins("processing"), key=lambda m: m.order)],
        "reporting": [s["name"] for s in results["statistics"]["reporting"]],
        "malfam": results.get("malfam"),
        "detections": results.get("detections"),
        "classification": results.get("classification"),
        "mongo": [{k: d.get(k) for k in ("malfam", "detections", "classification", "info")}
                  for d in docs],
        "elastic": [{k: b.get(k) for k in ("malfam", "detections", "classification")}
                    for _, b in elasticsearchdb.INDEXED],
    }
    with open(out, "w") as f:
        json.dump(report, f, default=str)


if __name__ == "__main__":
    run_analysis(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
    sys.exit(0)


import pytest  # noqa: E402  (not needed by the child)


def _missing_debs():
    return [p for p in CAPE_DEBS
            if subprocess.call(["dpkg", "-s", p], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) != 0]


@pytest.fixture(scope="session")
def cape_deps():
    missing = _missing_debs()
    if missing:
        pytest.fail("CAPEv2's import chain needs Debian packages: %s (make deps)"
                    % " ".join(missing), pytrace=False)
    if not os.path.isfile(os.path.join(CAPE_SRC, "lib", "cuckoo", "core", "plugins.py")):
        pytest.fail("no CAPEv2 tree at %s (set MF_CAPE)" % CAPE_SRC, pytrace=False)


@pytest.fixture(scope="session")
def build():
    b = os.environ.get("BUILD") or os.path.join(TOP, "build")
    for exe in ("malfam", "malfamd"):
        if not os.access(os.path.join(b, exe), os.X_OK):
            pytest.fail("no %s/%s (make all; make check sets BUILD)" % (b, exe), pytrace=False)
    return b


@pytest.fixture(scope="session")
def model(build, tmp_path_factory):
    d = os.path.join(MF_DATA, "mal-api-2019-808")
    out = str(tmp_path_factory.mktemp("model") / "m.model")
    r = subprocess.run([os.path.join(build, "malfam"), "train",
                        "--calls", os.path.join(d, "calls.txt.gz"),
                        "--index", os.path.join(d, "index.csv"),
                        "--api-index", os.path.join(d, "ApiIndex.txt"),
                        "--epochs", "1", "--hidden", "16", "--embed", "8", "--dense", "16",
                        "--max-len", "200", "--out", out, "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.returncode != 0:
        pytest.fail("malfam train failed: %s" % r.stdout[-500:], pytrace=False)
    return out


class Daemon(object):
    """build/malfamd on a temporary socket. unknown_threshold = 0: the one-epoch model's
    calibrated threshold calls every real CAPE report unknown, and the detection tests need
    a trusted answer (linear's novelty, p x combo similarity, is ~0.05 on them and never
    negative)."""

    def __init__(self, build, model, d):
        self.path = os.path.join(d, "malfamd.sock")
        conf = os.path.join(d, "malfamd.conf")
        _write(conf, "[malfamd]\nsocket = %s\nmodel = %s\nallowed_roots = %s\n"
                     "unknown_threshold = 0\nlog_level = warn\n"
               % (self.path, model, os.path.realpath(tempfile.gettempdir())))
        self.log = open(os.path.join(d, "malfamd.log"), "w+")
        self.proc = subprocess.Popen([os.path.join(build, "malfamd"), "-c", conf,
                                      "--foreground"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        end = time.time() + 20
        while not os.path.exists(self.path):
            if self.proc.poll() is not None or time.time() > end:
                self.log.seek(0)
                raise RuntimeError("malfamd did not start: " + self.log.read()[-500:])
            time.sleep(0.05)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def malfamd(build, model):
    d = tempfile.mkdtemp(prefix="mfh")
    daemon = Daemon(build, model, d)
    yield daemon
    daemon.close()
    shutil.rmtree(d, ignore_errors=True)


class Run(object):
    """One analysis through the real runners: ``out`` is what the child recorded,
    ``report`` the report.json on disk afterwards, ``log`` the child's output."""

    def __init__(self, tree, task_id, out, proc):
        self.tree = tree
        self.log = proc.stdout
        self.path = os.path.join(tree, "storage", "analyses", str(task_id), "reports",
                                 "report.json")
        if proc.returncode != 0:
            pytest.fail("CAPE run failed (%d):\n%s" % (proc.returncode, self.log[-3000:]),
                        pytrace=False)
        with open(out) as f:
            self.out = json.load(f)
        with open(self.path) as f:
            self.report = json.load(f)

    @property
    def mongo(self):
        assert len(self.out["mongo"]) == 1, self.out["mongo"]
        return self.out["mongo"][0]

    @property
    def elastic(self):
        assert len(self.out["elastic"]) == 1, self.out["elastic"]
        return self.out["elastic"][0]


@pytest.fixture
def cape(cape_deps, malfamd):
    """cape(report, processing={...}, reporting={...}, install_processing=True, socket=None,
    task_options="") runs one analysis of the real ``report`` (a name in ../shared/data/reports) and returns a
    Run. The dicts override our drop-ins' [malfam] keys, as a site's own drop-in would."""
    trees = []

    def run(report, processing=None, reporting=None, install_processing=True, socket=None,
            task_id=7, task_options=""):
        tree = tempfile.mkdtemp(prefix="mfcape")
        trees.append(tree)
        for part in CAPE_PARTS:
            shutil.copytree(os.path.join(CAPE_SRC, part), os.path.join(tree, part))
        for rel, text in list(INERT.items()) + list(RECORDERS.items()):
            _write(os.path.join(tree, rel), text)
        _write(os.path.join(tree, "modules", "processing", "__init__.py"), "")
        _write(os.path.join(tree, "conf", "reporting.conf"), SITE_REPORTING)
        inst = subprocess.run([PYTHON, os.path.join(TOP, "cuckoo_module", "hostinstall.py"),
                               "install-cape", "--cape", tree], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True)
        assert inst.returncode == 0, inst.stdout
        pmod = os.path.join(tree, "modules", "processing", "malfam.py")
        if not install_processing and os.path.exists(pmod):
            os.remove(pmod)
        sock = socket or malfamd.path
        for kind, over in (("processing", processing), ("reporting", reporting)):
            values = {"socket": sock}
            values.update(over or {})
            _write(os.path.join(tree, "custom", "conf", kind + ".conf.d", "zz-site.conf"),
                   _ini("malfam", values))
        reports = os.path.join(tree, "storage", "analyses", str(task_id), "reports")
        os.makedirs(reports)
        src = os.path.join(MF_DATA, "reports", report)
        opener = gzip.open if src.endswith(".gz") else open
        with opener(src, "rb") as f, open(os.path.join(reports, "report.json"), "wb") as g:
            shutil.copyfileobj(f, g)
        out = os.path.join(tree, "run.json")
        proc = subprocess.run([PYTHON, os.path.abspath(__file__), tree, str(task_id), out,
                               task_options],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=300)
        return Run(tree, task_id, out, proc)

    yield run
    for tree in trees:
        shutil.rmtree(tree, ignore_errors=True)
