# Raft among PostgreSQL nodes apart (issue 18): the chaos test once more,
# with every link through distsys-netem, the network emulator, so that
# messages take real time, arrive with jitter, and partitions are made by
# the network (bytes held on the path, connections hanging, as a firewall
# dropping packets would do) rather than by distsys.raft_fault_drop_to.
#
# Three nodes, each ordered pair with its own link (t/NetemTest.pm), 1 ms
# each way with normal jitter of 0.5 ms; tools/raft-history's clients on
# every node through its client link.  Under their load:
# - every link carries traffic (the emulator's counters);
# - the leader cut off both ways by the network: the other two elect a
#   leader and serve, then the partition heals and the held bytes arrive
#   late (stale messages of an old term);
# - the leader's own messages held one way while it still hears the
#   others;
# - every node-to-node connection reset at once;
# - jitter raised to 3 +- 3 ms on every link;
# - the leader SIGKILLed and restarted.
# Then the history must be linearizable (tests/sim/histcheck), every node
# must hold the same raft_kv, and no process may have crashed.
#
# DISTSYS_CHAOS_SEED=N reruns the clients' and the jitter's choices.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RaftTest;
use RaftHistory;
use NetemTest;

history_tools();

my $seed = $ENV{DISTSYS_CHAOS_SEED} || (time % 1000000) + 1;
note("seed $seed (rerun with DISTSYS_CHAOS_SEED=$seed)");
my $keys = 6;
my $conf = "synchronous_commit = off\nwal_writer_delay = 2000ms\ndistsys.raft_snapshot_entries = 300\n";

my ($netem, @nodes) = netem_raft_cluster(3, 'apart', $conf,
	'--delay-ms', '1', '--jitter-ms', '0.5', '--jitter', 'normal', '--seed', $seed);
leader_node(@nodes);
my $file = "$PostgreSQL::Test::Utils::log_path/049_apart.hist";
my $clients = start_history($file, \@nodes, $keys, $seed);
load($file, 2, 'at start, 1 ms each way with jitter on every link');

# every link carries the traffic: none goes around the emulator
my $stats = netem_stats($netem);
my @node_links = netem_links_of(\@nodes, \@nodes);
is(scalar(grep { $stats->{$_}{up_bytes} > 0 && $stats->{$_}{down_bytes} > 0 } @node_links),
	6, 'each of the 6 node-to-node links carries messages both ways');
is(scalar(grep { $stats->{"c$_"}{up_bytes} > 0 } 1 .. 3), 3, 'the clients reach every node through it');

# cut(LINKS, WHAT): hold LINKS, load, heal, load.
sub cut
{
	my ($links, $what) = @_;
	netem_command($netem, "partition $_") for @$links;
	load($file, 3, "with $what");
	netem_command($netem, "heal $_") for @$links;
	load($file, 2, "once $what is healed");
}

my $leader = leader_node(@nodes);
my @rest = grep { $_ != $leader } @nodes;
my @around = (netem_links_of([$leader], \@rest), netem_links_of(\@rest, [$leader]));
netem_command($netem, "partition $_") for @around;
my $new = leader_node(@rest);
isnt($new->{raft_id}, $leader->{raft_id}, 'cut off by the network, the leader is replaced by one of the others');
load($file, 3, 'with the leader cut off by the network');
netem_command($netem, "heal $_") for @around;
load($file, 2, 'once the network healed (the held messages arrive late)');

$leader = leader_node(@nodes);
cut([ netem_links_of([$leader], [ grep { $_ != $leader } @nodes ]) ], "the leader's messages held");

netem_command($netem, "reset $_") for @node_links;
load($file, 2, 'after every node-to-node connection was reset');

netem_command($netem, 'delay all 3 3 normal');
load($file, 3, 'with 3 +- 3 ms on every link');
netem_command($netem, 'delay all 1 0.5 normal');

kill_and_restart(leader_node(@nodes), $file, 'leader');

my $summary = stop_history($clients, 'apart');
final_reads(leader_node(@nodes), $file, $keys);
check_history($file, $summary, 'apart', $seed, { put => 100, get => 100, cas => 50 });
converge(@nodes);
$_->stop for @nodes;
no_crashes(@nodes);
is(netem_stop($netem), 0, 'the emulator stops cleanly');
done_testing();
