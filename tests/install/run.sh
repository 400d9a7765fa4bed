#!/usr/bin/env bash
# tests/install/run.sh: docs/install.md followed in a bare Debian 12.
#
# A fresh copy of a debootstrap'd bookworm (tests/install/rootfs.sh, kept as a
# tarball under var/install/) becomes a chroot; in it, as docs/install.md says:
# Debian's systemd, nginx and PostgreSQL from apt, the .deb (make deb) with
# apt, the database role and database under peer authentication,
# chat-migrate, the daemons started exactly as their installed units say
# (there is no running systemd in a chroot: the ExecStart, User, Group,
# UMask and EnvironmentFile lines are read from the units), the units
# checked with systemd-analyze verify, and the chat added to Debian's
# default site next to its static page, with auth_basic on the chat only.
# Then, from the host: Chromium (tests/install/browser.test.mjs) against
# that nginx on 127.0.0.1:$INSTALL_PORT, and inside the chroot: a local
# user other than chat and www-data cannot connect to either socket.
#
# Root only (debootstrap, chroot, mounts). PostgreSQL in the chroot listens
# on its unix socket only; nginx on 127.0.0.1:$INSTALL_PORT only.
# Env: INSTALL_PORT (20095), DEB (the .deb; default build/deb/nginx-chat_*.deb),
#      KEEP=1 (leave the chroot in var/install/root, processes stopped),
#      FRESH=1 (debootstrap again instead of the cached tarball).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$ROOT/var/install
R=$W/root
PORT=${INSTALL_PORT:-20095}
t0=$(date +%s)
say() { printf 'install-test [%3ss]: %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive HOME=/root "$@"; }

DEB=${DEB:-$(ls -t "$ROOT"/build/deb/nginx-chat_*.deb 2>/dev/null | head -n 1)}
[ -n "$DEB" ] && [ -f "$DEB" ] || die "no .deb: run make deb first (make install-test does)"
if curl -s -m 1 -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null; then
    die "port $PORT is in use (INSTALL_PORT=...)"
fi

# ---- the chroot -------------------------------------------------------------
pids_in_root() {
    local d r
    for d in /proc/[0-9]*; do
        r=$(readlink "$d/root" 2>/dev/null) || continue
        case $r in "$R" | "$R"/*) echo "${d#/proc/}" ;; esac
    done
}
teardown() {
    local p
    # every process whose root is the chroot: ours (daemons, nginx, postgres)
    for sig in TERM KILL; do
        p=$(pids_in_root | tr '\n' ' ')
        [ -n "${p// /}" ] || break
        # shellcheck disable=SC2086
        kill -$sig $p 2>/dev/null || true
        for _ in $(seq 1 50); do [ -z "$(pids_in_root)" ] && break; sleep 0.1; done
    done
    mounts_in_root | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
mounts_in_root() { awk -v r="$R" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r; }
# never rm -rf through a mount (the chroot's /dev is the host's)
remove_root() {
    if [ -n "$(mounts_in_root)" ]; then say "still mounted under $R; not removing it"; return 1; fi
    rm -rf "$R"
}
cleanup() {
    local rc=$?
    teardown
    if [ "${KEEP:-0}" = 1 ]; then say "kept $R (KEEP=1)"; else remove_root || true; fi
    if [ $rc = 0 ]; then say "PASSED in $(($(date +%s) - t0)) s"; else say "failed (exit $rc) after $(($(date +%s) - t0)) s; logs above and in $W/logs"; fi
}

mkdir -p "$W"
[ "${FRESH:-0}" = 1 ] && rm -f "$W/rootfs.tar.gz"
"$ROOT/tests/install/rootfs.sh" "$W/rootfs"
teardown
remove_root || die "cannot clean $R"
rm -rf "$W/logs"
mkdir -p "$R" "$W/logs"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
tar -C "$R" -xzpf "$W/rootfs.tar.gz"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev" && mount --make-rslave "$R/dev"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=0755 tmpfs "$R/run" && mkdir -p "$R/run/lock" && chmod 1777 "$R/run/lock"
cp /etc/resolv.conf "$R/etc/resolv.conf"
say "bare Debian 12 in $R"

# ---- packages (docs/install.md, "1. Packages") --------------------------------
say "apt-get install systemd (a Debian 12 server has it), nginx, postgresql"
in_root apt-get update -qq >"$W/logs/apt.log" 2>&1 || { tail -n 20 "$W/logs/apt.log"; die "apt-get update"; }
in_root apt-get install -y -qq systemd nginx postgresql >>"$W/logs/apt.log" 2>&1 ||
    { tail -n 30 "$W/logs/apt.log"; die "apt-get install nginx postgresql"; }
cp "$DEB" "$R/tmp/"
say "apt-get install ./$(basename "$DEB")"
in_root apt-get install -y -qq "/tmp/$(basename "$DEB")" >>"$W/logs/apt.log" 2>&1 ||
    { tail -n 30 "$W/logs/apt.log"; die "apt-get install the .deb"; }

# what the package set up
in_root id chat | grep -q 'uid=' || die "no user chat"
st=$(in_root stat -c '%U:%G %a' /run/chat) || die "no /run/chat (tmpfiles)"
[ "$st" = "chat:www-data 2750" ] || die "/run/chat is $st, want chat:www-data 2750"
for f in chat.conf chat-defaults.conf chat-locations.conf chat-http.conf chat-upstreams.conf \
    chat-proxy.conf chat-fastcgi.conf chat-limits.conf chat-admin-access.conf; do
    grep -qx "/etc/nginx/chat/$f" "$R/var/lib/dpkg/info/nginx-chat.conffiles" || die "$f is not a conffile"
done
[ -L "$R/etc/systemd/system/multi-user.target.wants/chat-ws.service" ] || die "chat-ws.service not enabled"
[ -L "$R/etc/systemd/system/multi-user.target.wants/chat-fcgi.service" ] || die "chat-fcgi.service not enabled"
say "package: user chat, /run/chat $st, conffiles, units enabled"

say "systemd-analyze verify chat-ws.service chat-fcgi.service"
in_root systemd-analyze verify /lib/systemd/system/chat-ws.service /lib/systemd/system/chat-fcgi.service \
    >"$W/logs/verify.log" 2>&1 || { cat "$W/logs/verify.log"; die "systemd-analyze verify"; }
if grep -v 'Failed to .*cgroup\|sysinit.target\|Failed to setup working directory\|No such file or directory.*/proc' \
    "$W/logs/verify.log" | grep -q .; then
    cat "$W/logs/verify.log"; die "systemd-analyze verify complained"
fi

# ---- PostgreSQL (docs/install.md, "2. The database") -------------------------
# The chroot shares the host's network: unix socket only (the doc's server
# keeps Debian's default, localhost).
in_root pg_conftool 15 main set listen_addresses ''
in_root pg_ctlcluster 15 main start >"$W/logs/pg.log" 2>&1 || { cat "$W/logs/pg.log"; die "PostgreSQL start"; }
say "PostgreSQL 15 running; role and database chat"
in_root runuser -u postgres -- createuser chat
in_root runuser -u postgres -- createdb --owner=chat chat
grep -Eq '^local[[:space:]]+all[[:space:]]+all[[:space:]]+peer' "$R/etc/postgresql/15/main/pg_hba.conf" ||
    die "Debian's pg_hba.conf has no 'local all all peer' line (docs/install.md assumes it)"

# ---- the daemons, as their units start them (docs/install.md, "4. The daemons") ----------
start_unit() { # unit [fg]: runs ExecStart as User/Group with UMask and EnvironmentFile
    local u=/lib/systemd/system/$1.service key val exec="" user="" group="" umask=0022 envf=""
    while IFS='=' read -r key val; do
        case $key in
            ExecStart) exec=$val ;; User) user=$val ;; Group) group=$val ;;
            UMask) umask=$val ;; EnvironmentFile) envf=${val#-} ;;
        esac
    done <"$R$u"
    [ -n "$exec" ] && [ -n "$user" ] || die "$u: no ExecStart or User"
    # systemd expands $VAR words from the environment file; sh does the same
    local cmd=(chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin LANG=C.UTF-8
        setpriv --reuid="$user" --regid="${group:-$user}" --init-groups
        sh -c "set -a; [ -r '$envf' ] && . '$envf'; set +a; umask $umask; exec $exec")
    if [ "${2:-}" = fg ]; then
        timeout 30 "${cmd[@]}" >>"$W/logs/$1.log" 2>&1 </dev/null
        return
    fi
    "${cmd[@]}" >>"$W/logs/$1.log" 2>&1 </dev/null &
    UNIT_PID[$1]=$!
}
declare -A UNIT_PID=()
# Before the schema exists each daemon exits with a failure status and says
# why: with Restart=on-failure and no start limit, systemd keeps starting it
# until chat-migrate has run (docs/install.md, "4. The daemons").
for u in chat-ws chat-fcgi; do
    rc=0; start_unit $u fg || rc=$?
    [ "$rc" != 0 ] && [ "$rc" != 124 ] || die "$u before migration: exit $rc, want a failure"
    grep -q 'not migrated.*chat-migrate' "$W/logs/$u.log" || { cat "$W/logs/$u.log"; die "$u did not say 'not migrated'"; }
    : >"$W/logs/$u.log"
