package Sendmail::PMilter;

# The Sendmail::PMilter 1.27/1.28 API over libpmcore.  This file keeps the
# milter object, the constants and export lists, and the sendmail.cf
# helpers; the dispatchers are in Sendmail::PMilter::Dispatch, the per
# connection object in Sendmail::PMilter::Context.  Everything that touches
# the wire is the C engine's.

use 5.014;    # as 1.27: byte semantics, no unicode_strings
use strict;
use warnings;
use parent 'Exporter';
use Carp;
use Errno ();
use Symbol ();

our $VERSION = '1.29';
our $DEBUG = 0;
our $enable_chgfrom = 0;    # kept from 1.27, unused there as well

require XSLoader;
XSLoader::load('Sendmail::PMilter', $VERSION);

use constant {
    SMFIS_CONTINUE => 100, SMFIS_REJECT => 101, SMFIS_DISCARD => 102,
    SMFIS_ACCEPT   => 103, SMFIS_TEMPFAIL => 104, SMFIS_MSG_LOOP => 105,
    SMFIS_ALL_OPTS => 110,
    # New: libmilter's NOREPLY (7) and SKIP (8), plus 100 like the others.
    SMFIS_NOREPLY => 107, SMFIS_SKIP => 108,

    SMFIM_CONNECT => 0, SMFIM_HELO => 1, SMFIM_ENVFROM => 2,
    SMFIM_ENVRCPT => 3, SMFIM_DATA => 4, SMFIM_EOM => 5, SMFIM_EOH => 6,

    SMFIP_NOCONNECT => 0x1, SMFIP_NOHELO => 0x2, SMFIP_NOMAIL => 0x4,
    SMFIP_NORCPT => 0x8, SMFIP_NOBODY => 0x10, SMFIP_NOHDRS => 0x20,
    SMFIP_NOEOH => 0x40, SMFIP_NR_HDR => 0x80, SMFIP_NOHREPL => 0x80,
    SMFIP_NOUNKNOWN => 0x100, SMFIP_NODATA => 0x200, SMFIP_SKIP => 0x400,
    SMFIP_RCPT_REJ => 0x800, SMFIP_NR_CONN => 0x1000,
    SMFIP_NR_HELO => 0x2000, SMFIP_NR_MAIL => 0x4000,
    SMFIP_NR_RCPT => 0x8000, SMFIP_NR_DATA => 0x10000,
    SMFIP_NR_UNKN => 0x20000, SMFIP_NR_EOH => 0x40000,
    SMFIP_NR_BODY => 0x80000, SMFIP_HDR_LEADSPC => 0x100000,
    SMFIP_MDS_256K => 0x10000000, SMFIP_MDS_1M => 0x20000000,

    SMFI_V2_PROT => 0x7F, SMFI_V6_PROT => 0x1FFFFF,
    SMFI_CURR_PROT => 0x1FFFFF,

    SMFIF_NONE => 0x0, SMFIF_ADDHDRS => 0x1, SMFIF_CHGBODY => 0x2,
    SMFIF_MODBODY => 0x2, SMFIF_ADDRCPT => 0x4, SMFIF_DELRCPT => 0x8,
    SMFIF_CHGHDRS => 0x10, SMFIF_QUARANTINE => 0x20, SMFIF_CHGFROM => 0x40,
    SMFIF_ADDRCPT_PAR => 0x80, SMFIF_SETSYMLIST => 0x100,

    SMFI_V1_ACTS => 0xF, SMFI_V2_ACTS => 0x3F, SMFI_V6_ACTS => 0x1FF,
    SMFI_CURR_ACTS => 0x1FF,

    MAXREPLYLEN => 980, MAXREPLIES => 32,
};
use constant SMFIP_ALL_NO_CB    => 0x10077F;
use constant SMFIP_ALL_NO_REPLY => 0xFF080;
# A Perl complement, as in 1.27: its value depends on the IV size.
use constant SMFIP_DEFAULTS => ~(SMFIP_ALL_NO_CB | SMFIP_ALL_NO_REPLY);

