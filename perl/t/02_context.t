# Sendmail::PMilter::Context with numeric register() FLAGS: 1.27's
# negotiation, callback arguments, Context methods and die texts, driven
# through the real engine.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Socket qw(AF_INET AF_INET6 AF_UNIX unpack_sockaddr_in unpack_sockaddr_in6
              unpack_sockaddr_un inet_ntop sockaddr_family pack_sockaddr_in inet_aton);
use Sendmail::PMilter qw(:all);
use PMTest;

my $CONN = pkt('C', "client.example\0", '4', pack('n', 4567), "1.2.3.4\0");

# --- negotiation -----------------------------------------------------------
my ($ctx) = ctx_for({ helo => sub { SMFIS_CONTINUE } }, 0);
is_deeply([conv($ctx, optneg(6, 0x1FF, 0x1FFFFF))],
    [['O', pack('N3', 6, 0x1FF, 0x800)]], 'v6: version and actions echoed, protocol & DEFAULTS');
($ctx) = ctx_for({}, 0);
is_deeply([conv($ctx, optneg(2, 0x3F, 0x3000007F))],
    [['O', pack('N3', 2, 0x3F, 0x30000000)]], 'v2 offer with MDS bits');
is($ctx->{protocol}, 0x30000000, '{protocol} after negotiation');
my $log;
($ctx, $log) = ctx_for({}, 0);
is_deeply([conv($ctx, optneg(3, 0x3F, 0x7F))], [], 'version 3 refused: no reply');
like("@$log", qr/SMFIC_OPTNEG: unsupported milter protocol version 3/, 'version 3 logged');
is(($ctx->_error)[0], 'NEGOTIATION', 'the connection ends');

# An MTA offering a version above 6 gets 6, libmilter's answer (1.27 refused
# everything but 2 and 6, so a future MTA could not use the milter at all).
for my $v (7, 0xFFFFFFFF) {
    ($ctx, $log) = ctx_for({ helo => sub { SMFIS_CONTINUE } }, 0);
    is_deeply([conv($ctx, optneg($v, 0x1FF, 0x1FFFFF), $CONN)],
        [['O', pack('N3', 6, 0x1FF, 0x800)], ['c', '']],
        sprintf('version %u answered with 6, actions echoed; the conversation goes on', $v));
    is("@$log", '', "version $v: nothing logged");
}
my @seen;
($ctx) = ctx_for({ negotiate => sub { @seen = map { $$_ } @_[1 .. 3]; SMFIS_CONTINUE } }, 0);
is_deeply([conv($ctx, optneg(9, 0x1FF, 0x1FFFFF))], [['O', pack('N3', 6, 0x1FF, 0x1FFFFF)]],
    'version 9 with a negotiate callback: the reply says 6');
is_deeply(\@seen, [6, 0x1FF, 0x1FFFFF], 'the version ref starts at 6, the masks at the raw offer');
# Below 2 is refused, as libmilter does (the engine's rule).
for my $v (0, 1) {
    ($ctx) = ctx_for({}, 0);
    is_deeply([conv($ctx, optneg($v, 0x3F, 0x7F))], [], "version $v refused: no reply");
    is(($ctx->_error)[0], 'VERSION', "version $v: the connection ends");
}

my @neg;
($ctx) = ctx_for({ negotiate => sub {
    my ($c, $v, $a, $p) = @_;
    @neg = ($$v, $$a, $$p, ref $v, $c->{cb});
    $$a &= SMFIF_ADDHDRS | SMFIF_CHGFROM;
    $$p = SMFIP_NOHELO | SMFIP_NR_HDR;
    return SMFIS_REJECT;    # ignored, as in 1.27
} }, 0);
is_deeply([conv($ctx, optneg(2, 0x3F, 0x3000007F))],
    [['O', pack('N3', 2, 0x01, 0x02)]],
    'negotiate refs; NR_HDR not offered is dropped (faked), REJECT ignored');
