#!/bin/sh
# The differential test (differential.py) with the two venvs make test
# builds: ours in build/venv, pymilter 1.0.5 on libmilter in
# build/pymilter-ref-venv (tests/pymilter/build_ref.sh).
#   tests/pymilter/run_differential.sh [-v] [CONVERSATION...]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OURS=${OURS_PY:-$ROOT/build/venv/bin/python}
REF=${REF_PY:-$ROOT/build/pymilter-ref-venv/bin/python}
for p in "$OURS" "$REF"; do
    if [ ! -x "$p" ]; then
        echo "run_differential: $p missing (make test builds it;" \
             "tests/pymilter/build_ref.sh builds the reference)" >&2
        exit 1
    fi
done
exec "$OURS" "$ROOT/tests/pymilter/differential.py" --ours "$OURS" \
    --ref "$REF" "$@"
