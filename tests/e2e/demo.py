"""`make demo-postfix`: the sample Perl and Python milters behind the
private Postfix of the end-to-end suite.  One message goes through each
sample; the SMTP dialogue and the message as delivered are printed.

    demo.py PERL_SAMPLE PYTHON_SAMPLE

Each sample is started as `SAMPLE inet:PORT@127.0.0.1`.  Everything runs
under a temporary folder and is stopped and removed at the end.
"""
import os
import shutil
import sys
import tempfile

from harness import Env, MilterProc, RawSMTP, queue_id
from postfix import BOX_DOMAIN


def say(reply):
    for line in reply:
        print('S:', line)


def show(env, name, m):
    print(f'==== {m.script} ({m.lang}) on {m.spec}, '
          f'Postfix smtpd 127.0.0.1:{env.ports[name]}')
    rcpt = f'demo@{BOX_DOMAIN}'
    msg = (f'From: sender@sink.test\r\nTo: {rcpt}\r\n'
           f'Subject: pmcore demo through {m.lang}\r\n\r\n'
           'Hello from the pmcore demo.\r\n').encode()
    before = len(env.postfix.maildir_messages('demo'))
    with RawSMTP(env, name) as s:
        say(s.greeting)
        for line in ('EHLO client.demo.test', 'MAIL FROM:<sender@sink.test>',
                     f'RCPT TO:<{rcpt}>'):
            print('C:', line)
            say(s.cmd(line))
        print('C: DATA, the message, "."')
        reply = s.data(msg)
        say(reply)
    env.postfix.wait_removed(queue_id(reply))
    delivered = env.postfix.maildir_messages('demo')[before]
    print(f'---- delivered to {rcpt} (virtual(8) maildir):')
    print(delivered.decode('utf-8', 'replace'))


def main(argv):
    perl_sample, py_sample = argv[1], argv[2]
    if os.geteuid() != 0 or not shutil.which('postfix'):
        sys.exit('demo-postfix: needs root and Debian\'s postfix '
                 '(./scripts/setup.sh installs it)')
    root = tempfile.mkdtemp(prefix='pmcore-demo-', dir='/tmp')
    milters = {
        'perl-sample': MilterProc(root, 'perl', 'inet', script=perl_sample,
                                  name='perl-sample'),
        'python-sample': MilterProc(root, 'python', 'inet', script=py_sample,
                                    name='python-sample'),
    }
    env = Env(root, milters)
    try:
        env.start()
        for name, m in milters.items():
            show(env, name, m)
    finally:
        try:
            env.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main(sys.argv)
