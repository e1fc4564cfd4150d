"""Milter.sgmllib: the SGML/HTML tokenizer of Python 2's sgmllib, for
Python 3 (pymilter's API; mime.SGMLFilter is built on it).

A subclass works as the DTD: for a tag <foo> the parser calls
start_foo(attrs) (and expects </foo> to close it) or do_foo(attrs) (a tag
with no end tag), else unknown_starttag(tag, attrs); </foo> calls
end_foo() or unknown_endtag(tag).  Tags and attribute names are lower
case.  Text goes to handle_data, &name; and &#n; to handle_entityref and
handle_charref (which turn entitydefs entries and codes 0-127 into text),
comments to handle_comment, <?...> to handle_pi and <!...> to
parse_declaration.  feed() may be called with any pieces of the input; a
construct split between two pieces waits for the next one, and close()
flushes what is left as text.

Like the original, this is a lenient tokenizer for HTML as it is found in
mail, not a validating SGML parser.
"""
import re
import sys

import _markupbase

__all__ = ['SGMLParser', 'SGMLParseError']

# The characters that may start markup.
interesting = re.compile('[&<]')
# A prefix of markup that may still become complete with more input.
incomplete = re.compile('&(?:[a-zA-Z][a-zA-Z0-9]*|#[0-9]*)?'
                        '|<(?:[a-zA-Z][^<>]*|/(?:[a-zA-Z][^<>]*)?|![^<>]*)?')
# References need the character after them, so that "&amp" at the end of
# a fed piece waits for more (the ';' is optional).
entityref = re.compile('&([a-zA-Z][-.a-zA-Z0-9]*)[^a-zA-Z0-9]')
charref = re.compile('&#([0-9]+)[^0-9]')
starttagopen = re.compile('<[>a-zA-Z]')
# SGML's short form <tag/data/, the same as <tag>data</tag>.
shorttagopen = re.compile('<[a-zA-Z][-.a-zA-Z0-9]*/')
shorttag = re.compile('<([a-zA-Z][-.a-zA-Z0-9]*)/([^/]*)/')
piclose = re.compile('>')
endbracket = re.compile('[<>]')
tagfind = re.compile('[a-zA-Z][-_.a-zA-Z0-9]*')
# name, optionally = and a value: quoted, or a run of the characters an
# unquoted HTML attribute value is seen with.
attrfind = re.compile(
    r'\s*([a-zA-Z_][-:.a-zA-Z_0-9]*)'
    r'(\s*=\s*'
    r'(\'[^\']*\'|"[^"]*"|[][\-a-zA-Z0-9./,:;+*%?!&$()_#=~\'"@]*))?')


class SGMLParseError(RuntimeError):
    """Raised for input the parser cannot handle."""


