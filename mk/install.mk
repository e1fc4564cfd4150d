# The README's install commands, checked: `cpanm ./perl` into a private
# library (`pip install ./python` is what python/run_tests.sh does).
.PHONY: test-install
test-install:
	tests/install/cpanm.sh
EXTRA_TESTS += tests/install/cpanm.sh
