"""mime: pymilter's MIME helpers (message parsing, attachment checks and
"defanging"), written from the documented API on top of the email package.

Public names: MimeMessage, MimeGenerator, message_from_file, unquote,
zipnames, check_ext, check_name, check_attachments, check_html, defang,
virus_msg, extlist, bad_extensions, SGMLFilter, HTMLScriptFilter (on
Milter.sgmllib), declname, declstringlit.
"""
import email
import email.generator
import email.message
import io
import re
import socket
import zipfile

from Milter.sgmllib import SGMLParser as HTMLParser

__all__ = ['MimeMessage', 'MimeGenerator', 'message_from_file', 'unquote',
           'zipnames', 'check_ext', 'check_name', 'check_attachments',
           'check_html', 'HTMLScriptFilter', 'SGMLFilter', 'defang', 'virus_msg',
           'extlist', 'bad_extensions']

extlist = ','.join((
    'ade', 'adp', 'asp', 'asx', 'bas', 'bat', 'chm', 'cmd', 'com', 'cpl', 'crt',
    'dll', 'exe', 'hlp', 'hta', 'inf', 'ins', 'isp', 'js', 'jse', 'lnk',
    'mdb', 'mde', 'msc', 'msi', 'msp', 'mst', 'ocx', 'pcd', 'pif', 'reg',
    'scr', 'sct', 'shs', 'url', 'vb', 'vbe', 'vbs', 'wsc', 'wsf', 'wsh'))
bad_extensions = ['.' + x for x in extlist.split(',')]

virus_msg = """This message appeared to contain a virus.
It was originally named '%s', and has been removed.
A copy of your original message was saved as '%s:%s'.
See your administrator.
"""


