"""async def callbacks: under milter.main() (a thread pool of 2, several
connections awaiting at once, actions and progress from coroutines, the
exception policy), low-level coroutine callbacks, the prefork model, and
the in-process TestCtx/_TestConn path."""
import asyncio
import io
import os
import signal
import threading
import time

import milter
import serving
import Milter
import pytest
from Milter.testctx import TestCtx

STAGE_EOM = 5


def Server(mode, tmp_path):
    return serving.Server('aio_helper.py', mode, str(tmp_path / 'a.sock'))


@pytest.fixture
def server(tmp_path):
    made = []

    def make(mode):
        s = Server(mode, tmp_path)
        made.append(s)
        return s
    yield make
    for s in made:
        s.kill()


def message(c, sender=b'<a@x>', rcpt=b'<b@x>', qid=None):
    if qid is not None:
        c.set_macros(STAGE_EOM, [b'i', qid])
    r = c.mail([sender])
    if r[0] not in ('c', ''):
        return r
    r = c.rcpt([rcpt])
    if r[0] not in ('c', ''):
        return r
    c.header(b'Subject', b's')
    c.header(b'From', b'a@x')
    c.eoh()
    c.body(b'hi\r\n')
    return c.eom()


@pytest.mark.parametrize('mode', ['async', 'inline'])
def test_async_server_concurrent(server, mode):
    s = server(mode)
    results = {}

    def one(n):
        c = s.client()
        results[n] = message(c, qid=b'Q%d' % n)
        c.quit()
    t0 = time.monotonic()
    th = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    took = time.monotonic() - t0
    for n in range(6):
        code, _text, mods, ev = results[n]
        assert code == 'c' and ev == 'eom', results[n]
        assert mods == [('p', 0, b'', None),
                        ('h', 0, b'X-Async', b'Q%d' % n),
                        ('h', 0, b'X-Seq',
                         b'envfrom,envrcpt,header,header,eom')], mods
    # Each conversation sleeps 0.6 s in coroutines: 3.6 s one after the
    # other, 1.8 s for a pool of 2 threads blocking; awaited, they overlap.
    assert took < 1.5, took
    rc, out, err = s.stop()
    assert rc == 0 and 'main returned' in out, (out, err)


@pytest.mark.parametrize('mode', ['async', 'inline'])
def test_async_server_reply_and_exception_policy(server, mode):
    s = server(mode)
    c = s.client()
    r = message(c, rcpt=b'<bad@x>')
    assert r[0] == 'y' and r[1] == b'550 5.1.1 no such user (async)', r
    c.abort()
    r = c.mail([b'<boom@x>'])
    assert r[0] == 'y' and r[1].startswith(b'451 4.3.0 pymilter: '), r
    c.abort()
    assert message(c)[0] == 'c'             # the connection goes on
    c.quit()
    rc, out, err = s.stop()
    assert rc == 0, err
    assert 'ValueError: boom in a coroutine' in err


def test_lowlevel_coroutine_callbacks(server):
    s = server('lowlevel')
    c = s.client()
    r = message(c)
    assert r[0] == 'c' and ('h', 0, b'X-Lowlevel', b'yes') in r[2], r
    c.quit()
    rc, out, err = s.stop()
    assert rc == 0 and 'main returned' in out, err


def test_sigterm_with_a_pending_coroutine_drains(server):
    s = server('async')
    c = s.client()
    c.mail([b'<a@x>'])
    c.rcpt([b'<b@x>'])
    got = {}

    def eom():
        got['r'] = c.eom()
    t = threading.Thread(target=eom)
    t.start()
    # eom's coroutine is asleep: a sleep here could stop the server before
    # the EOM was even read, and nothing would be pending.
    assert s.p.stdout.readline().strip() == 'eom awaits'
    s.p.send_signal(signal.SIGTERM)
    t.join(5)
    assert got['r'][0] == 'c', got           # answered during the drain
    c.quit()                                 # the drain waits for the MTA
    out, err = s.p.communicate(timeout=10)
    assert s.p.returncode == 0 and 'main returned' in out, err


def test_prefork_workers(server):
    s = server('prefork')
    pids = {}

    def slow():
        c = s.client()
        pids['slow'] = message(c, sender=b'<slow@x>')[2]
        c.quit()
    t = threading.Thread(target=slow)
    t.start()
    # Its worker is held inside envfrom until the other one has served a
    # message: a sleep here let a slow client be second, to either worker.
    assert s.p.stdout.readline().strip() == 'slow in envfrom'
    c = s.client()
    pids['fast'] = message(c)[2]
    c.quit()
    t.join()
    got = {}
    for k, mods in pids.items():
        assert len(mods) == 1 and mods[0][2] == b'X-Pid', mods
        got[k] = int(mods[0][3])
    assert got['slow'] != got['fast'], got
    assert s.p.pid not in got.values()
    # Workers ignore SIGTERM (systemd signals the whole group): the
    # supervisor decides.  Read from their SigIgn masks: a worker slow to
    # act on the signal would still be there after any sleep.
    for pid in got.values():
        assert serving.ignores(pid, signal.SIGTERM), pid
        os.kill(pid, signal.SIGTERM)
    for pid in got.values():
        os.kill(pid, 0)                        # still there
    c = s.client()
    assert message(c)[0] == 'c'
    c.quit()
    rc, out, err = s.stop()
    assert rc == 0 and 'main returned' in out, (out, err)
    assert 'children 0' in out, out            # every worker reaped
    for pid in got.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- in process ----------------------------------------------------------

