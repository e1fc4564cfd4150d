# The MTA's end, wherever it comes: a conversation cut at every byte offset
# by a FIN, a half-close or a reset, against each built-in dispatcher over
# TCP.  After every case the close callback has run exactly once for each
# connection, the milter's descriptors are back where they were, and a
# stop with an MTA that went away inside a message does not wait for the
# drain deadline.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(usleep time);
use Sendmail::PMilter qw(:all);
use PMTest qw(pkt);
use PMNet qw(free_port dial);

my $dir = tempdir(CLEANUP => 1);

sub count_lines {
    my ($file, $what) = @_;
    open my $fh, '<', $file or return 0;
    return scalar grep { /^\Q$what\E / } <$fh>;
}

# The milter's own descriptors, and how many child processes it has (one
# per connection under postfork, the workers under prefork), by /proc.  A
# prefork worker that retires is replaced, and a young one may not have
# closed what it inherited yet, so the tree's total is no measure there.
sub fds_of {
    my ($pid) = @_;
    opendir my $f, "/proc/$pid/fd" or return -1;
    return scalar grep { !/^\./ } readdir $f;
}

sub children_of {
    my ($pid) = @_;
    opendir my $d, '/proc' or return -1;
    my $n = 0;
    for my $p (grep { /^\d+$/ } readdir $d) {
        open my $st, '<', "/proc/$p/stat" or next;
        my ($state, $ppid) = (split ' ', scalar <$st>)[2, 3];
        $n++ if $ppid == $pid && $state ne 'Z';
    }
    return $n;
}

sub start {
    my ($dispatcher, $port, $ev) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open my $log, '>>', $ev or die;
        $log->autoflush(1);
        my $m = Sendmail::PMilter->new;
        $m->setconn("inet:$port\@127.0.0.1") or exit 9;
        my $note = sub { syswrite $log, "$_[0] $$\n"; SMFIS_CONTINUE };
        $m->register('t', {
            (map { my $cb = $_; ($cb => sub { $note->($cb) }) }
                 qw(connect helo envfrom envrcpt header eoh body abort)),
            eom => sub { $_[0]->addheader('X-T', 'y'); $note->('eom') },
            close => sub { $note->('close') },
        }, SMFI_CURR_ACTS);
        $m->set_dispatcher(Sendmail::PMilter->can("${dispatcher}_dispatcher")->());
        $m->set_log(sub { });
        $m->main;
        exit 0;
    }
    my $c = dial($port, 200);
    close $c if $c;
    return $pid;
}

my $conv = join '',
    pkt('O', pack('NNN', 6, 0x1ff, 0x1fffff)),
    pkt('D', "C{daemon_name}\0mx\0"),
    pkt('C', "mta\0" . '4' . pack('n', 25) . "192.0.2.1\0"),
    pkt('H', "helo.example\0"),
    pkt('M', "<a\@x>\0"),
    pkt('R', "<b\@x>\0"),
    pkt('T'),
    pkt('L', "Subject\0hi\0"),
    pkt('N'),
    pkt('B', "Hello.\r\n"),
    pkt('E'),
    pkt('Q');

sub wait_until {
    my ($ms, $cond) = @_;
    my $end = time + $ms / 1000;
    while (time < $end) { return 1 if $cond->(); usleep(5_000) }
    return $cond->();
}

for my $dispatcher (qw(postfork loop prefork)) {
    my $port = free_port();
    my $ev = "$dir/$dispatcher.ev";
    my $pid = start($dispatcher, $port, $ev);
    # The dispatcher's own start-up probe connection counts too.
    ok(wait_until(2000, sub { count_lines($ev, 'close') >= 1 }),
       "$dispatcher: up");
    my $conns = count_lines($ev, 'close');
    # prefork starts its ten workers at once; count them all in.
    wait_until(5000, sub { children_of($pid) >= 10 }) if $dispatcher eq 'prefork';
    my ($fds0, $kids0) = (fds_of($pid), children_of($pid));
    for my $how (qw(fin half reset)) {
        my @bad;
        for my $n (0 .. length($conv) - 1) {
            # A few at once, so some ends arrive while the milter is busy
            # with the others.
            my @c = map {
                IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
                    // do { push @bad, "$n: connect: $!"; () }
            } 1 .. 4;
            syswrite $_, substr($conv, 0, $n) for $n ? @c : ();
            $conns += @c;
            for my $c (@c) {
                if ($how eq 'reset') {
                    setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
                    close $c;
                } elsif ($how eq 'half') {
                    shutdown $c, 1;
                } else {
                    close $c;
                }
            }
            if ($how eq 'half') {
                # The milter must close its side: read until it does.
                for my $c (@c) {
                    my ($t0, $buf) = (time);
                    1 while time - $t0 < 2 && sysread $c, $buf, 4096;
                    push @bad, "$n: not closed by the milter" if time - $t0 >= 2;
                    close $c;
                }
            }
            push @bad, "$n: close callback ran " . count_lines($ev, 'close') . " times for $conns connections"
                unless wait_until(2000, sub { count_lines($ev, 'close') == $conns });
        }
        is_deeply(\@bad, [], "$dispatcher: $how at every offset of " . length($conv)
                  . ': the close callback ran once for each connection');
        my ($fds, $kids);
        ok(wait_until(2000, sub { ($fds = fds_of($pid)) <= $fds0 + 2 }),
           "$dispatcher: $how: descriptors back ($fds, baseline $fds0)");
        ok(wait_until(2000, sub { ($kids = children_of($pid)) <= $kids0 }),
           "$dispatcher: $how: child processes back ($kids, baseline $kids0)");
    }
    # Gone inside a message: the stop does not wait for the drain deadline.
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port);
    my $upto = index($conv, pkt('T'));
    syswrite $c, substr($conv, 0, $upto) . pkt('D', "R{rcpt_addr}\0b\@x\0");
    usleep(100_000);
    close $c;
    usleep(100_000);
    my $t0 = time;
    kill TERM => $pid;
    waitpid $pid, 0;
    my $took = time - $t0;
    cmp_ok($took, '<', 2, "$dispatcher: stop with a gone peer took ${took}s");
    is(count_lines($ev, 'close'), $conns + 1, "$dispatcher: and its close ran");
}

done_testing;
