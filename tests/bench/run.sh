#!/usr/bin/env bash
# tests/bench/run.sh: `make bench` (scripts/stack.sh bench). Runs our stack
# and the systems users would otherwise pick on this machine, in one run,
# through the same nginx (tests/bench/nginx.bench.conf), with the same load
# generator (tests/bench/loadgen.c), and prints a table of ratios
# (docs/benchmarks.md explains every row).
#
#   make bench                         everything (about 10 minutes)
#   BENCH_ONLY="fanout latency" make bench     some scenarios: fanout latency
#                                      idle buffers lp sse sends
#   BENCH_SYSTEMS="chat bare" ...      some systems: chat sio siopg nchan bare
#   BENCH_SCALE=0.5 ...                shorter windows (quick look)
#
# Environment from the Makefile: VAR (var/bench) PORT (28080) BIN.
# Our stack runs on $PORT as `make run` would (stack.sh start), with chat-ws
# given CHAT_WS_ARGS (default below); the anchors get ports $PORT+10...
# Results: $VAR/results/{results.jsonl,table.md,run.log}.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE=$ROOT/scripts/node   # the pinned Node.js of tests/package.json
HERE=$ROOT/tests/bench
VAR=${VAR:-$ROOT/var/bench}
mkdir -p "$VAR"
VAR=$(cd "$VAR" && pwd)
PORT=${PORT:-28080}
BIN=${BIN:-$ROOT/build/release}
export VAR PORT BIN
ONLY=${BENCH_ONLY:-fanout latency idle buffers lp sse sends moderation}
SYSTEMS=${BENCH_SYSTEMS:-chat sio siopg nchan bare}
SCALE=${BENCH_SCALE:-1}
# The request limit of chat-ws (50/s, burst 100 per connection) is not an
# option: the publishers are 50 connections. --send-rate lifts the
# 10 messages/s per connection a user gets; --max-conns lets one worker
# take half of the 20,000 idle connections whatever the balance.
export CHAT_WS_ARGS=${CHAT_WS_ARGS:---send-rate 100000 --max-conns 19000}
PUBS=50

B=$VAR/benchrun            # anchors' nginx instances, pid files, logs
RES=$VAR/results
TOOLS=$ROOT/build/bench
mkdir -p "$B" "$RES" "$TOOLS"
JSONL=$RES/results.jsonl

P_NGX=$((PORT + 10))       # the bench nginx of the system under test
P_SIO1=$((PORT + 21))      # node processes behind it
P_SIO2=$((PORT + 22))
P_BARE=$((PORT + 30))

say() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() { say "$*"; exit 1; }
secs() { awk -v a="$1" -v s="$SCALE" 'BEGIN { printf "%g", a * s }'; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
has_sys() { [[ " $SYSTEMS " == *" $1 "* ]]; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---- what the bench needs beyond `make deps` ------------------------------
ensure_packages() {
    local need=()
    [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(libnginx-mod-nchan)
    [ ${#need[@]} -eq 0 ] && return 0
    local sudo=()
    if ! is_root; then
        if sudo -n true 2>/dev/null; then sudo=(sudo); else
            die "missing Debian packages: ${need[*]} (sudo apt-get install -y ${need[*]})"
        fi
    fi
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local guard=0
    # the system nginx is not ours to restart (the package's trigger would)
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
        guard=1
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        say "could not install ${need[*]}: the rows that need them are skipped"
    [ "$guard" = 1 ] && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
    return 0
}

build_tools() {
    local cflags="-O2 -g -std=gnu11 -Wall -Wextra -Werror"
    [ "$TOOLS/loadgen" -nt "$HERE/loadgen.c" ] ||
        cc $cflags -o "$TOOLS/loadgen" "$HERE/loadgen.c"
    [ "$TOOLS/bare" -nt "$HERE/bare.c" ] ||
        cc $cflags -o "$TOOLS/bare" "$HERE/bare.c" -lnettle
    if [ ! -d "$HERE/node_modules/socket.io" ] || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.chat-stamp" ]; then
        say "npm ci in tests/bench"
        (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch "$HERE/node_modules/.chat-stamp"
    fi
}

# ---- processes we start: stopped on the way out ------------------------
declare -A STARTED=()   # name -> pid
stack_up=0
cleanup() {
    local n
    for n in "${!STARTED[@]}"; do stop_proc "$n"; done
    if [ "$stack_up" = 1 ]; then "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_proc() {
    local n=$1 pid=${STARTED[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "STARTED[$n]"
}

wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$port"
}

# the database of our stack (what chat-ws was started with)
db_url() {
    local pid
    pid=$(ws_pids | head -n 1)
    tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n '/^--db$/{n;p;q}'
}

# ---- memory: VmRSS sums, KiB ---------------------------------------------
rss_kib() {
    local s=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
ws_pids() { pgrep -f "^$BIN/chat-ws .*$VAR/run/ws.sock" || true; }
fcgi_pid() { curl -fsS -m 2 "http://127.0.0.1:$PORT/chat/health" | sed -n 's/.*"fcgi":{[^}]*"pid":\([0-9]*\).*/\1/p'; }
tree_pids() { # a pid and its children
    echo "$1"
    pgrep -P "$1" || true
}
ngx_pids() { tree_pids "$(cat "$B/ngx/nginx.pid")"; }

# ---- the bench nginx: one instance per system from nginx.bench.conf ------
# nginx_up SYSTEM WORKERS [REUSEPORT] [PROXY_BUFFER]
nginx_up() {
    local sys=$1 workers=$2 reuse=${3:-} pbuf=${4:-} d=$B/ngx user=""
    nginx_down
    rm -rf "$d"
    mkdir -p "$d/tmp"
    is_root && user="user root root;"
    if [ -n "$pbuf" ]; then
        # a copy of conf/ with one setting of chat-proxy.conf changed
        mkdir -p "$d/chat"
        cp "$ROOT"/conf/*.conf "$d/chat/"
        sed -i -e "s/^proxy_buffer_size .*/proxy_buffer_size $pbuf;/" "$d/chat/chat-proxy.conf"
        grep -q "^proxy_buffer_size $pbuf;" "$d/chat/chat-proxy.conf" || die "chat-proxy.conf has no proxy_buffer_size line"
    else
        ln -sfn "$ROOT/conf" "$d/chat"
    fi
    local ups="server 127.0.0.1:$P_SIO1 max_fails=0;"
    [ "$sys" = sio2 ] || [ "$sys" = siopg ] && ups="$ups server 127.0.0.1:$P_SIO2 max_fails=0;"
    local section=$sys
    [ "$sys" = sio2 ] || [ "$sys" = siopg ] && section=sio
    awk -v keep="$section" '
        /^#@end/ { skip = 0; next }
        /^#@[a-z]+/ { name = substr($1, 3); skip = (name != keep); next }
        !skip { print }' "$HERE/nginx.bench.conf" |
        sed -e "s|@BVAR@|$d|g" -e "s|@PORT@|$P_NGX|g" -e "s|@WORKERS@|$workers|g" \
            -e "s|@REUSEPORT@|$reuse|g" -e "s|@STACKVAR@|$VAR|g" -e "s|@ROOT@|$ROOT|g" \
            -e "s|@SIO_UPSTREAM@|$ups|g" -e "s|@USER@|$user|g" >"$d/nginx.conf"
    nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" -t -q || die "nginx rejected $d/nginx.conf"
    nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" &
    STARTED[nginx]=$!
    wait_port "$P_NGX"
}
nginx_down() { stop_proc nginx; }

sio_up() { # sio_up N [pg]
    local n=$1 pg=${2:-} url=""
    sio_down
    if [ -n "$pg" ]; then
        url="postgresql:///sio?host=$(db_url | sed -n 's/.*host=\([^ ]*\).*/\1/p')&user=chat"
        psql "$(db_url | sed 's/dbname=[^ ]*/dbname=postgres/')" -qAtc \
            "SELECT 1 FROM pg_database WHERE datname='sio'" | grep -q 1 ||
            psql "$(db_url | sed 's/dbname=[^ ]*/dbname=postgres/')" -qc "CREATE DATABASE sio" >/dev/null
        psql "$(db_url | sed 's/dbname=[^ ]*/dbname=sio/')" -qc "SET client_min_messages = warning;
            CREATE TABLE IF NOT EXISTS socket_io_attachments (
            id bigserial UNIQUE, created_at timestamptz DEFAULT NOW(), payload bytea)" >/dev/null
    fi
    PORT=$P_SIO1 PG_URL=$url "$NODE" "$HERE/sio_server.mjs" >>"$B/sio1.log" 2>&1 &
    STARTED[sio1]=$!
    if [ "$n" = 2 ]; then
        PORT=$P_SIO2 PG_URL=$url "$NODE" "$HERE/sio_server.mjs" >>"$B/sio2.log" 2>&1 &
        STARTED[sio2]=$!
    fi
    wait_port "$P_SIO1"
    [ "$n" = 2 ] && wait_port "$P_SIO2"
    return 0
}
sio_down() { stop_proc sio1; stop_proc sio2; }
sio_pids() { local n; for n in sio1 sio2; do [ -n "${STARTED[$n]:-}" ] && echo "${STARTED[$n]}"; done; return 0; }

bare_up() { # bare_up PROCS
    bare_down
    "$TOOLS/bare" --port "$P_BARE" --procs "${1:-1}" >>"$B/bare.log" 2>&1 &
    STARTED[bare]=$!
    wait_port "$P_BARE"
}
bare_down() { stop_proc bare; }

# bring the system up; sets LG (loadgen arguments to reach it)
system_up() { # system_up SYS [idle]
    local sys=$1 idle=${2:-} workers=2 reuse=""
    if [ -n "$idle" ]; then workers=4; reuse=reuseport; fi
    case $sys in
        chat) nginx_up chat $workers "$reuse" ${BUF:-}; LG=(--proto chat --port "$P_NGX") ;;
        sio) sio_up 1; nginx_up sio $workers "$reuse"; LG=(--proto sio --port "$P_NGX") ;;
        sio2) sio_up 2; nginx_up sio2 $workers "$reuse"; LG=(--proto sio --port "$P_NGX") ;;
        siopg) sio_up 2 pg; nginx_up siopg $workers "$reuse"; LG=(--proto sio --port "$P_NGX") ;;
        nchan) nginx_up nchan $workers "$reuse"; LG=(--proto nchan --port "$P_NGX") ;;
        bare) bare_up "$([ -n "$idle" ] && echo 2 || echo 1)"; LG=(--proto bare --port "$P_BARE") ;;
    esac
}
system_down() { nginx_down; sio_down; bare_down; }

# run the load generator; its JSON line goes to results.jsonl with a label
lg() { # lg LABEL SYS args...
    local label=$1 sys=$2 out
    shift 2
    out=$("$TOOLS/loadgen" "${LG[@]}" "$@" 2>>"$B/loadgen.err" | tail -n 1) || true
    [ -n "$out" ] || out='{"error":"loadgen failed"}'
    echo "{\"case\":\"$label\",\"system\":\"$sys\",\"r\":$out}" >>"$JSONL"
    say "$label $sys: $(summary "$out")"
}
summary() {
    "$NODE" -e 'const r = JSON.parse(process.argv[1]);
      const f = [];
      if (r.deliveries_per_s !== undefined) f.push(`${Math.round(r.deliveries_per_s)} deliveries/s (${r.msgs_per_s} msg/s)`);
      if (r.acks_per_s !== undefined) f.push(`${r.acks_per_s} acks/s`);
      if (r.latency_ms) f.push(`latency p50 ${r.latency_ms.p50} p99 ${r.latency_ms.p99} max ${r.latency_ms.max} ms`);
      if (r.lost !== undefined) f.push(`lost ${r.lost} dups ${r.dups} late ${r.late} seq_err ${r.seq_errors}`);
      f.push(`ready ${r.ready}/${r.subs}`);
      if (r.errors) f.push(`errors ${r.errors}`);
      console.log(f.join(", "));' "$1" 2>/dev/null || echo "$1"
}
record() { # record LABEL SYS JSON
    echo "{\"case\":\"$1\",\"system\":\"$2\",\"r\":$3}" >>"$JSONL"
    say "$1 $2: $3"
}

# ---- scenarios ---------------------------------------------------------
scn_fanout() {
    local sys n
    for sys in $SYSTEMS; do
        system_up "$sys"
        # closed loop; every system gets the best of the same three windows
        # (messages in flight, not yet delivered to every subscriber)
        lg fanout-1000 "$sys" --mode fanout --subs 1000 --pubs $PUBS --windows 16,64,256 \
            --warmup "$(secs 2)" --duration "$(secs 3)" --src-ips 8
        lg fanout-10000 "$sys" --mode fanout --subs 10000 --pubs $PUBS --windows 4,16,64 \
            --warmup "$(secs 2)" --duration "$(secs 3)" --src-ips 8
        system_down
    done
}

scn_latency() {
    local sys rate
    for sys in $SYSTEMS; do
        system_up "$sys"
        for rate in 200 20; do
            lg "rate-$rate" "$sys" --mode rate --rate $rate --subs 1000 --pubs $PUBS \
                --warmup "$(secs 2)" --duration "$(secs 6)" --src-ips 8
        done
        system_down
    done
}

# 20,000 idle connections: RSS of the server processes before and after
idle_one() { # idle_one LABEL SYS N
    local label=$1 sys=$2 n=$3 before_srv before_ngx after_srv after_ngx ready
    local room_args=(--rooms 100)
    sleep 1
    before_srv=$(rss_kib $(srv_pids "$sys"))
    before_ngx=$( [ "$sys" = bare ] && echo 0 || rss_kib $(ngx_pids))
    "$TOOLS/loadgen" "${LG[@]}" --mode idle --subs "$n" --procs 2 --src-ips 16 --conc 200 \
        --room "$label-$$" "${room_args[@]}" --hold 300 >"$B/idle.out" 2>>"$B/loadgen.err" &
    local lgpid=$!
    STARTED[loadgen]=$lgpid
    for _ in $(seq 1 1800); do
        grep -q '^READY' "$B/idle.out" 2>/dev/null && break
        kill -0 "$lgpid" 2>/dev/null || break
        sleep 0.1
    done
    ready=$(sed -n 's/^READY //p' "$B/idle.out")
    [ -n "$ready" ] || ready='{"ready":0}'
    sleep 3   # presence flushes, timers settle
    after_srv=$(rss_kib $(srv_pids "$sys"))
    after_ngx=$( [ "$sys" = bare ] && echo 0 || rss_kib $(ngx_pids))
    stop_proc loadgen
    local conns
    conns=$("$NODE" -e 'console.log(JSON.parse(process.argv[1]).ready || 0)' "$ready")
    record "$label" "$sys" "$("$NODE" -e '
      const [r, n, bs, as, bn, an] = process.argv.slice(1).map((x, i) => i ? Number(x) : JSON.parse(x));
      const per = (a, b) => n ? +(((b - a) * 1024) / n).toFixed(0) : null;
      r.server_rss_kib = { before: bs, after: as }; r.nginx_rss_kib = { before: bn, after: an };
      r.server_bytes_per_conn = per(bs, as); r.nginx_bytes_per_conn = per(bn, an);
      r.total_bytes_per_conn = r.server_bytes_per_conn + r.nginx_bytes_per_conn;
      console.log(JSON.stringify(r));' "$ready" "$conns" "$before_srv" "$after_srv" "$before_ngx" "$after_ngx")"
}
srv_pids() {
    case $1 in
        chat) ws_pids ;;
        sio | sio2 | siopg) sio_pids ;;
        nchan) ;;
        bare) tree_pids "${STARTED[bare]}" ;;
    esac
}

