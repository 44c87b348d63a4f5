# t/030_dump_restore.pl: pg_dump and pg_restore keep what users made with
# distsys, and the restored copy uses it safely.
#
# A coordinator with state of every kind (registered nodes, an outbox
# message not yet relayed, a dead letter of each side, inbox claims and a
# pruned horizon, a durable lease held and one expired, a 2PC decision that
# participants still need, another transaction left prepared without one,
# a last agent's mark) is dumped in custom and plain format and restored
# into a fresh server, the plain one into a second database.  Each piece of
# state is there and behaves: the lease is held, a new grant gets a token
# above every restored one (also after a restart), the messages are
# relayed with their message ids, a duplicate claim is refused, the
# restored decision commits the old coordinator's participants while the
# transaction without one is left to the old coordinator.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RelayTest;

my $old = distsys_node('old', "restart_after_crash = on\ndistsys.dtx_recovery_interval = 0");
my $p1 = bank_participant($old, 'p1', 3, 100);
my $p2 = bank_participant($old, 'p2', 3, 100);
$old->safe_psql('postgres', 'CREATE TABLE ledger (id int PRIMARY KEY)');

sub o { return $old->safe_psql('postgres', $_[0]); }
sub bal { return $_[0]->safe_psql('postgres', "SELECT bal FROM acct WHERE id = $_[1]"); }
sub gids
{
	return join ',', sort map { split /\n/, $_->safe_psql('postgres', 'SELECT gid FROM pg_prepared_xacts') }
	  $p1, $p2;
}

# transfer_sql(ID): move 1 from account ID on p1 to account ID on p2, with a
# local ledger row, so that the coordinator's decision row decides it
sub transfer_sql
{
	my ($id) = @_;
	return "BEGIN; INSERT INTO ledger VALUES ($id);
		SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = $id');
		SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = $id');
		COMMIT;";
}

# fault_run(FAULT, ID): transfer ID with the coordinating backend killed at
# FAULT; returns once the coordinator is back and the participants' sessions
# of the killed backend have ended (so what they prepared is final).
sub fault_run
{
	my ($fault, $id) = @_;
	$old->psql('postgres', "SET distsys.dtx_fault = $fault; " . transfer_sql($id));
	wait_accepting($old) or die 'coordinator did not come back';
	for my $p ($p1, $p2)
	{
		$p->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity"
			  . " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
		  or die 'a participant session of the killed backend did not end';
	}
}

# --- state of every kind on the old coordinator ----------------------------
fault_run('crash_after_decision', 1);
fault_run('crash_after_some_prepares', 2);
my $aborted = join ',', sort split /\n/,
  o("SELECT gid FROM distsys.dtx_in_doubt WHERE outcome = 'aborted'");
is(o("SELECT string_agg(participant || ' ' || outcome, ',' ORDER BY outcome, participant)"
	  . " FROM distsys.dtx_in_doubt WHERE outcome = 'committed'"), 'p1 committed,p2 committed',
	'transfer 1 is committed in doubt on both participants');
isnt($aborted, '', 'transfer 2 is prepared without a decision');

my $t_held = o("SELECT distsys.dlock_try('held', '1 hour', 'app-1')");
my $t_gone = o("SELECT distsys.dlock_try('gone', '1 second', 'app-2')");
$old->poll_query_until('postgres',
	"SELECT expires_at < clock_timestamp() FROM distsys.dlock_leases WHERE name = 'gone'")
  or die 'lease did not expire';

my $id1 = o(q{SELECT distsys.outbox_send('orders', '{"n": 1}'::jsonb, 'k1')});
my $id2 = o(q{SELECT distsys.outbox_send('orders', '{"n": 2}'::jsonb, 'k2')});
is(o("SELECT distsys.outbox_fail($id2, (SELECT message_id FROM distsys.outbox WHERE id = $id2), 'refused by the broker', true, 5, '1 second')"), 'dead',
	'one message is dead-lettered');
my $mid1 = o("SELECT message_id FROM distsys.outbox WHERE id = $id1");
my $mid2 = o("SELECT message_id FROM distsys.outbox_dead WHERE id = $id2");
my $dead_in = o("INSERT INTO distsys.inbox_dead (consumer, topic, attempts, error)"
	  . " VALUES ('billing', 'orders', 3, 'handler failed') RETURNING id");

