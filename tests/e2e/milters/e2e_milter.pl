#!/usr/bin/perl
# The Perl milter of the end-to-end suite (Sendmail::PMilter on libpmcore).
#
#   perl e2e_milter.pl SOCKET CTLDIR
#
# Each message says what the milter does to it; tests/e2e/README.md
# is the contract shared with e2e_milter.py.  CTLDIR holds the few switches
# a message cannot carry (what to do at connect) and the files of the
# SIGTERM test.  Default dispatcher (postfork): one process per connection.
use strict;
use warnings;
use Time::HiRes qw(sleep time);
use Sendmail::PMilter qw(:all);

my $LANG = 'perl';
my ($conn, $ctl) = @ARGV;
die "usage: $0 SOCKET CTLDIR\n" unless defined $ctl;

# Macros recorded at each stage, as Postfix sends them by default.
my %STAGE_MACROS = (
    connect => ['j', '{daemon_name}', '{daemon_addr}', 'v', '_'],
    mail    => ['{mail_addr}'],
    rcpt    => ['{rcpt_addr}'],
    eom     => ['i'],
);
my $ALPHABET = join '', map { chr } 33 .. 126;

# SIZE bytes of CRLF lines of varying length (same as the Python milter).
sub make_body {
    my ($size) = @_;
    my $rep = $ALPHABET x 12;
    my ($out, $k) = ('', 0);
    while ($size - length($out) > 1000) {
        $out .= substr($rep, $k % 94, 10 + ($k * 37) % 900) . "\r\n";
        $k++;
    }
    return $out . substr($rep, $k % 94, $size - length($out) - 2) . "\r\n";
}

# 'reject' for PREFIX-reject..., etc.; undef when TEXT is no command.
sub verdict_of {
    my ($text, $prefix) = @_;
    return $text =~ /^\Q$prefix\E-(reject|tempfail|discard|die)/ ? $1 : undef;
}

sub local_part {
    my ($addr) = @_;
    $addr =~ s/^<|>$//g;
    return (split /\@/, $addr)[0] // '';
}

