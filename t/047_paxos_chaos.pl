# Paxos among PostgreSQL nodes under faults (issue 17): 3 nodes, then 5,
# every node at synchronous_commit = off and wal_writer_delay = 2000ms
# (acceptor state must be durable whatever those say).
#
# (a) Dueling proposers: one proposer process per node proposes, again
#     and again for 12 s, the instance of the current quarter second
#     ("duel-S", S counted from a start shared by all), each time with a
#     value of its own (naming its node and attempt), so that every
#     instance is proposed concurrently from every node, several times
#     each; meanwhile nodes are SIGKILLed and restarted and every message
#     to one node is dropped for a while (distsys.raft_fault_drop_to on
#     every other node).  Every
#     answer any node gave for an instance must be the same value, one of
#     those proposed; once the faults are over every node proposes every
#     instance once more and must get that value, and every node's
#     paxos_learned must give it within a few seconds.
# (b) A CASPaxos counter: tools/raft-history --api paxos --counter, two
#     clients per node, each incrementing key "counter" by paxos_read and
#     paxos_cas, while nodes are SIGKILLed and restarted (with 5 nodes
#     sometimes two at once).  After a final paxos_read is added to the
#     history, tests/sim/histcheck must find it linearizable (without
#     giving up the search); every node must read the same final value,
#     at least the acknowledged increments and at most those plus the
#     increments of unknown outcome.
# No node's log may show a PANIC, an assertion failure or a process
# killed by a signal.
#
# DISTSYS_CHAOS_SEED=N reruns the fault schedule's choices and the
# clients' of one seed (the interleaving does not replay); the seed is
# printed.  The histories and the proposers' answers stay in the test's
# log directory, and are copied to $TMPDIR (or /tmp) when a check fails.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use POSIX ();
use File::Copy qw(copy);
use File::Spec;
use Time::HiRes qw(time clock_gettime CLOCK_MONOTONIC);
use DistsysTest;
use RaftTest;
use RaftHistory;

history_tools();

my $seed = $ENV{DISTSYS_CHAOS_SEED} || (time % 1000000) + 1;
note("seed $seed (rerun with DISTSYS_CHAOS_SEED=$seed)");
my $conf = "synchronous_commit = off\nwal_writer_delay = 2000ms\n";
my $log = $PostgreSQL::Test::Utils::log_path;

# set_drop(NODE, IDS): NODE's distsys.raft_fault_drop_to ('' for none).
sub set_drop
{
	my ($node, $ids) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET distsys.raft_fault_drop_to = '$ids'; SELECT pg_reload_conf()");
}

# keep(FILE, NAME): copy FILE to $TMPDIR (or /tmp) as NAME, since make
# test removes the log directory; the copy's path.
sub keep
{
	my ($file, $name) = @_;
	my $kept = File::Spec->tmpdir . "/$name";
	copy($file, $kept);
	return $kept;
}

# hold(SECONDS): let a fault last SECONDS (a span of the schedule, not a
# wait for a condition).
sub hold
{
	my ($seconds) = @_;
	my $end = time + $seconds;
	select(undef, undef, undef, 0.05) while time < $end;
}

# The proposers' instances: "duel-S" for each time slot S of SLOT seconds
# since the start, so that every node proposes the same instance at the
# same time however far behind it fell.
my $SLOT = 0.25;

# proposer(NODE, START, UNTIL, FILE): a process that proposes, until
# UNTIL, the instance of the current slot since START through NODE again
# and again, each time with a value of its own, "n<id>a<attempt>",
# writing "INSTANCE ok VALUE" or "INSTANCE err MESSAGE" per call to FILE;
# its pid.  One psql per call, so that a node killed under it costs only
# that call.
sub proposer
{
	my ($node, $start, $until, $file) = @_;
	my $pid = fork;
	die "fork: $!" if !defined $pid;
	return $pid if $pid;
	open my $fh, '>', $file or POSIX::_exit(1);
	$fh->autoflush(1);
	for (my $attempt = 1; time < $until; $attempt++)
	{
		my $name = 'duel-' . int((time - $start) / $SLOT);
		my ($out, $err) = ('', '');
		IPC::Run::run(
			[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			  '-c', 'SET distsys.raft_request_timeout = 2000',
			  '-c', "SELECT distsys.paxos_propose('$name', '\"n$node->{raft_id}a$attempt\"')" ],
			'<', \undef, '>', \$out, '2>', \$err);
		chomp $out;
		if ($? == 0 && $out ne '')
		{
			print $fh "$name ok $out\n";
		}
		else
		{
			$err =~ s/\s+/ /g;
			print $fh "$name err $err\n";
		}
	}
	close $fh;
	POSIX::_exit(0);
}

