#!/usr/bin/env python3
# malfam - put the Cuckoo 2 / CAPEv2 integration in place, and take it out again.
# Part of malfam; called by `make install-cuckoo`, `make install-cape` and their uninstall
# targets (README.md, "Using with Cuckoo / CAPE"). Prints every change it makes.
"""hostinstall.py install-cuckoo|uninstall-cuckoo [--pkg DIR | --python PY] [--cwd CWD]
hostinstall.py install-cape|uninstall-cape --cape DIR

Every edit of a host file is marked ("malfam" in a template comment or between
"# >>> malfam" / "# <<< malfam" lines) so uninstall removes exactly what install added.
Files that already hold our marker are left as they are: installing twice changes nothing.
"""

import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CONF = os.path.join(TOP, "conf")
TPL = os.path.join(HERE, "templates")

LINE_MARK = "{# malfam #}"
BLOCK_BEGIN = "# >>> malfam"
BLOCK_END = "# <<< malfam"


def say(msg):
    sys.stdout.write(msg + "\n")


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    # Same mode as before: we edit host files in place, never change who may read them.
    with open(path, "w") as f:
        f.write(text)


# ---- primitives, each printing what it changed ------------------------------------------------


def put_file(src, dst, keep_existing=False):
    if keep_existing and os.path.exists(dst):
        say("kept      %s (already there; your edits stay)" % dst)
        return
    d = os.path.dirname(dst)
    if not os.path.isdir(d):
        os.makedirs(d)
    shutil.copyfile(src, dst)
    say("installed %s" % dst)


def remove_file(path):
    if os.path.exists(path):
        os.remove(path)
        say("removed   %s" % path)
    # __pycache__ / .pyc left by the host's interpreter
    base = os.path.splitext(path)[0]
    for stale in (base + ".pyc",):
        if os.path.exists(stale):
            os.remove(stale)


def insert_lines(path, anchors, lines):
    """Insert lines[i] (marked) before the line holding anchors[i]; anchors are searched in
    order, each after the previous one. Returns False (nothing changed) when an anchor is
    missing."""
    if not os.path.exists(path):
        say("skipped   %s (not found)" % path)
        return False
    text = read(path)
    if LINE_MARK in text:
        say("unchanged %s (already patched)" % path)
        return True
    out = text.splitlines(True)
    pos = 0
    plan = []
    for anchor, line in zip(anchors, lines):
        for i in range(pos, len(out)):
            if anchor in out[i]:
                indent = out[i][:len(out[i]) - len(out[i].lstrip())]
                plan.append((i, indent + line + LINE_MARK + "\n"))
                pos = i + 1
                break
        else:
            say("WARNING   %s: no line with %r; not patched" % (path, anchor))
            return False
    for i, line in reversed(plan):
        out.insert(i, line)
    write(path, "".join(out))
    say("patched   %s (+%d line%s marked %s)" % (path, len(plan), "s" * (len(plan) > 1),
                                                 LINE_MARK))
    return True


def remove_lines(path):
    if not os.path.exists(path):
        return
    lines = read(path).splitlines(True)
    kept = [l for l in lines if LINE_MARK not in l]
    if len(kept) != len(lines):
        write(path, "".join(kept))
        say("restored  %s (-%d line%s)" % (path, len(lines) - len(kept),
                                           "s" * (len(lines) - len(kept) > 1)))


def append_block(path, block_src, section=None):
    """Append the file block_src (wrapped in markers unless it has them) to path, unless
    path already has our marker or, for INI files, a [section] of that name."""
    block = read(block_src)
    if BLOCK_BEGIN not in block:
        block = "%s (make uninstall-* removes this block)\n%s%s\n" % (
            BLOCK_BEGIN, block if block.endswith("\n") else block + "\n", BLOCK_END)
    text = read(path) if os.path.exists(path) else ""
    if BLOCK_BEGIN in text:
        say("unchanged %s (already has the malfam block)" % path)
        return
    if section and ("[%s]" % section) in text.replace(" ", ""):
        say("unchanged %s (already has a [%s] section)" % (path, section))
        return
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    sep = "\n" if text and not text.endswith("\n") else ""
    write(path, text + sep + block)
    say("%s %s (malfam block)" % ("appended " if text else "created  ", path))


