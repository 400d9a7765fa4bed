# Chat over nginx: one hand-written Makefile.
#   make run    install what is missing, build, start PostgreSQL + daemons +
#               nginx under $(VAR), serve http://127.0.0.1:$(PORT)/chat/ until Ctrl-C
#   make test   the same set-up (sanitizer build, own VAR and port), every test
# `make help` lists every target. V=1 shows the commands.

SHELL := /bin/bash
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SECONDARY:

PORT ?= 8080
VAR ?= $(CURDIR)/var
TEST_PORT ?= 18080
TEST_VAR ?= $(CURDIR)/var/test
BENCH_PORT ?= 28080
BENCH_VAR ?= $(CURDIR)/var/bench
export DATABASE_URL

CC ?= cc
CLANG ?= clang
# pkg-config runs each time a compile or link needs the flags (a few ms),
# never when this file is read: on a bare machine the -dev packages arrive
# with the build-deps prerequisite, after the parse. So no `:=` may expand
# these (or anything holding them).
PKGS := jansson libpq nettle
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -ljansson -lpq -lnettle)

WARN := -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes -Wpointer-arith
# Each folder compiles with only its own headers and core/'s: a daemon that
# includes the other daemon's header fails to build. core/ sees only itself.
BASE_CFLAGS = -std=c11 $(WARN) -MMD -MP $(PKG_CFLAGS)
INC_core := -Icore
INC_module := -Imodule -Icore
INC_fcgi := -Ifcgi -Icore
INC_tests := -Icore -Imodule -Ifcgi
inc = $(INC_$(firstword $(subst /, ,$(1))))
REL_CFLAGS := -O2 -g
ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
               -fno-omit-frame-pointer
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm

ifeq ($(V),1)
Q :=
else
Q := @
endif

# ---- sources: explicit lists --------------------------------------------
CORE_SRCS := core/chat_log.c core/chat_utf8.c core/chat_valid.c core/chat_policy.c \
             core/chat_proto.c core/chat_db.c core/chat_sys.c core/chat_http.c \
             core/chat_notify.c core/chat_cursor.c core/chat_members.c core/chat_sql.c \
             core/chat_backoff.c core/chat_typing.c core/chat_supervise.c core/chat_bans.c \
             core/chat_origin.c core/chat_metrics.c core/chat_addr.c core/chat_ns.c
WS_CODEC_SRCS := module/ws_frame.c module/ws_handshake.c
WS_SRCS := module/ws_main.c module/ws_conn.c module/ws_chat.c module/ws_room.c module/ev.c module/pg.c module/pg_resolve.c
LP_SRCS := fcgi/lp_main.c fcgi/lp_accept.c fcgi/lp_rate.c fcgi/lp_poll.c fcgi/lp_fcgi.c fcgi/lp_db.c fcgi/lp_query.c fcgi/lp_listener.c fcgi/lp_rooms.c fcgi/lp_seqcache.c fcgi/lp_writer.c fcgi/lp_presence.c fcgi/lp_health.c fcgi/lp_metrics.c fcgi/lp_state.c fcgi/lp_sse.c fcgi/lp_stream.c fcgi/lp_basic.c fcgi/lp_bans.c fcgi/lp_addr.c fcgi/lp_members.c
UNIT_TESTS := utf8 valid ns policy proto log notify cursor sql bus frame handshake lp_query bans resolve typing origin metrics addr lp_addr
FUZZ_TARGETS := utf8 proto notify frame handshake query

REL := build/release
ASAN := build/asan

core_objs = $(patsubst %.c,$(1)/%.o,$(CORE_SRCS))
ws_objs = $(patsubst %.c,$(1)/%.o,$(WS_SRCS) $(WS_CODEC_SRCS))
wscodec_objs = $(patsubst %.c,$(1)/%.o,$(WS_CODEC_SRCS))
lp_objs = $(patsubst %.c,$(1)/%.o,$(LP_SRCS))

# ---- build ---------------------------------------------------------------
.PHONY: all asan
all: $(REL)/chat-ws $(REL)/chat-fcgi
asan: $(ASAN)/chat-ws $(ASAN)/chat-fcgi

$(REL)/%.o: %.c | build-deps
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) $(call inc,$<) $(REL_CFLAGS) -c $< -o $@

$(ASAN)/%.o: %.c | build-deps
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) $(call inc,$<) $(ASAN_CFLAGS) -c $< -o $@

$(REL)/libchatcore.a: $(call core_objs,$(REL))
	$(Q)rm -f $@ && ar rcs $@ $^
