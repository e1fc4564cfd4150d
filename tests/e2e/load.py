"""Mail at a steady rate: SMTP sessions in parallel, several messages each.

Every message carries `X-Pool-Seq: N` so the sink's copy can be matched to
what was sent.  Each reply to the end of a message (or the first refusal
before it) is kept.  A session that gets a temporary failure ends there,
as an MTA that defers the rest of its queue would: a message that was not
sent is not counted, and the next session goes to whichever milter the
balancer picks.
"""
import itertools
import smtplib
import threading
import time
from dataclasses import dataclass


# Sequence numbers are unique across every Load of the run: the sink keeps
# all the messages it got, whichever test sent them.
_SEQ = itertools.count(1)


@dataclass
class Sent:
    seq: int
    at: float        # time.time() when MAIL was sent
    code: int        # the reply that decided it: 250, 4xx, 5xx, or 0 (I/O)
    text: str


class Load:
    def __init__(self, port, sessions=8, per_session=5, rate=50.0):
        self.port = port
        self.sessions = sessions
        self.per_session = per_session
        self.interval = 1.0 / rate
        self.sent = []
        self._lock = threading.Lock()
        self._next = 0.0
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        self._next = time.monotonic()
        self._threads = [threading.Thread(target=self._session_loop,
                                          name=f'load-{i}', daemon=True)
                         for i in range(self.sessions)]
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(120)
        assert not any(t.is_alive() for t in self._threads), 'load stuck'

    def count(self):
        with self._lock:
            return len(self.sent)

    def wait_count(self, n, timeout=120):
        end = time.monotonic() + timeout
        while self.count() < n:
            assert time.monotonic() < end, f'only {self.count()} of {n} sent'
            time.sleep(0.02)

    def _slot(self):
        """Wait for this message's turn: one every interval, all sessions
        together.  Returns its sequence number, or None to stop."""
        with self._lock:
            if self._stop.is_set():
                return None
            at = max(self._next, time.monotonic())
            self._next = at + self.interval
            seq = next(_SEQ)
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return seq

    def _record(self, seq, at, code, text):
        with self._lock:
            self.sent.append(Sent(seq, at, code, text))

    def _session_loop(self):
        while not self._stop.is_set():
            self._session()

    def _session(self):
        try:
            smtp = smtplib.SMTP('127.0.0.1', self.port, timeout=60)
            smtp.ehlo('load.pool.test')
        except (OSError, smtplib.SMTPException):
            time.sleep(0.1)
            return
        try:
            for _ in range(self.per_session):
                seq = self._slot()
                if seq is None:
                    break
                if not self._message(smtp, seq):
                    break
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _message(self, smtp, seq):
        """One transaction; False if the session should end."""
        at = time.time()
        msg = (f'From: load@sink.test\r\nTo: rcpt@sink.test\r\n'
               f'Subject: pool {seq}\r\nX-Pool-Seq: {seq}\r\n\r\n'
               f'message {seq}\r\n').encode()
        try:
            for code, text in (smtp.mail('load@sink.test'),
                               smtp.rcpt('rcpt@sink.test')):
                if code >= 400:
                    self._record(seq, at, code, text.decode(errors='replace'))
                    return False
            code, text = smtp.data(msg)
        except smtplib.SMTPResponseException as e:  # refused at DATA
            self._record(seq, at, e.smtp_code,
                         e.smtp_error.decode(errors='replace'))
            return False
        except (OSError, smtplib.SMTPException) as e:
            self._record(seq, at, 0, repr(e))
            return False
        self._record(seq, at, code, text.decode(errors='replace'))
        return code < 400
