#!/usr/bin/perl
# Run by `make dist` (dist PREOP): copy libpmcore's sources and the
# conversation vectors into the distribution directory, so the tarball
# builds and tests without the pmcore repository.
use strict;
use warnings;
use File::Copy qw(copy);
use File::Path qw(make_path);

my ($from, $vectors, $dist) = @ARGV;
die "usage: $0 LIBPMCORE VECTORS DISTDIR\n" unless $from && $dist && -d $dist;
my @files;
# Already vendored (make dist from an unpacked tarball): MANIFEST has them.
exit 0 if $from eq 'libpmcore';
# The public headers (include/pmcore.h and the parts under include/pmcore/)
# and the sources, a folder per layer (src/proto, src/client, src/server).
for my $sub (qw(include include/pmcore src src/*)) {
    for my $dir (sort grep { -d } glob("$from/$sub")) {
        (my $rel = $dir) =~ s{^\Q$from\E/}{};
        my @src = sort glob("$dir/*.[ch]") or next;
        make_path("$dist/libpmcore/$rel");
        for my $f (@src) {
            (my $name = $f) =~ s{.*/}{};
            copy($f, "$dist/libpmcore/$rel/$name") or die "copy $f: $!\n";
            push @files, "libpmcore/$rel/$name";
        }
    }
}
if (-d $vectors) {
    make_path("$dist/t/vectors");
    for my $f (sort glob("$vectors/*")) {
        (my $name = $f) =~ s{.*/}{};
        copy($f, "$dist/t/vectors/$name") or die "copy $f: $!\n";
        push @files, "t/vectors/$name";
    }
}
open my $m, '>>', "$dist/MANIFEST" or die "$dist/MANIFEST: $!\n";
print $m "$_\n" for @files;
close $m or die "$dist/MANIFEST: $!\n";
