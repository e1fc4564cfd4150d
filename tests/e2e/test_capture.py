"""Capture and replay behind Postfix (docs/capture-format.md): a milter
started with PMCORE_CAPTURE writes Postfix's conversations, whatever its
language; `pmilter-test --replay` finds no difference against the same
milter and a difference (exit 1) once the milter was changed (here its
connect verdict, from continue to reject)."""
import os
import subprocess

import pytest

from harness import REPO, header_values, message, split_message

PMT = os.environ.get('PMT', os.path.join(REPO, 'build', 'bin', 'pmilter-test'))


def restart(m, capture=None):
    """Restart the milter, capturing into CAPTURE when given.  Stopping it
    ends its connections, which completes their capture files."""
    m.stop()
    if capture:
        os.environ['PMCORE_CAPTURE'] = capture
    try:
        m.start()
    finally:
        os.environ.pop('PMCORE_CAPTURE', None)


def replay(path, m):
    return subprocess.run([PMT, '--replay', path, '--socket', m.spec,
                           '--timeout', '20'],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.stops_milter
def test_capture_then_replay(env, m):
    if not os.access(PMT, os.X_OK):
        pytest.fail(f'{PMT} is missing (make pmilter-test builds it)')
    cap = os.path.join(env.root, 'capture', m.name)
    os.makedirs(cap)
    restart(m, cap)
    try:
        with env.client(m.name) as c:
            q1 = c.send('sender@sink.test', ['one@sink.test'],
                        message(mode='addhdr'))
            q2 = c.send('sender@sink.test', ['two@sink.test', 'x@sink.test'],
                        message(mode='chghdr'))
        for q in (q1, q2):
            env.postfix.wait_removed(q)
        headers, _ = split_message(env.sink.wait(q1).data)
        # Capturing changed nothing for the mail.
        assert header_values(headers, 'X-Added') == [
            f'added by {m.lang}'.encode()]
    finally:
        restart(m)
    files = sorted(f for f in os.listdir(cap) if f.endswith('.pmcap'))
    assert files, 'no capture written'
    texts = [open(os.path.join(cap, f), errors='replace').read()
             for f in files]
    text = ''.join(texts)
    # The harness's readiness probe connects too: a file without packets.
    talks = sum(' > C ' in t for t in texts)
    assert talks >= 1
    assert text.startswith('pmcore-capture 1\n')
    # Postfix's side and the milter's, the message's modifications included.
    assert ' > macros C ' in text and '{daemon_name}=' + m.name in text
    assert f' < h X-Added\\0added\\x20by\\x20{m.lang}\\0' in text or \
        f' < h X-Added\\0added by {m.lang}\\0' in text
    assert ' < m ' in text  # chgheader of the second message

    same = replay(cap, m)
    assert same.returncode == 0, same.stdout + same.stderr
    assert f'{len(files)} conversations, {len(files)} identical, 0 differ' \
        in same.stdout

    m.set_connect_verdict('reject')
    try:
        changed = replay(cap, m)
    finally:
        m.set_connect_verdict(None)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert 'CONNECT' in changed.stdout
    assert 'then: continue' in changed.stdout
    assert 'now:  reply 550' in changed.stdout
    assert (f'{len(files)} conversations, {len(files) - talks} identical, '
            f'{talks} differ') in changed.stdout


@pytest.mark.stops_milter
def test_bad_capture_value_stops_the_milter(env, m):
    """A PMCORE_CAPTURE the server cannot use stops the milter at start-up,
    with the core's message on its output, in either language.  Run
    directly, not through MilterProc.start: a milter may open its socket
    before it starts the server, and would look ready for a moment."""
    m.stop()
    bad = dict(os.environ, PMCORE_CAPTURE='/nonexistent/pmcore-capture')
    run = subprocess.run(m.command(), env=bad, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0, run.stdout + run.stderr
    assert ('PMCORE_CAPTURE=/nonexistent/pmcore-capture: cannot open the '
            'directory: No such file or directory') in run.stdout + run.stderr
