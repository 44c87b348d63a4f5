# distsys.raft_routes: a node's own URI for another member, dialed instead
# of that member's URI in distsys.peers; it is not part of the cluster id,
# so it may differ from node to node.
#
# - Node 1 routes node 2 through "localhost" with an application_name:
#   node 2 sees node 1's transport connect under that name (the route is
#   what is dialed), and with node 1 leading, an entry reaches node 2.
#   Its route for node 4, not a member then, is dialed once raft_add_node
#   adds node 4.
# - Node 1 routes node 2 to a port where nothing listens: with node 1
#   leading, node 1 never reaches node 2 (raft_members on node 1: no
#   contact and no match index for node 2, both for node 3; node 1's log
#   names the dead port), and an entry that nodes 1 and 3 commit does not
#   reach node 2.  Without the route, it does.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RaftTest;

my @n = raft_cluster(3, 'routes');
my ($n1, $n2, $n3) = @n;

# route(NODE, ROUTES): restart NODE with distsys.raft_routes = ROUTES
sub route
{
	my ($node, $routes) = @_;
	$node->append_conf('postgresql.conf', "distsys.raft_routes = '$routes'\n");
	$node->restart;
}

# lead(ID, NODES): make node ID the leader NODES agree on; whether it is
sub lead
{
	my ($id, @nodes) = @_;
	my $leader = wait_raft_leader(@nodes) // return 0;
	return 1 if $leader == $id;
	$nodes[0]->safe_psql('postgres', "SELECT distsys.raft_transfer_leadership($id)");
	return (wait_raft_leader(@nodes) // 0) == $id;
}

# stale(NODE, KEY): KEY's value in NODE's applied state, '' if none
sub stale
{
	return $_[0]->safe_psql('postgres', "SELECT distsys.raft_get('$_[1]', 'stale')");
}

# A route that works: node 2 by another name, and an application_name
# that shows on node 2 which URI node 1 dialed; likewise for node 4,
# which joins later.
my $n4 = PostgreSQL::Test::Cluster->new('routes_4');
route($n1, '2=postgresql://localhost:' . $n2->port . '/postgres?application_name=route_1_to_2'
	  . ' 4=postgresql://localhost:' . $n4->port . '/postgres?application_name=route_1_to_4');
ok(lead(1, @n), 'with a route for node 2 on node 1, the cluster elects node 1');
ok($n2->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'route_1_to_2'"),
	'node 1 reaches node 2 at its route');
$n1->safe_psql('postgres', q{SELECT distsys.raft_put('a', '1')});
ok($n2->poll_query_until('postgres', q{SELECT distsys.raft_get('a', 'stale') = '1'}),
	'an entry node 1 leads reaches node 2 through the route');

my $peers = $n1->safe_psql('postgres', 'SHOW distsys.peers');
$n4->init;
$n4->append_conf('postgresql.conf',
	"listen_addresses = '127.0.0.1'\ndistsys.node_id = 4\n"
	  . "distsys.peers = '$peers'\ndistsys.raft_join = on\n");
$n4->start;
durable_psql($n4, 'CREATE EXTENSION distsys');
$n1->safe_psql('postgres', "SELECT distsys.raft_add_node(4, '" . raft_uri($n4) . "')");
ok($n4->poll_query_until('postgres', q{SELECT distsys.raft_get('a', 'stale') = '1'}),
	'node 4, added later, catches up');
ok($n4->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'route_1_to_4'"),
	'node 1 reaches node 4 at its route, listed before node 4 was a member');
# the leader promotes a caught-up learner with a change of its own: remove
# node 4 once that is done, or the removal may meet it under way (55000)
ok($n1->poll_query_until('postgres', "SELECT role = 'voter' FROM distsys.raft_members WHERE id = 4"),
	'node 4 is promoted to voter');
$n1->safe_psql('postgres', 'SELECT distsys.raft_remove_node(4)');
ok($n1->poll_query_until('postgres', 'SELECT count(*) = 3 FROM distsys.raft_members'),
	'node 4 is removed again');
$n4->stop;

# A route to a dead port: node 2 is stopped meanwhile, so that node 3
# leads while node 1 restarts and can hand leadership to node 1.
my $dead = PostgreSQL::Test::Cluster::get_free_port();
$n2->stop;
my $off = -s $n1->logfile;
route($n1, "2=postgresql://127.0.0.1:$dead/postgres");
ok(lead(1, $n1, $n3), 'node 1 leads nodes 1 and 3');
$n2->start;
$n1->safe_psql('postgres', q{SELECT distsys.raft_put('b', '2')});
ok($n3->poll_query_until('postgres', q{SELECT distsys.raft_get('b', 'stale') = '2'}),
	'nodes 1 and 3 commit an entry');
ok($n1->poll_query_until('postgres',
	q{SELECT last_contact IS NOT NULL AND match_index >= 3 FROM distsys.raft_members WHERE id = 3}),
	'node 1 is in contact with node 3');
ok($n1->wait_for_log(qr/node 2: connection to server at "127\.0\.0\.1", port $dead failed/, $off),
	"node 1's log names the dead port it dials for node 2");
is($n1->safe_psql('postgres',
	'SELECT last_contact IS NULL AND match_index IS NULL FROM distsys.raft_members WHERE id = 2'),
	't', 'node 1 has never reached node 2');
is(stale($n2, 'a'), '1', 'node 2 runs, with the entries from before');
is(stale($n2, 'b'), '', 'but not the entry node 1 leads');
is(raft_leader($n1, $n3), 1, 'while node 1 still leads');

route($n1, '');
ok($n2->poll_query_until('postgres', q{SELECT distsys.raft_get('b', 'stale') = '2'}),
	'without the route, the entry reaches node 2');

$_->stop for @n;
done_testing();
