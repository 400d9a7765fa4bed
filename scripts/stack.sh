#!/usr/bin/env bash
# The private stack under $VAR: a PostgreSQL cluster (unless DATABASE_URL
# names one), the WebSocket daemon, the FastCGI workers and nginx on
# 127.0.0.1:$PORT. Usage: stack.sh run|start|stop|status|migrate|test|bench
#                                 |pg-start|pg-stop
#   run     foreground until Ctrl-C/SIGTERM; restarts a backend that dies;
#           stops everything it started on the way out
#   start   `run` in the background, returns once /chat/health answers
#   test    start, run every black-box suite against it, stop; exit status
# Environment: VAR PORT BIN (directory of chat-ws and chat-fcgi) DATABASE_URL
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR=${VAR:-$ROOT/var}
PORT=${PORT:-8080}
BIN=${BIN:-$ROOT/build/release}
mkdir -p "$VAR"
VAR=$(cd "$VAR" && pwd)
RUN=$VAR/run
LOG=$VAR/log
WS_WORKERS=${WS_WORKERS:-$(nproc)}
FCGI_THREADS=${FCGI_THREADS:-4}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
# PostgreSQL refuses to run as root: as root, run it as the postgres user.
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

# ---- PostgreSQL ----------------------------------------------------------
pg_home() {
    if is_root && ! runuser -u postgres -- test -x "$VAR" 2>/dev/null; then
        # postgres cannot reach $VAR (a home directory, say): keep the
        # cluster in a folder of its own, named after $VAR.
        echo "/var/tmp/chat-pg-$(printf '%s' "$VAR" | md5sum | cut -c1-12)"
    else
        echo "$VAR/pg"
    fi
}
PGHOME=$(pg_home)
PGDATA=$PGHOME/data
PGSOCK=$PGHOME/sock
# DB: the conninfo the stack uses. (Not DATABASE_URL itself: that one may be
# exported, and children must see what the user set, not what we chose.)
PRIVATE_PG=1
if [ -n "${DATABASE_URL:-}" ]; then
    PRIVATE_PG=0
    DB=$DATABASE_URL
elif [ -n "${PGHOST:-}${PGDATABASE:-}${PGPORT:-}" ]; then
    PRIVATE_PG=0
    DB=""   # libpq takes the PG* variables
else
    DB="host=$PGSOCK port=5432 user=chat dbname=chat"
fi

pg_init() {
    [ -f "$PGDATA/PG_VERSION" ] && return 0
    [ -n "$PGBIN" ] || die "PostgreSQL server binaries not found (make deps installs them)"
    say "initializing PostgreSQL cluster in $PGDATA"
    mkdir -p "$PGHOME"
    is_root && chown postgres: "$PGHOME"
    as_pg mkdir -p "$PGSOCK"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U chat -A trust -E UTF8 --no-locale >"$PGHOME/initdb.log" 2>&1 ||
        { cat "$PGHOME/initdb.log" >&2; die "initdb failed"; }
    as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<PGCONF
# chat: private cluster, unix socket only
listen_addresses = ''
unix_socket_directories = '$PGSOCK'
port = 5432
max_connections = 300
shared_buffers = 256MB
${CHAT_PG_EXTRA:-}
PGCONF
}

