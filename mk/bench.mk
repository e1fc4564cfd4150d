# Load driver and the C benchmark (libpmcore against Sendmail's libmilter).
#   make bench-driver   build $(BUILD)/bench/pmc-load
#   make bench-c        the C benchmark; knobs: ROUNDS, QUICK=1, MSGS, ...
#                       (see bench/README.md)

BENCH_DRIVER := $(BUILD)/bench/pmc-load
BENCH_DRIVER_SRCS := $(wildcard bench/driver/*.c)
BENCH_PMC_MILTER := $(BUILD)/bench/milter_pmcore
BENCH_LIBMILTER_MILTER := $(BUILD)/bench/milter_libmilter
BENCH_PINGPONG := $(BUILD)/bench/pmc-pingpong
# libmilter's header is not -Wextra clean, so its milter gets plain flags.
BENCH_LIBMILTER_CFLAGS = -std=gnu11 $(OPT) -g -Wall -pthread

.PHONY: bench-driver bench-c bench-c-milters
bench-driver: $(BENCH_DRIVER)

$(BENCH_DRIVER): $(BENCH_DRIVER_SRCS) bench/driver/load.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) -Ibench/driver $(BENCH_DRIVER_SRCS) $(LIB) -o $@

$(BENCH_PMC_MILTER): bench/c/milter_pmcore.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) $< $(LIB) -o $@

$(BENCH_LIBMILTER_MILTER): bench/c/milter_libmilter.c
	@mkdir -p $(@D)
	@test -f /usr/include/libmilter/mfapi.h || { echo \
	    "libmilter-dev is missing: run scripts/setup.d/20-bench.sh" >&2; \
	    exit 1; }
	$(CC) $(BENCH_LIBMILTER_CFLAGS) $< -lmilter -o $@

# The transport floor: a null server making the same round trips.
$(BENCH_PINGPONG): bench/c/pingpong.c
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) $< -o $@

bench-c-milters: $(BENCH_DRIVER) $(BENCH_PMC_MILTER) $(BENCH_LIBMILTER_MILTER) \
                 $(BENCH_PINGPONG)

bench-c: bench-c-milters
	$(PY) bench/c/run.py --build $(BUILD)

# The cost of PMCORE_METRICS (scraped once a second) and PMCORE_CAPTURE on
# bench-c's milter, against the same milter with neither.
.PHONY: bench-observability
bench-observability: bench-c-milters
	$(PY) bench/c/observability.py $(BUILD)

# The driver's own test: a tiny load over unix and TCP must pass, and a
# milter that answers otherwise must make it fail.
check-build: $(BENCH_DRIVER) $(BENCH_PMC_MILTER)
check test: export PMC_BENCH_BUILD := $(BUILD)
CHECK_TESTS += bench/driver/test_load.sh bench/lib/test_benchlib.py