done
say "before chat-migrate both daemons exit with a failure status, saying 'not migrated'"

# ---- migration (docs/install.md, "3. The schema") ------------------------------
in_root chat-migrate >/dev/null 2>&1 && die "chat-migrate without --db ran"
in_root runuser -u chat -- chat-migrate --db dbname=chat | tee "$W/logs/migrate.log" >&2
grep -q 'applied 001_init' "$W/logs/migrate.log" || die "chat-migrate applied nothing"
in_root runuser -u chat -- chat-migrate --db dbname=chat | grep -q 'up to date' || die "second chat-migrate not 'up to date'"

# ---- the daemons, started (docs/install.md, "4. The daemons") ------------------
start_unit chat-ws
start_unit chat-fcgi
for _ in $(seq 1 100); do [ -S "$R/run/chat/ws.sock" ] && [ -S "$R/run/chat/fcgi.sock" ] && break; sleep 0.1; done
[ -S "$R/run/chat/ws.sock" ] && [ -S "$R/run/chat/fcgi.sock" ] ||
    { tail -n 20 "$W"/logs/chat-*.log; die "the daemons did not make their sockets"; }
for s in ws fcgi; do
    st=$(in_root stat -c '%U:%G %a' /run/chat/$s.sock)
    [ "$st" = "chat:www-data 660" ] || die "/run/chat/$s.sock is $st, want chat:www-data 660"
