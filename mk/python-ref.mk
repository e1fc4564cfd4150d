# Python binding against pymilter 1.0.5 on libmilter: pymilter's own test
# files, the differential test, and `make bench-python`.
# The reference venv is built from PyPI's sdist against libmilter-dev
# (scripts/setup.d/50-pymilter-ref.sh installs that and builds it too).
PYREF_VENV := $(BUILD)/pymilter-ref-venv

.PHONY: pymilter-ref bench-python
pymilter-ref:
	tests/pymilter/build_ref.sh $(PYREF_VENV)

test: pymilter-ref
EXTRA_TESTS += tests/pymilter/run_suite.sh tests/pymilter/run_differential.sh

# make bench-python: the trivial Python milter on ours and on pymilter, with
# the C libmilter milter for scale (knobs: ROUNDS, DURATION, QUICK=1,
# SYSCALLS=0, CALLGRIND=0, WORKERS; see bench/python/run.py).
bench-python: pymilter-ref bench-c-milters
	$(PY) -m venv $(BUILD)/venv
	INSTALL_ONLY=1 PY=$(CURDIR)/$(BUILD)/venv/bin/python python/run_tests.sh
	$(PY) bench/python/run.py --build $(BUILD)
