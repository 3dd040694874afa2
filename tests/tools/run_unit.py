#!/usr/bin/env python3
"""Run a systemd oneshot service's commands the way systemd does, for tests on machines
without systemd as PID 1: the unit's Environment= lines, then its EnvironmentFile= (or the file
given with --env-file instead, which may be missing when the unit says "-"); in each command
"$$" is a literal "$", ${NAME} is expanded inside its word and a lone $NAME is split on
whitespace into words. ExecStartPre= then ExecStart= lines run in turn until one fails (a "-"
prefix ignores its failure); then the ExecStopPost= lines run with SERVICE_RESULT set to
"success" or "exit-code", as systemd sets it.

  run_unit.py UNIT [--env-file FILE] [--map FROM=TO ...]

--map replaces a path wherever it occurs in a command's words (e.g.
/usr/local/bin/malfam=build/malfam, also inside a `sh -c` script). Exit status: that of the
first command that failed, else 0; each command is printed to stderr before it runs.

What it does not do: User=, the sandboxing and system call filter, a clean environment (the
commands inherit this process's) and the other command prefixes (@ + !); a test through it
shows the unit's logic and commands work, not that its hardening lets them.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys

KEYS = ("ExecStartPre", "ExecStart", "ExecStopPost")


def read_unit(path):
    env, env_files, cmds, section = [], [], {k: [] for k in KEYS}, None
    for raw in open(path):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]":
            continue
        key, _, value = line.partition("=")
        if key == "Environment":
            env.extend(shlex.split(value))
        elif key == "EnvironmentFile":
            env_files.append(value)
        elif key in cmds:
            cmds[key].append(value)
    return env, env_files, cmds


def read_env_file(path, env):
    for raw in open(path):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name.strip()] = value


def expand_word(word, env):
    # "$$" first: what it leaves is a literal "$", never the start of a name
    parts = word.split("$$")
    return "$".join(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                           lambda m: env.get(m.group(1), ""), p) for p in parts)


def expand(cmd, env):
    words = []
    for word in shlex.split(cmd):
        lone = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if lone:  # $NAME alone: split on whitespace, nothing when empty
            words.extend(env.get(lone.group(1), "").split())
        else:
            words.append(expand_word(word, env))
    return words


def run(cmd, env, run_env, paths):
    ignore = cmd.startswith("-")
    argv = expand(cmd.lstrip("-"), env)
    for src, dst in paths.items():
        argv = [w.replace(src, dst) for w in argv]
    print("run_unit: " + " ".join(argv), file=sys.stderr, flush=True)
    rc = subprocess.call(argv, env=run_env)
    return 0 if ignore else rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("unit")
    ap.add_argument("--env-file")
    ap.add_argument("--map", action="append", default=[])
    a = ap.parse_args()
    assignments, env_files, cmds = read_unit(a.unit)
    env = {}
    for item in assignments:
        name, _, value = item.partition("=")
        env[name] = value
    for spec in env_files:
        optional = spec.startswith("-")
        path = a.env_file or spec.lstrip("-")
        if os.path.exists(path):
            read_env_file(path, env)
        elif not optional:
            sys.exit(f"run_unit: {path}: no such environment file")
    paths = dict(m.split("=", 1) for m in a.map)
    run_env = dict(os.environ, **env)
    status = 0
    for cmd in cmds["ExecStartPre"] + cmds["ExecStart"]:
        status = run(cmd, env, run_env, paths)
        if status != 0:
            break
    run_env["SERVICE_RESULT"] = "success" if status == 0 else "exit-code"
    for cmd in cmds["ExecStopPost"]:
        run(cmd, env, run_env, paths)
    return status


if __name__ == "__main__":
    sys.exit(main())