our @smflags = qw(
    SMFIS_CONTINUE SMFIS_REJECT SMFIS_DISCARD SMFIS_ACCEPT SMFIS_TEMPFAIL
    SMFIS_MSG_LOOP SMFIS_ALL_OPTS
    SMFIM_CONNECT SMFIM_HELO SMFIM_ENVFROM SMFIM_ENVRCPT SMFIM_DATA
    SMFIM_EOM SMFIM_EOH
    SMFIP_NOCONNECT SMFIP_NOHELO SMFIP_NOMAIL SMFIP_NORCPT SMFIP_NOBODY
    SMFIP_NOHDRS SMFIP_NOEOH SMFIP_NR_HDR SMFIP_NOUNKNOWN SMFIP_NODATA
    SMFIP_SKIP SMFIP_RCPT_REJ SMFIP_NR_CONN SMFIP_NR_HELO SMFIP_NR_MAIL
    SMFIP_NR_RCPT SMFIP_NR_DATA SMFIP_NR_UNKN SMFIP_NR_EOH SMFIP_NR_BODY
    SMFIP_HDR_LEADSPC SMFIP_MDS_256K SMFIP_MDS_1M SMFIP_DEFAULTS
    SMFIF_NONE SMFIF_ADDHDRS SMFIF_CHGBODY SMFIF_ADDRCPT SMFIF_DELRCPT
    SMFIF_CHGHDRS SMFIF_QUARANTINE SMFIF_CHGFROM SMFIF_ADDRCPT_PAR
    SMFIF_SETSYMLIST
    SMFI_V2_ACTS SMFI_V6_ACTS SMFI_CURR_ACTS
    SMFI_V2_PROT SMFI_V6_PROT SMFI_CURR_PROT
    MAXREPLYLEN MAXREPLIES
);
our @dispatchers = qw(ithread_dispatcher postfork_dispatcher
                      prefork_dispatcher sequential_dispatcher);
my @callback_names = qw(negotiate connect helo envfrom envrcpt data header
                        eoh body eom close abort unknown);
our %DEFAULT_CALLBACKS = map { $_ => "${_}_callback" } @callback_names;
# Additions of this implementation, exportable on request only.
our @extensions = qw(SMFIS_NOREPLY SMFIS_SKIP);

our @EXPORT = ();
our @EXPORT_OK = (@smflags, @dispatchers, values %DEFAULT_CALLBACKS,
                  @extensions);
our %EXPORT_TAGS = (
    all         => [@smflags],
    dispatchers => [@dispatchers],
    callbacks   => [values %DEFAULT_CALLBACKS],
    extensions  => [@extensions],
);

# The in-process MTA of the tests holds C pointers: never copy it into a
# new ithread.
sub Sendmail::PMilter::_Pipe::CLONE_SKIP { 1 }

require Sendmail::PMilter::Dispatch;
require Sendmail::PMilter::Config;

sub new ($) {
    my $class = shift;
    return bless {}, ref($class) || $class;
}

# FLAGS: a number (1.27: the capability list checked by the Context's
# modification methods; the negotiation copies 1.27) or a hashref
# { action_flags, protocol_flags, ... }: the engine negotiates from the
# registered callbacks, the actions and the protocol flags (NR_*, SKIP).
sub register ($$$;$) {
    my ($this, $name, $cb, $flags) = @_;
    carp 'register: no name supplied' unless defined $name;
    carp 'register: passed ref as name argument' if ref $name;
    croak 'register: callbacks is undef' unless defined $cb;
    croak 'register: callbacks not hash ref' unless UNIVERSAL::isa($cb, 'HASH');

    my $pkg = caller;
    my %cb = %$cb;
    for my $key (@callback_names) {
        next unless defined $cb{$key} && ref $cb{$key} ne 'CODE';
        my $glob = Symbol::qualify_to_ref($cb{$key}, $pkg);
        if (defined *{$glob}{CODE}) { $cb{$key} = *{$glob}{CODE} }
        else                        { delete $cb{$key} }
    }
    my %engine = (compat => 1);
    if (ref $flags eq 'HASH') {
        %engine = (compat => 0, %$flags);
        $engine{actions}  = delete $engine{action_flags} // 0;
        $engine{protocol} = delete $engine{protocol_flags} // 0;
        # Timeouts for connections served through a user dispatcher.
        for my $t (qw(read_timeout idle_timeout)) {
            my $s = delete $engine{$t};
            $engine{"${t}_ms"} = int(1000 * $s) if defined $s;
        }
        $flags = $engine{actions};
    }
    $this->{name} = $name;
    $this->{callbacks} = \%cb;
    $this->{callback_flags} = $flags || 0;
    $this->{'milter protocol version'} = (($flags || 0) & ~0x3F) ? 6 : 2;
    $this->{pmcore} = \%engine;
    delete $this->{_engine_options};
    return 1;
}

