"""Helpers that run each adapter on a real report, through the host doubles. Shared by the
tests (fake and real daemon) and by cuckoo_module/demo_adapters.py."""

import json
import os
import shutil

from runner import CapeCalls, LazyCalls, cuckoo2_processing, lazy_results, load_as, \
    load_report, reporting


def analysis_dir(root, task_id, report, write_json=True, strip_calls=False):
    """$CWD/storage/analyses/<id> with reports/report.json as the host's jsondump wrote it."""
    path = os.path.join(root, "analyses", str(task_id))
    reports = os.path.join(path, "reports")
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(reports)
    if write_json:
        doc = report
        if strip_calls:
            doc = json.loads(json.dumps(report))
            for p in (doc.get("behavior") or {}).get("processes") or []:
                p["calls"] = []
        with open(os.path.join(reports, "report.json"), "w") as f:
            json.dump(doc, f, indent=4)
    return path


def run_cuckoo2_processing(root, name, options, task_id=1):
    mod = load_as("cuckoo2_processing.py", "cuckoo.processing.malfam")
    report = load_report(name)
    results = lazy_results(report, LazyCalls)
    path = analysis_dir(root, task_id, report, write_json=False)
    cuckoo2_processing(mod.Malfam, path, {"id": task_id, "options": {}}, options, results)
    return results


def run_cuckoo2_reporting(root, name, options, task_id=1, task_options=None, results=None):
    mod = load_as("cuckoo2_reporting.py", "cuckoo.reporting.malfam")
    report = load_report(name)
    if results is None:
        results = lazy_results(report, LazyCalls)
    stripped = (task_options or {}).get("json.calls") == "0"
    path = analysis_dir(root, task_id, report, strip_calls=stripped)
    reporting(mod.MalfamReport, path, {"id": task_id, "options": task_options or {}}, options,
              results)
    return results, os.path.join(path, "reports", "report.json")


def run_cape_reporting(root, name, options, task_id=1, strip_calls=False):
    mod = load_as("cape_reporting.py", "modules.reporting.malfam")
    report = load_report(name)
    results = lazy_results(report, CapeCalls)
    path = analysis_dir(root, task_id, report, strip_calls=strip_calls)
    reporting(mod.Malfam, path, {"id": task_id}, options, results)
    return results, os.path.join(path, "reports", "report.json")
