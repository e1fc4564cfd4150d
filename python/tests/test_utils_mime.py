"""The mime module and Milter.cache (Milter.utils: test_utils.py)."""
import io
import zipfile

import mime


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
    # per part, not recursive: the multipart's own parameter only
    assert msg.getnames() == [('boundary', 'XX')]
    assert msg.gettype() == 'multipart/mixed'
    assert msg.getparam('boundary') == 'XX'
    text = mime.message_from_file(io.StringIO(MSG.decode()))
    assert text['Subject'] == 's'


KLEZ = b"""From: a@b
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=YY

--YY
Content-Type: text/plain

hi
--YY
Content-Type: audio/x-midi;
\tname=hom1;tile=1;ord=3354010700499224[1].scr
Content-Transfer-Encoding: base64

TVqQAAMAAAAEAAAA
--YY--
"""


def test_unquoted_semicolons_do_not_hide_a_dangerous_name():
    # Klez's trick (bms.py's test message virus13): the unquoted ';' end
    # the name at "hom1", and the part still runs as a .scr.  pymilter's
    # getnames lists every Content-Type parameter, so check_name sees it.
    msg = mime.message_from_file(io.BytesIO(KLEZ))
    part = msg.get_payload(1)
    assert part.getnames() == [('name', 'hom1'), ('tile', '1'),
                               ('ord', '3354010700499224[1].scr')]
    assert mime.check_name(part, 'saved') is True
    assert msg.ismodified()
    assert b'TVqQ' not in msg.as_bytes()
    plain = mime.message_from_file(io.BytesIO(KLEZ)).get_payload(0)
    assert mime.check_name(plain, 'saved') is False


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


def test_addr_cache_file_format_and_expiry(tmp_path):
    # pymilter's file: "address" or "address <time_format stamp>"; load()
    # drops old and unreadable entries and keeps the previous file.
    import time
    from Milter.cache import AddrCache
    fname = str(tmp_path / 'cbv.dat')

    def stamp(days_ago):
        return time.strftime(AddrCache.time_format,
                             time.localtime(time.time() - days_ago * 86400))
    lines = ['manual.example\n', 'recent@a.example %s\n' % stamp(2),
             'stale@a.example %s\n' % stamp(20), 'junk@a.example 12345\n']
    with open(fname, 'w') as fp:
        fp.writelines(lines)
    c = AddrCache(renew=7)
    c.load(fname)
    assert 'recent@a.example' in c and 'x@manual.example' in c
    assert 'stale@a.example' not in c and 'junk@a.example' not in c
    with open(fname) as fp:
        assert fp.readlines() == lines[:2]
    with open(fname + '.old') as fp:
        assert fp.readlines() == lines
    assert not (tmp_path / 'cbv.dat.lock').exists()
    # Entries expire in memory too, after `renew` days.
    c.cache['recent@a.example'] = (time.time() - 8 * 86400, None)
    assert not c.has_precise_key('recent@a.example')
    assert 'recent@a.example' not in c.cache
    # A fresh file written by the cache reads back.
    c['New@B.example'] = None
    c.addperm('Perm@B.example')
    d = AddrCache()
    d.load(fname, 30)
    assert d.has_precise_key('new@b.example') and 'perm@b.example' in d
    assert d.cache['perm@b.example'][0] is not None   # seen now, on reload


def test_pymilter_call_forms():
    # Signatures pymilter's callers use: decode(filt), check_attachments
    # with lev, check_ext giving the name back.
    msg = mime.message_from_file(io.BytesIO(MSG))
    part = msg.get_payload(1)
    out = io.BytesIO()
    assert part.decode(out) == 'base64'
    assert out.getvalue() == part.get_payload(decode=True) == \
        b'MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00'
    assert msg.get_payload(0).decode(io.BytesIO()) is None
    assert mime.check_ext('EVIL.EXE') == 'EVIL.EXE'
    assert mime.check_ext('a.txt') is None and mime.check_ext('') == ''
    seen = []
    assert mime.check_attachments(msg, lambda p: seen.append(p) or 0,
                                  lev=[1]) == 0
    assert len(seen) == 2
