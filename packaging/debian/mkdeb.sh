#!/usr/bin/env bash
# mkdeb.sh STAGE OUT VERSION ARCH MAINTAINER - turn a `make install PREFIX=/usr DESTDIR=STAGE`
# tree into the Debian package OUT (run by `make deb`): stripped binaries, compressed man
# pages, copyright and changelog, conffiles, maintainer scripts, Depends from dpkg-shlibdeps.
set -euo pipefail
stage=$1 out=$2 version=$3 arch=$4 maint=$5
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
doc=$stage/usr/share/doc/malfam
# one date for the changelog and every file: the commit's, so two builds give the same bytes
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}

strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$stage/usr/bin/malfam" "$stage/usr/sbin/malfamd"
strip --strip-debug --remove-section=.comment "$stage"/usr/lib/libmalfam.a
find "$stage/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
install -d "$doc" "$stage/var/lib/malfam" "$stage/DEBIAN"

{   # machine-readable copyright (DEP-5), the license text from LICENSE
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: malfam"
    echo
    echo "Files: *"
    sed -n 's/^Copyright (c) /Copyright: /p' "$top/LICENSE"
    echo "License: Expat"
    sed -n '/^Permission/,$p' "$top/LICENSE" | sed -e 's/^$/./' -e 's/^/ /'
} > "$doc/copyright"
{
    echo "malfam ($version) unstable; urgency=medium"
    echo
    echo "  * Built from the malfam source tree (make deb)."
    echo
    echo " -- $maint  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.Debian.gz"

# Depends: the shared libraries the binaries load, from the shlibs/symbols files
# (dpkg-shlibdeps wants a debian/control beside it), plus what the scripts and client run.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/debian"
printf 'Source: malfam\n\nPackage: malfam\nArchitecture: any\n' > "$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O "$stage/usr/bin/malfam" "$stage/usr/sbin/malfamd")
depends="${shlibs#shlibs:Depends=}, adduser, python3"

( cd "$stage" && find etc -type f | sed 's|^|/|' | sort ) > "$stage/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: malfam
Version: $version
Architecture: $arch
Maintainer: $maint
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Section: utils
Priority: optional
Description: malware family labels for Cuckoo and CAPEv2 sandbox reports
 malfam names the malware family of a sandbox analysis from its Windows API
 call sequence. This package holds the malfamd daemon (a systemd service on a
 Unix socket), the malfam command (train, score, label, eval), the C library
 and headers, the Python client (import malfam_client) and the Cuckoo/CAPEv2
 host modules under /usr/share/malfam.
CONTROL
( cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum > DEBIAN/md5sums )
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/control"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "built $out"
