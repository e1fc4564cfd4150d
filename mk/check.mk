# Pieces of `make check` that belong to no feature: the citations of the
# protocol notes (every docs/...md#anchor in the vectors names a heading).
CHECK_TESTS += '$(PY) tests/check/doc_citations.py'
