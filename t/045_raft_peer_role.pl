# Raft among nodes whose members log in to each other as an ordinary
# role that is only a member of distsys_raft_peer (issue 16): the least
# privilege a peer needs is enough.
#
# - The URIs in distsys.peers name LOGIN role raftpeer, created after
#   CREATE EXTENSION on each node as a member of distsys_raft_peer and
#   nothing else (no superuser, no other grant).
# - The nodes elect a leader and serve writes and linearizable reads, and
#   the sessions delivering batches run as raftpeer.
# - raftpeer can deliver batches but cannot write the store, change
#   membership or read the tables it was not granted.
# - A physical standby of a member runs no worker: raft_status says
#   'standby', writes and linearizable reads get 25006, stale reads answer.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RaftTest;

my @nodes = raft_cluster(3, 'peer', "wal_level = replica\nmax_wal_senders = 4\n", 'raftpeer');
$_->safe_psql('postgres', 'CREATE ROLE raftpeer LOGIN IN ROLE distsys_raft_peer') for @nodes;
my $leader = wait_raft_leader(@nodes);
ok(defined $leader, 'members logging in as a member of distsys_raft_peer elect a leader');
my ($f) = grep { $_->{raft_id} != $leader } @nodes;
cmp_ok($f->safe_psql('postgres', q{SELECT distsys.raft_put('k', '1')}), '>', 0,
	'a write through a follower commits');
is($nodes[$leader - 1]->safe_psql('postgres', q{SELECT distsys.raft_get('k')}), '1',
	'and the leader reads it linearizably');
like($f->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE query LIKE '%raft_deliver%' AND pid <> pg_backend_pid()}),
	qr/^raftpeer$/, 'the delivering sessions run as raftpeer');
is($f->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'raftpeer'}), 'f',
	'which is not a superuser');

for my $case (
	[ q{SELECT distsys.raft_put('k', '2')}, qr/permission denied for function raft_put/, 'write the store' ],
	[ q{SELECT distsys.raft_add_node(9, 'postgresql://127.0.0.1:1/postgres')}, qr/permission denied for function raft_add_node/, 'add a node' ],
	[ q{SELECT * FROM distsys.raft_nodes}, qr/permission denied for table raft_nodes/, 'read raft_nodes' ],
	[ q{SHOW distsys.peers}, qr/must be superuser or have privileges of pg_read_all_settings/, 'read distsys.peers' ])
{
	my ($o, $err) = raft_try($f, "SET ROLE raftpeer; $case->[0]");
	like($err, $case->[1], "raftpeer may not $case->[2]");
}

# a physical standby of a member runs no Raft worker: it says so, refuses
# writes and linearizable reads, and serves stale reads as replicated
$f->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('peer_standby');
$standby->init_from_backup($f, 'b', has_streaming => 1);
$standby->append_conf('postgresql.conf', "listen_addresses = ''\n");
$standby->start;
$f->safe_psql('postgres', q{SELECT distsys.raft_put('k', '3')});
ok($standby->poll_query_until('postgres', q{SELECT distsys.raft_get('k', 'stale')}, '3'),
	'a standby of a member serves stale reads as replicated');
is($standby->safe_psql('postgres', 'SELECT state FROM distsys.raft_status'), 'standby',
	'raft_status says it is a standby');
my ($o, $err) = raft_try($standby, "\\set VERBOSITY verbose\nSELECT distsys.raft_put('k', '4')");
like($err, qr/25006.*raft_put cannot run on a standby/s, 'a write there gets 25006');
($o, $err) = raft_try($standby, "\\set VERBOSITY verbose\nSELECT distsys.raft_get('k')");
like($err, qr/25006/, 'and so does a linearizable read');
$standby->stop;

$_->stop for @nodes;
done_testing();
