"""Fixtures: one environment for the whole run, and `m`, the milter a test
talks to (every test runs once per language and transport)."""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import MILTER_NAMES, Env  # noqa: E402

# Figures the pool test measures, printed after the run whatever pytest
# captured.
FIGURES = []


def record(line):
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section('pool figures')
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope='session')
def env():
    # run.sh makes the folder (and cleans up after a killed run); pytest
    # alone makes its own.
    given = os.environ.get('E2E_ROOT')
    # Under /tmp: Postfix's daemons (user postfix) must reach every level.
    root = given or tempfile.mkdtemp(prefix='pmcore-e2e-', dir='/tmp')
    e = Env(root)
    try:
        e.start()
        yield e
    finally:
        try:
            e.stop()
        finally:
            if not given and not os.environ.get('E2E_KEEP'):
                shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=MILTER_NAMES)
def m(request, env):
    milter = env.milters[request.param]
    milter.ensure_running()
    milter.set_connect_verdict(None)
    yield milter
    # A milter that died during a test is restarted for the next one, but
    # must not go unnoticed unless the test stopped it on purpose.
    if not milter.alive() and not request.node.get_closest_marker('stops_milter'):
        pytest.fail(f'milter {milter.name} died:\n{milter.log_tail()}')


def pytest_configure(config):
    config.addinivalue_line('markers', 'stops_milter: the test ends the milter')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, show the milter's output and the MTA's log with it."""
    outcome = yield
    report = outcome.get_result()
    if report.when != 'call' or not report.failed:
        return
    e = item.funcargs.get('env')
    milter = item.funcargs.get('m')
    if milter is not None:
        report.sections.append((f'milter {milter.name} log', milter.log_tail()))
    if e is not None:
        report.sections.append(('postfix maillog', e.postfix.log_tail(60)))
    # test_sendmail.py's fixtures.
    milter = item.funcargs.get('sm')
    if milter is not None:
        report.sections.append((f'milter {milter.name} log', milter.log_tail()))
    e = item.funcargs.get('sm_env')
    if e is not None:
        report.sections.append(('sendmail log', e.sendmail.log_tail(60)))
    pool = item.funcargs.get('pool')  # test_pool.py
    if pool is not None:
        report.sections.append(('haproxy log', pool.haproxy.log_tail(40)))
        report.sections.append(('postfix maillog', pool.postfix.log_tail(40)))
        for m in pool.milters.values():
            report.sections.append((f'milter {m.name} log', m.log_tail(15)))
