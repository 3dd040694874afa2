#!/bin/bash
# package.sh - the package lists and the Debian package:
#  1. `make demo` installs no test package, and every shared library the binaries load
#     belongs to a package of the runtime list (or one it depends on);
#  2. `make deb`: control fields, conffiles, contents, Depends within the runtime list,
#     lintian (when installed: errors fail, findings are printed);
#  3. the units' systemd-analyze security exposure (<= 3.0) and verify (malfamd's, the
#     retraining service and timer), malfamd's write access;
#  4. the package unpacked into a scratch root: `malfam --help`, `import malfam_client`
#     (classify takes mode), malfamd's default settings file, no run without --foreground;
#  5. dpkg -i/-r/-P into a scratch root (maintainer scripts chrootless, stand-ins for
#     adduser, deb-systemd-* and systemctl): the user made once, enabled, started only under
#     systemd with settings that pass --check-config, an upgrade keeps edited settings and
#     restarts, remove stops, purge leaves nothing.
set -u
. "$(dirname "$0")/daemon_common.sh"
TOP=$(cd "$HERE/../.." && pwd)
[ -x "$MALFAMD" ] && [ -x "$MALFAM" ] || fail "binaries missing in $BUILD (make all)"
if ldd "$MALFAMD" | grep -q libasan; then
    echo "skip - $BUILD is a sanitizer build: packaging and ldd checks are for the plain build"
    exit 0
fi
T=$(mktemp -d /tmp/malfam-pkg.XXXXXX)
trap 'rm -rf "$T"' EXIT
mk() { make -s --no-print-directory -C "$TOP" BUILD="$BUILD" "$@"; }

# ---- 1. package lists --------------------------------------------------------------------------
runtime=$(mk deps-list-runtime)
testonly=$(mk deps-list-test)
# what `make demo` would install: its install command, printed by make -n
demo=$(mk -n demo 2>/dev/null | sed -n 's/.*for p in \(.*\); do dpkg -s.*/\1/p' | head -1)
[ -n "$demo" ] || fail "make -n demo shows no package install"
for p in $demo; do
    for q in $testonly chromium python3-torch python3-django valgrind clang python3-pytest; do
        [ "$p" = "$q" ] && fail "make demo installs the test package $p"
    done
done
for p in $runtime; do [[ " $demo " == *" $p "* ]] || fail "make demo misses runtime package $p"; done
ok "make demo installs runtime + build + demo packages only ($(echo $demo | wc -w) packages)"

# the runtime list and every package it depends on (installed ones, alternatives included)
dpkg-query -W -f '${Package}\t${Pre-Depends}, ${Depends}\n' > "$T/deps.tsv"
allowed=$(DEPS=$T/deps.tsv $PY - $runtime <<'PY'
import os, re, sys
deps = {}
for line in open(os.environ["DEPS"]):
    name, _, rest = line.rstrip("\n").partition("\t")
    deps[name] = {re.split(r"[ :(]", a.strip())[0] for a in re.split(r"[,|]", rest) if a.strip()}
todo, seen = list(sys.argv[1:]), set()
while todo:
    p = todo.pop()
    if p not in seen:
        seen.add(p)
        todo.extend(deps.get(p, ()))
print(" ".join(sorted(seen)))
PY
)
[ -n "$allowed" ] || fail "no dependency closure of: $runtime"
# each library as ldd names it, resolved, and resolved without /usr (dpkg knows one of them);
# one dpkg -S for all: it reads every package's file list per call
for b in "$MALFAM" "$MALFAMD" "$BUILD/example"; do
    ldd "$b" | awk -v b="$b" '$3 ~ /^\// {print b, $3}'
done > "$T/libs"
while read -r b lib; do r=$(readlink -f "$lib"); echo "$lib"; echo "$r"; echo "${r#/usr}"; done \
    < "$T/libs" | sort -u > "$T/paths"
xargs dpkg -S < "$T/paths" 2>/dev/null | sed 's/, [^:]*//' > "$T/owners"
nlib=0
while read -r b lib; do
    r=$(readlink -f "$lib")
    pkg=$(awk -F': ' -v a="$lib" -v b="$r" -v c="${r#/usr}" \
              '$2 == a || $2 == b || $2 == c { sub(/:.*/, "", $1); print $1; exit }' "$T/owners")
    [ -n "$pkg" ] || fail "$b: $lib belongs to no package"
    [[ " $allowed " == *" $pkg "* ]] || fail "$b: $lib is in $pkg, not in the runtime list"
    nlib=$((nlib + 1))
done < "$T/libs"
ok "$nlib shared libraries of malfam, malfamd, example come from the runtime list"

