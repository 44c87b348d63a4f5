# t/011_outbox_faults.pl: distsys-relay under faults.
#
# Each subtest runs the pgbench workload of t/010 (8 keys, one transaction
# in ten rolled back) on a topic of its own while something breaks: the
# relay is SIGKILLed and restarted, the broker fails produce requests
# (retriable, then permanent), the broker goes down and comes back,
# PostgreSQL crashes under the relay, two and then three relays share the
# lanes and one is killed.  Afterwards nothing committed is missing (dead-lettered
# messages aside, which must carry their error), nothing rolled back
# arrived, nothing is reordered within a key; duplicates, possible only
# where a delivery's outcome was unknown to the database (a relay killed
# between delivery and delete), are counted and printed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Test::More;
use DistsysTest;
use RelayTest;

my $node = distsys_node('faults');
my $m = start_mock('mock011');
setup_workload($node);

# verify(TOPIC, WHAT, ALLOW_DUPS): the checks every subtest ends with.
sub verify
{
	my ($topic, $what, $allow_dups) = @_;
	ok(wait_outbox_empty($node, 60), "$what: outbox ends empty");
	my $exp = expected_messages($node, $topic);
	my $dead = dead_ids($node, $topic);
	my $n = 0;
	$n += @$_ for values %$exp;
	my ($missing, $unexpected, $reordered, $dups) =
	  check_stream(consume($m, $topic), $exp, $dead);
	is($missing, 0, "$what: nothing committed missing ($n committed, "
		  . scalar(keys %$dead) . ' dead-lettered)');
	is($unexpected, 0, "$what: nothing rolled back arrived");
	is($reordered, 0, "$what: per-key order holds");
	is($dups, 0, "$what: no duplicates") unless $allow_dups;
	diag("$what: $dups duplicates among $n messages");
	return $dead;
}

# lane_owners: pid => lanes held, from distsys.dlocks.
sub lane_owners
{
	my %owners = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
		"SELECT pid, count(*) FROM distsys.dlocks WHERE name LIKE 'distsys.relay.lane.16.%' GROUP BY pid");
	return \%owners;
}

# bulk(TOPIC, PER_KEY): one transaction sending PER_KEY messages for each
# of the 8 keys, recorded like the workload's.
sub bulk
{
	my ($topic, $per_key) = @_;
	$node->safe_psql('postgres', qq{
		INSERT INTO counters SELECT '$topic', k FROM generate_series(1, 8) k ON CONFLICT DO NOTHING;
		DO \$\$
		DECLARE base int;
		BEGIN
			FOR s IN 1 .. $per_key LOOP
				FOR kk IN 1 .. 8 LOOP
					UPDATE counters SET n = n + 1 WHERE topic = '$topic' AND counters.k = kk
					RETURNING n INTO base;
					INSERT INTO sent VALUES ('$topic', kk, base,
						distsys.outbox_send('$topic', jsonb_build_object('k', kk, 'seq', base), 'k' || kk));
				END LOOP;
			END LOOP;
		END \$\$;
	});
}

subtest 'relay SIGKILLed repeatedly and restarted' => sub {
	my ($i, @left) = (0);
	bulk('kill', 2500);
	my $r = start_relay('kill0', $node, $m);
	my $bench = run_workload($node, 'kill', 4, 250, 1);
	for $i (1 .. 5)
	{
		my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox');
		wait_until(sub {
			my $c = $node->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox');
			$c < $before - 1500 || $c < 300 }, 10);
		kill_relay($r);	# in the middle of the drain
		$left[$i] = $node->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox');
		$r = start_relay("kill$i", $node, $m);
	}
	$bench->finish;
	diag('rows left in the outbox after each kill: ' . join(' ', @left[1 .. 5]));
	verify('kill', 'SIGKILL x5', 1);
	is(stop_relay($r), 0, 'last relay stops with 0');
};

subtest 'produce errors: retriable then permanent' => sub {
	my $r = start_relay('errors', $node, $m, '--dead-letter-after', 3);
	ok(wait_until(sub { relay_log($r) =~ /lanes taken: .* of 16 owned/ }, 10), 'relay up');
	ok(mock_control($m, 'produce-errors 25 NOT_ENOUGH_REPLICAS'), 'inject NOT_ENOUGH_REPLICAS');
	run_workload($node, 'retriable', 4, 100);
	verify('retriable', 'retriable errors', 0);

	ok(mock_control($m, 'produce-errors 1 MSG_SIZE_TOO_LARGE'), 'inject MSG_SIZE_TOO_LARGE');
	run_workload($node, 'permanent', 4, 50);
	my $dead = verify('permanent', 'permanent error', 1);
	cmp_ok(scalar(keys %$dead), '>=', 1, 'the refused messages are dead-lettered');
	is(scalar(grep { !/MSG_SIZE_TOO_LARGE/ } values %$dead), 0,
		'with the broker\'s error');
	like(relay_log($r), qr/dead-lettered after 1 attempts: Broker: Message size too large|MSG_SIZE_TOO_LARGE/,
		'one log line per dead letter');
	$node->safe_psql('postgres', "DELETE FROM distsys.outbox_dead");
	is(stop_relay($r), 0, 'relay stops with 0');
};