# New: the verdict the MTA gets when a callback dies or returns a value
# that is not a verdict (default SMFIS_TEMPFAIL).
sub set_die_reply {
    my ($this, $code) = @_;
    croak 'set_die_reply: not one of SMFIS_CONTINUE .. SMFIS_TEMPFAIL'
        unless defined $code && $code =~ /^10[0-4]$/;
    $this->{die_reply} = $code;
    delete $this->{_engine_options};
    return 1;
}

# New: log sink, called as LOG->($level, $message) (syslog levels); the
# default is warn with a prefix.  set_log('syslog', %opts) logs through
# Sys::Syslog.  Errors of callbacks and of connections go there.
sub set_log {
    my ($this, $log, %opts) = @_;
    $log = _syslog_sink($this, %opts) if defined $log && $log eq 'syslog';
    croak 'set_log: not a code ref' if defined $log && ref $log ne 'CODE';
    $this->{log} = $log;
    delete $this->{_engine_options};
    return 1;
}

# New: the running server's counters in Prometheus's text format
# (docs/metrics.md), or undef when no server runs in this process.  Also
# served over HTTP, with no code, when PMCORE_METRICS=inet:PORT@ADDR is
# set.
sub metrics_text { return _metrics_text() }

my @syslog_priority = qw(emerg alert crit err warning notice info debug);

