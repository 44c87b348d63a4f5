# A standby of the coordinator is promoted while the old primary still
# runs (issue 15 item 7).  The old primary's COMMIT PREPARED then finds
# its participants' GIDs gone: the promoted standby's recovery resolved
# them, committing those whose decision row it received and rolling back
# the others.  A GID gone is no longer taken for "already committed": the
# old primary asks the participant what became of its transaction, and
# only a commit lets the client's COMMIT stand silently; otherwise the
# client gets a WARNING with SQLSTATE 08007.
#
# The schedule: the old primary waits for a synchronous standby that does
# not exist ('nobody'), so a distributed COMMIT stops after its local
# commit and before COMMIT PREPARED; the promoted standby resolves the
# prepared parts meanwhile; then the wait is released.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my ($primary, $standby, $p1, $p2) = standby_pair();

sub bal { return $_[0]->safe_psql('postgres', "SELECT bal FROM acct WHERE id = $_[1]"); }
sub balances { return join ' ', map { bal($_, $_[0]) } $p1, $p2; }
sub prepared { return join ' ', map { $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') } $p1, $p2; }
# sync_wait(ON): make the old primary's synchronous commits wait (for a
# standby that does not exist), or release them
sub sync_wait
{
	my $names = $_[0] ? "SET synchronous_standby_names = 'nobody'" : 'RESET synchronous_standby_names';
	$primary->safe_psql('postgres', "ALTER SYSTEM $names; SELECT pg_reload_conf()");
}

# held_transfer(ID): a transfer on account ID from a session of the old
# primary, whose COMMIT is left waiting after its local commit; returns the
# session
sub held_transfer
{
	my ($id) = @_;
	my $bg = bg_session($primary, on_error_stop => 0);
	$bg->query_safe('\set VERBOSITY verbose');
	sync_wait(1);
	$bg->query_safe("BEGIN; INSERT INTO ledger VALUES ($id);
		SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 10 WHERE id = $id');
		SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 10 WHERE id = $id');");
	$bg->query_until(qr/sent/, "\\echo sent\nCOMMIT;\n\\echo done\n");
	$primary->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
	  or die 'the COMMIT did not reach its synchronous wait';
	return $bg;
}

# released(BG): release the held COMMIT of BG; what it printed on stderr
sub released
{
	my ($bg) = @_;
	sync_wait(0);
	$bg->query_until(qr/done/, '');
	my $err = $bg->{stderr};
	$bg->quit;
	return $err;
}

# 1. The standby receives the decision, is promoted and commits the prepared
# parts: the old primary's client is rightly told nothing more.
my $bg = held_transfer(1);
$standby->poll_query_until('postgres', 'SELECT count(*) = 1 FROM distsys.dtx_decisions')
  or die 'the standby did not receive the decision';
$standby->promote;
$p1->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts') or die 'p1 not resolved';
$p2->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts') or die 'p2 not resolved';
is(balances(1), '90 110', 'the promoted standby committed the transfer whose decision it has');
my $err = released($bg);
unlike($err, qr/WARNING/, 'and the old primary\'s client, whose COMMIT found the parts gone but committed, gets no WARNING');

# 2. Now the promoted standby lacks the old primary's decisions: it rolls
# back the prepared parts of a transfer the old primary commits.
$bg = held_transfer(2);
$p1->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts') or die 'p1 not resolved';
$p2->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts') or die 'p2 not resolved';
is(balances(2), '100 100', 'the promoted standby rolled back a transfer it has no decision of');
$err = released($bg);
like($err, qr/WARNING:  08007: node "p1" rolled back its part of the distributed transaction this server committed/,
	'the old primary\'s client is warned (08007) that p1 rolled its part back');
like($err, qr/WARNING:  08007: node "p2" rolled back its part/, 'and p2');
like($err, qr/HINT:  If another server was promoted, this one is no longer the primary/,
	'with what it means');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM ledger WHERE id = 2'), '1',
	'(the old primary did commit its local part)');

done_testing();
