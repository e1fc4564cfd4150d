# Every conversation vector of tests/vectors through the Perl API: whole,
# byte by byte, and cut in two at every offset (inputs under 4 KiB).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PMVec;
use Sendmail::PMilter qw(SMFI_CURR_ACTS);

my ($dir) = grep { -f "$_/README.md" } "$FindBin::Bin/vectors",
    "$FindBin::Bin/../../tests/vectors";
BAIL_OUT('tests/vectors not found') unless $dir;
my @files = sort glob("$dir/*.vec");
ok(@files >= 50, 'found the vectors (' . scalar(@files) . ')');

# The runner can fail: a changed expectation is reported.
{
    my $v = PMVec::parse($files[0]);
    my ($log) = PMVec::run($v);
    my @want = @{ $v->{expect} };
    ok(PMVec::compare($log, [@want[0 .. $#want - 1]]), 'self-check: a missing line is caught');
    my @changed = map { [@$_] } @want;
    $changed[0][-1] = ['str', 'not what happened'];
    ok(PMVec::compare($log, \@changed), 'self-check: a changed token is caught');
}

for my $file (@files) {
    my $v = PMVec::parse($file);
    my $want = $v->{expect};
    my ($log) = PMVec::run($v);
    my $diff = PMVec::compare($log, $want);
    ok(!$diff, "$v->{name}: whole") or diag($diff);
    ($log) = PMVec::run($v, 'bytes');
    $diff = PMVec::compare($log, $want);
    ok(!$diff, "$v->{name}: byte by byte") or diag($diff);
    my $len = PMVec::input_length($v);
    next if $len >= 4096;
    my @bad;
    for my $cut (1 .. $len - 1) {
        ($log) = PMVec::run($v, $cut);
        $diff = PMVec::compare($log, $want);
        push @bad, "cut $cut: $diff" if $diff;
    }
    ok(!@bad, "$v->{name}: every split (" . ($len - 1) . ')')
        or diag(join "\n", @bad[0 .. ($#bad < 4 ? $#bad : 4)]);
}
# Macro lookup does not depend on the register form: with 1.27's numeric
# FLAGS (whose negotiation differs, so only the lookups are compared) every
# getsymval gives what the vector expects.
for my $file (grep { /\/mac-[^\/]*\.vec\z/ } @files) {
    my $v = PMVec::parse($file);
    my $sym = sub { [grep { $_->[0][1] eq 'symval' } @{ $_[0] }] };
    my $want = $sym->($v->{expect});
    next unless @$want;
    local $PMVec::FLAGS = SMFI_CURR_ACTS;
    my ($log) = PMVec::run($v);
    my $diff = PMVec::compare($sym->($log), $want);
    ok(!$diff, "$v->{name}: getsymval with numeric FLAGS") or diag($diff);
}
done_testing;
