# t/017_consume_failover.pl: the consume command across a failover of its
# database to a streaming standby.
#
# The consumer commits a Kafka offset only after the batch below it
# committed at synchronous_commit = on (docs/relay.md, "Durable before the
# offset moves"), which includes the wait for a synchronous standby when
# synchronous_standby_names names one.  Each message (no message id
# header, so its id is topic-partition-offset: a redelivery of the same
# record is a duplicate) is recorded by a handler that takes about 2 ms.
#
# 1. Synchronous standby: the primary is killed (-9) in the middle of the
#    stream, the consumer too; the standby is promoted and a new consumer
#    of the group runs against it.  Every message, before and after the
#    failover, is applied exactly once on the new primary.
# 2. Asynchronous standby that fell behind (its streaming cut, as a lagging
#    one would be): the messages applied on the primary after the cut had
#    their offsets committed, and the effect of their commits existed only
#    on the old primary: after the failover they are lost, never applied
#    and never delivered again.  That is the documented weaker promise
#    ("With only asynchronous standbys, a failover can still lose the last
#    batches after their offsets moved"); what still holds, and is
#    asserted: nothing is applied twice, and everything the standby had
#    replayed, or that was sent after the failover, is applied once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RelayTest;

my $m = start_mock('mock017', '--topic', 'sync:2', '--topic', 'async:2');

# pair(NAME, SYNC): a started primary with distsys and the handler
# app.slow, and a streaming standby of it, synchronous when SYNC.
sub pair
{
	my ($name, $sync) = @_;
	my $primary = PostgreSQL::Test::Cluster->new("${name}_primary");
	$primary->init(allows_streaming => 1);
	$primary->start;
	durable_psql($primary, 'CREATE EXTENSION distsys');
	setup_handler($primary);
	durable_psql($primary, q{
		CREATE FUNCTION app.slow(topic text, key text, payload jsonb, headers jsonb)
		RETURNS void LANGUAGE sql AS $$
			SELECT pg_catalog.pg_sleep(0.002); SELECT app.apply(topic, key, payload, headers)
		$$;
	});
	$primary->backup('base');
	my $standby = PostgreSQL::Test::Cluster->new("${name}_standby");
	$standby->init_from_backup($primary, 'base', has_streaming => 1);
	$standby->start;
	if ($sync)
	{
		$primary->append_conf('postgresql.conf', "synchronous_standby_names = '${name}_standby'");
		$primary->reload;
		$primary->poll_query_until('postgres',
			"SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = '${name}_standby'")
		  or die 'the standby did not become synchronous';
	}
	return ($primary, $standby);
}

# send_range(TOPIC, FROM, TO): messages FROM .. TO, alternately to partitions 0
# and 1, each with key "kN".
sub send_range
{
	my ($topic, $from, $to) = @_;
	for my $p (0, 1)
	{
		produce_many($m, $topic, $p,
			map { [ "k$_", qq({"n": $_}) ] } grep { $_ % 2 == $p } $from .. $to);
	}
}

# applied(NODE, TOPIC, FROM, TO): "applications distinct-messages" of the
# messages FROM .. TO on NODE.
sub applied
{
	my ($node, $topic, $from, $to) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) || ' ' || count(DISTINCT k) FROM app.applied
		WHERE topic = '$topic' AND substr(k, 2)::int BETWEEN $from AND $to");
}

# wait_applied(NODE, TOPIC, N): until NODE applied N messages of TOPIC.
sub wait_applied
{
	my ($node, $topic, $n) = @_;
	return $node->poll_query_until('postgres', "SELECT count(*) >= $n FROM app.applied WHERE topic = '$topic'");
}

