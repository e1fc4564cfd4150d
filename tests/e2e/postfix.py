"""A private Postfix instance under one folder, listening on 127.0.0.1 only.

Layout under ROOT: conf/ (main.cf, master.cf, maps), queue/, data/,
log/maillog, mail/ (maildirs of the virtual domain box.test).  Mail for
box.test is delivered by virtual(8), which writes Return-Path:, into
mail/<local part>/; every other domain is relayed to the SMTP sink.
Each smtpd listener gets its own smtpd_milters, so one instance serves
every milter under test.  Nothing runs chrooted: the milters' unix
sockets live under ROOT and Postfix must reach them by their real paths.
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time

HOSTNAME = 'e2e.pmcore.test'
BOX_DOMAIN = 'box.test'
# postfix and postcat live in /usr/sbin, which a user's PATH may lack.
os.environ['PATH'] = os.environ.get('PATH', '/usr/bin:/bin') + ':/usr/sbin:/sbin'
# The mailboxes of box.test (virtual(8) refuses regexp maps with $1).
BOXES = ('rp', 'demo', 'one', 'two')
# Daemons Postfix needs for SMTP in, relay out and virtual delivery, none
# chrooted (the fifth column); postlog writes log/maillog.
MASTER_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def main_cf(root, relay_port, nobody):
    return f"""\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/log/maillog
maillog_file_prefixes = {root}/log
myhostname = {HOSTNAME}
mydomain = pmcore.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_banner = $myhostname ESMTP
# Refusals are what the suite provokes: no penalty sleeps for them.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
in_flow_delay = 0
smtpd_recipient_limit = 1000
alias_maps =
alias_database =
local_transport = error:5.1.1 no local delivery in the e2e instance
relayhost = [127.0.0.1]:{relay_port}
smtp_dns_support_level = disabled
# One relay transaction per message, whatever the number of recipients.
smtp_destination_recipient_limit = 1000
smtp_line_length_limit = 0
disable_mime_output_conversion = yes
virtual_mailbox_domains = {BOX_DOMAIN}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/conf/vmailbox
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
milter_default_action = tempfail
milter_protocol = 6
biff = no
delay_warning_time = 0
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
"""


class Postfix:
    """Configure, start and stop the instance; read its log and hold queue."""

    def __init__(self, root, relay_port, listeners):
        """listeners: {name: (port, milter_spec)} -- one smtpd each."""
        self.root = root
        self.conf = os.path.join(root, 'conf')
        self.queue = os.path.join(root, 'queue')
        self.maillog = os.path.join(root, 'log', 'maillog')
        self.listeners = listeners
        self.relay_port = relay_port
        self.started = False

    def write_config(self):
        nobody = pwd.getpwnam('nobody')
        for d in ('conf', 'queue', 'data', 'log', 'mail'):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        # Postfix's daemons run as user postfix and look up paths below root.
        os.chmod(self.root, 0o755)
        os.chown(os.path.join(self.root, 'mail'), nobody.pw_uid, nobody.pw_gid)
        os.chmod(os.path.join(self.root, 'mail'), 0o700)
        postfix = pwd.getpwnam('postfix')
        os.chown(os.path.join(self.root, 'data'), postfix.pw_uid, postfix.pw_gid)
        with open(os.path.join(self.conf, 'main.cf'), 'w') as f:
            f.write(main_cf(self.root, self.relay_port, nobody))
        with open(os.path.join(self.conf, 'vmailbox'), 'w') as f:
            # A trailing slash asks virtual(8) for a maildir.
            f.writelines(f'{b}@{BOX_DOMAIN} {b}/\n' for b in BOXES)
        lines = [MASTER_SERVICES]
        for name, (port, milter) in sorted(self.listeners.items()):
            lines.append(f'127.0.0.1:{port} inet n - n - - smtpd\n'
                         f'  -o smtpd_milters={milter}\n'
                         f'  -o milter_macro_daemon_name={name}\n'
                         f'  -o syslog_name=postfix/{name}\n')
        with open(os.path.join(self.conf, 'master.cf'), 'w') as f:
            f.write(''.join(lines))

    def run(self, *args, check=True):
        return subprocess.run(['postfix', '-c', self.conf, *args], check=check,
                              capture_output=True, text=True, timeout=60)

    def start(self):
        self.write_config()
        r = self.run('start', check=False)
        if r.returncode != 0:
            raise RuntimeError(f'postfix start failed:\n{r.stdout}{r.stderr}'
                               f'{self.log_tail()}')
        self.started = True
        self.wait_listening()

    def wait_listening(self, timeout=15):
        end = time.monotonic() + timeout
        for port, _ in self.listeners.values():
            while True:
                try:
                    socket.create_connection(('127.0.0.1', port), 1).close()
                    break
                except OSError:
                    if time.monotonic() > end:
                        raise RuntimeError(f'postfix: nothing on port {port}\n'
                                           f'{self.log_tail()}')
                    time.sleep(0.05)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, 'pid', 'master.pid')) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        """Stop the instance; kill what is left after a grace period."""
        if not os.path.exists(os.path.join(self.conf, 'main.cf')):
            return
        pid = self.master_pid()
        self.run('stop', check=False)
        end = time.monotonic() + 10
        while pid and _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        if pid and _alive(pid):
            self.run('abort', check=False)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.started = False

    def log(self):
        try:
            with open(self.maillog, encoding='utf-8', errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def log_tail(self, n=40):
        return '\n'.join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, timeout=20):
        """The first match of regex PATTERN in the mail log (waits for it)."""
        rx = re.compile(pattern, re.M)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.log())
            if m:
                return m
            if time.monotonic() > end:
                raise TimeoutError(f'maillog: no {pattern!r}\n{self.log_tail(15)}')
            time.sleep(0.05)

    def wait_removed(self, qid, timeout=20):
        """Wait until every recipient of QID was handled (queue file gone)."""
        return self.wait_log(rf'\b{qid}: removed$', timeout)

    def held(self, qid):
        """True if QID sits in the hold queue."""
        return os.path.exists(os.path.join(self.queue, 'hold', qid))

    def postcat(self, qid):
        r = subprocess.run(['postcat', '-c', self.conf, '-bh', '-q', qid],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode(errors='replace'))
        return r.stdout

    def maildir_messages(self, local):
        """Messages delivered to LOCAL@box.test, oldest first, as bytes."""
        new = os.path.join(self.root, 'mail', local, 'new')
        try:
            names = sorted(os.listdir(new))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            with open(os.path.join(new, n), 'rb') as f:
                out.append(f.read())
        return out

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
