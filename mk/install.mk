# The README's install commands, checked: `cpanm ./perl` into a private
# library (`pip install ./python` is what python/run_tests.sh does).
.PHONY: test-install
test-install:
	tests/install/cpanm.sh
EXTRA_TESTS += tests/install/cpanm.sh

# The Python package on each CPython 3.8-3.13 installed here (CI runs it).
.PHONY: test-pythons
test-pythons:
	BUILD=$(CURDIR)/$(BUILD) tests/python-versions.sh
