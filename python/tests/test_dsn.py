"""Milter.dsn: callback validation and DSNs against SMTP servers on
127.0.0.1 (MX host names are mapped to their ports), and create_msg."""
import email
import smtplib

import pytest

import Milter
import Milter.dns
import Milter.dsn as dsn
from fakesmtp import FakeSMTP


class Session(object):
    """Milter.dns.Session's interface with fixed MX answers."""

    def __init__(self, mx, fail=False):
        self.mx, self.fail, self.asked = mx, fail, []

    def dns(self, name, qtype):
        self.asked.append((name, qtype))
        if self.fail:
            raise Milter.dns.DNSError('timed out')
        return list(self.mx)


@pytest.fixture
def mxs(monkeypatch):
    """host name -> FakeSMTP; smtplib connects to a host's server, and
    to nothing for any other host."""
    servers = {}

    class SMTP(smtplib.SMTP):
        def connect(self, host='localhost', port=0, source_address=None):
            if host not in servers:
                raise ConnectionRefusedError(111, 'Connection refused')
            return super().connect('127.0.0.1', servers[host].port)
    monkeypatch.setattr(smtplib, 'SMTP', SMTP)
    yield servers
    for srv in servers.values():
        srv.close()


def test_cbv_accepted(mxs):
    mxs['mx1.example.com'] = srv = FakeSMTP()
    s = Session([(20, 'mx2.example.com'), (10, 'mx1.example.com')])
    assert dsn.send_dsn('user@example.com', 'relay.example.org',
                        session=s) is None
    assert s.asked == [('example.com', 'MX')]
    assert srv.commands == ['HELO relay.example.org', 'MAIL FROM: <>',
                            'RCPT TO:<user@example.com>', 'QUIT']


def test_cbv_refused_recipients(mxs):
    mxs['mx.example.com'] = FakeSMTP(replies={
        'RCPT TO:<gone@': '550 5.1.1 no such user',
        'RCPT TO:<full@': '452 4.2.2 mailbox full'})
    s = Session([(10, 'mx.example.com')])
    assert dsn.send_dsn('gone@example.com', 'relay.example.org',
                        session=s) == (550, '5.1.1 no such user')
    got = dsn.send_dsn(['gone@example.com', 'ok@example.com',
                        'full@example.com'], 'relay.example.org', session=s,
                       ourfrom='checker@example.org')
    assert got == {'gone@example.com': (550, '5.1.1 no such user'),
                   'full@example.com': (452, '4.2.2 mailbox full')}
    assert 'MAIL FROM: <checker@example.org>' in mxs['mx.example.com'].commands


def test_cbv_mail_from_refused(mxs):
    mxs['mx.example.com'] = FakeSMTP(replies={
        'MAIL FROM': '553 5.7.1 no bounces here'})
    assert dsn.send_dsn('u@example.com', 'relay.example.org',
                        session=Session([(10, 'mx.example.com')])) == \
        (553, '5.7.1 no bounces here')


def test_unreachable_and_bad_mxs(mxs):
    mxs['mx2.example.com'] = srv = FakeSMTP()
    # The first MX refuses the connection: the second one answers.
    s = Session([(10, 'mx1.example.com'), (20, 'mx2.example.com')])
    assert dsn.send_dsn('u@example.com', 'relay.example.org',
                        session=s) is None
    assert srv.commands[0] == 'HELO relay.example.org'
    assert dsn.send_dsn('u@example.com', 'relay.example.org',
                        session=Session([(10, 'nowhere.example.com')])) == \
        (450, 'No MX servers available')
    # A greeting with our own name: an MX pointing back at us.
    mxs['self.example.com'] = FakeSMTP(name='relay.example.org')
    assert dsn.send_dsn('u@example.com', 'relay.example.org',
                        session=Session([(10, 'self.example.com')])) == \
        (553, 'Fraudulent MX for example.com: self.example.com')
    # No MX records: the domain itself is tried.
    mxs['example.com'] = FakeSMTP()
    assert dsn.send_dsn('u@example.com', 'relay.example.org',
                        session=Session([])) is None
    assert dsn.send_dsn('u@example.com', 'relay.example.org',
                        session=Session([], fail=True)) == \
        (450, 'DNS Timeout: example.com MX')


def test_dsn_delivery(mxs):
    mxs['mx.example.com'] = srv = FakeSMTP()
    msg = 'Subject: returned mail\r\n\r\nYour message was quarantined.\r\n'
    assert dsn.send_dsn('u@example.com', 'relay.example.org', msg,
                        session=Session([(10, 'mx.example.com')])) is None
    assert 'MAIL FROM:<>' in srv.commands
    assert b'Your message was quarantined.' in srv.messages[0]
    # An MX that refuses the null sender gets postmaster@receiver.
    mxs['picky.example.com'] = picky = FakeSMTP(replies={
        'MAIL FROM:<>': '550 5.7.1 we do not take bounces'})
    assert dsn.send_dsn('u@example.com', 'relay.example.org', msg,
                        session=Session([(10, 'picky.example.com')])) is None
    assert 'MAIL FROM:<postmaster@relay.example.org>' in picky.commands
    assert len(picky.messages) == 1
    mxs['nodata.example.com'] = FakeSMTP(replies={'DATA': '554 5.6.0 no'})
    assert dsn.send_dsn('u@example.com', 'relay.example.org', msg,
                        session=Session([(10, 'nodata.example.com')])) == \
        (554, '5.6.0 no')


TEMPLATE = """To: %(sender)s
Subject: Undeliverable: %(subject)s

Your mail from %(connectip)s to
\t%(rcpt)s
was not delivered (SPF %(result)s).
"""


def test_create_msg_from_spf_query():
    class Query(object):      # the attributes of an spf.query
        h, s, i, r, o = ('helo.example.com', 'bob@example.com', '192.0.2.3',
                         'relay.example.org', 'example.com')
        result, perm_error = 'softfail', None
    orig = email.message_from_string('Subject: hello\n\nbody\n')
    msg = dsn.create_msg(Query(), ['a@example.org', 'b@example.org'], orig,
                         TEMPLATE)
    assert msg['To'] == 'bob@example.com'
    assert msg['From'] == 'postmaster@relay.example.org'
    assert msg['Subject'] == 'Undeliverable: hello'
    assert msg['Auto-Submitted'] == 'auto-generated'
    assert msg['X-Mailer'] == 'PyMilter-' + Milter.__version__
    assert msg.get_content_type() == 'text/plain'
    assert msg.get_payload() == (
        'Your mail from 192.0.2.3 to\n\ta@example.org\n\tb@example.org\n'
        'was not delivered (SPF softfail).\n')


def test_create_msg_plain_object():
    v = dsn.Vars()
    v.sender, v.receiver = 'x@example.com', 'mx.example.org'
    msg = dsn.create_msg(v, template='From: me@example.org\n\nHi %(sender)s')
    assert msg['From'] == 'me@example.org' and msg['To'] == 'x@example.com'
    assert msg.get_payload() == 'Hi x@example.com'
    assert dsn.create_msg(v) is None