sub _syslog_sink {
    my ($this, %opts) = @_;
    require Sys::Syslog;
    my $ident = $opts{ident} // $this->{name} // 'pmilter';
    my $facility = $opts{facility} // 'mail';
    Sys::Syslog::setlogsock($opts{logsock}) if $opts{logsock};
    Sys::Syslog::openlog($ident, 'pid,ndelay', $facility)
        or croak "set_log: syslog: cannot open the log: $!";
    return sub {
        my ($level, $msg) = @_;
        $msg =~ s/\n\z//;
        Sys::Syslog::syslog($syslog_priority[$level] // 'info', '%s', $msg);
    };
}

sub set_socket ($$) {
    my ($this, $socket) = @_;
    croak 'set_socket: socket already bound' if defined $this->{socket};
    croak 'set_socket: not an IO::Socket instance'
        unless UNIVERSAL::isa($socket, 'IO::Socket');
    $this->{socket} = $socket;
    return 1;
}

sub set_listen ($$) {
    my ($this, $backlog) = @_;
    croak 'set_listen: socket already bound' if defined $this->{socket};
    $this->{backlog} = $backlog;
    return 1;
}

sub set_dispatcher ($&) {
    my ($this, $dispatcher) = @_;
    $this->{dispatcher} = $dispatcher;
    return 1;
}

sub get_max_interpreters ($) { return $_[0]->{max_interpreters} || 0 }
sub get_max_requests ($)     { return $_[0]->{max_requests} || 0 }

# setconn: 1.27's checks and texts; the socket itself comes from the
# engine (pmc_listen: PERMS applied before listen, a stale unix socket
# replaced without a race, inet6 without a host on the IPv6 wildcard).
# A descriptor it cannot use is a failure like any other (1.27 croaked
# for some): a milter reading its socket from a configuration file can
# report it and go on.
sub setconn ($$) {
    my ($this, $desc, $perms) = @_;
    $desc = '' unless defined $desc;
    my $fail = sub {
        my ($why, $errno) = @_;
        carp "setconn: $why";
        $! = $errno;
        return undef;
    };
    return $fail->("$desc: unspecified protocol", Errno::EINVAL)
        unless $desc =~ /^([^:]+):([^:@]+)(?:@([^:@]+|\[[0-9a-f:.]+\]))?$/;
    my ($proto, $where) = ($1, $2);
    my $unix = $proto eq 'local' || $proto eq 'unix';
    if ($unix) {
        return $fail->("$desc: path not absolute", Errno::EINVAL)
            unless $where =~ m{^/};
    } elsif ($proto ne 'inet' && $proto ne 'inet6') {
        return $fail->("$desc: unknown protocol", Errno::EINVAL);
    }
    my $mode = $unix && $perms ? $perms : 0;
    my $class = $unix ? 'IO::Socket::UNIX'
              : $proto eq 'inet' ? 'IO::Socket::INET' : 'IO::Socket::IP';
    # backlog 0: the engine listens with SOMAXCONN.
    my ($fd, $why) = _listen($desc, $mode, $this->{backlog} || 0);
    if ($fd < 0) {
        my $errno = $! + 0;
        # 1.27's "DESC: $!" where the system error says it all; the
        # engine's sentence (it starts with DESC) for a bad port, address
        # or host name, which errno alone misdescribes.
        my $sys = "$!";
        return $fail->(index($why, $sys) >= 0 ? "$desc: $sys" : $why, $errno);
    }
    eval "require $class; 1" or $class = 'IO::Socket';
    require IO::Socket;
    my $sock = $class->new_from_fd($fd, 'r+');
    unless ($sock) {
        my $err = $! + 0;
        POSIX::close($fd) if eval { require POSIX; 1 };
        return $fail->("$desc: " . ($! = $err), $err);
    }
    $sock->blocking(1);    # 1.27 dispatchers call a blocking accept
    ${*$sock}{pmcore_spec} = $desc;
    return $this->set_socket($sock);
}

# main: 1.27's checks, argument handling and dispatcher selection.
sub main ($;$$$) {
    my $this = shift;
    require Sendmail::PMilter::Context;
    croak 'main: socket not bound' unless defined $this->{socket};
    croak 'main: callbacks not registered' unless defined $this->{callbacks};
    croak 'main: milter protocol version not defined'
        unless defined $this->{'milter protocol version'};

    my $max_children = shift;
    my $max_requests = shift;
    $this->{max_interpreters} = $max_children
        if defined $max_children && $max_children =~ /^\d+$/;
    $this->{max_requests} = $max_requests
        if defined $max_requests && $max_requests =~ /^\d+$/;

    my $dispatcher = $this->{dispatcher};
    unless (defined $dispatcher) {
        my $name = ($ENV{PMILTER_DISPATCHER} || 'postfork') . '_dispatcher';
        my $ref = Symbol::qualify_to_ref($name, 'Sendmail::PMilter');
        no strict 'refs';
        # 1.27 calls it as &name, so it sees main's remaining @_.
        $dispatcher = &{*{$ref}{PACKAGE} . '::' . *{$ref}{NAME}};
    }
    my $handler = sub { $this->_context(shift)->main() };
    $dispatcher->($this, $this->{socket}, $handler);
    return undef;
}

# The Context of one connection, with this milter's engine options.
sub _context {
    my ($this, $socket) = @_;
    my $ctx = Sendmail::PMilter::Context->new($socket, $this->{callbacks},
        $this->{callback_flags}, $this->{'milter protocol version'});
    # One options hash serves every Context until a setter changes what
    # it holds (they delete it): a copy per connection cost each about 5k
    # instructions.  Nothing writes to it.
    $ctx->{pmcore} = $this->{_engine_options} ||= $this->_engine_options;
    return $ctx;
}

sub _engine_options {
    my $this = shift;
    my %o = %{ $this->{pmcore} || { compat => 1 } };
    $o{die_reply} = $this->{die_reply} if defined $this->{die_reply};
    $o{log} = $this->{log} if $this->{log};
    return \%o;
}

1;

__END__

=head1 NAME

Sendmail::PMilter - Perl milter API (Sendmail::PMilter 1.27/1.28) on libpmcore

=head1 SYNOPSIS

    use Sendmail::PMilter qw(:all);

    my $milter = Sendmail::PMilter->new;
    $milter->setconn('local:/run/milter.sock', 0660);
    $milter->register('my-milter', {
        eom => sub {
            my $ctx = shift;
            $ctx->addheader('X-Checked', 'yes');
            return SMFIS_CONTINUE;
        },
    }, SMFI_CURR_ACTS);
    $milter->main(10, 100);

=head1 DESCRIPTION

A drop-in replacement for the pure-Perl Sendmail::PMilter 1.27/1.28.  The
module names, methods, prototypes, constants, export tags, callback
arguments and die texts are those of 1.27; the milter protocol (framing,
negotiation, macros, the state machine, modification packets, reply text)
is handled by libpmcore, a C engine compiled into this module.

=head2 Methods

C<new>, C<register(NAME, CALLBACKS[, FLAGS])>, C<setconn(DESC[, PERMS])>,
C<set_socket>, C<set_listen>, C<set_dispatcher>,
C<main([MAXCHILDREN[, MAXREQ[, ...]]])>, C<get_max_interpreters>,
C<get_max_requests>, C<auto_getconn>, C<auto_setconn>, C<get_sendmail_cf>,
C<set_sendmail_cf>, C<get_sendmail_class>, C<get_sendmail_option> behave as
in 1.27.

FLAGS may be a number (1.27: the capability list that Context modification
methods check) or a hash reference:

    $milter->register('name', \%callbacks, {
        action_flags   => SMFIF_ADDHDRS,
        protocol_flags => SMFIP_NR_HDR | SMFIP_SKIP,
        # optional: version => 6, max_packet => 1048576,
        #           symlist => { SMFIM_CONNECT() => 'j {daemon_name}' },
        #           read_timeout => 300, idle_timeout => 7210 (seconds,
        #           for connections handed to the engine by a dispatcher
        #           of your own; built-in dispatchers take them as options)
    });

With the hash form the engine negotiates the way libmilter does: it asks
for C<action_flags>, asks the MTA not to send events that have no callback
(NO* bits), and adds the C<protocol_flags> (NR_* no-reply bits, SKIP,
RCPT_REJ, HDR_LEADSPC) the MTA offers.  A no-reply bit the MTA did not
offer is faked: the engine answers for the callback, so the stream never
gets a stray reply.  With a number the negotiation is 1.27's (below).

New methods: C<set_die_reply(SMFIS_x)> chooses the verdict sent when a
callback dies or returns something that is not a verdict (default
SMFIS_TEMPFAIL); C<set_log(CODE)> receives C<($level, $message)> (syslog's
level numbers: 3 error, 4 warning, 5 notice, 6 info, 7 debug) for every
error of a callback and every line of the engine, which names the
connection (C<conn 12>) and, once known, the queue id (C<conn 12 (queue
4BxyZ3): ...>).  The default is C<warn> with the prefix
C<Sendmail::PMilter: >.  C<set_log('syslog', ident =E<gt> NAME, facility
=E<gt> FACILITY, logsock =E<gt> ARG)> sends the lines to syslog through
Sys::Syslog instead (defaults: the milter's name and C<mail>; C<logsock> is
given to C<Sys::Syslog::setlogsock>).

C<< Sendmail::PMilter->metrics_text >> returns the counters of the server
running in this process (connections, messages, verdicts, modifications,
callback latency: docs/metrics.md) in Prometheus's text format, or undef
when none runs.  With C<PMCORE_METRICS=inet:PORT@ADDR> in the environment
the server answers C<GET /metrics> and C<GET /health> on that address, for
any milter, unchanged; a value that does not parse or cannot be listened on
makes C<main> die with a message naming the variable.

=head2 Constants

Every SMFIS_*, SMFIM_*, SMFIP_*, SMFIF_*, SMFI_*_ACTS, SMFI_*_PROT,
MAXREPLYLEN and MAXREPLIES constant of 1.27 with its value, the tags
C<:all>, C<:dispatchers> and C<:callbacks>, and the package variables
C<@smflags>, C<@dispatchers> and C<%DEFAULT_CALLBACKS>.  New, exportable on
request or with C<:extensions>: C<SMFIS_NOREPLY> (107) and C<SMFIS_SKIP>
(108), libmilter's NOREPLY and SKIP plus 100.

=head2 Dispatchers

See L<Sendmail::PMilter::Dispatch> for how the four dispatchers,
C<PMILTER_DISPATCHER> and user dispatchers map onto the engine.

=head1 COMPATIBILITY

Differences from pure-Perl 1.27/1.28.  Each is a fix of a 1.27 defect and
has a test (file in brackets).  F<t/08_differential.t> runs the same
milters and conversations under pure-Perl 1.28 and under this module and
fails on any reply-byte difference that is not one of these.

=over

=item * Null sender and empty recipient: C<MAIL FROM:E<lt>E<gt>> without
ESMTP arguments calls envfrom with C<''> (as 1.28) and an empty RCPT calls
envrcpt with C<''>; neither hangs the MTA.  [04_fixes, 02_context]

=item * A callback that dies: the MTA gets one reply, the die reply
(TEMPFAIL unless C<set_die_reply>), as the answer to that command; the
error goes to C<warn> or the log callback (C<set_log>); the connection goes
on.  1.27 sent C<c> (from close) then a stray C<t>, ended the connection
and rethrew the error into the dispatcher.  A callback returning something
that is not a verdict is treated the same way.  [04_fixes]

=item * No reply is written after QUIT or end of stream (1.27 wrote two or
three C<c> packets nobody reads), and abort and close never reply.
[04_fixes]

=item * C<replacebody> data is sent in chunks of at most 65535 bytes,
contiguously, after the other modifications.  [04_fixes]

=item * The replies to one read of the MTA's input go out in one write; a
packet is never split over three system calls.  [04_fixes]

=item * C<insheader> accepts an empty or C<"0"> value, as C<addheader>
does.  [04_fixes]

=item * C<setreply> accepts every valid enhanced code: subject and detail of
1 to 3 digits (5.7.123).  A lone C<%> in the text is doubled on the wire,
as Sendmail needs; a C<%%> (already doubled, as libmilter's users write
it) is sent as it is.  A text
with CR or LF, or a line over 980 bytes, is refused (warning C<setreply:
bad reply arguments>, undef).  A reply text is used only by a verdict of
its class (5xx with REJECT, 4xx with TEMPFAIL).  MESSAGE C<'0'> is sent as
C<0> (1.27 sent an empty text).  [04_fixes, 02_context]

=item * C<setmlreply> sends exactly the lines given, the last one with a
space after the codes (C<"550-5.7.1 one\r\n550 5.7.1 two">).  1.27 added
an empty first and an empty last line.  1 to 32 lines are accepted (1.27:
2 to 32).  Two lines or more with an undefined XCODE get C<4.0.0> or
C<5.0.0> on every line, as libmilter sends them (1.27 sent an empty
code).  [04_fixes, 02_context, 03_vectors]

=item * Packets longer than the maximum packet size (1 MiB by default,
C<max_packet> in the FLAGS hash) end the connection; 1.27 had no limit.
[04_fixes]

=item * An interrupted read (EINTR) is retried, never taken as end of
stream.  [04_fixes]

=item * A string with characters above 255 makes the Context method die
("Wide character") before anything is sent; 1.27 corrupted the stream.
[04_fixes]

=item * Negotiation with numeric FLAGS is 1.27's: the MTA's version (2 or
6; see below for the others) and actions are echoed, the protocol reply is C<offer & SMFIP_DEFAULTS>,
and a negotiate callback starts from the raw offer.  But bits the MTA did
not offer never reach it: no-reply bits are dropped (and faked: the engine
answers for the callback), NODATA and NOUNKNOWN are dropped, and any other
unoffered action or protocol bit ends the connection (1.27 sent them all).
No-reply bits that were granted are honoured (1.27 still replied and fell
out of step).  [02_context, 07_extensions, 08_differential]

=item * The connect callback's address is built without Socket6 (IPv6
works everywhere) and without name lookups; an IPv4 or IPv6 address that
is not numeric gives undef (1.27 resolved host names, or failed the
connection).  [02_context]

