# GET /health, what a load balancer checks (PMCORE_METRICS, no code
# change): 200 ok while serving; 503 draining once SIGTERM began a stop,
# while a conversation inside a message is still served to its end; 503 no
# workers while a prefork master has none alive (every worker's child_init
# dies, so the master waits a second before each replacement).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(usleep time);
use Sendmail::PMilter qw(:all);
use PMTest qw(pkt);
use PMNet qw(free_port dial http_get start_example no_example);

plan skip_all => no_example() if no_example();

# Reply codes read from $c until one matching $until (5 s at most).
my %pending;
sub replies_until {
    my ($c, $until) = @_;
    my $sel = IO::Select->new($c);
    my ($codes, $t0) = ('', time);
    my $buf = \($pending{$c} //= '');
    while (time - $t0 < 5) {
        while (length $$buf >= 4 && length $$buf >= 4 + unpack('N', $$buf)) {
            my $n = unpack 'N', $$buf;
            $codes .= substr($$buf, 4, 1);
            substr($$buf, 0, 4 + $n) = '';
            return $codes if substr($codes, -1) =~ $until;
        }
        next unless $sel->can_read(0.2);
        last unless sysread $c, $$buf, 65536, length $$buf;    # EOF
    }
    return $codes;
}

# Ask until the answer is not "200 ok" (the signal is acted on at the
# dispatcher's next tick), 5 s at most.
sub health_after_ok {
    my ($mport) = @_;
    my @h;
    for (1 .. 250) {
        @h = http_get($mport, '/health');
        last unless $h[0] eq '200';
        usleep(20_000);
    }
    return \@h;
}

# The example milter, unchanged (postfork dispatcher), with a conversation
# inside a message when SIGTERM comes.
{
    my ($port, $mport) = (free_port(), free_port());
    my $pid = start_example($port, $mport);
    my $c = dial($port);
    print $c pkt('O', pack('NNN', 6, 0x1ff, 0x1fffff));
    is(replies_until($c, qr/O/), 'O', 'negotiated');
    print $c pkt('C', "mta\0" . '4' . pack('n', 25) . "192.0.2.1\0");
    is(replies_until($c, qr/c/), 'c', 'connect answered');
    print $c pkt('M', "<a\@x>\0");
    is(replies_until($c, qr/c/), 'c', 'MAIL answered: inside a message');
    is_deeply([http_get($mport, '/health')], [200, "ok\n"], 'serving: 200 ok');

    kill 'TERM', $pid;
    is_deeply(health_after_ok($mport), [503, "draining\n"],
              'after SIGTERM: 503 draining');
    # What the MTA sends anyway, whatever was negotiated.
    print $c pkt('R', "<b\@x>\0"), pkt('L', "Subject\0hi\0"), pkt('N'),
        pkt('B', "Hello.\r\n"), pkt('E');
    my $codes = replies_until($c, qr/h/);
    $codes .= replies_until($c, qr/[cartdy]/);
    like($codes, qr/hc$/,
         'the message in flight is finished during the drain, with its header');
    is_deeply([http_get($mport, '/health')], [503, "draining\n"],
              'still draining while the MTA holds the connection');
    print $c pkt('Q');
    replies_until($c, qr/never/);    # until the end of stream
    is(waitpid($pid, 0), $pid, 'the milter exits after the QUIT');
    is($?, 0, '... with status 0');
}

# A prefork master whose workers all die in child_init.
{
    my ($port, $mport) = (free_port(), free_port());
    my $pid = fork // die;
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        $ENV{PMCORE_METRICS} = "inet:$mport\@127.0.0.1";
        my $m = Sendmail::PMilter->new;
        $m->setconn("inet:$port\@127.0.0.1") or exit 9;
        $m->register('t', { eom => sub { SMFIS_CONTINUE } }, SMFI_CURR_ACTS);
        $m->set_dispatcher(Sendmail::PMilter::prefork_dispatcher(
            max_children => 1, child_init => sub { die "no worker today\n" }));
        $m->main;
        exit 0;
    }
    my $seen;
    for (1 .. 250) {
        my @h = http_get($mport, '/health');
        if ("@h" eq "503 no workers\n") { $seen = 1; last }
        usleep(20_000);
    }
    ok($seen, 'prefork with no live worker: 503 no workers');
    kill 'TERM', $pid;
    is(waitpid($pid, 0), $pid, 'the master stops');
}

done_testing;
