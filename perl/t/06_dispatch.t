# The dispatchers on the engine's server: hooks, recycling, graceful stop
# with a message in flight, reload, PMILTER_DISPATCHER and a dispatcher of
# the user's own (fd adoption).  Milters run in child processes; the MTA is
# libpmcore's client over a unix socket.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use Time::HiRes qw(usleep);
use Sendmail::PMilter qw(:all);
use Sendmail::PMilter::Context;

my $dir = tempdir(CLEANUP => 1);
my $n = 0;

sub note_event {
    my ($file, $line) = @_;
    open my $fh, '>>', $file or die "$file: $!";
    syswrite $fh, "$line\n";
}
sub events {
    my ($file) = @_;
    open my $fh, '<', $file or return ();
    chomp(my @l = <$fh>);
    return @l;
}

# Fork a milter; returns (pid, socket path, event file).
sub start {
    my (%o) = @_;
    my $sock = "$dir/m" . ++$n . '.sock';
    my $ev = "$dir/ev$n";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $m = Sendmail::PMilter->new;
        $m->setconn("unix:$sock") or exit 9;
        $m->register('t', {
            connect => sub { note_event($ev, "connect $$"); SMFIS_CONTINUE },
            eom => sub { $_[0]->addheader('X-Pid', $$);
                         usleep(300_000) if $o{slow_eom}; SMFIS_CONTINUE },
            close => sub { note_event($ev, "close $$"); SMFIS_CONTINUE },
        }, SMFI_CURR_ACTS);
        $m->set_dispatcher($o{dispatcher}) if $o{dispatcher};
        local $ENV{PMILTER_DISPATCHER} = $o{env} if $o{env};
        $SIG{TERM} = sub { note_event($ev, "user TERM handler"); die "user handler died\n" if $o{user_term} eq 'die' }
            if $o{user_term};
        $m->set_log(sub { note_event($ev, "log: $_[1]") }) if $o{user_term};
        $m->main(@{ $o{main} || [] }, map { ref $_ eq 'CODE' ? $_ : $_ } @{ $o{extra} || [] });
        note_event($ev, 'main returned');
        exit 0;
    }
    for (1 .. 100) { last if -S $sock; usleep(20_000) }
    return ($pid, $sock, $ev);
}

# One conversation; returns the X-Pid the milter added (or an error).
sub message {
    my ($sock, %o) = @_;
    # The path exists from bind() on; listen() follows a moment later.
    my $c;
    for (1 .. 100) {
        last if $c = IO::Socket::UNIX->new(Peer => $sock);
        usleep(20_000);
    }
    return "connect: $!" unless $c;
    my $p = Sendmail::PMilter::_Pipe->new(undef, { timeout_ms => 5000 }, fileno $c);
    $p->call('negotiate');
    $p->call('connect', 'h', '4', 25, '1.2.3.4');
    $p->call('mail', '<a@b>');
    $p->call('rcpt', '<c@d>');
    $o{in_flight}->() if $o{in_flight};
    my $r = $p->call('eom');
    $p->call('quit');
    return $r->{status} ne 'OK' ? "$r->{status} $r->{error}"
         : join ' ', $r->{code}, map { $_->[0] eq 'h' ? $_->[3] : () } @{ $r->{mods} };
}
sub stop { my ($pid) = @_; kill TERM => $pid; waitpid $pid, 0; return $? >> 8 }

# prefork: hooks, recycling after max_requests_per_child.
{
    my ($pid, $sock, $ev) = start(env => 'prefork', main => [1, 2], extra => [
        child_init => sub { note_event("$dir/hooks", "init $$") },
        child_exit => sub { note_event("$dir/hooks", "exit $$ $_[1] $_[2]") },
        milter_exit => sub { note_event("$dir/hooks", 'milter_exit ' . ref $_[0]) },
    ]);
    my @pids = map { (split ' ', message($sock))[1] } 1 .. 5;
    is(scalar(grep { defined && /^\d+$/ } @pids), 5, 'prefork: five messages answered');
    is(scalar(keys %{ { map { $_ => 1 } @pids } }), 3, 'one worker, recycled after 2 requests: 3 pids');
    is(stop($pid), 0, 'prefork: TERM exits 0');
    my @h = events("$dir/hooks");
    is(scalar(grep { /^init / } @h), 3, 'child_init in each worker');
    ok((grep { /^exit \d+ 2 2$/ } @h) >= 2, 'child_exit($milter, requests, max)');
    is((grep { /^milter_exit/ } @h)[0], 'milter_exit Sendmail::PMilter',
       'milter_exit gets the milter object (1.27 passed undef)');
    is(scalar(grep { /^close / } events($ev)), 5, 'close callback per connection');
}

