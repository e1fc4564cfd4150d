# What this implementation adds to the 1.27 API: the hash form of
# register() with engine negotiation, no-reply and skip verdicts,
# setsymlist, mta_offer/negotiated, read timeouts.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Sendmail::PMilter qw(:all :extensions);
use PMTest;

sub codes { join ' ', map { $_->[0] } @_ }
my $CONN = pkt('C', "h\0", '4', pack('n', 25), "1.2.3.4\0");

# Hash form: the engine derives NO* bits from the callbacks and adds the
# protocol flags the MTA offers.
my ($ctx) = ctx_for({ header => sub { SMFIS_NOREPLY }, eom => sub { SMFIS_CONTINUE } },
                    { action_flags => SMFIF_ADDHDRS, protocol_flags => SMFIP_NR_HDR });
my @r = conv($ctx, optneg(6, 0x1FF, 0x1FFFFF));
my ($v, $a, $p) = unpack 'N3', $r[0][1];
is($a, SMFIF_ADDHDRS, 'hash form: the actions asked for');
ok($p & SMFIP_NR_HDR, 'hash form: NR_HDR granted');
ok(($p & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOBODY))
   == (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOBODY),
   'hash form: NO* bits for missing callbacks');
is_deeply([$ctx->negotiated], [6, SMFIF_ADDHDRS, $p], 'negotiated()');
is_deeply([$ctx->mta_offer], [6, 0x1FF, 0x1FFFFF], 'mta_offer()');
is(codes(conv($ctx, pkt('M', "<a>\0"), pkt('L', "Subject\0x\0"), pkt('L', "X\0y\0"), pkt('E'))),
   'c c', 'SMFIS_NOREPLY with NR_HDR: no reply to headers');

($ctx) = ctx_for({ header => sub { SMFIS_NOREPLY } }, { protocol_flags => SMFIP_NR_HDR });
is(codes(conv($ctx, optneg(6, 0x1FF, 0x7F), $CONN, pkt('M', "<a>\0"), pkt('L', "S\0x\0"))),
   'O c c c', 'NR_HDR not offered: the engine answers c itself (never a stray reply)');

# SKIP from body.
my $bodies = 0;
($ctx) = ctx_for({ body => sub { $bodies++; SMFIS_SKIP }, eom => sub { SMFIS_CONTINUE } },
                 { protocol_flags => SMFIP_SKIP });
is(codes(conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), pkt('M', "<a>\0"), pkt('B', 'x'), pkt('E'))),
   'O c s c', 'SMFIS_SKIP from body sends s when SKIP was negotiated');

# setsymlist in negotiate; the hash form's symlist option.
($ctx) = ctx_for({ negotiate => sub { $_[0]->setsymlist(SMFIM_CONNECT, 'j {daemon_name}');
                                      SMFIS_CONTINUE } }, { });
@r = conv($ctx, optneg(6, 0x1FF, 0x1FFFFF));
like($r[0][1], qr/\A.{12}\0\0\0\0j \{daemon_name\}\0\z/s, 'setsymlist: macro list in the reply');
my $err;
($ctx) = ctx_for({ helo => sub { $err = eval { $_[0]->setsymlist(1, 'x'); 1 } ? 'ok' : $@;
                                 SMFIS_CONTINUE } }, { });
conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), $CONN, pkt('H', "x\0"));
like($err, qr/^setsymlist: .*\(WRONG_STAGE\)\n\z/, 'setsymlist outside negotiate dies with the reason');
($ctx) = ctx_for({}, { symlist => { SMFIM_ENVFROM() => '{mail_addr}' } });
@r = conv($ctx, optneg(6, 0x1FF, 0x1FFFFF));
like($r[0][1], qr/\0\0\0\x02\{mail_addr\}\0\z/, 'symlist option of register()');

