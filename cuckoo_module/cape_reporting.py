# malfam - CAPEv2 reporting module.
# Part of malfam (README.md, "Using with Cuckoo / CAPE"). Installed by `make install-cape` as
# $CAPE/modules/reporting/malfam.py, with its client as $CAPE/custom/malfam_client.py and its
# settings in $CAPE/custom/conf/reporting.conf.d/malfam.conf ([malfam]).

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


class Malfam(Report):
    """Labels the analysis with the malfamd family guess: results["malfam"], report.json,
    optionally CAPE's detections and Classification tab."""

    # After jsondump (10) has written report.json, before mongodb (9999) and
    # elasticsearchdb store the results.
    order = 11

    def run(self, results):
        try:
            mc = _client_module()
        except ImportError as e:
            log.warning("malfam: client library missing (make install-cape): %s", e)
            results["malfam"] = {"error": "malfam_client not importable: %s" % e}
            return

        opt = self.options
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
            self.add_detection(results, best)
        if "error" not in result and mc.option(opt, "classification",
                                               mc.DEFAULTS["classification"], bool):
            results["classification"] = classification(result)

    def add_detection(self, results, best):
        try:
            from lib.cuckoo.common.utils import add_family_detection
        except ImportError as e:
            log.warning("malfam: add_family_detection not available in this CAPE: %s", e)
            return
        family, score = best
        add_family_detection(results, family, "malfam", "score %.2f" % score)


def classification(result):
    """Our answer in the shape of CAPE's Classification tab (analysis/classification.html):
    ``family_top`` rows of cells, ``details`` blocks with ``meta`` and ``results``."""
    rows = [[f.get("family"), "%.3f" % float(f.get("score") or 0)]
            for f in result.get("families") or []]
    facts = [{"model": result.get("model")}, {"mode": result.get("mode")},
             {"calls": result.get("calls")}, {"unknown": result.get("unknown")}]
    if result.get("explain"):
        facts.append({"explain": result.get("explain")})
    return {"family_top": rows,
            "details": [{"meta": "malfam (whole trace)", "results": facts}]}
