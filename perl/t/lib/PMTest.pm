package PMTest;

# Test helpers: a milter registered through the public API, its Context,
# and libpmcore's client playing the MTA in-process (Sendmail::PMilter::_Pipe).

use strict;
use warnings;
use Exporter 'import';
use Sendmail::PMilter qw(:all);
use Sendmail::PMilter::Context;

our @EXPORT = qw(pipe_for run_mta);

# pipe_for(\%callbacks, FLAGS, \%mta_options) -> ($pipe, $ctx, $milter)
sub pipe_for {
    my ($cb, $flags, $mta) = @_;
    my $m = Sendmail::PMilter->new;
    $m->register('test', $cb, $flags);
    my @log;
    $m->set_log(sub { push @log, $_[1] });
    my $ctx = $m->_context(undef)->_prepare;
    my $pipe = Sendmail::PMilter::_Pipe->new($ctx, $mta || {});
    return ($pipe, $ctx, $m, \@log);
}

# Run a list of [call, args...]; returns the results.
sub run_mta {
    my ($pipe, @calls) = @_;
    return map { $pipe->call(@$_) } @calls;
}

1;

package PMTest;

# Sans-I/O: feed packets to a Context, return the replies as [code, data].
our @EXPORT_OK = qw(pkt conv optneg ctx_for);
push @EXPORT, @EXPORT_OK;

sub pkt { my ($cmd, @parts) = @_; my $d = join '', @parts;
          return pack('N', 1 + length $d) . $cmd . $d }
sub optneg { pkt('O', pack 'N3', @_) }

sub ctx_for {
    my ($cb, $flags) = @_;
    my $m = Sendmail::PMilter->new;
    $m->register('test', $cb, $flags);
    my @log;
    $m->set_log(sub { push @log, $_[1] });
    return ($m->_context(undef)->_prepare, \@log, $m);
}

sub conv {
    my ($ctx, @packets) = @_;
    $ctx->_feed($_) for @packets;
    my $out = $ctx->_output;
    my @r;
    while (length $out >= 5) {
        my ($len, $code) = unpack 'N a', $out;
        push @r, [$code, substr($out, 5, $len - 1)];
        substr($out, 0, 4 + $len) = '';
    }
    return @r;
}

1;
