#!/usr/bin/perl
# tools/prove.pl: run TAP test files and write "PASSED FAILED" to a file.
#
# Like prove, but it also counts: every assertion is one test, and a file that
# dies, exits non-zero or breaks its plan counts one failure more when none
# of its assertions failed, so a crash can never read as a pass.  The
# second line of the file names what failed ("FILE: N M" for the numbers of
# the failed assertions, "FILE: died" for a file that broke otherwise), so
# the end of a long run still says which test to look at.
use strict;
use warnings;
use TAP::Harness;

my ($countfile, @files) = @ARGV;
my $harness = TAP::Harness->new({ verbosity => 0, color => 0, timer => 1,
	lib => [ split /:/, ($ENV{PERL5LIB} // '') ] });
my $agg = $harness->runtests(@files);
my ($passed, $failed) = (scalar $agg->passed, scalar $agg->failed);
my @what;
for my $desc ($agg->descriptions) {
	my ($parser) = $agg->parsers($desc);
	my ($name) = $desc =~ m{([^/]+/[^/]+)$};
	$name //= $desc;
	if ($parser->failed) {
		push @what, "$name: " . join(' ', $parser->failed);
	} elsif ($parser->has_problems) {
		$failed++;
		push @what, "$name: died";
	}
}
open my $fh, '>', $countfile or die "cannot write $countfile: $!";
print $fh "$passed $failed\n";
print $fh join('; ', @what), "\n";
close $fh;
exit($failed ? 1 : 0);
