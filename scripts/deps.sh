#!/usr/bin/env bash
# Installs what is missing, quietly when nothing is:
#   deps.sh        everything: the build, the stack (PostgreSQL, nginx), the
#                  tests (Debian's chromium, npm packages, the pinned Node.js)
#   deps.sh build  only what a compile and the unit tests need
# Debian packages come from apt (after apt-get update), as root or with
# password-less sudo; otherwise it names them and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

build_pkgs=(gcc make pkg-config libfcgi-dev libjansson-dev libpq-dev libcmocka-dev nettle-dev)
pkgs=("${build_pkgs[@]}")
if [ "${1:-}" != build ]; then
    pkgs+=(postgresql nginx clang libclang-rt-dev spawn-fcgi curl openssl chromium w3m)
    # Debian's npm (it brings Debian's nodejs) installs the test packages,
    # the pinned Node.js among them; the system's node is never replaced.
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo)
    else
        echo "deps: missing Debian packages: ${missing[*]}" >&2
        echo "deps: not root and no password-less sudo; install them with" >&2
        echo "      sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    # Debian starts a package's service on install; the system nginx and
    # PostgreSQL are not ours to start, so hold service starts off meanwhile.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
        trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "${1:-}" = build ] && exit 0

# npm packages of the black-box tests (never part of the shipped server),
# with the Node.js they run on (see scripts/node)
if [ -f tests/package-lock.json ]; then
    stamp=tests/node_modules/.chat-stamp
    if [ ! -f "$stamp" ] || [ tests/package-lock.json -nt "$stamp" ]; then
        echo "deps: npm ci in tests/"
        (cd tests && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch "$stamp"
    fi
fi
scripts/node -e 0 || { echo "deps: the pinned Node.js does not start" >&2; exit 1; }
