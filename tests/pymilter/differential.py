r"""Differential test: the same Python milter (diff_milter.py) under pymilter
1.0.5 on libmilter and under our package, driven by identical conversations
(conversations/*.conv), reply bytes compared.

Every difference must be one of the documented differences: a conversation
that may differ names them (`differs N ...`, the numbers of the list
"Differences from pymilter" in python/README.md).  The test fails when
  * replies differ and the conversation names no difference,
  * a named number is not in that list, or
  * a conversation names a difference but the replies are identical (the
    documentation or the conversation is stale).

    python differential.py --ours PY --ref PY [NAME...]

Conversation syntax (one packet per line; tokens as in tests/vectors):
    milter VARIANT          rich (default), noreply or symlist
    differs N [N...]        documented differences allowed here
    send CMD TOKENS...      one MTA packet; the reply is read as an MTA
                            would: none for D A Q K and for steps the milter
                            negotiated "no reply" for; packets up to the
                            final verdict for E; commands of steps the
                            milter negotiated away (P_NO*) are not sent
    quiet CMD TOKENS...     a packet after which no reply is due (e.g. after
                            a message-ending verdict); whatever arrives in
                            0.3 s is recorded
Tokens: "..." (escapes \\ \" \0 \r \n \t \xHH, "..."*N repeats), u32:N,
u16:N.
"""
import argparse
import hashlib
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(ROOT, 'python', 'README.md')

# Step letter -> (P_NO* bit, P_NR* bit)
STEPS = {'C': (0x1, 0x1000), 'H': (0x2, 0x2000), 'M': (0x4, 0x4000),
         'R': (0x8, 0x8000), 'B': (0x10, 0x80000), 'L': (0x20, 0x80),
         'N': (0x40, 0x40000), 'U': (0x100, 0x20000), 'T': (0x200, 0x10000)}
FINAL = set(b'cartdysO')
REPLY_WAIT = 3.0
QUIET_WAIT = 0.3

_ESC = {'\\': b'\\', '"': b'"', '0': b'\0', 'r': b'\r', 'n': b'\n',
        't': b'\t'}


def tokens(text, where):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == '"':
            s = bytearray()
            i += 1
            while text[i] != '"':
                if text[i] == '\\':
                    e = text[i + 1]
                    if e == 'x':
                        s.append(int(text[i + 2:i + 4], 16))
                        i += 4
                        continue
                    if e not in _ESC:
                        raise ValueError('%s: bad escape \\%s' % (where, e))
                    s += _ESC[e]
                    i += 2
                else:
                    s += text[i].encode('utf-8')
                    i += 1
            i += 1
            m = re.match(r'\*(\d+)', text[i:])
            if m:
                s = s * int(m.group(1))
                i += m.end()
            out += s
        else:
            m = re.match(r'(u32|u16):(0x[0-9a-fA-F]+|\d+)', text[i:])
            if not m:
                raise ValueError('%s: bad token at %r' % (where, text[i:]))
            fmt = '!L' if m.group(1) == 'u32' else '!H'
            out += struct.pack(fmt, int(m.group(2), 0))
            i += m.end()
    return bytes(out)


class Conversation(object):

    def __init__(self, path):
        self.name = os.path.basename(path)[:-5]
        self.variant = 'rich'
        self.differs = []
        self.packets = []          # (cmd, payload, quiet, lineno)
        with open(path, encoding='utf-8') as fp:
            for n, line in enumerate(fp, 1):
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                word, _, rest = line.partition(' ')
                where = '%s:%d' % (path, n)
                if word == 'milter':
                    self.variant = rest.strip()
                elif word == 'differs':
                    self.differs = [int(x) for x in rest.split()]
                elif word in ('send', 'quiet'):
                    cmd, _, args = rest.strip().partition(' ')
                    if len(cmd) != 1:
                        raise ValueError('%s: command is one letter' % where)
                    self.packets.append((cmd, tokens(args, where),
                                         word == 'quiet', n))
                else:
                    raise ValueError('%s: unknown keyword %s' % (where, word))


def documented_differences():
    with open(DOC, encoding='utf-8') as fp:
        text = fp.read()
    m = re.search(r'^## Differences from pymilter\n(.*?)^## ', text,
                  re.M | re.S)
    if not m:
        raise SystemExit('differential: no "Differences from pymilter" '
                         'section in %s' % DOC)
    return {int(n) for n in re.findall(r'^(\d+)\. ', m.group(1), re.M)}


class Reader(object):
    """Milter packets from the socket, each (cmd letter, payload)."""

    def __init__(self, sock):
        self.sock, self.buf, self.eof = sock, b'', False

    def _fill(self, deadline):
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return False
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b''
            if not data:
                self.eof = True
                return False
            self.buf += data
            if self.complete():
                return True
        return False

    def complete(self):
        return (len(self.buf) >= 4 and
                len(self.buf) >= 4 + struct.unpack('!L', self.buf[:4])[0])

    def packet(self, wait):
        if not self.complete():
            self._fill(time.monotonic() + wait)
        if not self.complete():
            return None
        n = struct.unpack('!L', self.buf[:4])[0]
        pkt, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return pkt

    def drain(self, wait):
        """Every packet arriving within `wait` seconds."""
        out = []
        deadline = time.monotonic() + wait
        while True:
            p = self.packet(max(0.0, deadline - time.monotonic()))
            if p is None:
                return out
            out.append(p)