def _parseparam(s):
    """Split a header's parameter list at the ';' that are not inside
    quotes; each item stripped (the text before the first ';' included)."""
    out, cur, quoted, esc = [], [], False, False
    for ch in s:
        if esc:
            esc = False
        elif ch == '\\' and quoted:
            esc = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ';' and not quoted:
            out.append(''.join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append(''.join(cur).strip())
    return out


def _tolerant_param(value, name):
    """A parameter's value from a header, read the way mail clients do:
    a quoted value ends at its closing quote, whatever follows (spammers
    fold junk into Content-Type); an unquoted one at white space."""
    for item in _parseparam(value)[1:]:
        k, eq, v = item.partition('=')
        if not eq or k.strip().lower() != name:
            continue
        v = v.strip()
        if v.startswith('"'):
            end, i = None, 1
            while i < len(v):
                if v[i] == '\\':
                    i += 2
                    continue
                if v[i] == '"':
                    end = i
                    break
                i += 1
            return unquote(v[:end + 1]) if end else v[1:]
        return v.split()[0] if v.split() else ''
    return None


def unquote(s):
    """Remove one level of double quotes (and backslash escapes)."""
    if len(s) > 1 and s[0] == s[-1] == '"':
        return s[1:-1].replace('\\\\', '\\').replace('\\"', '"')
    return s


class MimeMessage(email.message.Message):
    """email.message.Message that tracks whether it (or a part) was
    modified, with pymilter's convenience names."""

    getfilename = email.message.Message.get_filename
    ismultipart = email.message.Message.is_multipart
    getheaders = email.message.Message.get_all
    gettype = email.message.Message.get_content_type
    getparam = email.message.Message.get_param

    def __init__(self, fp=None, seekable=1):
        email.message.Message.__init__(self)
        self.submsg = None
        self.modified = False
        # headerchange(msg, name, value): told of every header change made
        # through this object (value None = all 'name' headers deleted), so
        # a milter can mirror them with addheader/chgheader.
        self.headerchange = None

    def get_boundary(self, failobj=None):
        """The multipart boundary, tolerant of junk after a quoted value
        (the parser asks this while reading the message)."""
        v = self.get('content-type')
        b = _tolerant_param(str(v), 'boundary') if v is not None else None
        return failobj if b is None else b.rstrip()

    def get_param(self, param, failobj=None, header='content-type',
                  unquote=True):
        v = email.message.Message.get_param(self, param, failobj, header,
                                            unquote)
        if isinstance(v, tuple):  # RFC 2231 value
            v = email.utils.collapse_rfc2231_value(v)
        return v

    def getparams(self):
        return self.get_params()

    def getname(self):
        return self.get_param('name') or self.get_filename()

    def getnames(self, scan_zip=False):
        """(attribute, name) pairs a mail client might treat as a file
        name: Content-Type name and Content-Disposition filename of this
        part, then every other Content-Type parameter (as pymilter's);
        with scan_zip also ('zipname', member) for a zip archive."""
        names = []
        for attr, hdr in (('name', 'content-type'),
                          ('filename', 'content-disposition')):
            raw = self.get(hdr)
            v = _tolerant_param(str(raw), attr) if raw is not None else None
            if v is None:
                try:
                    v = self.get_param(attr, None, hdr)
                except Exception:
                    v = None
            if v:
                names.append((attr, v))
        # Klez writes name=a;b=c;d=x[1].scr unquoted: the ';' cut the name
        # short, and Outlook still opened the part by the last piece.
        raw = self.get('content-type')
        for item in _parseparam(str(raw))[1:] if raw is not None else ():
            k, eq, _v = item.partition('=')
            k = k.strip().lower()
            if eq and k != 'name' and not k.startswith('name*'):
                v = _tolerant_param(str(raw), k)
                if v:
                    names.append((k, v))
        if scan_zip and not self.is_multipart() and (
                self.get_content_type().endswith('zip') or
                any(n.lower().endswith('.zip') for _a, n in names)):
            data = self.get_payload(decode=True) or b''
            members = zipnames(data)
            if members is None:
                names.append(('zipname', None))  # not a zip: suspicious
            else:
                names += [('zipname', n) for n in members]
        return names

    def ismodified(self):
        if self.modified:
            return True
        if self.is_multipart():
            return any(getattr(p, 'ismodified', lambda: False)()
                       for p in self.get_payload())
        return False

    def dump(self, file, unixfrom=False):
        file.write(self.as_bytes(unixfrom))

    def getencoding(self):
        return self.get('content-transfer-encoding', '7bit').lower()

    def decode(self, filt=None):
        """pymilter's form: write the decoded payload to filt (a binary
        file; a payload that cannot be decoded writes nothing) and return
        the Content-Transfer-Encoding, or None.  Without filt, the decoded
        payload."""
        if filt is None:
            return self.get_payload(decode=True)
        try:
            filt.write(self.get_payload(decode=True))
        except Exception:
            pass
        return self.get('content-transfer-encoding', None)

    def get_payload_decoded(self):
        return self.get_payload(decode=True)

    def __setitem__(self, name, value):
        email.message.Message.__setitem__(self, name, value)
        self.modified = True
        if self.headerchange:
            self.headerchange(self, name, value)

    def __delitem__(self, name):
        # Told before the deletion, so the callback can still count the
        # headers it has to delete.
        if self.headerchange:
            self.headerchange(self, name, None)
        email.message.Message.__delitem__(self, name)
        self.modified = True

    def set_payload(self, payload, charset=None):
        email.message.Message.set_payload(self, payload, charset)
        self.modified = True

    def get_submsg(self):
        if self.get_content_type() == 'message/rfc822' and \
                self.is_multipart():
            return self.get_payload(0)
        return None


class MimeGenerator(email.generator.BytesGenerator):
    """BytesGenerator that leaves malformed multiparts as they came."""


def message_from_file(fp):
    """Parse a message (text or binary file) into a MimeMessage; the
    modified flags start out clear."""
    data = fp.read()
    if isinstance(data, str):
        data = data.encode('utf-8', 'surrogateescape')
    msg = email.message_from_bytes(data, _class=MimeMessage)
    for part in msg.walk():
        part.modified = False
    return msg


def zipnames(txt):
    """File names in a zip archive (nested archives expanded); None if txt
    is not a readable zip archive, [] for an empty one."""
    if not txt:
        return []
    try:
        z = zipfile.ZipFile(io.BytesIO(txt))
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    names = []
    for info in z.infolist():
        names.append(info.filename)
        if info.filename.lower().endswith('.zip'):
            try:
                names += zipnames(z.read(info)) or []
            except (RuntimeError, zipfile.BadZipFile, ValueError, OSError):
                pass  # encrypted or broken member
    return names


def check_ext(name):
    """name if it ends in an executable extension, else None (a false
    name comes back as it is), as pymilter's check_ext."""
    if not name:
        return name
    n = name.lower().strip()
    return name if any(n.endswith(e) for e in bad_extensions) else None


# A name and a quoted string inside <!...> (SGMLFilter.parse_declaration
# skips over them, so a '>' inside a string does not end it).
declname = re.compile(r'[a-zA-Z][-_.a-zA-Z0-9]*\s*')
declstringlit = re.compile(r'(\'[^\']*\'|"[^"]*")\s*')


def check_name(msg, savname=None, ckname=check_ext, scan_zip=False):
    """Replace this part with the virus_msg notice if one of its names is
    dangerous (a bad member of a zip attachment, or an attachment named
    .zip that is no zip, counts for the attachment's own name); returns
    True when it was replaced.  ckname(name) -> true means dangerous."""
    own = None
    for attr, name in msg.getnames(scan_zip):
        if attr != 'zipname':
            own = own or name
            if ckname(name):
                _replace(msg, name, savname)
                return True
        elif name is None or ckname(name):
            _replace(msg, own or name or 'attachment', savname)
            return True
    return False


def _replace(part, name, savname):
    """Turn a part into the virus_msg notice: (name, this host, where the
    original was saved)."""
    for h in ('Content-Type', 'Content-Disposition',
              'Content-Transfer-Encoding'):
        if h in part:
            del part[h]
    # pymilter names the notice, and mail clients show that name.
    part['Content-Type'] = 'text/plain; name=WARNING.TXT'
    part.set_payload(virus_msg % (name, socket.gethostname(), savname))


class SGMLFilter(HTMLParser):
    """Copy HTML to out as it is parsed, every construct unchanged, so a
    subclass can change just the ones it is interested in.  Use it as a
    file: write() (or feed()) the text in pieces, then close()."""

    def __init__(self, out):
        HTMLParser.__init__(self)
        self.out = out

    def write(self, buf):
        self.feed(buf)

    def handle_data(self, data):
        self.out.write(data)

    def handle_comment(self, comment):
        self.out.write('<!--%s-->' % comment)

    def handle_entityref(self, ref):
        self.out.write('&%s;' % ref)

    def handle_charref(self, ref):
        self.out.write('&#%s;' % ref)

    def handle_special(self, data):
        """A <!...> declaration, passed through as it came."""
        self.out.write('<!%s>' % data)

    def unknown_starttag(self, tag, attr):
        self.out.write(self.get_starttag_text())

    def unknown_endtag(self, tag):
        self.out.write('</%s>' % tag)

    def parse_declaration(self, i):
        """<!...> up to its '>' (outside quoted strings) goes to
        handle_special whatever it holds: mail clients accept declarations
        an SGML parser would reject (<![if ...]> and the like).  Returns
        the index after it, -1 if the '>' has not come yet."""
        rawdata = self.rawdata
        j = i + 2
        while j < len(rawdata):
            c = rawdata[j]
            if c == '>':
                self.handle_special(rawdata[i + 2:j])
                return j + 1
            if c in '"\'' or c.isalpha() and c.isascii():
                m = (declstringlit if c in '"\'' else declname).match(
                    rawdata, j)
                if not m:
                    return -1
                j = m.end()
            else:
                j += 1
        return -1


class HTMLScriptFilter(SGMLFilter):
    """SGMLFilter that drops every <script> element, writing self.msg
    where each outermost one was; self.modified tells whether there was
    one.  Unlike pymilter's, tags and references inside a script are
    dropped too, not only its text and comments."""

    def __init__(self, out):
        SGMLFilter.__init__(self, out)
        self.ignoring = 0
        self.modified = False
        self.msg = '<!-- WARNING: embedded script removed -->'

    def start_script(self, unused):
        self.ignoring += 1
        self.modified = True

    def end_script(self):
        self.ignoring -= 1
        if not self.ignoring:
            self.out.write(self.msg)

    def close(self):
        SGMLFilter.close(self)
        # An unclosed <script> runs to the end of the document.
        if self.ignoring:
            self.ignoring = 0
            self.out.write(self.msg)

    def handle_data(self, data):
        if not self.ignoring:
            SGMLFilter.handle_data(self, data)

    def handle_comment(self, comment):
        if not self.ignoring:
            SGMLFilter.handle_comment(self, comment)

    def handle_entityref(self, ref):
        if not self.ignoring:
            SGMLFilter.handle_entityref(self, ref)

    def handle_charref(self, ref):
        if not self.ignoring:
            SGMLFilter.handle_charref(self, ref)

    def handle_special(self, data):
        if not self.ignoring:
            SGMLFilter.handle_special(self, data)

    def unknown_starttag(self, tag, attr):
        if not self.ignoring:
            SGMLFilter.unknown_starttag(self, tag, attr)

    def unknown_endtag(self, tag):
        if not self.ignoring:
            SGMLFilter.unknown_endtag(self, tag)


def check_html(msg, savname=None):
    """Remove scripts from every text/html part; True if any was changed."""
    changed = False
    for part in msg.walk():
        if part.get_content_type() != 'text/html':
            continue
        raw = part.get_payload(decode=True)
        if raw is None:
            continue
        charset = part.get_content_charset() or 'latin-1'
        try:
            text = raw.decode(charset, 'replace')
        except LookupError:
            text = raw.decode('latin-1')
        out = io.StringIO()
        f = HTMLScriptFilter(out)
        f.write(text)
        f.close()
        if f.modified:
            del part['content-transfer-encoding']
            part.set_payload(out.getvalue(), 'utf-8')
            changed = True
    return changed


def check_attachments(msg, check, lev=None):
    """Call check(part) for every leaf part; stop at the first result
    other than CONTINUE (0) and return it.  lev (pymilter's nesting
    counter for its debug output) is accepted and not used."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        rc = check(part)
        if rc:
            return rc
    return 0


class _defang(object):
    """defang(msg, savname=None, check=check_ext, scan_rfc822=True,
    scan_zip=False): replace every attachment with a dangerous name;
    returns True if the message was changed."""

    def __init__(self):
        self.scan_rfc822 = True
        self.scan_zip = False
        self.scan_html = True

    def __call__(self, msg, savname=None, check=check_ext, scan_rfc822=True,
                 scan_zip=False):
        self._savname = savname
        self._check = check
        changed = False
        for part in msg.walk():
            if part.is_multipart():
                continue
            if check_name(part, savname, check, scan_zip):
                changed = True
        return changed


defang = _defang()
