"""Python 2.7 compatibility of what Cuckoo 2 loads: a syntax check on Python 3's AST for
constructs Python 2.7 lacks, and, when a python2.7 interpreter exists, a real run."""

import ast
import glob
import json
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = os.path.join(HERE, "..", "..", "cuckoo_module")
PY2_FILES = ["malfam_client.py", "cuckoo2_processing.py", "cuckoo2_reporting.py"]


def python2():
    """A python2.7 binary: $PYTHON2, one on PATH that runs, or a pyenv build."""
    cands = [os.environ.get("PYTHON2"), shutil.which("python2.7"), shutil.which("python2")]
    cands += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7")))
    for c in cands:
        if not c:
            continue
        try:
            out = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2])"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == b"(2, 7)":
            return c
    return None


class Py3Only(ast.NodeVisitor):
    """Collects (line, what) for syntax Python 2.7 cannot parse or runs differently."""

    def __init__(self):
        self.found = []

    def hit(self, node, what):
        self.found.append((getattr(node, "lineno", 0), what))

    def visit_JoinedStr(self, node):
        self.hit(node, "f-string")

    def visit_Nonlocal(self, node):
        self.hit(node, "nonlocal")

    def visit_AsyncFunctionDef(self, node):
        self.hit(node, "async def")

    def visit_Await(self, node):
        self.hit(node, "await")

    def visit_YieldFrom(self, node):
        self.hit(node, "yield from")

    def visit_NamedExpr(self, node):
        self.hit(node, "walrus")

    def visit_Starred(self, node):
        if isinstance(getattr(node, "ctx", None), ast.Store):
            self.hit(node, "starred assignment")
        self.generic_visit(node)

    def visit_MatMult(self, node):
        self.hit(node, "@ operator")

    def visit_Raise(self, node):
        if node.cause is not None:
            self.hit(node, "raise ... from")
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        a = node.args
        if a.kwonlyargs or getattr(a, "posonlyargs", None):
            self.hit(node, "keyword-only/positional-only args")
        if node.returns or any(x.annotation for x in a.args + a.kwonlyargs):
            self.hit(node, "annotations")
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self.hit(node, "variable annotation")

    def visit_Import(self, node):
        for n in node.names:
            if n.name.split(".")[0] in ("pathlib", "typing", "asyncio", "dataclasses"):
                self.hit(node, "import " + n.name)

    def visit_ImportFrom(self, node):
        if (node.module or "").split(".")[0] in ("pathlib", "typing", "asyncio", "dataclasses"):
            self.hit(node, "from %s import" % node.module)

    def visit_Call(self, node):
        if getattr(node.func, "id", None) == "print":
            self.hit(node, "print() call (prints a tuple on 2.7)")
        self.generic_visit(node)


@pytest.mark.parametrize("name", PY2_FILES)
def test_no_python3_only_syntax(name):
    with open(os.path.join(MODULES, name)) as f:
        tree = ast.parse(f.read(), name)
    v = Py3Only()
    v.visit(tree)
    assert v.found == [], "%s: %s" % (name, v.found)


def test_checker_catches_py3_only_syntax():
    v = Py3Only()
    v.visit(ast.parse("def f(*, a: int) -> None:\n    x = f'{a}'\n    nonlocal_ = 1\n"
                      "import pathlib\n"))
    assert {w for _, w in v.found} >= {"f-string", "annotations", "import pathlib",
                                       "keyword-only/positional-only args"}


def test_runs_on_python27(fake):
    py2 = python2()
    if not py2:
        pytest.skip("no python2.7 interpreter (set PYTHON2=...); AST check only")
    for name in PY2_FILES:
        p = subprocess.run([py2, "-m", "py_compile", os.path.join(MODULES, name)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert p.returncode == 0, p.stdout
    p = subprocess.run([py2, os.path.join(HERE, "py2_smoke.py"), fake.path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0, p.stdout.decode("utf-8", "replace")
    rows = [json.loads(l) for l in p.stdout.decode().splitlines() if l.startswith("{")]
    got = dict((r.get("processing") or r.get("reporting") or "", r) for r in rows
               if "malfam" in r)
    assert rows[0]["write_behavior"][1] == 1
    benign = [r for r in rows if r.get("processing") == "cuckoo207_benign_cmdkey.json"][0]
    assert benign["malfam"]["calls"] == 33 and benign["malfam"]["via"] == "stream"
    rep = [r for r in rows if r.get("reporting") == "cuckoo207_benign_cmdkey.json"][0]
    assert rep["written"] and rep["malfam"]["via"] == "report"
    assert rows[-1]["absent"]["code"] == "MF_EUNAVAILABLE"
    assert got
