# Sendmail::PMilter methods, export lists and die texts (1.27 API).
use strict;
use warnings;
use Test::More;
use Errno ();
use File::Temp qw(tempdir);
use Sendmail::PMilter qw(:all);

sub dies_like (&$$) {
    my ($code, $re, $name) = @_;
    my $ok = eval { $code->(); 1 };
    ok(!$ok && $@ =~ $re, $name) or diag("got: " . ($ok ? 'no die' : $@));
}
sub warns_like (&$$) {
    my ($code, $re, $name) = @_;
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    my @r = $code->();
    ok((grep { $_ =~ $re } @w), $name) or diag("warnings: @w");
    return @r;
}

# --- exports ---------------------------------------------------------------
is(scalar @{ $Sendmail::PMilter::EXPORT_TAGS{all} }, 56, ':all has 56 names');
is(scalar @Sendmail::PMilter::EXPORT, 0, 'nothing exported by default');
my %all = map { $_ => 1 } @{ $Sendmail::PMilter::EXPORT_TAGS{all} };
ok(!$all{$_}, "$_ not in :all") for qw(SMFIP_NOHREPL SMFIP_ALL_NO_CB
    SMFIP_ALL_NO_REPLY SMFIF_MODBODY SMFI_V1_ACTS prefork_dispatcher);
ok($all{SMFIP_DEFAULTS}, 'SMFIP_DEFAULTS in :all');
is_deeply([sort @{ $Sendmail::PMilter::EXPORT_TAGS{dispatchers} }],
    [qw(ithread_dispatcher postfork_dispatcher prefork_dispatcher
        sequential_dispatcher)], ':dispatchers');
is(scalar @{ $Sendmail::PMilter::EXPORT_TAGS{callbacks} }, 13, ':callbacks has 13 names');
is(scalar @Sendmail::PMilter::EXPORT_OK, 75, 'EXPORT_OK: 73 of 1.27 + 2 new');
is_deeply(\@Sendmail::PMilter::smflags, $Sendmail::PMilter::EXPORT_TAGS{all}, '@smflags');
is($Sendmail::PMilter::DEFAULT_CALLBACKS{eom}, 'eom_callback', '%DEFAULT_CALLBACKS');
is(SMFIS_MSG_LOOP, 105, 'SMFIS_MSG_LOOP');
is(SMFIS_ALL_OPTS, 110, 'SMFIS_ALL_OPTS');
is(Sendmail::PMilter::SMFIS_NOREPLY(), 107, 'SMFIS_NOREPLY (new)');
is(Sendmail::PMilter::SMFIS_SKIP(), 108, 'SMFIS_SKIP (new)');
is("@{[SMFIM_CONNECT, SMFIM_HELO, SMFIM_ENVFROM, SMFIM_ENVRCPT, SMFIM_DATA, SMFIM_EOM, SMFIM_EOH]}",
   '0 1 2 3 4 5 6', 'SMFIM_*');
is(Sendmail::PMilter::SMFIP_ALL_NO_CB(), 0x10077F, 'SMFIP_ALL_NO_CB');
is(Sendmail::PMilter::SMFIP_ALL_NO_REPLY(), 0xFF080, 'SMFIP_ALL_NO_REPLY');
is(SMFIP_DEFAULTS, ~(0x10077F | 0xFF080), 'SMFIP_DEFAULTS is the IV complement');
is(SMFI_CURR_PROT, 0x1FFFFF, 'SMFI_CURR_PROT');
ok(Sendmail::PMilter->VERSION >= 1.28, 'VERSION >= 1.28');
ok(eval 'use Sendmail::PMilter 1.27 qw(:dispatchers); 1', 'use with version 1.27');

