"""A private Sendmail under one folder, listening on 127.0.0.1 only.

The binary is Debian's sendmail-bin unpacked into build/sendmail by
scripts/setup.d/60-sendmail.sh (never installed: that would remove
Postfix).  Layout under ROOT: sendmail.mc and sendmail.cf, queue/ (mode
700), etc/ (hosts, nsswitch.conf, service.switch, the empty files Sendmail
reads), log/.  One daemon listener per milter, each with its own
InputMailFilters, so one instance serves every milter under test; all mail
is relayed to the SMTP sink through the esmtp mailer.

Sendmail sleeps 60 s at start when the host name has no dot, and looks the
name up: it runs in a private UTS and mount namespace (unshare) under the
name HOSTNAME, with a hosts file and nsswitch.conf bind-mounted over
/etc's, so the machine's own files are never touched.
"""
import os
import re
import signal
import subprocess
import time

from harness import Client, Env, MilterProc, free_port
from sink import Sink

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SENDMAIL_DIR = os.environ.get('E2E_SENDMAIL_DIR',
                              os.path.join(REPO, 'build', 'sendmail'))
BINARY = os.path.join(SENDMAIL_DIR, 'usr', 'libexec', 'sendmail', 'sendmail')
CF_DIR = os.path.join(SENDMAIL_DIR, 'usr', 'share', 'sendmail', 'cf')
HOSTNAME = 'sm.e2e.pmcore.test'


def available():
    """None when the unpacked Sendmail is there, else what is missing."""
    if not os.access(BINARY, os.X_OK):
        return f'{BINARY} (scripts/setup.d/60-sendmail.sh unpacks it)'
    if not os.path.exists(os.path.join(CF_DIR, 'm4', 'cf.m4')):
        return f'{CF_DIR}/m4/cf.m4 (sendmail-cf)'
    return None


def sendmail_mc(root, relay_port, listeners):
    """The configuration: LISTENERS is {name: (port, milter_spec)}."""
    d = {'root': root, 'relay': relay_port}
    lines = ["""\
divert(-1)
# pmcore e2e: a Sendmail that relays everything to the test sink.
divert(0)dnl
VERSIONID(`pmcore e2e')dnl
OSTYPE(`linux')dnl
define(`QUEUE_DIR', `{root}/queue')dnl
define(`STATUS_FILE', `{root}/log/statistics')dnl
define(`ALIAS_FILE', `{root}/etc/aliases')dnl
define(`confPID_FILE', `{root}/sendmail.pid')dnl
define(`confDEAD_LETTER_DROP', `{root}/log/dead.letter')dnl
define(`confCW_FILE', `-o {root}/etc/local-host-names')dnl
define(`confCT_FILE', `-o {root}/etc/trusted-users')dnl
define(`confHELP_FILE', `{root}/etc/helpfile')dnl
define(`confSERVICE_SWITCH_FILE', `{root}/etc/service.switch')dnl
define(`confHOSTS_FILE', `{root}/etc/hosts')dnl
dnl The suite's folder is under /tmp (sticky, world-writable).
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl
define(`confTO_IDENT', `0s')dnl
dnl The machine is shared: never refuse or queue for its load average.
define(`confQUEUE_LA', `1000')dnl
define(`confREFUSE_LA', `1000')dnl
define(`confDELAY_LA', `0')dnl
define(`confMIN_FREE_BLOCKS', `0')dnl
define(`confMAX_RCPTS_PER_MESSAGE', `1000')dnl
define(`confBAD_RCPT_THROTTLE', `0')dnl
define(`confMILTER_LOG_LEVEL', `0')dnl
define(`SMART_HOST', `esmtp:[127.0.0.1]')dnl
define(`ESMTP_MAILER_ARGS', `TCP $h {relay}')dnl
dnl 8-bit data is relayed as it came, not converted.
define(`confEIGHT_BIT_HANDLING', `pass8')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`accept_unqualified_senders')dnl
FEATURE(`promiscuous_relay')dnl
""".format(**d)]
    for name, (port, spec) in sorted(listeners.items()):
        # MAIL_FILTER defines a filter without putting it in every
        # listener's list; InputMailFilters gives each listener its own.
        # F=T: a milter that is down tempfails the message.
        lines.append(
            f"DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name={name}, "
            f"InputMailFilters={_filter(name)}')dnl\n"
            f"MAIL_FILTER(`{_filter(name)}', `S={spec}, F=T, "
            f"T=C:10s;S:10s;R:30s;E:60s')dnl\n")
    lines.append("MAILER(`smtp')dnl\n")
    return ''.join(lines)


def _filter(name):
    """Filter names are words: c-unix becomes c_unix."""
    return re.sub(r'\W', '_', name)