# ---- 2. the package -------------------------------------------------------------------------
mk deb > "$T/deb.log" 2>&1 || fail "make deb: $(tail -20 "$T/deb.log")"
DEB=$(sed -n 's/^built //p' "$T/deb.log")
[ -f "$DEB" ] || fail "make deb built no package: $(cat "$T/deb.log")"
dpkg-deb --info "$DEB" > "$T/info" || fail "dpkg-deb --info $DEB"
dpkg-deb -f "$DEB" Package Architecture | grep -q '^Package: malfam$' || fail "Package: $(cat "$T/info")"
[ "$(dpkg-deb -I "$DEB" conffiles | tr '\n' ' ')" = "/etc/malfam/malfamd.conf /etc/malfam/retrain.conf " ] ||
    fail "conffiles: $(dpkg-deb -I "$DEB" conffiles)"
for s in postinst prerm postrm; do grep -q " $s " "$T/info" || fail "no $s in $DEB"; done
depends=$(dpkg-deb -f "$DEB" Depends)
for p in libuv1 libyajl2 libinih1 zlib1g libopenblas0 libc6 adduser python3; do
    [[ "$depends" == *"$p"* ]] || fail "Depends lacks $p: $depends"
done
for p in $(echo "$depends" | tr ',|' '\n\n' | sed 's/(.*//; s/ //g'); do
    [[ " $allowed " == *" $p "* ]] || fail "Depends names $p, outside the runtime list"
done
dpkg-deb --contents "$DEB" | awk '{print $NF}' > "$T/contents"
for f in ./usr/bin/malfam ./usr/sbin/malfamd ./usr/lib/libmalfam.a ./usr/include/malfam/malfam.h \
         ./usr/share/man/man1/malfam.1.gz ./usr/share/man/man5/malfamd.conf.5.gz \
         ./usr/share/man/man8/malfamd.8.gz ./etc/malfam/malfamd.conf \
         ./lib/systemd/system/malfamd.service ./lib/systemd/system/malfam-retrain.service \
         ./lib/systemd/system/malfam-retrain.timer ./etc/malfam/retrain.conf \
         ./usr/lib/python3/dist-packages/malfam_client.py \
         ./usr/share/malfam/cuckoo_module/cape_reporting.py \
         ./usr/share/malfam/cuckoo_module/templates/cape/malfam.html \
         ./usr/share/doc/malfam/copyright ./var/lib/malfam/; do
    grep -qxF "$f" "$T/contents" || fail "$DEB lacks $f"
done
grep -q 'internal.h\|_priv.h' "$T/contents" && fail "$DEB ships a private header"
ok "$(basename "$DEB"): $(wc -l < "$T/contents") entries, conffile, Depends: $depends"

if command -v lintian >/dev/null; then
    lintian --allow-root "$DEB" > "$T/lintian" 2>&1
    sed 's/^/  lintian: /' "$T/lintian"
    grep -q '^E: ' "$T/lintian" && fail "lintian errors"
    ok "lintian: no errors ($(grep -c '^W: ' "$T/lintian") warnings)"
else
    echo "skip - lintian not installed (make deps-test)"
fi

# ---- 3. the unit ----------------------------------------------------------------------------
mkdir -p "$T/x"
dpkg-deb -x "$DEB" "$T/x"
UNIT=$T/x/lib/systemd/system/malfamd.service
grep -qx 'ProtectSystem=strict' "$UNIT" || fail "unit: ProtectSystem is not strict"
grep -qx 'RuntimeDirectory=malfam' "$UNIT" || fail "unit: no socket directory"
grep -q '^ReadWritePaths=' "$UNIT" || fail "unit: no ReadWritePaths for the analyses"
grep -q '^ExecStart=/usr/sbin/malfamd -c /etc/malfam/malfamd.conf --foreground$' "$UNIT" ||
    fail "unit: $(grep ^ExecStart "$UNIT")"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze security --offline=true "$UNIT" > "$T/sec" 2>&1
    level=$(sed -n 's/.*Overall exposure level for malfamd.service: \([0-9.]*\).*/\1/p' "$T/sec")
    [ -n "$level" ] || fail "systemd-analyze: $(tail -5 "$T/sec")"
    awk -v l="$level" 'BEGIN { exit !(l <= 3.0) }' || fail "unit exposure $level > 3.0"
    ok "systemd-analyze security: exposure $level (<= 3.0)"
    # every directive known to this systemd (the security rating skips unknown ones)
    systemd-analyze verify "$UNIT" 2>&1 | grep -i 'unknown\|invalid\|failed to parse' &&
        fail "systemd-analyze verify: the unit has bad directives"
    # the retraining service and its timer: the same checks (the service runs as malfam too)
    RUNIT=$T/x/lib/systemd/system/malfam-retrain.service
    grep -q '^ExecStart=/usr/bin/malfam train --store ' "$RUNIT" &&
        grep -q '^EnvironmentFile=-/etc/malfam/retrain.conf$' "$RUNIT" ||
        fail "retrain unit: $(grep '^ExecStart\|^EnvironmentFile' "$RUNIT")"
    systemd-analyze security --offline=true "$RUNIT" > "$T/sec" 2>&1
    level=$(sed -n 's/.*Overall exposure level for malfam-retrain.service: \([0-9.]*\).*/\1/p' "$T/sec")
    [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 3.0) }' ||
        fail "retrain unit exposure '$level': $(tail -5 "$T/sec")"
    systemd-analyze verify "$RUNIT" "${RUNIT%.service}.timer" 2>&1 |
        grep -i 'unknown\|invalid\|failed to parse' && fail "systemd-analyze verify: retrain units"
    ok "retrain service and timer: verified, exposure $level (<= 3.0)"
