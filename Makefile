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
BASE_CFLAGS = -std=c11 $(WARN) -MMD -MP -Imodule -Ifcgi $(PKG_CFLAGS)
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
CORE_SRCS := module/chat_log.c module/chat_utf8.c module/chat_valid.c module/chat_policy.c \
             module/chat_proto.c module/chat_db.c module/chat_sys.c module/chat_http.c
WS_CODEC_SRCS := module/ws_frame.c module/ws_handshake.c
WS_SRCS := module/ws_main.c module/ws_conn.c module/ws_chat.c module/ws_room.c module/ev.c module/pg.c
LP_SRCS := fcgi/lp_main.c fcgi/lp_workers.c fcgi/lp_accept.c fcgi/lp_poll.c fcgi/lp_fcgi.c fcgi/lp_db.c fcgi/lp_query.c fcgi/lp_listener.c fcgi/lp_rooms.c fcgi/lp_seqcache.c fcgi/lp_writer.c fcgi/lp_presence.c fcgi/lp_health.c
UNIT_TESTS := utf8 valid policy proto log frame handshake lp_query
FUZZ_TARGETS := utf8 proto frame handshake query

REL := build/release
ASAN := build/asan

core_objs = $(patsubst %.c,$(1)/%.o,$(CORE_SRCS) $(WS_CODEC_SRCS))
ws_objs = $(patsubst %.c,$(1)/%.o,$(WS_SRCS))
lp_objs = $(patsubst %.c,$(1)/%.o,$(LP_SRCS))

# ---- build ---------------------------------------------------------------
.PHONY: all asan
all: $(REL)/chat-ws $(REL)/chat-fcgi
asan: $(ASAN)/chat-ws $(ASAN)/chat-fcgi

$(REL)/%.o: %.c | build-deps
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) $(REL_CFLAGS) -c $< -o $@

$(ASAN)/%.o: %.c | build-deps
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) -c $< -o $@

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
$(ASAN)/tests/unit/test_%: $(ASAN)/tests/unit/test_%.o $(ASAN)/libchatcore.a
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
.PHONY: check test e2e
check: $(UNIT_BINS)
	$(Q)scripts/run-unit.sh $(UNIT_BINS)

# make test: unit tests, then the sanitizer-built stack under $(TEST_VAR) on
# $(TEST_PORT) with the black-box suites against it; stopped afterwards.
test: deps asan
	$(Q)$(MAKE) --no-print-directory check
	$(Q)VAR=$(TEST_VAR) PORT=$(TEST_PORT) BIN=$(CURDIR)/$(ASAN) scripts/stack.sh test

# e2e against an already running `make start` stack (for quick iteration)
e2e:
	$(Q)cd tests && CHAT_URL=http://127.0.0.1:$(PORT)/chat/ CHAT_VAR=$(VAR) \
	    CHAT_BIN=$(CURDIR)/$(REL) ../scripts/node --test --test-concurrency=1 --test-timeout=180000 \
	    --test-force-exit $(or $(T),e2e/*.test.mjs)

# ---- fuzzing ---------------------------------------------------------------
.PHONY: fuzz
FUZZ_TIME ?= 60
FUZZ_BINS := $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
FUZZ_CFLAGS = -std=c11 $(WARN) -Imodule -Ifcgi $(PKG_CFLAGS) -g -O1 -fsanitize=fuzzer,address,undefined
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CORE_SRCS) $(WS_CODEC_SRCS) $(wildcard module/*.h)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(CORE_SRCS) $(WS_CODEC_SRCS) -o $@ $(LDLIBS_ALL)
$(FUZZ_BINS): | build-deps
fuzz: deps $(FUZZ_BINS)
	$(Q)for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz_$$t ($(FUZZ_TIME) s)"; mkdir -p build/fuzz/corpus/$$t; \
	    build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	        build/fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>&1 | tail -n 3 || exit 1; \
	done

# ---- benchmarks ------------------------------------------------------------
.PHONY: bench
bench: deps all
	$(Q)VAR=$(BENCH_VAR) PORT=$(BENCH_PORT) BIN=$(CURDIR)/$(REL) scripts/stack.sh bench

# ---- housekeeping ----------------------------------------------------------
.PHONY: clean format format-check help
clean:
	rm -rf build
format:
	clang-format -i module/*.[ch] fcgi/*.[ch] tests/unit/*.c tests/fuzz/*.c
format-check:
	clang-format --dry-run --Werror module/*.[ch] fcgi/*.[ch] tests/unit/*.c tests/fuzz/*.c
help:
	@echo "targets: deps all asan run start stop status migrate check test e2e fuzz bench clean format"
	@echo "vars: PORT=$(PORT) VAR=$(VAR) DATABASE_URL=<libpq conninfo> V=1"