is_deeply(\@neg, [2, 0x3F, 0x3000007F, 'SCALAR', 'negotiate'], 'refs start at the raw offer');
is(${ $ctx->{actions_available_ref} }, 0x01, '{actions_available_ref}');
is(${ $ctx->{milter_protocol_version_ref} }, 2, '{milter_protocol_version_ref}');
is(${ $ctx->{protocol_steps_available_ref} }, 0x82, '{protocol_steps_available_ref}: what the callback set');

($ctx) = ctx_for({ negotiate => sub { ${ $_[3] } |= 0x40000000; SMFIS_CONTINUE } }, 0);
conv($ctx, optneg(6, 0x1FF, 0x1FFFFF));
is(($ctx->_error)[0], 'NEGOTIATION', 'an unoffered protocol bit ends the connection');

($ctx) = ctx_for({ negotiate => sub { SMFIS_ALL_OPTS } }, 0);
is_deeply([conv($ctx, optneg(6, 0x1FF, 0x1FFFFF))],
    [['O', pack('N3', 6, 0x1FF, 0x77F)]],
    'SMFIS_ALL_OPTS from negotiate: every action, NO* for missing callbacks, SKIP');

# --- callback arguments ----------------------------------------------------
my @calls;
my %rec = map { my $n = $_; ($n => sub { my $c = shift; push @calls, [$n, $c->{cb}, @_]; SMFIS_CONTINUE }) }
    qw(connect helo envfrom envrcpt data header eoh body eom abort close unknown);
($ctx) = ctx_for(\%rec, 0);
my @r = conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), $CONN,
    pkt('H', "helo.example\0"), pkt('M', "<a\@b>\0SIZE=10\0"), pkt('R', "<r\@x>\0"),
    pkt('T'), pkt('L', "X-Empty\0\0"), pkt('N'), pkt('B', "line1\r\nline2\r\n"),
    pkt('E'), pkt('U', "FOO bar\0"), pkt('A'), pkt('M', "\0"), pkt('R', "\0"), pkt('Q'));
is(join('', map { $_->[0] } @r), 'O' . ('c' x 12), 'one reply per command, none for abort, none after QUIT');
is_deeply([map { $_->[0] } @calls],
    [qw(connect helo envfrom envrcpt data header eoh body eom unknown envfrom envrcpt abort close)],
    'callbacks in order (ABORT outside a message calls nothing)');