scn_idle() {
    local sys
    # a fresh daemon: memory freed by the earlier scenarios would be reused
    # and hide what 20,000 connections cost
    if has_sys chat; then
        "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true
        "$ROOT/scripts/stack.sh" start >/dev/null
    fi
    for sys in $SYSTEMS; do
        [ "$sys" = siopg ] && continue   # same process as sio for idle memory
        local s=$sys
        [ "$sys" = sio ] && s=sio2       # one node process cannot hold 20,000 files
        system_up "$s" idle
        idle_one idle-20000 "$sys" 20000
        system_down
    done
}

# nginx's proxy_buffer_size for upgraded connections: memory and throughput
scn_buffers() {
    local b
    has_sys chat || return 0
    for b in 4k 1k 512; do
        BUF=$b system_up chat idle
        idle_one "buffers-$b-idle" chat 20000
        system_down
        BUF=$b system_up chat
        lg "buffers-$b-fanout" chat --mode fanout --subs 1000 --pubs $PUBS --windows 64,256 \
            --warmup "$(secs 2)" --duration "$(secs 5)" --src-ips 8
        system_down
    done
}

# 10,000 parked long-polls in one chat-fcgi worker (tests/bench/lp_bench.mjs)
scn_lp() {
    has_sys chat || return 0
    local out
    out=$(cd "$ROOT/tests" && ulimit -n 20000 && CHAT_URL="http://127.0.0.1:$PORT/chat/" \
        timeout 300 "$NODE" bench/lp_bench.mjs --polls 10000 --rooms 100 --light-polls 10 --light-sends 50 \
        2>>"$B/lp_bench.err") || say "lp_bench failed (see $B/lp_bench.err)"
    local line
    while read -r line; do
        [ -n "$line" ] || continue
        record "lp-$("$NODE" -e 'console.log(JSON.parse(process.argv[1]).phase)' "$line")" chat "$line"
    done <<<"$out"
}