done
grep -q 'database chat as chat on /var/run/postgresql (from PG\* environment)' "$W/logs/chat-ws.log" ||
    { cat "$W/logs/chat-ws.log"; die "chat-ws did not say which database"; }
say "daemons up as chat; sockets chat:www-data 0660"

# ---- sockets: nobody else (docs/install.md, "4.", Sockets) ------------------------
in_root useradd -m mallory
probe() { # user socket -> "ok" or the error
    in_root runuser -u "$1" -- perl -MIO::Socket::UNIX -e \
        'my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]); print $s ? "ok" : "$!"' "$2"
}
for s in ws fcgi; do
    got=$(probe mallory /run/chat/$s.sock)
    [ "$got" = "Permission denied" ] || die "mallory connecting to $s.sock: '$got', want Permission denied"
    got=$(probe www-data /run/chat/$s.sock)
    [ "$got" = ok ] || die "www-data (nginx) connecting to $s.sock: '$got'"
done
say "mallory: Permission denied on both sockets; www-data connects"

# ---- nginx: the chat in Debian's default site (docs/install.md, "5. nginx") ---
cat >"$R/etc/nginx/conf.d/chat.conf" <<'EOF'
# the chat's http {} pieces (docs/install.md)
include chat/chat-http.conf;
include chat/chat-upstreams.conf;
EOF
# what this test adds is what the doc says, word for word
in_doc() { perl -0777 -e 'open F, "<", $ARGV[0] or die; my $b = <F>; my $d = <STDIN>;
    exit(index($d, $b) >= 0 ? 0 : 1)' "$1" <"$ROOT/docs/install.md"; }
in_doc "$R/etc/nginx/conf.d/chat.conf" || die "docs/install.md does not have conf.d/chat.conf as this test writes it"
in_doc "$ROOT/tests/install/site-chat.conf" || die "docs/install.md does not have tests/install/site-chat.conf word for word"
in_root sh -c 'printf "alice:%s\nbob:%s\n" "$(openssl passwd -apr1 secret)" "$(openssl passwd -apr1 secret)" \
    >/etc/nginx/chat.htpasswd && chown root:www-data /etc/nginx/chat.htpasswd && chmod 640 /etc/nginx/chat.htpasswd'
site=$R/etc/nginx/sites-available/default
# the test listens on a loopback port of its own instead of port 80
sed -i -e "s/^\([[:space:]]*\)listen 80 default_server;/\1listen 127.0.0.1:$PORT default_server;/" \
    -e '/listen \[::\]:80 default_server;/d' "$site"
grep -q "listen 127.0.0.1:$PORT default_server;" "$site" || die "Debian's default site changed: no 'listen 80 default_server'"
# the block docs/install.md adds to a server, after its server_name line
awk '/^[[:space:]]*server_name _;/ && !done { print; while ((getline l < "'"$ROOT"'/tests/install/site-chat.conf") > 0) print l; done = 1; next } { print }' \
    "$site" >"$site.new" && mv "$site.new" "$site"
grep -q 'include chat/chat-locations.conf;' "$site" || die "could not add the chat to the default site"
in_root nginx -t >"$W/logs/nginx-t.log" 2>&1 || { cat "$W/logs/nginx-t.log"; die "nginx -t"; }
in_root nginx >"$W/logs/nginx.log" 2>&1 || { cat "$W/logs/nginx.log"; die "nginx did not start"; }
for _ in $(seq 1 100); do curl -s -m 1 -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
say "nginx (Debian's, as www-data) on 127.0.0.1:$PORT"

# ---- the browser, from the host ----------------------------------------------
say "Chromium from the host: tests/install/browser.test.mjs"
(cd "$ROOT/tests" && INSTALL_URL="http://127.0.0.1:$PORT/" timeout 600 "$ROOT/scripts/node" --test \
    --test-concurrency=1 --test-timeout=180000 --test-force-exit --test-reporter=spec \
    install/browser.test.mjs) || { tail -n 20 "$W"/logs/chat-*.log "$R"/var/log/nginx/error.log; die "browser test"; }

# nothing bad in the daemons' logs
if grep -E ' (error|warn): ' "$W"/logs/chat-*.log | grep -v 'handshake refused' | grep .; then
    die "errors in the daemons' logs (above)"
fi

# ---- the admin's view: details and metrics on this host only; chatctl ----------
pub=$(curl -s "http://127.0.0.1:$PORT/chat/health")
[[ $pub == '{"status":"ok",'* && $pub != *'"pid"'* ]] || die "public health not statuses only: $pub"
curl -s "http://127.0.0.1:$PORT/chat/health/details" | grep -q '"processes":\[{' ||
    die "/chat/health/details lists no process"
metrics=$(curl -s "http://127.0.0.1:$PORT/chat/metrics")
grep -Eq '^chat_processes\{daemon="ws"\} [1-9]' <<<"$metrics" &&
    grep -Eq '^chat_messages_in_total\{daemon="fcgi"\} [1-9]' <<<"$metrics" ||
    die "/chat/metrics misses the daemons or the browser test's messages: $(head -c 600 <<<"$metrics")"
for path in health/details metrics; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "http://127.0.0.1:$PORT/chat/$path")
    [ "$code" = 403 ] || die "/chat/$path from 127.0.0.2: $code, not 403"
