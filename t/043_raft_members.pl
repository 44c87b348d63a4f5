# Raft membership among nodes (issue 16): nodes added under load, one
# removed, leadership transferred, a fifth node; the rules on who may.
#
# - A fourth server, started with distsys.raft_join, is added with
#   raft_add_node while a client writes: it joins as a learner, catches up
#   from the log, is promoted to voter, and applies every write.
# - A fifth joins the same way; then one of the founders is removed and
#   the cluster (now four voters) keeps electing and serving writes.
# - raft_transfer_leadership hands leadership to a chosen voter.
# - An ordinary role may not change membership and sees no URIs in
#   raft_members; bad arguments give their SQLSTATEs.
# - Throughout, tools/raft-history clients on the three founders put,
#   read and compare-and-set six keys; tests/sim/histcheck must find the
#   history linearizable across every change.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RaftTest;
use RaftHistory;

history_tools();
my $seed = $ENV{DISTSYS_CHAOS_SEED} || (time % 1000000) + 1;
note("seed $seed (rerun with DISTSYS_CHAOS_SEED=$seed)");
my @nodes = raft_cluster(3, 'mem');
ok(defined wait_raft_leader(@nodes), 'three founders elect a leader');
my $file = "$PostgreSQL::Test::Utils::log_path/043_members.hist";
my $clients = start_history($file, \@nodes, 6, $seed, 1);
load($file, 1, 'at start');
my $peers = $nodes[0]->safe_psql('postgres', 'SHOW distsys.peers');

# joiner(ID): a new server set to join the cluster as node ID
sub joiner
{
	my ($id) = @_;
	my $n = PostgreSQL::Test::Cluster->new("mem_$id");
	$n->init;
	$n->{raft_id} = $id;
	$n->append_conf('postgresql.conf',
		"listen_addresses = '127.0.0.1'\ndistsys.node_id = $id\n"
		  . "distsys.peers = '$peers'\ndistsys.raft_join = on\n");
	$n->start;
	durable_psql($n, 'CREATE EXTENSION distsys');
	return $n;
}

# a writer on node 1 while members change: key w, values 1, 2, ...
my $writer = $nodes[0]->background_psql('postgres', on_error_stop => 0);
$writer->query_safe("SET distsys.raft_request_timeout = '3s'");
my $written = 0;
sub write_some
{
	for (1 .. 5)
	{
		$written++;
		$writer->query("SELECT distsys.raft_put('w', '$written')");
	}
}
write_some();

my $n4 = joiner(4);
ok($n4->poll_query_until('postgres', "SELECT state = 'running' FROM distsys.raft_status"),
	'a joining server runs Raft before it is added');
is($n4->safe_psql('postgres', 'SELECT count(*) FROM distsys.raft_kv'), '0', 'and has applied nothing');
my $idx = $nodes[1]->safe_psql('postgres', 'SELECT distsys.raft_add_node(4, ' . "'" . raft_uri($n4) . "')");
cmp_ok($idx, '>', 0, 'raft_add_node through a follower returns the index of the change');
write_some();
ok($nodes[0]->poll_query_until('postgres',
	"SELECT role = 'voter' FROM distsys.raft_members WHERE id = 4"),
	'node 4 is promoted to voter once caught up');
write_some();
ok($n4->poll_query_until('postgres', "SELECT value FROM distsys.raft_kv WHERE key = 'w'", $written),
	'node 4 applied every write');
load($file, 1, 'with node 4 a voter');

my $n5 = joiner(5);
$nodes[0]->safe_psql('postgres', 'SELECT distsys.raft_add_node(5, ' . "'" . raft_uri($n5) . "')");
ok($nodes[0]->poll_query_until('postgres',
	"SELECT count(*) = 5 AND bool_and(role = 'voter') FROM distsys.raft_members"),
	'five voters');
my @all = (@nodes, $n4, $n5);
ok(defined wait_raft_leader(@all), 'the five agree on a leader');
load($file, 1, 'with five voters');

