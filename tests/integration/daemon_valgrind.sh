#!/bin/bash
# daemon_valgrind.sh - daemon_basic.sh with malfamd under valgrind memcheck, then one
# summary line per daemon process: "N errors, M bytes definitely lost". Fails when valgrind
# found an error or a definite leak (malfamd's exit status 99), or when the suite fails.
# MFD_LOAD_REQS (default 2 here, 10 in the plain suite) sets the requests per load client:
# memcheck runs the pool threads one at a time (64 x 1 takes about 4 s under it).
set -u
BUILD=${BUILD:-build}
LOGDIR=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)
rm -f "$LOGDIR"/valgrind-daemon.*.log
export MFD_LOAD_REQS=${MFD_LOAD_REQS:-2}
# The 16-34 MB CAPE reports take minutes each under memcheck; every code path they reach is
# reached by the smaller ones too. MFD_MAX_REPORT_BYTES= (empty) keeps them all.
export MFD_MAX_REPORT_BYTES=${MFD_MAX_REPORT_BYTES-8000000}
# linear, the default mode, runs combo as well. fusion would run every family's LSTM per
# request: about 200 s a request under memcheck, which runs the pool threads one at a time;
# the LSTM itself is checked by the Check suites under ASan and valgrind.
export MFD_TEST_MODE=${MFD_TEST_MODE-linear}
export MFD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
--show-leak-kinds=definite --track-fds=no --log-file=$LOGDIR/valgrind-daemon.%p.log"
bash "$(dirname "$0")/daemon_basic.sh"
rc=$?
n=0
for f in "$LOGDIR"/valgrind-daemon.*.log; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tail -1)
    lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tail -1)
    [ -n "$errs" ] || { echo "valgrind: $f has no summary (daemon killed?)"; rc=1; continue; }
    echo "valgrind: malfamd pid ${f##*daemon.}: ${errs} errors, ${lost:-0} bytes definitely lost"
    [ "$errs" = 0 ] && [ "${lost:-0}" = 0 ] || rc=1
done
[ "$n" -gt 0 ] || { echo "valgrind: no log written"; rc=1; }
[ $rc = 0 ] && echo "daemon_valgrind: 0 errors, 0 definitely lost in $n daemon runs"
exit $rc