else
    echo "skip - systemd-analyze not installed (make deps-test)"
fi

# ---- 4. the unpacked package ----------------------------------------------------------------
"$T/x/usr/bin/malfam" --help > "$T/help" 2>&1 || fail "installed malfam --help: $(cat "$T/help")"
PYTHONPATH=$T/x/usr/lib/python3/dist-packages /usr/bin/python3 -c '
import inspect, malfam_client
assert malfam_client.__file__.startswith("'"$T"'/x/"), malfam_client.__file__
assert "mode" in inspect.signature(malfam_client.Client.classify).parameters' ||
    fail "import malfam_client from the package"
"$T/x/usr/sbin/malfamd" --check-config > "$T/out" 2>&1 && fail "check-config of a missing file passed"
grep -q '/etc/malfam/malfamd.conf' "$T/out" || fail "check-config names no file: $(cat "$T/out")"
"$T/x/usr/sbin/malfamd" -c "$T/x/etc/malfam/malfamd.conf" > "$T/out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q 'supervisor' "$T/out" || fail "malfamd without --foreground: exit $rc: $(cat "$T/out")"
# the packaged host installer on a CAPEv2 tree stand-in, and back
mkdir -p "$T/cape/modules/reporting" "$T/cape/modules/processing" "$T/cape/custom"
touch "$T/cape/modules/reporting/__init__.py" "$T/cape/modules/processing/__init__.py" \
      "$T/cape/custom/__init__.py"
/usr/bin/python3 "$T/x/usr/share/malfam/cuckoo_module/hostinstall.py" install-cape --cape "$T/cape" \
    > "$T/out" 2>&1 || fail "packaged hostinstall.py install-cape: $(cat "$T/out")"
for f in modules/reporting/malfam.py custom/conf/reporting.conf.d/malfam.conf custom/malfam_client.py; do
    [ -f "$T/cape/$f" ] || fail "packaged install-cape: no $f: $(cat "$T/out")"
done
/usr/bin/python3 "$T/x/usr/share/malfam/cuckoo_module/hostinstall.py" uninstall-cape --cape "$T/cape" \
    > "$T/out" 2>&1 || fail "packaged hostinstall.py uninstall-cape: $(cat "$T/out")"
[ -f "$T/cape/modules/reporting/malfam.py" ] && fail "uninstall-cape left the module"
ok "unpacked: malfam --help, import malfam_client (classify(mode=)), malfamd defaults to /etc/malfam/malfamd.conf, refuses to fork, hostinstall.py install-cape and back"

# ---- 5. dpkg on a scratch root --------------------------------------------------------------
# dpkg --root with chrootless scripts (they see the root as $DPKG_ROOT); stand-ins record the
# commands that would touch the host (users, systemd). --force-depends: the root holds no
# other package.
mkdir -p "$T/stub" "$T/r/var/lib/dpkg/updates" "$T/r/var/lib/dpkg/info"
touch "$T/r/var/lib/dpkg/status" "$T/r/var/lib/dpkg/available" "$T/users"
for c in adduser deluser delgroup deb-systemd-helper deb-systemd-invoke systemctl getent; do
    printf '#!/bin/sh\necho "%s $*" >> "%s/calls"\n' "$c" "$T" > "$T/stub/$c"
