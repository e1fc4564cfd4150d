package Sendmail::PMilter::Dispatch;

# The dispatchers of Sendmail::PMilter, defined in that package.  Each
# constructor returns a closure with 1.27's contract
# (MILTER, LISTEN_SOCKET, HANDLER); the built-in ones hand the listening
# socket to libpmcore's server (pmc_server_run) instead of looping on
# accept in Perl.  A user's own dispatcher still calls HANDLER->($socket),
# which serves that socket with pmc_serve_fd.

use strict;
use warnings;

our $VERSION = '1.29';
# Set by the signal handlers below; read by the engine's tick hook.
our ($STOP, $RELOAD) = (0, 0);

# Called by the engine's tick hook (every 100 ms while a built-in
# dispatcher runs): pending %SIG handlers run here.  1 = stop, 2 = reload.
sub _tick {
    return 1 if $STOP;
    return 0 unless $RELOAD;
    $RELOAD = 0;
    return 2;
}

package Sendmail::PMilter;    ## no critic (MultiplePackages)

use strict;
use warnings;
use Carp;
use POSIX ();

use constant {
    _MODEL_LOOP => 0, _MODEL_THREADS => 1, _MODEL_PREFORK => 2,
    _MODEL_FORK => 3,
};

# Options every dispatcher accepts (seconds, as Perl users expect).
sub _common_options {
    my ($params) = @_;
    my %o;
    $o{read_timeout_ms}  = int(1000 * $params->{read_timeout}) if defined $params->{read_timeout};
    $o{idle_timeout_ms}  = int(1000 * $params->{idle_timeout}) if defined $params->{idle_timeout};
    $o{drain_timeout_ms} = int(1000 * $params->{drain_timeout}) if defined $params->{drain_timeout};
    $o{max_connections}  = $params->{max_connections} if defined $params->{max_connections};
    $o{max_conn_per_worker} = $params->{max_connections_per_child}
        if defined $params->{max_connections_per_child};
    return %o;
}

# Run the engine's server on the milter's listening socket until SIGTERM,
# SIGINT or SIGQUIT (graceful stop, the user's own handler runs first) and
# with SIGHUP as a reload (prefork replaces its workers).
sub _serve {
    my ($this, $lsock, $opts) = @_;
    croak 'dispatcher: no listening socket' unless defined $lsock && defined fileno $lsock;
    ($Sendmail::PMilter::Dispatch::STOP, $Sendmail::PMilter::Dispatch::RELOAD) = (0, 0);
    my %old = map { $_ => $SIG{$_} } qw(TERM INT QUIT HUP);
    my $chain = sub {
        my ($sig, $flag) = @_;
        my $prev = $old{$sig};
        return sub {
            $$flag = $_[0];    # first: the user's handler may die
            $prev->(@_) if ref $prev eq 'CODE';
        };
    };
    local $SIG{TERM} = $chain->('TERM', \$Sendmail::PMilter::Dispatch::STOP);
    local $SIG{INT}  = $chain->('INT',  \$Sendmail::PMilter::Dispatch::STOP);
    local $SIG{QUIT} = $chain->('QUIT', \$Sendmail::PMilter::Dispatch::STOP);
    local $SIG{HUP}  = $chain->('HUP',  \$Sendmail::PMilter::Dispatch::RELOAD);
    require Sendmail::PMilter::Context;
    my $tmpl = $this->_context(undef)->_prepare;
    # The server owns (and closes) what it is given: give it a duplicate.
    my $fd = POSIX::dup(fileno $lsock);
    croak "dispatcher: dup: $!" unless defined $fd;
    local $this->{_dispatch} = $opts;
    my $err = _server_run($this, $fd, $opts, $tmpl);
    die "dispatcher: $err\n" if defined $err;
    return $Sendmail::PMilter::Dispatch::STOP;
}

# Called by the engine for each connection.
sub _server_context {
    my $this = shift;
    warn "$$: incoming connection\n" if $Sendmail::PMilter::DEBUG > 0;
    return $this->_context(undef);
}

# prefork's per-worker hooks: a code ref or a method name, called as
# $milter->$hook() and $milter->$hook($requests, $max_requests).
sub _child_hook {
    my ($this, $which, $requests) = @_;
    my $o = $this->{_dispatch} || {};
    my $hook = $o->{$which} or return 1;
    if ($which eq 'child_exit') {
        $this->$hook($requests, $o->{max_requests_per_worker});
    } else {
        $this->$hook();
    }
    return 1;
}

