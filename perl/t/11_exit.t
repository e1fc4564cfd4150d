# exit() inside Perl code the engine runs.  Perl's exit unwinds to the
# outermost frame, past the engine's: the replies owed for earlier commands
# were lost, and a loop dispatcher cut its other connections mid-packet.
# Now the connection whose callback exited is closed cleanly after what it
# was owed (the exiting event gets no reply), no more Perl code runs for the
# engine, and then the process exits with exit's status, END blocks and all.
# The MTA here is a raw socket: every byte is checked to be whole packets
# followed by end of stream.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use IO::Select;
use Time::HiRes qw(time usleep);
use Sendmail::PMilter qw(:all);
use PMTest qw(pkt optneg);

my $dir = tempdir(CLEANUP => 1);
$SIG{PIPE} = 'IGNORE';    # a milter that exits may close before we write
my $n = 0;

sub note_event {
    my ($file, $line) = @_;
    open my $fh, '>>', $file or die "$file: $!";
    syswrite $fh, "$line\n";
}
sub events {
    my ($file) = @_;
    open my $fh, '<', $file or return ();
    chomp(my @l = <$fh>);
    return @l;
}

# Fork a milter whose callback WHERE calls exit(3); returns (pid, socket,
# event file).
sub start {
    my (%o) = @_;
    my $sock = "$dir/m" . ++$n . '.sock';
    my $ev = "$dir/ev$n";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        # Only what this child (and its children) record.
        eval q{ END { note_event($ev, "END $$ status $?") if $ev } 1 } or die $@;
        my $m = Sendmail::PMilter->new;
        $m->setconn("unix:$sock") or exit 9;
        my %cb = (
            close => sub { note_event($ev, "close $$"); SMFIS_CONTINUE },
            eom => sub { $_[0]->addheader('X-Pid', $$); SMFIS_CONTINUE },
        );
        $cb{$o{where}} = sub {
            note_event($ev, "exit from $o{where} in $$");
            exit 3;
        } if $o{where};
        $m->register('t', \%cb, SMFI_CURR_ACTS);
        $m->set_log(sub { note_event($ev, "log: $_[1]") });
        $m->set_dispatcher($o{dispatcher}) if ref $o{dispatcher};
        $ENV{PMILTER_DISPATCHER} = $o{dispatcher} unless ref $o{dispatcher};
        $SIG{TERM} = sub { note_event($ev, "TERM handler exits"); exit 4 }
            if $o{term_exits};
        $m->main(@{ $o{main} || [] });
        note_event($ev, 'main returned');
        exit 0;
    }
    for (1 .. 250) { last if -S $sock; usleep(20_000) }
    return ($pid, $sock, $ev);
}

sub mta {
    my ($sock) = @_;
    my $c;
    for (1 .. 100) {
        last if $c = IO::Socket::UNIX->new(Peer => $sock);
        usleep(20_000);
    }
    die "connect $sock: $!" unless $c;
    return $c;
}

# Write all packets at once, read to end of stream (10 s at most).
# Returns (reply codes, bytes left after the last whole packet, eof seen).
sub converse {
    my ($c, @packets) = @_;
    syswrite $c, join '', @packets;
    my ($buf, $eof, $t0) = ('', 0, time);
    my $sel = IO::Select->new($c);
    while (time - $t0 < 10) {
        next unless $sel->can_read(0.2);
        my $r = sysread $c, $buf, 65536, length $buf;
        if (!$r) { $eof = 1; last }
    }
    my @codes;
    while (length $buf >= 5) {
        my $len = unpack 'N', $buf;
        last if $len < 1 || length $buf < 4 + $len;
        push @codes, substr($buf, 4, 1);
        substr($buf, 0, 4 + $len) = '';
    }
    return (join(',', @codes), length $buf, $eof);
}

# Wait until a process is gone (reaped by us or by its own parent).
sub gone {
    my ($pid, $ours) = @_;
    for (1 .. 250) {
        return 1 if $ours ? waitpid($pid, 1) == $pid : !kill 0, $pid;
        usleep(20_000);
    }
    return 0;
}

sub stop { my ($pid) = @_; kill TERM => $pid; return gone($pid, 1) }

my $CONN = pkt('C', "mx.example\0", '4', pack('n', 25), "192.0.2.1\0");
my @MSG = (optneg(6, 0x1FF, 0x1FFFFF), $CONN, pkt('M', "<a\@b>\0"),
           pkt('R', "<c\@d>\0"), pkt('T'), pkt('L', "Subject\0hi\0"), pkt('N'),
           pkt('B', "body\r\n"), pkt('E'), pkt('Q'));
# What the MTA gets before the end of stream, by the callback that exits.
my %owed = (negotiate => 'O', connect => 'O', envfrom => 'O,c',
            eom => 'O,c,c,c,c,c,c,c', close => 'O,c,c,c,c,c,c,c,h,c');

