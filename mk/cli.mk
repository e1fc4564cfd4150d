# pmilter-test, the command-line MTA for milter authors, and the README's
# demo (a Perl and a Python sample milter driven through real sockets).
PMT_SRCS := $(wildcard tools/pmilter-test/*.c)
PMT := $(BUILD)/bin/pmilter-test

# _GNU_SOURCE: getopt_long, getaddrinfo and strcasecmp under -std=c11.
$(PMT): $(PMT_SRCS) $(wildcard tools/pmilter-test/*.h) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) -D_GNU_SOURCE $(PMT_SRCS) $(LIB) -o $@

# The test milter serves the library's own server API, so the suite needs
# neither binding.
$(BUILD)/tests/pmt_milter: tests/cli/pmt_milter.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) -D_GNU_SOURCE $< $(LIB) -o $@

.PHONY: pmilter-test test-cli
pmilter-test: $(PMT)

test-cli: $(PMT) $(BUILD)/tests/pmt_milter $(BUILD)/examples/hello_milter
	tests/cli/run.sh $(PMT) $(BUILD)/tests/pmt_milter $(BUILD)/examples/hello_milter
	tests/cli/replay.sh $(PMT) $(BUILD)/tests/pmt_milter

check-build: $(PMT) $(BUILD)/tests/pmt_milter
CHECK_TESTS += 'tests/cli/run.sh $(PMT) $(BUILD)/tests/pmt_milter $(BUILD)/examples/hello_milter'
# Capture and replay (docs/capture-format.md); its full-disk case mounts a
# tmpfs, so it needs root (CI runs as root).
CHECK_TESTS += 'tests/cli/replay.sh $(PMT) $(BUILD)/tests/pmt_milter'

# The README's first command: the sample Perl and Python milters on unix
# sockets, each driven by pmilter-test playing Postfix (scripts/demo.sh).
# demo-c is the earlier in-process C demo.
.PHONY: demo demo-c
demo: $(PMT)
	BUILD=$(BUILD) PY=$(PY) scripts/demo.sh $(PMT)

demo-c: $(BUILD)/examples/demo
	$(BUILD)/examples/demo