sub prefork_dispatcher (@) {
    my %params = @_;
    return sub {
        my ($this, $lsock) = @_;
        my %o = (max_conn_per_worker => 1, _common_options(\%params),
            model => _MODEL_PREFORK,
            workers => $this->get_max_interpreters || $params{max_children} || 10,
            max_requests_per_worker => $this->get_max_requests
                || $params{max_requests_per_child} || 100,
            child_init => $params{child_init}, child_exit => $params{child_exit});
        my $signal = _serve($this, $lsock, \%o);
        if ($signal && (my $exit = $params{milter_exit})) {
            $this->$exit();    # 1.27 passed undef here
        }
        exit 0 if $signal;     # as 1.27's killall
        return;
    };
}

# A dispatcher that hands the listening socket to the engine's server
# with the given model; $max gives max_connections for the milter.
sub _dispatcher_for {
    my ($params, $model, $max) = @_;
    return sub {
        my ($this, $lsock) = @_;
        _serve($this, $lsock, { _common_options($params), model => $model,
            max_connections => $max->($this) });
        return;
    };
}

sub _interpreters { return $_[0]->get_max_interpreters }

# The 1.27 prototypes are kept; main calls constructors as &name, so the
# new options still arrive (main's arguments after MAXREQ).
sub postfork_dispatcher () {
    return _dispatcher_for({@_}, _MODEL_FORK, \&_interpreters);
}

sub sequential_dispatcher () {
    return _dispatcher_for({@_}, _MODEL_LOOP, sub { 1 });
}

# Each connection in its own process: the isolation ithreads gave, without
# needing a threaded perl.
sub ithread_dispatcher {
    return _dispatcher_for({@_}, _MODEL_FORK, \&_interpreters);
}

# New: one process, one event loop, many connections at once.
sub loop_dispatcher {
    my %params = @_;
    return _dispatcher_for(\%params, _MODEL_LOOP,
        sub { $params{max_connections} // $_[0]->get_max_interpreters });
}

1;

__END__

=head1 NAME

Sendmail::PMilter::Dispatch - Sendmail::PMilter's dispatchers on libpmcore

=head1 DESCRIPTION

The dispatcher contract of 1.27 is kept: C<main> picks C<{dispatcher}> (see
C<set_dispatcher>) or the constructor named by C<$ENV{PMILTER_DISPATCHER}>
(default C<postfork>), and calls the closure as
C<DISPATCHER-E<gt>($milter, $listen_socket, $handler)>.  A dispatcher of
your own may loop on C<< $listen_socket->accept >> and call
C<< $handler->($socket) >>; the engine then serves that socket
(C<pmc_serve_fd>) and returns when the conversation ends.

The built-in dispatchers hand the listening socket to the engine's server;
callbacks see the same semantics as under 1.27:

=over

=item prefork_dispatcher(%PARAMS)

The engine's prefork model: C<max_children> (or MAXCHILDREN of C<main>,
default 10) worker processes, each serving one connection at a time, each
replaced after C<max_requests_per_child> (or MAXREQ, default 100)
connections.  C<child_init> runs in each worker before it accepts (a die
makes the worker exit and the master replace it), C<child_exit> when it
ends, as C<< $milter->$child_exit($requests, $max) >>.  SIGTERM, SIGINT or
SIGQUIT to the master stops gracefully (messages in flight finish), then
C<milter_exit> is called with the milter object and the process exits 0.
SIGHUP replaces the workers.  A failed connection no longer recycles its
worker.

=item postfork_dispatcher

A process per connection (the engine's fork model); MAXCHILDREN caps the
number of children (new connections wait in the backlog).  A die never
escapes into the child's caller: the child ends when the connection ends.

=item sequential_dispatcher

One process, one connection at a time.  A connection error never stops
the milter.

=item ithread_dispatcher

A process per connection, as C<postfork>: the engine does not run Perl
interpreters on threads.  Callbacks keep what ithreads gave them (their
own copy of the program's data); C<threads::shared> data is not shared.

=item loop_dispatcher(%PARAMS) (new)

One process and one event loop serving many connections at once: the
fastest model when callbacks do not block.

=back

Every built-in dispatcher takes C<read_timeout>, C<idle_timeout>,
C<drain_timeout> (seconds) and C<max_connections> (loop, prefork: per
worker via C<max_connections_per_child>) as constructor parameters, also
through C<main>'s arguments after MAXREQ:
C<< $milter->main(10, 100, read_timeout => 30) >>.  Defaults: 300 s
inside a message, 7210 s between messages, 30 s to drain on stop.

A connection served by a built-in dispatcher has no Perl socket object:
C<< $ctx->{socket} >> is undef there.

A callback that calls C<exit> ends the process that runs it (the
connection's child under C<postfork> and C<ithread>, the worker under
C<prefork>, the milter under C<loop> and C<sequential>) once its
connection got what it was owed and was closed cleanly; see
"COMPATIBILITY" in L<Sendmail::PMilter>.

Signals: the engine installs no signal handler.  While a built-in
dispatcher runs, TERM, INT and QUIT ask for a graceful stop and HUP for a
reload; a handler you installed before C<main> is still called first.
Send them to the master process.

=cut
