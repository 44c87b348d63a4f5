# RaftHistory: clients of the Raft key-value store that write a history
# (tools/raft-history), and its verdict by the linearizability checker
# (tests/sim/histcheck), for the TAP tests that put a Raft cluster under
# faults (t/042, and t/047 for Paxos; t/049 through the network emulator)
# or membership changes (t/043) while clients run, and what those tests
# share: find the leader, kill and restart a node under load, check that
# every node converged and that no process crashed.
package RaftHistory;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Spec;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RaftTest;

our @EXPORT = qw(history_tools start_history stop_history history_ops load final_reads run_histcheck check_history
  leader_node kill_and_restart converge no_crashes);

my $here = dirname(__FILE__);
my $tool = $ENV{DISTSYS_RAFT_HISTORY} // "$here/../tools/raft-history";
my $histcheck = $ENV{DISTSYS_HISTCHECK} // "$here/../tests/sim/histcheck";

# history_tools(): skip the whole test unless both tools are built.
sub history_tools
{
	plan skip_all => "no $tool or $histcheck (make raft-history tests/sim/histcheck)"
	  if !-x $tool || !-x $histcheck;
}

# start_history(FILE, NODES, KEYS, SEED, CLIENTS, EXTRA): CLIENTS clients
# per node (default 2) on KEYS keys, writing FILE, each session at a 2 s
# request timeout, EXTRA (an array reference) more options of the tool
# (t/047: --api paxos --counter); the handle for stop_history.  A node's
# clients use its {client_connstr} if it has one (t/049: through the
# network emulator).
sub start_history
{
	my ($file, $nodes, $keys, $seed, $clients, $extra) = @_;
	my $h = { out => '', err => '' };
	$h->{run} = IPC::Run::start(
		[ $tool, (map { ('--node', $_->{client_connstr} // $_->connstr('postgres')) } @$nodes),
		  '--clients', $clients // 2, '--seconds', 600, '--keys', $keys, '--seed', $seed,
		  '--timeout-ms', 2000, '--out', $file, @{ $extra // [] } ],
		'>', \$h->{out}, '2>', \$h->{err});
	return $h;
}

# stop_history(H, LABEL): SIGTERM the clients, which must stop cleanly;
# their summary (for check_history).
sub stop_history
{
	my ($h, $label) = @_;
	$h->{run}->signal('TERM');
	ok($h->{run}->finish, "$label: the clients stop cleanly on SIGTERM");
	note($h->{err}) if $h->{err} ne '';
	return $h->{out};
}

# history_ops(FILE): how many operations of the history have an answer.
sub history_ops
{
	my $n = () = DistsysTest::slurp($_[0]) =~ /^.* \d+\n/mg;
	return $n;
}

# load(FILE, SECONDS, WHAT): let the clients run at least SECONDS (a
# fault outlasts the clients' 2 s request timeout, so calls time out in
# it) and until they got 100 more answers (the cluster serves again).
sub load
{
	my ($file, $seconds, $what) = @_;
	my $want = history_ops($file) + 100;
	my $start = time;
	my $deadline = $start + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		return ok(1, "clients get answers $what")
		  if history_ops($file) >= $want && time - $start >= $seconds;
		select(undef, undef, undef, 0.1);
	}
	return ok(0, "clients get answers $what");
}

# final_reads(NODE, FILE, KEYS): a linearizable read of every key through
# NODE, added to the history, so an acknowledged write lost at the end is
# caught too.
sub final_reads
{
	my ($node, $file, $keys) = @_;
	open my $fh, '>>', $file or die "$file: $!";
	for my $k (0 .. $keys - 1)
	{
		my $call = int(clock_gettime(CLOCK_MONOTONIC) * 1e6);
		my $v = $node->safe_psql('postgres', "SELECT distsys.raft_get('k$k')");
		my $ret = int(clock_gettime(CLOCK_MONOTONIC) * 1e6);
		print $fh "k$k get " . ($v eq '' ? 'nil' : $v) . " $call $ret\n";
	}
	close $fh;
}

# run_histcheck(FILE): histcheck's exit status, stdout and stderr.
sub run_histcheck
{
	my ($file) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $histcheck, $file ], '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

# check_history(FILE, SUMMARY, LABEL, SEED, MIN): histcheck's verdict, the
# clients' counts, and at least MIN->{put}, {get}, {cas} answered.
sub check_history
{
	my ($file, $summary, $label, $seed, $min) = @_;
	my %c;
	while ($summary =~ /raft-history: (\w+) ok (\d+) unknown (\d+) failed (\d+)/g)
	{
		$c{$1} = { ok => $2, unknown => $3, failed => $4 };
		note("$label: $1 ok $2 unknown $3 failed $4");
	}
	my ($out, $err);
	IPC::Run::run([ $histcheck, $file ], '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	note("$label: $out");
	if (!is($rc, 0, "$label: the history is linearizable (histcheck)"))
	{
		# make test removes the log directory: keep the history
		(my $name = "distsys-$label-$seed.hist") =~ s/\s+/-/g;
		my $kept = File::Spec->tmpdir . "/$name";
		copy($file, $kept);
		diag("seed $seed, history $file (kept as $kept):\n$out$err");
	}
	for my $kind (qw(put get cas))
	{
		cmp_ok($c{$kind}{ok} // 0, '>=', $min->{$kind},
			"$label: at least $min->{$kind} ${kind}s answered");
	}
}

# leader_node(NODES): the node the live ones agree leads.
sub leader_node
{
	my @nodes = @_;
	my $id = wait_raft_leader(@nodes);
	die 'no Raft leader' if !defined $id;
	my ($node) = grep { $_->{raft_id} == $id } @nodes;
	return $node;
}

# kill_and_restart(NODE, FILE, WHAT): SIGKILL, load without it, restart.
sub kill_and_restart
{
	my ($node, $file, $what) = @_;
	kill_postmaster($node);
	load($file, 3, "with the $what killed");
	$node->start;
	load($file, 2, "with the $what back");
}

# converge(NODES): every node applies the leader's last index and holds
# the same raft_kv.
sub converge
{
	my @nodes = @_;
	my $index = leader_node(@nodes)->safe_psql('postgres', q{SELECT distsys.raft_put('final', '1')});
	my $kv = q{SELECT string_agg(key || '=' || value::text, ',' ORDER BY key) FROM distsys.raft_kv};
	my %contents;
	for my $n (@nodes)
	{
		$n->poll_query_until('postgres', "SELECT index >= $index FROM distsys.raft_applied")
		  or diag($n->name . " did not apply index $index");
		$contents{ $n->safe_psql('postgres', $kv) }++;
	}
	is(scalar(keys %contents), 1, scalar(@nodes) . ' nodes: every node holds the same raft_kv');
}

# no_crashes(NODES): no process of the stopped NODES crashed on its own
# (their logs say so); how many snapshots they installed.
sub no_crashes
{
	my $installed = 0;
	for my $node (@_)
	{
		my $log = DistsysTest::slurp($node->logfile);
		unlike($log, qr/PANIC|TRAP:|terminated by signal/,
			$node->name . ': no process crashed on its own');
		$installed += () = $log =~ /installed a snapshot/g;
	}
	return $installed;
}

1;
