# The call path keeps its SVs for a connection's life ($_[0], the
# arguments, {cb}) and sets them in place: what a callback does to them
# must look as it did with a fresh scalar per call, and a die must still
# be caught, logged and answered by policy.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use B ();
use Scalar::Util qw(weaken);
use Sendmail::PMilter qw(:all);
use PMTest;

my $CONN = pkt('C', "client.example\0", '4', pack('n', 4567), "1.2.3.4\0");
my @start = (optneg(6, 0x1FF, 0x1FFFFF), $CONN);
sub codes { join ' ', map { $_->[0] } @_ }
sub refcnt { B::svref_2object($_[0])->REFCNT }
my @msg = (pkt('M', "<a\@x>\0", "SIZE=10\0"), pkt('R', "<b\@y>\0"),
           pkt('L', "Subject\0one\0"), pkt('L', "To\0two\0"), pkt('N'),
           pkt('B', 'body'), pkt('E'));

# $_[0]: kept, weakened, assigned to.  Every callback still gets the
# Context, and the Context's refcount is what it was once the calls end.
{
    my (@kept, @seen, $weak);
    my $n = 0;
    my ($ctx) = ctx_for({
        envfrom => sub { push @kept, \$_[0]; push @seen, ref $_[0]; SMFIS_CONTINUE },
        envrcpt => sub { push @seen, ref $_[0]; weaken($_[0]); SMFIS_CONTINUE },
        header  => sub { push @seen, ref $_[0]; $_[0] = 'gone' if !$n++; SMFIS_CONTINUE },
        eoh     => sub { push @seen, ref $_[0]; undef $_[0]; SMFIS_CONTINUE },
        body    => sub { push @seen, ref $_[0]; push @kept, \$_[0]; SMFIS_CONTINUE },
        eom     => sub { push @seen, ref $_[0]; $_[0]->addheader('X-A', 'b'); SMFIS_CONTINUE },
    }, SMFIF_ADDHDRS);
    my $before = refcnt($ctx);
    is(codes(conv($ctx, @start, @msg)), 'O c c c c c c c h c', 'the conversation');
    is_deeply(\@seen, [('Sendmail::PMilter::Context') x 7], 'every callback gets the Context');
    is(refcnt($ctx), $before + 2, 'two kept references to $_[0] hold one count each');
    ok(${$kept[0]} == $ctx && ${$kept[1]} == $ctx, '... to the Context');
    ok(\${$kept[0]} != \${$kept[1]}, '... in two scalars');
    @kept = ();
    is(refcnt($ctx), $before, 'let go, the count is back');
    is(codes(conv($ctx, @msg)), 'c c c c c c h c', 'a second message');
    is(refcnt($ctx), $before + 2, 'and again after it');
    @kept = ();
    is(refcnt($ctx), $before, '... which lets go the same way');
}

