package PMVec;

# A reader and runner for tests/vectors/*.vec (see tests/vectors/README.md)
# that plays every handler through the Sendmail::PMilter Perl API: a milter
# registered with the hash form of register(), callbacks that log and call
# Context methods, and the Context's sans-I/O feed.

use strict;
use warnings;
use Socket qw(AF_INET AF_INET6 AF_UNIX inet_ntop unpack_sockaddr_in
              unpack_sockaddr_in6 unpack_sockaddr_un sockaddr_family);
use Sendmail::PMilter qw(:all SMFIS_NOREPLY SMFIS_SKIP);
use Sendmail::PMilter::Context;

our $FLAGS;    # see run()

my @EVENTS = qw(negotiate connect helo envfrom envrcpt data header eoh body
                eom abort close unknown);
# Private sans-I/O verdict: the handler's answer comes later (_resume).
use constant PENDING => 200;
my %VERDICT = (continue => SMFIS_CONTINUE, reject => SMFIS_REJECT,
    discard => SMFIS_DISCARD, accept => SMFIS_ACCEPT,
    tempfail => SMFIS_TEMPFAIL, noreply => SMFIS_NOREPLY, skip => SMFIS_SKIP,
    all_opts => SMFIS_ALL_OPTS, pending => PENDING);

# --- tokens ------------------------------------------------------------------

# Each token: [type, value]; type is 'str' (bytes), 'num' or 'word'.
sub tokenize {
    my ($line) = @_;
    my @t;
    pos($line) = 0;
    while (pos($line) < length $line) {
        if ($line =~ /\G\s+/gc) { next }
        if ($line =~ /\G"((?:[^"\\]|\\.)*)"(?:\*(\d+))?/gc) {
            my ($s, $n) = ($1, $2);
            my %esc = ('0' => "\0", r => "\r", n => "\n", t => "\t");
            $s =~ s{\\(?:x([0-9A-Fa-f]{2})|(.))}
                   {defined $1 ? chr hex $1 : $esc{$2} // $2}ge;
            push @t, ['str', defined $n ? $s x $n : $s];
        } elsif ($line =~ /\Gu(32|16):(0x[0-9A-Fa-f]+|\d+)/gc) {
            my ($bits, $n) = ($1, $2);
            my $v = $n =~ /^0x/ ? hex $n : $n;
            push @t, ['str', pack($bits == 32 ? 'N' : 'n', $v)];
        } elsif ($line =~ /\G(-?(?:0x[0-9A-Fa-f]+|\d+))(?=\s|$)/gc) {
            my $v = $1;
            push @t, ['num', $v =~ /^(-?)0x(.*)/ ? ($1 ? -hex $2 : hex $2) : $v + 0];
        } elsif ($line =~ /\G(\S+)/gc) {
            push @t, ['word', $1];
        }
    }
    return \@t;
}

sub num { my $t = shift; return $t->[0] eq 'num' ? $t->[1] : $t->[1] }

# --- parsing -----------------------------------------------------------------

