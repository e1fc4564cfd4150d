package Sendmail::PMilter::Context;

# One milter connection.  The hash keeps 1.27's fields; the engine state is
# attached to it by the XS part.  Methods check arguments with 1.27's texts
# and hand the rest to libpmcore, which decides what is legal on the wire.

use 5.014;
use strict;
use warnings;
use parent 'Exporter';
use Carp;
use Sendmail::PMilter 1.27 qw(:all);

our $VERSION = '1.29';
# The last failed action's reason ("sentence (STATUS)"), for callers that
# want more than the 1.27 die text.
our $ERROR;

use constant {
    SMFIA_UNKNOWN => 'U', SMFIA_UNIX => 'L', SMFIA_INET => '4',
    SMFIA_INET6 => '6',

    SMFIC_ABORT => 'A', SMFIC_BODY => 'B', SMFIC_CONNECT => 'C',
    SMFIC_MACRO => 'D', SMFIC_BODYEOB => 'E', SMFIC_HELO => 'H',
    SMFIC_HEADER => 'L', SMFIC_MAIL => 'M', SMFIC_EOH => 'N',
    SMFIC_OPTNEG => 'O', SMFIC_RCPT => 'R', SMFIC_QUIT => 'Q',
    SMFIC_DATA => 'T', SMFIC_UNKNOWN => 'U',

    SMFIR_ADDRCPT => '+', SMFIR_DELRCPT => '-', SMFIR_ADDRCPT_PAR => '2',
    SMFIR_ACCEPT => 'a', SMFIR_REPLBODY => 'b', SMFIR_CONTINUE => 'c',
    SMFIR_DISCARD => 'd', SMFIR_CHGFROM => 'e', SMFIR_ADDHEADER => 'h',
    SMFIR_INSHEADER => 'i', SMFIR_SETSYMLIST => 'l', SMFIR_CHGHEADER => 'm',
    SMFIR_PROGRESS => 'p', SMFIR_QUARANTINE => 'q', SMFIR_REJECT => 'r',
    SMFIR_TEMPFAIL => 't', SMFIR_REPLYCODE => 'y',
};

our @EXPORT_OK = qw(SMFIA_UNKNOWN SMFIA_UNIX SMFIA_INET SMFIA_INET6);
our %EXPORT_TAGS = (all => [@EXPORT_OK]);

sub new ($$$$$) {
    my ($class, $socket, $callbacks, $flags, $version) = @_;
    my $this = bless {
        socket => $socket,
        callbacks => $callbacks,
        callback_flags => $flags,
        'milter protocol version' => $version,
        protocol => SMFI_CURR_PROT | SMFIP_MDS_256K | SMFIP_MDS_1M,
    }, ref($class) || $class;
    $this->{symbols} = _symbols_view($this); # tied, see ::Symbols below
    return $this;
}

# Attach the engine (once) with this connection's options.
sub _prepare {
    my $this = shift;
    $this->_attach($this->{callbacks}, $this->{pmcore} || { compat => 1 });
    return $this;
}

sub _compat { my $o = $_[0]->{pmcore}; return !$o || $o->{compat} }

sub _log {
    my ($this, $level, $msg) = @_;
    my $log = $this->{pmcore} && $this->{pmcore}{log};
    if ($log) { eval { $log->($level, $msg); 1 } }
    else      { warn $msg }
}

# Serve the conversation on {socket} with the engine; errors are logged,
# never rethrown (1.27 rethrew them into the dispatcher).
sub main ($) {
    my $this = shift;
    return undef unless $this->{socket};
    $this->{lastsymbol} = '';
    $this->_prepare;
    my $err = $this->_serve_fd(fileno $this->{socket});
    $this->_log(4, "milter connection: $err\n") if defined $err;
    return undef;
}

sub getpriv ($) { return $_[0]->{priv} }
sub setpriv ($$) { $_[0]->{priv} = $_[1]; return 1 }

# --- actions -------------------------------------------------------------

# _do(OP, ARGS...) runs one action of the table in pmcore_perl_actions.c
# and dies with $ERROR set when it fails; _eom_flag(NAME, FLAG, FLAGNAME)
# makes 1.27's order of checks for modifications (EOM only, then the
# register() capability list; with the hash form of register() the engine
# alone decides).  Both are in PMilter.xs, shared with addheader there.

