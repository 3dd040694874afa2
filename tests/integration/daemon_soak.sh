#!/bin/bash
# daemon_soak.sh - the long robustness runs of the daemon and their figures:
#   1. daemon_faults.sh with MFD_KILL_TRIALS (100) kill -9 during write-back;
#   2. daemon_files.sh with SOAK_RACE_SECONDS (60) per race: root swap, report replacement;
#   3. bench_load: 64 clients (SOAK_CLIENTS) for SOAK_SECONDS (60) against one malfamd, mixed
#      classify / classify_stream / invalid requests on the real reports, every valid answer
#      checked against the offline library path.
# Fuzzing (make fuzz FUZZ_SECONDS=60) is run by the Makefile's soak target after this script.
#   3. daemon_hostile.sh with HOSTILE_LONG=1 (issue 12's hostile clients, long forms).
# Prints one "soak:" line per figure; exit 1 if a report was lost or an answer was wrong.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/daemon_common.sh"
TRIALS=${MFD_KILL_TRIALS:-100}
SECS=${SOAK_SECONDS:-60}
NCL=${SOAK_CLIENTS:-64}
rc=0

# 1. kill -9 during write-back
out=$(MFD_KILL_TRIALS=$TRIALS bash "$HERE/daemon_faults.sh" 2>&1)
frc=$?
echo "$out" | sed 's/^/  faults: /'
line=$(echo "$out" | grep -o 'kill -9 x[0-9]* during write-back: [0-9]* original, [0-9]* labelled, [0-9]* broken')
if [ $frc = 0 ] && [ -n "$line" ]; then
    set -- $(echo "$line" | grep -o '[0-9][0-9]*')   # 9 TRIALS ORIG LAB BROKEN
    echo "soak: kill -9 trials survived $(( $3 + $4 ))/$2 ($3 original, $4 labelled), reports lost = $5"
else
    echo "soak: kill -9 trials FAILED (daemon_faults.sh exit $frc)"; rc=1
fi

# 2. the races of daemon_files.sh, long: a root swapped for a symlink, a report replaced
#    every ~2 ms during write-backs (SOAK_RACE_SECONDS each, 60)
out=$(MFD_RACE_SECONDS=${SOAK_RACE_SECONDS:-60} bash "$HERE/daemon_files.sh" 2>&1)
frc=$?
out=$(echo "$out" | grep -v 'malfamd info')
echo "$out" | sed 's/^/  files: /'
sw=$(echo "$out" | sed -n 's/^root swap: \([0-9]*\) swaps, \([0-9]*\) answers: .*, \([0-9]*\) on the file outside$/\1 \2 \3/p')
rp=$(echo "$out" | sed -n 's/^replace race: \([0-9]*\) replacements, \([0-9]*\) lost; write-backs: \([0-9]*\) answers.*/\1 \2 \3/p')
if [ $frc = 0 ] && [ -n "$sw" ] && [ -n "$rp" ]; then
    set -- $sw; echo "soak: root swapped $1 times during $2 requests, answers from outside the roots = $3"
    set -- $rp; echo "soak: report replaced $1 times during $3 write-backs, replacements lost = $2"
else
    echo "soak: races FAILED (daemon_files.sh exit $frc)"; rc=1
fi

# 3. load for a fixed time
[ -x "$BUILD/bench_load" ] || fail "$BUILD/bench_load missing (make BUILD=$BUILD $BUILD/bench_load)"
setup daemon_soak
start_daemon
mode=$(sed -n 's/^mode = //p' "$T/d.conf")
files=$(ls "$T"/root/a/*.json)
lout=$("$BUILD/bench_load" -s "$T/s.sock" -c "$NCL" -t "$SECS" --stream 20 --invalid 5 \
    --model "$T/model" ${mode:+--mode "$mode"} --name soak_load $files 2>&1)
lrc=$?
echo "$lout" | sed 's/^/  load: /'
stop_daemon || { echo "soak: malfamd did not stop cleanly after the load"; rc=1; }
reqs=$(echo "$lout" | sed -n 's/.*(\([0-9]*\) requests, \([0-9]*\) unexpected).*/\1 \2/p')
set -- $reqs
if [ $lrc = 0 ] && [ -n "$reqs" ]; then
    echo "soak: load held $NCL clients x ${SECS} s = $1 requests, errors = $2 (unexpected answers)"
else
    echo "soak: load FAILED (bench_load exit $lrc, ${2:-?} unexpected of ${1:-?})"; rc=1
fi

# 3. hostile clients, long forms (issue 12): 300k unread stats, 100k pipelined stats, 64
#    tricklers, with the same checks as the short forms in make check
hout=$(HOSTILE_LONG=1 bash "$HERE/daemon_hostile.sh" 2>&1)
hrc=$?
echo "$hout" | grep -v ' malfamd ' | sed 's/^/  hostile: /'
if [ $hrc = 0 ]; then
    echo "soak: hostile clients (long forms) held: $(echo "$hout" | grep -c '^ok - item') items ok"
else
    echo "soak: hostile clients FAILED (daemon_hostile.sh exit $hrc)"; rc=1
fi
exit $rc