# Graceful stop with a message in flight, for each built-in dispatcher.
for my $d (qw(prefork postfork sequential ithread loop)) {
    my ($pid, $sock, $ev) = start(env => $d, slow_eom => 1);
    my $r = message($sock);
    like($r, qr/^c \d+$/, "$d: a message is answered");
    $r = message($sock, in_flight => sub { kill TERM => $pid; usleep(100_000) });
    like($r, qr/^c \d+$/, "$d: TERM while a message is in flight: it still completes");
    waitpid $pid, 0;
    is($? >> 8, 0, "$d: the milter ends cleanly");
    ok(!-S $sock || !IO::Socket::UNIX->new(Peer => $sock), "$d: no longer accepting");
}

# The user's own TERM handler is still called.
{
    my ($pid, $sock, $ev) = start(env => 'loop', user_term => 1);
    like(message($sock), qr/^c /, 'loop: answered');
    stop($pid);
    is_deeply([grep { !/^(connect|close)/ } events($ev)], ['user TERM handler', 'main returned'],
              'the user\'s $SIG{TERM} ran, then main returned');
}
{
    my ($pid, $sock, $ev) = start(env => 'loop', user_term => 'die');
    like(message($sock), qr/^c /, 'loop: answered');
    is(stop($pid), 0, 'a user TERM handler that dies: clean exit');
    is_deeply([grep { length && !/^(connect|close)/ } events($ev)],
              ['user TERM handler', 'log: user handler died', 'main returned'],
              '... its error is logged and the milter stops gracefully');
}

# Dispatcher options through main: a read timeout closes a stalled message.
{
    my ($pid, $sock, $ev) = start(env => 'loop', main => [0, 0], extra => [read_timeout => 0.3]);
    my $c;
    for (1 .. 100) { last if $c = IO::Socket::UNIX->new(Peer => $sock); usleep(20_000) }
    my $p = Sendmail::PMilter::_Pipe->new(undef, { timeout_ms => 5000 }, fileno $c);
    $p->call('negotiate');
    $p->call('connect', 'h', '4', 25, '1.2.3.4');
    $p->call('mail', '<a@b>');
    my $t0 = time;
    my $r = $p->call('rcpt', '<c@d>');    # answered
    # Stall inside the message until the milter closed it (its close
    # callback ran): a fixed stall loses to a milter slow to see it.
    for (1 .. 200) { last if grep { /^close / } events($ev); usleep(20_000) }
    $r = $p->call('eom');
    isnt($r->{status}, 'OK', 'read_timeout via main: the stalled connection was closed');
    ok(time - $t0 < 4, '... in time');
    stop($pid);
}

# SIGHUP: prefork replaces its workers.
{
    my ($pid, $sock, $ev) = start(env => 'prefork', main => [1, 100]);
    my ($first) = message($sock) =~ /(\d+)/;
    kill HUP => $pid;
    # The old worker drains and is reaped; until then it may still be
    # the one that accepts, however long a fixed sleep was.
    for (1 .. 500) { last unless kill 0 => $first; usleep(20_000) }
    my ($second) = message($sock) =~ /(\d+)/;
    ok($first && $second && $first != $second, 'HUP: a new worker serves');
    stop($pid);
}

# A dispatcher of the user's own: accept in Perl, the engine serves the fd.
{
    my $served = 0;
    my ($pid, $sock, $ev) = start(dispatcher => sub {
        my ($m, $lsock, $handler) = @_;
        for (1 .. 2) {
            my $c = $lsock->accept or next;
            $handler->($c);
            $c->close;
        }
    });
    like(message($sock), qr/^c \d+$/, 'user dispatcher: first connection');
    like(message($sock), qr/^c \d+$/, 'user dispatcher: second connection');
    waitpid $pid, 0;
    is_deeply([grep { /main returned/ } events($ev)], ['main returned'], 'main returns after the dispatcher');
}

# PMILTER_DISPATCHER naming a dispatcher of the user's package.
{
    no warnings 'once';
    *My::D::two_dispatcher = sub { return sub {
        my ($m, $lsock, $handler) = @_;
        my $c = $lsock->accept; $handler->($c); $c->close } };
    my ($pid, $sock) = start(env => 'My::D::two');
    like(message($sock), qr/^c \d+$/, 'PMILTER_DISPATCHER=My::D::two');
    waitpid $pid, 0;
}
done_testing;
