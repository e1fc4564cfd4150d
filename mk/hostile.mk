# Hostile peers against the example milters (tests/hostile/README.md):
# `make check` runs it after the bindings are built; `make test-hostile`
# builds what it needs itself.  HOSTILE_FULL=1 for the brief's full counts;
# `make bench-hostile` and `make soak-hostile` are the measurements (not CI).
CHECK_TESTS += 'env BUILD=$(BUILD) tests/hostile/run.sh'

.PHONY: test-hostile bench-hostile soak-hostile
test-hostile: $(BUILD)/examples/hello_milter e2e-bindings
	BUILD=$(BUILD) tests/hostile/run.sh

bench-hostile: $(BUILD)/examples/hello_milter e2e-bindings
	HOSTILE_BUILD=$(abspath $(BUILD)) $(BUILD)/venv/bin/python bench/hostile/run.py

soak-hostile: $(BUILD)/examples/hello_milter e2e-bindings
	HOSTILE_BUILD=$(abspath $(BUILD)) $(BUILD)/venv/bin/python bench/hostile/soak.py
