# Where the engine's lines go: the set_log sink with the connection and
# the queue id in each line, warn with a prefix by default, and syslog
# through Sys::Syslog when the milter asks for it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use Time::HiRes qw(usleep);
use Sendmail::PMilter qw(:all);
use PMTest qw(pkt);
use PMNet qw(free_port dial);

my $dir = tempdir(CLEANUP => 1);

# Negotiation, connect, MAIL with {i} before it, then half a packet and
# the end: the engine logs a truncated packet, naming the queue.
my $cut = join('',
    pkt('O', pack('NNN', 6, 0x1ff, 0x1fffff)),
    pkt('C', "mta\0" . '4' . pack('n', 25) . "192.0.2.1\0"),
    pkt('D', "Mi\0QID42\0"),
    pkt('M', "<a\@x>\0")) . substr(pkt('R', "<b\@x>\0"), 0, 7);

# A loop-dispatcher milter in a child; its sink (or warn) writes to $file.
sub run_cut {
    my ($with_sink) = @_;
    my $port = free_port();
    my $file = "$dir/log.$with_sink";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open my $out, '>>', $file or die;
        $out->autoflush(1);
        open STDERR, '>&', $out or die;
        my $m = Sendmail::PMilter->new;
        $m->setconn("inet:$port\@127.0.0.1") or exit 9;
        $m->register('t', { envfrom => sub { SMFIS_CONTINUE } }, SMFI_CURR_ACTS);
        $m->set_dispatcher(Sendmail::PMilter::loop_dispatcher());
        $m->set_log(sub { print $out "sink $_[0] $_[1]" }) if $with_sink;
        $m->main;
        exit 0;
    }
    my $c = dial($port, 250);
    ok($c, 'connected to the milter') or return '';
    print $c $cut;
    my $buf;
    sysread $c, $buf, 4096;  # the negotiation reply
    close $c;
    my $text = '';
    for (1 .. 100) {
        usleep(20_000);
        open my $in, '<', $file or next;
        $text = do { local $/; <$in> };
        last if $text =~ /TRUNCATED/;
    }
    kill 'TERM', $pid;
    waitpid $pid, 0;
    return $text;
}

my $text = run_cut(1);
like($text, qr/^sink 4 conn [1-9]\d* \(queue QID42\): protocol error TRUNCATED: /m,
     'set_log gets the level, the connection and the queue id');
$text = run_cut(0);
like($text, qr/^Sendmail::PMilter: conn [1-9]\d* \(queue QID42\): protocol error TRUNCATED/m,
     'without set_log: a warning with the prefix');

# syslog: a datagram socket stands in for /dev/log.
my $path = "$dir/log.sock";
my $dev = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path) or die $!;
my $m = Sendmail::PMilter->new;
$m->register('sysl', {}, 0);
ok($m->set_log('syslog', logsock => { type => 'unix', path => $path }),
   "set_log('syslog', ...)");
$m->{log}->(4, "conn 7 (queue Q1): something\n");
my $got = '';
vec(my $rin = '', fileno $dev, 1) = 1;
$dev->recv($got, 4096) if select($rin, undef, undef, 5);
# <20>: facility mail (2 * 8) + warning (4); the ident is the milter's name.
like($got, qr/^<20>.*sysl\[\d+\]: conn 7 \(queue Q1\): something\n?\0?\z/,
     'a line reaches syslog as mail.warning under the milter name');
eval { $m->set_log('nonsense') };
like($@, qr/set_log: not a code ref/, 'anything else is refused');

done_testing;
