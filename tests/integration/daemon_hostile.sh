#!/bin/bash
# daemon_hostile.sh - malfamd against hostile clients (issue 12, items 4-8, 10, 11): each
# attack runs while a well-behaved client pings on its own connection, whose p99 must stay
# under 50 ms (plus 4x its own p99 without attackers, measured first in the same run). The
# daemon runs with `ulimit -n 256`, one worker, 16 slots, short timeouts and a small budget.
#   baseline       the well-behaved client's ping p99 alone
#   unread (4)     N pipelined stats never read: RSS flat, client dropped after idle_timeout
#   junk (5)       MiBs after a stream body while its last job waits for the pool: not read
#   fill, stats (8) the latency window full, then 20000 pipelined stats by one client
#   trickle (6)    stream bodies trickled over many connections: the client is still served,
#                  tricklers dropped by request_timeout
#   tokens (7)     stalled streams each holding a 15.5 MiB token: peak RSS under the budget
#   slowloris (10) 1030 half-sent request lines at ulimit -n 256: a connected client keeps
#                  its answers, newcomers are served, evictions logged
#   halfclose (11) request + body + half-close (the README's socat example), with write-back
# HOSTILE_LONG=1 (make soak) runs the long forms: 300k unread stats, 100k stats, 64 tricklers.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/daemon_common.sh"
setup daemon_hostile
LONG=${HOSTILE_LONG:-0}
BUDGET=128
sed -i -e 's/^max_jobs = .*/max_jobs = 1/' -e 's/^max_queue = .*/max_queue = 15/' \
    -e 's/^idle_timeout = .*/idle_timeout = 3/' "$T/d.conf"
cat >> "$T/d.conf" <<CONF
request_timeout = 3
memory_budget = ${BUDGET}M
socket_mode = 0666
CONF
chmod 755 "$T"   # the per-uid test runs its attackers as nobody
cp "$T/root/a/cuckoo207_benign_cmdkey.json" "$T/root/a/target.json"
# ASan keeps freed blocks in quarantine (256 MiB by default), which the budget cannot see
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
# an ASan build runs its loop 2-5x slower: its ping limit gets 3x the headroom
ldd "$MALFAMD" 2>/dev/null | grep -q libasan && export HOSTILE_SLOW=3
start_daemon prlimit --nofile=256:256
H() { "$PY" "$HERE/hostile.py" "$T/s.sock" "$DPID" "$@"; }

out=$(H baseline 1) || fail "baseline"; echo "$out"
BASE_P99=$(echo "$out" | sed -n 's/.*ping_p99_ms=\([0-9.]*\).*/\1/p'); export BASE_P99

if [ "$LONG" = 1 ]; then UNREAD=300000; NSTATS=100000; NTRICKLE=64; else
    UNREAD=100000; NSTATS=20000; NTRICKLE=24; fi
H unread "$UNREAD" 24 || fail "unread answers (item 4)"
grep -q 'does not read its answers' "$T/daemon.log" || fail "no log line for the unread client"
ok "item 4: unread answers bounded, client dropped with a log line"

# reports whose trace comes after 48 MB of other keys keep the pool busy for a moment (the
# reading stops once the trace is full, so real reports are done after a few KB)
"$PY" -c 'import sys; sys.stdout.write("{\"static\":[" + "\"abcdefghij\"," * 4000000 + "0],\"behavior\":{\"processes\":[]}}")' > "$T/root/a/padded.json"
H junk_after_body 48 8 "$T/root/a/padded.json" "$T/root/a/padded.json" "$T/root/a/padded.json" \
    "$T/root/a/padded.json" || fail "bytes after a stream body (item 5)"
ok "item 5: bytes after a stream body are not buffered"

H fill 8192 || fail "filling the latency window"
H stats_flood "$NSTATS" || fail "stats flood (item 8)"
ok "item 8: $NSTATS pipelined stats, pings served"

H trickle "$NTRICKLE" "$T/root/a/cuckoo207_benign_cmdkey.json" 3 || fail "trickle (item 6)"
grep -q 'too slow: classify_stream body not complete' "$T/daemon.log" || fail "no log line for tricklers"
ok "item 6: tricklers dropped, the well-behaved client served"

H tokens 8 "$BUDGET" 3 || fail "stalled 16 MB tokens (item 7)"
ok "item 7: peak RSS under memory_budget"

H slowloris 1030 "$T/root/a/cuckoo207_benign_cmdkey.json" || fail "slowloris at ulimit -n 256 (item 10)"
grep -q 'connections full' "$T/daemon.log" || fail "no log line for full connections"
grep -q 'Too many open files' "$T/daemon.log" && fail "EMFILE reached a request"
ok "item 10: fds kept for work, idle evicted, newcomers served"

n0=$(grep -c 'op=classify_stream.*write_back.*ok$' "$T/daemon.log")
H halfclose 20 "$T/root/a/cape22_55dcd387.json" "$T/root/a/target.json" || fail "half-close (item 11)"
n1=$(grep -c 'op=classify_stream.*write_back.*ok$' "$T/daemon.log")
[ $((n1 - n0)) = 20 ] || fail "write-backs logged: $((n1 - n0)), want 20"
ok "item 11: half-closed requests answered, 20 write-backs"

stop_daemon || fail "malfamd did not stop cleanly"
ok "daemon_hostile"
