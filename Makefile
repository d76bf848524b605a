# sila-archiver: see README.md. Targets: all check check-unit check-it check-readers
# check-swift check-node asan lint bench demo deps clean.
PKGS      := libcurl openssl hiredis jansson libarchive expat libmicrohttpd
WK_STD    := -std=c11 -D_POSIX_C_SOURCE=200809L -D_FILE_OFFSET_BITS=64
WK_WARN   := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wwrite-strings -Wformat=2 -Wvla \
             -Wpointer-arith -Wundef -Wcast-qual
CFLAGS    ?= -O2 -g
BUILD     := build/rel
ifeq ($(FUZZ),1)
# libFuzzer (clang): the library instrumented for coverage, ASan, UBSan
CC        := clang
BUILD     := build/fuzz
CFLAGS    := -O1 -g -fno-omit-frame-pointer
WK_SAN    := -fsanitize=fuzzer-no-link,address,undefined \
             -fno-sanitize-recover=all -Wno-format-nonliteral
LDFLAGS   += -fsanitize=fuzzer,address,undefined
endif
ifeq ($(SAN),1)
BUILD     := build/san
CFLAGS    := -O1 -g -fno-omit-frame-pointer
WK_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=address,undefined
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm -lz
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)
WK_CFLAGS  = $(WK_STD) $(WK_WARN) $(WK_SAN) -I. -I$(BUILD)/gen $(PKG_CFLAGS)

LIB_SRC  := $(wildcard common/*.c storage/*.c zip/*.c jobs/*.c) \
            $(filter-out worker/main.c,$(wildcard worker/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
BIN      := $(BUILD)/sila-archiver
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
IT_SRC   := $(wildcard tests/integration/*.c)
IT_OBJ   := $(IT_SRC:%.c=$(BUILD)/%.o)
# The Swift suites (tests/swift/) share the integration helpers.
SWIFT_SRC := $(wildcard tests/swift/*.c)
SWIFT_OBJ := $(SWIFT_SRC:%.c=$(BUILD)/%.o)
IT_HELPERS := $(BUILD)/tests/integration/it_util.o \
              $(BUILD)/tests/integration/it_flow.o

.PHONY: all deps check check-unit check-it check-readers check-tls check-sentinel check-cluster check-node check-deploy check-long \
	check-swift \
	asan lint bench demo clean fmt fuzz

all: $(BIN) build/sila-archiver

build/sila-archiver: $(BIN)
	@mkdir -p build
	ln -sf $(notdir $(BUILD))/sila-archiver $@

$(BIN): $(BUILD)/worker/main.o $(BUILD)/libsila.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/libsila.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WK_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# Every tests/*/check_*.c defines "Suite *<name>_suite(void)"; the runner's
# list is generated so that adding a suite never touches a shared file.
$(BUILD)/gen/%/suites_list.h: $(wildcard tests/*/check_*.c)
	@mkdir -p $(dir $@)
	@sed -n 's/^Suite \*\([a-z0-9_]*\)_suite(void)$$/WK_SUITE(\1)/p' \
		tests/$*/check_*.c > $@.tmp && mv $@.tmp $@

# docs/enqueue.lua (public contract) becomes the C string q_lua_enqueue:
# one string literal per line, backslashes and quotes escaped.
$(BUILD)/gen/worker/enqueue_lua.h: docs/enqueue.lua
	@mkdir -p $(dir $@)
	@{ echo '/* generated from docs/enqueue.lua by the Makefile: do not edit */'; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' \
	  docs/enqueue.lua; } > $@.tmp && mv $@.tmp $@

$(BUILD)/worker/q_lua.o: $(BUILD)/gen/worker/enqueue_lua.h

$(UNIT_OBJ): $(BUILD)/gen/unit/suites_list.h
$(IT_OBJ): $(BUILD)/gen/integration/suites_list.h
$(SWIFT_OBJ): $(BUILD)/gen/swift/suites_list.h

$(BUILD)/unit-tests: $(UNIT_OBJ) $(BUILD)/libsila.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)

$(BUILD)/it-tests: $(IT_OBJ) $(BUILD)/libsila.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)

$(BUILD)/swift-tests: $(SWIFT_OBJ) $(IT_HELPERS) $(BUILD)/libsila.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)

deps:
	@scripts/install-deps.sh
	@tests/node/deps.sh

check: deps
	$(MAKE) --no-print-directory $(BIN) $(BUILD)/unit-tests $(BUILD)/it-tests \
		$(BUILD)/swift-tests
	$(MAKE) --no-print-directory check-unit
	$(MAKE) --no-print-directory check-deploy
	$(MAKE) --no-print-directory check-it
	$(MAKE) --no-print-directory check-readers
	$(MAKE) --no-print-directory check-swift
	$(MAKE) --no-print-directory check-tls
	$(MAKE) --no-print-directory check-sentinel
	$(MAKE) --no-print-directory check-cluster
	$(MAKE) --no-print-directory check-node