# Engine decisions in hash form: modification outside eom dies with the
# engine's reason; progress is allowed while the MTA waits for a reply.
my %d;
($ctx) = ctx_for({ helo => sub { my $c = shift;
        $d{add} = eval { $c->addheader('X', 'y'); 1 } ? 'ok' : $@;
        $d{progress} = eval { $c->progress; 1 } ? 'ok' : $@;
        SMFIS_CONTINUE } }, { action_flags => SMFIF_ADDHDRS });
@r = conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), $CONN, pkt('H', "x\0"));
like($d{add}, qr/^addheader: .*\(WRONG_STAGE\)\n\z/, 'addheader outside eom: engine reason');
is($d{progress}, 'ok', 'progress during helo (hash form)');
is(codes(@r), 'O c p c', '... sends p before the reply');
like($Sendmail::PMilter::Context::ERROR, qr/WRONG_STAGE/, '$Sendmail::PMilter::Context::ERROR');

# getsymval: libmilter's order (latest stage first) in every register form.
my $i;
($ctx) = ctx_for({ eom => sub { $i = $_[0]->getsymval('i'); SMFIS_CONTINUE } }, {});
conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), pkt('D', 'M', "i\0from-M\0"), pkt('M', "<a>\0"),
     pkt('D', 'E', "i\0from-E\0"), pkt('E'));
is($i, 'from-E', 'hash form: the latest stage wins');
($ctx) = ctx_for({ eom => sub { $i = $_[0]->getsymval('i'); SMFIS_CONTINUE } }, 0);
undef $i;
conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), pkt('D', 'M', "i\0from-M\0"), pkt('M', "<a>\0"),
     pkt('R', "<b>\0"), pkt('D', 'E', "i\0from-E\0"), pkt('E'));
is($i, 'from-E', 'numeric FLAGS: the latest stage wins too (1.27 gave from-M)');

# The quit hook (undocumented in 1.27) runs before close on a clean end.
my @order;
($ctx) = ctx_for({ quit => sub { push @order, 'quit'; SMFIS_CONTINUE },
                   close => sub { push @order, 'close'; SMFIS_CONTINUE } }, 0);
conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), pkt('Q'));
is("@order", 'quit close', 'quit hook, then close');

# A read timeout closes a connection that stalls inside a message.
{
    use Socket qw(AF_UNIX SOCK_STREAM PF_UNSPEC);
    socketpair(my $mta, my $milter, AF_UNIX, SOCK_STREAM, PF_UNSPEC) or die $!;
    my $pid = fork // die;
    if (!$pid) {
        close $mta;
        my $m = Sendmail::PMilter->new;
        $m->register('t', {}, { read_timeout => 0.3 });
        $m->set_log(sub { });
        $m->_context($milter)->main;
        exit 0;
    }
    close $milter;
    syswrite $mta, optneg(6, 0x1FF, 0x1FFFFF) . $CONN . pkt('M', "<a>\0");
    my $t0 = time;
    my $all = '';
    while (sysread $mta, my $buf, 4096) { $all .= $buf }
    waitpid $pid, 0;
    ok(time - $t0 < 5, 'read_timeout: the stalled connection was closed');
    is(length $all, 17 + 5 + 5, '... after answering what had arrived');
}
# An ithread gets a copy of a Context without its engine state (no double
# free, no shared session); the original keeps working.
SKIP: {
    require Config;
    skip 'perl without ithreads', 2 unless $Config::Config{useithreads};
    require threads;
    my ($c) = ctx_for({ helo => sub { SMFIS_CONTINUE } }, 0);
    conv($c, optneg(6, 0x1FF, 0x1FFFFF));
    my $t = threads->create(sub { eval { $c->_feed('x'); 1 } ? 'fed' : $@ });
    like($t->join, qr/no milter session attached/, 'a thread\'s copy has no session');
    is(codes(conv($c, pkt('C', "h\0", 'U'), pkt('H', "x\0"))), 'c c', 'the original still works');
}
done_testing;
