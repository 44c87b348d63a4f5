#!/usr/bin/perl
# tools/prove.pl: run TAP test files and write "PASSED FAILED" to a file.
#
# Like prove, but it also counts: every assertion is one test, and a file that
# dies, exits non-zero or breaks its plan counts one failure more when none
# of its assertions failed, so a crash can never read as a pass.
use strict;
use warnings;
use TAP::Harness;

my ($countfile, @files) = @ARGV;
my $harness = TAP::Harness->new({ verbosity => 0, color => 0, timer => 1,
	lib => [ split /:/, ($ENV{PERL5LIB} // '') ] });
my $agg = $harness->runtests(@files);
my ($passed, $failed) = (scalar $agg->passed, scalar $agg->failed);
for my $desc ($agg->descriptions) {
	my ($parser) = $agg->parsers($desc);
	$failed++ if $parser->has_problems && !$parser->failed;
}
open my $fh, '>', $countfile or die "cannot write $countfile: $!";
print $fh "$passed $failed\n";
close $fh;
exit($failed ? 1 : 0);
