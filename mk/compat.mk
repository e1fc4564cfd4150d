# make test-compat: every public name of pymilter 1.0.5 (Milter.*, mime,
# milter) and every documented method and export of Sendmail::PMilter 1.28
# exists in ours, and pymilter's doctests give the same results on ours
# (tests/compat/run.sh; `make test` runs it after building both bindings).
.PHONY: test-compat
test-compat: pymilter-ref
	cd perl && perl Makefile.PL && $(MAKE)
	$(PY) -m venv $(BUILD)/venv
	INSTALL_ONLY=1 PY=$(CURDIR)/$(BUILD)/venv/bin/python python/run_tests.sh
	BUILD=$(BUILD) tests/compat/run.sh

EXTRA_TESTS += 'env BUILD=$(BUILD) tests/compat/run.sh'
