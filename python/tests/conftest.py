import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
EXAMPLES = os.path.join(HERE, '..', '..', 'examples', 'python')
sys.path.insert(0, os.path.abspath(EXAMPLES))

import milter  # noqa: E402
import Milter  # noqa: E402


@pytest.fixture(autouse=True)
def clean_milter_state():
    """Every test starts from the module's defaults and leaves them so."""
    def reset():
        for name in ('connect', 'helo', 'envfrom', 'envrcpt', 'header', 'eoh',
                     'body', 'eom', 'abort', 'close'):
            getattr(milter, 'set_%s_callback' % name)(None)
        milter.register('pythonfilter', unknown=None, data=None,
                        negotiate=None)
        milter.set_exception_policy(milter.TEMPFAIL)
        Milter.factory = Milter.Milter
    reset()
    yield
    reset()
