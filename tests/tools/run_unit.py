#!/usr/bin/env python3
"""Run a systemd oneshot service's ExecStart= lines the way systemd does, for tests on
machines without systemd as PID 1: the unit's Environment= lines, then its EnvironmentFile=
(or the file given with --env-file instead, which may be missing when the unit says "-"),
then ${NAME} expanded to one word and a lone $NAME split on whitespace into words, each
command run in turn until one fails. No shell is involved, as with systemd.

  run_unit.py UNIT [--env-file FILE] [--map FROM=TO ...]

--map replaces a program path (e.g. /usr/local/bin/malfam=build/malfam). Exit status: that of
the first command that failed, else 0; each command is printed to stderr before it runs.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys


def read_unit(path):
    env, env_files, execs, section = [], [], [], None
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
        elif key == "ExecStart":
            execs.append(value)
    return env, env_files, execs


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


def expand(cmd, env):
    words = []
    for word in shlex.split(cmd):
        lone = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if lone:  # $NAME alone: split on whitespace, nothing when empty
            words.extend(env.get(lone.group(1), "").split())
            continue
        words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                            lambda m: env.get(m.group(1), ""), word))
    return words


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("unit")
    ap.add_argument("--env-file")
    ap.add_argument("--map", action="append", default=[])
    a = ap.parse_args()
    assignments, env_files, execs = read_unit(a.unit)
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
    for cmd in execs:
        argv = expand(cmd, env)
        argv[0] = paths.get(argv[0], argv[0])
        print("run_unit: " + " ".join(argv), file=sys.stderr, flush=True)
        rc = subprocess.call(argv, env=run_env)
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
