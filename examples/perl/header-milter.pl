#!/usr/bin/perl
# A Sendmail::PMilter milter in the style of the original distribution's
# examples: it adds one header to every message.  It runs unchanged on
# pure-Perl Sendmail::PMilter 1.27/1.28 and on the libpmcore binding.
#
#   perl header-milter.pl unix:/run/header-milter.sock
use strict;
use warnings;
use Sendmail::PMilter qw(:all);

my $conn = shift || 'unix:/tmp/header-milter.sock';

my %callbacks = (
    connect => sub {
        my ($ctx, $host) = @_;
        $ctx->setpriv({ host => $host });
        return SMFIS_CONTINUE;
    },
    envfrom => sub {
        my ($ctx, $from) = @_;
        $ctx->getpriv->{from} = $from;
        return SMFIS_CONTINUE;
    },
    eom => sub {
        my $ctx = shift;
        my $priv = $ctx->getpriv;
        $ctx->addheader('X-Header-Milter',
                        "checked $priv->{from} from $priv->{host}");
        return SMFIS_CONTINUE;
    },
    close => sub {
        my $ctx = shift;
        $ctx->setpriv(undef);
        return SMFIS_CONTINUE;
    },
);

my $milter = Sendmail::PMilter->new;
$milter->setconn($conn, 0660) or die "cannot listen on $conn\n";
$milter->register('header-milter', \%callbacks, SMFI_CURR_ACTS);
$milter->main;
