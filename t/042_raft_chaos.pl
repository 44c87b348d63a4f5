# Raft among PostgreSQL nodes under faults, judged for linearizability
# (issue 16): 3 nodes, then 5, every node at synchronous_commit = off.
#
# tools/raft-history runs clients on every node (puts of unique values,
# linearizable gets, compare-and-sets, deletes) while the test injects, one
# after another, with load in between (the clients must get answers again
# after each fault):
# - the leader SIGKILLed, clients load the others, the leader restarted;
# - a follower SIGKILLed and restarted;
# - the leader's postmaster and all its processes SIGSTOPped while the
#   others elect a new leader and take a write, then SIGCONTinued: reads
#   sent to the old leader while it was stopped ('linearizable' and
#   'lease') must see that write or fail;
# - the leader cut off both ways (distsys.raft_fault_drop_to on every
#   side; with 5 nodes the leader and a follower, a minority of two), then
#   healed;
# - one-way partitions, then healed: the leader's messages to the others
#   dropped; a follower's;
# - every link delayed (distsys.raft_fault_delay_to), by a different
#   amount each;
# - every node killed at once (immediate stop) and started again.
# Then the clients stop, a final linearizable read of every key is added
# to the history, and tests/sim/histcheck must find it linearizable (so no
# acknowledged write is lost and no read is stale); every node must apply
# the same distsys.raft_kv; and the clients must have done real work.
#
# DISTSYS_CHAOS_SEED=N reruns the clients' choices of one seed (the
# interleaving with the faults differs from run to run); the seed is
# printed.  The histories stay in the test's log directory.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RaftTest;
use RaftHistory;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

history_tools();

my $seed = $ENV{DISTSYS_CHAOS_SEED} || (time % 1000000) + 1;
note("seed $seed (rerun with DISTSYS_CHAOS_SEED=$seed)");
my $keys = 6;
# the node's own Raft store is what must be durable, not its commits
# snapshots every 300 entries, so that faults fall on snapshots and
# nodes that were down catch up by snapshot as well as by log
my $conf = "synchronous_commit = off\nwal_writer_delay = 2000ms\ndistsys.raft_snapshot_entries = 300\n";

# set_faults(NODE, DROP, DELAY): distsys.raft_fault_drop_to and
# distsys.raft_fault_delay_to of NODE ('' for none).
sub set_faults
{
	my ($node, $drop, $delay) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET distsys.raft_fault_drop_to = '" . ($drop // '') . "'; "
		  . "ALTER SYSTEM SET distsys.raft_fault_delay_to = '" . ($delay // '') . "'; "
		  . 'SELECT pg_reload_conf()');
}

# ids(NODES): their Raft ids, as a fault setting lists them.
sub ids { return join ' ', map { $_->{raft_id} } @_; }

# processes(NODE): its postmaster and the postmaster's children.
sub processes
{
	my $pm = $_[0]->{_pid};
	return ($pm, DistsysTest::children($pm));
}

# open_reader(NODE): a session on NODE, opened before NODE is paused.
sub open_reader { return bg_session($_[0], on_error_stop => 0); }

# send_read(BG, CONSISTENCY): send a raft_get of key probe without waiting
# for the answer (the node is paused: it reads the query once resumed).
sub send_read
{
	my ($bg, $consistency) = @_;
	$bg->query_until(qr/sent/,
		"\\echo sent\nSELECT 'got:' || coalesce(distsys.raft_get('probe', '$consistency')::text, 'nil');\n\\echo done:\n");
}

# read_answer(BG): the value the sent read answered, or undef if it failed.
sub read_answer
{
	my ($bg) = @_;
	my $out = $bg->query_until(qr/done:\n/, '');
	$bg->quit;
	return $out =~ /got:(\S+)/ ? $1 : undef;
}

