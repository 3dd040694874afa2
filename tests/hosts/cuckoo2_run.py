# malfam - drive Cuckoo 2.0.7's real plugin runners under Python 2.7 (tests/hosts/test_cuckoo2.py).
# Part of malfam's host tests; docs/hosts.md, "Cuckoo 2.0.7, as the real runner shows it".
"""cuckoo2_run.py init CWD
cuckoo2_run.py process CWD TASK_ID OUT.json [--mongo] [--submit URL OPTIONS]

Run with python2.7 and PYTHONPATH = <copy of the cuckoo package's parent>, Debian's pure-Python
six/dateutil/bson/pymongo/sqlalchemy, tests/hosts/cuckoo2_stubs (in that order).

init     writes $CWD/conf/{cuckoo,processing,reporting}.conf with the defaults of Cuckoo's own
         config schema (what `cuckoo init` puts there; its Jinja templates cannot be rendered
         here) and the .cwd file.
process  checks processing.conf and reporting.conf as `cuckoo` start-up does
         (check_specific_config), then does what `cuckoo process -r TASK_ID` does
         (cuckoo/main.py process()): connect the task database, init_modules(), then the
         real process_task_range(), which runs
         RunProcessing -> RunSignatures -> RunReporting on storage/analyses/TASK_ID. Nothing of
         Cuckoo or of malfam is replaced; the runners' own methods are wrapped only to record
         what they do. With --mongo (and [mongodb] enabled in reporting.conf) MongoDB's
         database handle is a recording one (there is no server): the real MongoDB.run() goes
         all the way to its inserts. --submit first adds the task to Cuckoo's database
         (Database.add_url, as `cuckoo submit --url -o OPTIONS URL` does: add_path would need
         sflock's libmagic binding; it must get TASK_ID), so the runners see that task's
         options; without it the task is the bare dict process_task_range makes for an
         analysis folder the database does not know.
         OUT.json gets what was seen.
"""

import json
import logging
import os
import sys
import types


def init(cwd_dir):
    from cuckoo.common.config import Config
    from cuckoo.misc import set_cwd

    set_cwd(cwd_dir)
    conf = os.path.join(cwd_dir, "conf")
    if not os.path.isdir(conf):
        os.makedirs(conf)
    for name in ("cuckoo", "processing", "reporting"):
        lines = []
        for section, entries in sorted(Config.configuration[name].items()):
            if section in ("__star__", "*") or not isinstance(entries, dict):
                continue
            if section == "malfam":
                # our module, once installed, adds this to the schema when imported; `cuckoo
                # init` writes only its templates' sections, and the installer appends ours
                continue
            lines.append("[%s]" % section)
            for key, type_ in sorted(entries.items()):
                if key == "__section__":
                    continue
                value = type_.emit(type_.default)
                lines.append("%s = %s" % (key, "" if value is None else value))
            lines.append("")
        with open(os.path.join(conf, "%s.conf" % name), "w") as f:
            f.write("\n".join(lines))
    with open(os.path.join(cwd_dir, ".cwd"), "w") as f:
        f.write("malfam-test")


class Recorder(object):
    """A pymongo collection that keeps what it is given (insert, save, find_one)."""

    def __init__(self, name, store):
        self.name = name
        self.store = store

    def insert(self, doc):
        self.store.setdefault(self.name, []).append(doc)
        return "%s-%d" % (self.name, len(self.store[self.name]))

    save = insert

    def find_one(self, *args, **kwargs):
        return None

    def __getattr__(self, name):  # db.fs.files
        return Recorder(self.name + "." + name, self.store)


class RecordingDB(object):
    def __init__(self):
        self.store = {}

    def __getattr__(self, name):
        return Recorder(name, self.store)


def _plain(obj):
    """JSON-safe copy (lazy call lists become lists, odd values become strings)."""
    if isinstance(obj, dict):
        return dict((str(k), _plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, long, float, unicode, str)):  # noqa: F821
        return obj
    if hasattr(obj, "__iter__"):
        return [_plain(v) for v in obj]
    return repr(obj)


