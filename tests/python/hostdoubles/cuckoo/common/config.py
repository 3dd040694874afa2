"""Double of cuckoo.common.config (Cuckoo 2.0.x): a schema table `Config.configuration`,
typed values, a parse cache `_cache` and `config2(file, section)`, which refuses sections
missing from the schema (the real one raises CuckooConfigurationError and the module is
skipped). Values are read from `$CWD/conf/<file>.conf`; tests set `CWD`."""

import os

try:
    import ConfigParser as configparser  # Python 2
except ImportError:
    import configparser

from cuckoo.common.exceptions import CuckooConfigurationError
from cuckoo.common.objects import Dictionary

CWD = None       # tests point this at a temporary Cuckoo working directory
_cache = {}


class Type(object):
    def __init__(self, default=None, required=True):
        self.required = required
        self.default = self.parse(default)

    def parse(self, value):
        return value


class Int(Type):
    def parse(self, value):
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return None


class String(Type):
    def parse(self, value):
        return value.strip() if value else None


class Boolean(Type):
    def parse(self, value):
        if value in (True, False):
            return value
        if value is None:
            return None
        return str(value).strip().lower() in ("yes", "true", "on", "1")


class Config(object):
    # A few real sections, so the table looks like the host's; no "malfam" here.
    configuration = {
        "processing": {
            "behavior": {"enabled": Boolean(True)},
            "network": {"enabled": Boolean(True)},
        },
        "reporting": {
            "jsondump": {"enabled": Boolean(True), "indent": Int(4), "calls": Boolean(True)},
            "mongodb": {"enabled": Boolean(False)},
        },
    }

    def __init__(self, file_name):
        self.sections = {}
        parser = configparser.RawConfigParser()
        if CWD:
            parser.read(os.path.join(CWD, "conf", "%s.conf" % file_name))
        for section in parser.sections():
            types = self.configuration.get(file_name, {}).get(section)
            if types is None:
                continue  # the real Config logs "section not found" and drops it
            values = Dictionary()
            for name, raw in parser.items(section):
                values[name] = types[name].parse(raw) if name in types else raw
            self.sections[section] = values


def config(s):
    file_name, section, key = s.split(":")
    index = (file_name, CWD)        # the real key starts with file_name too
    if index not in _cache:
        _cache[index] = Config(file_name)
    cfg = _cache[index]
    type_ = Config.configuration.get(file_name, {}).get(section, {}).get(key)
    return cfg.sections.get(section, {}).get(key, type_.default if type_ else None)


def config2(file_name, section):
    keys = Config.configuration.get(file_name, {}).get(section)
    if not keys:
        raise CuckooConfigurationError("No such configuration section exists: %s:%s"
                                       % (file_name, section))
    ret = Dictionary()
    for key in keys:
        ret[key] = config("%s:%s:%s" % (file_name, section, key))
    return ret
