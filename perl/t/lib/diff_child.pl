# Child of t/08_differential.t: serve one connection (the socket on the fd
# given) with milter NAME from DiffMilters, under whichever
# Sendmail::PMilter is first in @INC (pure-Perl 1.28 or this one).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use IO::Socket;
use Sendmail::PMilter qw(:all);
use Sendmail::PMilter::Context;
use DiffMilters;

my ($fd, $name) = @ARGV;
my $sock = IO::Socket->new_from_fd($fd, 'r+') or die "fd $fd: $!";
my ($cb, $flags) = DiffMilters::milter($name);
my $m = Sendmail::PMilter->new;
$m->register('diff', $cb, $flags);
$SIG{PIPE} = 'IGNORE';
local $SIG{__WARN__} = sub { };
eval {
    Sendmail::PMilter::Context->new($sock, $m->{callbacks}, $m->{callback_flags},
                                    $m->{'milter protocol version'})->main;
};
exit 0;