# deploy/ checked without a container engine: it parses, and its names and
# variables are the program's (no drift).
check-deploy:
	python3 tests/check_deploy.py

# Redis Sentinel failover (master + replica + 3 sentinels on loopback):
# queued jobs kept, then the master killed while jobs run (every job ends).
check-sentinel: $(BIN)
	BIN=$(abspath $(BIN)) tests/sentinel/failover.sh
	BIN=$(abspath $(BIN)) tests/sentinel/failover_jobs.sh

# Redis Cluster (3 nodes on loopback, moto for S3): MOVED / ASK followed,
# the prefix's slot moved while jobs run (every job ends succeeded).
check-cluster: $(BIN)
	BIN=$(abspath $(BIN)) tests/cluster/cluster.sh

# Redis over TLS (rediss://): tests/integration/tls_run.sh (issue 17)
check-tls: $(BIN)
	tests/integration/tls_run.sh $(BIN)

check-unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

check-it: $(BIN) $(BUILD)/it-tests
	WK_BIN=$(abspath $(BIN)) WK_IT_TESTS=$(abspath $(BUILD)/it-tests) \
		tests/integration/run.sh

# Every ZIP reader opens a worker-made archive (issue 18): unzip, 7z, bsdtar
# from a pipe, Python zipfile, Java ZipFile and ZipInputStream, cat, restore.
check-readers: $(BIN)
	tests/readers/run.sh $(abspath $(BIN))

# The flows (archive, urgent unarchive, migrate, sweep) on OpenStack Swift's
# S3 API (Debian's swift-proxy with s3api + tempauth, started on loopback by
# tests/swift/run.sh), and which S3 features it has (tests/swift/features.py).
check-swift: $(BIN) $(BUILD)/swift-tests
	WK_BIN=$(abspath $(BIN)) WK_SWIFT_TESTS=$(abspath $(BUILD)/swift-tests) \
		tests/swift/run.sh

# The Node client (clients/node) against the real worker, redis-server and
# moto, with Node's own test runner (tests/node/run.sh: npm ci when needed).
check-node: $(BIN)
	WK_BIN=$(abspath $(BIN)) tests/node/run.sh

# The heavy chaos run (the short one is part of check).
check-long: deps
	$(MAKE) --no-print-directory $(BIN) $(BUILD)/it-tests
	CK_RUN_SUITE=it_chaos WK_CHAOS_ROUNDS=10 WK_CHAOS_SPACES=30 \
		WK_BIN=$(abspath $(BIN)) WK_IT_TESTS=$(abspath $(BUILD)/it-tests) \
		tests/integration/run.sh

asan:
	$(MAKE) check SAN=1

lint:
	clang-format --dry-run -Werror $(shell git ls-files '*.c' '*.h')
	@! git grep -nwE 'sprintf|vsprintf|strcpy|strcat|strncpy|strncat|strtok|gets|atoi|atol|strerror|gmtime|localtime' -- '*.c' '*.h' || \
		{ echo 'banned function used (STYLE.md 2.7)'; exit 1; }

fmt:
	clang-format -i $(shell git ls-files '*.c' '*.h')

demo: deps
	$(MAKE) --no-print-directory $(BIN)
	scripts/demo.sh

bench: deps
	$(MAKE) --no-print-directory $(BIN)
	bench/run.sh

# Fuzzing (clang's libFuzzer): each target runs FUZZ_SECONDS (60) from the
# seed corpus (tests/fuzz/corpus/<target>/ and tests/hostile/); new inputs
# go to build/fuzz/corpus/, crashes to build/fuzz/crash-*: a finding
# becomes a file in tests/hostile/ (see its README).
FUZZ_TARGETS := fuzz_job fuzz_manifest fuzz_s3xml fuzz_zipname fuzz_seal
FUZZ_SECONDS ?= 60
fuzz: deps
	@command -v clang >/dev/null || { echo 'fuzz: needs clang (apt-get install clang)'; exit 1; }
	$(MAKE) --no-print-directory FUZZ=1 $(FUZZ_TARGETS:%=build/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus/$$t tests/fuzz/corpus/$$t && \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s" && \
		build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-rss_limit_mb=2048 -artifact_prefix=build/fuzz/$$t- \
			-print_final_stats=1 build/fuzz/corpus/$$t \
			tests/fuzz/corpus/$$t >build/fuzz/$$t.log 2>&1; rc=$$?; \
		grep -E 'Done [0-9]+ runs|ERROR|SUMMARY|crash-' build/fuzz/$$t.log; \
		test $$rc -eq 0 || { echo "fuzz: $$t failed, see build/fuzz/$$t.log"; exit 1; }; \
	done

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libsila.a
	$(CC) $(WK_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsila.a $(PKG_LIBS)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