require Sendmail::PMilter::Context;
is(Sendmail::PMilter::Context::SMFIA_INET6(), '6', 'SMFIA_INET6');
is(Sendmail::PMilter::Context::SMFIR_ADDHEADER(), 'h', 'SMFIR_ADDHEADER');
is(Sendmail::PMilter::Context::SMFIC_BODYEOB(), 'E', 'SMFIC_BODYEOB');
is(Sendmail::PMilter::Context::SMFIF_ADDHDRS(), 1, ':all callable in Context');
is_deeply([sort @Sendmail::PMilter::Context::EXPORT_OK],
          [sort qw(SMFIA_UNKNOWN SMFIA_UNIX SMFIA_INET SMFIA_INET6)], 'Context EXPORT_OK');

# --- new, register ----------------------------------------------------------
{ package My::Milter; our @ISA = ('Sendmail::PMilter');
  sub my_eom { 100 } }
my $m = My::Milter->new;
isa_ok($m, 'My::Milter', 'new blesses into a subclass');
is_deeply({%$m}, {}, 'new makes an empty hash');

dies_like { $m->register('x', undef) } qr/^register: callbacks is undef at /, 'register undef callbacks';
dies_like { $m->register('x', []) } qr/^register: callbacks not hash ref/, 'register non-hash';
warns_like { $m->register(undef, {}) } qr/^register: no name supplied/, 'register undef name';
warns_like { $m->register([], {}) } qr/^register: passed ref as name/, 'register ref name';
sub main::named_helo { 100 }
is($m->register('x', { helo => 'named_helo', eom => 'My::Milter::my_eom',
                       connect => 'nonexistent', quit => 'kept', foo => 1 }, 0x40), 1,
   'register returns 1');
is(ref $m->{callbacks}{helo}, 'CODE', 'sub name qualified against the caller');
is(ref $m->{callbacks}{eom}, 'CODE', 'fully qualified sub name');
ok(!exists $m->{callbacks}{connect}, 'missing sub deleted');
is($m->{callbacks}{quit}, 'kept', 'unknown keys kept');
is($m->{callback_flags}, 0x40, '{callback_flags}');
is($m->{'milter protocol version'}, 6, 'version 6 with flags above 0x3F');
$m->register('x', bless({}, 'Blessed'));
is($m->{'milter protocol version'}, 2, 'version 2 without flags; blessed hash accepted');
is($m->{callback_flags}, 0, 'flags default 0');
$m->register('x', {}, { action_flags => SMFIF_ADDHDRS, protocol_flags => SMFIP_NR_HDR });
is($m->{callback_flags}, SMFIF_ADDHDRS, 'hash form: action_flags are the capability list');
is($m->{pmcore}{protocol}, SMFIP_NR_HDR, 'hash form: protocol_flags kept for the engine');
is($m->{pmcore}{compat}, 0, 'hash form: engine negotiation');

# --- set_socket, set_listen, set_dispatcher, get_max_* ---------------------
my $n = Sendmail::PMilter->new;
dies_like { $n->set_socket('x') } qr/^set_socket: not an IO::Socket instance/, 'set_socket non-socket';
is($n->set_listen(17), 1, 'set_listen');
is($n->{backlog}, 17, '{backlog}');
is($n->set_dispatcher(sub { 1 }), 1, 'set_dispatcher');
is($n->get_max_interpreters, 0, 'get_max_interpreters default');
is($n->get_max_requests, 0, 'get_max_requests default');