def remove_block(path):
    if not os.path.exists(path):
        return
    text = read(path)
    start = text.find(BLOCK_BEGIN)
    if start < 0:
        return
    end = text.find(BLOCK_END, start)
    end = len(text) if end < 0 else text.find("\n", end) + 1 or len(text)
    rest = text[:start] + text[end:]
    if rest.strip():
        write(path, rest)
        say("restored  %s (malfam block removed)" % path)
    else:
        os.remove(path)
        say("removed   %s (held only the malfam block)" % path)


# ---- Cuckoo 2 ---------------------------------------------------------------------------------


def find_cuckoo_pkg(python):
    """The installed `cuckoo` package directory, asked of the interpreter Cuckoo runs on."""
    if not python:
        exe = shutil.which("cuckoo")
        if not exe:
            return None
        with open(exe, "rb") as f:
            first = f.readline().decode("utf-8", "replace").strip()
        python = first[2:].strip().split()[0] if first.startswith("#!") else None
        if not python:
            return None
    code = "import os, cuckoo; print(os.path.dirname(os.path.abspath(cuckoo.__file__)))"
    try:
        out = subprocess.check_output([python, "-c", code], stderr=subprocess.STDOUT)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.decode().strip().splitlines()[-1]


def cuckoo_paths(pkg):
    summary = os.path.join(pkg, "web", "templates", "analysis", "pages", "summary")
    return {
        "processing": os.path.join(pkg, "processing", "malfam.py"),
        "reporting": os.path.join(pkg, "reporting", "malfam.py"),
        # beside the package, i.e. in site-packages, where `import malfam_client` finds it
        "client": os.path.join(os.path.dirname(pkg), "malfam_client.py"),
        "template": os.path.join(summary, "_malfam.html"),
        "summary": os.path.join(summary, "index.html"),
    }


SUMMARY_ANCHOR = 'include "analysis/pages/summary/_info.html"'
SUMMARY_LINE = '<div class="col-md-12">{% include "analysis/pages/summary/_malfam.html" %}</div>'


def install_cuckoo(pkg, cwd):
    p = cuckoo_paths(pkg)
    put_file(os.path.join(HERE, "cuckoo2_processing.py"), p["processing"])
    put_file(os.path.join(HERE, "cuckoo2_reporting.py"), p["reporting"])
    put_file(os.path.join(HERE, "malfam_client.py"), p["client"])
    if os.path.isdir(os.path.dirname(p["summary"])):
        put_file(os.path.join(TPL, "cuckoo2", "_malfam.html"), p["template"])
        insert_lines(p["summary"], [SUMMARY_ANCHOR], [SUMMARY_LINE])
    else:
        say("skipped   web template (no %s)" % os.path.dirname(p["summary"]))
    if cwd:
        for name in ("processing", "reporting"):
            append_block(os.path.join(cwd, "conf", "%s.conf" % name),
                         os.path.join(CONF, "cuckoo", "%s.conf" % name), section="malfam")
        say("next: set enabled = yes under [malfam] in %s/conf/processing.conf "
            "(and reporting.conf to patch report.json), then restart cuckoo" % cwd)
    else:
        say("note: no CWD= given; add conf/cuckoo/processing.conf to $CWD/conf/processing.conf")
    say("WARNING: %s and %s live inside the installed Cuckoo package: a pip install/upgrade "
        "of Cuckoo removes them. Run make install-cuckoo again afterwards."
        % (p["processing"], p["reporting"]))


def uninstall_cuckoo(pkg, cwd):
    p = cuckoo_paths(pkg)
    remove_lines(p["summary"])
    for key in ("template", "processing", "reporting", "client"):
        remove_file(p[key])
    if cwd:
        for name in ("processing", "reporting"):
            remove_block(os.path.join(cwd, "conf", "%s.conf" % name))


# ---- CAPEv2 -----------------------------------------------------------------------------------


def cape_paths(cape):
    tdir = os.path.join(cape, "web", "templates", "analysis")
    return {
        "pmodule": os.path.join(cape, "modules", "processing", "malfam.py"),
        "pconf": os.path.join(cape, "custom", "conf", "processing.conf.d", "malfam.conf"),
        "module": os.path.join(cape, "modules", "reporting", "malfam.py"),
        "client": os.path.join(cape, "custom", "malfam_client.py"),
        "conf": os.path.join(cape, "custom", "conf", "reporting.conf.d", "malfam.conf"),
        "services": os.path.join(cape, "custom", "analysis_services.py"),
        "tab": os.path.join(tdir, "malfam", "index.html"),
        "nav": os.path.join(tdir, "malfam", "_nav.html"),
        "pane": os.path.join(tdir, "malfam", "_pane.html"),
        "report": os.path.join(tdir, "report.html"),
    }


