package PMNet;

# Test helpers for a milter that runs in another process on a loopback TCP
# port: a port to give it, a dial that waits until it listens, GET on its
# PMCORE_METRICS port, and the repository's example milter started with
# metrics on.

use strict;
use warnings;
use Exporter 'import';
use FindBin;
use IO::Socket::INET;
use Time::HiRes qw(usleep);

our @EXPORT_OK = qw(free_port dial http_get example_cmd start_example no_example);

# A port that was free a moment ago.  The listener is closed before the
# milter binds it, so another process could take it in between; tests
# accept that small race rather than pass listening sockets around.
sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1) or die $!;
    my $p = $s->sockport;
    close $s;
    return $p;
}

# A connection to the milter, retried every 20 ms because the child may
# not listen yet: $tries attempts (300, 6 s, by default), undef if none
# succeeded.
sub dial {
    my ($port, $tries) = @_;
    for (1 .. $tries // 300) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port);
        return $c if $c;
        usleep(20_000);
    }
    return;
}

# GET $path on a metrics port: (status, body), ('', '') if nothing listens.
sub http_get {
    my ($port, $path) = @_;
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
        or return ('', '');
    print $c "GET $path HTTP/1.0\r\n\r\n";
    local $/;
    my $resp = <$c> // '';
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    return ($status // '', $body // '');
}

# The command that runs examples/perl/header-milter.pl unchanged, with this
# perl and the test's @INC, so the child loads the same (blib) build.
my $example = "$FindBin::Bin/../../examples/perl/header-milter.pl";

sub example_cmd {
    return ($^X, (map { "-I$_" } grep { !ref } @INC), $example);
}

# Why the example cannot run here, or undef: the distribution tarball ships
# without the repository's examples (as t/09_examples.t says too).
sub no_example {
    return -f $example ? undef : "no $example (not in the pmcore repository)";
}

# That example in a child on $port, with PMCORE_METRICS on $mport; its pid.
sub start_example {
    my ($port, $mport) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $ENV{PMCORE_METRICS} = "inet:$mport\@127.0.0.1";
        my @cmd = (example_cmd(), "inet:$port\@127.0.0.1");
        exec @cmd or exit 99;
    }
    return $pid;
}

1;