# --- setconn ----------------------------------------------------------------
# A descriptor setconn cannot use: no die (1.27 croaked for the first
# kinds), a false return, $! saying why and a warning with 1.27's text or
# the engine's reason.
my @bad = (
    ['nothing',               qr/^setconn: nothing: unspecified protocol at /],
    ['',                      qr/^setconn: : unspecified protocol at /],
    [undef,                   qr/^setconn: : unspecified protocol at /],
    ["\x00\xff\n garbage",     qr/^setconn: .*: unspecified protocol at /s],
    ['inet6:25@::1',          qr/unspecified protocol/],
    ['inet:25@',              qr/^setconn: inet:25\@: unspecified protocol/],
    ['unix:',                 qr/^setconn: unix:: unspecified protocol/],
    ['local:',                qr/^setconn: local:: unspecified protocol/],
    ['tcp:25',                qr/^setconn: tcp:25: unknown protocol/],
    ['inet4:25@127.0.0.1',    qr/^setconn: inet4:25\@127.0.0.1: unknown protocol/],
    ['unix:rel/path',         qr/^setconn: unix:rel\/path: path not absolute/],
    ['inet:notaport@127.0.0.1', qr/^setconn: inet:notaport\@127.0.0.1: \S.* at /],
    ['inet:99999@127.0.0.1',  qr/^setconn: inet:99999\@127.0.0.1: port out of range/],
    ['inet:-1@127.0.0.1',     qr/^setconn: inet:-1\@127.0.0.1: bad port/],
    ['inet6:25@[zz::1]',      qr/^setconn: inet6:25\@\[zz::1\]: unspecified protocol/],
    ['inet6:25@[fffff::1]',   qr/^setconn: inet6:25\@\[fffff::1\]: invalid IPv6 address/],
);
for my $case (@bad) {
    my ($desc, $re) = @$case;
    my $shown = defined $desc ? "'$desc'" : 'undef';
    $shown =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    my ($ok, $r, $errno);
    my ($w) = warns_like { $ok = eval { $r = $n->setconn($desc); $errno = $! + 0; 1 } } $re,
        "setconn $shown: the reason is warned";
    ok($ok, "setconn $shown: no die") or diag($@);
    ok(!$r, "setconn $shown: returns false");
    is($errno, Errno::EINVAL(), "setconn $shown: \$! is EINVAL");
    ok(!defined $n->{socket}, "setconn $shown: no socket set");
}
# A host name that does not resolve: the engine's reason, not errno's.
warns_like { ok(!$n->setconn('inet:25@no-such-host.invalid'), 'unresolvable host: false') }
    qr/^setconn: inet:25\@no-such-host.invalid: .*no-such-host.invalid/, 'unresolvable host: the reason names it';
my $dir = tempdir(CLEANUP => 1);
open my $f, '>', "$dir/file" or die; close $f;
my ($r) = warns_like { $n->setconn("unix:$dir/file") } qr/^setconn: unix:\Q$dir\E\/file: File exists/, 'existing file: EEXIST';
ok(!defined $r, 'setconn failure returns undef');
is($n->setconn("local:$dir/sock", 0660), 1, 'setconn local with PERMS');
isa_ok($n->{socket}, 'IO::Socket');
is((stat "$dir/sock")[2] & 0777, 0660, 'PERMS applied to the socket');
dies_like { $n->set_socket($n->{socket}) } qr/^set_socket: socket already bound/, 'set_socket twice';
dies_like { $n->set_listen(5) } qr/^set_listen: socket already bound/, 'set_listen after bind';
my $o = Sendmail::PMilter->new;
warns_like { $o->setconn("unix:$dir/sock") } qr/Address already in use/, 'live socket: EADDRINUSE';
my $t = Sendmail::PMilter->new;
is($t->setconn('inet:0@127.0.0.1'), 1, 'setconn inet');
isa_ok($t->{socket}, 'IO::Socket::INET');
my $t6 = Sendmail::PMilter->new;
SKIP: {
    skip 'no IPv6 on this host', 2 unless eval { require IO::Socket::IP;
        IO::Socket::IP->new(LocalHost => '::1', Listen => 1) };
    is($t6->setconn('inet6:0@[::1]'), 1, 'setconn inet6 with a bracketed host');
    my $w6 = Sendmail::PMilter->new;
    $w6->setconn('inet6:0');
    require Socket;
    is(Socket::sockaddr_family(getsockname $w6->{socket}), Socket::AF_INET6(),
       'inet6 without a host listens on IPv6 (1.27: IPv4)');
}