class SGMLParser(_markupbase.ParserBase):
    """Tokenizer calling handler methods; see the module documentation."""

    # A reference inside an attribute value: &name, &#n, optional ';'.
    entity_or_charref = re.compile(
        '&(?:([a-zA-Z][-.a-zA-Z0-9]*)|#([0-9]+))(;?)')

    # The entities handle_entityref turns into text; subclasses add more.
    entitydefs = {'lt': '<', 'gt': '>', 'amp': '&', 'quot': '"',
                  'apos': "'"}

    # Characters _markupbase accepts inside <!...> besides names and
    # strings.
    _decl_otherchars = '='

    def __init__(self, verbose=0):
        self.verbose = verbose
        self.reset()

    def reset(self):
        """Forget all state and any input not yet handled."""
        self.__starttag_text = None
        self.rawdata = ''
        self.stack = []          # open tags that have an end_ method
        self.lasttag = '???'     # what "<>" stands for
        self.nomoretags = 0
        self.literal = 0
        _markupbase.ParserBase.reset(self)

    def setnomoretags(self):
        """Treat all remaining input as text (for subclasses)."""
        self.nomoretags = self.literal = 1

    def setliteral(self, *args):
        """Treat input as text up to the next end tag (for subclasses,
        e.g. for the content of <script>)."""
        self.literal = 1

    def feed(self, data):
        """Parse data, a str of any length; an incomplete construct at its
        end is kept for the next feed() or close()."""
        self.rawdata = self.rawdata + data
        self.goahead(0)

    def close(self):
        """Parse what is left, as if the input ended here."""
        self.goahead(1)

    def error(self, message):
        raise SGMLParseError(message)

    def get_starttag_text(self):
        """The source text of the start tag being handled."""
        return self.__starttag_text

    # --- tokenizer ----------------------------------------------------------

    def goahead(self, end):
        """Handle rawdata as far as it is complete (all of it if end)."""
        rawdata = self.rawdata
        n = len(rawdata)
        i = 0
        while i < n:
            if self.nomoretags:
                self.handle_data(rawdata[i:])
                i = n
                break
            m = interesting.search(rawdata, i)
            j = m.start() if m else n
            if i < j:
                self.handle_data(rawdata[i:j])
                i = j
            if i == n:
                break
            if rawdata[i] == '<':
                k = self._markup(i)
            else:
                k = self._reference(i)
            if k is None:
                k = self._unrecognized(i)
            if k < 0:
                break   # incomplete: wait for more input
            i = k
        if end and i < n:
            self.handle_data(rawdata[i:])
            i = n
        self.rawdata = rawdata[i:]

    def _markup(self, i):
        """At '<': the index after the construct, -1 if it is incomplete,
        None if it is no construct."""
        rawdata = self.rawdata
        if starttagopen.match(rawdata, i):
            if self.literal:
                self.handle_data('<')
                return i + 1
            return self.parse_starttag(i)
        if rawdata.startswith('</', i):
            k = self.parse_endtag(i)
            if k >= 0:
                self.literal = 0
            return k
        if self.literal:
            if len(rawdata) > i + 1:
                self.handle_data('<')
                return i + 1
            return -1
        if rawdata.startswith('<!--', i):
            return self.parse_comment(i)
        if rawdata.startswith('<?', i):
            k = self.parse_pi(i)
            return k if k < 0 else i + k
        if rawdata.startswith('<!', i):
            return self.parse_declaration(i)
        return None

    def _reference(self, i):
        """At '&': like _markup, for &#n; and &name; (the ';' may be
        missing, then the character after the name is not consumed)."""
        rawdata = self.rawdata
        if self.literal:
            self.handle_data('&')
            return i + 1
        for pattern, handler in ((charref, self.handle_charref),
                                 (entityref, self.handle_entityref)):
            m = pattern.match(rawdata, i)
            if m:
                handler(m.group(1))
                k = m.end()
                return k if rawdata[k - 1] == ';' else k - 1
        return None

    def _unrecognized(self, i):
        """A '<' or '&' that starts nothing known: -1 when it may still
        grow into markup at the end of the input, else it is text."""
        rawdata = self.rawdata
        m = incomplete.match(rawdata, i)
        if not m:
            self.handle_data(rawdata[i])
            return i + 1
        j = m.end()
        if j == len(rawdata):
            return -1
        self.handle_data(rawdata[i:j])
        return j

    def parse_pi(self, i):
        """<?...>: handle_pi(text between); returns the construct's
        length, -1 if it is not closed yet."""
        rawdata = self.rawdata
        if rawdata[i:i + 2] != '<?':
            self.error('unexpected call to parse_pi()')
        m = piclose.search(rawdata, i + 2)
        if not m:
            return -1
        self.handle_pi(rawdata[i + 2:m.start()])
        return m.end() - i

    def parse_starttag(self, i):
        """A start tag at i: finish_starttag(tag, attrs); returns the
        index after it, -1 if it is not complete.  The tag ends at the
        first '>' or '<' (quotes are not looked at, as in sgmllib)."""
        self.__starttag_text = None
        rawdata = self.rawdata
        if shorttagopen.match(rawdata, i):
            m = shorttag.match(rawdata, i)
            if not m:
                return -1
            tag, data = m.group(1, 2)
            self.__starttag_text = '<%s/' % tag
            self.finish_shorttag(tag.lower(), data)
            self.__starttag_text = rawdata[i:m.end(1) + 1]
            return m.end()
        m = endbracket.search(rawdata, i + 1)
        if not m:
            return -1
        j = m.start()
        if rawdata.startswith('<>', i):
            tag, k = self.lasttag, j     # "<>" repeats the last tag
        else:
            m = tagfind.match(rawdata, i + 1)
            if not m:
                self.error('unexpected call to parse_starttag')
            k = m.end()
            tag = self.lasttag = rawdata[i + 1:k].lower()
        attrs = []
        while k < j:
            m = attrfind.match(rawdata, k)
            if not m:
                break
            attrs.append(self._attribute(*m.group(1, 2, 3)))
            k = m.end()
        if rawdata[j] == '>':
            j += 1
        self.__starttag_text = rawdata[i:j]
        self.finish_starttag(tag, attrs)
        return j

    def _attribute(self, name, assignment, value):
        """(name, value) of one attribute: a bare name is its own value;
        quotes are removed and references in the value resolved."""
        if not assignment:
            return name.lower(), name
        if len(value) > 1 and value[0] == value[-1] and value[0] in '\'"':
            value = value[1:-1]
        elif value in ('"', "'"):
            value = ''
        return name.lower(), self.entity_or_charref.sub(self._convert_ref,
                                                        value)

    def _convert_ref(self, m):
        """The text for one reference in an attribute value; unknown ones
        stay as written."""
        name, num, semi = m.groups()
        if num:
            return self.convert_charref(num) or '&#%s%s' % (num, semi)
        if semi:
            return self.convert_entityref(name) or '&%s;' % name
        return '&%s' % name

    def parse_endtag(self, i):
        """An end tag at i: finish_endtag(tag); returns the index after
        it, -1 if it is not complete."""
        rawdata = self.rawdata
        m = endbracket.search(rawdata, i + 1)
        if not m:
            return -1
        j = m.start()
        tag = rawdata[i + 2:j].strip().lower()
        self.finish_endtag(tag)
        return j + 1 if rawdata[j] == '>' else j

    def finish_shorttag(self, tag, data):
        """<tag/data/: the same as <tag>data</tag>."""
        self.finish_starttag(tag, [])
        self.handle_data(data)
        self.finish_endtag(tag)

    def finish_starttag(self, tag, attrs):
        """Dispatch a start tag: start_<tag> (pushed on the stack of open
        tags, returns 1), do_<tag> (returns 0) or unknown_starttag
        (returns -1)."""
        method = getattr(self, 'start_' + tag, None)
        if method is not None:
            self.stack.append(tag)
            self.handle_starttag(tag, method, attrs)
            return 1
        method = getattr(self, 'do_' + tag, None)
        if method is not None:
            self.handle_starttag(tag, method, attrs)
            return 0
        self.unknown_starttag(tag, attrs)
        return -1

    def finish_endtag(self, tag):
        """Dispatch an end tag: it closes the innermost open tag of that
        name and every tag opened after it (end_<tag> or unknown_endtag
        for each).  An end tag with no open tag goes to unknown_endtag,
        or to report_unbalanced if there is an end_<tag>.  "</>" closes
        the innermost open tag."""
        if not tag:
            depth = len(self.stack) - 1
            if depth < 0:
                self.unknown_endtag(tag)
                return
        elif tag in self.stack:
            depth = len(self.stack) - 1 - self.stack[::-1].index(tag)
        else:
            if getattr(self, 'end_' + tag, None) is not None:
                self.report_unbalanced(tag)
            else:
                self.unknown_endtag(tag)
            return
        while len(self.stack) > depth:
            top = self.stack[-1]
            method = getattr(self, 'end_' + top, None)
            if method:
                self.handle_endtag(top, method)
            else:
                self.unknown_endtag(top)
            del self.stack[-1]

    # --- overridable handlers ----------------------------------------------

    def handle_starttag(self, tag, method, attrs):
        method(attrs)

    def handle_endtag(self, tag, method):
        method()

    def report_unbalanced(self, tag):
        """An end tag with an end_ method but no open start tag."""
        if self.verbose:
            print('*** Unbalanced </' + tag + '>')
            print('*** Stack:', self.stack)

    def convert_charref(self, name):
        """The text for &#name;: codes 0-127 only, else None."""
        try:
            n = int(name)
        except ValueError:
            return None
        if 0 <= n <= 127:
            return self.convert_codepoint(n)
        return None

    def convert_codepoint(self, codepoint):
        return chr(codepoint)

    def handle_charref(self, name):
        text = self.convert_charref(name)
        if text is None:
            self.unknown_charref(name)
        else:
            self.handle_data(text)

    def convert_entityref(self, name):
        """The text for &name; from entitydefs, else None."""
        return self.entitydefs.get(name)

    def handle_entityref(self, name):
        text = self.convert_entityref(name)
        if text is None:
            self.unknown_entityref(name)
        else:
            self.handle_data(text)

    def handle_data(self, data):
        pass

    def handle_comment(self, data):
        pass

    def handle_decl(self, decl):
        pass

    def handle_pi(self, data):
        pass

    def unknown_starttag(self, tag, attrs):
        pass

    def unknown_endtag(self, tag):
        pass

    def unknown_charref(self, ref):
        pass

    def unknown_entityref(self, ref):
        pass


