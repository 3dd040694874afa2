"""Double of lib.cuckoo.common.abstracts (CAPEv2): Processing(results) and Report."""

import os


class Processing(object):
    order = 1
    enabled = True

    def __init__(self, results=None):
        self.results = results
        self.analysis_path = ""
        self.task = None
        self.options = None

    def set_path(self, analysis_path):
        self.analysis_path = analysis_path
        self.logs_path = os.path.join(analysis_path, "logs")
        self.reports_path = os.path.join(analysis_path, "reports")
        self.file_path = os.path.join(analysis_path, "binary")

    def set_options(self, options):
        self.options = options

    def set_task(self, task):
        self.task = task


class Report(object):
    order = 1

    def __init__(self):
        self.analysis_path = ""
        self.reports_path = ""
        self.task = None
        self.options = None

    def set_path(self, analysis_path):
        self.analysis_path = analysis_path
        self.conf_path = os.path.join(analysis_path, "analysis.conf")
        self.reports_path = os.path.join(analysis_path, "reports")
        if not os.path.isdir(self.reports_path):
            os.makedirs(self.reports_path)

    def set_options(self, options):
        self.options = options

    def set_task(self, task):
        self.task = task

    def run(self, results):
        raise NotImplementedError