is($calls[0][1], 'connect', '{cb} holds the running callback');
is($calls[0][2], 'client.example', 'connect hostname');
is($calls[0][3], pack_sockaddr_in(4567, inet_aton('1.2.3.4')), 'connect: packed sockaddr_in');
is_deeply([@{ $calls[1] }[2 .. $#{ $calls[1] }]], ['helo.example'], 'helo argument');
is_deeply([@{ $calls[2] }[2 .. $#{ $calls[2] }]], ['<a@b>', 'SIZE=10'], 'envfrom arguments');
is_deeply([@{ $calls[5] }[2 .. $#{ $calls[5] }]], ['X-Empty', ''], 'header with empty value');
is_deeply([@{ $calls[7] }[2 .. $#{ $calls[7] }]], ["line1\r\nline2\r\n", 14], 'body chunk and length');
is_deeply([@{ $calls[9] }[2 .. $#{ $calls[9] }]], ['FOO bar'], 'unknown command');
is_deeply([@{ $calls[10] }[2 .. $#{ $calls[10] }]], [''], 'null sender: envfrom("") (no hang)');
is_deeply([@{ $calls[11] }[2 .. $#{ $calls[11] }]], [''], 'empty RCPT: envrcpt("") (no hang)');
is(scalar @{ $calls[4] }, 2, 'data has no arguments');

sub sa_of {
    my ($packet) = @_;
    my $sa;
    my ($c) = ctx_for({ connect => sub { $sa = $_[2]; SMFIS_CONTINUE } }, 0);
    conv($c, optneg(6, 0x1FF, 0x1FFFFF), $packet);
    return $sa;
}
my $sa6 = sa_of(pkt('C', "h6\0", '6', pack('n', 25), "IPv6:2001:db8::25\0"));
is(sockaddr_family($sa6), AF_INET6, 'IPv6 sockaddr without Socket6');
is(length $sa6, 28, 'sockaddr_in6 is 28 bytes');
my ($p6, $a6) = unpack_sockaddr_in6($sa6);
is("$p6 " . inet_ntop(AF_INET6, $a6), '25 2001:db8::25', 'IPv6 port and address (IPv6: stripped)');
my $saun = sa_of(pkt('C', "localhost\0", 'L', pack('n', 0), "/var/run/x.sock\0"));
is(unpack_sockaddr_un($saun), '/var/run/x.sock', 'unix sockaddr');
ok(!defined sa_of(pkt('C', "unknown\0", 'U')), 'unknown family: undef');
ok(!defined sa_of(pkt('C', "h\0", '4', pack('n', 1), "not-an-address\0")), 'IPv4 text that is no address: undef');

# --- replies ---------------------------------------------------------------
sub replies_for {
    my ($cb, $flags, @packets) = @_;
    my ($c, $l) = ctx_for($cb, $flags);
    my @out = conv($c, optneg(6, 0x1FF, 0x1FFFFF), $CONN, @packets);
    shift @out;
    return (\@out, $l, $c);
}
my ($out) = replies_for({ helo => sub { $_[0]->setreply(550, '5.7.1', 'go away'); SMFIS_REJECT } },
    0, pkt('H', "x\0"));
is_deeply($out->[1], ['y', "550 5.7.1 go away\0"], 'setreply + REJECT');
($out) = replies_for({ helo => sub { $_[0]->setreply(550, '5.7.1', 'x'); SMFIS_TEMPFAIL } },
    0, pkt('H', "x\0"));
is($out->[1][0], 't', 'a 5xx text is not used for TEMPFAIL');
my $reply_seen;
($out) = replies_for({ helo => sub { $_[0]->setreply(450, '4.7.1', 'x'); SMFIS_CONTINUE },
                       envfrom => sub { $reply_seen = $_[0]->{reply}; SMFIS_TEMPFAIL } },
    0, pkt('H', "x\0"), pkt('M', "<a>\0"));
ok(!defined $reply_seen, '{reply} cleared after every callback');
is($out->[2][0], 't', 'the text does not outlive its callback');
($out) = replies_for({ helo => sub {
    $_[0]->setmlreply(550, '5.7.1', ['line one', 'line two', 'line three']); SMFIS_REJECT } },
    0, pkt('H', "x\0"));
is_deeply($out->[1], ['y', "550-5.7.1 line one\r\n550-5.7.1 line two\r\n550 5.7.1 line three\0"],
    'setmlreply: exactly the lines given');
($out) = replies_for({ helo => sub { $_[0]->shutdown; SMFIS_TEMPFAIL } }, 0, pkt('H', "x\0"));
is_deeply($out->[1], ['y', "421 4.7.0 Closing communications channel\0"], 'shutdown');

# --- the five valid return codes -----------------------------------------
my %ret = (SMFIS_CONTINUE, 'c', SMFIS_REJECT, 'r', SMFIS_DISCARD, 'd', SMFIS_ACCEPT, 'a',
           SMFIS_TEMPFAIL, 't', '100' => 'c', SMFIS_MSG_LOOP, 't', SMFIS_ALL_OPTS, 't',
           0 => 't', 'continue' => 't');
for my $rc (sort keys %ret) {
    my ($o, $l) = replies_for({ helo => sub { $rc } }, 0, pkt('H', "x\0"));
    is($o->[1][0], $ret{$rc}, "helo returning '$rc' gives $ret{$rc}");
    if ($ret{$rc} eq 't' && $rc ne SMFIS_TEMPFAIL) {
        like($l->[0] // '', qr/^invalid callback return \Q$rc\E from helo/, "... and '$rc' is logged as invalid");
    }
}
my ($undef_out, $undef_log) = replies_for({ helo => sub { return } }, 0, pkt('H', "x\0"));
is($undef_out->[1][0], 't', 'helo returning nothing gives t');
like($undef_log->[0], qr/^invalid callback return undef from helo/, '... logged as undef');

# --- eom modifications -----------------------------------------------------
($out) = replies_for({ eom => sub {
    my $c = shift;
    $c->addheader('X-A', 'v1');
    $c->addheader('X-E', '');
    $c->insheader('X-I', 'v2');
    $c->insheader('X-I2', 'v3', 5);
    $c->chgheader('Subject', 2, 'new');
    $c->chgheader('X-Del', 1, undef);
    $c->addrcpt('<n@x>');
    $c->addrcpt_par('<p@x>', 'NOTIFY=NEVER');
    $c->delrcpt('<r@x>');
    $c->progress;
    $c->quarantine('because');
    $c->replacebody("new body\r\n");
    $c->chgfrom('<s@x>');
    $c->setsender('<t@x>');
    SMFIS_ACCEPT } }, SMFI_CURR_ACTS, pkt('M', "<a>\0"), pkt('R', "<b>\0"), pkt('E'));
is_deeply([map { [$_->[0], $_->[1]] } @$out[3 .. $#$out]], [
    ['h', "X-A\0v1\0"], ['h', "X-E\0\0"], ['i', pack('N', 0) . "X-I\0v2\0"],
    ['i', pack('N', 5) . "X-I2\0v3\0"], ['m', pack('N', 2) . "Subject\0new\0"],
    ['m', pack('N', 1) . "X-Del\0\0"], ['+', "<n\@x>\0"], ['2', "<p\@x>\0NOTIFY=NEVER\0"],
    ['-', "<r\@x>\0"], ['p', ''], ['q', "because\0"], ['e', "<s\@x>\0"], ['e', "<t\@x>\0"],
    ['b', "new body\r\n"], ['a', ''],
], 'eom: every modification in call order (body last), then the verdict');

# --- die texts -------------------------------------------------------------
my %die;
my $probe = sub {
    my ($name, $code) = @_;
    return sub { my $c = shift; $die{$name} = eval { $code->($c); 1 } ? 'ok' : $@; SMFIS_CONTINUE };
};
my @checks = (
    [helo => 'addheader-stage', sub { $_[0]->addheader('X', 'v') }, "addheader: called outside of EOM\n"],
    [eom => 'addheader-name', sub { $_[0]->addheader('', 'v') }, "addheader: no header name\n"],
    [eom => 'addheader-flag', sub { $_[0]->addheader('X', 'v') }, "addheader: SMFIF_ADDHDRS not in capability list\n"],
    [eom => 'insheader-name', sub { $_[0]->insheader(undef, 'v') }, "insheader: no header name\n"],
    [eom => 'insheader-value', sub { $_[0]->insheader('X', undef) }, "insheader: no header value\n"],
    [eom => 'insheader-flag', sub { $_[0]->insheader('X', 'v') }, "addheader: SMFIF_ADDHDRS not in capability list\n"],
    [helo => 'insheader-stage', sub { $_[0]->insheader('X', 'v') }, "insheader: called outside of EOM\n"],
    [eom => 'chgheader-name', sub { $_[0]->chgheader('', 1, 'v') }, "chgheader: no header name\n"],
    [eom => 'chgheader-flag', sub { $_[0]->chgheader('X', 1, 'v') }, "chgheader: SMFIF_CHGHDRS not in capability list\n"],
    [eom => 'addrcpt-addr', sub { $_[0]->addrcpt('') }, "addrcpt: no recipient specified\n"],
    [eom => 'addrcpt-flag', sub { $_[0]->addrcpt('<a>') }, "addrcpt: SMFIF_ADDRCPT not in capability list\n"],
    [eom => 'addrcpt_par-addr', sub { $_[0]->addrcpt_par('', 'X') }, "addrcpt: no recipient specified\n"],
    [eom => 'addrcpt_par-flag', sub { $_[0]->addrcpt_par('<a>', 'X') }, "addrcpt_par: SMFIF_ADDRCPT_PAR not in capability list\n"],
    [eom => 'delrcpt-addr', sub { $_[0]->delrcpt(undef) }, "delrcpt: no recipient specified\n"],
    [eom => 'delrcpt-flag', sub { $_[0]->delrcpt('<a>') }, "delrcpt: SMFIF_DELRCPT not in capability list\n"],
    [eom => 'chgfrom-addr', sub { $_[0]->chgfrom('') }, "chgfrom: no sender specified\n"],
    [eom => 'chgfrom-flag', sub { $_[0]->chgfrom('<a>') }, "chgfrom: SMFIF_CHGFROM not in capability list\n"],
    [eom => 'setsender-addr', sub { $_[0]->setsender('') }, "setsender: no sender specified\n"],
    [eom => 'setsender-flag', sub { $_[0]->setsender('<a>') }, "setsender: SMFIF_CHGFROM not in capability list\n"],
    [helo => 'progress-stage', sub { $_[0]->progress }, "progress: called outside of EOM\n"],
    [eom => 'quarantine-flag', sub { $_[0]->quarantine('x') }, "quarantine: SMFIF_QUARANTINE not in capability list\n"],
    [eom => 'replacebody-flag', sub { $_[0]->replacebody('x') }, "replacebody: SMFIF_CHGBODY not in capability list\n"],
    [helo => 'replacebody-stage', sub { $_[0]->replacebody('x') }, "replacebody: called outside of EOM\n"],
    [eom => 'write_packet-reply', sub { $_[0]->write_packet('c') }, qr/^write_packet: packet 'c' is written by the engine/],
    [eom => 'read_block', sub { $_[0]->read_block(\my $b, 4) }, qr/^read_block: not available/],
);
my (%by_event, %want);
for my $c (@checks) {
    my ($ev, $name, $code, $want) = @$c;
    push @{ $by_event{$ev} }, $probe->($name, $code);
    $want{$name} = $want;
}
my %cbs = map { my $list = $by_event{$_}; ($_ => sub { $_->(@_) for @$list; SMFIS_CONTINUE }) } keys %by_event;
replies_for(\%cbs, 0, pkt('H', "x\0"), pkt('M', "<a>\0"), pkt('R', "<b>\0"), pkt('E'));
for my $name (map { $_->[1] } @checks) {
    if (ref $want{$name}) { like($die{$name}, $want{$name}, "die text: $name") }
    else                  { is($die{$name}, $want{$name}, "die text: $name") }
}

my $value_die;
replies_for({ eom => sub { $value_die = eval { $_[0]->addheader('X', undef); 1 } ? 'ok' : $@;
                           SMFIS_CONTINUE } }, SMFIF_ADDHDRS, pkt('M', "<a>\0"), pkt('R', "<b>\0"),
           pkt('E'));
is($value_die, "addheader: no header value\n", 'die text: addheader-value (checked after the flag)');

my @w;
my ($sr, $smr, $smr2);
{
    local $SIG{__WARN__} = sub { push @w, @_ };
    replies_for({ helo => sub { my $c = shift;
        $sr = $c->setreply(250, '2.0.0', 'ok');
        $smr = $c->setmlreply(550, '5.7.1', 'not an array');
        $smr2 = $c->setmlreply(550, '5.7.1', ["a\r\nb"]);
        SMFIS_CONTINUE } }, 0, pkt('H', "x\0"));
}
ok(!defined $sr, 'setreply with a 2xx code: undef');
ok(!defined $smr && !defined $smr2, 'setmlreply with bad lines: undef');
is(scalar(grep { /^setreply: bad reply arguments at / } @w), 1, 'setreply warning text');
is(scalar(grep { /^setmlreply: bad reply arguments at / } @w), 2, 'setmlreply warning text');

# --- priv, symbols, internals ---------------------------------------------
my %seen;
replies_for({
    connect => sub { my $c = shift; $c->setpriv({ n => 1 }); SMFIS_CONTINUE },
    envfrom => sub { my $c = shift;
        $seen{priv} = $c->getpriv->{n};
        $seen{i} = $c->getsymval('i');
        $seen{braced} = $c->getsymval('{i}');
        $seen{j} = $c->getsymval('j');
        $seen{none} = $c->getsymval('nope');
        $seen{sym} = $c->{symbols}{M}{i};
        $seen{keys} = join ',', sort keys %{ $c->{symbols} };
        $seen{ro} = eval { $c->{symbols}{M} = {}; 1 } ? 'writable' : 'read-only';
        SMFIS_CONTINUE },
    eom => sub { my $c = shift;
        $seen{wp} = $c->write_packet('h', "X-WP\0v\0");
        $seen{hook} = $c->call_hooks('helo');
        SMFIS_CONTINUE },
    helo => sub { $_[0]->setreply(550, '5.1.1', 'x'); SMFIS_REJECT },
}, SMFIF_ADDHDRS,
    pkt('D', "C", "j\0mx.example\0"), pkt('D', "M", "i\0Q123\0{mail_addr}\0a\@b\0"),
    pkt('M', "<a>\0"), pkt('R', "<b>\0"), pkt('E'));
is($seen{priv}, 1, 'setpriv/getpriv');
is($seen{i}, 'Q123', 'getsymval');
is($seen{braced}, 'Q123', 'getsymval tries the other brace form');
is($seen{j}, 'mx.example', 'getsymval from the connect stage');
ok(!defined $seen{none}, 'unknown macro: undef');
is($seen{sym}, 'Q123', '$ctx->{symbols}{M}{i}');
is($seen{keys}, 'C,M', 'keys of {symbols}');
is($seen{ro}, 'read-only', '{symbols} is read-only');
is($seen{wp}, 8, 'write_packet returns the length');
is($seen{hook}, 'y', 'call_hooks runs a callback and returns its reply letter');

# {symbols} is tied to a Symbols object that holds its Context weakly:
# the Context goes when its last reference does, the view stays, empty.
{
    my $m = Sendmail::PMilter->new;
    $m->register('x', {}, 0);
    my $c = $m->_context(undef);
    my $t = tied %{ $c->{symbols} };
    isa_ok($t, 'Sendmail::PMilter::Context::Symbols', 'the tie object');
    ok($t->{ctx} == $c, '... which refers to its Context');
    my $sym = $c->{symbols};
    undef $c;
    ok(!defined $t->{ctx}, '... weakly: the Context is gone with its last reference');
    is_deeply([keys %$sym], [], 'a view without its Context has no stages');
    ok(!defined $sym->{M}, '... and no macros');
}

# Callback arguments belong to the callback: a reference kept to one, or
# a change made to it through @_, never shows in another callback's.
sub header_conv {
    my ($cb) = @_;
    my ($ctx) = ctx_for($cb, 0);
    conv($ctx, optneg(6, 0x1FF, 0x1FFFFF), pkt('C', "h\0", '4', pack('n', 25), "1.2.3.4\0"),
         pkt('M', "<a>\0"), pkt('R', "<b>\0"),
         pkt('L', "Subject\0caf\xc3\xa9\0"), pkt('L', "to\0\xc3\xa9t\xc3\xa9\0"),
         pkt('L', "cc\0y\0"), pkt('N'), pkt('B', "one"), pkt('B', "two"), pkt('E'));
}
{
    my (@names, @values, @bodies);
    header_conv({
        header => sub { push @names, $_[1]; push @values, $_[2];
                        utf8::decode($_[2]); $_[1] =~ tr/a-z/A-Z/; SMFIS_CONTINUE },
        body   => sub { push @bodies, "$_[1]/$_[2]"; $_[1] = [1]; SMFIS_CONTINUE },
    });
    is_deeply(\@names, [qw(Subject to cc)], 'header names as sent, whatever the callback did to @_');
    is_deeply(\@values, ["caf\xc3\xa9", "\xc3\xa9t\xc3\xa9", 'y'], 'header values as bytes');
    ok(!grep({ utf8::is_utf8($_) } @values), '... never left decoded by an earlier callback');
    is_deeply(\@bodies, ['one/3', 'two/3'], 'body chunks and lengths');
    my @kept;
    header_conv({ header => sub { push @kept, \$_[2]; SMFIS_CONTINUE } });
    is_deeply([map { $$_ } @kept], ["caf\xc3\xa9", "\xc3\xa9t\xc3\xa9", 'y'],
              'a kept reference keeps its own value');
}

done_testing;