# --- main's checks and dispatcher selection --------------------------------
my $q = Sendmail::PMilter->new;
dies_like { $q->main } qr/^main: socket not bound/, 'main without socket';
$q->{socket} = 1;
dies_like { $q->main } qr/^main: callbacks not registered/, 'main without callbacks';
$q->{callbacks} = {};
dies_like { $q->main } qr/^main: milter protocol version not defined/, 'main without version';
$q->register('q', {});
my @seen;
sub My::Pkg::mine_dispatcher { my @args = @_; return sub { @seen = (\@args, @_); 'ignored' } }
{
    local $ENV{PMILTER_DISPATCHER} = 'My::Pkg::mine';
    is($q->main(3, 7, 'extra', 'more'), undef, 'main returns undef after the dispatcher');
}
is_deeply($seen[0], ['extra', 'more'], 'the constructor gets main\'s leftover arguments');
is($seen[1], $q, 'the dispatcher gets the milter');
is($seen[2], 1, '... the listening socket');
is(ref $seen[3], 'CODE', '... and the handler');
is($q->get_max_interpreters, 3, 'MAXCHILDREN stored');
is($q->get_max_requests, 7, 'MAXREQ stored');
{ local $ENV{PMILTER_DISPATCHER} = 'My::Pkg::mine'; $q->main('x', 'y'); }
is($q->get_max_interpreters, 3, 'non-numeric MAXCHILDREN ignored');
{
    local $ENV{PMILTER_DISPATCHER} = 'nosuch';
    dies_like { $q->main } qr/^Undefined subroutine &Sendmail::PMilter::nosuch_dispatcher called/,
        'unknown dispatcher name';
}
my $user = 0;
$q->set_dispatcher(sub { $user++ });
$q->main;
is($user, 1, 'set_dispatcher wins over PMILTER_DISPATCHER');

# --- sendmail.cf helpers -----------------------------------------------------
my $cf = 't/files/sendmail.cf';
is_deeply([sort $q->get_sendmail_class('w', $cf)],
    [qw(localhost mx.example.net other.example)], 'get_sendmail_class from C lines');
is_deeply([sort $q->get_sendmail_class('X', $cf)], [qw(alpha beta)], 'F file with comments');
is_deeply([$q->get_sendmail_class('R', $cf)], [], 'F -o missing file is fine');
is(scalar($q->get_sendmail_class('w', $cf)), 3, 'scalar context gives the count');
dies_like { $q->get_sendmail_class('w', '/nonexistent') } qr/^get_sendmail_class: open \/nonexistent: /, 'class open failure';
is($q->get_sendmail_option('MaxMessageSize', $cf), 1000000, 'numeric option');
is($q->get_sendmail_option('Timeout.queuereturn', $cf), 5, 'only the leading digits of a value (as 1.27)');
is($q->get_sendmail_option('NoSuch', $cf), undef, 'missing option');
dies_like { $q->get_sendmail_option('X', '/nonexistent') } qr/^get_sendmail_option: open /, 'option open failure';
is($q->auto_getconn('my-milter', $cf), 'unix:/run/my.sock', 'auto_getconn with S= not first');
dies_like { $q->auto_getconn('x', '/nonexistent') } qr/^open \/nonexistent: /, 'auto_getconn open failure dies';
dies_like { $q->auto_getconn('') } qr/^milter name not supplied\n\z/, 'auto_getconn no name';
my $as = Sendmail::PMilter->new;
warns_like { $as->auto_setconn('nomilter', $cf) } qr/^auto_setconn: no connection for nomilter found/, 'auto_setconn not found';
ok($as->auto_setconn('other', $cf), 'auto_setconn binds');
# A malformed S= in sendmail.cf: auto_setconn reports it, as setconn does.
{
    my $bad = "$dir/bad.cf";
    open my $fh, '>', $bad or die "$bad: $!";
    print $fh "Xbroken, S=tcp:25\n";
    close $fh;
    my $ab = Sendmail::PMilter->new;
    my ($ok, $r);
    warns_like { $ok = eval { $r = $ab->auto_setconn('broken', $bad); 1 } }
        qr/^setconn: tcp:25: unknown protocol/, 'auto_setconn, malformed S=: the reason is warned';
    ok($ok && !$r, 'auto_setconn, malformed S=: false, no die');
}
done_testing;
