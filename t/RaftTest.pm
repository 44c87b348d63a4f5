# RaftTest: Raft clusters of throwaway PostgreSQL nodes for the TAP tests
# of issue 16.  Every node listens on 127.0.0.1 (where the other members'
# URIs lead) and on its Unix socket; distsys is created in each node's
# postgres database, where the Raft worker waits for it.
package RaftTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

our @EXPORT = qw(raft_uri raft_cluster raft_leader wait_raft_leader raft_try);

# raft_uri(NODE, USER): the URI the other members use for NODE (logging
# in as USER if given, else as the server's OS user)
sub raft_uri
{
	my ($node, $user) = @_;
	return 'postgresql://' . ($user ? "$user\@" : '') . '127.0.0.1:' . $node->port . '/postgres';
}

# raft_cluster(N, PREFIX, EXTRA, USER): N started nodes that form one
# cluster, ids 1..N; EXTRA is appended to each postgresql.conf; the
# members' URIs log in as USER if given.
sub raft_cluster
{
	my ($n, $prefix, $extra, $user) = @_;
	my @nodes = map { PostgreSQL::Test::Cluster->new("${prefix}_$_") } 1 .. $n;
	$_->init for @nodes;
	my $peers = join ' ', map { ($_ + 1) . '=' . raft_uri($nodes[$_], $user) } 0 .. $#nodes;
	for my $i (0 .. $#nodes)
	{
		$nodes[$i]->{raft_id} = $i + 1;
		$nodes[$i]->append_conf('postgresql.conf',
			"listen_addresses = '127.0.0.1'\n"
			  . 'distsys.node_id = ' . ($i + 1) . "\n"
			  . "distsys.peers = '$peers'\n"
			  . ($extra // ''));
	}
	for my $node (@nodes)
	{
		$node->start;
		durable_psql($node, 'CREATE EXTENSION distsys');
	}
	return @nodes;
}

# raft_leader(NODES): the id every node of NODES names as leader, if they
# agree and that leader is one of NODES and says it leads; else undef.
sub raft_leader
{
	my @nodes = @_;
	my %seen;
	my %leads;
	for my $node (@nodes)
	{
		my ($rc, $out) = $node->psql('postgres',
			"SELECT coalesce(leader, 0) || ' ' || role FROM distsys.raft_status");
		return undef if $rc != 0;
		my ($id, $role) = split / /, $out;
		return undef if !$id;
		$seen{$id}++;
		$leads{ $node->{raft_id} } = 1 if $role eq 'leader';
	}
	return undef if keys %seen != 1;
	my ($leader) = keys %seen;
	return $leads{$leader} ? $leader : undef;
}

# wait_raft_leader(NODES): wait until the nodes agree on a leader; its id.
sub wait_raft_leader
{
	my @nodes = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my $l = raft_leader(@nodes);
		return $l if defined $l;
		select(undef, undef, undef, 0.05);
	}
	return undef;
}

# raft_try(NODE, SQL): run SQL; (its output, or undef) and stderr.
sub raft_try
{
	my ($node, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql);
	return ($rc == 0 ? $out : undef, $err);
}

1;