sub record {
    my ($ctx, $p, $stage) = @_;
    for my $name (@{ $STAGE_MACROS{$stage} }) {
        push @{ $p->{macros} }, [$stage, $name, $ctx->getsymval($name) // 'None'];
    }
}

sub new_message {
    my ($p) = @_;
    @$p{qw(modes rcpts headers)} = ([], [], []);
    $p->{macros} = [@{ $p->{conn_macros} || [] }];
}

sub refuse {
    my ($ctx, $stage, $verb) = @_;
    die "e2e $LANG dies at $stage\n" if $verb eq 'die';
    return SMFIS_DISCARD if $verb eq 'discard';
    my ($code, $xcode) = $verb eq 'reject' ? ('550', '5.7.1') : ('451', '4.7.1');
    $ctx->setmlreply($code, $xcode,
        ["e2e $LANG ${verb}s at $stage", "second line from $LANG"]);
    return $verb eq 'reject' ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

sub wait_release {
    open my $fh, '>', "$ctl/slow-entered" or die "slow: $!\n";
    close $fh;
    my $end = time + 30;
    sleep 0.02 while !-e "$ctl/slow-release" && time < $end;
}

sub apply_mode {
    my ($ctx, $p, $mode) = @_;
    my ($name, $arg) = split /=/, $mode, 2;
    if ($name eq 'addhdr') {
        $ctx->addheader('X-Added', "added by $LANG");
    } elsif ($name eq 'inshdr') {
        $ctx->insheader('X-Inserted', "inserted by $LANG", $arg);
    } elsif ($name eq 'chghdr') {
        $ctx->chgheader('Subject', 1, "changed by $LANG");
    } elsif ($name eq 'delhdr') {
        $ctx->chgheader('X-Drop', 2, undef);
    } elsif ($name eq 'body') {
        $ctx->replacebody(make_body($arg));
    } elsif ($name eq 'addrcpt') {
        $ctx->addrcpt(sprintf '<added-%03d@sink.test>', $_) for 1 .. $arg;
    } elsif ($name eq 'addrcpt_par') {
        (my $params = $arg) =~ tr/+/ /;
        $ctx->addrcpt_par('<par@sink.test>', $params);
    } elsif ($name eq 'delrcpt') {
        $ctx->delrcpt($_) for grep { local_part($_) =~ /^del-/ } @{ $p->{rcpts} };
    } elsif ($name eq 'chgfrom') {
        $ctx->chgfrom("<$arg>");
    } elsif ($name eq 'quarantine') {
        $ctx->quarantine("e2e $LANG quarantine");
    } elsif ($name eq 'seen') {
        $ctx->addheader('X-E2E-Seen', join ',', map { $_->[0] } @{ $p->{headers} });
    } elsif ($name eq 'macros') {
        $ctx->addheader('X-E2E-Macro', "$_->[0] $_->[1]=$_->[2]") for @{ $p->{macros} };
    } elsif ($name eq 'echo8') {
        for (@{ $p->{headers} }) {
            my ($h, $v) = @$_;
            $ctx->addheader('X-Echo-' . substr($h, 2), $v) if $h eq 'X-Latin1' || $h eq 'X-Utf8';
        }
        $ctx->chgheader('X-Change-Me', 1, "\xe9t\xe9 \xa4");
    }
}

my %callbacks = (
    connect => sub {
        my ($ctx) = @_;
        my $p = { done => 0 };
        $ctx->setpriv($p);
        new_message($p);
        record($ctx, $p, 'connect');
        $p->{conn_macros} = [@{ $p->{macros} }];
        my $verb;
        if (open my $fh, '<', "$ctl/connect") {
            $verb = <$fh>;
            chomp $verb if defined $verb;
        }
        return $verb ? refuse($ctx, 'connect', $verb) : SMFIS_CONTINUE;
    },
    helo => sub {
        my ($ctx, $name) = @_;
        my $verb = verdict_of($name, 'helo');
        return $verb ? refuse($ctx, 'helo', $verb) : SMFIS_CONTINUE;
    },
    envfrom => sub {
        my ($ctx, $from) = @_;
        my $p = $ctx->getpriv;
        new_message($p);
        record($ctx, $p, 'mail');
        my $verb = verdict_of(local_part($from), 'mail');
        return $verb ? refuse($ctx, 'mail', $verb) : SMFIS_CONTINUE;
    },
    envrcpt => sub {
        my ($ctx, $to) = @_;
        my $p = $ctx->getpriv;
        record($ctx, $p, 'rcpt');
        my $verb = verdict_of(local_part($to), 'rcpt');
        return refuse($ctx, 'rcpt', $verb) if $verb;
        push @{ $p->{rcpts} }, $to;
        return SMFIS_CONTINUE;
    },
    header => sub {
        my ($ctx, $name, $value) = @_;
        my $p = $ctx->getpriv;
        push @{ $p->{headers} }, [$name, $value];
        push @{ $p->{modes} }, split ' ', $value if lc $name eq 'x-e2e-mode';
        return SMFIS_CONTINUE;
    },
    abort => sub {
        my ($ctx) = @_;
        new_message($ctx->getpriv);
        return SMFIS_CONTINUE;
    },
    eom => sub {
        my ($ctx) = @_;
        my $p = $ctx->getpriv;
        record($ctx, $p, 'eom');
        my @modes = @{ $p->{modes} };
        wait_release() if grep { $_ eq 'slow' } @modes;
        for (@modes) {
            my $verb = verdict_of($_, 'eom');
            return refuse($ctx, 'eom', $verb) if $verb;
        }
        apply_mode($ctx, $p, $_) for @modes;
        $p->{done}++;
        $ctx->addheader('X-E2E-Milter', "$LANG msg=$p->{done} rcpts="
            . join ',', map { local_part($_) } @{ $p->{rcpts} });
        return SMFIS_CONTINUE;
    },
    close => sub {
        my ($ctx) = @_;
        $ctx->setpriv(undef);
        return SMFIS_CONTINUE;
    },
);

my $milter = Sendmail::PMilter->new;
$milter->setconn($conn, 0666) or die "cannot listen on $conn\n";
$milter->register("e2e-$LANG", \%callbacks, SMFI_CURR_ACTS);
$milter->main;
