#!/usr/bin/env bash
# Runs the cmocka unit test programs given as arguments; prints each one's
# result and a closing "N passed, N failed" line; fails if any failed.
set -uo pipefail
passed=0
failed=0
for t in "$@"; do
    out=$("$t" 2>&1)
    rc=$?
    p=$(grep -oE '\[  PASSED  \] [0-9]+' <<<"$out" | awk '{s+=$4} END {print s+0}')
    f=$(grep -oE '\[  FAILED  \] [0-9]+ test' <<<"$out" | awk '{s+=$4} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out"
        printf 'FAIL %s\n' "$(basename "$t")"
    else
        printf 'ok   %-22s %s tests\n' "$(basename "$t")" "$p"
    fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
