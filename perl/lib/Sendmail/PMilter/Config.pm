package Sendmail::PMilter::Config;

# sendmail.cf helpers of Sendmail::PMilter, defined in that package with
# 1.27's prototypes, checks and texts.  Pure Perl: none of it is protocol.

use strict;
use warnings;

our $VERSION = '1.29';

package Sendmail::PMilter;    ## no critic (MultiplePackages)

use strict;
use warnings;
use Carp;

sub get_sendmail_cf ($) {
    my $this = shift;
    return $this->{sendmail_cf} || '/etc/mail/sendmail.cf';
}

sub set_sendmail_cf ($) {
    my ($this, $cf) = @_;
    $this->{sendmail_cf} = $cf;
    return 1;
}

# The S= value of the "X<name>, ..." line of milter NAME, or undef.
sub auto_getconn ($$;$) {
    my ($this, $name, $cf) = @_;
    die "milter name not supplied\n" unless $name;
    $cf = $this->get_sendmail_cf unless defined $cf;
    open my $fh, '<', $cf or die "open $cf: $!";
    while (my $line = <$fh>) {
        $line =~ s/\s+$//;
        next unless $line =~ /^X([^,\s]+),\s*(.*)$/;
        next unless $1 eq $name;
        my $rest = $2;
        while ($rest =~ s/^(.)=([^,\s]+)(?:,\s*|$)//) {
            return $2 if $1 eq 'S';
        }
    }
    return undef;
}

sub auto_setconn ($$;$) {
    my ($this, $name, $cf) = @_;
    my $conn = $this->auto_getconn($name, $cf);
    unless (defined $conn) {
        carp "auto_setconn: no connection for $name found";
        return undef;
    }
    return $this->setconn($conn);
}

# Words of class CLASS: C lines, and F files (croak on a pipe; a missing
# file croaks unless -o).  CLASS is a regex prefix, as in 1.27.
sub get_sendmail_class ($$;$) {
    my ($this, $class, $cf) = @_;
    $cf = $this->get_sendmail_cf unless defined $cf;
    my %set;
    open my $fh, '<', $cf or croak "get_sendmail_class: open $cf: $!";
    while (my $line = <$fh>) {
        chomp $line;
        if ($line =~ /^C\s*$class\s*(.*)$/) {
            $set{$_} = 1 for grep { length } split /\s+/, $1;
        } elsif ($line =~ /^F\s*$class\s*(-o)?\s*(.*)$/) {
            my ($optional, $file) = ($1, $2);
            $file =~ s/\s+$//;
            croak "get_sendmail_class: class $class lookup resulted in pipe: $file"
                if $file =~ /^\|/;
            my $in;
            unless (open $in, '<', $file) {
                next if $optional;
                croak "get_sendmail_class: open $file: $!";
            }
            while (my $w = <$in>) {
                $w =~ s/#.*//;
                $w =~ s/\s+$//;
                next unless length $w;
                $set{$w} = 1;
            }
            close $in;
        }
    }
    close $fh;
    return keys %set;
}

sub get_sendmail_option ($$;$) {
    my ($this, $option, $cf) = @_;
    $cf = $this->get_sendmail_cf unless defined $cf;
    open my $fh, '<', $cf or croak "get_sendmail_option: open $cf: $!";
    while (my $line = <$fh>) {
        return $1 if $line =~ /^O\s*$option=(\d+)/;
    }
    return undef;
}

1;

__END__

=head1 NAME

Sendmail::PMilter::Config - sendmail.cf helpers of Sendmail::PMilter

=head1 DESCRIPTION

Defines C<get_sendmail_cf>, C<set_sendmail_cf>, C<auto_getconn>,
C<auto_setconn>, C<get_sendmail_class> and C<get_sendmail_option> in
package Sendmail::PMilter, with 1.27's behaviour (see
L<Sendmail::PMilter>).  Loaded by Sendmail::PMilter.

=cut
