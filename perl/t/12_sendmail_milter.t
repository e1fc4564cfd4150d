# Sendmail::Milter: 0.18's function API and constants on Sendmail::PMilter,
# as Mail::Milter (Debian's libmail-milter-perl) and old milters use them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PMTest;
use Sendmail::Milter 0.18;

ok(defined &SMFIS_REJECT, 'constants exported by default');

is(SMFIS_CONTINUE, 100, 'SMFIS_CONTINUE');
is(SMFIS_TEMPFAIL, 104, 'SMFIS_TEMPFAIL');
is(SMFIF_MODBODY, SMFIF_CHGBODY, 'SMFIF_MODBODY is CHGBODY');
is(SMFI_CURR_ACTS, 0x1F, "SMFI_CURR_ACTS is 0.18's 0x1F");
is($Sendmail::Milter::DEFAULT_CALLBACKS{eom}, 'eom_callback', '%DEFAULT_CALLBACKS');
ok(!defined Sendmail::Milter::setdbg(3), 'setdbg: accepted, no effect');

# The functions act on one process-wide Sendmail::PMilter.
my $m = Sendmail::Milter::get_milter();
isa_ok($m, 'Sendmail::PMilter');
is(Sendmail::Milter::get_milter(), $m, 'get_milter: the same object');
ok(Sendmail::Milter::register('compat', {
    helo => sub { $_[0]->setreply('554', '5.7.1', "no $_[1]"); SMFIS_REJECT },
}, SMFI_CURR_ACTS), 'register');
my $ctx = $m->_context(undef)->_prepare;
my @r = PMTest::conv($ctx, PMTest::optneg(6, 0x1FF, 0x1FFFFF),
    PMTest::pkt('C', "h\0", '4', pack('n', 25), "192.0.2.1\0"),
    PMTest::pkt('H', "nodots\0"));
is(join(' ', map { $_->[0] } @r), 'O c y', 'the registered callback answers');
is($r[2][1], "554 5.7.1 no nodots\0", '... with its text');
done_testing;