=item * C<getsymval> searches the stages latest first (E N T R M H C) and
tries both brace forms (C<i> finds C<{i}>), as libmilter does, whatever the
register form: a macro sent again at EOM (C<{i}> from Postfix) gives its EOM
value (1.27 searched C H M R T N E and gave the stale MAIL value).  Macros
follow the engine's lifetime rules: each MACRO packet replaces that stage's
set, ABORT clears the message's stages, C<R> macros stay readable until the
next message (1.27 deleted them after envrcpt and let C<M> macros pile up).
Macros for stages the engine does not keep (L, B, U) are not stored.
C<< $ctx->{symbols} >> is a read-only view.  ABORT outside a message calls
no abort callback.  [02_context, 03_vectors]

=item * C<addrcpt_par> sends its PARAMS, C<chgfrom> takes ESMTP arguments.
[02_context]

=item * Dispatchers (see L<Sendmail::PMilter::Dispatch>): prefork's
C<milter_exit> gets the milter object (1.27: undef); a failed connection
does not recycle a prefork worker; a die never escapes C<main> in a
postfork child, nor stops the sequential dispatcher; postfork's fork check
and ithread's unchecked accept are gone (the engine forks and accepts);
SIGPIPE cannot kill the milter (the engine writes with MSG_NOSIGNAL).  On
SIGTERM/SIGINT/SIGQUIT the built-in dispatchers stop gracefully: they stop
accepting and serve the open connections (messages in flight and the next
ones of the same SMTP session) until the MTA ends them, at most for the
drain deadline; prefork then exits 0 as before, the others return from
C<main>.  [06_dispatch]

