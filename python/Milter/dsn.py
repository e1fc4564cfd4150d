"""Milter.dsn: send Delivery Status Notifications and do callback
validation (CBV) of senders (pymilter's API).

A DSN (bounce) goes to the envelope sender of a message with a null
reverse path (MAIL FROM:<>).  A CBV does the same conversation up to RCPT
and stops before DATA: whether the sender's MX accepts the address as a
recipient tells whether it exists.  Send these only to MAIL FROM
addresses, never to an address taken from a header.

Needs Milter.dns, hence dnspython (pip install pmcore-milter[dns]).
pymilter 1.0.5's module does not run on Python 3 (basestring, indexing
dict.values()); this one does, and gives reply texts as str.
"""
import smtplib
import time
from email.message import Message

import Milter
import Milter.dns as dns

__all__ = ['send_dsn', 'create_msg', 'Vars']


def _text(resp):
    return resp.decode('utf-8', 'replace') if isinstance(resp, bytes) \
        else resp


def _refused(recipients):
    """{address: (code, text)} of refused recipients; one refusal is
    given as its (code, text) alone."""
    bad = {r: (c, _text(t)) for r, (c, t) in recipients.items()}
    return next(iter(bad.values())) if len(bad) == 1 else bad


def _cbv(smtp, ourfrom, rcpts):
    """MAIL FROM and RCPT TO for each of rcpts, then QUIT."""
    code, resp = smtp.docmd('MAIL FROM: <%s>' % ourfrom)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, resp, '<%s>' % ourfrom)
    bad = {}
    for rcpt in rcpts:
        code, resp = smtp.rcpt(rcpt)
        if code not in (250, 251):
            bad[rcpt] = (code, resp)
    smtp.quit()
    return _refused(bad) if bad else None


def _deliver(smtp, receiver, rcpts, msg, ourfrom):
    """Send msg; an MX refusing the null sender of a DSN gets it from
    postmaster@receiver instead (at the risk of a mail loop)."""
    try:
        smtp.sendmail('<%s>' % ourfrom, rcpts, msg)
    except smtplib.SMTPSenderRefused:
        smtp.sendmail('<postmaster@%s>' % receiver, rcpts, msg)


def send_dsn(mailfrom, receiver, msg=None, timeout=600, session=None,
             ourfrom=''):
    """Send the DSN msg (RFC 5322 text) to mailfrom, or do a CBV of
    mailfrom when msg is None.

    mailfrom: the original sender (a list of addresses of one domain
    validates them all in one CBV); receiver: the HELO name to use, which
    should be the name of the address we send from; timeout: seconds to
    keep trying MXs; session: a Milter.dns.Session whose cache to use;
    ourfrom: the reverse path ('' for a real DSN or CBV).

    The MXs of the sender's domain are tried in preference order (the
    domain itself when it has none).  Returns None on success, (code,
    text) when the MX refused (or 450 when no MX could be reached or DNS
    failed), or {address: (code, text)} when several recipients of a CBV
    were refused.  An MX that greets with our own name (a spammer's MX
    pointing at us) or with no name gets 553."""
    rcpts = [mailfrom] if isinstance(mailfrom, str) else list(mailfrom)
    domain = rcpts[0].rsplit('@', 1)[1]
    session = session or dns.Session()
    try:
        mxlist = sorted(session.dns(domain, 'MX'))
    except dns.DNSError:
        return (450, 'DNS Timeout: %s MX' % domain)
    if not mxlist:
        mxlist = [(0, domain)]
    deadline = time.time() + timeout
    for _pref, host in mxlist:
        smtp = smtplib.SMTP(timeout=max(1.0, deadline - time.time()))
        try:
            smtp.connect(host)
            code, resp = smtp.helo(receiver)
            words = _text(resp).split()
            if not words:
                return (553, 'MX for %s has no hostname in banner: %s'
                        % (domain, host))
            if words[0] == receiver:
                return (553, 'Fraudulent MX for %s: %s' % (domain, host))
            if not 200 <= code <= 299:
                raise smtplib.SMTPHeloError(code, resp)
            if msg is None:
                return _cbv(smtp, ourfrom, rcpts)
            _deliver(smtp, receiver, rcpts, msg, ourfrom)
            smtp.quit()
            return None
        except smtplib.SMTPRecipientsRefused as x:
            return _refused(x.recipients)
        except smtplib.SMTPSenderRefused as x:
            return (x.smtp_code, _text(x.smtp_error))
        except smtplib.SMTPDataError as x:
            return (x.smtp_code, _text(x.smtp_error))
        except (smtplib.SMTPException, OSError):
            pass  # this MX failed: try the next one
        finally:
            smtp.close()
        if time.time() > deadline:
            return (450, 'No MX response within %f minutes'
                    % (timeout / 60.0))
    return (450, 'No MX servers available')


class Vars(object):
    """A plain object to hold create_msg's substitution values."""


def _from_query(q):
    """The substitution values of an spf.query-like object (one with
    perm_error), under create_msg's names."""
    v = Vars()
    try:
        v.heloname, v.sender, v.connectip = q.h, q.s, q.i
        v.receiver, v.sender_domain = q.r, q.o
        v.result, v.perm_error = q.result, q.perm_error
    except AttributeError:
        return q
    return v


def create_msg(v, rcptlist=None, origmsg=None, template=None):
    """Build a DSN (an email.message.Message) from template, or None when
    there is no template.

    template: header lines, a blank line, then the body, with
    '%(name)s' substitutions from v's attributes (v needs at least sender
    and receiver; an spf.query is translated to heloname, sender,
    connectip, receiver, sender_domain, result, perm_error).  rcptlist
    sets v.rcpt (one address a line); origmsg sets v.subject and
    v.spf_result from its Subject and Received-SPF.  To, From
    (postmaster@receiver) and Auto-Submitted: auto-generated are added
    when the template has none."""
    if not template:
        return None
    if hasattr(v, 'perm_error'):
        v = _from_query(v)
    if rcptlist:
        v.rcpt = '\n\t'.join(rcptlist)
    if origmsg:
        try:
            v.subject = origmsg['Subject']
        except Exception:
            v.subject = '(none)'
        try:
            v.spf_result = origmsg['Received-SPF']
        except Exception:
            v.spf_result = None
    subst = v.__dict__
    msg = Message()
    msg.add_header('X-Mailer', 'PyMilter-' + Milter.__version__)
    msg.set_type('text/plain')
    head, body = template.split('\n\n', 1)
    for line in head.splitlines():
        name, value = line.split(':', 1)
        msg.add_header(name, (value % subst).strip())
    msg.set_payload(body % subst)
    for name, value in (('To', v.sender),
                        ('From', 'postmaster@%s' % v.receiver),
                        ('Auto-Submitted', 'auto-generated')):
        if name not in msg:
            msg.add_header(name, value)
    return msg
