# Stand-in for gevent.thread (cuckoo/core/log.py keys its per-task log handlers by it): a plain thread id, as gevent gives when it does not patch threads.
from __future__ import absolute_import
from thread import get_ident  # noqa: F401
