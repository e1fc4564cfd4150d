"""Milter.utils (network-free helpers) and the mime module."""
import io
import zipfile

import mime
import pytest
from Milter import utils


def test_parse_addr():
    assert utils.parse_addr('<user@example.com>') == ['user', 'example.com']
    assert utils.parse_addr('user@example.com') == ['user', 'example.com']
    assert utils.parse_addr('postmaster') == ['postmaster']
    assert utils.parse_addr('<>') == ['']
    assert utils.parse_addr('"a@b"@example.com') == ['a@b', 'example.com']


def test_parse_header():
    assert utils.parse_header('=?utf-8?q?caf=C3=A9?=') == 'caf\u00e9'
    assert utils.parse_header('plain text') == 'plain text'
    assert utils.parse_header('=?bogus-cs?q?x=E9?=') == 'x\u00e9'
    assert utils.parse_header(b'bytes \xe9') == 'bytes \udce9'


def test_iniplist():
    nets = ['192.168.0.0/16', '10.1', '127.0.0.1', '2001:db8::/32',
            'mail.example.com']
    assert utils.iniplist('192.168.3.4', nets)
    assert utils.iniplist('10.1.200.3', nets)
    assert utils.iniplist('127.0.0.1', nets)
    assert utils.iniplist('::ffff:192.168.1.1', nets)
    assert utils.iniplist('2001:db8::25', nets)
    assert not utils.iniplist('10.2.0.1', nets)
    assert not utils.iniplist('2001:db9::1', nets)
    with pytest.raises(ValueError):
        utils.iniplist('not-an-ip', nets)


def test_addr2bin_bin2long6():
    assert utils.addr2bin('1.2.3.4') == 0x01020304
    assert utils.bin2long6(b'\0' * 15 + b'\1') == 1


def test_parseaddr():
    assert utils.parseaddr('Alice <a@b>') == ('Alice', 'a@b')


MSG = b"""From: a@b
Subject: s
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: text/plain

hello
--XX
Content-Type: application/octet-stream; name="evil.exe"
Content-Disposition: attachment; filename="evil.exe"
Content-Transfer-Encoding: base64

TVqQAAMAAAAEAAAA
--XX--
"""


def test_message_from_file_and_names():
    msg = mime.message_from_file(io.BytesIO(MSG))
    assert isinstance(msg, mime.MimeMessage)
    assert msg.ismultipart() and not msg.ismodified()
    part = msg.get_payload(1)
    assert ('name', 'evil.exe') in part.getnames()
    assert ('filename', 'evil.exe') in part.getnames()
    assert msg.getnames() == []          # per part, not recursive
    assert msg.gettype() == 'multipart/mixed'
    assert msg.getparam('boundary') == 'XX'
    text = mime.message_from_file(io.StringIO(MSG.decode()))
    assert text['Subject'] == 's'


def test_defang_and_check_attachments():
    msg = mime.message_from_file(io.BytesIO(MSG))
    assert mime.check_ext('EVIL.EXE') and not mime.check_ext('a.txt')
    assert mime.check_attachments(msg, lambda p: 0) == 0
    seen = []
    assert mime.check_attachments(
        msg, lambda p: seen.append(p.get_content_type()) or
        (1 if p.get_filename() else 0)) == 1
    assert mime.defang(msg, 'saved') is True
    assert msg.ismodified()
    out = msg.as_bytes()
    assert b'evil.exe' in out and b'TVqQ' not in out
    assert b'This message appeared to contain a virus' in out


def test_zipnames_and_unquote():
    buf = io.BytesIO()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, 'w') as z:
        z.writestr('deep.scr', b'x')
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('a.txt', b'x')
        z.writestr('in.zip', inner.getvalue())
    assert mime.zipnames(buf.getvalue()) == ['a.txt', 'in.zip', 'deep.scr']
    assert mime.zipnames(b'not a zip') is None
    assert mime.zipnames(b'') == []
    assert mime.unquote('"quoted"') == 'quoted'
    assert mime.unquote('plain') == 'plain'
    assert '.exe' in mime.bad_extensions


