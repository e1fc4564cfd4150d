#!/usr/bin/env python3
"""Turn conversation vectors (tests/vectors/*.vec) into fuzzing seeds.

usage: vec2seed.py VECTOR_DIR OUT_DIR

Writes OUT_DIR/session/NAME-K: the 8-byte configuration header that
tests/fuzz/fuzz_session.c reads (derived from the vector's `milter` line),
then the MTA byte stream from its `send` and `raw` lines; and
OUT_DIR/client/NAME: a 4-byte header (Postfix defaults, replies handed
out in random pieces) and the filter's replies from its `expect reply`
lines, encoded as packets, for tests/fuzz/fuzz_client.c.  The token syntax is the
one tests/vectors/README.md defines.
"""
import os
import re
import struct
import sys

ESC = {'\\': b'\\', '"': b'"', '0': b'\0', 'r': b'\r', 'n': b'\n', 't': b'\t'}
HANDLER_BITS = {  # (byte, bit) in the fuzz header
    'connect': (0, 0), 'helo': (0, 1), 'envfrom': (0, 2), 'envrcpt': (0, 3),
    'data': (0, 4), 'header': (0, 5), 'eoh': (0, 6), 'body': (0, 7),
    'eom': (1, 0), 'abort': (1, 1), 'close': (1, 2), 'unknown': (1, 3),
    'negotiate': (1, 4),
}
NR_BITS = [0x80, 0x1000, 0x2000, 0x4000, 0x8000, 0x10000, 0x20000, 0x40000]
EXTRA_BITS = [0x80000, 0x400, 0x800, 0x100000]  # NR_BODY SKIP RCPT_REJ LEADSPC


def tokens(line):
    """Split a line into tokens: ('s', bytes) for strings, ('w', text)."""
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
        elif c == '"':
            i += 1
            buf = bytearray()
            while line[i] != '"':
                if line[i] == '\\':
                    e = line[i + 1]
                    if e == 'x':
                        buf.append(int(line[i + 2:i + 4], 16))
                        i += 4
                        continue
                    buf += ESC.get(e, e.encode())
                    i += 2
                else:
                    buf += line[i].encode()
                    i += 1
            i += 1
            m = re.match(r'\*(\d+)', line[i:])
            if m:
                buf = buf * int(m.group(1))
                i += m.end()
            out.append(('s', bytes(buf)))
        else:
            j = i
            while j < n and not line[j].isspace():
                j += 1
            out.append(('w', line[i:j]))
            i = j
    return out


def num(text):
    return int(text, 0)


def payload(toks):
    """Bytes of the payload tokens of a send or raw line."""
    buf = bytearray()
    for kind, v in toks:
        if kind == 's':
            buf += v
        elif v.startswith('u32:'):
            buf += struct.pack('>I', num(v[4:]) & 0xFFFFFFFF)
        elif v.startswith('u16:'):
            buf += struct.pack('>H', num(v[4:]) & 0xFFFF)
        else:  # a bare number: one byte
            buf.append(num(v) & 0xFF)
    return bytes(buf)


def packet(cmd, body):
    return struct.pack('>I', len(body) + 1) + cmd + body


def reply_packet(toks):
    """Encode an `expect reply CODE ARGS...` line as the filter's packet."""
    code = toks[0][1]
    code = code.encode()[:1] if isinstance(code, str) else code[:1]
    args = toks[1:]
    strs = [v if k == 's' else v.encode() for k, v in args]
    if code == b'O':
        body = b''.join(struct.pack('>I', num(v)) for _, v in args[:3])
        rest = args[3:]
        for k in range(0, len(rest) - 1, 2):
            body += struct.pack('>I', num(rest[k][1])) + rest[k + 1][1] + b'\0'
    elif code in (b'i', b'm'):
        body = struct.pack('>I', num(args[0][1])) + b''.join(
            s + b'\0' for s in strs[1:])
    elif code == b'b':
        body = strs[0] if strs else b''
    else:
        body = b''.join(s + b'\0' for s in strs)
    return packet(code, body)


def header(milter):
    """The fuzz_session configuration header for a `milter` line."""
    h = bytearray(8)
    handlers = 'all'
    for kv in milter:
        key, _, val = kv[1].partition('=')
        if key == 'handlers':
            handlers = val
        elif key == 'actions':
            h[2] = num(val) & 0xFF
        elif key == 'protocol':
            p = num(val)
            for i, bit in enumerate(NR_BITS):
                h[3] |= (1 << i) if p & bit else 0
            for i, bit in enumerate(EXTRA_BITS):
                h[4] |= (1 << i) if p & bit else 0
        elif key.startswith('symlist.'):
            h[4] |= 0x10
        elif key == 'version' and 2 <= num(val) <= 5:
            h[4] |= (num(val) - 1) << 5
        elif key == 'max_packet' and num(val):
            h[1] |= 0x40
        elif key == 'skip_any_event' and num(val):
            h[1] |= 0x20
    names = {'all': [n for n in HANDLER_BITS if n != 'negotiate'],
             'none': []}.get(handlers, handlers.split(','))
    for name in names:
        byte, bit = HANDLER_BITS[name]
        h[byte] |= 1 << bit
    return h


def convert(path):
    stream, replies, milter = bytearray(), bytearray(), []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            word, _, rest = line.partition(' ')
            toks = tokens(rest)
            if word == 'milter':
                milter = toks
            elif word == 'send':
                cmd = toks[0][1]
                cmd = cmd.encode() if isinstance(cmd, str) else cmd
                stream += packet(cmd[:1], payload(toks[1:]))
            elif word == 'raw':
                stream += payload(toks)
            elif word == 'expect' and toks and toks[0][1] == 'reply':
                replies += reply_packet(toks[1:])
    return header(milter), bytes(stream), bytes(replies)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    for sub in ('session', 'client'):
        os.makedirs(os.path.join(dst, sub), exist_ok=True)
    count = 0
    for name in sorted(os.listdir(src)):
        if not name.endswith('.vec'):
            continue
        base = name[:-4]
        try:
            hdr, stream, replies = convert(os.path.join(src, name))
        except (IndexError, ValueError, KeyError) as e:
            print(f'vec2seed: {name}: skipped ({e!r})', file=sys.stderr)
            continue
        # Two variants: plain handlers fed in random pieces, and handlers
        # that now and then take other verdicts and call actions.
        for k, (seed, density, split) in enumerate([(0, 0, 3), (7, 48, 1)]):
            hdr[5], hdr[6], hdr[7] = seed, density, split
            with open(os.path.join(dst, 'session', f'{base}-{k}'), 'wb') as f:
                f.write(bytes(hdr) + stream)
        if replies:
            with open(os.path.join(dst, 'client', base), 'wb') as f:
                f.write(b'\0\0\0\3' + replies)
        count += 1
    print(f'vec2seed: {count} vectors -> {dst}')


if __name__ == '__main__':
    main()