class AsyncMilter(Milter.Base):
    seen = []

    async def envfrom(self, f, *a):
        await asyncio.sleep(0)
        if f == '<boom@x>':
            raise KeyError('boom')
        return Milter.CONTINUE

    async def envrcpt(self, to, *a):
        await asyncio.sleep(0)
        if to == '<bad@x>':
            self.setreply('550', '5.7.1', 'not you')
            return Milter.REJECT
        return Milter.CONTINUE

    @Milter.noreply
    async def header(self, name, value):
        await asyncio.sleep(0)
        AsyncMilter.seen.append(name)
        return Milter.CONTINUE

    async def eom(self):
        await asyncio.sleep(0.01)
        self.addheader('X-Async', self.getsymval('i'))
        return Milter.CONTINUE

    async def close(self):
        AsyncMilter.seen.append('close')
        return Milter.CONTINUE


MSG = b'From: a@x\nSubject: test\n\nbody\n'


def test_testctx_async_milter():
    Milter.factory = AsyncMilter
    AsyncMilter.seen = []
    ctx = TestCtx()
    ctx._setsymval('i', 'QID7')
    assert ctx._connect() == Milter.CONTINUE
    assert ctx._feedFile(io.BytesIO(MSG)) == Milter.CONTINUE
    assert ctx._msg['X-Async'] == 'QID7'
    # @noreply headers: each coroutine ran right after its header was sent
    assert AsyncMilter.seen == ['From', 'Subject']
    assert ctx._envfrom('<a@x>') == Milter.CONTINUE
    assert ctx._envrcpt('<bad@x>') == Milter.REJECT
    assert ctx._reply == ('550', '5.7.1', 'not you')
    ctx._close()
    assert AsyncMilter.seen[-1] == 'close'


def test_testctx_async_exception_policy(capsys):
    Milter.factory = AsyncMilter
    ctx = TestCtx()
    ctx._connect()
    assert ctx._envfrom('<boom@x>') == Milter.TEMPFAIL
    assert ctx._reply[:2] == ('451', '4.3.0')
    assert "KeyError: 'boom'" in capsys.readouterr().err
    milter.set_exception_policy(milter.REJECT)
    assert ctx._envfrom('<boom@x>') == Milter.REJECT
    assert ctx._reply[:2] == ('554', '5.3.0')
    ctx._close()


def test_testconn_context_while_pending_and_after():
    kept = []

    async def eom(ctx):
        kept.append(ctx)
        await asyncio.sleep(0)
        ctx.addheader('X-A', 'b')
        ctx.progress()
        return milter.ACCEPT
    c = milter._TestConn({'eom': eom})
    c.negotiate()
    c.connect('h', '4', 25, '1.2.3.4')
    c.mail([b'<a@x>'])
    c.rcpt([b'<b@x>'])
    code, _t, mods, _e = c.eom()
    assert code == 'a' and [m[0] for m in mods] == ['h', 'p'], mods
    with pytest.raises(milter.error, match='outside of its callbacks') as e:
        kept[0].addheader('X', 'y')
    assert e.value.status == 'WRONG_STAGE'
    c.quit()


def test_negotiate_cannot_be_a_coroutine(capsys):
    async def neg(ctx, opts):
        return milter.CONTINUE
    c = milter._TestConn({'negotiate': neg})
    with pytest.raises(milter.error):
        c.negotiate()
    assert 'cannot be a coroutine' in capsys.readouterr().err


def test_raw_pending_then_eof_closes_the_coroutine(recwarn):
    ran = []

    async def eom(ctx):
        ran.append(1)
        return milter.CONTINUE
    c = milter._TestConn({'eom': eom}, client=False)
    import struct

    def pkt(cmd, payload=b''):
        return struct.pack('!L', len(payload) + 1) + cmd + payload
    c.feed(pkt(b'O', struct.pack('!LLL', 6, 0x1ff, 0x1fffff)))
    c.feed(pkt(b'M', b'<a@x>\0') + pkt(b'R', b'<b@x>\0') + pkt(b'E'))
    assert c.pending() and ran == []
    assert c.eof() == 'OK' and c.closed()
    assert ran == []                          # never ran, and no warning
    assert not [w for w in recwarn if 'never awaited' in str(w.message)]
    assert c.run_pending() == 'PENDING'       # nothing left to run


def test_mta_gone_while_a_coroutine_is_pending(server):
    s = server('async')
    c = s.client()
    c.mail([b'<a@x>'])
    c.rcpt([b'<b@x>'])
    pkt = b'\0\0\0\x01E'                     # EOM, answer not read
    c.sock.sendall(pkt)
    assert s.p.stdout.readline().strip() == 'eom awaits'
    c.sock.close()                           # the MTA gives up
    time.sleep(0.5)                          # the answer would come now
    c2 = s.client()
    assert message(c2)[0] == 'c'             # the server is unharmed
    c2.quit()
    rc, out, err = s.stop()
    assert rc == 0 and 'main returned' in out, err
    assert 'Traceback' not in err, err       # cancelled, not reported