# Server-Sent Events against long-poll: 200 readers of one room, 20 msg/s
# for 10 s on each; then 2,000 open streams in one worker (tests/bench/sse_bench.mjs)
scn_sse() {
    has_sys chat || return 0
    local out line
    out=$(cd "$ROOT/tests" && ulimit -n 20000 && CHAT_URL="http://127.0.0.1:$PORT/chat/" \
        timeout 300 "$NODE" bench/sse_bench.mjs --readers 200 --rate 20 --seconds "$(secs 10)" --streams 2000 \
        2>>"$B/sse_bench.err") || say "sse_bench failed (see $B/sse_bench.err)"
    while read -r line; do
        [ -n "$line" ] || continue
        record "sse-$("$NODE" -e 'console.log(JSON.parse(process.argv[1]).phase)' "$line")" chat "$line"
    done <<<"$out"
}

# persisted sends/s, 100 concurrent senders: ours (group commit) through
# nginx, and one transaction per message (pgbench calling chat_post once per
# message, 100 clients, straight to PostgreSQL: no nginx, no daemon)
scn_sends() {
    has_sys chat || return 0
    system_up chat
    lg sends-group chat --mode sends --pubs 100 --depth 1 --rooms 10 --room "pers$$" \
        --warmup "$(secs 2)" --duration "$(secs 5)"
    system_down
    local url script out tps
    url=$(db_url)
    script=$B/pgbench-post.sql
    cat >"$script" <<'SQL'
\set r random(0, 9)
SELECT count(*) FROM chat_post(ARRAY['pgb-' || :r]::text[], ARRAY['~pgbench']::text[], ARRAY['persisted']::text[], ARRAY[NULL]::text[]);
SQL
    out=$(pgbench -n -c 100 -j 2 -T "$(secs 6)" -f "$script" "$url" 2>&1) || true
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)
    local lat
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out" | head -n 1)
    record sends-one-per-tx pgbench "{\"acks_per_s\":${tps:-0},\"latency_avg_ms\":${lat:-0},\"clients\":100}"
    # what PostgreSQL does with the same 100 clients when each call posts 100
    cat >"$script" <<'SQL'
