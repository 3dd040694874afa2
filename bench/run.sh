#!/usr/bin/env bash
# make bench: every bench/bench_*.sh in turn. Each prints lines "name n seconds ratio"
# (ratio against a reference measured in the same run) and the figures it is about.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build} PYTHON=${PYTHON:-/usr/bin/python3}
export MF_DATA=${MF_DATA:-$(cd ../shared/data && pwd)}
echo "# malfam bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
fail=0
for b in bench/bench_*.sh; do
    echo "## $b"
    bash "$b" || { echo "!! $b failed"; fail=1; }
done
exit $fail
