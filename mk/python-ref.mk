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