pg_running() { as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

pg_start() {
    [ "$PRIVATE_PG" = 1 ] || return 0
    pg_init
    pg_running && return 0
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGHOME/postgres.log" -w -t 60 start >/dev/null 8>&- 9>&- ||
        { tail -n 20 "$PGHOME/postgres.log" >&2; die "PostgreSQL did not start"; }
    psql -h "$PGSOCK" -U chat -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname='chat'" |
        grep -q 1 || psql -h "$PGSOCK" -U chat -d postgres -qc "CREATE DATABASE chat" >/dev/null
}

pg_stop() {
    [ "$PRIVATE_PG" = 1 ] || return 0
    pg_running || return 0
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
}

# The one migration tool (the package installs it as chat-migrate). An
# empty $DB means the PG* variables: a conninfo that names nothing more.
migrate() {
    "$ROOT/scripts/chat-migrate" --db "${DB:-application_name=chat-migrate}" >&2
}

# ---- backends and nginx --------------------------------------------------
declare -A PIDS=()
declare -A STARTS=()

# --max-conns 19000: the workers share one socket and the kernel does not
# spread accepts evenly between them, so with the default 10,000 per worker
# one of them refuses (503) while the other has room; 19,000 fits under the
# 20,000 open-files limit and lets 20,000 idle WebSockets in (docs/install.md).
start_ws() {
    setsid "$BIN/chat-ws" --db "$DB" --listen "unix:$RUN/ws.sock" --workers "$WS_WORKERS" \
        --max-conns 19000 ${CHAT_WS_ARGS:-} >>"$LOG/chat-ws.log" 2>&1 8>&- 9>&- &
    PIDS[ws]=$!
}
# No bound per address: every client of the private stack is 127.0.0.1 (the
# tests of those bounds run workers of their own, tests/e2e/lp_hostile_addr).
start_fcgi() {
    setsid "$BIN/chat-fcgi" --db "$DB" --listen "$RUN/fcgi.sock" --threads "$FCGI_THREADS" \
        --ws-health "$RUN/ws.sock" --max-parked-per-addr 0 --max-presence-per-addr 0 \
        --max-guests-per-addr 0 \
        ${CHAT_FCGI_ARGS:-} >>"$LOG/chat-fcgi.log" 2>&1 8>&- 9>&- &
    PIDS[fcgi]=$!
}
start_nginx() {
    local user="" n="$VAR/nginx"
    is_root && user="user root root;"
    mkdir -p "$n/tmp"
    ln -sfn "$ROOT/conf" "$n/chat"
    local extra=""
    if [ -n "${CHAT_NGINX_EXTRA:-}" ]; then
        local ports=() i
        for i in 1 2 3 4 5 6 7 8 9 10 11; do ports+=(-e "s|@PORT$i@|$((PORT + i))|g"); done
        sed -e "s|@VAR@|$VAR|g" -e "s|@ROOT@|$ROOT|g" "${ports[@]}" "$CHAT_NGINX_EXTRA" >"$n/extra.conf"
        extra="include $n/extra.conf;"
        # the test servers' users: alice and bob, password "secret"
        printf 'alice:%s\nbob:%s\n' "$(openssl passwd -apr1 secret)" \
            "$(openssl passwd -apr1 secret)" >"$n/htpasswd"
        # and the moderators' (tests/nginx.test.conf, /chat/mod/): mod
        printf 'mod:%s\n' "$(openssl passwd -apr1 secret)" >"$n/htpasswd-mod"
    fi
    sed -e "s|@VAR@|$VAR|g" -e "s|@PORT@|$PORT|g" -e "s|@ROOT@|$ROOT|g" -e "s|@USER@|$user|g" \
        -e "s|@EXTRA@|$extra|g" "$ROOT/conf/nginx.dev.conf" >"$n/nginx.conf"
    nginx -p "$n/" -c "$n/nginx.conf" -e "$LOG/nginx-error.log" -t -q ||
        die "nginx rejected $n/nginx.conf"
    setsid nginx -p "$n/" -c "$n/nginx.conf" -e "$LOG/nginx-error.log" 8>&- 9>&- &
    PIDS[nginx]=$!
}

health_url() { echo "http://127.0.0.1:$PORT/chat/health"; }

wait_healthy() {
    local i
    for i in $(seq 1 150); do
        if curl -fsS -m 2 -o /dev/null "$(health_url)" 2>/dev/null; then return 0; fi
        for n in "${!PIDS[@]}"; do
            kill -0 "${PIDS[$n]}" 2>/dev/null || {
                tail -n 20 "$LOG/chat-$n.log" "$LOG/nginx-error.log" 2>/dev/null >&2 || true
                die "$n exited during start-up (logs in $LOG)"
            }
        done
        sleep 0.2
    done
    curl -sS -m 2 "$(health_url)" >&2 || true
    die "no healthy answer from $(health_url) after 30 s (logs in $LOG)"
}

stop_children() {
    local n pid
    # nginx first (no new requests), then the backends, then the database
    for n in nginx ws fcgi; do
        pid=${PIDS[$n]:-}
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    for n in nginx ws fcgi; do
        pid=${PIDS[$n]:-}
        [ -n "$pid" ] || continue
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$n (pid $pid) ignored SIGTERM for 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    pg_stop
    rm -f "$RUN/stack.pid"
}

lock_var() {
    mkdir -p "$RUN" "$LOG"
    exec 9>"$RUN/stack.lock"
    if ! flock -n 9; then
        die "another stack is already running in $VAR (pid $(cat "$RUN/stack.pid" 2>/dev/null || echo '?')); stop it (make stop) or use VAR=... PORT=..."
    fi
    echo $$ >"$RUN/stack.pid"
}

bring_up() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    for b in chat-ws chat-fcgi; do [ -x "$BIN/$b" ] || die "$BIN/$b not built"; done
    if curl -s -m 1 -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null; then
        die "port $PORT is already in use; choose another with PORT=..."
    fi
    rm -f "$RUN/ws.sock" "$RUN/fcgi.sock"
    pg_start
    migrate
    start_ws
    start_fcgi
    start_nginx
    wait_healthy
}

