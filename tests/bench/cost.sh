#!/usr/bin/env bash
# tests/bench/cost.sh: chat-ws's instructions per delivery, which the load
# of the machine cannot change (docs/benchmarks.md, "Cost per delivery").
# One chat-ws worker under callgrind on 127.0.0.1:PORT, 200 subscribers and
# one publisher with one message in flight (each message goes out alone,
# so batching is the same in every run); instructions are counted from 6 s
# after the ramp (the end of the warm-up) to the end of the run and divided
# by the deliveries of the measured window. A relative number: compare two
# builds with it, against one database (a build refuses a newer schema).
#
#   tests/bench/cost.sh CHAT_WS_BINARY "DB conninfo" [PORT]
#
# Needs valgrind and the bench's loadgen (make bench builds it once).
set -euo pipefail
BIN=$1 DB=$2 PORT=${3:-28499} SUBS=200
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LG=$ROOT/build/bench/loadgen
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
[ -x "$LG" ] || { echo "cost.sh: $LG missing (make bench builds it)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "cost.sh: valgrind missing" >&2; exit 2; }

valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" --instr-atstart=no \
    "$BIN" --db "$DB" --listen "127.0.0.1:$PORT" --workers 1 --send-rate 100000 \
    --req-rate 100000 --max-conns 5000 >"$OUT/chat-ws.log" 2>&1 &
vg=$!
for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done
ulimit -n "$(ulimit -Hn)"
"$LG" --proto chat --port "$PORT" --mode fanout --subs $SUBS --pubs 1 --windows 1 \
    --warmup 8 --duration 10 --src-ips 1 --room "cost-$$" >"$OUT/lg.json" 2>"$OUT/lg.err" &
lg=$!
# the ramp is over once the worker holds every subscriber's socket
until [ "$(ls "/proc/$vg/fd" 2>/dev/null | wc -l)" -gt $SUBS ]; do
    kill -0 "$vg" 2>/dev/null || { cat "$OUT/chat-ws.log" >&2; kill $lg; exit 1; }
    sleep 0.2
done
sleep 6 # the joins' presence settles within the 8 s warm-up (a measurement, not a test)
callgrind_control -i on "$vg" >/dev/null
wait $lg
kill -TERM "$vg"
wait "$vg" || true
published=$(grep -o '"published":[0-9]*' "$OUT/lg.json" | cut -d: -f2)
ir=$(callgrind_annotate "$OUT/cg.out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
[ "${published:-0}" -gt 0 ] || { echo "cost.sh: nothing published (see $OUT)" >&2; trap - EXIT; exit 1; }
echo "published=$published instructions=$ir per_delivery=$((ir / (published * SUBS)))"
