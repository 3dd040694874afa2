# malfam - CAPEv2 reporting module.
# Part of malfam (README.md, "Using with Cuckoo / CAPE"). Installed by `make install-cape` as
# $CAPE/modules/reporting/malfam.py, with its client as $CAPE/custom/malfam_client.py and its
# settings in $CAPE/custom/conf/reporting.conf.d/malfam.conf ([malfam]).
#
# The default path is the processing module (cape_processing.py, modules/processing/malfam.py):
# it answers before any reporting module runs, so report.json, MongoDB and Elasticsearch all
# get the answer. This module is the fallback for tasks the processing module did not label
# (not installed or disabled, or a `minproc=1` task, for which CAPE runs only three processing
# modules): it asks malfamd to score report.json and write its answer back into the file.

import logging
import os

from lib.cuckoo.common.abstracts import Report

log = logging.getLogger(__name__)


def _client_module():
    try:
        import malfam_client
    except ImportError:
        from custom import malfam_client
    return malfam_client


def add_detection(mc, results, best, text):
    """Put the top family into CAPE's detections (source ``malfam``), whatever shape an older
    CAPE left ``detections`` in."""
    try:
        from lib.cuckoo.common.utils import add_family_detection
    except ImportError as e:
        log.warning("malfam: add_family_detection not available in this CAPE: %s", e)
        return
    family = best[0]
    mc.detections_as_list(results)
    add_family_detection(results, family, "malfam", text)


def warn_classification(mc, opt):
    # CAPE's report view replaces a stored `classification` with True and its template then
    # iterates it: any value we stored there would break the whole report page.
    if mc.option(opt, "classification", False, bool):
        log.warning("malfam: option classification is no longer supported (it broke CAPE's "
                    "report page); the answer is in the malfam tab and results[\"malfam\"]")


class Malfam(Report):
    """Labels the analysis with the malfamd family guess when the processing module did not:
    results["malfam"], report.json (write-back), optionally CAPE's detections."""

    # After jsondump (10) has written report.json, before mongodb (9999). Elasticsearchdb has
    # no order (1) and has already run: only the processing module reaches it.
    order = 11

    def run(self, results):
        if "malfam" in results:
            return  # labelled by the processing module; jsondump already wrote it
        try:
            mc = _client_module()
        except ImportError as e:
            log.warning("malfam: client library missing (make install-cape): %s", e)
            results["malfam"] = {"error": "malfam_client not importable: %s" % e}
            return

        opt = self.options
        warn_classification(mc, opt)
        task_id = self.task.get("id") if self.task else None
        result = mc.label(
            mc.client_from_options(opt),
            os.path.join(self.reports_path, "report.json"),
            mc.behavior_processes(results),
            write_back=mc.option(opt, "write_back", mc.DEFAULTS["write_back"], bool),
            top=mc.option(opt, "top", mc.DEFAULTS["top"], int),
            task_id=task_id)
        results["malfam"] = result

        best = mc.top_family(result, mc.option(opt, "min_score", mc.DEFAULTS["min_score"], float))
        if best and mc.option(opt, "add_detection", mc.DEFAULTS["add_detection"], bool):
            add_detection(mc, results, best, mc.detection_text(result))