=item * C<exit> in a callback (or in the log sink, or in a C<%SIG> handler
while a built-in dispatcher runs) no longer jumps out of the engine
mid-step.  The connection whose callback exited gets the replies it was
owed for earlier commands, whole, then a clean end of stream (the command
being answered gets none); no callback runs after the exit in that
process, not even C<close>; then the exit goes on: END blocks run and the
process ends with exit's status.  Which process: the child of that
connection under C<postfork> and C<ithread>, the worker under C<prefork>
(the master replaces it, as in 1.27), the milter itself under C<loop>
and C<sequential>, whose other connections are closed at once, cleanly.
A C<%SIG> handler that exits in a C<prefork> or C<postfork> master lets
the workers drain first.  (1.27: the MTA got nothing, not even the replies
already due.)  C<POSIX::_exit> still ends the process on the spot.
[11_exit]

=item * C<setconn>: PERMS is applied to the socket before C<listen>, a
stale unix socket is replaced without 1.27's race, and C<inet6:PORT>
without a host listens on the IPv6 wildcard (1.27: IPv4).  A descriptor
it cannot use (no or an unknown scheme, an empty or relative path, a bad
port or address) fails like any other setconn failure: a warning with the reason (1.27's texts, or the engine's sentence
for a bad port, address or host name), C<$!> set (C<EINVAL> for a
malformed descriptor) and undef returned; 1.27 croaked.  The listen
backlog is the system's maximum (C<SOMAXCONN>) unless C<set_listen> asked
for a number (1.27: 5, which turned MTA connections away, or left them
waiting for a SYN retransmission, as soon as a few arrived at once).
[01_api, 06_dispatch]

=item * An MTA offering a version above 6 is answered with 6, as libmilter
answers it (1.27 refused it); a negotiate callback's version reference
then starts at 6.  Versions 0 and 1 are refused, as by libmilter.
Version 3, 4 and 5 MTAs are refused, as in 1.27, but by ending the
connection without a reply.  [02_context, 03_vectors]

=item * Commands out of order get what libmilter's state table gives them
(F<docs/state-table.md> in the libpmcore sources): one that cannot follow
the previous command ends the open message (the abort callback runs) and
is handled as if it had followed HELO, or, where it could not follow HELO
either (a body chunk straight after HELO, EOM without MAIL), it is dropped
with no callback and no reply.  1.27 ran the callback and answered
whatever came.  [03_vectors, 08_differential]

=back

=head1 SEE ALSO

L<Sendmail::PMilter::Context>, L<Sendmail::PMilter::Dispatch>.

=cut
