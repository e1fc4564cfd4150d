package DiffMilters;

# Milters written against the 1.27 API only, for the differential test.

use strict;
use warnings;
use Sendmail::PMilter qw(:all);

my %milters = (
    basic => [{
        map({ my $n = $_; ($n => sub { SMFIS_CONTINUE }) }
            qw(connect helo envfrom envrcpt data header eoh body abort close unknown)),
        eom => sub { $_[0]->addheader('X-Diff', 'yes'); SMFIS_CONTINUE },
    }, SMFI_CURR_ACTS],
    replies => [{
        helo => sub { $_[0]->setreply(550, '5.7.1', 'go away'); SMFIS_REJECT },
        # Only the first sender is refused: a refused MAIL ends the
        # transaction, so the second message carries RCPT and EOM.
        envfrom => do { my $n = 0; sub { $n++ ? SMFIS_CONTINUE : SMFIS_TEMPFAIL } },
        envrcpt => sub { $_[0]->setreply(451, '4.3.0', 'later'); SMFIS_TEMPFAIL },
        eom => sub { SMFIS_DISCARD },
    }, 0],
    mods => [{
        eom => sub { my $c = shift;
            $c->addheader('X-A', 'one');
            $c->insheader('X-I', 'two', 3);
            $c->chgheader('Subject', 1, 'new');
            $c->addrcpt('<n@x>');
            $c->delrcpt('<r@x>');
            $c->quarantine('held');
            $c->chgfrom('<s@x>');
            $c->replacebody("new body\r\n");
            SMFIS_ACCEPT },
    }, SMFI_CURR_ACTS],
    negotiate => [{
        negotiate => sub { my ($c, $v, $a, $p) = @_;
            $$a &= SMFIF_ADDHDRS; $$p = SMFIP_NOHELO | SMFIP_NOUNKNOWN; SMFIS_CONTINUE },
        connect => sub { SMFIS_ACCEPT },
    }, SMFIF_ADDHDRS],
    dies => [{
        helo => sub { die "helo died\n" },
        envfrom => sub { SMFIS_CONTINUE },
    }, 0],
    empty_args => [{
        envfrom => sub { SMFIS_CONTINUE },
        envrcpt => sub { SMFIS_CONTINUE },
    }, 0],
    mlreply => [{
        helo => sub { $_[0]->setmlreply(550, '5.7.1', ['one', 'two']); SMFIS_REJECT },
    }, 0],
    percent => [{
        helo => sub { $_[0]->setreply(550, '5.7.1', '100% spam'); SMFIS_REJECT },
    }, 0],
    bigbody => [{
        eom => sub { $_[0]->replacebody('x' x 100_000); SMFIS_CONTINUE },
    }, SMFI_CURR_ACTS],
    insheader_empty => [{
        eom => sub { $_[0]->insheader('X-Empty', ''); SMFIS_CONTINUE },
    }, SMFI_CURR_ACTS],
    macros => [{
        eom => sub { my $c = shift;
            $c->addheader('X-Q', $c->getsymval('i') // 'none');
            $c->addheader('X-J', $c->getsymval('j') // 'none');
            SMFIS_CONTINUE },
    }, SMFI_CURR_ACTS],
);

sub milter { my $m = $milters{ $_[0] } or die "no milter $_[0]"; return @$m }

1;
