# t/016_consume_durable.pl: the consume command commits a Kafka offset only
# past what is durable, whatever the database's synchronous_commit.
#
# The node runs at synchronous_commit = off, with the WAL writer flushing
# only every 10 s, so an asynchronous commit is lost by a crash within that
# time.  A consumer applies messages and, on SIGTERM, commits their offsets;
# the postmaster is then killed (-9) at once.  After the restart a new
# consumer of the group gets nothing again (the offsets moved), so every
# message must have been applied durably, exactly once: the consume
# command's session runs at synchronous_commit = on, which the handler
# records.  (Before that, the last batches' commits were lost with the
# crash and their messages never applied.)  A default of remote_apply is
# kept.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RelayTest;

my $n = 20;
my $node = distsys_node('durable', "synchronous_commit = off\nwal_writer_delay = '10s'\n");
my $m = start_mock('mock016', '--topic', 'dur:1');
$node->safe_psql('postgres', q{
	CREATE SCHEMA app;
	CREATE TABLE app.seen (k text, sync text);
	CREATE FUNCTION app.record(topic text, key text, payload jsonb, headers jsonb)
	RETURNS void LANGUAGE sql AS $$
		INSERT INTO app.seen VALUES (key, pg_catalog.current_setting('synchronous_commit'))
	$$;
});

my $c = start_consumer('consumer016', $node, $m, '--topic', 'dur', '--group', 'gd',
	'--handler', 'app.record');
produce($m, 'dur', 0, "k$_", qq({"n": $_}), "distsys-message-id=dur-$_") for 1 .. $n;
ok($node->poll_query_until('postgres', "SELECT count(*) = $n FROM app.seen"),
	"the consumer applies $n messages") or diag(relay_log($c));
is($node->safe_psql('postgres', 'SELECT string_agg(DISTINCT sync, \',\') FROM app.seen'), 'on',
	'its transactions run at synchronous_commit = on, over the database\'s off');

# SIGTERM commits the offsets; the crash follows at once, well within the
# WAL writer's 10 s.
is(stop_relay($c), 0, 'SIGTERM: the consumer commits its offsets and exits');
crash_postmaster($node);

is($node->safe_psql('postgres', 'SELECT count(*) || \' \' || count(DISTINCT k) FROM app.seen'),
	"$n $n", 'after the crash every message is still applied, once');
is($node->safe_psql('postgres', "SELECT count(*) FROM distsys.inbox WHERE consumer = 'gd'"),
	$n, 'with its inbox entry');

# The offsets did move: a new consumer of the group applies only what comes
# after, and applies it once.
$c = start_consumer('consumer016b', $node, $m, '--topic', 'dur', '--group', 'gd',
	'--handler', 'app.record');
produce($m, 'dur', 0, 'after', '{"n": 0}', 'distsys-message-id=dur-after');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM app.seen WHERE k = 'after'"),
	'a new consumer of the group applies the next message') or diag(relay_log($c));
is($node->safe_psql('postgres', 'SELECT count(*) FROM app.seen'), $n + 1,
	'and none of the committed ones again');
is(stop_relay($c), 0, 'SIGTERM: exit 0');

# A default stronger than on (remote_apply) is kept, not lowered to on.
$node->safe_psql('postgres', 'ALTER DATABASE postgres SET synchronous_commit = remote_apply');
$c = start_consumer('consumer016c', $node, $m, '--topic', 'dur', '--group', 'gd',
	'--handler', 'app.record');
produce($m, 'dur', 0, 'strong', '{"n": 0}', 'distsys-message-id=dur-strong');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM app.seen WHERE k = 'strong'"),
	'a consumer under a remote_apply default applies') or diag(relay_log($c));
is($node->safe_psql('postgres', "SELECT sync FROM app.seen WHERE k = 'strong'"), 'remote_apply',
	'at remote_apply');
is(stop_relay($c), 0, 'SIGTERM: exit 0');

done_testing();
