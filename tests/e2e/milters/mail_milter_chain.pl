#!/usr/bin/perl
# A site milter made of published Mail::Milter 0.07 modules (Debian's
# libmail-milter-perl, unpacked by scripts/setup.d/70-published-milters.sh),
# put together as Mail::Milter::Chain's documentation shows, and served by
# Sendmail::PMilter, here pmcore's.  Nothing in the modules is changed:
# this file is the configuration a site would write.
#
#   perl mail_milter_chain.pl SOCKET
use strict;
use warnings;
use Sendmail::PMilter qw(:all);
use Mail::Milter::Chain;
use Mail::Milter::Module::HeloUnqualified;
use Mail::Milter::Module::HeaderFromMissing;
use Mail::Milter::Module::HeaderRegex;

my ($conn) = @ARGV;
die "usage: $0 SOCKET\n" unless defined $conn;

my $chain = new Mail::Milter::Chain;
$chain->register(&HeloUnqualified);
$chain->register(&HeaderFromMissing);
$chain->register(&HeaderRegex('^Subject: .*\bcheap pills\b')
                     ->set_message('Spam detected in %H'));

my $milter = new Sendmail::PMilter;
$milter->setconn($conn, 0666) or die "cannot listen on $conn\n";
$milter->register('mail-milter-chain', $chain, SMFI_CURR_ACTS);
$milter->main();
