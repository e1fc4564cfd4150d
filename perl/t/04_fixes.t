# The 1.27 defects this implementation fixes (POD "COMPATIBILITY"), one
# test each, against the real engine (in-process or over a socket).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Socket qw(AF_UNIX SOCK_SEQPACKET SOCK_STREAM PF_UNSPEC);
use IO::Handle;
use Time::HiRes qw(ualarm usleep);
use Sendmail::PMilter qw(:all);
use Sendmail::PMilter::Context;
use PMTest;

my $CONN = pkt('C', "client.example\0", '4', pack('n', 4567), "1.2.3.4\0");
my @start = (optneg(6, 0x1FF, 0x1FFFFF), $CONN);
sub codes { join ' ', map { $_->[0] } @_ }

# Null sender and empty RCPT: a callback and a reply, no hang.
my @args;
my ($ctx) = ctx_for({ envfrom => sub { push @args, [@_[1 .. $#_]]; SMFIS_CONTINUE },
                      envrcpt => sub { push @args, [@_[1 .. $#_]]; SMFIS_CONTINUE } }, 0);
is(codes(conv($ctx, @start, pkt('M', "\0"), pkt('R', "\0"))), 'O c c c',
   'MAIL "\0" and RCPT "\0" are answered');
is_deeply(\@args, [[''], ['']], 'envfrom("") and envrcpt("")');

# A dying callback: one reply (TEMPFAIL by default), the right one, and the
# connection goes on.
my $log;
($ctx, $log) = ctx_for({ helo => sub { die "helo failed\n" },
                         envfrom => sub { SMFIS_ACCEPT } }, 0);
is(codes(conv($ctx, @start, pkt('H', "x\0"), pkt('M', "<a>\0"))), 'O c t a',
   'die: exactly one t for HELO, then MAIL gets its own reply (1.27: c then a stray t)');
is_deeply($log, ["helo failed\n"], 'the error goes to the log callback');
my $m = Sendmail::PMilter->new;
$m->register('x', { helo => sub { die "again\n" } }, 0);
$m->set_die_reply(SMFIS_CONTINUE);
my @w;
{
    local $SIG{__WARN__} = sub { push @w, @_ };
    $ctx = $m->_context(undef)->_prepare;
    is(codes(conv($ctx, @start, pkt('H', "x\0"))), 'O c c', 'set_die_reply(SMFIS_CONTINUE)');
}
is_deeply(\@w, ["Sendmail::PMilter: again\n"], 'without set_log the error is a warning, with a prefix');
# The Contexts of one milter share its options until a setter changes
# them; each setter's change reaches the next Context.
{
    my $first = $m->_context(undef);
    ok($first->{pmcore} == $m->_context(undef)->{pmcore}, 'Contexts share the options');
    my @seen;
    $m->set_die_reply(SMFIS_ACCEPT);
    {
        local $SIG{__WARN__} = sub { };
        $ctx = $m->_context(undef)->_prepare;
        is(codes(conv($ctx, @start, pkt('H', "x\0"))), 'O c a', 'set_die_reply after a Context was made');
    }
    $m->set_log(sub { push @seen, $_[1] });
    $ctx = $m->_context(undef)->_prepare;
    conv($ctx, @start, pkt('H', "x\0"));
    is_deeply(\@seen, ["again\n"], 'set_log after a Context was made');
    is($first->{pmcore}{die_reply}, SMFIS_CONTINUE, 'a Context made before keeps its options');
    $m->register('x', { helo => sub { die "third\n" } }, { read_timeout => 2 });
    is($m->_context(undef)->{pmcore}{read_timeout_ms}, 2000, 'register after a Context was made');
}
($ctx, $log) = ctx_for({ helo => sub { return 1 } }, 0);
is(codes(conv($ctx, @start, pkt('H', "x\0"))), 'O c t', 'an invalid return code gives t');
like($log->[0], qr/^invalid callback return 1 from helo/, '... and is logged');
($ctx, $log) = ctx_for({ close => sub { die "close died\n" } }, 0);
is(codes(conv($ctx, @start, pkt('Q'))), 'O c', 'a dying close callback writes nothing');
is_deeply($log, ["close died\n"], '... and is logged');

# No stray c after QUIT or end of stream.
($ctx) = ctx_for({ close => sub { SMFIS_CONTINUE } }, 0);
is(codes(conv($ctx, @start, pkt('Q'))), 'O c', 'QUIT: no reply (1.27 wrote c c c)');
($ctx) = ctx_for({ close => sub { SMFIS_CONTINUE } }, 0);
conv($ctx, @start);
$ctx->_eof;
is(length $ctx->_output, 0, 'end of stream: no reply (1.27 wrote c c)');

# A replaced body goes out in chunks of at most 65535 bytes, contiguous.
my $body = join '', map { chr(65 + $_ % 26) x 1000 } 0 .. 199;
($ctx) = ctx_for({ eom => sub { $_[0]->replacebody($body); $_[0]->addheader('X', 'y');
                                SMFIS_CONTINUE } }, SMFI_CURR_ACTS);
my @r = conv($ctx, @start, pkt('M', "<a>\0"), pkt('R', "<b>\0"), pkt('E'));
my @b = grep { $_->[0] eq 'b' } @r;
ok(@b >= 4 && !grep({ length $_->[1] > 65535 } @b), 'replacebody chunks <= 65535 bytes');
is(join('', map { $_->[1] } @b), $body, 'chunks join to the body');
is(codes(@r[4 .. $#r]), 'h ' . join(' ', ('b') x @b) . ' c', 'body chunks contiguous, after other mods, before the reply');

# insheader with '' and '0'.
($ctx) = ctx_for({ eom => sub { $_[0]->insheader('X-E', ''); $_[0]->insheader('X-Z', '0', 2);
                                SMFIS_CONTINUE } }, SMFIF_ADDHDRS);
@r = conv($ctx, @start, pkt('M', "<a>\0"), pkt('R', "<b>\0"), pkt('E'));
is_deeply([@{ $r[4] }], ['i', pack('N', 0) . "X-E\0\0"], 'insheader with an empty value');
is_deeply([@{ $r[5] }], ['i', pack('N', 2) . "X-Z\0" . "0\0"], 'insheader with value 0');

# setreply: every valid enhanced code; the invalid ones refused.
my %codes = ('5.7.123' => 1, '5.123.1' => 1, '5.1.1' => 1, '5.10.10' => 1,
             '4.7.1' => 0, '5.7' => 0, '6.0.0' => 0, '5.1234.1' => 0);
my %got;
{
    local $SIG{__WARN__} = sub { };
    ($ctx) = ctx_for({ helo => sub {
        $got{$_} = $_[0]->setreply(550, $_, 'x') ? 1 : 0 for keys %codes; SMFIS_CONTINUE } }, 0);
    conv($ctx, @start, pkt('H', "x\0"));
}
is($got{$_}, $codes{$_}, "setreply 550 $_: " . ($codes{$_} ? 'accepted' : 'refused')) for sort keys %codes;

# setmlreply: no empty first and last line; 1..32 lines.
my @ml;
{
    local $SIG{__WARN__} = sub { };
    ($ctx) = ctx_for({ helo => sub {
        push @ml, $_[0]->setmlreply(451, '4.3.0', ['only']) ? 1 : 0;
        push @ml, $_[0]->setmlreply(451, '4.3.0', [('l') x 33]) ? 1 : 0;
        SMFIS_TEMPFAIL } }, 0);
    @r = conv($ctx, @start, pkt('H', "x\0"));
}
is_deeply(\@ml, [1, 0], 'setmlreply: one line accepted, 33 refused');
is_deeply($r[2], ['y', "451 4.3.0 only\0"], 'setmlreply sends no empty lines');

# Wide characters die before anything is sent.
my $wide;
($ctx) = ctx_for({ eom => sub { $wide = eval { $_[0]->addheader('X', "\x{263a}"); 1 } ? 'ok' : $@;
                                SMFIS_CONTINUE } }, SMFIF_ADDHDRS);
@r = conv($ctx, @start, pkt('M', "<a>\0"), pkt('R', "<b>\0"), pkt('E'));
like($wide, qr/Wide character/, 'a wide character dies');
is(codes(@r), 'O c c c c', '... and nothing was queued');

# Maximum packet size.
($ctx) = ctx_for({}, 0);
conv($ctx, @start, pack('N', 2 * 1024 * 1024) . 'B' . ('x' x 100));
is(($ctx->_error)[0], 'TOO_BIG', 'a 2 MiB length ends the connection (default 1 MiB)');
$m = Sendmail::PMilter->new;
$m->register('x', {}, { max_packet => 200 });
$ctx = $m->_context(undef)->_prepare;
conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), pkt('H', ('h' x 300) . "\0"));
is(($ctx->_error)[0], 'TOO_BIG', 'max_packet from register()');

# Over a socket: one write per batch of replies (SOCK_SEQPACKET keeps write
# boundaries), EINTR is not EOF, and nothing follows QUIT.
sub serve_child {
    my ($cb, $flags, $setup) = @_;
    socketpair(my $mta, my $milter, AF_UNIX, SOCK_SEQPACKET, PF_UNSPEC) or die "socketpair: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $mta;
        $setup->() if $setup;
        my $mm = Sendmail::PMilter->new;
        $mm->register('x', $cb, $flags);
        $mm->_context($milter)->main;
        exit 0;
    }
    close $milter;
    return ($mta, $pid);
}
sub records {
    my ($sock, $n) = @_;
    my @got;
    for (1 .. $n) {
        my $rin = '';
        vec($rin, fileno $sock, 1) = 1;
        last unless select(my $rout = $rin, undef, undef, 5);
        my $len = sysread($sock, my $buf, 1 << 20);
        last unless $len;
        push @got, $buf;
    }
    return @got;
}
my ($mta, $pid) = serve_child({ map { $_ => sub { SMFIS_CONTINUE } } qw(connect helo envfrom envrcpt) }, 0);
syswrite $mta, optneg(6, 0x1FF, 0x1FFFFF);
my @rec = records($mta, 1);
is(scalar @rec, 1, 'negotiation reply: one write');
syswrite $mta, $CONN . pkt('H', "x\0") . pkt('M', "<a>\0") . pkt('R', "<b>\0");
@rec = records($mta, 1);
is(length $rec[0], 20, 'four pipelined commands: the four replies in one write');
syswrite $mta, pkt('Q');
@rec = records($mta, 1);
is(scalar @rec, 0, 'QUIT: nothing written, the milter closes');
waitpid $pid, 0;
is($?, 0, 'the serving process ended cleanly');

($mta, $pid) = serve_child({ helo => sub { SMFIS_CONTINUE }, envfrom => sub { SMFIS_CONTINUE } }, 0,
    sub { my $n = 0; $SIG{ALRM} = sub { $n++ }; ualarm(2000, 2000) });
syswrite $mta, optneg(6, 0x1FF, 0x1FFFFF);
my $all = join '', records($mta, 1);
for my $p (pkt('H', "x\0"), pkt('M', "<a>\0")) {
    usleep(50_000);    # the milter waits in read while SIGALRM keeps coming
    syswrite $mta, substr($p, 0, 3);
    usleep(50_000);
    syswrite $mta, substr($p, 3);
    $all .= join '', records($mta, 1);
}
is(length $all, 17 + 5 + 5, 'signals while waiting for input (EINTR) do not end the conversation');
close $mta;
waitpid $pid, 0;

done_testing;
