#!/usr/bin/env bash
# Installs what the build, the stack and the tests need and is missing:
# Debian packages (after apt-get update) and the test suite's npm packages.
# Quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(gcc make pkg-config libfcgi-dev libjansson-dev libpq-dev postgresql nginx
      libcmocka-dev nettle-dev clang libclang-rt-dev spawn-fcgi curl openssl chromium)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

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

# npm packages of the black-box tests (never part of the shipped server)
if [ -f tests/package-lock.json ]; then
    stamp=tests/node_modules/.chat-stamp
    if [ ! -f "$stamp" ] || [ tests/package-lock.json -nt "$stamp" ]; then
        echo "deps: npm ci in tests/"
        (cd tests && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch "$stamp"
    fi
fi
