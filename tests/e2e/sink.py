"""The SMTP server Postfix relays to: it keeps every transaction in memory.

Postfix's smtp client is the only peer, so the server speaks just enough
ESMTP for it (8BITMIME so 8-bit mail is passed unchanged, DSN so recipient
parameters are passed on, PIPELINING).  The stored data is the message as
sent, dot-unstuffed, with its CRLF line ends.
"""
import re
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field

QUEUE_ID = re.compile(rb'^Received: .*?\bwith E?SMTP id ([0-9A-Za-z]+)',
                      re.M | re.S)


@dataclass
class Transaction:
    mail_from: str
    mail_args: list
    rcpts: list = field(default_factory=list)  # (address, [args])
    data: bytes = b''

    @property
    def queue_id(self):
        """Postfix's queue id, from the Received: header it prepended."""
        m = QUEUE_ID.search(self.data.split(b'\r\n\r\n', 1)[0])
        return m.group(1).decode() if m else None


def _path_and_args(text):
    """'<a@b> NOTIFY=NEVER' -> ('a@b', ['NOTIFY=NEVER'])."""
    m = re.match(r'\s*<([^>]*)>\s*(.*)$', text)
    if not m:
        return text.strip(), []
    return m.group(1), m.group(2).split()


class _Handler(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(line.encode() + b'\r\n')

    def handle(self):
        sink = self.server.sink
        self.reply('220 sink.test ESMTP')
        tx = None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.rstrip(b'\r\n').decode('utf-8', 'surrogateescape')
            verb = cmd[:4].upper()
            if verb == 'EHLO':
                for ext in ('250-sink.test', '250-PIPELINING', '250-8BITMIME',
                            '250-DSN', '250 SIZE 52428800'):
                    self.reply(ext)
            elif verb == 'HELO':
                self.reply('250 sink.test')
            elif verb == 'MAIL':
                tx = Transaction(*_path_and_args(cmd.split(':', 1)[1]))
                self.reply('250 2.1.0 Ok')
            elif verb == 'RCPT' and tx:
                tx.rcpts.append(_path_and_args(cmd.split(':', 1)[1]))
                self.reply('250 2.1.5 Ok')
            elif verb == 'DATA' and tx and tx.rcpts:
                self.reply('354 End data with <CR><LF>.<CR><LF>')
                tx.data = self.read_data()
                sink.add(tx)
                tx = None
                self.reply('250 2.0.0 Ok: stored')
            elif verb == 'RSET':
                tx = None
                self.reply('250 2.0.0 Ok')
            elif verb == 'NOOP':
                self.reply('250 2.0.0 Ok')
            elif verb == 'QUIT':
                self.reply('221 2.0.0 Bye')
                return
            else:
                self.reply('502 5.5.2 Error: command not recognized')

    def read_data(self):
        lines = []
        while True:
            line = self.rfile.readline()
            if not line or line == b'.\r\n':
                return b''.join(lines)
            lines.append(line[1:] if line.startswith(b'.') else line)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A peer that hangs up (Postfix at its stop) is not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Sink:
    """A threaded SMTP sink on 127.0.0.1, on a port the kernel chose."""

    def __init__(self):
        self.transactions = []
        self._cond = threading.Condition()
        self._server = _Server(('127.0.0.1', 0), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name='smtp-sink', daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def add(self, tx):
        with self._cond:
            self.transactions.append(tx)
            self._cond.notify_all()

    def for_queue_id(self, qid):
        with self._cond:
            return [t for t in self.transactions if t.queue_id == qid]

    def wait(self, qid, timeout=20):
        """The first transaction carrying queue id QID (waits for it)."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [t for t in self.transactions if t.queue_id == qid]
                if found:
                    return found[0]
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f'sink: nothing with queue id {qid}')
                self._cond.wait(left)