$(ASAN)/libchatcore.a: $(call core_objs,$(ASAN))
	$(Q)rm -f $@ && ar rcs $@ $^

$(REL)/chat-ws: $(call ws_objs,$(REL)) $(REL)/libchatcore.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(REL_CFLAGS) $^ -o $@ $(LDLIBS_ALL)
$(ASAN)/chat-ws: $(call ws_objs,$(ASAN)) $(ASAN)/libchatcore.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ASAN_CFLAGS) $^ -o $@ $(LDLIBS_ALL)
$(REL)/chat-fcgi: $(call lp_objs,$(REL)) $(REL)/libchatcore.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(REL_CFLAGS) $^ -o $@ -lfcgi $(LDLIBS_ALL)
$(ASAN)/chat-fcgi: $(call lp_objs,$(ASAN)) $(ASAN)/libchatcore.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ASAN_CFLAGS) $^ -o $@ -lfcgi $(LDLIBS_ALL)

UNIT_BINS := $(patsubst %,$(ASAN)/tests/unit/test_%,$(UNIT_TESTS))
# unit tests also link the WebSocket codecs (test_frame, test_handshake)
$(ASAN)/tests/unit/test_%: $(ASAN)/tests/unit/test_%.o $(call wscodec_objs,$(ASAN)) $(ASAN)/libchatcore.a
	$(Q)$(CC) $(ASAN_CFLAGS) $^ -o $@ -lcmocka $(LDLIBS_ALL)

# test_lp_addr: chat-fcgi's per-address counts (fcgi/lp_addr.c)
$(ASAN)/tests/unit/test_lp_addr: $(ASAN)/tests/unit/test_lp_addr.o $(ASAN)/fcgi/lp_addr.o $(ASAN)/libchatcore.a
	$(Q)$(CC) $(ASAN_CFLAGS) $^ -o $@ -lcmocka $(LDLIBS_ALL)

# test_resolve: chat-ws's resolver (module/pg_resolve.c, on module/ev.c)
$(ASAN)/tests/unit/test_resolve: $(ASAN)/tests/unit/test_resolve.o $(ASAN)/module/pg_resolve.o \
                                 $(ASAN)/module/ev.o $(ASAN)/libchatcore.a
	$(Q)$(CC) $(ASAN_CFLAGS) $^ -o $@ -lcmocka $(LDLIBS_ALL)

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- dependencies ----------------------------------------------------------
# deps: everything (build, stack, tests). build-deps: what a compile needs;
# every compile waits for it, so `make all` on a machine without the -dev
# packages installs them (root or password-less sudo) or names them.
.PHONY: deps build-deps
deps:
	$(Q)scripts/deps.sh
build-deps:
	$(Q)scripts/deps.sh build

# ---- the stack -------------------------------------------------------------
.PHONY: run start stop migrate status
run: deps all
	$(Q)VAR=$(VAR) PORT=$(PORT) BIN=$(CURDIR)/$(REL) scripts/stack.sh run
start: deps all
	$(Q)VAR=$(VAR) PORT=$(PORT) BIN=$(CURDIR)/$(REL) \
	    CHAT_NGINX_EXTRA=$(CURDIR)/tests/nginx.test.conf scripts/stack.sh start
stop:
	$(Q)VAR=$(VAR) scripts/stack.sh stop
	$(Q)VAR=$(TEST_VAR) scripts/stack.sh stop
status:
	$(Q)VAR=$(VAR) PORT=$(PORT) scripts/stack.sh status
migrate:
	$(Q)VAR=$(VAR) scripts/stack.sh migrate

# ---- tests -----------------------------------------------------------------
.PHONY: check test e2e cycles
check: $(UNIT_BINS)
	$(Q)scripts/run-unit.sh $(UNIT_BINS)

# no dependency cycle between the .c files of a folder (nm on the objects)
cycles: asan
	$(Q)scripts/cycles.sh "$(call core_objs,$(ASAN))" "$(call ws_objs,$(ASAN))" "$(call lp_objs,$(ASAN))"

# make test: unit tests, then the sanitizer-built stack under $(TEST_VAR) on
# $(TEST_PORT) with the black-box suites against it; stopped afterwards.
test: deps asan
	$(Q)$(MAKE) --no-print-directory check cycles
	$(Q)VAR=$(TEST_VAR) PORT=$(TEST_PORT) BIN=$(CURDIR)/$(ASAN) scripts/stack.sh test