subtest 'broker down and back up' => sub {
	my $r = start_relay('down', $node, $m);
	ok(wait_until(sub { relay_log($r) =~ /lanes taken: .* of 16 owned/ }, 10), 'relay up');
	ok(mock_control($m, 'broker-down all'), 'broker down');
	my $bench = run_workload($node, 'down', 4, 100, 1);
	ok(wait_until(sub { relay_log($r) =~ /broker down/ }, 30), 'relay logs: broker down');
	$bench->finish;
	cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox'), '>', 0,
		'rows wait in the outbox');
	ok(mock_control($m, 'broker-up all'), 'broker up');
	verify('down', 'broker down/up', 0);
	like(relay_log($r), qr/broker up/, 'relay logs: broker up');
	is(stop_relay($r), 0, 'relay stops with 0');
};

subtest 'PostgreSQL crashes under the relay' => sub {
	my $r = start_relay('pgcrash', $node, $m);
	ok(wait_until(sub { relay_log($r) =~ /lanes taken: .* of 16 owned/ }, 10), 'relay up');
	run_workload($node, 'pgcrash', 4, 100);
	crash_postmaster($node);
	run_workload($node, 'pgcrash', 4, 100);
	verify('pgcrash', 'postmaster kill -9', 1);
	my $log = relay_log($r);
	like($log, qr/database disconnected/, 'relay logs the lost connection');
	my $connects = () = $log =~ /database connected/g;
	cmp_ok($connects, '>=', 2, 'and reconnects');
	is(stop_relay($r), 0, 'relay stops with 0');
};

for my $n (2, 3)
{
	subtest "$n relays share the lanes; one SIGKILLed" => sub {
		my @r = map { start_relay("share${n}_$_", $node, $m) } 1 .. $n;
		my $share = int((16 + $n - 1) / $n);
		ok(wait_until(sub { keys(%{ lane_owners() }) == $n }, 20),
			"each of $n relays owns lanes")
		  or diag(explain(lane_owners()));
		# a relay that took lanes before it saw the others gives the excess
		# back at its next tick (docs/relay.md: "within seconds")
		my $max;
		wait_until(sub {
			$max = 0;
			$max = $_ > $max ? $_ : $max for values %{ lane_owners() };
			$max <= $share }, 10);
		cmp_ok($max, '<=', $share, "within seconds none holds more than its share ($share)");
		my $bench = run_workload($node, "share$n", 4, 200, 1);
		sleep 0.5;
		kill_relay($r[0]);
		my $t0 = time;
		ok(wait_until(sub { my $o = lane_owners(); my $t = 0; $t += $_ for values %$o;
			keys(%$o) == $n - 1 && $t == 16 }, 15), 'the survivors take its lanes');
		diag(sprintf("$n relays: lanes taken over within %.1f s", time - $t0));
		$bench->finish;
		verify("share$n", "one of $n killed", 1);
		is(stop_relay($_), 0, 'survivor stops with 0') for @r[1 .. $n - 1];
	};
}

subtest 'unreachable database or broker at start' => sub {
	my $log = "$ENV{TESTDIR}/tmp_check/nodb3.log";
	my $pid = fork;
	if ($pid == 0)
	{
		open STDOUT, '>>', $log;
		open STDERR, '>&', \*STDOUT;
		exec 'distsys-relay', '--db', 'host=127.0.0.1 port=1 connect_timeout=2',
		  '--brokers', $m->{bs};
	}
	my $nodb = { pid => $pid, log => $log };
	ok(wait_until(sub { relay_log($nodb) =~ /could not connect to the database: .*retrying/ }, 15),
		'unreachable database: one clear line');
	sleep 1;
	ok(kill(0, $pid), 'and it keeps retrying');
	is(stop_relay($nodb), 0, 'SIGTERM exits 0');

	my $nob = start_relay('nobroker', $node, { bs => '127.0.0.1:1' });
	ok(wait_until(sub { relay_log($nob) =~ /broker down/ }, 20),
		'unreachable broker: one clear line') or diag(relay_log($nob));
	ok(kill(0, $nob->{pid}), 'and it keeps retrying');
	is(stop_relay($nob), 0, 'SIGTERM exits 0');
};

done_testing();
