"""The engine's log lines go to logging's "milter" logger: levels mapped
from syslog's, the connection id and the queue id in the text and as the
record's conn_id / queue_id, nothing written to stderr by the engine
itself, and as many lines as the logger's level lets through."""
import socket
import struct
import subprocess
import sys
import textwrap
import time

from serving import env_with, free_port, pkt

MILTER = textwrap.dedent('''
    import logging, sys
    import Milter
    LEVEL, LOGFILE, PORT = sys.argv[1], sys.argv[2], sys.argv[3]
    if LEVEL != 'none':
        logging.basicConfig(
            filename=LOGFILE, level=getattr(logging, LEVEL),
            format='%(name)s %(levelname)s [%(conn_id)s|%(queue_id)s] '
                   '%(message)s')
    class M(Milter.Base):
        pass
    Milter.factory = M
    print('ready', flush=True)
    Milter.runmilter('logtest', 'inet:%s@127.0.0.1' % PORT, timeout=30)
''')


# Negotiation, connect, MAIL with {i} sent before it, then half a packet
# and the end: the engine logs a truncated packet with the queue id.
CUT = b''.join([
    pkt(b'O', struct.pack('>III', 6, 0x1ff, 0x1fffff)),
    pkt(b'C', b'mta\0' + b'4' + struct.pack('>H', 25) + b'192.0.2.1\0'),
    pkt(b'D', b'Mi\0QID42\0'),
    pkt(b'M', b'<a@x>\0'),
]) + pkt(b'R', b'<b@x>\0')[:7]


def run(tmp_path, level):
    port = free_port()
    script = tmp_path / 'm.py'
    script.write_text(MILTER)
    logfile = tmp_path / 'milter.log'
    p = subprocess.Popen([sys.executable, str(script), level, str(logfile),
                          str(port)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env_with(), text=True)
    try:
        assert p.stdout.readline().strip() == 'ready'
        deadline = time.time() + 5
        while True:
            try:
                s = socket.create_connection(('127.0.0.1', port), timeout=2)
                break
            except OSError:
                assert time.time() < deadline
                time.sleep(0.02)
        s.sendall(CUT)
        s.recv(4096)  # the negotiation reply
        s.close()
        time.sleep(0.5)  # past a 200 ms tick: queued lines are written
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    text = logfile.read_text() if logfile.exists() else ''
    return text, err


def test_warning_goes_to_the_milter_logger(tmp_path):
    text, err = run(tmp_path, 'WARNING')
    lines = [ln for ln in text.splitlines() if 'TRUNCATED' in ln]
    assert len(lines) == 1, text
    line = lines[0]
    assert line.startswith('milter WARNING [')
    conn_id = line.split('[', 1)[1].split('|', 1)[0]
    assert int(conn_id) > 0
    assert '|QID42] ' in line
    assert 'conn %s (queue QID42): protocol error TRUNCATED' % conn_id \
        in line
    assert 'TRUNCATED' not in err  # logging has a handler: not stderr


def test_level_filters_at_the_source(tmp_path):
    text, err = run(tmp_path, 'ERROR')
    assert 'TRUNCATED' not in text
    assert 'TRUNCATED' not in err


def test_no_logging_config_uses_pythons_last_resort(tmp_path):
    # With no handler configured, logging's last resort prints WARNING and
    # above to stderr: the line is not lost, and it is logging's doing.
    text, err = run(tmp_path, 'none')
    assert text == ''
    assert 'conn ' in err and '(queue QID42): protocol error TRUNCATED' \
        in err