sub parse {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "$path: $!\n";
    my %v = (path => $path, on => [], steps => [], expect => [],
             cfg => { version => 6, actions => 0, protocol => 0 },
             handlers => { map { $_ => 1 } grep { $_ ne 'negotiate' } @EVENTS });
    while (my $line = <$fh>) {
        $line =~ s/\r?\n$//;
        next if $line =~ /^\s*(#|$)/;
        my $t = tokenize($line);
        my $kw = shift(@$t)->[1];
        if ($kw eq 'name') { $v{name} = $t->[0][1] }
        elsif ($kw eq 'covers') { }
        elsif ($kw eq 'milter') { parse_milter(\%v, $line) }
        elsif ($kw eq 'on') {
            my ($ev, $n) = split /#/, shift(@$t)->[1];
            push @{ $v{on} }, { event => $ev, nth => $n,
                                action => shift(@$t)->[1], args => $t };
        } elsif ($kw eq 'send' || $kw eq 'raw') {
            my $bytes = '';
            my $cmd = $kw eq 'send' ? shift(@$t)->[1] : undef;
            for (@$t) {
                die "$path: bad token in $kw\n" unless $_->[0] eq 'str';
                $bytes .= $_->[1];
            }
            $bytes = pack('N', 1 + length $bytes) . $cmd . $bytes
                if defined $cmd;
            if (@{ $v{steps} } && $v{steps}[-1]{bytes}) {
                $v{steps}[-1]{bytes} .= $bytes;
            } else {
                push @{ $v{steps} }, { bytes => $bytes };
            }
        } elsif ($kw eq 'resume') {
            push @{ $v{steps} }, { resume => $t->[0] };
        } elsif ($kw eq 'act') {
            push @{ $v{steps} }, { act => { action => shift(@$t)->[1],
                                            args => $t } };
        } elsif ($kw eq 'expect') {
            push @{ $v{expect} }, $t;
        } else {
            die "$path: unknown keyword $kw\n";
        }
    }
    return \%v;
}

sub parse_milter {
    my ($v, $line) = @_;
    while ($line =~ /(\w+(?:\.\d)?)=("(?:[^"\\]|\\.)*"|\S+)/g) {
        my ($k, $val) = ($1, $2);
        if ($k eq 'handlers') {
            $v->{handlers} = {};
            if ($val eq 'all') {
                $v->{handlers}{$_} = 1 for grep { $_ ne 'negotiate' } @EVENTS;
            } elsif ($val ne 'none') {
                $v->{handlers}{$_} = 1 for split /,/, $val;
            }
        } elsif ($k =~ /^symlist\.(\d)$/) {
            $v->{cfg}{symlist}{$1} = tokenize($val)->[0][1];
        } else {
            $v->{cfg}{$k} = $val =~ /^0x/ ? hex $val : $val;
        }
    }
}

# --- running -----------------------------------------------------------------

