# The behaviours of the original 1.2x t/00_pmilter.t (spec pmilter-api.md
# §13.1), written anew: loading, can_ok, new, 48 constants read as
# "Sendmail::PMilter::NAME"->(), the sendmail.cf default and auto_getconn.
use strict;
use warnings;
use Test::More;

use_ok('Sendmail::PMilter');

can_ok('Sendmail::PMilter', qw(
    auto_getconn auto_setconn get_max_interpreters get_max_requests
    get_sendmail_cf get_sendmail_option get_sendmail_class
    ithread_dispatcher postfork_dispatcher prefork_dispatcher
    sequential_dispatcher main new register setconn set_dispatcher
    set_listen set_sendmail_cf set_socket));

my $milter = Sendmail::PMilter->new;
ok($milter, 'new gives a true value');
isa_ok($milter, 'Sendmail::PMilter');

my %constants = (
    SMFIS_CONTINUE => 100, SMFIS_REJECT => 101, SMFIS_DISCARD => 102,
    SMFIS_ACCEPT => 103, SMFIS_TEMPFAIL => 104,
    SMFIP_NOCONNECT => 0x1, SMFIP_NOHELO => 0x2, SMFIP_NOMAIL => 0x4,
    SMFIP_NORCPT => 0x8, SMFIP_NOBODY => 0x10, SMFIP_NOHDRS => 0x20,
    SMFIP_NOEOH => 0x40, SMFIP_NOHREPL => 0x80, SMFIP_NR_HDR => 0x80,
    SMFIP_NOUNKNOWN => 0x100, SMFIP_NODATA => 0x200, SMFIP_SKIP => 0x400,
    SMFIP_RCPT_REJ => 0x800, SMFIP_NR_CONN => 0x1000,
    SMFIP_NR_HELO => 0x2000, SMFIP_NR_MAIL => 0x4000,
    SMFIP_NR_RCPT => 0x8000, SMFIP_NR_DATA => 0x10000,
    SMFIP_NR_UNKN => 0x20000, SMFIP_NR_EOH => 0x40000,
    SMFIP_NR_BODY => 0x80000, SMFIP_HDR_LEADSPC => 0x100000,
    SMFIP_MDS_256K => 0x10000000, SMFIP_MDS_1M => 0x20000000,
    SMFI_V2_PROT => 0x7F, SMFI_V6_PROT => 0x1FFFFF,
    SMFIF_ADDHDRS => 0x1, SMFIF_CHGBODY => 0x2, SMFIF_MODBODY => 0x2,
    SMFIF_ADDRCPT => 0x4, SMFIF_DELRCPT => 0x8, SMFIF_CHGHDRS => 0x10,
    SMFIF_QUARANTINE => 0x20, SMFIF_CHGFROM => 0x40,
    SMFIF_ADDRCPT_PAR => 0x80, SMFIF_SETSYMLIST => 0x100, SMFIF_NONE => 0,
    SMFI_V1_ACTS => 0xF, SMFI_V2_ACTS => 0x3F, SMFI_V6_ACTS => 0x1FF,
    SMFI_CURR_ACTS => 0x1FF,
    MAXREPLYLEN => 980, MAXREPLIES => 32,
);
is(scalar keys %constants, 48, '48 constants checked');
for my $name (sort keys %constants) {
    no strict "refs";
    my $value = "Sendmail::PMilter::$name"->();
    ok(defined $value, "$name is defined");
    is($value, $constants{$name}, "$name value");
}

is($milter->get_sendmail_cf, '/etc/mail/sendmail.cf', 'default sendmail.cf');
ok($milter->set_sendmail_cf('t/files/sendmail.cf'), 'set_sendmail_cf');
is($milter->get_sendmail_cf, 't/files/sendmail.cf', 'set_sendmail_cf round-trips');
ok($milter->set_sendmail_cf(), 'set_sendmail_cf() resets');
is($milter->get_sendmail_cf, '/etc/mail/sendmail.cf', 'back to the default');

ok(!eval { $milter->auto_getconn(); 1 }, 'auto_getconn without a name dies');

my @want = ('local:/var/run/milter.sock', 'unix:/var/run/milter.sock',
            'inet:3333@localhost', 'inet6:3333@localhost', undef);
for my $i (0 .. 4) {
    is($milter->auto_getconn('test-milter', "t/files/sendmail$i.cf"), $want[$i],
       "auto_getconn from sendmail$i.cf");
}
done_testing;
