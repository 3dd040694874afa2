# >>> malfam: make install-cape adds this block, make uninstall-cape removes it
# CAPE's web/analysis/views.py imports CUSTOM_SERVICES *and* handle_custom_service from this
# file in one statement (both must exist, or it silently uses an empty list), then adds every
# name in CUSTOM_SERVICES to the MongoDB projection of the report page. "malfam" there makes
# analysis.malfam reach our tab template. This block works as a whole file or appended.
try:
    CUSTOM_SERVICES
except NameError:
    CUSTOM_SERVICES = []
if "malfam" not in CUSTOM_SERVICES:
    CUSTOM_SERVICES = list(CUSTOM_SERVICES) + ["malfam"]
try:
    handle_custom_service
except NameError:
    def handle_custom_service(service, task_id, sha256):
        """No on-demand action: malfam writes its result at reporting time."""
        return False, service
# <<< malfam