# e2e against an already running `make start` stack (for quick iteration)
e2e:
	$(Q)cd tests && CHAT_URL=http://127.0.0.1:$(PORT)/chat/ CHAT_VAR=$(VAR) \
	    CHAT_BIN=$(CURDIR)/$(REL) ../scripts/node --test --test-concurrency=1 --test-timeout=180000 \
	    --test-force-exit $(or $(T),e2e/*.test.mjs)

# ---- fuzzing ---------------------------------------------------------------
# make fuzz [FUZZ_TIME=60] [FUZZ_RUNS=N]: every target in turn, FUZZ_TIME
# seconds or FUZZ_RUNS executions each (whichever comes first; 0 / -1: no
# bound). Prints each target's executions and result; the output of a run
# is in build/fuzz/fuzz_T.log, a crashing input in build/fuzz/crash-*.
# Exits non-zero when any target crashed (or did not run).
.PHONY: fuzz
FUZZ_TIME ?= 60
FUZZ_RUNS ?= -1
FUZZ_BINS := $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
FUZZ_CFLAGS = -std=c11 $(WARN) $(INC_tests) $(PKG_CFLAGS) -g -O1 -fsanitize=fuzzer,address,undefined
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CORE_SRCS) $(WS_CODEC_SRCS) $(wildcard core/*.h module/*.h)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(CORE_SRCS) $(WS_CODEC_SRCS) -o $@ $(LDLIBS_ALL)
$(FUZZ_BINS): | build-deps
fuzz: deps $(FUZZ_BINS)
	$(Q)failed=""; for t in $(FUZZ_TARGETS); do \
	    log=build/fuzz/fuzz_$$t.log; mkdir -p build/fuzz/corpus/$$t; \
	    echo "== fuzz_$$t ($(FUZZ_TIME) s, $(FUZZ_RUNS) runs at most)"; \
	    if build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -runs=$(FUZZ_RUNS) \
	        -print_final_stats=1 -artifact_prefix=build/fuzz/ \
	        build/fuzz/corpus/$$t tests/fuzz/corpus/$$t >$$log 2>&1; then res=ok; \
	    else res="FAILED (exit $$?)"; failed="$$failed $$t"; \
	        grep -E -A12 '^==[0-9]+==ERROR|^SUMMARY|deadly signal|Test unit written' $$log | head -n 40; fi; \
	    execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n 1); \
	    secs=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log | tail -n 1); \
	    echo "fuzz_$$t: $${execs:-?} executions ($${secs:-?}/s): $$res"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed (logs: build/fuzz/fuzz_*.log)"; exit 1; fi

# ---- benchmarks ------------------------------------------------------------
.PHONY: bench
bench: deps all
	$(Q)VAR=$(BENCH_VAR) PORT=$(BENCH_PORT) BIN=$(CURDIR)/$(REL) scripts/stack.sh bench

# ---- housekeeping ----------------------------------------------------------
.PHONY: clean format format-check help
clean:
	rm -rf build
format:
	clang-format -i core/*.[ch] module/*.[ch] fcgi/*.[ch] tests/unit/*.c tests/fuzz/*.c
format-check:
	clang-format --dry-run --Werror core/*.[ch] module/*.[ch] fcgi/*.[ch] tests/unit/*.c tests/fuzz/*.c
help:
	@echo "targets: deps all asan run start stop status migrate check cycles test e2e fuzz bench multihost clean format format-check install deb install-test"
	@echo "vars: PORT=$(PORT) VAR=$(VAR) DATABASE_URL=<libpq conninfo> V=1"

# ---- several hosts (issue 13; not part of `make test`) ----------------------
# 3 chat hosts, a load balancer and a PostgreSQL pair under pg_auto_failover,
# in network namespaces on this machine; five faults with traffic flowing;
# prints the table of docs/operations.md. Needs root; about 2 minutes.
.PHONY: multihost
MULTIHOST_VAR ?= $(CURDIR)/var/multihost
multihost: deps all
	$(Q)VAR=$(MULTIHOST_VAR) BIN=$(CURDIR)/$(REL) scripts/multihost.sh run

# ---- install and the Debian package ---------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=]: the daemons, chat-migrate, chat-export, chatctl, the
# migrations, the browser client, the nginx snippets in /etc/nginx/chat/, the
# systemd units and tmpfiles entry, /etc/default/nginx-chat. An existing
# chat-upstreams.conf or /etc/default/nginx-chat (the files an admin edits)
# is kept; the new one is put next to it as .new. docs/install.md says the
# rest (the chat user, the database, nginx).
# make deb: build/deb/nginx-chat_VERSION_ARCH.deb with dpkg-buildpackage
# (debian/), installing debhelper and the Build-Depends first if missing.
# make install-test: docs/install.md followed in a bare Debian 12 chroot
# (tests/install/run.sh; about 1.5 minutes, 1 more the first time: debootstrap).
.PHONY: install deb install-test
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/chat
DOCDIR ?= $(PREFIX)/share/doc/nginx-chat
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
NGINX_SNIPPETS := chat.conf chat-defaults.conf chat-locations.conf chat-http.conf \
                  chat-proxy.conf chat-fastcgi.conf chat-limits.conf
INSTALL_SED = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
                  -e 's|@DOCDIR@|$(DOCDIR)|g' -e 's|@TMPFILESDIR@|$(TMPFILESDIR)|g'

# installs $(1) as $(2) unless $(2) exists with other contents: then as $(2).new
define install_keep
	$(Q)if [ -e "$(2)" ] && ! cmp -s "$(1)" "$(2)"; then \
	    install -m 644 "$(1)" "$(2).new"; echo "install: kept $(2), the new one is $(2).new"; \
	else install -m 644 "$(1)" "$(2)"; fi
endef

install: all
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/web \
	    $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/nginx/chat $(DESTDIR)$(SYSCONFDIR)/default \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR) build/install
	$(Q)install -m 755 $(REL)/chat-ws $(REL)/chat-fcgi scripts/chat-migrate scripts/chat-export scripts/chatctl $(DESTDIR)$(BINDIR)/
	$(Q)install -m 644 sql/[0-9][0-9][0-9]_*.sql $(DESTDIR)$(DATADIR)/sql/
	$(Q)cp -R web/. $(DESTDIR)$(DATADIR)/web/ && chmod -R u=rwX,go=rX $(DESTDIR)$(DATADIR)/web
	$(Q)install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	$(Q)for f in $(NGINX_SNIPPETS); do \
	    sed -e 's|^set $$chat_web .*|set $$chat_web $(DATADIR)/web;|' conf/$$f >build/install/$$f; \
	    install -m 644 build/install/$$f $(DESTDIR)$(SYSCONFDIR)/nginx/chat/$$f; done
	$(call install_keep,conf/chat-upstreams.conf,$(DESTDIR)$(SYSCONFDIR)/nginx/chat/chat-upstreams.conf)
	$(call install_keep,conf/chat-admin-access.conf,$(DESTDIR)$(SYSCONFDIR)/nginx/chat/chat-admin-access.conf)
	$(Q)$(INSTALL_SED) packaging/default.in >build/install/nginx-chat.default
	$(call install_keep,build/install/nginx-chat.default,$(DESTDIR)$(SYSCONFDIR)/default/nginx-chat)
	$(Q)for u in chat-ws.service chat-fcgi.service chat-prune.service chat-prune.timer; do \
	    $(INSTALL_SED) packaging/$$u.in >build/install/$$u; \
	    install -m 644 build/install/$$u $(DESTDIR)$(UNITDIR)/$$u; done
	$(Q)install -m 644 packaging/tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/nginx-chat.conf
	@echo "installed under $(DESTDIR)$(PREFIX) and $(DESTDIR)$(SYSCONFDIR); next: docs/install.md"

# Built in a copy under build/deb/ (dpkg-buildpackage writes next to the
# source tree, and the work tree keeps its own builds).
deb:
	$(Q)command -v dpkg-buildpackage >/dev/null && dpkg-checkbuilddeps 2>/dev/null || \
	    { apt-get update -qq && apt-get install -y --no-install-recommends dpkg-dev debhelper && apt-get build-dep -y --no-install-recommends ./; }
	$(Q)rm -rf build/deb && mkdir -p build/deb/nginx-chat
	$(Q)tar -c Makefile README.md core module fcgi sql conf web scripts packaging debian docs | \
	    tar -x -C build/deb/nginx-chat
	$(Q)cd build/deb/nginx-chat && dpkg-buildpackage -b -us -uc >../build.log 2>&1 || \
	    { tail -n 40 ../build.log; rm -rf ../nginx-chat; exit 1; }
	$(Q)rm -rf build/deb/nginx-chat   # (its *.d files would be read by this Makefile)
	$(Q)ls -l build/deb/*.deb

install-test: deps deb
	$(Q)tests/install/run.sh
