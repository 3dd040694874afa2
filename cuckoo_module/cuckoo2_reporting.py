# malfam - Cuckoo Sandbox 2.0.x reporting module (optional).
# Part of malfam (README.md, "Using with Cuckoo / CAPE"). Installed by `make install-cuckoo` as
# site-packages/cuckoo/reporting/malfam.py; [malfam] in $CWD/conf/reporting.conf enables it.
#
# The processing module already puts the answer in results["malfam"]. This one only adds it
# to reports/report.json, by asking the daemon to score that file and write the answer into
# it (write_back), which is worth it only when jsondump kept the calls.
# Python 2.7, nothing optional imported at module level.

import logging
import os

from cuckoo.common.abstracts import Report

log = logging.getLogger(__name__)


def _register_schema():
    try:
        import malfam_client
        malfam_client.cuckoo2_register_schema("reporting")
    except Exception as e:
        log.warning("malfam: cannot register the [malfam] reporting.conf section: %s", e)


_register_schema()


class MalfamReport(Report):
    """Adds the malfamd family guess to report.json."""

    # Cuckoo 2 sorts reporting modules by order over a list sorted by class name: with
    # order 1, "MalfamReport" runs after "JsonDump" (order 1, it writes report.json) and
    # before "MongoDB" (order 2), so MongoDB stores what we set here.
    order = 1

    def calls_stripped(self):
        """Did jsondump leave the calls out of report.json (json.calls=0 / calls = no)?"""
        options = (self.task or {}).get("options") or {}
        if "json.calls" in options:
            try:
                return not int(options["json.calls"])
            except (TypeError, ValueError):
                return False
        try:
            from cuckoo.common.config import config
            return not config("reporting:jsondump:calls")
        except Exception:
            return False

    def run(self, results):
        try:
            import malfam_client as mc
        except ImportError as e:
            log.warning("malfam: client library missing (make install-cuckoo): %s", e)
            return

        task_id = self.task.get("id") if self.task else None
        stripped = self.calls_stripped()
        previous = results.get("malfam")
        if stripped and previous and "error" not in previous:
            log.info("malfam: task %s: report.json has no calls, keeping the processing "
                     "answer (jsondump already wrote it there)", task_id)
            return
        report = os.path.join(self.reports_path, "report.json")
        processes = mc.behavior_processes(results)
        if not stripped and os.path.isfile(report):
            # jsondump wrote the lazy call lists out in full: the file's answer is final even
            # when it saw no calls ("no trace"), and streaming would re-read every BSON log
            # for the same answer.
            processes = None
        results["malfam"] = mc.label(
            mc.client_from_options(self.options), report, processes,
            write_back=mc.option(self.options, "write_back", mc.DEFAULTS["write_back"], bool),
            top=mc.option(self.options, "top", mc.DEFAULTS["top"], int),
            task_id=task_id, calls_stripped=stripped)
