#!/usr/bin/env bash
# `make multihost`: several chat hosts and a PostgreSQL pair that fails
# over, all on this one machine, in network namespaces made here and
# removed on the way out (docs/operations.md, docs/ha.md).
#
#   chatmh-net     the "switch": bridge brf (front, 10.213.1.0/24) and
#                  bridge brb (back, 10.213.2.0/24)
#   chatmh-lb      the load-balancing nginx (front .10); the test's clients
#                  run here and reach it at 127.0.0.1:80; also on the back
#                  net (.10), to check the database as an operator would
#   chatmh-h1..h3  chat hosts: nginx (front .11-.13) + chat-ws + chat-fcgi,
#                  database on the back net (.11-.13)
#   chatmh-db1, -db2 PostgreSQL under pg_auto_failover (back .21, .22):
#                  a primary and a synchronous standby
#   chatmh-mon     the pg_auto_failover monitor (back .30)
#
# Usage: multihost.sh run          up, the fault run (tests/multihost/), down
#        multihost.sh up | down    for iteration (down also cleans a crash)
#        multihost.sh kill-db NODE | start-db NODE | primary | db-state
#        multihost.sh partition H down|up | blackhole H down|up
#        multihost.sh kill-host H | revive-host H
#        multihost.sh stop-host H | start-host H | health H | drain H | undrain H
#        multihost.sh bench        pgbench of chat_post() on the running pair
# Environment: VAR (default var/multihost) BIN (default build/release)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR=${VAR:-$ROOT/var/multihost}
BIN=${BIN:-$ROOT/build/release}
mkdir -p "$VAR"
VAR=$(cd "$VAR" && pwd)
P=chatmh                   # namespace prefix (down removes every chatmh-*)
HOSTS=(h1 h2 h3)
DBS=(db1 db2)
FRONT=10.213.1
BACK=10.213.2
declare -A FADDR=([lb]=$FRONT.10 [h1]=$FRONT.11 [h2]=$FRONT.12 [h3]=$FRONT.13)
declare -A BADDR=([lb]=$BACK.10 [h1]=$BACK.11 [h2]=$BACK.12 [h3]=$BACK.13
    [db1]=$BACK.21 [db2]=$BACK.22 [mon]=$BACK.30)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
# The conninfo every daemon uses: both database hosts, the writable one
# wins; keepalives and a TCP user timeout so that a dead peer is noticed.
DB="host=${BADDR[db1]},${BADDR[db2]} port=5432 user=chat dbname=chat target_session_attrs=read-write connect_timeout=2 keepalives_idle=5 keepalives_interval=2 keepalives_count=2 tcp_user_timeout=5000"
MONITOR="postgres://autoctl_node@${BADDR[mon]}:5432/pg_auto_failover?sslmode=disable"
PGHOME=/var/tmp/chat-mh-$(printf '%s' "$VAR" | md5sum | cut -c1-12)

