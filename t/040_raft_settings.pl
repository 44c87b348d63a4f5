# Raft among nodes, the first slice of issue 16: its settings, the node's
# durable identity, and a one-node cluster electing itself.
#
# - Bad settings (unknown own id, an id listed twice, id 0, a malformed or
#   non-URI member, node_id > 0 without members, heartbeat not below the
#   election timeout, a negative node id; a distsys.raft_routes entry that
#   is not a URI, one libpq refuses, an id routed twice, a route for the
#   node itself) each stop the server's start with one FATAL line naming
#   the problem.
# - A one-node cluster elects itself (raft_status: leader, term >= 1), and
#   after a restart leads again in a higher term: the stored term was read
#   back (a node that forgot it would start again at term 1).
# - A data directory whose stored identity disagrees with the settings
#   (another node id, another member list) and a base-backup copy of a
#   running member under the same settings each refuse to run Raft with one
#   ERROR line, and the worker is not restarted in a loop.
# - Two voters, one unreachable: the worker runs and nobody leads.
# - An ordinary role may read raft_status but not distsys.peers (URIs).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

# uri(NODE): the URI other members would use for NODE
sub uri { return 'postgresql://127.0.0.1:' . $_[0]->port . '/postgres'; }

# raft_conf(NODE, NODE_ID, PEERS, EXTRA): replace NODE's Raft settings
# (later lines of postgresql.conf win, so each call overrides the last).
# The node listens on 127.0.0.1 too, where its URI leads.
sub raft_conf
{
	my ($node, $id, $peers, $extra) = @_;
	$node->append_conf('postgresql.conf',
		"listen_addresses = '127.0.0.1'\n"
		  . "distsys.node_id = $id\ndistsys.peers = '$peers'\n"
		  . "distsys.raft_election_timeout = 150ms\ndistsys.raft_heartbeat_interval = 50ms\n"
		  . ($extra // ''));
}

# log_since(NODE, OFFSET): NODE's server log from byte OFFSET on
sub log_since { return slurp_file($_[0]->logfile, $_[1]); }

# refuses_start(NODE, ID, PEERS, EXTRA, RE, NAME): the server does not
# start, and its log has exactly one FATAL line, which matches RE.
sub refuses_start
{
	my ($node, $id, $peers, $extra, $re, $name) = @_;
	raft_conf($node, $id, $peers, $extra);
	my $off = -s $node->logfile;
	ok(!$node->start(fail_ok => 1), "$name: the server refuses to start");
	my @fatal = grep { /FATAL:/ } split /\n/, log_since($node, $off);
	is(scalar @fatal, 1, "$name: one FATAL line");
	like($fatal[0] // '', $re, "$name: it names the problem");
}

my $bad = PostgreSQL::Test::Cluster->new('bad');
$bad->init;
my $me = uri($bad);
my $other = 'postgresql://127.0.0.1:1/postgres';
refuses_start($bad, 3, "1=$me 2=$other", '',
	qr/distsys.node_id 3 is not among the members in distsys.peers/, 'unknown own id');
refuses_start($bad, 1, "1=$me 1=$other", '',
	qr/invalid value for parameter "distsys.peers": node id 1 is listed twice/, 'duplicate id');
refuses_start($bad, 1, "0=$other 1=$me", '',
	qr/"0" is not a node id/, 'id 0');
refuses_start($bad, 1, "1=$me?no_such_option=1", '',
	qr/invalid URI for node 1 in distsys.peers: .*no_such_option/, 'malformed URI');
refuses_start($bad, 1, "1=127.0.0.1:5432", '',
	qr/the URI of node 1 is not a postgresql:\/\/ URI/, 'not a URI');
refuses_start($bad, 1, '', '',
	qr/distsys.node_id is 1 but distsys.peers is empty/, 'node id without members');
refuses_start($bad, 1, "1=$me", "distsys.raft_heartbeat_interval = 150ms\n",
	qr/distsys.raft_heartbeat_interval \(150 ms\) must be smaller than distsys.raft_election_timeout \(150 ms\)/,
	'heartbeat not below the election timeout');
refuses_start($bad, -1, "1=$me", '',
	qr/invalid value for parameter "distsys.node_id": "-1"/, 'negative node id');
refuses_start($bad, 1, "1=$me 2=$other", "distsys.raft_routes = '2=127.0.0.1:5432'\n",
	qr/invalid value for parameter "distsys.raft_routes": the URI of node 2 is not a postgresql:\/\/ URI/,
	'a route that is not a URI');
refuses_start($bad, 1, "1=$me 2=$other", "distsys.raft_routes = '2=$other?no_such_option=1'\n",
	qr/invalid URI for node 2 in distsys.raft_routes: .*no_such_option/, 'a route libpq refuses');
refuses_start($bad, 1, "1=$me 2=$other", "distsys.raft_routes = '2=$other 2=$other'\n",
	qr/invalid value for parameter "distsys.raft_routes": node id 2 is listed twice/, 'a node routed twice');
refuses_start($bad, 1, "1=$me 2=$other", "distsys.raft_routes = '1=$me'\n",
	qr/distsys.raft_routes has a route for this node's own id 1/, 'a route for the node itself');

# A one-node cluster elects itself.
my $solo = PostgreSQL::Test::Cluster->new('solo');
$solo->init(allows_streaming => 1);
raft_conf($solo, 1, '1=' . uri($solo));
$solo->start;
durable_psql($solo, 'CREATE EXTENSION distsys');
my $leads = "SELECT role = 'leader' AND leader = 1 AND state = 'running' AND commit_index >= 1
	AND applied_index = commit_index FROM distsys.raft_status";
ok($solo->poll_query_until('postgres', $leads), 'a one-node cluster elects itself leader');
my $term = $solo->safe_psql('postgres', 'SELECT term FROM distsys.raft_status');
cmp_ok($term, '>=', 1, 'in term 1 or later');
my $identity = slurp_file($solo->data_dir . '/pg_distsys/raft/identity');
like($identity, qr/^node_id=1$/m, 'the identity file names node 1');
is((stat($solo->data_dir . '/pg_distsys/raft/identity'))[2] & 07777, 0600,
	'the identity file is readable by the server only');

$solo->restart;
ok($solo->poll_query_until('postgres', $leads), 'after a restart it leads again');
cmp_ok($solo->safe_psql('postgres', 'SELECT term FROM distsys.raft_status'), '>', $term,
	'in a higher term: the stored term was read back');

# An ordinary role sees the status but not the members' URIs.
$solo->safe_psql('postgres', 'CREATE ROLE alice LOGIN');
is($solo->safe_psql('postgres', 'SET ROLE alice; SELECT role FROM distsys.raft_status'), 'leader',
	'an ordinary role may read raft_status');
my ($rc, $out, $err) = $solo->psql('postgres', 'SET ROLE alice; SHOW distsys.peers');
like($err, qr/must be superuser or have privileges of pg_read_all_settings to examine "distsys.peers"/,
	'an ordinary role may not read distsys.peers');

# A base-backup copy of the running member, started under the same
# settings: its identity matches, but node 1's URI reaches the original.
$solo->backup('copy');
my $copy = PostgreSQL::Test::Cluster->new('copy');
$copy->init_from_backup($solo, 'copy');
my $off = 0;
$copy->start;
ok($copy->poll_query_until('postgres', "SELECT state = 'refused' FROM distsys.raft_status"),
	'a copied data directory refuses to run Raft');
like(log_since($copy, $off),
	qr/ERROR:  distsys raft: refusing to run Raft: the URI of node 1 in distsys.peers reaches another server/,
	'and says why');
is($solo->safe_psql('postgres', 'SELECT role FROM distsys.raft_status'), 'leader',
	'the original still leads');
$copy->stop;

# The stored identity against changed settings: another node id, then
# another member list.  The server runs; Raft does not.
# refuses_raft(NODE, RE, NAME): the worker refuses once with RE and stays
# (it is not restarted in a loop).
sub refuses_raft
{
	my ($node, $re, $name) = @_;
	my $off = -s $node->logfile;
	$node->restart;
	ok($node->poll_query_until('postgres',
		"SELECT state = 'refused' AND role IS NULL FROM distsys.raft_status"),
		"$name: Raft does not run");
	ok($node->poll_query_until('postgres',
		"SELECT now() - backend_start > interval '6 s' FROM pg_stat_activity
		 WHERE backend_type = 'distsys raft worker'"),
		"$name: the worker stays, longer than its restart interval");
	my @lines = grep { /refusing to run Raft/ } split /\n/, log_since($node, $off);
	is(scalar @lines, 1, "$name: one ERROR line");
	like($lines[0] // '', $re, "$name: it names the problem");
}

raft_conf($solo, 2, '1=' . uri($solo) . ' 2=' . uri($solo) . '?application_name=x');
refuses_raft($solo, qr/ERROR:  distsys raft: refusing to run Raft: this data directory belongs to node 1, but distsys.node_id is 2/,
	'another node id');
raft_conf($solo, 1, '1=' . uri($solo) . '?application_name=x');
refuses_raft($solo, qr/this data directory belongs to Raft cluster [0-9a-f]{32}, but distsys.peers implies cluster [0-9a-f]{32}/,
	'another member list');
raft_conf($solo, 1, '1=' . uri($solo));
$solo->restart;
ok($solo->poll_query_until('postgres', $leads), 'with its own settings back, it leads again');

# Several voters, the other one unreachable: the node runs but cannot win.
my $pair = PostgreSQL::Test::Cluster->new('pair');
$pair->init;
raft_conf($pair, 1, '1=' . uri($pair) . " 2=$other");
$pair->start;
durable_psql($pair, 'CREATE EXTENSION distsys');
ok($pair->poll_query_until('postgres',
	"SELECT state = 'running' AND role IN ('follower', 'pre_candidate') AND leader IS NULL FROM distsys.raft_status"),
	'with the other voter of two unreachable, the node runs without a leader');

$pair->stop;
$solo->stop;
done_testing();
