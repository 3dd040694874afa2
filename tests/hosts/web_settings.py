"""Minimal Django settings to render CAPEv2's real web templates on Debian's Django 3.2.

CAPE's own web/web/settings.py needs Django >= 4.2 and packages Debian lacks (allauth,
channels, crispy_bootstrap4, django_recaptcha); its templates do not. This module gives them
what they use: the template dirs (the tree's own web/templates; cape_web_render.py points
DIRS and STATIC_URL at its installed copy before django.setup()), CAPE's template-tag
libraries, URL patterns
for the names they reverse (web_urls.py) and the settings attributes report.html reads.
Written for malfam's tests (tests/hosts/cape_web_render.py).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HOSTS = os.environ.get("MF_HOSTS") or os.path.join(HERE, "..", "..", "..", "shared", "hosts")
CAPE = os.path.abspath(os.path.join(HOSTS, "capev2"))
CAPE_WEB = os.path.join(CAPE, "web")
# CAPE's tag libraries import `analysis.templatetags.*` (web/) and `lib.cuckoo...` (root).
for _p in (CAPE, CAPE_WEB, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

SECRET_KEY = "malfam-test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_I18N = False
USE_TZ = False
INSTALLED_APPS = []
ROOT_URLCONF = "web_urls"
STATIC_URL = "/static/"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [os.path.join(CAPE_WEB, "templates")],
    "OPTIONS": {
        # debug: a missing include or tag library raises instead of rendering a blank
        "debug": True,
        "context_processors": ["django.template.context_processors.static"],
        "libraries": {
            "analysis_tags": "analysis.templatetags.analysis_tags",
            "generic_tags": "analysis.templatetags.generic_tags",
            "key_tags": "analysis.templatetags.key_tags",
            "pdf_tags": "analysis.templatetags.pdf_tags",
        },
    },
}]

# The `settings` attributes report.html and its includes test, as a default CAPE web.conf
# leaves them (web/web/settings.py): extra tabs and admin controls off.
COMMENTS = False
ADMIN = False
HUNT_ENABLED = False
AUDIT_FRAMEWORK = False
WEB_AUTHENTICATION = False
REPROCESS_TASKS = False
MOLOCH_ENABLED = False
VTDL_ENABLED = False
ZIP_PWD = "infected"
DEBUG_TEMPLATES = False
