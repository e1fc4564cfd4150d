package Sendmail::Milter;

# The Sendmail::Milter 0.18 API (Charles Ying's XS module) that
# Sendmail::PMilter 1.00 emulated and 1.20 dropped: one process-wide
# milter object behind plain functions, and 0.18's constants.  Mail::Milter
# and older milters "use Sendmail::Milter 0.18"; this makes them run on
# pmcore's Sendmail::PMilter unchanged.  Pure Perl: every call goes to the
# Sendmail::PMilter method of the same name.

use strict;
use warnings;
use Exporter 'import';
use Sendmail::PMilter ();

our $VERSION = '0.18';

# 0.18's values: the action sets stop at CHGHDRS (Sendmail::PMilter's
# SMFI_CURR_ACTS is larger), SMFIF_MODBODY is CHGBODY's old name.
use constant {
    SMFIS_CONTINUE => 100, SMFIS_REJECT => 101, SMFIS_DISCARD => 102,
    SMFIS_ACCEPT => 103, SMFIS_TEMPFAIL => 104,
    SMFIF_ADDHDRS => 0x01, SMFIF_CHGBODY => 0x02, SMFIF_MODBODY => 0x02,
    SMFIF_ADDRCPT => 0x04, SMFIF_DELRCPT => 0x08, SMFIF_CHGHDRS => 0x10,
    SMFI_V1_ACTS => 0x0F, SMFI_V2_ACTS => 0x1F, SMFI_CURR_ACTS => 0x1F,
};

our @EXPORT = qw(SMFIS_CONTINUE SMFIS_REJECT SMFIS_DISCARD SMFIS_ACCEPT
    SMFIS_TEMPFAIL SMFIF_ADDHDRS SMFIF_CHGBODY SMFIF_MODBODY SMFIF_ADDRCPT
    SMFIF_DELRCPT SMFIF_CHGHDRS SMFI_V1_ACTS SMFI_V2_ACTS SMFI_CURR_ACTS);
our @EXPORT_OK = @EXPORT;
our %EXPORT_TAGS = (all => [@EXPORT]);

# Callback names for each event, as 0.18 documented them.
our %DEFAULT_CALLBACKS = map { $_ => "${_}_callback" }
    qw(close connect helo abort envfrom envrcpt header eoh body eom);

my $milter;

# The process-wide milter, made on first use.
sub get_milter () {
    return $milter ||= Sendmail::PMilter->new;
}

# goto keeps the caller's frame: register looks named callbacks up in the
# caller's package.
sub auto_getconn ($;$) { unshift @_, get_milter(); goto &Sendmail::PMilter::auto_getconn }
sub auto_setconn ($;$) { unshift @_, get_milter(); goto &Sendmail::PMilter::auto_setconn }
sub main (;$$)         { unshift @_, get_milter(); goto &Sendmail::PMilter::main }
sub register ($$;$)    { unshift @_, get_milter(); goto &Sendmail::PMilter::register }
sub setconn ($)        { unshift @_, get_milter(); goto &Sendmail::PMilter::setconn }

# 0.18's debug level and timeout have no counterpart: accepted, ignored.
sub setdbg ($)     { return }
sub settimeout ($) { return }

1;

__END__

=head1 NAME

Sendmail::Milter - the Sendmail::Milter 0.18 API on Sendmail::PMilter

=head1 SYNOPSIS

    use Sendmail::Milter;

    Sendmail::Milter::setconn('inet:8890@127.0.0.1');
    Sendmail::Milter::register('mine', { eom => \&eom }, SMFI_CURR_ACTS);
    Sendmail::Milter::main();

=head1 DESCRIPTION

Functions on one Sendmail::PMilter object per process (C<get_milter>):
C<setconn>, C<auto_getconn>, C<auto_setconn>, C<register>, C<main>, and the
no-ops C<setdbg> and C<settimeout>.  Exports 0.18's constants by default
(SMFI_CURR_ACTS is 0x1F here, C<SMFIF_MODBODY> is C<SMFIF_CHGBODY>) and
C<%DEFAULT_CALLBACKS>.  Callbacks get Sendmail::PMilter::Context objects.

=cut
