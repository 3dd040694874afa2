"""Double of cuckoo.common.abstracts (Cuckoo 2.0.x): Processing and Report."""

import os


class Processing(object):
    order = 1
    enabled = True

    def __init__(self):
        self.analysis_path = ""
        self.logs_path = ""
        self.task = None
        self.machine = None
        self.options = None
        self.results = {}

    def set_options(self, options):
        self.options = options

    def set_task(self, task):
        self.task = task

    def set_machine(self, machine):
        self.machine = machine

    def set_path(self, analysis_path):
        self.analysis_path = analysis_path
        self.log_path = os.path.join(analysis_path, "analysis.log")
        self.logs_path = os.path.join(analysis_path, "logs")
        self.file_path = os.path.join(analysis_path, "binary")
        self.reports_path = os.path.join(analysis_path, "reports")
        self.taskinfo_path = os.path.join(analysis_path, "task.json")

    def set_results(self, results):
        self.results = results

    def run(self):
        raise NotImplementedError


class Report(object):
    order = 1

    def __init__(self):
        self.analysis_path = ""
        self.reports_path = ""
        self.task = None
        self.options = None

    def set_path(self, analysis_path):
        self.analysis_path = analysis_path
        self.reports_path = os.path.join(analysis_path, "reports")

    def set_options(self, options):
        self.options = options

    def set_task(self, task):
        self.task = task

    def run(self, results):
        raise NotImplementedError