# remove a founder that does not lead (nor run the writer's session)
my $leader = wait_raft_leader(@all);
my ($gone) = grep { $_->{raft_id} != $leader && $_->{raft_id} > 1 } @nodes;
my ($keep) = grep { $_ != $gone } @all;
$keep->safe_psql('postgres', "SELECT distsys.raft_remove_node($gone->{raft_id})");
ok($keep->poll_query_until('postgres',
	"SELECT count(*) = 4 AND NOT bool_or(id = $gone->{raft_id}) FROM distsys.raft_members"),
	'a removed node leaves the configuration');
$gone->stop;
my @four = grep { $_ != $gone } @all;
write_some();
ok($n5->poll_query_until('postgres', "SELECT value FROM distsys.raft_kv WHERE key = 'w'", $written),
	'the four keep serving writes');

# transfer leadership to node 5 (or 4 if 5 leads)
$leader = wait_raft_leader(@four);
my $target = $leader == 5 ? 4 : 5;
$four[0]->safe_psql('postgres', "SELECT distsys.raft_transfer_leadership($target)");
is(wait_raft_leader(@four), $target, "raft_transfer_leadership hands leadership to node $target");
load($file, 1, 'after the transfer');
cmp_ok($n4->safe_psql('postgres', "SELECT distsys.raft_put('after-transfer', '1')"), '>', 0,
	'and writes go on');

# kill the new leader: the other three of four elect another
my ($L) = grep { $_->{raft_id} == $target } @four;
$L->stop('immediate');
my @three = grep { $_ != $L } @four;
my $next = wait_raft_leader(@three);
ok(defined $next && $next != $target, 'with the leader of four killed, three elect another');
cmp_ok($three[0]->safe_psql('postgres', "SELECT distsys.raft_put('after-kill', '1')"), '>', 0,
	'which serves writes');
$L->start;
load($file, 1, 'with the killed leader back');
my $summary = stop_history($clients, 'membership');
final_reads($three[0], $file, 6);
check_history($file, $summary, 'membership', $seed, { put => 50, get => 50, cas => 20 });

# who may
my $m = $four[0];
$m->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');
my ($o, $err) = raft_try($m, 'SET ROLE mallory; SELECT distsys.raft_add_node(9, ' . "'postgresql://127.0.0.1:1/postgres')");
like($err, qr/permission denied for function raft_add_node/, 'an ordinary role may not add a node');
($o, $err) = raft_try($m, 'SET ROLE mallory; SELECT distsys.raft_remove_node(4)');
like($err, qr/permission denied for function raft_remove_node/, 'nor remove one');
($o, $err) = raft_try($m, 'SET ROLE mallory; SELECT distsys.raft_transfer_leadership(4)');
like($err, qr/permission denied for function raft_transfer_leadership/, 'nor move leadership');
is($m->safe_psql('postgres', 'SET ROLE mallory; SELECT count(*), count(uri) FROM distsys.raft_members'), '4|0',
	'it sees the members but not their URIs');
is($m->safe_psql('postgres', 'SELECT count(uri) FROM distsys.raft_members'), '4',
	'a superuser sees the URIs');
($o, $err) = raft_try($m, 'SET ROLE mallory; SELECT * FROM distsys.raft_nodes');
like($err, qr/permission denied for table raft_nodes/, 'nor may it read distsys.raft_nodes');

# bad arguments
for my $case (
	[ "SELECT distsys.raft_add_node(4, 'postgresql://127.0.0.1:1/postgres')", qr/42710.*node 4 is already a voter/s, 'a member added again' ],
	[ "SELECT distsys.raft_add_node(0, 'postgresql://127.0.0.1:1/postgres')", qr/22023.*0 is not a node id/s, 'id 0' ],
	[ "SELECT distsys.raft_add_node(9, 'not a uri')", qr/22023.*invalid URI for node 9/s, 'a malformed URI' ],
	[ "SELECT distsys.raft_add_node(9, NULL)", qr/22004/, 'a NULL URI' ],
	[ "SELECT distsys.raft_remove_node(9)", qr/42704.*node 9 is not a member/s, 'removing a non-member' ],
	[ "SELECT distsys.raft_transfer_leadership(9)", qr/55000.*node 9 is not a voter/s, 'transfer to a non-member' ])
{
	($o, $err) = raft_try($m, "\\set VERBOSITY verbose\n" . $case->[0]);
	like($err, $case->[1], "bad input: $case->[2]");
}

$writer->quit;
$_->stop for (@four);
done_testing();
