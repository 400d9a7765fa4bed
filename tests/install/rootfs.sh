#!/usr/bin/env bash
# tests/install/rootfs.sh DIR: a bare Debian 12 (bookworm) root in DIR, by
# debootstrap --variant=minbase from Debian's mirror, kept as DIR.tar.gz so
# that each install test starts from an untouched copy. Idempotent: does
# nothing when DIR.tar.gz exists (delete it, or make install-test FRESH=1,
# to build it again). Root only. Mirror: $INSTALL_MIRROR, else the first
# Debian URI of the host's apt sources, else deb.debian.org.
set -euo pipefail
DIR=${1:?usage: rootfs.sh DIR}
TAR=$DIR.tar.gz
say() { printf 'rootfs: %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, chroot)"; exit 2; }
[ -s "$TAR" ] && { say "using $TAR"; exit 0; }

mirror=${INSTALL_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || apt-get install -y debootstrap >&2

part=$DIR.partial
rm -rf "$part"
mkdir -p "$part"
t0=$(date +%s)
say "debootstrap bookworm (minbase) from $mirror into $part"
debootstrap --variant=minbase --include=ca-certificates bookworm "$part" "$mirror" >&2
# apt: bookworm, -updates and -security from the same mirror family
sec=${mirror%/debian}/debian-security
[ "${mirror%/debian}" = "$mirror" ] && sec=http://deb.debian.org/debian-security
cat >"$part/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $sec bookworm-security main
SRC
rm -rf "$part"/var/cache/apt/archives/*.deb
# Package scripts must not start daemons in a chroot: they would land on the
# host's ports. The test starts each daemon itself, as its unit would.
printf '#!/bin/sh\nexit 101\n' >"$part/usr/sbin/policy-rc.d"
chmod 755 "$part/usr/sbin/policy-rc.d"
printf '127.0.0.1\tlocalhost\n' >"$part/etc/hosts"
tar -C "$part" --numeric-owner -czpf "$TAR.partial" .
mv "$TAR.partial" "$TAR"
rm -rf "$part"
say "built $TAR ($(du -sh "$TAR" | cut -f1)) in $(($(date +%s) - t0)) s"