class Sendmail:
    """Configure, start and stop the instance; read its queue."""

    def __init__(self, root, relay_port, listeners):
        self.root = root
        self.queue = os.path.join(root, 'queue')
        self.etc = os.path.join(root, 'etc')
        self.cf = os.path.join(root, 'sendmail.cf')
        self.logfile = os.path.join(root, 'log', 'sendmail.log')
        self.listeners = listeners
        self.relay_port = relay_port
        self.proc = None

    def write_config(self):
        for d in ('etc', 'log', 'queue'):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        os.chmod(self.queue, 0o700)
        files = {
            'hosts': f'127.0.0.1 {HOSTNAME} localhost\n',
            'nsswitch.conf': 'hosts: files\npasswd: files\ngroup: files\n',
            'service.switch': 'hosts files\naliases files\n',
            'aliases': '', 'local-host-names': '', 'trusted-users': '',
            'helpfile': '',
        }
        for name, text in files.items():
            with open(os.path.join(self.etc, name), 'w') as f:
                f.write(text)
        mc = sendmail_mc(self.root, self.relay_port, self.listeners)
        with open(os.path.join(self.root, 'sendmail.mc'), 'w') as f:
            f.write(mc)
        r = subprocess.run(['m4', f'-D_CF_DIR_={CF_DIR}/',
                            os.path.join(CF_DIR, 'm4', 'cf.m4'), '-'],
                           input=mc, capture_output=True, text=True,
                           timeout=60)
        # (stderr has promiscuous_relay's open-relay warning: it listens
        # on loopback only.)
        if r.returncode != 0 or 'ERROR' in r.stderr:
            raise RuntimeError(f'm4 failed:\n{r.stderr}')
        with open(self.cf, 'w') as f:
            f.write(r.stdout)

    def command(self):
        """Sendmail in the foreground, in its own namespaces (module doc).
        -X traces SMTP and mailer I/O into the log."""
        setup = (f'hostname {HOSTNAME} && '
                 f'mount --bind {self.etc}/hosts /etc/hosts && '
                 f'mount --bind {self.etc}/nsswitch.conf /etc/nsswitch.conf && '
                 f'exec "$0" "$@"')
        return ['unshare', '--uts', '--mount', 'sh', '-c', setup,
                BINARY, '-C', self.cf, '-bD', '-X', self.logfile]

    def start(self):
        self.write_config()
        log = open(os.path.join(self.root, 'log', 'sendmail.out'), 'ab')
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        self.wait_listening()

    def listening_ports(self):
        """TCP ports in LISTEN state on 127.0.0.1 (read from the kernel,
        not probed: a connect would start a milter session)."""
        ports = set()
        with open('/proc/net/tcp') as f:
            next(f)
            for line in f:
                local, state = line.split()[1], line.split()[3]
                addr, port = local.split(':')
                if state == '0A' and addr == '0100007F':
                    ports.add(int(port, 16))
        return ports

    def wait_listening(self, timeout=20):
        want = {port for port, _ in self.listeners.values()}
        end = time.monotonic() + timeout
        while not want <= self.listening_ports():
            if self.proc.poll() is not None:
                raise RuntimeError(f'sendmail exited ({self.proc.returncode}):'
                                   f'\n{self.log_tail()}')
            if time.monotonic() > end:
                raise RuntimeError(f'sendmail: not listening on {sorted(want)}'
                                   f'\n{self.log_tail()}')
            time.sleep(0.05)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        # Children that deliver or serve a session share its group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait()
        self.proc = None

    def log_tail(self, n=40):
        out = []
        for name in ('sendmail.out', 'sendmail.log'):
            try:
                with open(os.path.join(self.root, 'log', name),
                          errors='replace') as f:
                    out += [f'{name}: {l}' for l in f.readlines()[-n:]]
            except FileNotFoundError:
                pass
        return ''.join(out)

    def queue_file(self, prefix, qid):
        """The content of queue file PREFIX+QID (qf, df, hf...), or None."""
        try:
            with open(os.path.join(self.queue, prefix + qid), 'rb') as f:
                return f.read()
        except FileNotFoundError:
            return None

    def wait_queue_empty(self, qid, timeout=20):
        """Wait until QID's queue files are gone (delivered or discarded)."""
        end = time.monotonic() + timeout
        while any(n.endswith(qid) for n in os.listdir(self.queue)):
            if time.monotonic() > end:
                raise TimeoutError(f'sendmail: {qid} still queued: '
                                   f'{sorted(os.listdir(self.queue))}')
            time.sleep(0.05)


# The languages of the Sendmail suite: each milter and the transport that
# carries it (both transports are covered, and the C milter is the
# library's own server API).
SM_MILTERS = {'c': 'inet', 'perl': 'unix', 'python': 'inet'}


class SendmailClient(Client):
    """harness.Client with Sendmail's reply to the final dot:
    "250 2.0.0 QUEUEID Message accepted for delivery"."""

    QUEUED = r'([0-9A-Za-z]+) Message accepted'


class SendmailEnv(Env):
    """Sink, one milter per language and the Sendmail in front of them,
    under ROOT/ctl/sm-LANG and ROOT/sendmail (so run.sh's cleanup of a
    killed run finds the milters' and Sendmail's pid files).  harness.Env's
    start() and stop() run it, with the Sendmail as the MTA."""

    def __init__(self, root):
        # Not Env.__init__: that makes a Postfix and the Postfix suite's
        # milters; only the way the stack starts and stops is shared.
        self.root = root
        os.makedirs(os.path.join(root, 'log'), exist_ok=True)
        self.sink = Sink()
        self.milters = {lang: MilterProc(root, lang, t, name=f'sm-{lang}')
                        for lang, t in SM_MILTERS.items()}
        self.ports = {m.name: free_port() for m in self.milters.values()}
        self.sendmail = Sendmail(
            os.path.join(root, 'sendmail'), self.sink.port,
            {m.name: (self.ports[m.name], m.spec)
             for m in self.milters.values()})
        self.mta = self.sendmail

    def client(self, name, helo='client.e2e.test'):
        return SendmailClient(self, name, helo)
