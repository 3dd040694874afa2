"""Double of lib.cuckoo.common.exceptions (CAPEv2)."""


class CuckooOperationalError(Exception):
    pass


class CuckooProcessingError(CuckooOperationalError):
    pass


class CuckooReportError(CuckooOperationalError):
    pass


class CuckooDependencyError(CuckooOperationalError):
    pass
