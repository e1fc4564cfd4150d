"""Milter.sgmllib (Python 2's sgmllib for Python 3) and the HTML filters
of mime built on it: events as sgmllib gave them, whether the input comes
whole or one character at a time (a milter feeds body chunks)."""
import io

import pytest

import mime
from Milter import sgmllib


class Recorder(sgmllib.SGMLParser):
    """Records every event; <b> has start_/end_ methods, <br> do_."""

    def __init__(self):
        self.events = []
        sgmllib.SGMLParser.__init__(self)

    def _add(self, *ev):
        if ev[0] == 'data' and self.events and self.events[-1][0] == 'data':
            self.events[-1] = ('data', self.events[-1][1] + ev[1])
        else:
            self.events.append(ev)

    def handle_data(self, d):
        self._add('data', d)

    def handle_comment(self, d):
        self._add('comment', d)

    def handle_pi(self, d):
        self._add('pi', d)

    def handle_decl(self, d):
        self._add('decl', d)

    def unknown_decl(self, d):
        self._add('udecl', d)

    def unknown_starttag(self, tag, attrs):
        self._add('start', tag, attrs, self.get_starttag_text())

    def unknown_endtag(self, tag):
        self._add('end', tag)

    def unknown_charref(self, ref):
        self._add('charref?', ref)

    def unknown_entityref(self, ref):
        self._add('entityref?', ref)

    def start_b(self, attrs):
        self._add('start_b', attrs)

    def end_b(self):
        self._add('end_b')

    def do_br(self, attrs):
        self._add('do_br', attrs)

    def end_i(self):
        self._add('end_i')

    def report_unbalanced(self, tag):
        self._add('unbalanced', tag)


CASES = [
    ('a<p class="x" id=y checked>b</p>c',
     [('data', 'a'),
      ('start', 'p', [('class', 'x'), ('id', 'y'), ('checked', 'checked')],
       '<p class="x" id=y checked>'),
      ('data', 'b'), ('end', 'p'), ('data', 'c')]),
    ('<A HREF=\'u?a=1&amp;b=2&#65;&zz;\'>',
     [('start', 'a', [('href', 'u?a=1&b=2A&zz;')],
       "<A HREF='u?a=1&amp;b=2&#65;&zz;'>")]),
    ('&amp;&lt;&#65;&#300;&nbsp;x&amp y',
     [('data', '&<A'), ('charref?', '300'), ('entityref?', 'nbsp'),
      ('data', 'x& y')]),
    ('<b>x<br>y<b>z</b>w</b>',
     [('start_b', []), ('data', 'x'), ('do_br', []), ('data', 'y'),
      ('start_b', []), ('data', 'z'), ('end_b',), ('data', 'w'),
      ('end_b',)]),
    # An end tag closes every tag opened after its start tag.
    ('<b><b>x</b></b>', [('start_b', []), ('start_b', []), ('data', 'x'),
                         ('end_b',), ('end_b',)]),
    ('<b>x<br></b>', [('start_b', []), ('data', 'x'), ('do_br', []),
                      ('end_b',)]),
    # An end tag that never closes is text at the end.
    ('<b>x</b', [('start_b', []), ('data', 'x</b')]),
    ('<b>x</i></q>', [('start_b', []), ('data', 'x'), ('unbalanced', 'i'),
                      ('end', 'q')]),
    ('<b>x</>', [('start_b', []), ('data', 'x'), ('end_b',)]),
    ('<!-- note -->t<?php x ?>', [('comment', ' note '), ('data', 't'),
                                  ('pi', 'php x ?')]),
    ('<!DOCTYPE html><p/short/', [('decl', 'DOCTYPE html'),
                                 ('start', 'p', [], '<p/'),
                                 ('data', 'short'), ('end', 'p')]),
    ('<p>1 < 2 & 3 > 0</p>',
     [('start', 'p', [], '<p>'), ('data', '1 < 2 & 3 > 0'), ('end', 'p')]),
    # SGML's <tag/data/ form catches XHTML's <br/> (sgmllib's quirk too).
    ('<br/></p>', [('do_br', []), ('data', '><'), ('end', 'br'),
                   ('data', 'p>')]),
]


def parse(text, pieces):
    p = Recorder()
    if pieces:
        for c in text:
            p.feed(c)
    else:
        p.feed(text)
    p.close()
    return p.events


