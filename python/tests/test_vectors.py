"""Every tests/vectors/*.vec through the Python API, fed whole, byte by
byte and split at every offset (vectors under 4 KiB)."""
import glob
import os

import pytest

import milter
import vecreader

VEC_DIR = os.environ.get('PMC_VECTORS') or os.path.join(
    os.path.dirname(__file__), '..', '..', 'tests', 'vectors')
FILES = sorted(glob.glob(os.path.join(VEC_DIR, '*.vec')))


def test_vectors_found():
    # An empty directory must fail, not pass with zero vectors.
    assert len(FILES) >= 50, VEC_DIR


@pytest.fixture(autouse=True)
def policy_name():
    milter.register('vectors')
    milter.set_exception_policy(milter.TEMPFAIL)
    yield
    milter.register('pythonfilter')


@pytest.mark.parametrize('path', FILES,
                         ids=[os.path.basename(f)[:-4] for f in FILES])
def test_vector(path, capsys):
    vec = vecreader.Vector(path)
    want = vecreader.translate(vec)
    for label, cuts in vecreader.cuttings(vec):
        got = vecreader.Run(vec).run(cuts)
        diff = vecreader.compare(got, want)
        assert diff is None, '%s (%s):\n%s' % (vec.name, label, diff)
