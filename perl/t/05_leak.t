# Memory stays flat over 100,000 callbacks and 2,000 connections, and over
# 3,000 messages served by the engine's server loop: every SV the binding
# creates for a callback, an action or a Context is freed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Sendmail::PMilter qw(:all);
use PMTest;

sub rss_kb {
    open my $fh, '<', '/proc/self/statm' or return undef;
    my (undef, $res) = split ' ', scalar <$fh>;
    return $res * 4;    # pages of 4 KiB
}
plan skip_all => 'no /proc/self/statm on this system' unless defined rss_kb();

my $calls = 0;
my %cb = (
    connect => sub { $calls++; $_[0]->setpriv([1 .. 10]); SMFIS_CONTINUE },
    envfrom => sub { $calls++; my $i = $_[0]->getsymval('i'); SMFIS_CONTINUE },
    envrcpt => sub { $calls++; SMFIS_CONTINUE },
    header  => sub { $calls++; SMFIS_CONTINUE },
    body    => sub { $calls++; SMFIS_CONTINUE },
    eom     => sub { $calls++; my $c = shift;
                     $c->addheader('X-Seen', 'yes');
                     $c->setreply(550, '5.7.1', 'no');
                     my $s = $c->{symbols}{M};
                     eval { $c->addrcpt('') };    # a die inside a callback
                     SMFIS_REJECT },
    helo    => sub { $calls++; die "dies are freed too\n" },
    close   => sub { $calls++; SMFIS_CONTINUE },
);
my $msg = pkt('D', 'M', "i\0Q1\0") . pkt('M', "<a\@b>\0SIZE=1\0") . pkt('R', "<c\@d>\0")
        . pkt('L', "Subject\0hello\0") . pkt('N') . pkt('B', "body\r\n") . pkt('E');
my $open = optneg(6, 0x1FF, 0x1FFFFF) . pkt('C', "h\0", '4', pack('n', 25), "1.2.3.4\0")
         . pkt('H', "x\0");

sub run_connections {
    my ($conns, $msgs) = @_;
    for (1 .. $conns) {
        my ($ctx) = ctx_for(\%cb, SMFI_CURR_ACTS);
        $ctx->_feed($open);
        for (1 .. $msgs) { $ctx->_feed($msg); $ctx->_output }
        $ctx->_feed(pkt('Q'));
    }
}

run_connections(200, 10);    # warm up allocators and caches
my $before = rss_kb();
$calls = 0;
run_connections(2000, 10);
my $after = rss_kb();
cmp_ok($calls, '>=', 100_000, "$calls callbacks ran");
cmp_ok($after - $before, '<', 1024, "RSS grew by less than 1 MiB ($before KiB -> $after KiB)");

# The same under a built-in dispatcher, where the engine's server loop is
# one XS call that never returns to Perl: nothing but the binding itself
# frees what a callback's arguments need (4 KiB bodies make a leak show).
{
    require IO::Socket::UNIX;
    require File::Temp;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $sock = "$dir/leak.sock";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $m = Sendmail::PMilter->new;
        $m->setconn("unix:$sock") or exit 9;
        $m->register('leak', { %cb, helo => sub { SMFIS_CONTINUE },
                               eom => sub { $_[0]->addheader('X-Seen', 'yes'); SMFIS_CONTINUE } },
                     SMFI_CURR_ACTS);
        $m->set_dispatcher(Sendmail::PMilter::loop_dispatcher());
        $m->main;
        exit 0;
    }
    my $c;
    for (1 .. 250) { last if $c = IO::Socket::UNIX->new(Peer => $sock); select undef, undef, undef, 0.02 }
    ok($c, 'connected to the loop dispatcher') or BAIL_OUT("no milter: $!");
    my $p = Sendmail::PMilter::_Pipe->new(undef, { timeout_ms => 5000 }, fileno $c);
    $p->call('negotiate');
    $p->call('connect', 'h', '4', 25, '1.2.3.4');
    my $body = 'x' x 4096;
    my $ok = 0;
    my $messages = sub {
        for (1 .. $_[0]) {
            $p->call('mail', '<a@b>');
            $p->call('rcpt', '<c@d>');
            $p->call('header', 'Subject', "message $_");
            $p->call('eoh');
            $p->call('body', $body);
            my $r = $p->call('eom');
            $ok++ if $r->{status} eq 'OK';
        }
    };
    my $child_rss = sub {
        open my $fh, '<', "/proc/$pid/statm" or return 0;
        my (undef, $res) = split ' ', scalar <$fh>;
        return $res * 4;
    };
    $messages->(300);
    my $b = $child_rss->();
    $messages->(3000);
    my $a = $child_rss->();
    $p->call('quit');
    kill TERM => $pid;
    waitpid $pid, 0;
    is($ok, 3300, 'every message was answered');
    cmp_ok($a - $b, '<', 1024, "server loop: RSS grew by less than 1 MiB over 3000 messages ($b KiB -> $a KiB)");
}
done_testing;
