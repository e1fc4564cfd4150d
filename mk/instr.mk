# make bench-instr: instructions per message under callgrind, split into
# interpreter, libpmcore (session + loop), libc and glue, for the C, Python
# and Perl reference milters and libmilter (bench/instr/run.py; knobs
# MILTERS, MSGS).  Needs valgrind (scripts/setup.sh) and libmilter-dev
# (scripts/setup.d/20-bench.sh).
.PHONY: bench-instr
bench-instr: bench-c-milters perl-blib
	$(PY) -m venv $(BUILD)/venv
	INSTALL_ONLY=1 PY=$(CURDIR)/$(BUILD)/venv/bin/python python/run_tests.sh
	$(PY) bench/instr/run.py --build $(BUILD)

# The profile splitter's own test (a hand-written profile).
CHECK_TESTS += bench/instr/test_cgsplit.py
