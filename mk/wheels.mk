# Release wheels: `make wheels` builds a manylinux wheel of python/ for every
# CPython 3.8-3.13 on the machine into $(BUILD)/wheels (scripts/build-wheels.sh,
# PyPI for the build requirements and auditwheel); `make test` builds them
# and installs each into a clean venv with no compiler reachable, then runs
# a milter conversation on it (tests/wheels/run.sh).
.PHONY: wheels test-wheels
wheels:
	BUILD=$(CURDIR)/$(BUILD) scripts/build-wheels.sh

test-wheels: wheels $(PMT)
	BUILD=$(CURDIR)/$(BUILD) tests/wheels/run.sh $(PMT)

test: wheels
EXTRA_TESTS += 'env BUILD=$(CURDIR)/$(BUILD) tests/wheels/run.sh $(PMT)'
