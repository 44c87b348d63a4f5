# Raft snapshots among nodes (issue 16): the log stays bounded, and a node
# too far behind catches up by snapshot.
#
# - With distsys.raft_snapshot_entries = 20, each node snapshots its
#   applied state and compacts its log: raft_status.snapshot_index moves.
# - A follower down while 150 writes commit comes back behind the leader's
#   first log entry and is sent a snapshot: it installs it (logged), then
#   follows the log; every node ends with the same distsys.raft_kv.
# - A restart reads the snapshot back from the node's own files.
# - A node added after compaction (raft_add_node) catches up the same
#   way, and is promoted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RaftTest;

my @nodes = raft_cluster(3, 'snap', "distsys.raft_snapshot_entries = 20\n");
my $leader = wait_raft_leader(@nodes);
ok(defined $leader, 'a leader');
my ($behind) = grep { $_->{raft_id} != $leader } @nodes;
my @up = grep { $_ != $behind } @nodes;
$behind->stop;

$up[0]->safe_psql('postgres', join '', map { "SELECT distsys.raft_put('k$_', '$_');\n" } 1 .. 150);
my $state = q{SELECT count(*) || ' ' || sum(value::text::int) FROM distsys.raft_kv};
ok($up[1]->poll_query_until('postgres', $state, '150 11325'), '150 writes applied');
cmp_ok($up[0]->safe_psql('postgres', 'SELECT snapshot_index FROM distsys.raft_status'), '>=', 100,
	'the node snapshotted and compacted its log');

my $off = -s $behind->logfile;
$behind->start;
ok($behind->poll_query_until('postgres', $state, '150 11325'),
	'the node that was down catches up');
like(slurp_file($behind->logfile, $off), qr/installed a snapshot at index \d+/,
	'by installing a snapshot');
$up[0]->safe_psql('postgres', q{SELECT distsys.raft_put('after', '1')});
ok($behind->poll_query_until('postgres', q{SELECT count(*) FROM distsys.raft_kv WHERE key = 'after'}, '1'),
	'and then follows the log');

$_->restart for @nodes;
ok(defined wait_raft_leader(@nodes), 'after a restart of all three a leader is elected');
is($nodes[0]->safe_psql('postgres', q{SELECT distsys.raft_get('k150')}), '150',
	'and the state read back from snapshot and log is whole');
is($behind->safe_psql('postgres', $state =~ s/raft_kv/raft_kv WHERE key LIKE 'k%'/r), '150 11325',
	'on every node');

# a node added after compaction
my $peers = $nodes[0]->safe_psql('postgres', 'SHOW distsys.peers');
my $n4 = PostgreSQL::Test::Cluster->new('snap_4');
$n4->init;
$n4->{raft_id} = 4;
$n4->append_conf('postgresql.conf',
	"listen_addresses = '127.0.0.1'\ndistsys.node_id = 4\ndistsys.peers = '$peers'\n"
	  . "distsys.raft_join = on\ndistsys.raft_snapshot_entries = 20\n");
$n4->start;
durable_psql($n4, 'CREATE EXTENSION distsys');
$nodes[1]->safe_psql('postgres', "SELECT distsys.raft_add_node(4, '" . raft_uri($n4) . "')");
ok($n4->poll_query_until('postgres', q{SELECT count(*) FROM distsys.raft_kv WHERE key LIKE 'k%'}, '150'),
	'a node added after compaction catches up');
ok($nodes[0]->poll_query_until('postgres', "SELECT role = 'voter' FROM distsys.raft_members WHERE id = 4"),
	'and is promoted');
is($n4->safe_psql('postgres', 'SELECT count(*) FROM distsys.raft_nodes WHERE id = 4'), '1',
	'it knows its own URI from the snapshot or the log');

$_->stop for (@nodes, $n4);
done_testing();
