#!/usr/bin/env bash
# fuzz_replay.sh - replay every fuzz target's seed and regression corpus through its plain
# replayer ($BUILD/fuzz_<t>, built from tests/fuzz/fuzz_<t>.c + replay.c, no libFuzzer), and
# the real reports of $MF_DATA/reports (.gz ones decompressed to a temp dir) through
# fuzz_extract and fuzz_writeback. A crash or a failed check in a target aborts its replayer: this test fails.
set -u
BUILD=${BUILD:-build}
: "${MF_DATA:?MF_DATA is not set}"
reports=$MF_DATA/reports
[ -d "$reports" ] || { echo "fuzz_replay: $reports: missing (MF_DATA)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# decompressed once, used by the targets that read whole reports
for f in "$reports"/*.json.gz; do
    [ -e "$f" ] && gzip -dc "$f" >"$tmp/$(basename "$f" .gz)"
done

fail=0
n=0
for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    bin=$BUILD/$t
    [ -x "$bin" ] || { echo "fuzz_replay: $bin: not built" >&2; fail=1; continue; }
    dirs=()
    for d in tests/fuzz/corpus/$t tests/fuzz/regress/$t; do [ -d "$d" ] && dirs+=("$d"); done
    if [ "$t" = fuzz_extract ] || [ "$t" = fuzz_writeback ]; then
        dirs+=("$tmp")
        for f in "$reports"/*.json; do [ -e "$f" ] && dirs+=("$f"); done
    fi
    [ ${#dirs[@]} -gt 0 ] || continue
    if "$bin" "${dirs[@]}"; then
        n=$((n + 1))
    else
        echo "fuzz_replay: FAIL $t (see the \"died on input\" line; rerun: $bin -v FILE)" >&2
        fail=1
    fi
done
[ $fail -eq 0 ] && echo "fuzz_replay: $n targets replayed, ok"
exit $fail
