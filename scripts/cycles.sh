#!/usr/bin/env bash
# No dependency cycles between the .c files of a folder: a file depends on
# another when it uses a function or global defined there (nm on the
# objects). Usage: scripts/cycles.sh "a.o b.o ..." ... : one argument per
# folder, its objects (a directory stands for all its .o files). Prints
# each folder's verdict; fails when one has a cycle (tsort names it).
set -uo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
for arg in "$@"; do
    if [ -d "$arg" ]; then objs=("$arg"/*.o); else read -ra objs <<<"$arg"; fi
    dir=$(dirname "${objs[0]}")
    for o in "${objs[@]}"; do
        b=$(basename "$o" .o)
        nm "$o" | awk '$1 == "U" { print $2 }' | sort -u >"$tmp/$b.u"
        nm "$o" | awk 'NF == 3 && $2 ~ /^[TDBRC]$/ { print $3 }' | sort -u >"$tmp/$b.d"
    done
    pairs=$(
        for a in "${objs[@]}"; do
            a=$(basename "$a" .o)
            echo "$a $a"
            for b in "${objs[@]}"; do
                b=$(basename "$b" .o)
                [ "$a" != "$b" ] && [ -n "$(comm -12 "$tmp/$a.u" "$tmp/$b.d")" ] && echo "$b $a"
            done
        done
    )
    if err=$(tsort <<<"$pairs" 2>&1 >/dev/null) && [ -z "$err" ]; then
        echo "cycles: $dir: none"
    else
        echo "cycles: $dir: $(tr '\n' ' ' <<<"$err")"
        rc=1
    fi
    rm -f "$tmp"/*
done
exit "$rc"