def test_parseparam_and_tolerant_boundary():
    assert mime._parseparam('; boundary="a;b"; name=x') == \
        ['', 'boundary="a;b"', 'name=x']
    raw = (b'Content-Type: multipart/mixed;\n boundary="bound"\n'
           b'\tX-Junk: folded in\n\n--bound\nContent-Type: text/plain\n\n'
           b'hi\n--bound\nContent-Type: application/octet-stream;\n'
           b' name="x.exe"\n\nMZ\n--bound--\n')
    msg = mime.message_from_file(io.BytesIO(raw))
    assert msg.ismultipart() and len(msg.get_payload()) == 2
    assert mime.defang(msg) and msg.ismodified()


def test_headerchange_told_before_delete():
    seen = []
    raw = b'Content-Type: application/octet-stream; name="a.exe"\n\nMZ\n'
    msg = mime.message_from_file(io.BytesIO(raw))
    msg.headerchange = lambda m, n, v: seen.append(
        (n, v, len(m.get_all(n) or [])))
    assert mime.defang(msg)
    assert ('Content-Type', None, 1) in seen
    assert ('Content-Type', 'text/plain; name=WARNING.TXT', 1) in seen


def test_html_script_filter():
    out = io.StringIO()
    f = mime.HTMLScriptFilter(out)
    keep = '<!-- c --><![if x]>y<![endif]><p>text</p>'
    f.feed(keep + '<SCRIPT lang=js>bad()</script>')
    f.close()
    assert out.getvalue() == keep + f.msg
    html = (b'Content-Type: text/html\n\n<p>x</p><script>evil()</script>\n')
    msg = mime.message_from_file(io.BytesIO(html))
    assert mime.check_html(msg)
    assert b'evil' not in msg.as_bytes()


def test_zip_attachments():
    def zipped(names):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w') as z:
            for n in names:
                z.writestr(n, b'x')
        return buf.getvalue()
    import base64
    for members, bad in ((['doc.txt'], False), (['run.exe'], True),
                         ([], False)):
        data = base64.b64encode(zipped(members))
        raw = (b'Content-Type: application/zip; name="f.zip"\n'
               b'Content-Transfer-Encoding: base64\n\n' + data + b'\n')
        msg = mime.message_from_file(io.BytesIO(raw))
        assert bool(mime.defang(msg, scan_zip=True)) is bad, members
        msg = mime.message_from_file(io.BytesIO(raw))
        assert not mime.defang(msg, scan_zip=False)


def test_doctests():
    import doctest
    import Milter.dynip
    import Milter.pyip6
    for mod in (Milter.utils, Milter.dynip, Milter.pyip6):
        failed, _tried = doctest.testmod(mod)
        assert failed == 0, mod.__name__


def test_addr_cache(tmp_path):
    from Milter.cache import AddrCache
    fname = str(tmp_path / 'cache.dat')
    c = AddrCache(fname=fname)
    c['foo@bar.com'] = None
    c.addperm('baz@bar.com')
    c['temp@bar.com'] = 'testing'
    assert c.has_key('foo@bar.com') and 'baz@bar.com' in c
    assert 'hello@bar.com' not in c
    assert c['temp@bar.com'] == 'testing'
    lines = open(fname).read().splitlines()
    assert lines[0].startswith('foo@bar.com ') and lines[1] == 'baz@bar.com'
    c['temp@bar.com'] = None
    assert not c['temp@bar.com']
    with open(fname, 'a') as fp:
        fp.write('spammer.com\nold@x.com 1000\n')
    d = AddrCache()
    d.load(fname, 30)
    assert 'spammer.com' in d and 'anyone@spammer.com' in d
    assert d.has_precise_key('foo@bar.com')
    assert 'old@x.com' not in d          # expired


def test_dynip():
    from Milter.dynip import is_dynip
    assert is_dynip('c-1-2-3-4.hsd1.example.net', '1.2.3.4')
    assert is_dynip('dsl-001002003004.example.net', '1.2.3.4')
    assert is_dynip('0102030a.example.net', '1.2.3.10')
    assert not is_dynip('mx1.example.com', '1.2.3.4')
