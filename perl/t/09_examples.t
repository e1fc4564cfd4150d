# The sample milters of the repository (examples/perl/) run unchanged on
# this module: each is started as its own program on a socket, a message
# is driven through it by libpmcore's client playing the MTA, and the
# header it adds, its verdicts, its hooks and its shutdown are checked.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::UNIX;
use Time::HiRes qw(usleep);
use Sendmail::PMilter;    # for Sendmail::PMilter::_Pipe

my $examples = "$FindBin::Bin/../../examples/perl";
# The distribution tarball ships without the repository's examples.
plan skip_all => "no $examples (not in the pmcore repository)"
    unless -f "$examples/header-milter.pl";

my $dir = tempdir(CLEANUP => 1);
my $ours = (grep { -f "$_/Sendmail/PMilter.pm" } @INC)[0];
my @inc = map { ('-I', $_) } grep { defined && -d } $ours, "$ours/../arch";

# Start an example as a program; returns its pid, stderr going to a file.
sub start_example {
    my ($script, $spec, $log) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', $log or die "$log: $!";
        exec $^X, @inc, "$examples/$script", $spec;
        die "exec: $!";
    }
    return $pid;
}

sub connect_to {
    my ($spec) = @_;
    for (1 .. 250) {
        my $c = $spec =~ /^unix:(.*)/ ? IO::Socket::UNIX->new(Peer => $1)
              : $spec =~ /^inet:(\d+)\@(.*)/
                ? IO::Socket::INET->new(PeerAddr => $2, PeerPort => $1) : undef;
        return $c if $c;
        usleep(20_000);
    }
    return undef;
}

# One message; returns the reply hash of eom (or of the step that ended it).
sub one_message {
    my ($spec, %m) = @_;
    my $c = connect_to($spec) or return { status => "connect: $!" };
    my $p = Sendmail::PMilter::_Pipe->new(undef, { timeout_ms => 5000 }, fileno $c);
    $p->call('negotiate');
    $p->call('macros', 5, i => $m{qid}) if $m{qid};
    $p->call('connect', $m{host} // 'mx.example', '4', 25, '192.0.2.1');
    $p->call('helo', 'mx.example');
    $p->call('mail', $m{from} // '<alice@example.org>');
    my $r = $p->call('rcpt', $m{rcpt} // '<bob@example.net>');
    if ($r->{code} eq 'c') {
        $p->call('header', 'Subject', 'test');
        $p->call('eoh');
        $p->call('body', "hello\r\n");
        $r = $p->call('eom');
    }
    $p->call('quit');
    close $c;
    return $r;
}

sub headers_added {
    my ($r) = @_;
    return map { $_->[0] eq 'h' ? ["$_->[2]", "$_->[3]"] : () } @{ $r->{mods} || [] };
}

sub stop {
    my ($pid) = @_;
    kill TERM => $pid;
    my $t0 = time;
    while (waitpid($pid, 1) == 0) {    # WNOHANG
        if (time - $t0 > 10) { kill KILL => $pid; waitpid $pid, 0; return 'killed' }
        usleep(20_000);
    }
    return $? >> 8;
}

sub slurp { open my $fh, '<', $_[0] or return ''; local $/; return scalar <$fh> }

# header-milter.pl: the default (postfork) dispatcher on a unix socket
# with PERMS 0660; one header built from the connect and envfrom callbacks
# through the private data.
{
    my $spec = "unix:$dir/header.sock";
    my $pid = start_example('header-milter.pl', $spec, "$dir/header.log");
    my $r = one_message($spec, host => 'relay.example', from => '<carol@example.org>');
    is($r->{status}, 'OK', 'header-milter: the message went through');
    is($r->{code}, 'c', '... continue at eom');
    is_deeply([headers_added($r)],
              [['X-Header-Milter', 'checked <carol@example.org> from relay.example']],
              '... one header from the connect and envfrom data');
    $r = one_message($spec, host => 'other.example');
    is_deeply([headers_added($r)],
              [['X-Header-Milter', 'checked <alice@example.org> from other.example']],
              '... a second connection has its own private data');
    is((stat "$dir/header.sock")[2] & 0777, 0660, '... socket mode from PERMS 0660');
    is(stop($pid), 0, '... SIGTERM stops it, exit 0');
    is(slurp("$dir/header.log"), '', '... nothing on stderr');
}

# prefork-milter.pl: prefork with child_init and child_exit over TCP; a
# recipient reject, a header naming the worker and the queue id macro.
{
    my $port = do {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0)
            or die "no free port: $!";
        $s->sockport;
    };
    my $spec = "inet:$port\@127.0.0.1";
    my $log = "$dir/prefork.log";
    my $pid = start_example('prefork-milter.pl', $spec, $log);
    my $r = one_message($spec, qid => 'Q1A2B3');
    is($r->{status}, 'OK', 'prefork-milter: the message went through');
    my @h = headers_added($r);
    is(scalar @h, 1, '... one header');
    my ($worker, $qid) = ($h[0][1] // '') =~ /^(\d+) message (\S+)$/;
    is($h[0][0], 'X-Prefork-Worker', '... named X-Prefork-Worker');
    is($qid, 'Q1A2B3', '... with the queue id macro');
    ok($worker && $worker != $pid, '... added by a worker, not the master');
    $r = one_message($spec, rcpt => '<nobody@example.net>');
    is($r->{code}, 'r', '... rejects nobody@');
    # Workers that have not served may still be starting on a busy machine.
    for (1 .. 500) { last if (() = slurp($log) =~ /worker ready$/mg) >= 4; usleep(20_000) }
    is(stop($pid), 0, '... SIGTERM stops it, exit 0');
    my $text = slurp($log);
    my @ready = $text =~ /^(\d+): worker ready$/mg;
    is(scalar @ready, 4, '... child_init ran in each of its 4 workers');
    ok((grep { $_ == $worker } @ready), '... including the one that served');
    like($text, qr/^$worker: worker done after 1 messages$/m,
         '... child_exit ran in the worker at the stop, with its count');
    like($text, qr/^$worker: E: .*\bi=Q1A2B3\b/m, '... the eom callback logged the macros');
}

done_testing;