\set r random(0, 9)
SELECT count(*) FROM chat_post(array_fill('pgb-' || :r, ARRAY[100]), array_fill('~pgbench'::text, ARRAY[100]), array_fill('persisted'::text, ARRAY[100]), array_fill(NULL::text, ARRAY[100]));
SQL
    out=$(pgbench -n -c 10 -j 2 -T "$(secs 6)" -f "$script" "$url" 2>&1) || true
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)
    record sends-batch-100 pgbench "{\"acks_per_s\":$(awk -v t="${tps:-0}" 'BEGIN{printf "%.0f", t*100}'),\"clients\":10,\"batch\":100}"
}

# search on a million messages, and sends to a room while retention prunes
# a million of its messages (tests/bench/moderation_bench.mjs)
scn_moderation() {
    has_sys chat || return 0
    local out line
    out=$(cd "$ROOT/tests" && CHAT_URL="http://127.0.0.1:$PORT/chat/" DATABASE_URL="$(db_url)" \
        timeout 600 "$NODE" bench/moderation_bench.mjs --messages 1000000 --rate 20 \
        2>>"$B/moderation_bench.err") || say "moderation_bench failed (see $B/moderation_bench.err)"
    while read -r line; do
        [ -n "$line" ] || continue
        record "mod-$("$NODE" -e 'console.log(JSON.parse(process.argv[1]).phase)' "$line")" chat "$line"
    done <<<"$out"
}

