# Mutual exclusion under load: many clients run a critical section guarded
# by dlock_acquire, each recording when it entered and left and with which
# token.  No two sections may overlap, and tokens must grow in the order the
# sections ran.  Done for session-owned and application-owned locks.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $node = distsys_node('mutex');
$node->safe_psql('postgres',
	'CREATE TABLE cs_log (token bigint, client int, entered timestamptz, left_at timestamptz, fenced boolean)');

my $clients = 8;
my $rounds = 40;
my %owner = (session => 'NULL', application => q{'client-' || :client_id});

for my $kind (sort keys %owner)
{
	my $script = "$PostgreSQL::Test::Utils::tmp_check/cs_$kind.sql";
	open my $fh, '>', $script or die $!;
	print $fh <<"SQL";
SELECT distsys.dlock_acquire('cs', '30s', '60s', $owner{$kind}) AS tok \\gset
BEGIN;
SELECT distsys.dlock_assert('cs', :tok);
INSERT INTO cs_log VALUES (:tok, :client_id, clock_timestamp(), NULL, true);
SELECT pg_sleep(0.001);
UPDATE cs_log SET left_at = clock_timestamp() WHERE token = :tok;
COMMIT;
SELECT distsys.dlock_release('cs', $owner{$kind});
SQL
	close $fh;
	$node->safe_psql('postgres', 'TRUNCATE cs_log');
	$node->command_ok(
		[ 'pgbench', '-n', '-c', $clients, '-j', 2, '-t', $rounds, '-f', $script,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		"$kind: $clients clients x $rounds critical sections ran without error");

	my $count = $node->safe_psql('postgres', 'SELECT count(*) FROM cs_log WHERE left_at IS NOT NULL');
	is($count, $clients * $rounds, "$kind: every critical section completed");
	my $overlaps = $node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT entered, lag(left_at) OVER (ORDER BY entered) AS prev_left FROM cs_log) s
		WHERE entered < prev_left});
	is($overlaps, '0', "$kind: no two critical sections overlapped");
	my $disorder = $node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT token, lag(token) OVER (ORDER BY entered) AS prev FROM cs_log) s
		WHERE token <= prev});
	is($disorder, '0', "$kind: tokens strictly increased in the order sections ran");
	my $clients_seen = $node->safe_psql('postgres', 'SELECT count(DISTINCT client) FROM cs_log');
	is($clients_seen, $clients, "$kind: every client got the lock");
}

my ($waits, $wakeups) = split /\|/, $node->safe_psql('postgres',
	'SELECT waits, wakeups FROM distsys.dlock_stats');
cmp_ok($waits, '>', 0, "contention happened ($waits waits)");
cmp_ok($wakeups / $waits, '<', 1.5, "wakeups per wait stayed near 1 ($wakeups / $waits)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM distsys.dlocks'), '0', 'nothing is left held');

$node->stop;
done_testing();