class TestSGMLParser(SGMLParser):
    """Prints what it parses, one event a line (the test() driver)."""

    def __init__(self, verbose=0):
        self.testdata = ''
        SGMLParser.__init__(self, verbose)

    def handle_data(self, data):
        # Text is collected and printed in lines of about 70 characters.
        self.testdata += data
        if len(repr(self.testdata)) >= 70:
            self.flush()

    def flush(self):
        if self.testdata:
            print('data:', repr(self.testdata))
            self.testdata = ''

    def handle_comment(self, data):
        self.flush()
        r = repr(data)
        if len(r) > 68:
            r = r[:32] + '...' + r[-32:]
        print('comment:', r)

    def unknown_starttag(self, tag, attrs):
        self.flush()
        shown = ''.join(' %s="%s"' % a for a in attrs)
        print('start tag: <%s%s%s>' % (tag, shown, ' ' if attrs else ''))

    def unknown_endtag(self, tag):
        self.flush()
        print('end tag: </' + tag + '>')

    def unknown_entityref(self, ref):
        self.flush()
        print('*** unknown entity ref: &' + ref + ';')

    def unknown_charref(self, ref):
        self.flush()
        print('*** unknown char ref: &#' + ref + ';')

    def unknown_decl(self, data):
        self.flush()
        print('*** unknown decl: [' + data + ']')

    def close(self):
        SGMLParser.close(self)
        self.flush()


def test(args=None):
    """Parse a file (default test.html, '-' for stdin) one character at a
    time and print the events; with -s first, parse silently."""
    args = sys.argv[1:] if args is None else list(args)
    klass = TestSGMLParser
    if args and args[0] == '-s':
        args, klass = args[1:], SGMLParser
    name = args[0] if args else 'test.html'
    if name == '-':
        data = sys.stdin.read()
    else:
        try:
            with open(name) as f:
                data = f.read()
        except IOError as msg:
            print(name, ':', msg)
            sys.exit(1)
    p = klass()
    for c in data:
        p.feed(c)
    p.close()


if __name__ == '__main__':
    test()
