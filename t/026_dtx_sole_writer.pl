# The one-phase commit of a sole writer (one writing node, nothing written
# locally) decides the distributed transaction, so the client must never be
# told it failed while the node committed it, as a retry would apply it
# twice.  Its COMMIT is held on the participant by a synchronous standby
# that does not exist (synchronous_standby_names = 'nobody'), which keeps
# the commit waiting after it is durable there, until the setting is
# cleared.  Covered: a cancel of the coordinator's backend during that wait
# (success once the node answers, 08007 past distsys.dtx_commit_timeout),
# the connection to the node lost there (08007), the node's WARNING with its
# detail forwarded, and a local error after the remote commit (a WARNING
# says the transaction committed).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use IPC::Run;

# (adjust_conf only changes a setting the file already has)
my $standby_conf = "wal_level = replica\nmax_wal_senders = 2\nsynchronous_standby_names = ''";
my $coord = distsys_node('coord', $standby_conf);
my $p1 = bank_participant($coord, 'p1', 1, 0, $standby_conf);
$p1->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY)');
$coord->safe_psql('postgres', 'CREATE TABLE ledger (id int)');

sub c { return $coord->safe_psql('postgres', $_[0]); }
sub rows { return $p1->safe_psql('postgres', 'SELECT coalesce(string_agg(id::text, \',\' ORDER BY id), \'\') FROM t'); }

# hold(NODE, ON): make NODE's commits wait for a standby that does not
# exist (ON: by a restart, after which every commit waits), or release the
# waiting ones (a reload).
sub hold
{
	my ($node, $on) = @_;
	$node->adjust_conf('postgresql.conf', 'synchronous_standby_names', $on ? "'nobody'" : "''");
	if ($on) { $node->restart; } else { $node->reload; }
}

# waiting(NODE, N, WHO): until N backends of NODE (those of application
# WHO, if given) wait for the standby.
sub waiting
{
	my ($node, $n, $who) = @_;
	my $filter = defined $who ? " AND application_name = '$who'" : '';
	$node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_stat_activity WHERE wait_event = 'SyncRep'$filter")
	  or die "not $n commits waiting for the standby";
}

# start_commit(SQL): run SQL on the coordinator in the background, as
# application_name 'sole'; the harness and its output and error.
sub start_commit
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(['psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d',
		$coord->connstr('postgres') . ' application_name=sole', '-c', $sql],
		'<', \undef, '>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

sub cancel_sole
{
	is(c("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'sole'"), 't',
		'the committing backend is sent a cancel');
}

my $insert = sub { "SELECT distsys.dtx_exec('p1', 'INSERT INTO t VALUES ($_[0])')" };
is(c($insert->(1)), '1', 'a sole writer commits in one phase');

hold($p1, 1);
# --- a cancel while the node's commit is held, then the node answers -----
my ($h, $out, $err) = start_commit($insert->(2));
waiting($p1, 1);
cancel_sole();
hold($p1, 0);
$h->finish;
is($$out =~ s/\s+$//r, '1', 'cancelled while the node commits: the client is told it committed once the node answers');
unlike($$err, qr/57014|ERROR/, 'no cancel error for a committed transaction');
is(rows(), '1,2', 'and it is committed there');

# --- a cancel, and the node never answers: 08007 after the timeout --------
hold($p1, 1);
($h, $out, $err) = start_commit("SET distsys.dtx_commit_timeout = '3s'; " . $insert->(3));
waiting($p1, 1);
cancel_sole();
$h->finish;
like($$err, qr/ERROR:  08007: node "p1" did not answer the COMMIT that decides the distributed transaction.*within 3000 ms.*only writer/s,
	'cancelled, and no answer within dtx_commit_timeout: 08007, not 57014');
like($$err, qr/WARNING:  08007: the outcome of the distributed transaction is known only to node "p1"/,
	'with a WARNING that the outcome is the node\'s');
unlike($$err, qr/57014/, 'and no cancel error');
hold($p1, 0);
$p1->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
  or die 'the held commit was not released';
is(rows(), '1,2,3', 'the node did commit it');

# --- the connection to the node lost while its commit is held: 08007 ------
hold($p1, 1);
($h, $out, $err) = start_commit($insert->(4));
waiting($p1, 1);
$p1->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
$h->finish;
like($$err, qr/ERROR:  08007: node "p1" did not answer the COMMIT.*The connection was lost/s,
	'a connection lost at a sole writer\'s COMMIT: 08007, not 08006');
like($$err, qr/WARNING:  57P01: node "p1": canceling the wait for synchronous replication and terminating connection.*\nDETAIL:  The transaction has already committed locally/,
	'the node\'s WARNING reaches the client with its detail');
hold($p1, 0);
is(rows(), '1,2,3,4', 'the node did commit it');

# --- the node's wait cancelled there: it committed, the client hears why --
hold($p1, 1);
($h, $out, $err) = start_commit($insert->(5));
waiting($p1, 1);
$p1->safe_psql('postgres', "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
$h->finish;
is($$out =~ s/\s+$//r, '1', 'a node whose own wait is cancelled answers COMMIT: success');
like($$err, qr/WARNING:  01000: node "p1": canceling wait for synchronous replication due to user request\nDETAIL:  The transaction has already committed locally/,
	'and its WARNING reaches the client with its detail');
hold($p1, 0);
is(rows(), '1,2,3,4,5', 'committed');

# --- a local error after the node committed: a WARNING says it committed --
# The local commit's NOTIFY step waits for the lock a committing NOTIFY
# holds while it waits for the coordinator's (missing) standby, and gives
# up at lock_timeout, after the sole writer committed.  (That holder sets
# synchronous_commit = on: at off, as in the synchronous_commit = off pass,
# it would not wait for the standby.)
hold($coord, 1);
my ($nh, $nout, $nerr) = start_commit(
	"SET synchronous_commit = on; BEGIN; INSERT INTO ledger VALUES (1); NOTIFY ch; COMMIT;");
waiting($coord, 1, 'sole');
my ($ret, $sout, $serr) = $coord->psql('postgres',
	"SET lock_timeout = '1s'; BEGIN; " . $insert->(6) . "; NOTIFY ch; COMMIT;",
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($serr, qr/WARNING:  01000: the distributed transaction committed although the local transaction failed after its decision\nDETAIL:  Node "p1", its only writer, committed it in one phase/,
	'a local error after the sole writer committed: a WARNING says the transaction committed');
like($serr, qr/ERROR:  55P03/, 'after the error itself');
hold($coord, 0);
$nh->finish;
is(rows(), '1,2,3,4,5,6', 'and it did commit');

done_testing();