# ---- main ------------------------------------------------------------------
if [ "${1:-}" = serve ]; then
    # run.sh serve SYS [idle]: bring one system up as the bench does (ours:
    # with the stack) and keep it up until Ctrl-C, to profile it by hand
    build_tools
    ulimit -n "$(ulimit -Hn)"
    if [ "$2" = chat ] || [ "$2" = siopg ]; then
        "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true
        "$ROOT/scripts/stack.sh" start
        stack_up=1
    fi
    system_up "$2" "${3:-}"
    say "up: $TOOLS/loadgen ${LG[*]} --mode fanout|rate|idle|sends ...  (Ctrl-C stops)"
    while :; do sleep 3600; done
fi
: >"$JSONL"
exec > >(tee "$RES/run.log") 2>&1
ensure_packages
build_tools
for t in nginx psql pgbench; do command -v $t >/dev/null || die "$t not found (make deps)"; done
ulimit -n "$(ulimit -Hn)"
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), nginx $(nginx -v 2>&1 | sed 's|.*/||'), node $("$NODE" --version), $(psql --version | awk '{print "PostgreSQL " $3}')"
say "starting our stack: VAR=$VAR PORT=$PORT CHAT_WS_ARGS=\"$CHAT_WS_ARGS\" (persistence on: fsync, synchronous_commit)"
"$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true
"$ROOT/scripts/stack.sh" start
stack_up=1

for s in fanout latency idle buffers lp sse sends moderation; do
    want "$s" || continue
    say "== $s"
    "scn_$s"
done

"$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true
stack_up=0
"$NODE" "$HERE/report.mjs" "$JSONL" | tee "$RES/table.md"
say "results: $RES (results.jsonl, table.md, run.log)"