# The models that run each connection in a process of its own: that
# process exits, the milter goes on.
for my $d (qw(postfork ithread prefork)) {
    for my $where (qw(negotiate connect envfrom eom close)) {
        my ($pid, $sock, $ev) = start(dispatcher => $d, where => $where);
        my ($codes, $left, $eof) = converse(mta($sock), @MSG);
        is($codes, $owed{$where}, "$d, exit in $where: the replies owed before it");
        is($left, 0, "$d, exit in $where: no partial packet");
        ok($eof, "$d, exit in $where: then a clean end of stream");
        my ($child) = map { /^exit from \w+ in (\d+)$/ ? $1 : () } events($ev);
        ok($child && gone($child), "$d, exit in $where: the process that ran the callback exits");
        my @e = events($ev);
        ok((grep { $_ eq "END $child status 3" } @e), "$d, exit in $where: its END blocks ran, with \$? = 3")
            or diag(join "\n", @e);
        ok(!(grep { /^close / } @e), "$d, exit in $where: no callback after exit");
        # The master logs it once it has reaped the child: wait for that.
        my $seen;
        for (1 .. 250) {
            last if $seen = grep { /^log: (?:worker|connection process) $child exited with status 3;/ } events($ev);
            usleep(20_000);
        }
        ok($seen, "$d, exit in $where: the master saw the exit status");
        # The milter itself goes on: a new conversation is served (by a new
        # process, which exits in turn if the callback comes).
        my ($codes2) = converse(mta($sock), optneg(6, 0x1FF, 0x1FFFFF), $CONN, pkt('Q'));
        is($codes2, $where =~ /^(negotiate|connect)$/ ? 'O' : 'O,c',
           "$d, exit in $where: the milter still serves");
        ok(stop($pid), "$d: the milter stops on TERM");
    }
}

# One process for every connection: the milter itself exits, and another
# connection it was serving gets a clean end of stream, never half a packet.
for my $d (qw(loop sequential)) {
    for my $where (qw(negotiate connect envfrom eom close)) {
        my ($pid, $sock, $ev) = start(dispatcher => $d, where => $where);
        my ($other, @pre);
        # (Only where the exiting callback comes after the other one's.)
        if ($d eq 'loop' && $where =~ /^(envfrom|eom|close)$/) {
            $other = mta($sock);
            syswrite $other, optneg(6, 0x1FF, 0x1FFFFF) . $CONN;
            my $b = '';
            my $sel = IO::Select->new($other);
            while (length $b < 17 + 5 && $sel->can_read(5)) {
                sysread($other, $b, 4096, length $b) or last;
            }
            is(length $b, 22, "$d, exit in $where: another connection is open, answered");
        }
        my ($codes, $left, $eof) = converse(mta($sock), @MSG);
        is($codes, $owed{$where}, "$d, exit in $where: the replies owed before it");
        is($left, 0, "$d, exit in $where: no partial packet");
        ok($eof, "$d, exit in $where: then a clean end of stream");
        ok(gone($pid, 1), "$d, exit in $where: the milter process exits");
        is($? >> 8, 3, "$d, exit in $where: with exit's status");
        my @e = events($ev);
        ok((grep { $_ eq "END $pid status 3" } @e), "$d, exit in $where: END blocks ran")
            or diag(join "\n", @e);
        ok(!(grep { /^close |^main returned/ } @e), "$d, exit in $where: nothing of the milter ran after exit");
        if ($other) {
            my ($c2, $l2, $e2) = converse($other);
            is("$c2/$l2/$e2", '/0/1', "$d, exit in $where: the other connection ends cleanly");
        }
    }
}

# A dispatcher of the user's own (accept in Perl, the engine serves the
# socket): the exit goes on from the handler.
{
    my ($pid, $sock, $ev) = start(where => 'eom', dispatcher => sub {
        my ($m, $lsock, $handler) = @_;
        while (my $c = $lsock->accept) { $handler->($c); $c->close }
    });
    my ($codes, $left, $eof) = converse(mta($sock), @MSG);
    is("$codes/$left/$eof", "$owed{eom}/0/1", 'user dispatcher, exit in eom: replies owed, clean end');
    ok(gone($pid, 1), 'user dispatcher: the milter exits');
    is($? >> 8, 3, 'user dispatcher: with exit\'s status');
}

# A %SIG{TERM} handler of the user's that calls exit: the dispatcher stops
# (a connection between messages is served until the MTA's QUIT, which may
# find the process gone already), then the exit goes on.
for my $d (qw(loop prefork)) {
    my ($pid, $sock, $ev) = start(dispatcher => $d, term_exits => 1);
    my $c = mta($sock);
    syswrite $c, optneg(6, 0x1FF, 0x1FFFFF) . $CONN;
    usleep(300_000);
    kill TERM => $pid;
    local $SIG{PIPE} = 'IGNORE';
    my ($codes, $left, $eof) = converse($c, pkt('Q'));
    is("$codes/$left/$eof", 'O,c/0/1', "$d: TERM handler exits: the open connection ends cleanly");
    ok(gone($pid, 1), "$d: TERM handler exits: the milter exits");
    is($? >> 8, 4, "$d: TERM handler exits: with its status");
    ok(!(grep { /^main returned/ } events($ev)), "$d: TERM handler exits: main does not return");
}

# The in-process MTA of the tests (sans-I/O path): the same.
{
    my $pid = fork // die;
    if (!$pid) {
        require PMTest;
        my ($pipe) = PMTest::pipe_for({ helo => sub { exit 5 } }, SMFI_CURR_ACTS);
        $pipe->call('negotiate');
        $pipe->call('connect', 'h', '4', 25, '1.2.3.4');
        $pipe->call('helo', 'x');
        exit 0;
    }
    ok(gone($pid, 1), 'in-process pipe: exit in helo ends the process');
    is($? >> 8, 5, 'in-process pipe: with exit\'s status');
}

done_testing;
