"""Fixtures: each example milter as a child process, one per module and
server name, and the figures the cases record (printed after the run).

Knobs (environment):
  HOSTILE_SERVERS  comma-separated names from hostile.kinds()
                   (default: c,perl-default,perl-loop,python; with
                   HOSTILE_FULL=1 also perl-postfork and perl-prefork)
  HOSTILE_FULL=1   the full counts of the acceptance brief (slower)
  HOSTILE_<COUNT>  one count (see knob() calls in test_hostile.py)
  HOSTILE_FIGURES  file the figures are also written to
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostile as h  # noqa: E402

FULL = os.environ.get('HOSTILE_FULL') == '1'
# perl-default is Sendmail::PMilter's default dispatcher, postfork today:
# naming postfork again would run the same code twice in `make test`.
DEFAULT_SERVERS = 'c,perl-default,perl-loop,python' + (
    ',perl-postfork,perl-prefork' if FULL else '')
SERVERS = [x for x in os.environ.get('HOSTILE_SERVERS', DEFAULT_SERVERS).split(',') if x]
FIGURES = []


def knob(name, quick, full):
    v = os.environ.get('HOSTILE_' + name)
    return int(v) if v else (full if FULL else quick)


def record(line):
    FIGURES.append(line)


def pytest_configure(config):
    h.raise_nofile()
    unknown = set(SERVERS) - set(h.kinds())
    if unknown:
        raise pytest.UsageError('HOSTILE_SERVERS: unknown %s' % ', '.join(sorted(unknown)))


def _server(request, transport, tmp_path_factory):
    kind = h.kinds()[request.param]
    srv = h.Server(kind, transport, str(tmp_path_factory.mktemp(kind.name)))
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope='module', params=SERVERS)
def srv(request, tmp_path_factory):
    yield from _server(request, 'tcp', tmp_path_factory)


@pytest.fixture(scope='module', params=SERVERS)
def usrv(request, tmp_path_factory):
    yield from _server(request, 'unix', tmp_path_factory)


@pytest.fixture(params=SERVERS)
def kind(request):
    return h.kinds()[request.param]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing case shows the server's last log lines."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == 'call' and rep.failed:
        for name in ('srv', 'usrv'):
            s = item.funcargs.get(name)
            if s is not None:
                rep.sections.append(('%s log' % s.kind.name, s.log_tail()))


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section('hostile-peer figures')
    for line in FIGURES:
        terminalreporter.write_line(line)
    out = os.environ.get('HOSTILE_FIGURES')
    if out:
        with open(out, 'w') as f:
            f.write('\n'.join(FIGURES) + '\n')