def show(pkt):
    if not pkt:
        return '(empty packet)'
    data = pkt[1:]
    if len(data) > 120:
        # Long bodies: enough to see where they differ, plus a digest.
        return '%s [%d bytes, sha1 %s] %r...' % (
            chr(pkt[0]), len(data), hashlib.sha1(data).hexdigest()[:12],
            data[:40])
    return '%s %r' % (chr(pkt[0]), data)


def converse(sockpath, conv):
    """The reply log of one conversation: one line per packet sent."""
    log = []
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sockpath)
    rd = Reader(s)
    proto = 0
    try:
        for cmd, payload, quiet, lineno in conv.packets:
            step = STEPS.get(cmd)
            if step and proto & step[0]:
                log.append('%d %s: not sent (P_NO*)' % (lineno, cmd))
                continue
            try:
                s.sendall(struct.pack('!L', len(payload) + 1) +
                          cmd.encode() + payload)
            except (BrokenPipeError, ConnectionResetError):
                log.append('%d %s: connection closed' % (lineno, cmd))
                break
            if quiet or cmd in 'DAQK':
                got = rd.drain(QUIET_WAIT if quiet else 0)
                log.append('%d %s: %s' % (lineno, cmd,
                                          ' | '.join(map(show, got))
                                          or 'no reply'))
            elif step and proto & step[1]:
                log.append('%d %s: no reply due' % (lineno, cmd))
            else:
                got = []
                while True:
                    p = rd.packet(REPLY_WAIT)
                    if p is None:
                        got.append('EOF' if rd.eof else 'TIMEOUT')
                        break
                    got.append(show(p))
                    if p and p[0] in FINAL:
                        break
                log.append('%d %s: %s' % (lineno, cmd, ' | '.join(got)))
                if cmd == 'O' and p and p[0] == ord('O') and len(p) >= 13:
                    proto = struct.unpack('!L', p[9:13])[0]
            if rd.eof:
                log.append('connection closed by the milter')
                break
        s.shutdown(socket.SHUT_WR)
        tail = rd.drain(REPLY_WAIT)
        if tail:
            log.append('after the last packet: ' + ' | '.join(map(show, tail)))
    finally:
        s.close()
    return log


class Server(object):

    def __init__(self, python, variant, tmp, label):
        self.path = os.path.join(tmp, '%s-%s.sock' % (label, variant))
        self.errpath = os.path.join(tmp, '%s-%s.log' % (label, variant))
        self.err = open(self.errpath, 'w')
        self.proc = subprocess.Popen(
            [python, os.path.join(HERE, 'diff_milter.py'),
             'unix:' + self.path, variant],
            cwd=tmp, stdout=self.err, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError('%s milter exited: %s' % (label,
                                                             self.stderr()))
            try:
                c = socket.socket(socket.AF_UNIX)
                c.connect(self.path)
                c.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError('%s milter did not listen' % label)
                time.sleep(0.05)

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.errpath, errors='replace') as fp:
            return fp.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.err.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ours', required=True)
    ap.add_argument('--ref', required=True)
    ap.add_argument('-v', '--verbose', action='store_true')
    ap.add_argument('names', nargs='*')
    args = ap.parse_args()
    args.ours, args.ref = map(os.path.abspath, (args.ours, args.ref))
    known = documented_differences()
    cdir = os.path.join(HERE, 'conversations')
    convs = [Conversation(os.path.join(cdir, f))
             for f in sorted(os.listdir(cdir)) if f.endswith('.conv')]
    if args.names:
        convs = [c for c in convs if c.name in args.names]
    passed = failed = 0
    servers = {}
    tmp = tempfile.mkdtemp(prefix='pmc-diff-')
    try:
        for conv in convs:
            logs = {}
            for label, py in (('ref', args.ref), ('ours', args.ours)):
                key = (label, conv.variant)
                if key not in servers:
                    servers[key] = Server(py, conv.variant, tmp, label)
                logs[label] = converse(servers[key].path, conv)
            problems = []
            unknown = [d for d in conv.differs if d not in known]
            if unknown:
                problems.append('names differences not documented: %s'
                                % unknown)
            same = logs['ref'] == logs['ours']
            if not same and not conv.differs:
                problems.append('replies differ')
            if same and conv.differs:
                problems.append('replies identical, but the conversation '
                                'names documented differences %s'
                                % conv.differs)
            note = '' if same else ' (differs: %s)' % ', '.join(
                '#%d' % d for d in conv.differs)
            if problems:
                failed += 1
                print('FAIL %s: %s' % (conv.name, '; '.join(problems)))
            else:
                passed += 1
                print('ok   %s%s' % (conv.name, note))
            if problems or args.verbose:
                for label in ('ref', 'ours'):
                    print('  --- %s (%s)' % (label, conv.variant))
                    for a in logs[label]:
                        mark = ' ' if a in logs['ours' if label == 'ref'
                                                 else 'ref'] else '*'
                        print('  %s %s' % (mark, a))
    finally:
        for key, srv in servers.items():
            srv.stop()
            if failed and args.verbose:
                print('  --- milter output %s/%s:' % key)
                print(srv.stderr())
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed or not convs else 0


if __name__ == '__main__':
    sys.exit(main())
