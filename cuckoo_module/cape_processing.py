# malfam - CAPEv2 processing module.
# Part of malfam (README.md, "Using with Cuckoo / CAPE"). Installed by `make install-cape` as
# $CAPE/modules/processing/malfam.py, with its client as $CAPE/custom/malfam_client.py and its
# settings in $CAPE/custom/conf/processing.conf.d/malfam.conf ([malfam]).
#
# Why a processing module: CAPE runs processing -> signatures -> reporting on one results dict.
# An answer put there during processing is in results before the first reporting module runs,
# so every sink stores it: elasticsearchdb (no `order`, so 1), jsondump (10, report.json),
# mongodb (9999). A reporting module at order 11 is too late for the first two.

import logging

from lib.cuckoo.common.abstracts import Processing

log = logging.getLogger(__name__)


def _client_module():
    try:
        import malfam_client
    except ImportError:
        from custom import malfam_client
    return malfam_client


class Malfam(Processing):
    """Family guess of malfamd for the behavior trace: results["malfam"], and with
    add_detection the top family in CAPE's detections (source ``malfam``)."""

    key = "malfam"
    # BehaviorAnalysis has no order (1): run after it, so results["behavior"] is there.
    order = 2

    def run(self):
        try:
            mc = _client_module()
        except ImportError as e:
            log.warning("malfam: client library missing (make install-cape): %s", e)
            return {"error": "malfam_client not importable: %s" % e}

        opt = self.options
        if mc.option(opt, "classification", False, bool):
            log.warning("malfam: option classification is no longer supported (it broke "
                        "CAPE's report page); the answer is in the malfam tab")
        task_id = self.task.get("id") if self.task else None
        # No report.json yet: the calls CAPE holds are streamed to malfamd.
        result = mc.label(mc.client_from_options(opt), None,
                          mc.behavior_processes(self.results), write_back=False,
                          top=mc.option(opt, "top", mc.DEFAULTS["top"], int), task_id=task_id)

        best = mc.top_family(result, mc.option(opt, "min_score", mc.DEFAULTS["min_score"], float))
        if best and mc.option(opt, "add_detection", mc.DEFAULTS["add_detection"], bool):
            self.add_detection(mc, best, mc.detection_text(result))
        return result

    def add_detection(self, mc, best, text):
        try:
            from lib.cuckoo.common.utils import add_family_detection
        except ImportError as e:
            log.warning("malfam: add_family_detection not available in this CAPE: %s", e)
            return
        family = best[0]
        mc.detections_as_list(self.results)
        add_family_detection(self.results, family, "malfam", text)
