# End-to-end suite: the Perl and Python test milters behind a private Postfix
# (tests/e2e/README.md).  `make test` runs it once the bindings are built;
# `make test-e2e` and `make demo-postfix` build what they need themselves.
EXTRA_TESTS += 'env BUILD=$(BUILD) tests/e2e/run.sh'

E2E_PY := $(BUILD)/venv/bin/python
# The C milter of the Sendmail suite, on the library's own server API.
E2E_C_MILTER := $(BUILD)/tests/e2e_milter
test: $(E2E_C_MILTER)

$(E2E_C_MILTER): tests/e2e/milters/e2e_milter.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(PMC_CFLAGS) $< $(LIB) -o $@

# The samples `make demo-postfix` puts behind Postfix; each takes its socket
# spec as its only argument.
DEMO_PERL_MILTER ?= examples/perl/header-milter.pl
DEMO_PYTHON_MILTER ?= examples/python/header_adder.py

.PHONY: e2e-bindings test-e2e demo-postfix
# The Perl binding in perl/blib and the Python one in the venv, as make test
# leaves them (the venv is only filled when the binding is missing).
e2e-bindings: $(E2E_C_MILTER)
	cd perl && perl Makefile.PL >/dev/null && $(MAKE) >/dev/null
	if ! $(E2E_PY) -c 'import milter, pytest' 2>/dev/null; then \
	    $(PY) -m venv $(BUILD)/venv && \
	    $(E2E_PY) -m pip install --quiet --disable-pip-version-check ./python pytest; fi

# test_capture.py replays captures with pmilter-test; the pool test
# (test_pool.py) runs the C example too.
test-e2e: e2e-bindings $(PMT) $(BUILD)/examples/hello_milter
	BUILD=$(BUILD) tests/e2e/run.sh

demo-postfix: e2e-bindings
	PATH="$$PATH:/usr/sbin" $(E2E_PY) tests/e2e/demo.py \
	    $(DEMO_PERL_MILTER) $(DEMO_PYTHON_MILTER)
