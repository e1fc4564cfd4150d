"""Published milters, unchanged, on pmcore behind Postfix and Sendmail
(published.py): pymilter's sample.py, dkimpy-milter, spf-engine's
pyspf-milter, and a Mail::Milter chain.  Each test runs once per MTA and
asserts the milter's effect on the message as delivered, or the refusal
the client sees."""
import os
import sys

import pytest

from harness import RawSMTP, header_values, message, split_message
from published import (AUTHSERV_ID, DKIM_DOMAIN, DKIM_SELECTOR, PY_DIR,
                       Front, PublishedEnv, available)


@pytest.fixture(scope='module')
def pub():
    missing = available()
    if missing:
        if os.environ.get('CI'):
            pytest.fail(f'published milters cannot run: needs {missing}')
        pytest.skip(f'needs {missing}')
    root = os.environ.get('E2E_ROOT')
    if not root:
        pytest.skip('run through tests/e2e/run.sh (E2E_ROOT)')
    e = PublishedEnv(os.path.join(root, 'published'))
    try:
        e.start()
        yield e
    finally:
        e.stop()


@pytest.fixture(params=['postfix', 'sendmail'])
def mta(request, pub):
    if request.param == 'sendmail' and pub.sendmail is None:
        from sendmail import available as sendmail_missing
        if os.environ.get('CI'):
            pytest.fail(f'needs {sendmail_missing()}')
        pytest.skip(f'needs {sendmail_missing()}')
    return Front(pub, request.param)


def relay(mta, name, msg, sender='sender@sink.test', rcpts=('one@sink.test',)):
    with mta.client(name) as c:
        qid = c.send(sender, list(rcpts), msg)
    return mta.delivered(qid)


def refused(mta, name, msg, helo='client.e2e.test'):
    """The replies to EHLO, MAIL and the message's final dot (None for the
    commands not sent after a refusal)."""
    with mta.raw(name) as s:
        ehlo = s.cmd(f'EHLO {helo}')
        if not ehlo[-1].startswith('250 '):
            return ehlo, None, None
        mail = s.cmd('MAIL FROM:<sender@sink.test>')
        if not mail[0].startswith('250'):
            return ehlo, mail, None
        assert s.cmd('RCPT TO:<one@sink.test>')[0].startswith('250 ')
        return ehlo, mail, s.data(msg)


def attachment_message(filename, payload_b64):
    return (b'From: sender@sink.test\r\nTo: one@sink.test\r\n'
            b'Subject: with attachment\r\nMIME-Version: 1.0\r\n'
            b'Content-Type: multipart/mixed; boundary="BOUND"\r\n\r\n'
            b'--BOUND\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n'
            b'--BOUND\r\nContent-Type: application/octet-stream; name="'
            + filename + b'"\r\nContent-Transfer-Encoding: base64\r\n'
            b'Content-Disposition: attachment; filename="' + filename
            + b'"\r\n\r\n' + payload_b64 + b'\r\n--BOUND--\r\n')


# --- pymilter 1.0.5 sample.py ------------------------------------------------

def test_sample_rejects_spam_subject(mta):
    _, _, reply = refused(mta, 'pymilter-sample',
                          message([('X-Mailer', 'test')]).replace(
                              b'Subject: e2e test', b'Subject: FREE money'))
    # REJECT without a text: each MTA's own words.
    assert reply == {'postfix': ['550 5.7.1 Command rejected'],
                     'sendmail': ['554 5.7.1 Command rejected']}[mta.mta], reply


def test_sample_defangs_windows_attachment(mta):
    payload = b'TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAA='
    tx = relay(mta, 'pymilter-sample',
               attachment_message(b'invoice.exe', payload))
    _, body = split_message(tx.data)
    # The executable is gone, replaced by mime.defang's notice named
    # WARNING.TXT; the text part stays.
    assert payload not in body
    assert b'see attached' in body
    assert b'Content-Type: text/plain; name=WARNING.TXT\r\n' in body, body
    assert (b"This message appeared to contain a virus.\r\n"
            b"It was originally named 'invoice.exe', and has been removed."
            in body), body


