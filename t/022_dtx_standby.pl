# The decision records are ordinary WAL-logged rows, so a streaming standby
# of the coordinator that is promoted after the primary fails finishes the
# primary's distributed transactions: one whose decision committed is
# committed on every participant, one that crashed while preparing is
# rolled back.  The primary's own recovery worker is idle here, so only the
# promoted standby can resolve them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my ($primary, $standby, $p1, $p2) = standby_pair('restart_after_crash = on');

# in_doubt_transfer(FAULT, ID): a transfer whose coordinating backend is
# killed at FAULT; returns once the primary is back.
sub in_doubt_transfer
{
	my ($fault, $id) = @_;
	$primary->psql('postgres', "SET distsys.dtx_fault = $fault; BEGIN;
		INSERT INTO ledger VALUES ($id);
		SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 10 WHERE id = $id');
		SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 10 WHERE id = $id');
		COMMIT;");
	wait_accepting($primary) or die 'primary did not come back';
}

in_doubt_transfer('crash_after_decision', 1);
in_doubt_transfer('crash_after_some_prepares', 2);
my $prepared = 'SELECT count(*) FROM pg_prepared_xacts';
cmp_ok($p1->safe_psql('postgres', $prepared) + $p2->safe_psql('postgres', $prepared), '>=', 3,
	'the failed primary left prepared transactions on the participants');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM distsys.dtx_decisions'), '1',
	'the standby has the decision record');

# a node whose conninfo reaches a server in recovery (a multi-host
# conninfo can) is not trusted: a standby lists no prepared transactions
$primary->safe_psql('postgres',
	"SELECT distsys.node_add('replica', \$\$" . $standby->connstr('postgres') . "\$\$)");
my ($rret, $rout, $rerr) = $primary->psql('postgres', 'SELECT count(*) FROM distsys.dtx_in_doubt');
like($rerr, qr/node "replica" reached a server in recovery/,
	'a node that reaches a standby is reported, not listed as having nothing prepared');
$primary->safe_psql('postgres', "SELECT distsys.node_remove('replica', force => true)");
$primary->wait_for_catchup($standby);

my ($sret, $sout, $serr) = $standby->psql('postgres', 'SELECT distsys.dtx_recover()');
like($serr, qr/distributed transaction recovery cannot run on a standby/,
	'recovery refuses to run on a standby, which cannot see what its primary is committing');

$primary->stop('immediate');
$standby->promote;
for my $p ($p1, $p2)
{
	$p->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_prepared_xacts")
	  or die 'the promoted standby did not resolve the prepared transactions on ' . $p->name;
}
pass('the promoted standby resolved every prepared transaction');
is(join(' ', map { $_->safe_psql('postgres', 'SELECT bal FROM acct WHERE id = 1') } $p1, $p2), '90 110',
	'the committed transfer is applied on both participants');
is(join(' ', map { $_->safe_psql('postgres', 'SELECT bal FROM acct WHERE id = 2') } $p1, $p2), '100 100',
	'the one that crashed while preparing is rolled back on both');
is($standby->safe_psql('postgres', 'SELECT string_agg(id::text, \',\') FROM ledger'), '1',
	'and the new primary has the local part of the committed one only');
$standby->poll_query_until('postgres', 'SELECT count(*) = 0 FROM distsys.dtx_decisions')
  or die 'the decision record was not forgotten';
pass('the decision record is forgotten once applied');

done_testing();