my $sent = o("SELECT now() - interval '10 minutes'");
is(o("SELECT distsys.inbox_claim('billing', 'm-1', '$sent')"), 't', 'a message is claimed');
o("INSERT INTO distsys.inbox (consumer, message_id, sent_at) VALUES ('billing', 'was-old', now() - interval '2 hours')");
is(o("SET distsys.inbox_retention = '1h'; SELECT distsys.inbox_cleanup()"), '1',
	'a cleanup forgets an old claim and moves the horizon');

# a mark as a coordinator's last agent writes it on this node
o("INSERT INTO distsys.dtx_marks (id, coordinator) VALUES (42, '7:5')");

# every table and sequence of user state, in one line
my $state_sql = "SELECT concat_ws(' | ',
	(SELECT string_agg(name || '=' || conninfo, ',' ORDER BY name) FROM distsys.node_registry),
	(SELECT string_agg(id || ':' || message_id, ',' ORDER BY id) FROM distsys.outbox),
	(SELECT string_agg(id || ':' || error, ',' ORDER BY id) FROM distsys.outbox_dead),
	(SELECT last_value FROM distsys.outbox_id_seq),
	(SELECT string_agg(consumer || ':' || message_id, ',' ORDER BY message_id) FROM distsys.inbox),
	(SELECT max(pruned_before) FROM distsys.inbox_horizon),
	(SELECT string_agg(id || ':' || error, ',' ORDER BY id) FROM distsys.inbox_dead),
	(SELECT last_value FROM distsys.inbox_dead_id_seq),
	(SELECT string_agg(name || ':' || owner || ':' || token || ':' || expires_at, ',' ORDER BY name)
	   FROM distsys.dlock_leases),
	(SELECT string_agg(id || ':' || xid || ':' || participants::text, ',' ORDER BY id) FROM distsys.dtx_decisions),
	(SELECT string_agg(id || ':' || coordinator, ',' ORDER BY id) FROM distsys.dtx_marks))";
my $state = o($state_sql);
note("state dumped: $state");

my $dir = PostgreSQL::Test::Utils::tempdir;
$old->command_ok([ 'pg_dump', '-Fc', '-f', "$dir/old.dump", '-d', $old->connstr('postgres') ],
	'pg_dump, custom format');
$old->command_ok([ 'pg_dump', '-Fp', '-f', "$dir/old.sql", '-d', $old->connstr('postgres') ],
	'pg_dump, plain format');

# --- restore into a fresh server -----------------------------------------
my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', 'distsys.dtx_recovery_interval = 0');
$new->start;
$new->command_ok([ 'pg_restore', '-d', $new->connstr('postgres'), "$dir/old.dump" ],
	'pg_restore of the custom dump into a fresh server');
$new->safe_psql('postgres', 'CREATE DATABASE plain');
$new->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $new->connstr('plain'),
	'-f', "$dir/old.sql" ], 'the plain dump restored with psql into another database');