# fail_over(PRIMARY, STANDBY, CONSUMER): kill -9 the primary and the
# consumer, promote the standby (its synchronous_standby_names emptied, so
# that its commits do not wait for a standby it does not have).
sub fail_over
{
	my ($primary, $standby, $c) = @_;
	$primary->kill9;
	kill_relay($c);
	$standby->append_conf('postgresql.conf', "synchronous_standby_names = ''");
	$standby->reload;
	$standby->promote;
	$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die $standby->name . ' was not promoted';
}

# --- 1. synchronous standby: exactly once across the failover -------------
my ($sp, $ss) = pair('s', 1);
# small batches: one batch of all 1000 would leave no middle to kill in
my $c = start_consumer('consumer017s', $sp, $m, '--topic', 'sync', '--group', 'gs', '--handler', 'app.slow',
	'--batch-size', '10');
send_range('sync', 1, 1000);
ok(wait_applied($sp, 'sync', 300), 'sync: the consumer applies on the primary') or diag(relay_log($c));
fail_over($sp, $ss, $c);
my ($before) = split / /, applied($ss, 'sync', 1, 1000);
cmp_ok($before, '<', 1000, "sync: the primary was killed mid-stream ($before of 1000 on the standby)");
$c = start_consumer('consumer017s2', $ss, $m, '--topic', 'sync', '--group', 'gs', '--handler', 'app.slow');
send_range('sync', 1001, 1100);
ok($ss->poll_query_until('postgres', "SELECT count(DISTINCT k) = 1100 FROM app.applied WHERE topic = 'sync'"),
	'sync: a new consumer applies on the promoted standby')
  or diag(relay_log($c));
is(applied($ss, 'sync', 1, 1100), '1100 1100', 'sync: every message applied exactly once');
is($ss->safe_psql('postgres', "SELECT count(*) FROM distsys.inbox WHERE consumer = 'gs'"), 1100,
	'sync: one inbox entry each');
is(stop_relay($c), 0, 'sync: SIGTERM: exit 0');

# --- 2. asynchronous standby, behind: effects lost, none twice ------------
my ($ap, $as) = pair('a', 0);
$c = start_consumer('consumer017a', $ap, $m, '--topic', 'async', '--group', 'ga', '--handler', 'app.slow',
	'--batch-size', '10');
send_range('async', 1, 200);
ok(wait_applied($ap, 'async', 200), 'async: the consumer applies on the primary') or diag(relay_log($c));
$ap->wait_for_catchup($as, 'replay');
# cut the streaming: the standby keeps what it has replayed
$as->append_conf('postgresql.conf', "primary_conninfo = ''");
$as->reload;
$ap->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_stat_replication')
  or die 'the standby still streams';
send_range('async', 201, 400);
ok(wait_applied($ap, 'async', 400), 'async: the primary applies more, which the standby does not get');
send_range('async', 401, 1000);
wait_applied($ap, 'async', 500);
fail_over($ap, $as, $c);
$c = start_consumer('consumer017a2', $as, $m, '--topic', 'async', '--group', 'ga', '--handler', 'app.slow');
send_range('async', 1001, 1100);
# each partition is applied in order: once the last messages are in, every
# earlier one was applied or skipped
ok($as->poll_query_until('postgres', "SELECT count(DISTINCT k) = 100 FROM app.applied
		WHERE topic = 'async' AND substr(k, 2)::int > 1000"),
	'async: a new consumer applies on the promoted standby') or diag(relay_log($c));
is(applied($as, 'async', 1, 200), '200 200', 'async: what the standby had replayed is applied once');
is(applied($as, 'async', 1001, 1100), '100 100', 'async: what was sent after the failover is applied once');
my ($n, $distinct) = split / /, applied($as, 'async', 201, 1000);
is($n, $distinct, 'async: nothing sent before the failover is applied twice');
cmp_ok($n, '<', 800, 'async: the failover lost messages whose offsets had moved (documented)');
diag('async: ' . (800 - $n) . ' of the 800 messages after the cut lost with the old primary');
is(stop_relay($c), 0, 'async: SIGTERM: exit 0');

done_testing();