# report.html has one `{% if analysis.classification %}` before the Classification <li> and
# one before its tab-pane: ours go right before each.
CAPE_ANCHOR = "{% if analysis.classification %}"
CAPE_LINES = ['{% include "analysis/malfam/_nav.html" %}',
              '{% include "analysis/malfam/_pane.html" %}']


def install_cape(cape):
    for sub in ("processing", "reporting"):
        if not os.path.isfile(os.path.join(cape, "modules", sub, "__init__.py")):
            sys.exit("hostinstall: %s does not look like a CAPEv2 checkout "
                     "(no modules/%s/__init__.py)" % (cape, sub))
    p = cape_paths(cape)
    # The processing module labels every task before the reporting modules store it; the
    # reporting module is the write-back fallback for tasks it did not label.
    put_file(os.path.join(HERE, "cape_processing.py"), p["pmodule"])
    put_file(os.path.join(CONF, "cape", "processing.conf.d", "malfam.conf"), p["pconf"],
             keep_existing=True)
    put_file(os.path.join(HERE, "cape_reporting.py"), p["module"])
    put_file(os.path.join(HERE, "malfam_client.py"), p["client"])
    put_file(os.path.join(CONF, "cape", "reporting.conf.d", "malfam.conf"), p["conf"],
             keep_existing=True)
    append_block(p["services"], os.path.join(CONF, "cape", "analysis_services.py"))
    put_file(os.path.join(TPL, "cape", "malfam.html"), p["tab"])
    put_file(os.path.join(TPL, "cape", "malfam_nav.html"), p["nav"])
    put_file(os.path.join(TPL, "cape", "malfam_pane.html"), p["pane"])
    if not insert_lines(p["report"], [CAPE_ANCHOR, CAPE_ANCHOR], CAPE_LINES):
        say("add these two lines to %s by hand (tab list, then tab panes):\n  %s\n  %s"
            % (p["report"], CAPE_LINES[0], CAPE_LINES[1]))
    say("note: report.html is a tracked CAPE file: `git pull` in %s may stop on it; run "
        "make uninstall-cape first, then install again." % cape)
    say("next: restart cape-processor and cape-web; edit %s to tune." % p["pconf"])


def uninstall_cape(cape):
    p = cape_paths(cape)
    remove_lines(p["report"])
    remove_block(p["services"])
    for key in ("tab", "nav", "pane", "pmodule", "pconf", "module", "client", "conf"):
        remove_file(p[key])
    for d in (os.path.dirname(p["tab"]),):
        if os.path.isdir(d) and not os.listdir(d):
            os.rmdir(d)
            say("removed   %s/" % d)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["install-cuckoo", "uninstall-cuckoo", "install-cape",
                                       "uninstall-cape"])
    ap.add_argument("--pkg", help="installed cuckoo package dir (site-packages/cuckoo)")
    ap.add_argument("--python", help="Cuckoo's interpreter, to find --pkg")
    ap.add_argument("--cwd", help="Cuckoo working directory ($CWD, default ~/.cuckoo)")
    ap.add_argument("--cape", help="CAPEv2 checkout (e.g. /opt/CAPEv2)")
    a = ap.parse_args(argv)
    if a.action.endswith("cape"):
        if not a.cape:
            ap.error("--cape (make ... CAPE=/opt/CAPEv2) is required")
        (install_cape if a.action == "install-cape" else uninstall_cape)(a.cape)
        return 0
    pkg = a.pkg or find_cuckoo_pkg(a.python)
    if not pkg or not os.path.isdir(os.path.join(pkg, "processing")):
        ap.error("cannot find the installed cuckoo package: pass CUCKOO_PKG=.../site-packages/"
                 "cuckoo or CUCKOO_PYTHON=<the python Cuckoo runs on>")
    cwd = a.cwd or None
    (install_cuckoo if a.action == "install-cuckoo" else uninstall_cuckoo)(pkg, cwd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
