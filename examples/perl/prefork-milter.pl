#!/usr/bin/perl
# A prefork Sendmail::PMilter milter with per-child hooks, in the style of
# the original distribution's symbol-dump example: it logs the macros it
# sees and tags each message with the worker that handled it.  Runs
# unchanged on pure-Perl Sendmail::PMilter 1.27/1.28 and on libpmcore.
#
#   perl prefork-milter.pl inet:3333@127.0.0.1
use strict;
use warnings;
use Sendmail::PMilter qw(:all);

my $conn = shift || 'inet:3333@127.0.0.1';
my $handled = 0;

my $milter = Sendmail::PMilter->new;
$milter->setconn($conn) or die "cannot listen on $conn\n";
$milter->register('prefork-milter', {
    envrcpt => sub {
        my ($ctx, $rcpt) = @_;
        return SMFIS_REJECT if $rcpt =~ /^<?nobody\@/i;
        return SMFIS_CONTINUE;
    },
    eom => sub {
        my $ctx = shift;
        my $qid = $ctx->getsymval('i') // 'unknown';
        for my $stage (sort keys %{ $ctx->{symbols} }) {
            my $m = $ctx->{symbols}{$stage};
            warn "$$: $stage: ", join(', ', map { "$_=$m->{$_}" } sort keys %$m), "\n";
        }
        $ctx->addheader('X-Prefork-Worker', "$$ message $qid");
        $handled++;
        return SMFIS_CONTINUE;
    },
}, SMFI_CURR_ACTS);

$milter->set_dispatcher(Sendmail::PMilter::prefork_dispatcher(
    max_children => 4,
    max_requests_per_child => 100,
    child_init => sub { warn "$$: worker ready\n" },
    child_exit => sub { warn "$$: worker done after $handled messages\n" },
));
$milter->main;