done
# getent knows the users adduser made; deluser forgets them
echo 'grep -qx "$2" "'"$T"'/users"' >> "$T/stub/getent"
echo 'echo "$*" | grep -q -- --group && echo malfam >> "'"$T"'/users"' >> "$T/stub/adduser"
echo 'sed -i "/^malfam$/d" "'"$T"'/users"' >> "$T/stub/deluser"
chmod +x "$T"/stub/*
R=$T/r
dp() { : > "$T/calls"; PATH=$T/stub:$PATH dpkg --root="$R" --force-script-chrootless \
           --force-depends --force-not-root --force-unsafe-io --log=/dev/null "$@" > "$T/sout" 2>&1 ||
           fail "dpkg $*: $(cat "$T/sout")"; }
called() { grep -q "^$1" "$T/calls"; }

dp -i "$DEB"
called "adduser --system --group" || fail "install made no malfam user: $(cat "$T/calls")"
called "deb-systemd-helper enable malfamd.service" || fail "not enabled: $(cat "$T/calls")"
called "deb-systemd-helper enable malfam-retrain.timer" && fail "the retraining timer was enabled"
called "deb-systemd-invoke" && fail "started without systemd: $(cat "$T/calls")"
[ -x "$R/usr/sbin/malfamd" ] && [ -f "$R/etc/malfam/malfamd.conf" ] || fail "install: files missing"
dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Conffiles}' malfam | grep -q ' /etc/malfam/malfamd.conf ' ||
    fail "conffile not registered"
mkdir -p "$R/run/systemd/system"          # from here on, systemd "runs"
dp -i "$DEB"                              # reinstall: the upgrade path, default settings
called adduser && fail "second install made the user again"
called "deb-systemd-invoke" && fail "started with the unset default settings"
grep -q "not started" "$T/sout" || fail "no word on the unstarted service: $(cat "$T/sout")"
MODEL=$(find_model)
[ -n "$MODEL" ] || fail "no model for the configured-start case"
mkdir -p "$T/roots"
printf '[malfamd]\nmodel = %s\nallowed_roots = %s\n' "$MODEL" "$T/roots" > "$R/etc/malfam/malfamd.conf"
# a root the unit's sandbox leaves read-only (no ReadWritePaths): --check-config says so
if unshare -m true 2>/dev/null; then
    unshare -m sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" &&
        "$2" --check-config -c "$3"' sh "$T/roots" "$R/usr/sbin/malfamd" \
        "$R/etc/malfam/malfamd.conf" > "$T/out" 2>&1 || fail "check-config, read-only root: $(cat "$T/out")"
    grep -q "allowed_roots: $T/roots: not writable (Read-only file system).*ReadWritePaths=" "$T/out" ||
        fail "no word on the read-only root: $(cat "$T/out")"
    ok "check-config names a root the sandbox leaves read-only (ReadWritePaths)"
else
    echo "skip - no mount namespace here (unshare -m) for the read-only root check"
fi
# an upgrade to a newer version: the edited conffile is kept, the service restarted
dpkg-deb -R "$DEB" "$T/v2"
sed -i 's/^Version: .*/&+1/' "$T/v2/DEBIAN/control"
dpkg-deb --root-owner-group -b "$T/v2" "$T/v2.deb" >/dev/null || fail "repack as a newer version"
dp -i "$T/v2.deb"
grep -q "allowed_roots = $T/roots" "$R/etc/malfam/malfamd.conf" || fail "upgrade replaced the edited settings"
called "deb-systemd-invoke restart malfamd.service" || fail "valid settings, not restarted: $(cat "$T/sout")"
dp -r malfam
called "deb-systemd-invoke stop malfamd.service malfam-retrain.timer malfam-retrain.service" ||
    fail "remove did not stop the services and the timer: $(cat "$T/calls")"
[ -e "$R/usr/sbin/malfamd" ] && fail "remove left the binary"
[ -f "$R/etc/malfam/malfamd.conf" ] || fail "remove took the settings (only purge does)"
called "deb-systemd-helper mask malfam-retrain.timer" || fail "remove did not mask the timer"
dp -i "$DEB"                              # installed again after a remove: the timer unmasked
called "deb-systemd-helper unmask malfam-retrain.timer" || fail "reinstall left the timer masked"
called "deb-systemd-helper enable malfam-retrain.timer" && fail "reinstall enabled the timer"
touch "$R/etc/malfam/malfamd.conf.dpkg-old"
dp -P malfam
called "deb-systemd-helper purge malfamd.service" && called "deb-systemd-helper purge malfam-retrain.timer" ||
    fail "purge kept the enablement: $(cat "$T/calls")"
called "deluser --system" || fail "purge kept the malfam user"
[ -s "$T/users" ] && fail "purge left the user: $(cat "$T/users")"
left=$(cd "$R" && find . -path ./var/lib/dpkg -prune -o -path ./run -prune -o -type f -print)
[ -z "$left" ] || fail "purge left: $left"
[ -e "$R/etc/malfam" ] || [ -e "$R/var/lib/malfam" ] && fail "purge left /etc/malfam or /var/lib/malfam"
ok "dpkg on a scratch root: install (user, enabled), start only under systemd with valid settings, upgrade keeps the settings and restarts, remove stops and masks the timer, a reinstall unmasks it, purge leaves nothing"
echo "package.sh: all ok"