def process(cwd_dir, task_id, out_path, mongo, submit=None):
    from cuckoo.misc import set_cwd
    set_cwd(cwd_dir)

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append({"name": record.name, "level": record.levelname,
                            "msg": record.getMessage(),
                            "exc": bool(record.exc_info)})

    logging.getLogger().addHandler(Keep())
    logging.getLogger().setLevel(logging.DEBUG)

    # What `cuckoo process -r` imports and initialises (cuckoo/main.py, startup.py).
    import cuckoo
    import cuckoo.processing
    import cuckoo.reporting
    # cuckoo/apps/__init__.py re-exports every app, among them distributed's, whose package
    # the shared copy leaves out: load cuckoo.apps.apps without running that __init__.
    apps_pkg = types.ModuleType("cuckoo.apps")
    apps_pkg.__path__ = [os.path.join(os.path.dirname(cuckoo.__file__), "apps")]
    sys.modules["cuckoo.apps"] = apps_pkg
    from cuckoo.apps.apps import process_task_range
    from cuckoo.common.config import config2
    from cuckoo.common.exceptions import CuckooConfigurationError
    from cuckoo.core import plugins
    from cuckoo.core.database import Database
    from cuckoo.core.startup import check_specific_config, init_modules
    from cuckoo.reporting.mongodb import MongoDB

    seen = {"processing": [], "reporting": [], "mongo": None}
    db = RecordingDB()
    if mongo:
        # The only stand-in: MongoDB.init_once would connect to a server.
        MongoDB.init_once = classmethod(lambda cls: setattr(cls, "db", db))

    # `cuckoo` start-up (check_configs) checks every key of every enabled section, strictly;
    # these two files are the ones holding our [malfam] sections.
    check_specific_config("processing")
    check_specific_config("reporting")
    Database().connect()
    init_modules()
    if submit:
        got = Database().add_url(submit[0], options=submit[1])
        if got != task_id:
            raise SystemExit("submitted task got id %r, not %r" % (got, task_id))

    def enabled(kind, module):
        try:
            return bool(config2(kind, module.__module__.rsplit(".", 1)[1]).enabled)
        except CuckooConfigurationError:
            return False

    real_pprocess = plugins.RunProcessing.process

    def pprocess(self, module, results):
        key, data = real_pprocess(self, module, results)
        seen["processing"].append({"class": module.__name__, "module": module.__module__,
                                   "order": module.order, "key": key,
                                   "enabled": enabled("processing", module),
                                   "kept": bool(key and data)})
        return key, data

    real_rprocess = plugins.RunReporting.process

    def rprocess(self, module):
        before = self.results.get("malfam")
        report = os.path.join(self.analysis_path, "reports", "report.json")
        exists = os.path.isfile(report)
        real_rprocess(self, module)
        entry = {"class": module.__name__, "module": module.__module__,
                 "order": module.order, "enabled": enabled("reporting", module),
                 "report_json_before": exists,
                 "malfam_changed": self.results.get("malfam") is not before}
        seen["reporting"].append(entry)

    real_rrun = plugins.RunReporting.run

    def rrun(self):
        seen["results_before_reporting"] = {
            "keys": sorted(self.results), "malfam": _plain(self.results.get("malfam"))}
        real_rrun(self)
        seen["results"] = {"keys": sorted(self.results),
                           "malfam": _plain(self.results.get("malfam")),
                           "info": _plain(self.results.get("info"))}

    plugins.RunProcessing.process = pprocess
    plugins.RunReporting.process = rprocess
    plugins.RunReporting.run = rrun

    process_task_range(str(task_id))

    if mongo:
        analysis = db.store.get("analysis") or []
        seen["mongo"] = {
            "collections": sorted(db.store),
            "calls_chunks": len(db.store.get("calls") or []),
            "analysis": [{"keys": sorted(doc), "malfam": _plain(doc.get("malfam")),
                          "info_id": doc.get("info", {}).get("id")} for doc in analysis],
        }
    seen["log"] = records
    with open(out_path, "w") as f:
        json.dump(_plain(seen), f, indent=1, sort_keys=True)


def main(argv):
    if len(argv) >= 2 and argv[0] == "init":
        init(argv[1])
    elif len(argv) >= 4 and argv[0] == "process":
        rest = argv[4:]
        submit = None
        if "--submit" in rest:
            i = rest.index("--submit")
            submit = rest[i + 1:i + 3]
        process(argv[1], int(argv[2]), argv[3], "--mongo" in rest, submit)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
