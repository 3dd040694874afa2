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


import subprocess  # noqa: E402
import time  # noqa: E402

TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
MF_DATA = os.environ.get("MF_DATA") or os.path.join(TOP, "..", "shared", "data")


def _model(build):
    """(model path, mode) for the real daemon: $MALFAM_MODEL, $BUILD/demo.model, else a quick
    nearest-neighbour model built by mkmodel.c (seconds) and kept in $BUILD. Or (None, why)."""
    for p in (os.environ.get("MALFAM_MODEL"), os.path.join(build, "demo.model")):
        if p and os.path.isfile(p):
            return p, None
    out = os.path.join(build, "pytest-quick.model")
    if os.path.isfile(out):
        return out, "knn"
    lib = os.path.join(build, "libmalfam.a")
    if not os.path.isfile(lib):
        return None, "no %s" % lib
    exe = os.path.join(build, "pytest-mkmodel")
    libs = subprocess.run(["pkg-config", "--libs", "yajl", "libuv", "inih", "zlib"],
                          stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
    cc = subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-I" + os.path.join(TOP, "core"),
                         "-o", exe, os.path.join(HERE, "mkmodel.c"), lib] + libs +
                        ["-lopenblas", "-lpthread", "-lm"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if cc.returncode != 0:
        return None, "mkmodel does not build: " + cc.stdout[-300:]
    d = os.path.join(MF_DATA, "mal-api-2019-808")
    r = subprocess.run([exe, os.path.join(d, "calls.txt.gz"), os.path.join(d, "index.csv"),
                        os.path.join(d, "ApiIndex.txt"), out], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        return None, "mkmodel failed: " + r.stdout[-300:]
    return out, "knn"


class RealDaemon(object):
    """$BUILD/malfamd on a temporary socket and config, reading and writing under /tmp."""

    def __init__(self, build, sockdir, model, mode):
        self.path = os.path.join(sockdir, "malfamd.sock")
        self.conf = os.path.join(sockdir, "malfamd.conf")
        with open(self.conf, "w") as f:
            f.write("[malfamd]\nsocket = %s\nmodel = %s\nallowed_roots = %s\nlog_level = warn\n"
                    % (self.path, model, os.path.realpath(tempfile.gettempdir())))
            if mode:
                f.write("mode = %s\n" % mode)
        self.log = open(os.path.join(sockdir, "malfamd.log"), "w+")
        self.proc = subprocess.Popen([os.path.join(build, "malfamd"), "-c", self.conf,
                                      "--foreground"], stdout=self.log, stderr=subprocess.STDOUT)
        import malfam_client as mc
        end = time.time() + 20
        while True:
            try:
                self.hello = mc.Client(self.path, 2).ping()
                break
            except mc.MalfamError:
                if self.proc.poll() is not None or time.time() > end:
                    self.log.seek(0)
                    raise RuntimeError("malfamd did not start: " + self.log.read()[-500:])
                time.sleep(0.05)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def real_model():
    build = os.environ.get("BUILD") or os.path.join(TOP, "build")
    if not os.access(os.path.join(build, "malfamd"), os.X_OK):
        return None, None, "no %s/malfamd (make check sets BUILD)" % build
    model, mode = _model(build)
    if not model:
        return None, None, mode
    return build, model, mode


@pytest.fixture
def real_daemon(real_model, sockdir):
    build, model, mode = real_model
    if not build:
        # the suite builds both itself (make check-python: all, then mkmodel): a failure here
        # is a broken build, not a reason to skip
        pytest.fail("real malfamd unavailable: %s" % mode, pytrace=False)
    d = RealDaemon(build, sockdir, model, mode)
    yield d
    d.close()


@pytest.fixture(params=["fake", "real"])
def daemon(request, sockdir):
    """The daemon behind the socket for happy-path tests: the fake one, then the real
    malfamd with a real model (a failure, with the reason, when it cannot be had)."""
    if request.param == "real":
        yield request.getfixturevalue("real_daemon")
        return
    d = FakeDaemon(os.path.join(sockdir, "fake.sock"))
    yield d
    d.close()