def test_sample_passes_clean_message(mta):
    tx = relay(mta, 'pymilter-sample', message(body=b'hello\r\n'))
    headers, body = split_message(tx.data)
    assert body == b'hello\r\n'
    assert header_values(headers, 'Subject') == [b'e2e test']


# --- dkimpy-milter 1.2.3 -----------------------------------------------------

def test_dkimpy_signs(pub, mta):
    tx = relay(mta, 'dkimpy-milter', message(body=b'signed body\r\n'))
    headers, _ = split_message(tx.data)
    sig = header_values(headers, 'DKIM-Signature')
    assert len(sig) == 1, headers
    fields = dict(f.strip().split('=', 1) for f in
                  b''.join(sig[0].split()).decode().split(';') if f.strip())
    assert fields['d'] == DKIM_DOMAIN and fields['s'] == DKIM_SELECTOR
    # The signature verifies against the milter's key, as a receiver that
    # finds it in DNS would check it (dkimpy, from the same install).
    sys.path.insert(0, PY_DIR)
    try:
        import dkim
    finally:
        sys.path.remove(PY_DIR)
    txt = pub.milters['dkimpy-milter'].dns_txt
    name = f'{DKIM_SELECTOR}._domainkey.{DKIM_DOMAIN}.'.encode()
    lookups = []

    def dnsfunc(n, timeout=5):
        lookups.append(n)
        return txt if n == name else None
    assert dkim.verify(tx.data, dnsfunc=dnsfunc)
    assert lookups == [name]
    # ... and fails once the body is changed.
    assert not dkim.verify(tx.data.replace(b'signed body', b'changed body'),
                           dnsfunc=dnsfunc)


# --- spf-engine 3.1.0 pyspf-milter ---------------------------------------------

def test_pyspf_milter_adds_authentication_results(mta):
    tx = relay(mta, 'pyspf-milter', message())
    headers, _ = split_message(tx.data)
    # Inserted at index 0: above the MTA's own Received:.
    assert headers[0][0] == 'Authentication-Results', headers
    value = b' '.join(headers[0][1].split()).decode()
    assert value.startswith(f'{AUTHSERV_ID}; none'), value
    # (helo= is the client's name as the MTA hands it to connect.)
    for part in ('SPF check N/A for local connections', 'client-ip=127.0.0.1',
                 'envelope-from=sender@sink.test', 'receiver=<UNKNOWN>'):
        assert part in value, value


# --- Mail::Milter 0.07 chain on Sendmail::PMilter ----------------------------

def test_mail_milter_chain_rejects_unqualified_helo(mta):
    text = ('554 5.7.1 HELO/EHLO nodots: command rejected: '
            'domain name not qualified')
    ehlo, mail, _ = refused(mta, 'mail-milter-chain', message(), helo='nodots')
    # Both MTAs accept the EHLO and give the milter's refusal at MAIL.
    assert ehlo[-1].startswith('250 '), ehlo
    assert mail == [text], mail


def test_mail_milter_chain_rejects_by_header(mta):
    _, _, reply = refused(mta, 'mail-milter-chain', message().replace(
        b'Subject: e2e test', b'Subject: buy cheap pills now'))
    assert reply == ['554 5.7.1 Spam detected in Subject'], reply


def test_mail_milter_chain_rejects_missing_from(mta):
    _, _, reply = refused(mta, 'mail-milter-chain',
                          message().replace(b'From: sender@sink.test\r\n', b''))
    if mta.mta == 'postfix':
        # Postfix adds a missing From: for clients on its own interfaces
        # before the milter sees the headers: the message passes.
        assert reply[-1].startswith('250 '), reply
    else:
        assert reply == ['554 5.7.1 Mandatory From: header missing from '
                         'message'], reply


def test_mail_milter_chain_passes_clean_message(mta):
    tx = relay(mta, 'mail-milter-chain', message(body=b'fine\r\n'))
    assert split_message(tx.data)[1] == b'fine\r\n'
