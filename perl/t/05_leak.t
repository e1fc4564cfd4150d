# Memory stays flat over 100,000 callbacks and 2,000 connections: every
# SV the binding creates for a callback, an action or a Context is freed.
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
        . pkt('L', "Subject\0hello\0") . pkt('B', "body\r\n") . pkt('E');
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
done_testing;
