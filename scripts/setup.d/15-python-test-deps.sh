#!/usr/bin/env bash
# What the Python suite imports beyond the standard library: pytest, and the
# optional extras it tests for real (prometheus_client for Milter.metrics,
# dnspython for Milter.dns and Milter.dsn).  Installed into the interpreter
# `make check` uses, once, while the network is there: the check's venv sees
# them (--system-site-packages), so the check itself fetches nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python3}
need=()
"$PY" -c 'import pytest' 2>/dev/null || need+=(pytest)
"$PY" -c 'import prometheus_client' 2>/dev/null || need+=(prometheus_client)
"$PY" -c 'import dns.resolver' 2>/dev/null || need+=('dnspython>=2.0')
if [ ${#need[@]} -gt 0 ]; then
    "$PY" -m pip install --quiet --disable-pip-version-check "${need[@]}"
    echo "setup: installed ${need[*]} for $PY"
fi
