# malfam - Cuckoo Sandbox 2.0.x processing module.
# Part of malfam (README.md, "Using with Cuckoo / CAPE"). Installed by `make install-cuckoo` as
# site-packages/cuckoo/processing/malfam.py: Cuckoo 2 loads processing modules only from there,
# and its [malfam] section in $CWD/conf/processing.conf configures it.
#
# Python 2.7: no f-strings, nothing optional imported at module level (an ImportError in any
# plugin file stops Cuckoo from starting). malfam_client is imported inside run().

import logging

from cuckoo.common.abstracts import Processing

log = logging.getLogger(__name__)


def _register_schema():
    """Cuckoo 2 skips a module whose config section is not in its hard-coded schema table:
    add ours (once, guarded) before config2("processing", "malfam") is ever called."""
    try:
        import malfam_client
        malfam_client.cuckoo2_register_schema("processing")
    except Exception as e:
        log.warning("malfam: cannot register the [malfam] processing.conf section: %s", e)


_register_schema()


class Malfam(Processing):
    """Malware family of the behavior trace, from the malfamd daemon."""

    key = "malfam"
    # BehaviorAnalysis has order 1: we need results["behavior"]["processes"].
    order = 2

    def run(self):
        try:
            import malfam_client as mc
        except ImportError as e:
            log.warning("malfam: client library missing (make install-cuckoo): %s", e)
            return {"error": "malfam_client not importable: %s" % e}

        task_id = self.task.get("id") if self.task else None
        processes = mc.behavior_processes(self.results) or []
        # No report.json exists yet at this stage (report_path None): stream the calls.
        return mc.label(mc.client_from_options(self.options), None, processes,
                        top=mc.option(self.options, "top", mc.DEFAULTS["top"], int),
                        task_id=task_id)
