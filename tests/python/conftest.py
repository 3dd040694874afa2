"""Shared fixtures: host doubles on sys.path, a fake daemon, the real malfamd when built."""

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "hostdoubles"))
sys.path.insert(0, HERE)

from runner import use_doubles  # noqa: E402
from fakedaemon import FakeDaemon  # noqa: E402

use_doubles()


@pytest.fixture
def sockdir():
    # Unix socket paths are limited to ~107 bytes: keep them short, under /tmp.
    d = tempfile.mkdtemp(prefix="mf")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(sockdir):
    """A fake daemon in mode "ok"; tests switch `fake.mode` as they need."""
    d = FakeDaemon(os.path.join(sockdir, "fake.sock"))
    yield d
    d.close()


@pytest.fixture(params=["fake"])
def daemon(request, sockdir):
    """The daemon behind the socket for happy-path tests: the fake one, and the real malfamd
    (see real_daemon below) when it is built."""
    d = FakeDaemon(os.path.join(sockdir, "fake.sock"))
    yield d
    d.close()
