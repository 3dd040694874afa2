"""Drive our modules the way the hosts do, with lazy `calls` like the hosts keep in memory.

Python 2.7 and 3 (the Python 2 smoke test imports it too)."""

import gzip
import importlib
try:
    import importlib.util
except ImportError:  # Python 2
    pass
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_DIR = os.path.join(HERE, "..", "..", "..", "cuckoo_module")
REPORTS = os.path.join(os.environ.get("MF_DATA", os.path.join(HERE, "..", "..", "..", "..",
                                                              "shared", "data")), "reports")


class MeasuredError(AssertionError):
    pass


class LazyCalls(object):
    """Cuckoo 2's ParseProcessLog in spirit: a fresh parse on every pass, no len(), and a
    faked truth value. Here any len()/bool() is a test failure, and passes are counted."""

    def __init__(self, calls):
        self._calls = calls
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        for c in self._calls:
            yield c

    def __len__(self):
        raise MeasuredError("len() on lazy calls")

    def __bool__(self):
        raise MeasuredError("truth test on lazy calls")

    __nonzero__ = __bool__


class CapeCalls(list):
    """CAPEv2's call list: a list subclass that stays empty (len 0, falsy) and yields the
    calls only when iterated."""

    def __init__(self, calls):
        list.__init__(self)
        self._calls = calls
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        for c in self._calls:
            yield c


def load_report(name):
    path = os.path.join(REPORTS, name)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def lazy_results(report, kind=LazyCalls):
    """The in-memory results of a host for `report`: each process's calls made lazy."""
    results = dict(report)
    behavior = dict(report.get("behavior") or {})
    procs = []
    for p in behavior.get("processes") or []:
        p = dict(p)
        p["calls"] = kind(p.get("calls") or [])
        procs.append(p)
    behavior["processes"] = procs
    results["behavior"] = behavior
    return results


def use_doubles():
    for d in (HERE, os.path.abspath(MODULE_DIR)):
        if d not in sys.path:
            sys.path.insert(0, d)


def load_as(module_file, name):
    """Import cuckoo_module/<module_file> under the dotted `name` it is installed as (the
    hosts read the config section from the last part of that name)."""
    use_doubles()
    path = os.path.join(os.path.abspath(MODULE_DIR), module_file)
    sys.modules.pop(name, None)
    if sys.version_info[0] == 2:
        import imp
        return imp.load_source(name, path)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def cuckoo2_processing(cls, analysis_path, task, options, results):
    """Cuckoo 2 RunProcessing.process(): run() errors are logged, the key dropped;
    a falsy return value is dropped too."""
    m = cls()
    m.set_options(options)
    m.set_task(task)
    m.set_path(analysis_path)
    m.set_results(results)
    data = m.run()
    if data:
        results[m.key] = data
    return results


def reporting(cls, analysis_path, task, options, results):
    """RunReporting.process() of either host: one module, the shared results dict."""
    m = cls()
    m.set_path(analysis_path)
    m.set_task(task)
    m.set_options(options)
    m.run(results)
    return results
