"""Double of cuckoo.common.exceptions (Cuckoo 2.0.x): the names plugins raise."""


class CuckooCriticalError(Exception):
    pass


class CuckooOperationalError(Exception):
    pass


class CuckooConfigurationError(CuckooOperationalError):
    pass


class CuckooProcessingError(CuckooOperationalError):
    pass


class CuckooReportError(CuckooOperationalError):
    pass


class CuckooDependencyError(CuckooOperationalError):
    pass