# kill_some(NODES, K): SIGKILL K distinct random nodes; them.
sub kill_some
{
	my ($nodes, $k) = @_;
	my @pool = @$nodes;
	my @victims;
	push @victims, splice(@pool, int(rand(@pool)), 1) for 1 .. $k;
	kill_postmaster($_) for @victims;
	return @victims;
}

# duel(NODES, N): part (a) on the cluster NODES of N nodes.
sub duel
{
	my ($nodes, $n) = @_;
	my $start = time;
	my $until = $start + 12;
	my @names = map { "duel-$_" } 0 .. int(($until - $start) / $SLOT);
	my %files = map { $_->{raft_id} => "$log/047_duel$n-node$_->{raft_id}.answers" } @$nodes;
	my @pids = map { proposer($_, $start, $until, $files{ $_->{raft_id} }) } @$nodes;

	# the fault schedule, from the seed: kills and dropped messages by
	# turns, the first chosen at random
	my @events;
	my $kill = rand() < 0.5;
	while (time < $until - 1.5)
	{
		$kill = !$kill;
		if ($kill)
		{
			my @down = kill_some($nodes, $n == 5 && rand() < 0.5 ? 2 : 1);
			my $d = 1 + rand(1.5);
			hold($d);
			$_->start for @down;
			push @events, sprintf('killed %s for %.1f s', join(',', map { $_->{raft_id} } @down), $d);
		}
		else
		{
			my $x = $nodes->[ int(rand(@$nodes)) ];
			my @others = grep { $_ != $x } @$nodes;
			set_drop($_, $x->{raft_id}) for @others;
			my $d = 1.5 + rand(1.5);
			hold($d);
			set_drop($_, '') for @others;
			push @events, sprintf('dropped every message to %d for %.1f s', $x->{raft_id}, $d);
		}
		hold(0.5);
	}
	note("$n nodes, duel: $_") for @events;
	waitpid($_, 0) for @pids;
	ok(defined wait_raft_leader(@$nodes), "$n nodes, duel: every node runs again once the faults are over");

	# every answer given during the faults
	my (%answers, %errors, $answered, $failed);
	for my $id (sort keys %files)
	{
		open my $fh, '<', $files{$id} or die "$files{$id}: $!";
		while (<$fh>)
		{
			if (/^(\S+) ok (.*)$/)
			{
				$answers{$1}{$2}{"node $id"}++;
				$answered++;
			}
			elsif (/^(\S+) err (.*)$/)
			{
				my $e = $2;
				$errors{ $e =~ /ERROR:\s+(.{0,60})/ ? $1 : substr($e, 0, 60) }++;
				$failed++;
			}
		}
	}
	note("$n nodes, duel: $answered proposals answered, " . ($failed // 0) . ' failed');
	note("$n nodes, duel: $errors{$_} x $_") for sort keys %errors;
	cmp_ok($answered // 0, '>=', 30 * $n, "$n nodes, duel: proposals were answered during the faults");

	# once more from every node, with the faults over: every node answers
	for my $node (@$nodes)
	{
		my $list = join ',', map { "'$_'" } @names;
		my $out = $node->safe_psql('postgres',
			"SELECT i || ' ' || distsys.paxos_propose(i, '\"late\"') FROM unnest(ARRAY[$list]) i ORDER BY i");
		for (split /\n/, $out)
		{
			my ($name, $v) = split / /, $_, 2;
			$answers{$name}{$v}{ 'node ' . $node->{raft_id} . ' at the end' }++;
		}
	}
	my @bad;
	my %chosen;
	for my $name (@names)
	{
		my @values = sort keys %{ $answers{$name} };
		if (@values != 1 || $values[0] !~ /^"(n\d+a\d+|late)"$/)
		{
			push @bad, "$name: " . join('; ', map { "$_ by " . join(', ', sort keys %{ $answers{$name}{$_} }) } @values);
		}
		$chosen{$name} = $values[0];
	}
	ok(!@bad, "$n nodes, duel: every answer for an instance, from every node, is the same proposed value")
	  or diag("seed $seed, two values answered for one instance:\n" . join("\n", @bad) . "\nanswers kept as "
		  . join(', ', map { keep($files{$_}, "distsys-047-duel$n-node$_-$seed.answers") } sort keys %files));
	my %winner;
	$winner{ $chosen{$_} =~ /^"n(\d+)a/ ? "node $1" : 'late' }++ for @names;
	note("$n nodes, duel: " . scalar(@names) . ' instances, chosen values proposed by '
		  . join(', ', map { "$_: $winner{$_}" } sort keys %winner));
	my $expected = join ',', map { "$_=$chosen{$_}" } sort @names;
	my $query = 'SELECT string_agg(i || \'=\' || coalesce(distsys.paxos_learned(i)::text, \'NULL\'), \',\' ORDER BY i) '
	  . 'FROM unnest(ARRAY[' . join(',', map { "'$_'" } @names) . ']) i';
	for my $node (@$nodes)
	{
		my $deadline = time + 10;
		my $got;
		do
		{
			$got = $node->safe_psql('postgres', $query);
		} while ($got ne $expected && time < $deadline && (select(undef, undef, undef, 0.2) || 1));
		is($got, $expected, "$n nodes, duel: " . $node->name . "'s paxos_learned gives every instance's value");
	}
}

# counter(NODES, N): part (b) on the cluster NODES of N nodes.
sub counter
{
	my ($nodes, $n) = @_;
	my $file = "$log/047_counter$n.hist";
	my $clients = start_history($file, $nodes, 1, $seed + $n, 2, [ '--api', 'paxos', '--counter' ]);
	load($file, 1, "$n nodes, counter: at start");
	my $end = time + 18;
	while (time < $end)
	{
		my @down = kill_some($nodes, $n == 5 && rand() < 0.4 ? 2 : 1);
		my $ids = join ',', map { $_->{raft_id} } @down;
		load($file, 1.5 + rand(1.5), "$n nodes, counter: with node $ids killed");
		$_->start for @down;
		load($file, 1, "$n nodes, counter: with node $ids back");
	}
	my $summary = stop_history($clients, "$n nodes, counter");
	note($summary);
	ok(defined wait_raft_leader(@$nodes), "$n nodes, counter: every node runs");

	# the final value, read through every node; the first read goes into
	# the history, so a lost acknowledged increment is caught
	my $call = int(clock_gettime(CLOCK_MONOTONIC) * 1e6);
	my $final = $nodes->[0]->safe_psql('postgres', q{SELECT distsys.paxos_read('counter')});
	my $ret = int(clock_gettime(CLOCK_MONOTONIC) * 1e6);
	open my $fh, '>>', $file or die "$file: $!";
	print $fh 'counter get ' . ($final eq '' ? 'nil' : $final) . " $call $ret\n";
	close $fh;
	is(join(',', map { $_->safe_psql('postgres', q{SELECT distsys.paxos_read('counter')}) } @$nodes),
		join(',', ($final) x @$nodes), "$n nodes, counter: every node reads the same final value");

	my ($rc, $out, $err) = run_histcheck($file);
	note("$n nodes, counter: $out$err");
	is($rc, 0, "$n nodes, counter: the history is linearizable (histcheck)")
	  or diag("seed $seed, history $file (kept as " . keep($file, "distsys-047-counter$n-$seed.hist") . "):\n$out$err");
	unlike($err, qr/gave up/, "$n nodes, counter: histcheck searched the whole history");

	my ($ack, $unknown) = $summary =~ /raft-history: counter acknowledged (\d+) unknown (\d+)/;
	ok(defined $ack, "$n nodes, counter: the clients print their increments");
	$ack //= 0;
	$unknown //= 0;
	note("$n nodes, counter: final value $final, $ack increments acknowledged, $unknown unknown");
	cmp_ok($ack, '>=', 30, "$n nodes, counter: at least 30 increments acknowledged");
	cmp_ok($final || 0, '>=', $ack, "$n nodes, counter: the final value counts every acknowledged increment");
	cmp_ok($final || 0, '<=', $ack + $unknown,
		"$n nodes, counter: and at most the increments of unknown outcome besides");
}

# chaos(N): a cluster of N nodes through (a) and (b).
sub chaos
{
	my ($n) = @_;
	srand($seed + $n);
	my @nodes = raft_cluster($n, "pchaos$n", $conf);
	ok(defined wait_raft_leader(@nodes), "$n nodes: the workers run");
	duel(\@nodes, $n);
	counter(\@nodes, $n);
	$_->stop for @nodes;
	for my $node (@nodes)
	{
		unlike(DistsysTest::slurp($node->logfile), qr/PANIC|TRAP:|terminated by signal/,
			$node->name . ': no process crashed on its own');
	}
}

chaos(3);
chaos(5);
done_testing();
