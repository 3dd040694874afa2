#!/usr/bin/env python3
"""gen_corpus.py - a synthetic Mal-API-style corpus of F families x R training references, built
from the real Mal-API-2019 traces, for the scale benchmark (bench/scale.sh).

Each family starts from a real trace (its seed; --share families start from the same one, and
families outnumbering the real traces reuse them) made its own by family-level mutations:
--family-sub of the calls substituted, --motifs call motifs inserted. Each sample of the family is that base mutated
again: --sub of the calls substituted, a chunk dropped, a chunk repeated, a random start, at
most --cap calls. (--share 1 --sub 0.05 --family-sub 0.1 --motifs 3 makes families that
every reference mode tells apart, accuracy 1.0: useless for judging a faster scorer.) Everything follows from --seed
(one RNG per family, so a family does not change when F does). Besides the R training samples
(spread evenly over the families), --test-per-family samples per family form the held-out
"test" split that accuracy is measured on.

Writes OUT/calls.txt.gz, OUT/index.csv (row,label,split) and OUT/ApiIndex.txt (the real one),
the three files `malfam train --calls` reads.
"""
import argparse
import gzip
import io
import os
import random
import shutil
import sys


def read_lines(path):
    """The real traces as text lines of at least 10 calls (parsed when a family takes one)."""
    with gzip.open(path, "rt") as f:
        return [line for line in f if line.count(",") >= 9]


def parse(line, cap):
    return [int(x) for x in line.split(",", 2 * cap)[: 2 * cap] if x.strip()]


def mutate(rng, trace, nvocab, sub, cap):
    """One sample: substitutions at rate `sub`, one chunk dropped, one repeated, random start."""
    t = [rng.randrange(nvocab) if rng.random() < sub else c for c in trace]
    n = len(t)
    if n > 20:
        a = rng.randrange(n)
        t = t[:a] + t[a + rng.randrange(1, max(2, n // 20)):]
        a = rng.randrange(len(t))
        b = min(len(t), a + rng.randrange(1, max(2, n // 20)))
        t = t[:b] + t[a:b] + t[b:]
        t = t[rng.randrange(max(1, len(t) // 10)):]
    return t[:cap]


def family_base(rng, seed_trace, nvocab, cap, sub, motifs):
    """The family's own variant of its seed: `sub` substituted, motifs of 4-8 calls inserted."""
    t = [rng.randrange(nvocab) if rng.random() < sub else c for c in seed_trace[: 2 * cap]]
    for _ in range(motifs):
        motif = [rng.randrange(nvocab) for _ in range(rng.randrange(4, 9))]
        at = rng.randrange(len(t) + 1)
        t = t[:at] + motif + t[at:]
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", type=int, required=True)
    ap.add_argument("--refs", type=int, required=True, help="training samples in all")
    ap.add_argument("--test-per-family", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cap", type=int, default=1000, help="calls per sample at most")
    ap.add_argument("--share", type=int, default=4,
                    help="families made from the same real seed trace (so they differ by their "
                         "family mutations only) [4]")
    ap.add_argument("--sub", type=float, default=0.2,
                    help="per-sample substitution rate [0.2]")
    ap.add_argument("--family-sub", type=float, default=0.02,
                    help="family-level substitution rate [0.02]")
    ap.add_argument("--motifs", type=int, default=1, help="call motifs per family [1]")
    ap.add_argument("--data", required=True, help="the mal-api-2019-808 folder")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.families < 1 or a.refs < a.families or a.test_per_family < 0:
        sys.exit("gen_corpus: need 1 <= families <= refs and test-per-family >= 0")
    real = read_lines(os.path.join(a.data, "calls.txt.gz"))
    with open(os.path.join(a.data, "ApiIndex.txt")) as f:
        nvocab = sum(1 for line in f if line.strip())
    order = list(range(len(real)))
    random.Random(a.seed).shuffle(order)
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, "calls.txt.gz.tmp")
    row = 0
    with open(tmp, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="ascii") as calls, \
            open(os.path.join(a.out, "index.csv"), "w") as index:
        index.write("row,label,split\n")
        for fam in range(a.families):
            rng = random.Random(a.seed * 1000003 + fam)
            seed = real[order[(fam // max(1, a.share)) % len(real)]]
            base = family_base(rng, parse(seed, a.cap), nvocab, a.cap, a.family_sub, a.motifs)
            ntrain = a.refs // a.families + (fam < a.refs % a.families)
            for k in range(ntrain + a.test_per_family):
                t = mutate(rng, base, nvocab, a.sub, a.cap)
                calls.write(",".join(map(str, t)) + "\n")
                index.write("%d,fam%03d,%s\n" % (row, fam, "train" if k < ntrain else "test"))
                row += 1
    os.replace(tmp, os.path.join(a.out, "calls.txt.gz"))
    shutil.copyfile(os.path.join(a.data, "ApiIndex.txt"), os.path.join(a.out, "ApiIndex.txt"))
    print("gen_corpus: %d families, %d training + %d held-out samples in %s"
          % (a.families, a.refs, a.families * a.test_per_family, a.out))


if __name__ == "__main__":
    main()