# Arguments: a kept reference keeps its value; one changed or replaced
# through @_ does not show in the next call; ESMTP arguments of MAIL.
{
    my (@from, @kept, @raw);
    my ($ctx) = ctx_for({
        envfrom => sub { push @from, [@_[1 .. $#_]]; push @kept, \$_[1];
                         $_[2] = [1]; SMFIS_CONTINUE },
        envrcpt => sub { push @raw, $_[1]; $_[1] .= 'x'; utf8::upgrade($_[1]); SMFIS_CONTINUE },
    }, 0);
    conv($ctx, @start, pkt('M', "<a>\0", "SIZE=1\0", "BODY=8BITMIME\0"), pkt('R', "<r1>\0"),
         pkt('A'), pkt('M', "<b>\0", "SIZE=2\0"), pkt('R', "<r\xc3\xa9>\0"));
    is_deeply(\@from, [['<a>', 'SIZE=1', 'BODY=8BITMIME'], ['<b>', 'SIZE=2']],
              'envfrom arguments, per message');
    is_deeply([map { $$_ } @kept], ['<a>', '<b>'], 'a kept envfrom argument keeps its value');
    is_deeply(\@raw, ['<r1>', "<r\xc3\xa9>"], 'envrcpt: what the last call did to $_[1] is gone');
    ok(!utf8::is_utf8($raw[1]), '... bytes, not its upgraded string');
}

# {cb} names the running callback whatever a callback wrote there.
{
    my @cb;
    my $n = 0;
    my ($ctx) = ctx_for({
        header => sub { push @cb, $_[0]{cb};
                        my $k = $n++;
                        $k == 0 ? ($_[0]{cb} = 'mine') : $k == 1 ? ($_[0]{cb} += 0)
                      : $k == 2 ? delete $_[0]{cb}     : utf8::upgrade($_[0]{cb});
                        SMFIS_CONTINUE },
        eoh    => sub { push @cb, $_[0]{cb}; SMFIS_CONTINUE },
    }, 0);
    conv($ctx, @start, pkt('M', "<a>\0"), pkt('R', "<b>\0"), map({ pkt('L', "H$_\0v\0") } 1 .. 5), pkt('N'));
    is_deeply(\@cb, [('header') x 5, 'eoh'], '{cb} after a callback set, numified, deleted or upgraded it');
}

# A die: caught, logged, answered with the die reply (TEMPFAIL: the
# message ends there); $@ is '' when a callback starts and after one that
# returned, even if it left $@ set; a die under local $@ is still a die.
{
    my @at;
    my ($ctx, $log) = ctx_for({
        helo    => sub { push @at, $@; die "helo died\n" },
        envfrom => sub { push @at, $@; eval { die "inner\n" }; SMFIS_CONTINUE },
        envrcpt => sub { push @at, $@; local $@ = 'x'; die "rcpt died\n" },
        header  => sub { push @at, $@; die { code => 1 } },
    }, 0);
    is(codes(conv($ctx, @start, pkt('H', "x\0"), pkt('M', "<a>\0"), pkt('R', "<b>\0"),
                  pkt('A'), pkt('M', "<a>\0"), pkt('R', "<b>\0"), pkt('L', "a\0b\0"))),
       'O c t c t c t t', 'dies answered with t, the others go on');
    is_deeply(\@at, ['', '', '', '', '', ''], '$@ is empty as each callback starts');
    is($log->[0], "helo died\n", 'the die text is logged');
    is($log->[1], "rcpt died\n", '... also under local $@');
    like($log->[3], qr/^HASH\(/, '... and an exception object, as a string');
    is(scalar @$log, 4, 'nothing else is logged');
    is($@, '', '$@ is empty after the conversation');
}

# A verdict constant a callback returns is copied on the way out of the
# callback, and with it any string form the constant was given.  Nothing
# of this distribution may give one: used as a hash key, a constant keeps
# its string, and every callback that returns it then pays a malloc and a
# free (about 480 instructions; 20% of a trivial milter's message).
{
    my ($rc, @letters);
    my ($ctx) = ctx_for({
        helo    => sub { SMFIS_REJECT },
        envfrom => sub { SMFIS_CONTINUE },
        envrcpt => sub { SMFIS_TEMPFAIL },
        unknown => sub { $rc },
        eom     => sub { for my $v (SMFIS_CONTINUE, SMFIS_REJECT, SMFIS_DISCARD,
                                    SMFIS_ACCEPT, SMFIS_TEMPFAIL, '103') {
                             $rc = $v;
                             push @letters, $_[0]->call_hooks('unknown');
                         }
                         SMFIS_ACCEPT },
    }, 0);
    is(codes(conv($ctx, @start, pkt('H', "x\0"), pkt('M', "<a>\0"), pkt('R', "<b>\0"),
                  pkt('R', "<c>\0"), pkt('E'))),
       'O c r c t t a', 'the verdicts');
    is("@letters", 'c r d a t a', 'call_hooks gives each verdict its letter, a string one too');
    my @stringy = grep {
        B::svref_2object(\&{"Sendmail::PMilter::$_"})->XSUBANY->FLAGS & B::SVp_POK
    } grep { /^SMFIS_/ } @{ $Sendmail::PMilter::EXPORT_TAGS{all} },
                         @Sendmail::PMilter::extensions;
    is("@stringy", '', 'no verdict constant has a string form after a conversation');
}

done_testing;
