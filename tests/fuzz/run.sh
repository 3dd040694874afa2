#!/usr/bin/env bash
# run.sh - run libFuzzer targets built by `make fuzz` for FUZZ_SECONDS each.
#
#   BUILD=build/fuzz FUZZ_SECONDS=10 bash tests/fuzz/run.sh fuzz_extract fuzz_request ...
#
# Each target fuzzes a scratch corpus ($BUILD/corpus/<t>, kept between runs) seeded from the
# committed tests/fuzz/corpus/<t> and tests/fuzz/regress/<t>, which are only read. A crash,
# leak, timeout or OOM input is copied into tests/fuzz/regress/<t>/ (named by libFuzzer after
# its SHA-1), where `make check` replays it from then on. tests/fuzz/<t>.dict is used if present. One line per target:
#   fuzz_extract  runs 1234567  seconds 10  corpus 321  crashes 0
# Exit status 1 when any target found a crash. Extra libFuzzer flags: FUZZ_FLAGS.
set -u
BUILD=${BUILD:-build/fuzz}
SECS=${FUZZ_SECONDS:-10}
here=$(cd "$(dirname "$0")" && pwd)
status=0
for t in "$@"; do
    bin=$BUILD/bin/$t
    [ -x "$bin" ] || { echo "$t: $bin not built" >&2; status=1; continue; }
    work=$BUILD/corpus/$t art=$BUILD/artifacts/$t/ log=$BUILD/logs/$t.log
    mkdir -p "$work" "$art" "$(dirname "$log")"
    seeds=()
    for d in "$here/corpus/$t" "$here/regress/$t"; do [ -d "$d" ] && seeds+=("$d"); done
    rm -f "$art"crash-* "$art"leak-* "$art"timeout-* "$art"oom-* "$art"slow-unit-*
    # -timeout: one input taking > 10 s is a finding; -rss_limit_mb: libFuzzer's default.
    # A regression input that still fails is a known, unfixed bug: fuzzing would only find it
    # again (and again copy it), so the target is reported as failing and not fuzzed.
    known=("$here/regress/$t"/*)
    if [ -e "${known[0]}" ] && ! "$bin" "${known[@]}" >"$log" 2>&1; then
        printf '%-16s not fuzzed: a regression input still fails (log %s)\n' "$t" "$log"
        grep -o 'Running: .*' "$log" | tail -1 | sed 's/^/  died on: /' >&2
        status=1
        continue
    fi
    dict=()
    [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
    "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art" "${dict[@]}" ${FUZZ_FLAGS:-} "$work" "${seeds[@]}" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    new=()
    for f in "$art"*; do
        [ -f "$f" ] || continue
        b=$(basename "$f")
        case $b in crash-*|leak-*|timeout-*|oom-*) ;; *) continue ;; esac
        mkdir -p "$here/regress/$t"
        if [ ! -e "$here/regress/$t/$b" ]; then
            cp "$f" "$here/regress/$t/$b"
            new+=("tests/fuzz/regress/$t/$b")
        fi
    done
    crashes=$(ls "$art" | grep -cE '^(crash|leak|timeout|oom)-')
    printf '%-16s runs %-10s seconds %-4s corpus %-6s crashes %d (new %d)\n' "$t" "${runs:-?}" \
        "$SECS" "$(ls "$work" | wc -l)" "$crashes" "${#new[@]}"
    if [ "$rc" -ne 0 ] || [ "${#new[@]}" -gt 0 ]; then
        status=1
        echo "  exit $rc, log $log" >&2
        grep -m1 -E 'ERROR: |runtime error|==ERROR|deadly signal' "$log" | sed 's/^/  /' >&2
        for f in "${new[@]}"; do echo "  new regression input: $f" >&2; done
    fi
done
exit $status
