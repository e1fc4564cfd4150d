# The listen backlog under a burst of MTA connections.  A milter behind a
# busy MTA sees many connections open at once (Postfix opens one per SMTP
# session); a backlog of 5 (1.27's default) makes the kernel drop SYNs
# beyond it, and each dropped SYN costs the MTA a 1 s retransmission.  The
# default is now SOMAXCONN: every handshake of the burst completes with no
# SYN sent twice (non-blocking connects to 127.0.0.1, waiting for
# writability), under each dispatcher.  The dispatchers that take many
# connections at once (postfork, the default, and loop) must then also
# answer every OPTNEG of the burst.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Errno qw(EINPROGRESS);
use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use Socket qw(PF_INET SOCK_STREAM SOCK_NONBLOCK SOL_SOCKET SO_ERROR
              IPPROTO_TCP TCP_INFO inet_aton pack_sockaddr_in
              unpack_sockaddr_in);
use File::Temp qw(tempdir);
use Time::HiRes qw(time usleep);
use Sendmail::PMilter qw(:all);

# The burst needs a descriptor per connection, here and in the loop
# dispatcher's process: raise a low soft limit through the shell (there is
# no setrlimit in core Perl) and run again.
my $N = 1500;
my $nofile = `sh -c 'ulimit -n'`;
chomp $nofile;
if ($nofile ne 'unlimited' && $nofile < $N + 100 && !$ENV{PMILTER_T_RELIMIT}) {
    $ENV{PMILTER_T_RELIMIT} = 1;
    exec 'sh', '-c', 'ulimit -n ' . ($N + 200) . ' 2>/dev/null; exec "$0" "$@"',
        $^X, (map { "-I$_" } @INC), $0;
}
if ($nofile ne 'unlimited' && $nofile < $N + 100) {
    $N = $nofile - 100;
    diag("descriptor limit $nofile: a burst of $N connections only");
}
cmp_ok($N, '>=', 900, "a burst of $N connections") or BAIL_OUT('descriptor limit too low');

my $dir = tempdir(CLEANUP => 1);
my $seq = 0;

# Start a milter on a TCP port; returns (pid, port).
sub start {
    my (%o) = @_;
    my $pf = "$dir/port" . ++$seq;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $m = Sendmail::PMilter->new;
        $m->set_listen($o{backlog}) if $o{backlog};
        $m->setconn('inet:0@127.0.0.1') or exit 9;
        my ($port) = unpack_sockaddr_in(getsockname $m->{socket});
        open my $f, '>', "$pf.tmp" or die "$pf: $!";
        print $f $port;
        close $f;
        rename "$pf.tmp", $pf or die "$pf: $!";
        $m->register('t', { connect => sub { SMFIS_CONTINUE } }, SMFI_CURR_ACTS);
        if ($o{dispatcher} eq 'default') { delete $ENV{PMILTER_DISPATCHER} }
        else { $ENV{PMILTER_DISPATCHER} = $o{dispatcher} }
        $m->main(@{ $o{main} || [] });
        exit 0;
    }
    for (1 .. 500) { last if -e $pf; usleep(10_000) }
    open my $f, '<', $pf or die "the milter did not start: $!";
    my $port = <$f>;
    return ($pid, $port);
}

sub stop {
    my ($pid) = @_;
    kill TERM => $pid;
    my $t = time;
    while (time - $t < 20) {
        return if waitpid($pid, 1) == $pid;
        usleep(20_000);
    }
    kill KILL => $pid;
    waitpid $pid, 0;
}

# Whether a connected socket sent anything twice (here: its SYN), by the
# kernel's tcpi_total_retrans (offset 100 of struct tcp_info): a loaded
# host makes the burst slow, but not this count.
sub retransmitted {
    my ($s) = @_;
    my $info = getsockopt($s, IPPROTO_TCP, TCP_INFO) // return 0;
    return length $info >= 104 && unpack('x100 L', $info) > 0;
}

# Open $n connections at once; returns (sockets, handshake times in s,
# errors, SYNs sent twice).  A handshake's time runs from its own
# connect(), and completions are looked for every 100 connects; the times
# are figures only, the count of SYNs sent again is what is checked.
sub burst {
    my ($port, $n) = @_;
    my $sa = pack_sockaddr_in($port, inet_aton('127.0.0.1'));
    my (@s, %t0, %took);
    my $errors = 0;
    my $poll = IO::Poll->new;
    my $look = sub {
        my ($wait) = @_;
        $poll->poll($wait);
        for my $s ($poll->handles(POLLOUT | POLLERR | POLLHUP)) {
            $errors++ if unpack 'i', getsockopt($s, SOL_SOCKET, SO_ERROR);
            $poll->remove($s);
            $took{fileno $s} = time - $t0{fileno $s};
        }
    };
    for my $i (1 .. $n) {
        socket(my $s, PF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) or die "socket: $!";
        $t0{fileno $s} = time;
        connect($s, $sa) or $! == EINPROGRESS or die "connect: $!";
        push @s, $s;
        $poll->mask($s => POLLOUT);
        $look->(0) if $i % 100 == 0;
    }
    # Past 1.5 s a dropped SYN was sent again (and counted): no need to
    # wait for the rest.
    my $end = time + 1.5;
    $look->(0.05) while keys %took < $n && time < $end;
    return (\@s, [values %took], $errors, scalar grep { retransmitted($_) } @s);
}

# Send OPTNEG on every socket; returns (answered, seconds for all).
sub negotiate_all {
    my ($socks) = @_;
    my $opt = pack('N', 13) . 'O' . pack('N3', 6, 0x1FF, 0x1FFFFF);
    my $poll = IO::Poll->new;
    my %buf;
    for my $s (@$socks) {
        syswrite($s, $opt) == length $opt or die "write: $!";
        $poll->mask($s => POLLIN);
    }
    my ($done, $t0) = (0, time);
    while ($done < @$socks && time - $t0 < 30) {
        $poll->poll(0.1);
        for my $s ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
            my $b = \$buf{fileno $s};
            $$b //= '';
            my $r = sysread $s, $$b, 4096, length $$b;
            next if $r && length $$b < 4 + 13;
            $done++ if $r && substr($$b, 4, 1) eq 'O';
            $poll->remove($s);
        }
    }
    return ($done, time - $t0);
}

for my $d (qw(default loop prefork sequential ithread)) {
    my ($pid, $port) = start(dispatcher => $d);
    my ($socks, $at, $errors, $again) = burst($port, $N);
    my ($last) = sort { $b <=> $a } @$at;
    is(scalar @$at, $N, "$d: all $N handshakes of a burst complete");
    is($again, 0, "$d: no SYN of the burst sent twice");
    is($errors, 0, "$d: no connection refused");
    diag(sprintf '%s: the last of %d handshakes after %.3f s', $d, $N, $last // -1);
    if ($d eq 'default' || $d eq 'loop') {
        my ($done, $secs) = negotiate_all($socks);
        is($done, $N, "$d: every connection of the burst is served (OPTNEG answered)");
        diag(sprintf '%s: %d OPTNEG answered in %.2f s', $d, $done, $secs);
    }
    close $_ for @$socks;
    stop($pid);
}

# The test can tell: with 1.27's backlog of 5 the same burst leaves SYNs to
# a retransmission.
{
    my ($pid, $port) = start(dispatcher => 'default', backlog => 5);
    my ($socks, $at, $errors, $again) = burst($port, $N);
    cmp_ok($again, '>', 0, "set_listen(5): $again of $N SYNs sent twice");
    close $_ for @$socks;
    stop($pid);
}

done_testing();
