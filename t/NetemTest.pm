# NetemTest: throwaway Raft clusters whose every link goes through
# distsys-netem, the network emulator (issue 18), for the TAP tests that
# need round trips that cost something, jitter, and partitions made by
# the network rather than by distsys's own fault settings.
#
# Each ordered pair of nodes (i -> j) has its own link "n<i>to<j>", which
# node i dials through distsys.raft_routes (distsys.peers stays the same
# text on every node: the cluster id is derived from it), and each node j
# has a client link "c<j>" that the test's clients use.  So cutting
# "n1to2" cuts only what node 1 sends to node 2 (and the answers on those
# connections), as a firewall rule on that path would.
package NetemTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest qw(slurp durable_psql);
use RaftTest qw(raft_uri);
use RelayTest qw(mock_control wait_until);

our @EXPORT = qw(start_netem netem_raft_cluster netem_command netem_stats netem_links_of netem_stop);

my $tmp = $ENV{TESTDIR} ? "$ENV{TESTDIR}/tmp_check" : '/tmp';

# start_netem(NAME, LINKS, ARGS): the emulator with the links of LINKS
# ({name => target port}); {pid, log, fifo, ports => {name => port}}.
sub start_netem
{
	my ($name, $links, @args) = @_;
	my $m = { log => "$tmp/$name.log", fifo => "$tmp/$name.fifo", portsfile => "$tmp/$name.ports" };
	unlink $m->{portsfile};
	$m->{pid} = RelayTest::spawn($m->{log}, RelayTest::find_program('distsys-netem'),
		'--control', $m->{fifo}, '--ports-file', $m->{portsfile},
		(map { ('--link', "$_=0:127.0.0.1:$links->{$_}") } sort keys %$links), @args);
	wait_until(sub { -s $m->{portsfile} }, 30) or die "distsys-netem did not start: " . slurp($m->{log});
	$m->{ports} = { map { split / / } split /\n/, slurp($m->{portsfile}) };
	return $m;
}

# netem_raft_cluster(N, PREFIX, EXTRA, NETEM_ARGS): N started nodes that
# form one Raft cluster (ids 1..N, EXTRA appended to each
# postgresql.conf), every link through one distsys-netem started with
# NETEM_ARGS (say --delay-ms 1 --jitter-ms 0.5).  Returns the emulator and
# the nodes; each node's {client_connstr} leads to it through its client
# link.
sub netem_raft_cluster
{
	my ($n, $prefix, $extra, @netem_args) = @_;
	my @nodes = map { PostgreSQL::Test::Cluster->new("${prefix}_$_") } 1 .. $n;
	$_->init for @nodes;
	my %links;
	for my $i (1 .. $n)
	{
		$links{"c$i"} = $nodes[ $i - 1 ]->port;
		$links{"n${i}to$_"} = $nodes[ $_ - 1 ]->port for grep { $_ != $i } 1 .. $n;
	}
	my $m = start_netem("${prefix}_netem", \%links, @netem_args);
	my $peers = join ' ', map { ($_ + 1) . '=' . raft_uri($nodes[$_]) } 0 .. $#nodes;
	for my $i (1 .. $n)
	{
		my $node = $nodes[ $i - 1 ];
		my $routes = join ' ',
		  map { "$_=postgresql://127.0.0.1:$m->{ports}{\"n${i}to$_\"}/postgres" } grep { $_ != $i } 1 .. $n;
		$node->{raft_id} = $i;
		$node->{client_connstr} = "host=127.0.0.1 port=$m->{ports}{\"c$i\"} dbname=postgres";
		$node->append_conf('postgresql.conf',
			"listen_addresses = '127.0.0.1'\n"
			  . "distsys.node_id = $i\n"
			  . "distsys.peers = '$peers'\n"
			  . "distsys.raft_routes = '$routes'\n"
			  . ($extra // ''));
	}
	for my $node (@nodes)
	{
		$node->start;
		durable_psql($node, 'CREATE EXTENSION distsys');
	}
	return ($m, @nodes);
}

# netem_command(M, LINE): apply a command; dies unless it answered ok.
sub netem_command
{
	my ($m, $line) = @_;
	mock_control($m, $line) or die "distsys-netem did not apply '$line': " . slurp($m->{log});
	return;
}

# netem_links_of(FROM, TO): the names of the node links from the nodes
# FROM to the nodes TO (array references of nodes).
sub netem_links_of
{
	my ($from, $to) = @_;
	my @names;
	for my $a (@$from)
	{
		push @names, map { "n$a->{raft_id}to$_->{raft_id}" } grep { $_ != $a } @$to;
	}
	return @names;
}

# netem_stats(M): {link => {conns, up_bytes, down_bytes, ...}} as of now.
sub netem_stats
{
	my ($m) = @_;
	my $before = () = slurp($m->{log}) =~ /^ok stats$/mg;
	netem_command($m, 'stats');
	my @blocks = split /^ok stats$/m, slurp($m->{log});
	my %s;
	for my $line (split /\n/, $blocks[$before])
	{
		next if $line !~ /^stats (\S+) (.*)$/;
		$s{$1} = { map { split /=/, $_, 2 } split / /, $2 };
	}
	return \%s;
}

# netem_stop(M): SIGTERM, and wait for the exit.
sub netem_stop
{
	my ($m) = @_;
	kill 'TERM', $m->{pid};
	waitpid($m->{pid}, 0);
	return $?;
}

1;