done
say "/chat/health statuses only; details and metrics (all processes) from this host, 403 from 127.0.0.2"
in_root runuser -u chat -- chatctl bans >/dev/null || die "chatctl bans as chat (the daemons' database rules)"
in_root runuser -u chat -- chatctl kick alice | grep -q 'kicked alice' || die "chatctl kick"
say "chatctl as chat reaches the database like the daemons: bans, kick"

# ---- health tells a load balancer when a part is down ---------------------------
health_until() { # status-code regex: waits (20 s at most) for /chat/health to match
    local i body
    for i in $(seq 1 200); do
        body=$(curl -s -m 2 -w ' %{http_code} %{content_type}' "http://127.0.0.1:$PORT/chat/health" || true)
        if [[ $body =~ $1 ]]; then echo "$body"; return 0; fi
        sleep 0.1
    done
    die "/chat/health never matched '$1'; last: $body"
}
# (nginx asks chat-ws first, then chat-fcgi: stop chat-fcgi first to see each)
kill -TERM "${UNIT_PID[chat-fcgi]}"
health_until '^\{"status":"down","backends":\{"fcgi":\{"status":"down"\}\}\}.* 503 application/json' >/dev/null
say "chat-fcgi stopped: /chat/health 503 JSON from nginx, not an HTML 502"
kill -TERM "${UNIT_PID[chat-ws]}"
health_until '^\{"status":"down","backends":\{"ws":\{"status":"down"\}\}\}.* 503 application/json' >/dev/null
say "chat-ws stopped too: /chat/health 503 JSON from nginx, ws down"

# ---- backup and restore, as docs/install.md says ("7. Backup and restore") ----
# (both daemons are stopped now, as the doc's restore begins)
in_root sh -c 'runuser -u postgres -- pg_dump --format=custom chat >/var/backups/chat-$(date +%F).dump'
dump=$(cd "$R/var/backups" && ls chat-*.dump)
in_root runuser -u postgres -- dropdb chat
in_root runuser -u postgres -- createdb --owner=chat chat
in_root runuser -u postgres -- pg_restore --no-owner --role=chat -d chat "/var/backups/$dump" ||
    die "pg_restore as the doc says"
in_root runuser -u chat -- chat-migrate --db dbname=chat | grep -q 'up to date at version' ||
    die "chat-migrate after the restore"
start_unit chat-ws
start_unit chat-fcgi
health_until '^\{"status":"ok".* 200 application/json' >/dev/null
room=$(in_root runuser -u chat -- psql -d chat -Atc "SELECT room FROM messages WHERE text = 'and back over long-poll'")
[ -n "$room" ] || die "the chat's messages are not in the restored database"
curl -s -u alice:secret -H 'X-Chat-Request: 1' "http://127.0.0.1:$PORT/chat/history?room=$room" | grep -q '"and back over long-poll"' ||
    die "the restored history is not served"
say "backup, drop, restore, chat-migrate: the daemons start again and serve the old history"
