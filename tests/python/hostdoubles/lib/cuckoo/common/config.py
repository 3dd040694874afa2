"""Double of the CAPEv2 config value guessing (lib/cuckoo/common/config.py): "yes"/"no" become
booleans, "0"/"1" and other integers ints, everything else stays text (so "0.5" is "0.5")."""

try:
    import ConfigParser as configparser  # Python 2
except ImportError:
    import configparser


class Dictionary(dict):
    def __getattr__(self, key):
        return self.get(key, None)


def read_section(paths, section):
    """The [section] of the later-wins merge of `paths`, typed as CAPE types it."""
    parser = configparser.RawConfigParser()
    parser.read(paths)
    out = Dictionary()
    if not parser.has_section(section):
        return None
    for name, value in parser.items(section):
        try:
            if value in ("0", "1"):
                raise ValueError
            out[name] = parser.getboolean(section, name)
        except ValueError:
            try:
                out[name] = parser.getint(section, name)
            except ValueError:
                out[name] = value
    return out
