#!/usr/bin/perl
# The trivial milter of `make bench-perl`: every callback but negotiate,
# each returning at once, and one header (X-PMC-Bench: yes) added at EOM.
# The same file runs on this distribution's Sendmail::PMilter (libpmcore)
# and on pure-Perl Sendmail::PMilter 1.28: pick one with -I.
#
#   perl -Iperl/blib/lib -Iperl/blib/arch bench/perl/trivial_milter.pl SPEC
#   perl -Ibuild/pmilter-pp/usr/share/perl5 bench/perl/trivial_milter.pl SPEC
#
# SPEC is a Sendmail::PMilter connection (unix:/path, inet:PORT@127.0.0.1).
# Options (or the environment variable in brackets):
#   --no-reply        [PMC_BENCH_NOREPLY=1] negotiate no-reply (NR_*) for
#                     every event but EOM; libpmcore binding only (the
#                     FLAGS hash and SMFIS_NOREPLY are its extensions)
#   --dispatcher NAME [PMC_BENCH_DISPATCHER] a built-in dispatcher.  Default:
#                     'loop' where it exists (this binding: one process, one
#                     event loop, no fork per connection and no process
#                     switch between connections: the least CPU per message
#                     for callbacks that never block, and on two cores the
#                     driver has the other one), else 'postfork' (pure
#                     Perl: a process per connection and no limit on their
#                     number, so 64 concurrent connections are all served;
#                     prefork's 10 children would hold the rest back)
#   --workers N       [PMC_BENCH_WORKERS] with --dispatcher prefork on this
#                     binding: N worker processes, each an event loop taking
#                     any number of connections (to compare with 'loop')
# It runs until SIGTERM/SIGINT.
use strict;
use warnings;
use Getopt::Long qw(GetOptionsFromArray);
use Sendmail::PMilter qw(:all);

my %opt = (
    'no-reply'   => $ENV{PMC_BENCH_NOREPLY},
    'dispatcher' => $ENV{PMC_BENCH_DISPATCHER},
    'workers'    => $ENV{PMC_BENCH_WORKERS},
);
GetOptionsFromArray(\@ARGV, \%opt, 'no-reply!', 'dispatcher=s', 'workers=i')
    && @ARGV == 1
    or die "usage: $0 [--no-reply] [--dispatcher NAME] SPEC\n";
my $spec = shift;

my $ours = Sendmail::PMilter->can('loop_dispatcher') ? 1 : 0;
my $dispatcher = $opt{dispatcher} || ($ours ? 'loop' : 'postfork');
die "--no-reply needs the libpmcore Sendmail::PMilter\n"
    if $opt{'no-reply'} && !$ours;

# In no-reply mode every event but EOM is answered by nobody: the callbacks
# say so (SMFIS_NOREPLY), the MTA was told not to wait.  Each returns the
# constant itself, as milters do (a returned constant once cost a string
# copy per callback; t/15_call_path.t).
my $step = $opt{'no-reply'} ? sub { Sendmail::PMilter::SMFIS_NOREPLY() }
                            : sub { SMFIS_CONTINUE };
my %callbacks = map { ($_ => $step) }
    qw(connect helo envfrom envrcpt data header eoh body unknown);
$callbacks{abort} = $callbacks{close} = sub { SMFIS_CONTINUE };
$callbacks{eom} = sub {
    $_[0]->addheader('X-PMC-Bench', 'yes');
    return SMFIS_CONTINUE;
};

my $flags = SMFIF_ADDHDRS;
if ($opt{'no-reply'}) {
    $flags = {
        action_flags   => SMFIF_ADDHDRS,
        protocol_flags => SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL
                        | SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_UNKN
                        | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY,
    };
}

$SIG{PIPE} = 'IGNORE';
my $milter = Sendmail::PMilter->new;
$milter->set_listen(128);    # 64 connections arrive at once
$milter->setconn($spec) or die "$0: cannot listen on $spec\n";
$milter->register('pmc-bench', \%callbacks, $flags);
my $ctor = Sendmail::PMilter->can("${dispatcher}_dispatcher")
    or die "$0: no dispatcher '$dispatcher'\n";
my @params;
# This binding's prefork takes many connections per worker, each worker
# an event loop: --workers N gives N of those.
@params = (max_children => $opt{workers}, max_connections_per_child => 1024,
           max_requests_per_child => 1_000_000)
    if $opt{workers} && $dispatcher eq 'prefork' && $ours;
$milter->set_dispatcher($ctor->(@params));
$milter->main;
