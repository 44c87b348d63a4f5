# t/019_consume_standbys.pl: distsys-relay consume --standbys 1 commits a
# Kafka offset only past what an asynchronous standby has flushed, so a
# failover to that standby loses no message's effect.
#
# A primary with an asynchronous streaming standby; the consumer applies
# messages on the primary.  The standby is stopped, more messages are
# applied on the primary only, the consumer stops (committing its offsets)
# and the primary dies.  After the standby's promotion a consumer of the
# same group on it must get the messages whose effect the primary took
# with it again: every message applied exactly once on the new primary.
# (Without --standbys their offsets were committed, and they were lost.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(sleep);
use Test::More;
use DistsysTest;
use RelayTest;

my $primary = PostgreSQL::Test::Cluster->new('st_primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION distsys;
	CREATE SCHEMA app;
	CREATE TABLE app.seen (k text);
	CREATE FUNCTION app.record(topic text, key text, payload jsonb, headers jsonb)
	RETURNS void LANGUAGE sql AS $$ INSERT INTO app.seen VALUES (key) $$;
});
$primary->backup('b019');
my $standby = PostgreSQL::Test::Cluster->new('st_standby');
$standby->init_from_backup($primary, 'b019', has_streaming => 1);
$standby->start;

my $m = start_mock('mock019', '--topic', 'st:1');
my @args = ('--topic', 'st', '--group', 'gs', '--handler', 'app.record');
my $c = start_consumer('consumer019a', $primary, $m, @args, '--standbys', '1');
produce($m, 'st', 0, "before$_", '{}', "distsys-message-id=st-b$_") for 1 .. 10;
ok($primary->poll_query_until('postgres', 'SELECT count(*) = 10 FROM app.seen'),
	'with the standby streaming, the consumer applies') or diag(relay_log($c));
$primary->wait_for_catchup($standby);
$standby->stop('fast');

produce($m, 'st', 0, "during$_", '{}', "distsys-message-id=st-d$_") for 1 .. 10;
ok($primary->poll_query_until('postgres', 'SELECT count(*) = 20 FROM app.seen'),
	'with the standby down, it still applies on the primary') or diag(relay_log($c));
sleep 1;
is(stop_relay($c), 0, 'SIGTERM: the consumer commits what it may and exits');
$primary->stop('immediate');

$standby->start;
$standby->promote;
is($standby->safe_psql('postgres', "SELECT count(*) FROM app.seen WHERE k LIKE 'during%'"), 0,
	'the promoted standby lacks the effects applied while it was down');
$c = start_consumer('consumer019b', $standby, $m, @args);
ok($standby->poll_query_until('postgres', 'SELECT count(*) = 20 FROM app.seen'),
	'a consumer of the group on the new primary gets those messages again')
  or diag(relay_log($c));
sleep 1;
is($standby->safe_psql('postgres', 'SELECT count(*) || \' \' || count(DISTINCT k) FROM app.seen'),
	'20 20', 'every message applied exactly once on the new primary');
is(stop_relay($c), 0, 'SIGTERM: exit 0');
$standby->stop;

done_testing();