sub n { return $new->safe_psql($_[1] // 'postgres', $_[0]); }
is(n($state_sql), $state, 'custom format: every table and sequence of user state is restored');
is(n($state_sql, 'plain'), $state, 'plain format: the same');

# --- fencing tokens never go back, also when rows are gone ----------------
# In the plain database first, before any grant in this server: the load
# alone must move the counter, durably, above the restored tokens.
is(n("SELECT distsys.dlock_release('held', 'app-1')", 'plain'), 't', 'plain: the restored lease is released');
is(n('SELECT distsys.dlock_cleanup()', 'plain'), '1', 'plain: the expired row is cleaned up');
$new->restart;
my $t_plain = n("SELECT distsys.dlock_try('gone', '1 minute', 'app-3')", 'plain');
cmp_ok($t_plain, '>', $t_gone,
	'after a restart, with the restored rows gone, a new grant still gets a larger token');

# --- the restored lease is held; a new grant gets a larger token -----------
is(n("SELECT owner || ' ' || token FROM distsys.dlocks WHERE name = 'held'"), "app-1 $t_held",
	'the restored lease is held by its owner with its token');
is(n("SELECT distsys.dlock_try('held', '1 minute', 'app-9') IS NULL"), 't',
	'another owner cannot take it');
is(n("SELECT distsys.dlock_check('held', $t_held)"), 't', 'its token is current');
is(n("SELECT distsys.dlock_renew('held', '1 hour', 'app-1')"), 't', 'its owner can renew it');
my $t_new = n("SELECT distsys.dlock_try('gone', '1 minute', 'app-3')");
cmp_ok($t_new, '>', $t_gone, 'a new grant of the expired lock gets a token above its restored one');
cmp_ok($t_new, '>', $t_held, 'and above every restored token');
is(n("SELECT distsys.dlock_check('gone', $t_gone)"), 'f',
	'a client still holding the expired token is fenced off');

# --- nodes, inbox --------------------------------------------------------
is(n("SELECT string_agg(name, ',' ORDER BY name) FROM distsys.nodes"), 'p1,p2',
	'the registry lists the nodes');
is(n("SELECT distsys.inbox_claim('billing', 'm-1', '$sent')"), 'f',
	'a restored claim still refuses a duplicate');
my ($ret, $out, $err) = $new->psql('postgres',
	"SELECT distsys.inbox_claim('billing', 'was-old', now() - interval '2 hours')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/YI001/, 'the restored horizon still refuses a message sent before it');
is(n("SELECT distsys.inbox_claim('billing', 'm-2')"), 't', 'a new message is claimed');
($ret, $out, $err) = $new->psql('postgres',
	"INSERT INTO distsys.inbox_dead (consumer, topic, attempts, error)"
	  . " VALUES ('billing', 'orders', 1, 'again') RETURNING id");
ok($ret == 0 && $out > $dead_in, 'a new inbox dead letter gets a new id') or diag($err);

# --- outbox: ids go on, the messages are relayed with their message ids ----
is(n('SELECT backlog || \' \' || dead FROM distsys.outbox_status'), '1 1',
	'the outbox functions see the message and the dead letter');
my $id3 = n(q{SELECT distsys.outbox_send('orders', '{"n": 3}'::jsonb, 'k3')});
cmp_ok($id3, '>', $id2, 'a new message gets an id above every restored one');
my $mid3 = n("SELECT message_id FROM distsys.outbox WHERE id = $id3");
is(n('SELECT distsys.outbox_requeue()'), '1', 'the dead letter is requeued');
my $m = start_mock('mock030', '--topic', 'orders:1');
my $relay = start_relay('relay030', $new, $m);
ok(wait_outbox_empty($new, 60), 'the relay empties the restored outbox') or diag(relay_log($relay));
is(join(',', sort map { $_->[1] } @{ consume($m, 'orders') }), join(',', sort $mid1, $mid2, $mid3),
	'each message arrives once, the restored ones with their message ids');
is(stop_relay($relay), 0, 'the relay stops cleanly');

# --- 2PC: the restored decision is finished here, nothing else is touched ---
is(n('SELECT count(*) FROM distsys.dtx_marks'), '1', 'the mark is restored');
is(n("SELECT string_agg(participant || ' ' || outcome, ',' ORDER BY participant) FROM distsys.dtx_in_doubt"),
	'p1 committed,p2 committed',
	'the restored decision adopts transfer 1; transfer 2, without one, is not shown');
is(n('SELECT distsys.dtx_recover()'), '2', 'recovery on the restored server commits transfer 1');
is(bal($p1, 1) . ' ' . bal($p2, 1), '99 101', 'transfer 1 is applied on both participants');
is(gids(), $aborted, 'transfer 2 is left prepared: no restored row can tell its outcome');
is(n('SELECT count(*) FROM distsys.dtx_decisions'), '0', 'the restored decision is forgotten once finished');

$new->safe_psql('postgres', transfer_sql(3));
is(bal($p1, 3) . ' ' . bal($p2, 3) . ' ' . n('SELECT count(*) FROM ledger WHERE id = 3'), '99 101 1',
	'the restored server runs distributed transactions of its own');

cmp_ok(o('SELECT distsys.dtx_recover()'), '>=', 1, 'the old coordinator rolls transfer 2 back');
is(gids(), '', 'no prepared transaction is left');
is(bal($p1, 2) . ' ' . bal($p2, 2), '100 100', 'and nothing of transfer 2 is applied');

done_testing();