# Restart a backend that died, at most 5 times a minute. Wakes at least once
# a second (a `sleep` child) to notice that whoever started us is gone.
supervise() {
    local n pid now tick=""
    while :; do
        if [ -z "$tick" ] || ! kill -0 "$tick" 2>/dev/null; then
            sleep 1 &
            tick=$!
        fi
        wait -n 2>/dev/null || true
        $stopping && break
        if [ -n "$PARENT" ] && [ "$(ps -o ppid= -p $$ | tr -d ' ')" != "$PARENT" ]; then
            say "parent process gone; stopping"
            break
        fi
        for n in "${!PIDS[@]}"; do
            pid=${PIDS[$n]}
            kill -0 "$pid" 2>/dev/null && continue
            wait "$pid" 2>/dev/null && st=0 || st=$?
            $stopping && break
            now=$(date +%s)
            STARTS[$n]="$(for t in ${STARTS[$n]:-}; do [ $((now - t)) -lt 60 ] && echo "$t"; done) $now"
            if [ "$(wc -w <<<"${STARTS[$n]}")" -gt 5 ]; then
                say "$n keeps dying (status $st); giving up"
                kill "$tick" 2>/dev/null || true
                return 1
            fi
            say "$n exited with status $st; restarting it"
            case $n in
                ws) start_ws ;;
                fcgi) start_fcgi ;;
                nginx) start_nginx ;;
            esac
        done
    done
    kill "$tick" 2>/dev/null || true
}

cmd_run() {
    # in the foreground, we stop when whoever started us is gone
    PARENT=""
    [ "${1:-}" = ready-fd ] || PARENT=$(ps -o ppid= -p $$ | tr -d ' ')
    lock_var
    stopping=false
    trap 'stopping=true' INT TERM
    trap 'stop_children' EXIT
    bring_up
    say "serving http://127.0.0.1:$PORT/chat/  (logs in $LOG; Ctrl-C stops)"
    echo "http://127.0.0.1:$PORT/chat/"
    [ "${1:-}" = ready-fd ] && { echo ready >&8; exec 8>&-; }
    supervise || true
    say "stopping"
}

cmd_start() {
    local fifo="$RUN/start.fifo" line=""
    mkdir -p "$RUN" "$LOG"
    rm -f "$fifo"; mkfifo "$fifo"
    setsid "$0" __run_bg >>"$LOG/stack.log" 2>&1 < /dev/null &
    local sup=$!
    exec 8<"$fifo"
    read -r -t 90 line <&8 || true
    exec 8<&-
    rm -f "$fifo"
    [ "$line" = ready ] || { tail -n 30 "$LOG/stack.log" >&2; die "stack did not come up"; }
    say "running in the background (pid $sup): http://127.0.0.1:$PORT/chat/"
}

cmd_stop() {
    local pid
    pid=$(cat "$RUN/stack.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # leftovers of a supervisor that was killed hard
    for f in "$RUN/nginx.pid"; do
        [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
    done
    pkill -TERM -f "$BIN/chat-(ws|fcgi) .*$RUN/" 2>/dev/null || true
    pg_stop || true
}

cmd_status() {
    curl -sS -m 2 "$(health_url)" && echo || echo "not running on port $PORT"
}

cmd_test() {
    local rc=0
    # a throwaway cluster: durability is not what the tests measure
    export CHAT_PG_EXTRA="fsync = off
synchronous_commit = off
full_page_writes = off"
    rm -f "$LOG"/chat-*.log   # reports of an earlier run are not this run's
    CHAT_NGINX_EXTRA="$ROOT/tests/nginx.test.conf" "$0" start
    trap '"$0" stop' EXIT
    (cd "$ROOT/tests" && CHAT_URL="http://127.0.0.1:$PORT/chat/" CHAT_VAR="$VAR" \
        CHAT_ROOT="$ROOT" CHAT_BIN="$BIN" DATABASE_URL="$DB" timeout 2400 "$ROOT/scripts/node" --test \
        --test-concurrency=1 --test-timeout=180000 --test-force-exit --test-reporter=spec \
        e2e/*.test.mjs) || rc=$?
    # a sanitizer report in a daemon fails the run even if the daemon was
    # restarted and every test still passed
    if grep -lE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' \
        "$LOG"/chat-*.log "$VAR"/run/*.log 2>/dev/null; then
        say "sanitizer reports in the daemons' logs (above): failing"
        grep -hE -A12 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$LOG"/chat-*.log | head -60 >&2
        rc=1
    fi
    exit $rc
}

case "${1:-}" in
    run) cmd_run ;;
    __run_bg) exec 8>"$RUN/start.fifo"; cmd_run ready-fd ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    migrate)
        # the private stack's database only, unless told which one: never
        # create a throwaway cluster and report success for it
        if [ "$PRIVATE_PG" = 1 ] && [ ! -f "$PGDATA/PG_VERSION" ]; then
            die "no private cluster in $VAR to migrate (make start creates one). For a server's database: chat-migrate --db CONNINFO, or DATABASE_URL=CONNINFO make migrate"
        fi
        mkdir -p "$RUN" "$LOG"
        was_up=0
        [ "$PRIVATE_PG" = 1 ] && pg_running && was_up=1
        pg_start
        migrate
        [ "$was_up" = 1 ] || pg_stop
        ;;
    pg-start) pg_start ;;
    pg-stop) pg_stop ;;
    test) cmd_test ;;
    bench) "$ROOT/tests/bench/run.sh" ;;
    *) echo "usage: $0 run|start|stop|status|migrate|test|bench|pg-start|pg-stop" >&2; exit 2 ;;
esac