@pytest.mark.parametrize('text,want', CASES)
@pytest.mark.parametrize('pieces', [False, True])
def test_events(text, want, pieces):
    assert parse(text, pieces) == want


def test_quoted_greater_than_in_attribute():
    # The tag ends at the first '>' even inside quotes; the value is what
    # the attribute pattern finds in what has been fed (sgmllib's quirks).
    assert parse('<x y="a>b">', False) == [
        ('start', 'x', [('y', 'a>b')], '<x y="a>'), ('data', 'b">')]
    assert parse('<x y="a>b">', True) == [
        ('start', 'x', [('y', '"a')], '<x y="a>'), ('data', 'b">')]


def test_incomplete_markup_waits_for_more_input():
    p = Recorder()
    p.feed('x &am')
    assert p.events == [('data', 'x ')]
    p.feed('p; <a hr')
    assert p.events == [('data', 'x & ')]
    p.feed('ef=1>')
    assert p.events[-1] == ('start', 'a', [('href', '1')], '<a href=1>')
    p.feed('<!-- open')
    p.close()
    assert p.events[-1] == ('data', '<!-- open')


def test_literal_modes():
    p = Recorder()
    p.feed('<q>')
    p.setliteral()
    p.feed('<b>&amp;</q><b>')
    p.close()
    assert p.events == [('start', 'q', [], '<q>'), ('data', '<b>&amp;'),
                        ('end', 'q'), ('start_b', [])]
    p = Recorder()
    p.setnomoretags()
    p.feed('<b>&amp;</b>')
    assert p.events == [('data', '<b>&amp;</b>')]


def test_parse_error_class_and_defaults():
    assert issubclass(sgmllib.SGMLParseError, RuntimeError)
    p = sgmllib.SGMLParser()
    with pytest.raises(sgmllib.SGMLParseError):
        p.error('bad')
    p.feed('<a>&lt;&#200;<!-- c --></a>')
    p.close()
    assert p.convert_charref('65') == 'A' and p.convert_charref('128') is None
    assert p.convert_entityref('quot') == '"'
    assert sgmllib.__all__ == ['SGMLParser', 'SGMLParseError']


def test_test_driver(tmp_path, capsys):
    f = tmp_path / 'in.html'
    f.write_text('<p a=1>hi &bogus; &#999;</p><!--c-->')
    sgmllib.test([str(f)])
    assert capsys.readouterr().out.splitlines() == [
        'start tag: <p a="1" >', "data: 'hi '",
        '*** unknown entity ref: &bogus;', "data: ' '",
        '*** unknown char ref: &#999;', 'end tag: </p>', "comment: 'c'"]
    sgmllib.test(['-s', str(f)])
    assert capsys.readouterr().out == ''


HTML = ('<!DOCTYPE html><html><!-- keep --><![if !mso]>'
        '<p class="a">x &amp; y &#169;</p><!x "a>b" y><br></html>')


@pytest.mark.parametrize('pieces', [1, 7, len(HTML)])
def test_sgmlfilter_passes_html_through(pieces):
    out = io.StringIO()
    f = mime.SGMLFilter(out)
    for i in range(0, len(HTML), pieces):
        f.write(HTML[i:i + pieces])
    f.close()
    assert out.getvalue() == HTML


def test_declaration_patterns():
    assert mime.declstringlit.match('"a>b"  x').group() == '"a>b"  '
    assert mime.declstringlit.match("'q' ").group(1) == "'q'"
    assert not mime.declstringlit.match('"open')
    assert mime.declname.match('DOCTYPE html').group() == 'DOCTYPE '


def test_script_filter():
    out = io.StringIO()
    f = mime.HTMLScriptFilter(out)
    f.write('<p>a</p><SCRIPT type="x">if (a<b) x = "&amp;";'
            '<!-- hide --></script><p>b</p>')
    f.close()
    assert f.modified
    assert out.getvalue() == '<p>a</p>' + f.msg + '<p>b</p>'
    # Nested and unclosed scripts: one notice for each outermost one.
    out = io.StringIO()
    f = mime.HTMLScriptFilter(out)
    f.write('<script><script>x</script>y</script>z<script>tail')
    f.close()
    assert out.getvalue() == f.msg + 'z' + f.msg
    out = io.StringIO()
    f = mime.HTMLScriptFilter(out)
    f.write('<p>clean</p>')
    f.close()
    assert not f.modified and out.getvalue() == '<p>clean</p>'
