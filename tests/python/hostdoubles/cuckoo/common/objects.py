"""Double of cuckoo.common.objects.Dictionary: a dict with attribute access."""


class Dictionary(dict):
    def __getattr__(self, key):
        return self.get(key, None)

    __setattr__ = dict.__setitem__
    __delattr__ = dict.__delitem__
