"""Three milters (C, Perl, Python) in a pool behind HAProxy, which checks
their GET /health, behind Postfix with milter_default_action = tempfail:
mail reaches all three; a graceful stop of one while mail flows loses and
tempfails nothing; a crash tempfails only the messages in flight on the
crashed milter; a restarted milter is taken back into rotation."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import record
from harness import REPO
from load import Load
from pool import STAMPS, Pool

SEQ = re.compile(rb'^X-Pool-Seq: (\d+)\r$', re.M)


@pytest.fixture(scope='module')
def pool():
    given = os.environ.get('E2E_ROOT')
    if given:
        os.chmod(given, 0o755)  # Postfix's daemons must reach below it
        root = os.path.join(given, 'pool')
        os.makedirs(root)
    else:
        root = tempfile.mkdtemp(prefix='pmcore-pool-', dir='/tmp')
    p = Pool(root)
    try:
        p.start()
        yield p
    finally:
        try:
            p.stop()
        finally:
            if not given and not os.environ.get('E2E_KEEP'):
                shutil.rmtree(root, ignore_errors=True)


def test_example_config_is_valid_and_documented():
    """examples/haproxy/haproxy.cfg parses, and the README shows all of
    it but its comments (from `global` on)."""
    cfg = os.path.join(REPO, 'examples', 'haproxy', 'haproxy.cfg')
    r = subprocess.run(['haproxy', '-c', '-f', cfg], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(cfg) as f:
        text = f.read()
    with open(os.path.join(REPO, 'README.md')) as f:
        readme = f.read()
    lines = [line for line in text[text.index('global\n'):].splitlines(True)
             if not line.strip().startswith('#')]
    shown = ''.join('    ' + line if line.strip() else line for line in lines)
    assert shown in readme


def all_up(pool):
    for name, m in pool.milters.items():
        m.ensure_running()
        pool.haproxy.wait_status(name, 'UP')


def delivered(pool, want, timeout=60):
    """{seq: instance} for the messages the sink got, once every seq in
    WANT is there (Postfix relays asynchronously)."""
    end = time.monotonic() + timeout
    while True:
        got = {}
        for tx in list(pool.sink.transactions):
            head = tx.data.split(b'\r\n\r\n', 1)[0]
            m = SEQ.search(head)
            if m:
                got[int(m.group(1))] = [n for n, h in STAMPS.items()
                                        if h in head]
        missing = set(want) - set(got)
        if not missing:
            return got
        assert time.monotonic() < end, \
            f'{len(missing)} accepted messages never delivered: ' \
            f'{sorted(missing)[:10]}'
        time.sleep(0.2)


def outcome(load):
    ok = [s for s in load.sent if s.code == 250]
    tempfailed = [s for s in load.sent if 400 <= s.code < 500]
    other = [s for s in load.sent if s not in ok and s not in tempfailed]
    return ok, tempfailed, other


def messages_counted(pool, name, want, timeout=10):
    """pmcore_messages_total of NAME once it reaches WANT (a prefork or
    fork child reports after its connection closed)."""
    end = time.monotonic() + timeout
    while True:
        got = pool.milters[name].metric('pmcore_messages_total')
        if got == want or time.monotonic() > end:
            return got
        time.sleep(0.05)


def busy(m, n, timeout=20):
    """Wait until milter M has N connections open."""
    end = time.monotonic() + timeout
    while (m.metric('pmcore_connections_active') or 0) < n:
        assert time.monotonic() < end, f'{m.name}: fewer than {n} open'
        time.sleep(0.01)


def test_mail_flows_through_every_instance(pool):
    all_up(pool)
    load = Load(pool.smtp_port).start()
    try:
        load.wait_count(150)
    finally:
        load.stop()
    ok, tempfailed, other = outcome(load)
    assert not tempfailed and not other, (tempfailed + other)[:5]
    got = delivered(pool, [s.seq for s in ok])
    per = {n: sum(1 for s in ok if got[s.seq] == [n]) for n in STAMPS}
    record(f'pool: {len(ok)} messages, by instance {per}')
    assert sum(per.values()) == len(ok), 'a message with no or two stamps'
    for name, n in per.items():
        assert n > 0, f'{name} handled no message'
        # The milter's own count agrees with what arrived through it.
        assert messages_counted(pool, name, n) == n, name


@pytest.mark.parametrize('name', ['python', 'perl', 'c'])
def test_graceful_stop_loses_nothing(pool, name):
    all_up(pool)
    m = pool.milters[name]
    # Sessions of 30 messages (about 5 s): the stopping milter serves the
    # ones it has for seconds, while the others take every new one.
    load = Load(pool.smtp_port, per_session=30).start()
    try:
        load.wait_count(60)
        # Sessions open on it, with messages still to come: what the
        # drain must serve.
        busy(m, 2)
        before = load.count()
        t_term = time.time()
        m.proc.send_signal(signal.SIGTERM)
        # Until the milter has acted on the signal it still says ok.
        health = (200, 'ok\n')
        while m.alive() and health == (200, 'ok\n'):
            try:
                health = m.http('/health')
            except OSError:
                health = None  # gone already
            time.sleep(0.01)
        pool.haproxy.wait_status(name, 'DOWN')
        rc = m.proc.wait(40)
        exited = time.time()
        load.wait_count(before + 500)
    finally:
        load.stop()
    ok, tempfailed, other = outcome(load)
    during = [s for s in load.sent if s.at >= t_term]
    draining = [s for s in during if s.at <= exited]
    got = delivered(pool, [s.seq for s in ok])
    drained = sum(1 for s in ok if s.at >= t_term and got[s.seq] == [name])
    record(f'graceful stop of {name}: {len(during)} messages sent from '
          f'SIGTERM on ({len(draining)} while it drained), '
          f'{len(tempfailed)} tempfailed, {len(other)} failed otherwise; '
          f'{drained} went through {name} after SIGTERM; it exited '
          f'{exited - t_term:.2f} s after SIGTERM')
    assert health == (503, 'draining\n'), health
    assert rc == 0
    assert len(during) >= 500
    assert not tempfailed and not other, (tempfailed + other)[:5]
    assert set(got) >= {s.seq for s in ok}
    # Sessions open on it at SIGTERM were served to their end.
    assert drained > 0


def test_crash_tempfails_only_messages_in_flight(pool):
    all_up(pool)
    name = 'c'
    m = pool.milters[name]
    load = Load(pool.smtp_port).start()
    try:
        load.wait_count(60)
        before = load.count()
        t_kill = time.time()
        m.kill()
        pool.haproxy.wait_status(name, 'DOWN')
        load.wait_count(before + 300)
    finally:
        load.stop()
    ok, tempfailed, other = outcome(load)
    # HAProxy logs each connection as it ends: those to the killed milter
    # that were open at the kill (a few ms of slack for the clocks).
    time.sleep(0.5)
    in_flight = [c for c in pool.haproxy.connections()
                 if c[0] == name and c[1] <= t_kill + 0.005 and
                 c[2] >= t_kill - 0.005]
    got = delivered(pool, [s.seq for s in ok])
    record(f'crash of {name}: {len(load.sent)} messages sent, '
          f'{len(tempfailed)} tempfailed, {len(other)} failed otherwise; '
          f'{len(in_flight)} connections were open on {name} at the kill')
    assert not other, other[:5]
    assert len(tempfailed) <= len(in_flight)
    for s in tempfailed:
        assert s.code == 451 and s.at <= t_kill + 1, s
    assert set(got) >= {s.seq for s in ok}


def test_restarted_instance_takes_traffic(pool):
    m = pool.milters['c']
    if m.alive():
        m.kill()
        pool.haproxy.wait_status('c', 'DOWN')
    m.start()
    pool.haproxy.wait_status('c', 'UP')
    load = Load(pool.smtp_port).start()
    try:
        load.wait_count(120)
    finally:
        load.stop()
    ok, tempfailed, other = outcome(load)
    assert not tempfailed and not other, (tempfailed + other)[:5]
    got = delivered(pool, [s.seq for s in ok])
    through = sum(1 for s in ok if got[s.seq] == ['c'])
    record(f'restart: c back UP, {through} of {len(ok)} messages through it')
    assert through > 0
    assert messages_counted(pool, 'c', through) == through