sub setreply ($$$$) {
    my ($this, $rcode, $xcode, $message) = @_;
    $rcode ||= '';
    my $err = $this->_action('setreply', $rcode,
                             length($xcode // '') ? $xcode : undef, $message);
    if (defined $err) {
        $ERROR = "setreply: $err";
        carp 'setreply: bad reply arguments';
        return undef;
    }
    $this->{reply} = join ' ', $rcode, $xcode // '', $message;
    return 1;
}

sub setmlreply ($$$$) {
    my ($this, $rcode, $xcode, $lines) = @_;
    my $err = ref $lines eq 'ARRAY'
        ? $this->_action('setmlreply', $rcode // '',
                         length($xcode // '') ? $xcode : undef, @$lines)
        : 'not an ARRAY reference (ARGUMENT)';
    if (defined $err) {
        $ERROR = "setmlreply: $err";
        carp 'setmlreply: bad reply arguments';
        return undef;
    }
    $this->{reply} = join "\r\n", map { "$rcode $xcode $_" } @$lines;
    return 1;
}

sub shutdown ($) {
    my $this = shift;
    $this->setreply(421, '4.7.0', 'Closing communications channel');
    return 1;
}

# addheader ($$$) is in PMilter.xs: the same checks as the others here
# (name, then _eom_flag, then value), without three Perl calls per header.

# 1.27 refused '' and '0' as VALUE; any defined value is accepted now.
sub insheader ($$$;$) {
    my ($this, $name, $value, $index) = @_;
    die "insheader: no header name\n" unless $name;
    die "insheader: no header value\n" unless defined $value;
    # 1.27's text names addheader here; kept for log compatibility.
    $this->_eom_flag('insheader', undef);
    die "addheader: SMFIF_ADDHDRS not in capability list\n"
        if _compat($this) && !(($this->{callback_flags} || 0) & SMFIF_ADDHDRS);
    return $this->_do('insheader', $index || 0, $name, $value);
}

sub chgheader ($$$$) {
    my ($this, $name, $index, $value) = @_;
    die "chgheader: no header name\n" unless $name;
    $this->_eom_flag('chgheader', SMFIF_CHGHDRS, 'CHGHDRS');
    return $this->_do('chgheader', $name, $index || 0, $value // '');
}

sub addrcpt ($$) {
    my ($this, $rcpt) = @_;
    die "addrcpt: no recipient specified\n" unless $rcpt;
    $this->_eom_flag('addrcpt', SMFIF_ADDRCPT, 'ADDRCPT');
    return $this->_do('addrcpt', $rcpt);
}

# PARAMS (a string, or an array of ESMTP parameters) is sent now; 1.27
# dropped it.
sub addrcpt_par ($$$) {
    my ($this, $rcpt, $params) = @_;
    die "addrcpt: no recipient specified\n" unless $rcpt;
    $this->_eom_flag('addrcpt_par', SMFIF_ADDRCPT_PAR, 'ADDRCPT_PAR');
    $params = join ' ', @$params if ref $params eq 'ARRAY';
    return $this->_do('addrcpt_par', $rcpt,
                      defined $params && length $params ? $params : undef);
}

sub delrcpt ($$) {
    my ($this, $rcpt) = @_;
    die "delrcpt: no recipient specified\n" unless $rcpt;
    $this->_eom_flag('delrcpt', SMFIF_DELRCPT, 'DELRCPT');
    return $this->_do('delrcpt', $rcpt);
}

sub progress ($) {
    my $this = shift;
    $this->_eom_flag('progress', undef);
    return $this->_do('progress');
}

sub quarantine ($$) {
    my ($this, $reason) = @_;
    $this->_eom_flag('quarantine', SMFIF_QUARANTINE, 'QUARANTINE');
    return $this->_do('quarantine', $reason // '');
}

sub replacebody ($$) {
    my ($this, $chunk) = @_;
    $this->_eom_flag('replacebody', SMFIF_CHGBODY, 'CHGBODY');
    return $this->_do('replacebody', $chunk // '');
}

# ARGS (ESMTP parameters of the new sender) is new, as in libmilter.
sub chgfrom ($$;$) {
    my ($this, $from, $args) = @_;
    die "chgfrom: no sender specified\n" unless $from;
    $this->_eom_flag('chgfrom', SMFIF_CHGFROM, 'CHGFROM');
    return $this->_do('chgfrom', $from,
                      defined $args && length $args ? $args : undef);
}

sub setsender ($$;$) {
    my ($this, $from, $args) = @_;
    die "setsender: no sender specified\n" unless $from;
    $this->_eom_flag('setsender', SMFIF_CHGFROM, 'CHGFROM');
    return $this->_do('chgfrom', $from,
                      defined $args && length $args ? $args : undef);
}

# New: ask for a macro list per stage; only inside negotiate.
sub setsymlist ($$$) {
    my ($this, $stage, $list) = @_;
    return $this->_do('setsymlist', $stage, $list);
}

# New: the MTA's offer (version, actions, protocol) and what was agreed.
sub mta_offer  { return $_[0]->_offer }
sub negotiated { return $_[0]->_negotiated }

# --- 1.27 internals used by third-party code -----------------------------

# write_packet(CODE, DATA): modification packets are handed to the engine
# as the matching action (Mail::Decency's addheader override sends
# SMFIR_ADDHEADER this way).  Replies are the engine's: return a verdict.
my %packet_action = (
    'h' => sub { $_[0]->_do('addheader', split /\0/, $_[1], -1) },
    'i' => sub {
        my ($i, $rest) = unpack 'N a*', $_[1];
        $_[0]->_do('insheader', $i, split /\0/, $rest, -1);
    },
    'm' => sub {
        my ($i, $rest) = unpack 'N a*', $_[1];
        my ($n, $v) = split /\0/, $rest, -1;
        $_[0]->_do('chgheader', $n, $i, $v);
    },
    '+' => sub { $_[0]->_do('addrcpt', (split /\0/, $_[1])[0]) },
    '-' => sub { $_[0]->_do('delrcpt', (split /\0/, $_[1])[0]) },
    '2' => sub { $_[0]->_do('addrcpt_par', (split /\0/, $_[1])[0, 1]) },
    'e' => sub { $_[0]->_do('chgfrom', (split /\0/, $_[1])[0, 1]) },
    'q' => sub { $_[0]->_do('quarantine', (split /\0/, $_[1])[0]) },
    'b' => sub { $_[0]->_do('replacebody', $_[1]) },
    'p' => sub { $_[0]->_do('progress') },
);

sub write_packet ($$;$) {
    my ($this, $code, $data) = @_;
    $data //= '';
    my $act = $packet_action{$code}
        or croak "write_packet: packet '$code' is written by the engine; "
               . 'return a verdict instead';
    $act->($this, $data);
    return length($code) + length($data);
}

sub read_block {
    croak 'read_block: not available: the engine reads the socket';
}

# call_hooks(NAME, ARGS): runs the callback as 1.27 did ({cb}, the code
# check) and returns the reply code letter it would have written; the
# engine, not this method, talks to the MTA.
# Keyed by copies (0 + the constant), not by the constants: a constant used
# as a hash key keeps the string it was turned into, and from then on Perl
# copies that string (a malloc and a free) every time a callback returns
# the constant, about 480 instructions a callback (t/15_call_path.t).
my %code_letter;
@code_letter{map { 0 + $_ } SMFIS_CONTINUE, SMFIS_REJECT, SMFIS_DISCARD,
    SMFIS_ACCEPT, SMFIS_TEMPFAIL} = qw(c r d a t);

sub call_hooks ($$;@) {
    my ($this, $what, @args) = @_;
    $this->{cb} = $what;
    my $rc = SMFIS_CONTINUE;
    my $cb = $this->{callbacks}{$what};
    $rc = $cb->($this, @args) if defined $cb;
    my $letter = defined $rc ? $code_letter{$rc} : undef;
    die 'invalid callback return ' . ($rc // '') unless $letter;
    $letter = 'y' if defined $this->{reply} && ($letter eq 'r' || $letter eq 't');
    delete $this->{reply};
    return $letter;
}

# $ctx->{symbols}{STAGE}{NAME}: a read-only view of the engine's macros.
# Context->new ties it with _symbols_view (XS): the object is
# { ctx => a weak reference to the Context }, and no TIEHASH runs.
package Sendmail::PMilter::Context::Symbols;

use Carp;

sub FETCH {
    my ($self, $key) = @_;
    return undef unless $self->{ctx} && defined $key && length $key == 1;
    return $self->{ctx}->_stage_macros($key);
}

sub EXISTS { return defined $_[0]->FETCH($_[1]) }

sub FIRSTKEY {
    my $self = shift;
    $self->{keys} = [grep { defined $self->FETCH($_) } split //, 'CHMRTNE'];
    return shift @{ $self->{keys} };
}

sub NEXTKEY { return shift @{ $_[0]->{keys} } }
sub SCALAR  { my @k = grep { defined $_[0]->FETCH($_) } split //, 'CHMRTNE'; return scalar @k }

sub STORE  { croak 'symbols: the macro table is read-only' }
sub DELETE { croak 'symbols: the macro table is read-only' }
sub CLEAR  { croak 'symbols: the macro table is read-only' }

1;

__END__

=head1 NAME

Sendmail::PMilter::Context - one milter connection (Sendmail::PMilter 1.27 API)

=head1 METHODS

As in 1.27, with the same checks and die texts: C<getpriv>, C<setpriv>,
C<getsymval>, C<setreply>, C<setmlreply>, C<shutdown>, C<addheader>,
C<insheader>, C<chgheader>, C<addrcpt>, C<addrcpt_par>, C<delrcpt>,
C<progress>, C<quarantine>, C<replacebody>, C<chgfrom>/C<setsender>.  With
numeric register() FLAGS the modification methods die
C<NAME: called outside of EOM> outside eom and
C<NAME: SMFIF_X not in capability list> without the flag.  When the engine
refuses an action (for instance an action the MTA did not grant) the method
dies C<NAME: REASON (STATUS)>; C<$Sendmail::PMilter::Context::ERROR> keeps
the last reason.

New: C<chgfrom(ADDR, ARGS)> and C<addrcpt_par(ADDR, PARAMS)> send their
ESMTP arguments; C<setsymlist(STAGE, LIST)> (in negotiate) asks for a macro
list; C<mta_offer> and C<negotiated> return (version, actions, protocol).

=head1 INTERNALS KEPT FROM 1.27

The hash fields C<socket>, C<callbacks>, C<callback_flags>,
C<milter protocol version>, C<protocol>, C<symbols>, C<lastsymbol>, C<cb>,
C<reply>, C<priv>, C<milter_protocol_version_ref>, C<actions_available_ref>
and C<protocol_steps_available_ref> exist with 1.27's meaning.
C<< $ctx->{symbols}{CODE}{NAME} >> is a read-only view of the engine's
macro table.  C<write_packet(CODE, DATA)> works for modification packets
(h i m + - 2 e q b p), which it hands to the engine; reply codes croak.
C<call_hooks(NAME, ARGS)> runs a callback and returns the reply letter
instead of writing it.  C<read_block> croaks: the engine owns the socket.
C<new> takes 1.27's five arguments; C<main> serves C<{socket}> (any
connected socket: this is how a dispatcher of your own hands a connection
to the engine).

What cannot be kept exactly, because the engine, not Perl, owns the
conversation:

=over

=item * C<{symbols}> cannot be written (it croaks); C<{lastsymbol}> is ''.

=item * C<{protocol}> and the three C<*_ref> fields are set at negotiation
(the refs only when there is a negotiate callback; they hold what the
callback left there, before the engine refused or faked bits).

=item * C<{socket}> is undef for connections accepted by the built-in
dispatchers (the engine accepted them).

=item * C<{cb}> is set for callbacks that exist; events without a callback
are answered by the engine without running Perl.

=item * Overriding a Context method (as Mail::Decency does for
C<addheader>) works; overriding C<main> or C<read_block> does not change
how the engine reads.

=back

=head1 CALLBACK RETURN VALUES

SMFIS_CONTINUE, SMFIS_REJECT, SMFIS_DISCARD, SMFIS_ACCEPT and
SMFIS_TEMPFAIL as in 1.27 (compared as strings: "100" works), plus
SMFIS_NOREPLY and SMFIS_SKIP, and SMFIS_ALL_OPTS from negotiate.  Anything
else, or a die, is logged ("invalid callback return X from EVENT") and
answered with the die reply (see C<set_die_reply>).  The return values of
abort and close are ignored: the protocol has no reply for them.  The
undocumented 1.27 C<quit> callback runs just before close when the
conversation ended without an error.

=cut
