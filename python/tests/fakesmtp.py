"""An SMTP server on 127.0.0.1 (a free port) with scripted replies, for
tests of Milter.dsn.  It records the commands it gets and the messages
sent with DATA.

replies maps a command prefix ('MAIL FROM:<>', 'RCPT TO:<bad@x>') to the
reply line to give instead of the default 250; name is the host name in
the greeting and the HELO reply.
"""
import socket
import threading


class FakeSMTP(object):

    def __init__(self, name='mx.example.com', replies=None):
        self.name = name
        self.replies = dict(replies or {})
        self.commands = []
        self.messages = []
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def close(self):
        """Stop accepting (shutdown wakes the blocked accept) and wait for
        every thread, so no test leaves one behind."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for t in list(self.threads):
            t.join(5)
        self.sock.close()

    def _accept(self):
        while True:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._session, args=(conn,),
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def _reply(self, line):
        for prefix, reply in self.replies.items():
            if line.upper().startswith(prefix.upper()):
                return reply
        return '250 ok'

    def _session(self, conn):
        f = conn.makefile('rb')
        conn.sendall(('220 %s ESMTP\r\n' % self.name).encode())
        try:
            for raw in f:
                line = raw.decode().rstrip('\r\n')
                verb, sep, rest = line.partition(' ')
                verb = verb.upper()
                # Recorded with the verb and its FROM:/TO: keyword in
                # capitals, as SMTP compares them: smtplib sends 'mail
                # FROM:' before 3.13 and 'mail from:' since, docmd what it
                # is given.
                for kw in ('FROM:', 'TO:'):
                    if verb in ('MAIL', 'RCPT') and \
                            rest[:len(kw)].upper() == kw:
                        rest = kw + rest[len(kw):]
                self.commands.append(verb + sep + rest)
                if verb in ('HELO', 'EHLO'):
                    out = self._reply(line)
                    if out == '250 ok':
                        out = '250 %s hello' % self.name
                elif verb == 'DATA':
                    conn.sendall(b'354 go on\r\n')
                    body = []
                    for data in f:
                        if data in (b'.\r\n', b'.\n'):
                            break
                        body.append(data)
                    self.messages.append(b''.join(body))
                    out = self._reply('DATA')
                elif verb == 'QUIT':
                    conn.sendall(b'221 bye\r\n')
                    break
                else:
                    out = self._reply(line)
                conn.sendall((out + '\r\n').encode())
        finally:
            f.close()
            conn.close()