# pause_leader(NODES, FILE): SIGSTOP the leader's processes while the
# others elect a new leader and write probe = 2; reads sent to the old
# leader during the pause must not answer the old value after SIGCONT.
sub pause_leader
{
	my ($nodes, $file) = @_;
	my $old = leader_node(@$nodes);
	my @rest = grep { $_ != $old } @$nodes;
	$old->safe_psql('postgres', q{SELECT distsys.raft_put('probe', '1')});
	my %readers = map { $_ => open_reader($old) } qw(linearizable lease);
	my @pids = processes($old);
	kill 'STOP', @pids;
	# a process forked while the first were being stopped
	kill 'STOP', processes($old);
	send_read($readers{$_}, $_) for keys %readers;
	my $new = leader_node(@rest);
	# writes through the new leader until the pause lasted twice the
	# longest election timeout (2 x 300 ms)
	my $stopped = clock_gettime(CLOCK_MONOTONIC);
	do
	{
		$new->safe_psql('postgres', q{SELECT distsys.raft_put('probe', '2')});
	} while (clock_gettime(CLOCK_MONOTONIC) - $stopped < 0.6);
	kill 'CONT', processes($old);
	for my $c (sort keys %readers)
	{
		my $got = read_answer($readers{$c});
		ok(!defined $got || $got eq '2',
			"a $c read sent to a paused leader sees the write made meanwhile, or fails (got "
			  . ($got // 'an error') . ')');
	}
	load($file, 2, 'after the paused leader resumed');
}

# partition(NODES, FILE, CUT, ONE_WAY, WHAT): the nodes of CUT lose the
# others: both ways, or only CUT's messages to them when ONE_WAY; load,
# heal, load.
sub partition
{
	my ($nodes, $file, $cut, $one_way, $what) = @_;
	my %in = map { $_ => 1 } @$cut;
	my @rest = grep { !$in{$_} } @$nodes;
	set_faults($_, ids(@rest)) for @$cut;
	if (!$one_way)
	{
		set_faults($_, ids(@$cut)) for @rest;
	}
	load($file, 3, "with $what");
	set_faults($_) for @$nodes;
	load($file, 2, "once $what is healed");
}

# slow_links(NODES, FILE): every node delays its batches to every other
# by 10 ms to 10 * N ms, different per link, so they arrive out of step.
sub slow_links
{
	my ($nodes, $file) = @_;
	for my $n (@$nodes)
	{
		my @others = grep { $_ != $n } @$nodes;
		set_faults($n, '',
			join ' ', map { $_->{raft_id} . ':' . 10 * (($n->{raft_id} + $_->{raft_id}) % @$nodes + 1) } @others);
	}
	load($file, 3, 'with delayed links');
	set_faults($_) for @$nodes;
}

# chaos(N): one cluster of N nodes through every fault under load.
sub chaos
{
	my ($n) = @_;
	my @nodes = raft_cluster($n, "chaos$n", $conf);
	leader_node(@nodes);
	my $file = "$PostgreSQL::Test::Utils::log_path/042_chaos$n.hist";
	my $clients = start_history($file, \@nodes, $keys, $seed + $n);
	load($file, 1, "$n nodes: at start");

	my $leader = leader_node(@nodes);
	kill_and_restart($leader, $file, 'leader');
	$leader = leader_node(@nodes);
	my @followers = grep { $_ != $leader } @nodes;
	kill_and_restart($followers[0], $file, 'follower');
	pause_leader(\@nodes, $file);
	# with 5 nodes the leader and a follower make the minority
	$leader = leader_node(@nodes);
	@followers = grep { $_ != $leader } @nodes;
	my @minority = ($leader, $n == 5 ? $followers[0] : ());
	partition(\@nodes, $file, \@minority, 0, 'the leader in a minority');
	$leader = leader_node(@nodes);
	partition(\@nodes, $file, [$leader], 1, "the leader's messages dropped");
	($followers[0]) = grep { $_ != leader_node(@nodes) } @nodes;
	partition(\@nodes, $file, [$followers[0]], 1, "a follower's messages dropped");
	slow_links(\@nodes, $file);
	$_->stop('immediate') for @nodes;
	$_->start for @nodes;
	load($file, 2, 'after every node was killed and started');

	my $summary = stop_history($clients, "$n nodes");
	final_reads(leader_node(@nodes), $file, $keys);
	check_history($file, $summary, "$n nodes", $seed, { put => 200, get => 200, cas => 100 });
	converge(@nodes);
	$_->stop for @nodes;
	my $installed = no_crashes(@nodes);
	note("$n nodes: $installed snapshots installed from a leader or read back at a start");
}

chaos(3);
chaos(5);
done_testing();
