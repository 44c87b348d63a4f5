# t/010_outbox_relay.pl: distsys-relay publishes exactly what committed, in
# key order, and deletes rows only once the broker acknowledged them.
#
# Concurrent pgbench transactions (8 keys, one in ten rolled back) write to
# the outbox while a relay runs against distsys-kafka-mock; kcat reads the
# topic back.  Also: message contents (key, headers, tombstone, message id),
# the metrics endpoint, and SIGTERM draining with exit code 0.
use strict;
use warnings;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);
use Test::More;
use DistsysTest;
use RelayTest;

my $node = distsys_node('relay');
my $m = start_mock('mock010', '--topic', 'orders:4', '--topic', 'misc:1');
setup_workload($node);

my $port = do {
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0');
	my $p = $s->sockport;
	close $s;
	$p;
};
my $relay = start_relay('relay010', $node, $m, '--metrics-addr', "127.0.0.1:$port");

ok(wait_until(sub { relay_log($relay) =~ /lanes taken: .* of 16 owned/ }, 30), 'relay takes lanes')
  or diag(relay_log($relay));

# --- concurrent producers, some rolled back --------------------------------
my $t0 = time;
run_workload($node, 'orders', 8, 150);
ok(wait_outbox_empty($node, 60), 'outbox ends empty');
my $elapsed = time - $t0;
my $exp = expected_messages($node, 'orders');
my $committed = 0;
$committed += @$_ for values %$exp;
cmp_ok($committed, '>', 900, "workload committed $committed messages");
my $msgs = consume($m, 'orders');
my ($missing, $unexpected, $reordered, $dups) = check_stream($msgs, $exp);
is($missing, 0, 'every committed message arrived');
is($unexpected, 0, 'no rolled-back (or foreign) message arrived');
is($reordered, 0, 'per-key order holds');
is($dups, 0, 'no duplicates without faults');
note(sprintf('%d messages committed and relayed in %.2f s (%.0f/s, including the workload)',
	$committed, $elapsed, $committed / $elapsed));
is($node->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox_dead'), 0,
	'nothing dead-lettered');

# --- contents: key, headers, content type, tombstone, no key ---------------
$node->safe_psql('postgres', q{
	SELECT distsys.outbox_send('misc', 'hello'::text, 'a', '{"trace": "t1"}');
	SELECT distsys.outbox_send('misc', NULL::bytea, 'a');
	SELECT distsys.outbox_send('misc', '\x00ff'::bytea);
});
ok(wait_outbox_empty($node, 30), 'second batch relayed');
my $misc = consume($m, 'misc');
is(scalar(@$misc), 3, 'three messages on topic misc');
is($misc->[0][0], 'a', 'key is the outbox key');
is($misc->[0][2], 'hello', 'text payload as is');
like($misc->[0][3], qr/trace=t1/, 'row headers are Kafka headers');
like($misc->[0][3], qr/content-type=text\/plain/, 'content type from the payload type');
like($misc->[0][1], qr/^\d+-\d+-\d+-\d+-\d+$/, 'distsys-message-id header');
{
	my ($y, $mo, $d, $h, $mi, $s, $us) = $misc->[0][3]
	  =~ /distsys-sent-at=(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z/;
	ok(defined $us, 'distsys-sent-at header: ISO 8601 UTC with microseconds')
	  or diag($misc->[0][3]);
	my $ms = (timegm($s // 0, $mi // 0, $h // 0, $d // 1, ($mo // 1) - 1, $y // 1970) * 1000)
	  + int(($us // 0) / 1000);
	is($misc->[0][4], $ms, 'the Kafka timestamp is the same instant (ms)');
	my $created = $node->safe_psql('postgres',
		q{SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY')});
	is($y, $created, 'sent-at is the creation time (this year, UTC)');
}
is($misc->[1][2], '', 'NULL payload is a tombstone');
is($misc->[2][0], '', 'NULL key: no key');

# --- metrics ---------------------------------------------------------------
{
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10);
	ok($s, 'metrics endpoint accepts connections');
	my $page = '';
	if ($s)
	{
		print $s "GET /metrics HTTP/1.0\r\n\r\n";
		local $/;
		$page = <$s> // '';
	}
	like($page, qr/^HTTP\/1\.0 200/, 'answers 200');
	like($page, qr/^distsys_relay_$_/m, "has distsys_relay_$_")
	  for qw(messages_relayed_total messages_failed_total messages_dead_lettered_total
	  backlog oldest_message_age_seconds lanes_owned commit_to_ack_seconds_bucket);
	my ($n) = $page =~ /^distsys_relay_messages_relayed_total (\d+)/m;
	cmp_ok($n // 0, '>=', $committed + 3, 'relayed counter counts the messages');
	like($page, qr/^distsys_relay_lanes_owned 16$/m, 'owns all 16 lanes alone');
}

# --- SIGTERM drains and exits 0 ---------------------------------------------
$node->safe_psql('postgres',
	"SELECT distsys.outbox_send('misc', 'x' || i, 'b') FROM generate_series(1, 200) i");
is(stop_relay($relay), 0, 'SIGTERM: exit code 0');
like(relay_log($relay), qr/stopped: released \d+ lanes/, 'logs its stop');
my $left = $node->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox');
my $got = grep { $_->[0] eq 'b' } @{ consume($m, 'misc') };
cmp_ok($got + $left, '>=', 200, "nothing lost at stop ($got relayed, $left left in the outbox)");

done_testing();