sub L { push @{ $_[0]{log} }, [@_[1 .. $#_]] }
sub S { ['str', $_[0]] }
sub W { ['word', $_[0]] }
sub N { ['num', $_[0]] }

# Decode the reply packets waiting in the session's output into the log.
sub drain {
    my ($r) = @_;
    my $out = $r->{ctx}->_output;
    while (length $out >= 5) {
        my ($len, $code) = unpack 'N a', $out;
        my $p = substr $out, 5, $len - 1;
        substr($out, 0, 4 + $len) = '';
        my @f;
        if ($code eq 'O') {
            my ($ver, $act, $prot) = unpack 'N3', $p;
            @f = (N($ver), N($act), N($prot));
            my $rest = substr $p, 12;
            while (length $rest >= 4) {
                my $st = unpack 'N', $rest;
                my ($list) = substr($rest, 4) =~ /^([^\0]*)/;
                push @f, N($st), S($list);
                substr($rest, 0, 5 + length $list) = '';
            }
        } elsif ($code =~ /^[iIm]$/) {
            my $i = unpack 'N', $p;
            @f = (N($i), map { S($_) } split_z(substr $p, 4));
        } elsif ($code eq 'b') {
            @f = (S($p));
        } elsif (length $p) {
            @f = map { S($_) } split_z($p);
        }
        L($r, W('reply'), W($code), @f);
    }
    die "partial packet in output\n" if length $out;
}

# "a\0b\0" -> (a, b): NUL-terminated strings.
sub split_z {
    my ($p) = @_;
    $p =~ s/\0\z//;
    return split /\0/, $p, -1;
}

sub status_of {
    my ($err) = @_;
    return 'WRONG_STAGE' if $err =~ /called outside of EOM/;
    return 'NOT_NEGOTIATED' if $err =~ /not in capability list/;
    return 'ARGUMENT' if $err =~ /no header (name|value)|no recipient|no sender/;
    return $1 if $err =~ /\((\w+)\)\s*\z/;
    return "UNPARSED($err)";
}

sub act {
    my ($r, $ctx, $a, $negref) = @_;
    my @x = map { $_->[0] eq 'word' && $_->[1] eq '-' ? undef : $_->[1] } @{ $a->{args} };
    my $name = $a->{action};
    if ($name eq 'return') { return }
    if ($name eq 'getsymval') {
        my $v = $ctx->getsymval($x[0]);
        L($r, W('symval'), S($x[0]), defined $v ? S($v) : W('none'));
        return;
    }
    if ($name eq 'negotiate') {
        ${ $negref->[$_] } = $x[$_] for 0 .. 2;
        return;
    }
    my %call = (
        setreply    => sub { $ctx->setreply(@x) },
        setmlreply  => sub { $ctx->setmlreply($x[0], $x[1], [@x[2 .. $#x]]) },
        addheader   => sub { $ctx->addheader(@x) },
        insheader   => sub { $ctx->insheader($x[1], $x[2], $x[0]) },
        chgheader   => sub { $ctx->chgheader(@x) },
        addrcpt     => sub { $ctx->addrcpt(@x) },
        addrcpt_par => sub { $ctx->addrcpt_par(@x) },
        delrcpt     => sub { $ctx->delrcpt(@x) },
        chgfrom     => sub { $ctx->chgfrom(@x) },
        replacebody => sub { $ctx->replacebody(@x) },
        quarantine  => sub { $ctx->quarantine(@x) },
        progress    => sub { $ctx->progress },
        setsymlist  => sub { $ctx->setsymlist(@x) },
    );
    my $f = $call{$name} or die "unknown action $name\n";
    local $Sendmail::PMilter::Context::ERROR;
    local $SIG{__WARN__} = sub { };
    my $ok = eval { $f->() };
    my $err = $@;
    if (!$ok) {
        $err = $Sendmail::PMilter::Context::ERROR // 'returned false' unless $err;
        L($r, W('fail'), W($name), W(status_of($err)));
    }
}

sub handler {
    my ($r, $ev) = @_;
    my $calls = 0;
    return sub {
        my ($ctx, @args) = @_;
        $calls++;
        drain($r);
        my @f;
        if ($ev eq 'negotiate') {
            @f = map { N($_) } $ctx->mta_offer;
        } elsif ($ev eq 'connect') {
            @f = (S($args[0]), connect_fields($args[1]));
        } elsif ($ev eq 'body') {
            @f = (S($args[0]));
        } else {
            @f = map { S($_) } @args;
        }
        L($r, W('event'), W($ev), @f);
        my $verdict = SMFIS_CONTINUE;
        for my $on (@{ $r->{v}{on} }) {
            next unless $on->{event} eq $ev;
            next if defined $on->{nth} && $on->{nth} != $calls;
            if ($on->{action} eq 'return') {
                my $t = $on->{args}[0];
                $verdict = $t->[0] eq 'num' ? $t->[1] : $VERDICT{ $t->[1] }
                    // die "bad verdict $t->[1]\n";
            } else {
                act($r, $ctx, $on, \@args);
            }
        }
        return $verdict;
    };
}

sub connect_fields {
    my ($sa) = @_;
    return (S('U'), N(0), S('')) unless defined $sa;
    my $fam = sockaddr_family($sa);
    if ($fam == AF_INET) {
        my ($port, $ip) = unpack_sockaddr_in($sa);
        return (S('4'), N($port), S(inet_ntop(AF_INET, $ip)));
    }
    if ($fam == AF_INET6) {
        my ($port, $ip) = unpack_sockaddr_in6($sa);
        return (S('6'), N($port), S(inet_ntop(AF_INET6, $ip)));
    }
    return (S('L'), N(0), S(unpack_sockaddr_un($sa)));
}

# Run a vector with its input cut at the given points (offsets into the
# concatenated input before the first resume); returns the log.
sub run {
    my ($v, @cuts) = @_;
    my $r = { v => $v, log => [] };
    my %cb = map { $_ => handler($r, $_) } keys %{ $v->{handlers} };
    my %cfg = %{ $v->{cfg} };
    my $m = Sendmail::PMilter->new;
    # $PMVec::FLAGS set: register with 1.27's numeric FLAGS instead.
    $m->register($v->{name}, \%cb, defined $FLAGS ? $FLAGS : {
        action_flags => delete $cfg{actions}, protocol_flags => delete $cfg{protocol},
        %cfg });
    my @warn;
    $m->set_log(sub { push @warn, $_[1] });
    my $ctx = $r->{ctx} = $m->_context(undef)->_prepare;
    my $base = 0;
    my $stopped;
    for my $step (@{ $v->{steps} }) {
        if (defined $step->{bytes}) {
            my $b = $step->{bytes};
            my @pieces = pieces($b, $base, @cuts);
            $base += length $b;
            for my $piece (@pieces) {
                next if $stopped;
                my $st = $ctx->_feed($piece);
                drain($r);
            }
        } elsif ($stopped) {
            next;
        } elsif ($step->{resume}) {
            my $t = $step->{resume};
            my $st = $ctx->_resume($t->[0] eq 'num' ? $t->[1] : $VERDICT{ $t->[1] });
            drain($r);
            if ($st eq 'PENDING') { L($r, W('fail'), W('resume'), W('PENDING')) }
            elsif ($st ne 'OK' || $ctx->_closed) { $stopped = 1 }
        } else {
            act($r, $ctx, $step->{act}, []);
            drain($r);
        }
    }
    my $eof = 'OK';
    unless ($ctx->_closed) {
        $eof = $ctx->_eof;
        drain($r);
    }
    my ($code, $off) = $ctx->_error;
    if (defined $code && $code ne 'OK' && $code ne 'CLOSED') {
        L($r, W('end'), W('error'), W($code), N($off));
    } elsif ($eof ne 'OK' && $eof ne 'CLOSED') {
        L($r, W('end'), W('error'), W($eof), N(-1));
    } else {
        L($r, W('end'), W('ok'));
    }
    return ($r->{log}, \@warn);
}

# Cut one segment at the cut points that fall inside it.
sub pieces {
    my ($seg, $base, @cuts) = @_;
    return ($seg) unless @cuts;
    return map { substr $seg, $_, 1 } 0 .. length($seg) - 1 if $cuts[0] eq 'bytes';
    my @in = sort { $a <=> $b }
             grep { $_ > $base && $_ < $base + length $seg } @cuts;
    my (@p, $at);
    $at = 0;
    for my $c (@in) { push @p, substr($seg, $at, $c - $base - $at); $at = $c - $base }
    push @p, substr($seg, $at);
    return @p;
}

sub input_length {
    my ($v) = @_;
    my $n = 0;
    for (@{ $v->{steps} }) { $n += length $_->{bytes} if defined $_->{bytes} }
    return $n;
}

# Compare a log with the expectations; returns '' or a description.
sub compare {
    my ($got, $want) = @_;
    my $n = @$got > @$want ? @$got : @$want;
    for my $i (0 .. $n - 1) {
        my ($g, $w) = ($got->[$i], $want->[$i]);
        return "line $i: got " . show($g) . ", want " . show($w)
            unless $g && $w && same($g, $w);
    }
    return '';
}

sub same {
    my ($g, $w) = @_;
    return 0 unless @$g == @$w;
    for my $i (0 .. $#$g) {
        my ($a, $b) = ($g->[$i], $w->[$i]);
        if ($a->[0] eq 'num' || $b->[0] eq 'num') {
            # A bare word like the reply code 2 reads as a number.
            my @v = map { $_->[0] eq 'num' ? $_->[1]
                        : $_->[0] eq 'word' && $_->[1] =~ /^-?\d+$/ ? $_->[1]
                        : undef } $a, $b;
            return 0 unless defined $v[0] && defined $v[1] && $v[0] == $v[1];
        } else {
            return 0 unless $a->[1] eq $b->[1];
        }
    }
    return 1;
}

sub show {
    my ($l) = @_;
    return '(nothing)' unless $l;
    return join ' ', map {
        my $s = $_->[1];
        $_->[0] eq 'str' ? do { $s =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge; qq("$s") } : $s
    } @$l;
}

1;
