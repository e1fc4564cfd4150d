# pmcore: build libpmcore.a, run the C suites, sanitizers, fuzzing, bench.
# `make help` lists the targets.  Every build directory is derived from BUILD
# so the same rules serve the plain, ASan and fuzzing builds (the sanitizer
# targets call this Makefile again with other BUILD/CC/SAN values).

BUILD ?= build
CC ?= cc
OPT ?= -O2
SAN ?=
PMC_CFLAGS = -std=c11 $(OPT) -g -Wall -Wextra -Werror -fvisibility=hidden \
             -fPIC -pthread $(SAN) -Ilibpmcore/include
PY ?= python3
FUZZ_SECONDS ?= 60
MAKEFLAGS += --no-print-directory

# Sanitizer builds prefer clang (its runtime is what libFuzzer needs too).
SAN_CC := $(shell command -v clang >/dev/null 2>&1 && echo clang || echo gcc)
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=all
# The vector runner's option for a shorter run (no split-point runs) under
# valgrind, where feeding every vector at every split point is too slow.
VEC_QUICK ?= --no-split
VALGRIND = valgrind -q --leak-check=full \
           --errors-for-leak-kinds=definite,indirect --error-exitcode=1

# The core's layers are folders (docs/architecture.md); objects keep the
# folder, as build/obj/proto/wire.o, so equal names cannot collide.
PMC_LAYERS := proto client server
LIB_SRCS := $(wildcard $(PMC_LAYERS:%=libpmcore/src/%/*.c))
LIB_OBJS := $(LIB_SRCS:libpmcore/src/%.c=$(BUILD)/obj/%.o)
# Tests may include the layers' private headers by their bare names.
PMC_PRIV_INC := $(PMC_LAYERS:%=-Ilibpmcore/src/%)
LIB := $(BUILD)/libpmcore.a
TEST_HDRS := $(wildcard tests/c/*.h)
TEST_BINS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/test_*.c))
VEC_SRCS := $(wildcard tests/c/vec*.c)
VECRUN := $(if $(VEC_SRCS),$(BUILD)/tests/vecrun)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

# One quoted command per suite for tests/run_c_suites.sh; VEC_ARGS lets
# test-valgrind ask the vector runner for its quick mode.
SUITES = $(foreach b,$(TEST_BINS),'$(b)') \
         $(if $(VECRUN),'$(VECRUN) $(VEC_ARGS) tests/vectors')

.PHONY: all check test test-c test-asan test-valgrind fuzz fuzz-build bench-core \
        demo clean help
all: $(LIB)

# --- library ---------------------------------------------------------------
$(BUILD)/obj/%.o: libpmcore/src/%.c
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $(LIB_OBJS)

-include $(LIB_OBJS:.o=.d)

# --- programs linked against the library ------------------------------------
$(BUILD)/tests/%: tests/c/%.c $(LIB) $(TEST_HDRS)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) $(PMC_PRIV_INC) -Itests/c $< $(LIB) -o $@

$(BUILD)/tests/vecrun: $(VEC_SRCS) $(LIB) $(TEST_HDRS)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) $(PMC_PRIV_INC) -Itests/c $(VEC_SRCS) $(LIB) -o $@

$(BUILD)/bench/bench_core: bench/core/bench_core.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) $< $(LIB) -o $@

# The server example is built by `make test` so it keeps compiling.
$(BUILD)/examples/hello_milter: examples/c/hello_milter.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) $< $(LIB) -o $@

$(BUILD)/examples/demo: examples/c/demo.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) $< $(LIB) -o $@

# libFuzzer supplies main(); SAN already holds fuzzer-no-link for the library.
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) -fsanitize=fuzzer $< $(LIB) -o $@

# Feature fragments (bench drivers, CLI, end-to-end suites) live in mk/*.mk.
# A fragment adds its own targets.  A suite that needs only a compiler,
# Perl and Python appends its command to CHECK_TESTS and what it needs to
# check-build; one that needs the world (an MTA, PyPI, an install) appends
# to EXTRA_TESTS and may add prerequisites to `test`.  Both lists run after
# the bindings and before the C suites.
CHECK_TESTS :=
EXTRA_TESTS :=
-include $(sort $(wildcard mk/*.mk))

# --- tests -------------------------------------------------------------------
# Two levels.  `make check` needs a compiler, Perl and Python with pytest:
# no network, no MTA, nothing fetched (the venv sees the interpreter's own
# pytest, setuptools and wheel).  `make test` is the same plus EXTRA_TESTS,
# the suites that need the world.  The C suites run last in both so the
# final line is their aggregate summary.
.PHONY: check check-build
check-build: $(LIB) $(TEST_BINS) $(VECRUN) $(BUILD)/examples/hello_milter

define CHECK_STEPS
	$(PY) tests/check/loopback.py
	tests/check_symbols.sh $(LIB)
	if [ -f perl/Makefile.PL ]; then \
	    cd perl && perl Makefile.PL && $(MAKE) && $(MAKE) test; fi
	if [ -f python/pyproject.toml ]; then \
	    $(PY) -m venv --system-site-packages $(BUILD)/venv && \
	    $(CHECK_PIP) PY=$(CURDIR)/$(BUILD)/venv/bin/python python/run_tests.sh; fi
	set -e; for t in $(CHECK_TESTS); do $$t; done
endef

# A test dependency the interpreter lacks (prometheus_client) is the one
# thing pip may still look for at check time: offline it gives up on the
# network index at once and takes what pip's local sources (find-links, a
# file:// index) hold.
check: CHECK_PIP := PIP_RETRIES=0
check: check-build
	$(CHECK_STEPS)
	tests/run_c_suites.sh $(SUITES)

test: check-build
	$(CHECK_STEPS)
	set -e; for t in $(EXTRA_TESTS); do $$t; done
	tests/run_c_suites.sh $(SUITES)

test-c: $(TEST_BINS) $(VECRUN)
	tests/run_c_suites.sh $(SUITES)

# The same suites under prove: every binary prints TAP (tests/c/tap.h), so
# prove runs one as it is, e.g. `prove -v build/tests/test_session`;
# tests/c/vectors.t gives the vector runner its directory.
.PHONY: test-c-prove
test-c-prove: $(TEST_BINS) $(VECRUN)
	BUILD=$(BUILD) VEC_ARGS="$(VEC_ARGS)" \
	    prove $(TEST_BINS) $(if $(VECRUN),tests/c/vectors.t)

test-asan:
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	$(MAKE) BUILD=build-asan CC=$(SAN_CC) OPT=-O1 SAN="$(SANITIZE)" test-c

test-valgrind: $(TEST_BINS) $(VECRUN)
	SUITE_WRAPPER="$(VALGRIND)" $(MAKE) VEC_ARGS="$(VEC_QUICK)" test-c

fuzz-build:
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 \
	    SAN="-fsanitize=fuzzer-no-link $(SANITIZE)" $(FUZZ_BINS:$(BUILD)/%=build-fuzz/%)

fuzz: fuzz-build
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

# --- bench and demo ------------------------------------------------------------
bench-core: $(BUILD)/bench/bench_core
	bench/core/run.sh $(BUILD)/bench/bench_core

# `make demo` (the README's first command) lives in mk/cli.mk.

clean:
	rm -rf build build-asan build-tsan build-fuzz python/build
	if [ -f perl/Makefile ]; then $(MAKE) -C perl clean >/dev/null; fi

help:
	@echo "make                 build $(LIB) and $(BUILD)/libpmcore.so (mk/c-library.mk)"
	@echo "make install [PREFIX=/usr/local DESTDIR=]  headers, libraries, pmcore.pc,"
	@echo "                     pmilter-test and its man page; make uninstall removes them"
	@echo "make check           offline: symbols, bindings, CLI, hostile peers, C suites"
	@echo "make test            check plus Postfix e2e, pymilter reference, installs, wheels"
	@echo "make test-c-prove    C suites under prove (they print TAP)"
	@echo "make test-asan       C suites with ASan+UBSan in build-asan/"
	@echo "make test-valgrind   C suites under valgrind memcheck"
	@echo "make test-tsan       the server suite under ThreadSanitizer"
	@echo "make fuzz [FUZZ_SECONDS=60]  libFuzzer targets, seeded from tests/vectors"
	@echo "make bench-core      session throughput and instructions per message"
	@echo "make bench-instr     instructions per message by part, C/Python/Perl (callgrind)"
	@echo "make demo            Perl and Python sample milters driven by pmilter-test"
	@echo "make clean"