say() { printf 'multihost: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
in_ns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
as_pg() { runuser -u postgres -- "$@"; }

# Waits until "$@" succeeds, every 0.2 s, at most $1 seconds (what: $2).
wait_for() {
    local secs=$1 what=$2 end
    shift 2
    end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { say "timed out after ${secs} s waiting for $what"; return 1; }
        sleep 0.2
    done
}

# ---- the network ---------------------------------------------------------
net_up() {
    local n
    ip netns add "$P-net"
    in_ns net ip link set lo up
    for br in brf brb; do
        in_ns net ip link add $br type bridge
        in_ns net ip link set $br up
    done
    for n in lb mon "${HOSTS[@]}" "${DBS[@]}"; do
        ip netns add "$P-$n"
        in_ns "$n" ip link set lo up
        if [ -n "${FADDR[$n]:-}" ]; then     # front: eth0
            in_ns net ip link add "f-$n" type veth peer name eth0 netns "$P-$n"
            in_ns net ip link set "f-$n" master brf up
            in_ns "$n" ip addr add "${FADDR[$n]}/24" dev eth0
            in_ns "$n" ip link set eth0 up
        fi
        in_ns net ip link add "b-$n" type veth peer name eth1 netns "$P-$n"
        in_ns net ip link set "b-$n" master brb up
        in_ns "$n" ip addr add "${BADDR[$n]}/24" dev eth1
        in_ns "$n" ip link set eth1 up
    done
}

# Every process of every namespace of ours, then the namespaces.
net_down() {
    local ns pids
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
        for _ in $(seq 1 50); do
            [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
            sleep 0.1
        done
        ip netns del "$ns" 2>/dev/null || say "could not remove namespace $ns"
    done
}

# ---- PostgreSQL under pg_auto_failover ------------------------------------
# pg_autoctl as postgres in NODE's namespace, with a /var/run/postgresql of
# its own (a private mount): the nodes' sockets never meet each other's, nor
# the system's. PGDATA and the configuration are NODE's.
autoctl() {  # autoctl NODE ARGS...
    local n=$1
    shift
    in_ns "$n" unshare -m --propagation private bash -c \
        'mount --bind "$1" /var/run/postgresql && shift && exec runuser -u postgres -- "$@"' \
        - "$PGHOME/sock-$n" env PGDATA="$PGHOME/$n" XDG_CONFIG_HOME="$PGHOME/cfg-$n" \
        XDG_DATA_HOME="$PGHOME/share-$n" XDG_RUNTIME_DIR="$PGHOME/rt-$n" pg_autoctl "$@"
}

# Starts `pg_autoctl run` of NODE in the background (it supervises its
# PostgreSQL, and re-joins a node that was primary as a standby).
autoctl_run() {
    local n=$1
    # pid files of a node that was killed -9 (their pids may be reused)
    [ -z "$(ip netns pids "$P-$n")" ] && find "$PGHOME/rt-$n" -name '*.pid' -delete 2>/dev/null
    setsid bash -c "$(declare -f in_ns autoctl); P=$P PGHOME=$PGHOME autoctl $n run" \
        >>"$VAR/log/pg-$n.log" 2>&1 </dev/null 9>&- &
}

mon_sql() { in_ns lb psql "postgres://autoctl_node@${BADDR[mon]}:5432/pg_auto_failover" -qAtc "$1"; }
node_state() {  # the monitor's view of NODE: reported state
    mon_sql "SELECT reportedstate FROM pgautofailover.node WHERE nodename = '$1'"
}
node_is() { [ "$(node_state "$1")" = "$2" ]; }
primary_alone() { node_is "$(primary)" wait_primary; }
pair_healthy() { node_is "$(primary)" primary && node_is "$(standby)" secondary; }
primary() { mon_sql "SELECT nodename FROM pgautofailover.node WHERE reportedstate IN ('primary','wait_primary','single') AND goalstate = reportedstate"; }
standby() { mon_sql "SELECT nodename FROM pgautofailover.node WHERE reportedstate = 'secondary'"; }

db_up() {
    local n
    rm -rf "$PGHOME"
    mkdir -p "$PGHOME"
    for n in mon "${DBS[@]}"; do mkdir -p "$PGHOME/sock-$n" "$PGHOME/rt-$n"; done
    chown -R postgres: "$PGHOME"
    say "pg_auto_failover: monitor"
    autoctl mon create monitor --pgdata "$PGHOME/mon" --pgport 5432 --pgctl "$PGBIN/pg_ctl" \
        --hostname "${BADDR[mon]}" --auth trust --no-ssl >>"$VAR/log/pg-mon.log" 2>&1
    # fail over within seconds rather than the default ~20 s
    as_pg tee -a "$PGHOME/mon/postgresql.conf" >/dev/null <<EOF
pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 3000
pgautofailover.primary_demote_timeout = 5000
EOF
    autoctl_run mon
    wait_for 60 "the monitor" mon_sql "SELECT 1"
    for n in "${DBS[@]}"; do
        say "pg_auto_failover: $n"
        autoctl "$n" create postgres --pgdata "$PGHOME/$n" --pgport 5432 --pgctl "$PGBIN/pg_ctl" \
            --hostname "${BADDR[$n]}" --name "$n" --monitor "$MONITOR" --auth trust --no-ssl \
            --username chat --dbname chat --pg-hba-lan >>"$VAR/log/pg-$n.log" 2>&1 ||
            { tail -n 30 "$VAR/log/pg-$n.log" >&2; die "pg_autoctl create postgres $n failed"; }
        # a primary cut off from the monitor and its standby demotes itself
        # after 3 s, well within the monitor's primary_demote_timeout (5 s)
        autoctl "$n" config set timeout.network_partition_timeout 3 >>"$VAR/log/pg-$n.log" 2>&1
        as_pg tee -a "$PGHOME/$n/postgresql.conf" >/dev/null <<EOF
max_connections = 200
shared_buffers = 128MB
EOF
        autoctl_run "$n"
        if [ "$n" = db1 ]; then
            wait_for 90 "db1 as primary" node_is db1 single
        fi
    done
    wait_for 120 "the pair (primary + secondary)" pair_healthy
    say "pg_auto_failover: primary $(primary), standby $(standby)"
    in_ns lb env DATABASE_URL="$DB" VAR="$VAR/migrate" "$ROOT/scripts/stack.sh" migrate
}

# kill -9 every process of NODE's pg_auto_failover (pg_autoctl and its
# PostgreSQL): the database server is gone as if its machine crashed,
# except that its address still answers (with a refusal).
kill_db() {
    local n=$1 pids
    pids=$(ip netns pids "$P-$n")
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    wait_for 10 "$n's processes to die" bash -c "[ -z \"\$(ip netns pids $P-$n)\" ]"
}

# ---- chat hosts ------------------------------------------------------------
host_dir() { echo "$VAR/$1"; }

# Runs CMD in host H's namespace and starts it again a second after it
# exits, as a service manager would (Restart=always): a daemon refuses to
# start while the database is unreachable. SIGTERM to the loop stops CMD
# (SIGTERM) and the loop.
supervised() {  # H LOG CMD...
    local h=$1 log=$2
    shift 2
    in_ns "$h" setsid bash -c 'trap "kill -TERM \$c 2>/dev/null; wait \$c; exit 0" TERM
        while :; do "$@" & c=$!; wait $c; sleep 1; done' - "$@" >>"$log" 2>&1 </dev/null 9>&- &
}

start_host() {
    local h=$1 d
    d=$(host_dir "$h")
    mkdir -p "$d/run" "$d/log" "$d/nginx/tmp"
    rm -f "$d/run/ws.sock" "$d/run/fcgi.sock"
    ln -sfn "$ROOT/conf" "$d/nginx/chat"
    sed -e "s|@DIR@|$d|g" -e "s|@ADDR@|${FADDR[$h]}|g" -e "s|@ROOT@|$ROOT|g" \
        "$ROOT/tests/multihost/host-nginx.conf" >"$d/nginx/nginx.conf"
    supervised "$h" "$d/log/chat-ws.log" "$BIN/chat-ws" --db "$DB" --listen "unix:$d/run/ws.sock" \
        --workers 1
    supervised "$h" "$d/log/chat-fcgi.log" "$BIN/chat-fcgi" --db "$DB" --listen "$d/run/fcgi.sock" \
        --threads 2 --ws-health "$d/run/ws.sock"
    in_ns "$h" setsid nginx -p "$d/nginx/" -c "$d/nginx/nginx.conf" -e "$d/log/nginx-error.log" \
        >>"$d/log/nginx.out" 2>&1 </dev/null 9>&- &
}

health() { in_ns lb curl -fsS -m 2 -o /dev/null "http://${FADDR[$1]}/chat/health"; }
# "STATUS SECONDS" of one /chat/health of host H (000: no answer in 5 s)
health_time() {
    in_ns lb curl -s -m 5 -o /dev/null -w '%{http_code} %{time_total}\n' \
        "http://${FADDR[$1]}/chat/health" || true
}

# Graceful: nginx first (SIGQUIT: finish requests), then the daemons
# (SIGTERM through their loops: parked polls answered, WebSocket clients
# closed with 1001).
stop_host() {
    local h=$1 d pid
    d=$(host_dir "$h")
    pid=$(cat "$d/run/nginx.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null || true
    for pid in $(ip netns pids "$P-$h"); do   # the supervising loops
        [ "$(cat /proc/$pid/comm 2>/dev/null)" = bash ] && kill -TERM "$pid" 2>/dev/null || true
    done
    wait_for 15 "$h to stop" bash -c "[ -z \"\$(ip netns pids $P-$h)\" ]" || {
        pids=$(ip netns pids "$P-$h")
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    }
}

# The machine is gone: every process killed, both links down.
kill_host() {
    local h=$1 pids
    in_ns net ip link set "f-$h" down
    in_ns net ip link set "b-$h" down
    pids=$(ip netns pids "$P-$h")
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    wait_for 10 "$h's processes to die" bash -c "[ -z \"\$(ip netns pids $P-$h)\" ]"
}

revive_host() {
    local h=$1
    in_ns net ip link set "f-$h" up
    in_ns net ip link set "b-$h" up
    start_host "$h"
    wait_for 60 "$h healthy" health "$h"
}

# The switch's port of the host's database link goes down: the host's own
# link stays up without carrier, its packets go nowhere (a black hole)
blackhole() {
    in_ns net ip link set "b-$1" "$2"
}

# The host's link to the database network goes down (inside its namespace)
partition() {
    in_ns "$1" ip link set eth1 "$2"
    if [ "$2" = up ]; then
        in_ns "$1" ip route replace "$BACK.0/24" dev eth1 2>/dev/null || true
    fi
}

# The load balancer's nginx.conf, with the hosts listed in $VAR/lb/drained
# marked `down` (no new requests; connections already open stay).
lb_render() {
    local d=$VAR/lb hosts="" h flag
    mkdir -p "$d/run" "$d/log" "$d/nginx/tmp"
    touch "$d/drained"
    for h in "${HOSTS[@]}"; do
        flag=""
        grep -qx "$h" "$d/drained" && flag=" down"
        hosts+="        server ${FADDR[$h]}:80 max_fails=1 fail_timeout=5s$flag;"$'\n'
    done
    sed -e "s|@DIR@|$d|g" "$ROOT/tests/multihost/lb-nginx.conf" |
        awk -v hosts="$hosts" '{ if ($1 == "@HOSTS@") printf "%s", hosts; else print }' \
            >"$d/nginx/nginx.conf"
    in_ns lb nginx -p "$d/nginx/" -c "$d/nginx/nginx.conf" -e "$d/log/nginx-error.log" -t -q ||
        die "nginx rejected the load balancer's configuration"
}

lb_start() {
    local d=$VAR/lb
    rm -f "$d/drained"
    lb_render
    in_ns lb setsid nginx -p "$d/nginx/" -c "$d/nginx/nginx.conf" -e "$d/log/nginx-error.log" \
        >>"$d/log/nginx.out" 2>&1 </dev/null 9>&- &
    wait_for 10 "the load balancer" in_ns lb curl -fsS -m 2 -o /dev/null http://127.0.0.1/chat/health
}

# Takes host H out of the balancer (drain) or puts it back (undrain):
# rewrite, then reload (new workers; the old ones keep their WebSocket
# connections until they close or worker_shutdown_timeout).
lb_drain() {
    local d=$VAR/lb
    if [ "$2" = on ]; then
        echo "$1" >>"$d/drained"
    else
        grep -vx "$1" "$d/drained" >"$d/drained.new" || true
        mv "$d/drained.new" "$d/drained"
    fi
    lb_render
    kill -HUP "$(cat "$d/run/nginx.pid")"
}

# ---- capacity: messages/s of the primary (docs/operations.md) --------------
# pgbench on chat_post() from the load balancer's namespace (the network
# hop of a chat host), one message per call and 32 per call, with the
# synchronous standby and then with the standby stopped (no replica waits).
bench_one() {
    local file=$1 per=$2 clients=$3 tps
    tps=$(in_ns lb "$PGBIN/pgbench" -n -f "$ROOT/tests/multihost/$file" -c "$clients" -j 2 \
        -T "${BENCH_TIME:-15}" "$DB" 2>&1 | awk '/^tps/ {print int($3)}' || true)
    [ -n "$tps" ] || { say "pgbench $file failed"; tps=0; }
    printf '| %s | %s | %s | %s | %s |\n' "$4" "$per" "$clients" "$tps" "$((tps * per))"
}
cmd_bench() {
    local sb
    echo '| replication | messages per call | clients | calls/s | messages/s |'
    echo '|---|---|---|---|---|'
    for c in 1 8; do bench_one post1.sql 1 $c "synchronous standby"; done
    bench_one post32.sql 32 8 "synchronous standby"
    sb=$(standby)
    kill_db "$sb"
    wait_for 60 "the primary alone (wait_primary)" primary_alone
    for c in 1 8; do bench_one post1.sql 1 $c "none (standby down)"; done
    bench_one post32.sql 32 8 "none (standby down)"
    autoctl_run "$sb"
    wait_for 180 "$sb back as the standby" pair_healthy
    in_ns lb psql "$DB" -qc "DELETE FROM messages WHERE room LIKE 'bench-%'; DELETE FROM rooms WHERE name LIKE 'bench-%'"
}

# ---- the whole thing -------------------------------------------------------
# Debian's packages this needs beyond `make deps`, installed with apt as
# scripts/deps.sh does (services held off meanwhile).
need_packages() {
    local major p missing=()
    [ "$(id -u)" -eq 0 ] || die "network namespaces need root"
    major=$(basename "$(dirname "$PGBIN")")
    for p in "postgresql-$major-auto-failover" pg-auto-failover-cli iproute2 util-linux curl; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || true
        rm -f /usr/sbin/policy-rc.d
    else
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || true
    fi
    command -v pg_autoctl >/dev/null || die "could not install ${missing[*]}"
}

# One run per machine: the namespaces' names are the machine's.
lock() {
    exec 9>/run/lock/chat-multihost.lock
    flock -n 9 || die "another multihost run is going on (it holds /run/lock/chat-multihost.lock)"
}

cmd_up() {
    local h
    need_packages
    [ -n "$PGBIN" ] || die "PostgreSQL server binaries not found"
    command -v pg_autoctl >/dev/null || die "pg_autoctl not found (postgresql-15-auto-failover)"
    for b in chat-ws chat-fcgi; do [ -x "$BIN/$b" ] || die "$BIN/$b not built"; done
    cmd_down 2>/dev/null || true
    rm -rf "$VAR/log" "$VAR"/h? "$VAR/lb" "$VAR/migrate"
    mkdir -p "$VAR/log"
    say "network namespaces"
    net_up
    db_up
    for h in "${HOSTS[@]}"; do start_host "$h"; done
    for h in "${HOSTS[@]}"; do wait_for 60 "$h healthy" health "$h" || {
        tail -n 20 "$(host_dir "$h")"/log/* >&2
        return 1
    }; done
    lb_start
    say "up: 3 chat hosts behind the load balancer, database primary $(primary)"
}

cmd_down() {
    net_down
    rm -rf "$PGHOME"
}

cmd_run() {
    local rc=0
    lock
    trap 'cmd_down; say "stopped, namespaces removed (run took $SECONDS s)"' EXIT
    trap 'exit 130' INT TERM
    cmd_up
    say "the fault run (about 80 s; bounded at 15 minutes)"
    in_ns lb env MH_SCRIPT="$ROOT/scripts/multihost.sh" MH_VAR="$VAR" MH_DB="$DB" MH_ONLY="${MH_ONLY:-}" \
        timeout --foreground 900 "$ROOT/scripts/node" "$ROOT/tests/multihost/faults.mjs" || rc=$?
    exit $rc
}

faults() {  # the fault run against a stack that is up (for iteration)
    in_ns lb env MH_SCRIPT="$ROOT/scripts/multihost.sh" MH_VAR="$VAR" MH_DB="$DB" MH_ONLY="${MH_ONLY:-}" \
        timeout --foreground 900 "$ROOT/scripts/node" "$ROOT/tests/multihost/faults.mjs"
}

case "${1:-}" in
    run) cmd_run ;;
    faults) faults ;;
    up) lock; cmd_up ;;
    down) cmd_down ;;
    kill-db) kill_db "$2" ;;
    start-db) autoctl_run "$2" ;;
    primary) primary ;;
    standby) standby ;;
    db-state) mon_sql "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node ORDER BY nodeid" ;;
    pair-healthy) pair_healthy ;;
    partition) partition "$2" "$3" ;;
    blackhole) blackhole "$2" "$3" ;;
    kill-host) kill_host "$2" ;;
    revive-host) revive_host "$2" ;;
    stop-host) stop_host "$2" ;;
    start-host) start_host "$2"; wait_for 60 "$2 healthy" health "$2" ;;
    health) health "$2" ;;
    health-time) health_time "$2" ;;
    bench) cmd_bench ;;
    drain) lb_drain "$2" on ;;
    undrain) lb_drain "$2" off ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
