# Metrics with no code change: the example milter, unchanged, run with
# PMCORE_METRICS set, answers GET /metrics and /health, with the right
# counts after a known conversation; metrics_text gives the same inside
# the milter; a bad value stops main with a message naming it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(usleep time);
use Sendmail::PMilter qw(:all);
use PMTest qw(pkt);
use PMNet qw(free_port dial http_get example_cmd start_example no_example);

plan skip_all => no_example() if no_example();

my $dir = tempdir(CLEANUP => 1);

# Negotiate, then one message; returns the reply codes through EOM's.
sub converse {
    my ($port) = @_;
    my $c = dial($port) or return;
    print $c pkt('O', pack('NNN', 6, 0x1ff, 0x1fffff)),
        pkt('C', "mta\0" . '4' . pack('n', 25) . "192.0.2.1\0"),
        pkt('H', "helo.example\0"), pkt('M', "<a\@x>\0"), pkt('R', "<b\@x>\0"),
        pkt('L', "Subject\0hi\0"), pkt('N'), pkt('B', "Hello.\r\n"), pkt('E');
    my ($buf, @codes) = ('');
    while (!grep { $_ eq 'h' } @codes or $codes[-1] !~ /^[cartdy]$/) {
        my $got = sysread $c, $buf, 65536, length $buf;
        last unless $got;
        while (length $buf >= 4 && length $buf >= 4 + unpack('N', $buf)) {
            my $n = unpack 'N', $buf;
            push @codes, substr($buf, 4, 1);
            substr($buf, 0, 4 + $n) = '';
        }
    }
    print $c pkt('Q');
    sysread $c, $buf, 1;
    close $c;
    return join '', @codes;
}

sub value_of {
    my ($text, $series) = @_;
    return $text =~ /^\Q$series\E (\S+)$/m ? $1 : undef;
}

# The example milter, unchanged, under its default (postfork) dispatcher.
my ($port, $mport) = (free_port(), free_port());
my $pid = start_example($port, $mport);
my $codes = converse($port);
like($codes // '', qr/h.*c$/, 'the example added its header');
my ($status, $text, $quit) = ('', '', 0);
for (1 .. 250) {
    ($status, $text) = http_get($mport, '/metrics');
    $quit = value_of($text, 'pmcore_connections_closed_total{reason="quit"}') // 0;
    last if $quit == 1;
    usleep(20_000);
}
is($status, 200, 'GET /metrics: 200');
is($quit, 1, 'the QUIT is counted (the child reported to the master)');
is(value_of($text, 'pmcore_messages_total'), 1, 'one message');
is(value_of($text, 'pmcore_connections_accepted_total'), 1, 'one connection');
is(value_of($text, 'pmcore_modifications_total{kind="add_header"}'), 1,
   'one header added');
is(value_of($text, 'pmcore_negotiations_total{mta_version="6"}'), 1,
   'one negotiation at version 6');
is(value_of($text, 'pmcore_callback_duration_seconds_count{callback="eom"}'), 1,
   'eom timed once');
is_deeply([http_get($mport, '/health')], [200, "ok\n"], 'GET /health: 200 ok');
kill 'TERM', $pid;
waitpid $pid, 0;

# metrics_text inside the milter, under the loop dispatcher.
is(Sendmail::PMilter->metrics_text, undef, 'metrics_text: undef with no server');
$port = free_port();
my $out = "$dir/text";
$pid = fork // die;
if (!$pid) {
    my $m = Sendmail::PMilter->new;
    $m->setconn("inet:$port\@127.0.0.1") or exit 9;
    $m->register('t', {
        eom => sub { $_[0]->addheader('X-T', 'y'); SMFIS_CONTINUE },
        close => sub {
            open my $fh, '>', $out or die;
            print $fh Sendmail::PMilter->metrics_text;
            close $fh;
            SMFIS_CONTINUE;
        },
    }, SMFI_CURR_ACTS);
    $m->set_dispatcher(Sendmail::PMilter::loop_dispatcher());
    $m->main;
    exit 0;
}
converse($port);
for (1 .. 250) { last if -s $out; usleep(20_000) }
kill 'TERM', $pid;
waitpid $pid, 0;
open my $fh, '<', $out;
$text = do { local $/; <$fh> } // '';
is(value_of($text, 'pmcore_connections_accepted_total'), 1,
   'metrics_text in a callback: the running server counts');
like($text, qr/^# TYPE pmcore_callback_duration_seconds histogram$/m,
     '... in Prometheus text format');

# A bad value: main dies, naming the variable.
$pid = open my $err, '-|' // die;
if (!$pid) {
    open STDERR, '>&', \*STDOUT;
    $ENV{PMCORE_METRICS} = 'inet:notaport@127.0.0.1';
    my @cmd = (example_cmd(), 'inet:' . free_port() . '@127.0.0.1');
    exec @cmd or exit 99;
}
my $said = do { local $/; <$err> } // '';
close $err;
isnt($?, 0, 'a bad PMCORE_METRICS: the milter exits non-zero');
like($said, qr/PMCORE_METRICS=inet:notaport\@127\.0\.0\.1/, '... saying which value');

done_testing;
