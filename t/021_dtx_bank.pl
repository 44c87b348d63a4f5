# Bank transfers between accounts on two participant nodes, from several
# concurrent clients, while the coordinator is killed (SIGKILL) at each
# fault point of the commit protocol and at random moments, and each
# participant is killed and restarted.  Afterwards, once recovery has run:
# the total balance is unchanged, no prepared transaction is left, both
# nodes applied the same transfers, and every transfer a client saw
# committed is among them.  Even clients write locally too, so the
# coordinator's decision record decides their transfers, and the applied
# ones must be exactly those it committed; odd clients write nothing
# locally, so the last node's commit decides theirs (the last agent).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use DistsysTest qw(:DEFAULT slurp);

my $CLIENTS = 5;
my $PER_CLIENT = 400;
my $ACCOUNTS = 50;

my $coord = distsys_node('coord',
	"restart_after_crash = on\ndistsys.dtx_recovery_interval = 1\ndistsys.dtx_lock_timeout = 5000");
my ($p1, $p2) = map { bank_participant($coord, $_, $ACCOUNTS, 1000) } qw(p1 p2);
# distsys on the participants: each can be a last agent (it keeps marks)
$_->safe_psql('postgres', 'CREATE TABLE applied (id int PRIMARY KEY); CREATE EXTENSION distsys') for $p1, $p2;
$coord->safe_psql('postgres', 'CREATE TABLE transfers (id int PRIMARY KEY)');

# client_script(C, FROM, TO): client C's transfers FROM..TO as single
# statements (so a failed commit is an error psql sees), each announced,
# acknowledged only when it returned without error; after an error the
# client pauses briefly (a node may be restarting).
sub client_script
{
	my ($c, $from, $to) = @_;
	my $s = '';
	for my $id ($from .. $to)
	{
		my ($a, $b) = (1 + int(rand($ACCOUNTS)), 1 + int(rand($ACCOUNTS)));
		my ($with, $from_t) = $c % 2 == 0
		  ? ("WITH t AS (INSERT INTO transfers VALUES ($id) RETURNING id)", ' FROM t') : ('', '');
		my @calls = (
			"distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = $a; INSERT INTO applied VALUES ($id)')",
			"distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = $b; INSERT INTO applied VALUES ($id)')");
		# the node called last is the last agent: either one
		@calls = reverse @calls if rand() < 0.5;
		$s .= "\\echo try $id\n"
		  . "$with SELECT " . join(', ', @calls)
		  . "$from_t;\n\\if :ERROR\nSELECT pg_sleep(0.05);\n\\else\n\\echo ack $id\n\\endif\n";
	}
	return $s;
}

my (%acked, @clients);

# start_client(C): client C runs its remaining transfers in a new psql.
sub start_client
{
	my ($c) = @_;
	my $cl = $clients[$c];
	my $file = "$PostgreSQL::Test::Utils::tmp_check/client_$c.sql";

	# a file, not a pipe: psql may die (with the coordinator) mid-script
	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh client_script($c, $cl->{next}, ($c + 1) * 10000 + $PER_CLIENT - 1);
	close $fh;
	$cl->{out} = '';
	$cl->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=0', '-d', $coord->connstr('postgres'), '-f', $file ],
		'<', \undef, '>', \$cl->{out}, '2>', \my $err);
}

# reap_client(C): if client C's psql ended, note its acks; true if it has
# transfers left (and was restarted for them).
sub reap_client
{
	my ($c) = @_;
	my $cl = $clients[$c];
	return 1 if $cl->{h}->pumpable;
	$cl->{h}->finish;
	$acked{$1} = 1 while $cl->{out} =~ /^ack (\d+)$/mg;
	my @tries = $cl->{out} =~ /^try (\d+)$/mg;
	$cl->{next} = $tries[-1] + 1 if @tries;
	return 0 if $cl->{next} >= ($c + 1) * 10000 + $PER_CLIENT;
	wait_accepting($coord) or die 'coordinator is down';
	start_client($c);
	return 1;
}

sub pump_all { $_->{h}->pump_nb for grep { $_->{h}->pumpable } @clients; }

# wait_coordinator_crash(OFFSET, SECONDS): whether the coordinator's log
# reports a killed backend after OFFSET within SECONDS.  Clients whose psql
# ended meanwhile (a crash just before this wait ends every session) are
# started again, or no transfer would reach the fault point.
sub wait_coordinator_crash
{
	my ($offset, $seconds) = @_;
	my $deadline = time + $seconds;
	while (time < $deadline)
	{
		pump_all();
		return 1 if substr(slurp($coord->logfile), $offset) =~ /terminated by signal 9/;
		reap_client($_) for 0 .. $CLIENTS - 1;
		select(undef, undef, undef, 0.05);
	}
	return 0;
}

# set_fault(FAULT): set distsys.dtx_fault.  The fault set before survives
# the crash it caused (ALTER SYSTEM), so a client that reconnected may
# crash the coordinator again before it is cleared: try until it is set.
sub set_fault
{
	my ($fault) = @_;
	for (1 .. 20)
	{
		wait_accepting($coord) or die 'coordinator is down';
		my ($rc) = $coord->psql('postgres',
			"ALTER SYSTEM SET distsys.dtx_fault = '$fault'; SELECT pg_reload_conf()");
		return if $rc == 0;
	}
	die "could not set distsys.dtx_fault = '$fault'";
}

for my $c (0 .. $CLIENTS - 1)
{
	$clients[$c] = { next => ($c + 1) * 10000 };
	start_client($c);
}

# The faults, one after the other, while the clients run.
# (crash_while_deciding first: only the odd clients' transfers reach it,
# and they may be done before the end of the list)
my @events = (
	'crash_while_deciding', 'crash_after_some_prepares', 'random', 'p1', 'crash_after_decision',
	'random', 'p2', 'crash_after_some_commits', 'random');
my $crashes = 0;
for my $ev (@events)
{
	pump_all();
	reap_client($_) for 0 .. $CLIENTS - 1;
	my $offset = length(slurp($coord->logfile));
	if ($ev =~ /^p(\d)$/)
	{
		my $p = $1 == 1 ? $p1 : $p2;
		crash_postmaster($p);
		next;
	}
	my $crashed = 0;
	if ($ev eq 'random')
	{
		# a random client backend, at a random point of its work; clients
		# may be reconnecting after the last crash, so look until one runs
		for (1 .. 100)
		{
			pump_all();
			reap_client($_) for 0 .. $CLIENTS - 1;
			wait_accepting($coord) or die 'coordinator is down';
			my @pids = split ' ', $coord->safe_psql('postgres',
				"SELECT string_agg(pid::text, ' ') FROM pg_stat_activity"
				  . " WHERE query LIKE '%distsys.dtx_exec(%' AND pid <> pg_backend_pid()");
			next unless @pids;
			kill 'KILL', $pids[ int(rand(@pids)) ];
			last if $crashed = wait_coordinator_crash($offset, 10);
		}
	}
	else
	{
		set_fault($ev);
		$crashed = wait_coordinator_crash($offset, 60);
	}
	note "event $ev: " . ($crashed ? 'the coordinator crashed' : 'no crash');
	$crashes += $crashed;
	set_fault('none') if $ev ne 'random';
}
is($crashes, 7, 'the coordinator was killed at each fault point and at random moments');

# let every client finish its transfers
my $deadline = time + 300;
while (time < $deadline)
{
	pump_all();
	my $running = 0;
	$running += reap_client($_) for 0 .. $CLIENTS - 1;
	last unless $running;
	select(undef, undef, undef, 0.1);
}

# recovery resolves everything by itself
for my $p ($p1, $p2)
{
	$p->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts')
	  or die 'prepared transactions were left on ' . $p->name;
}
pass('no prepared transaction is left on any participant');
like(slurp($coord->logfile), qr/distsys recovery resolved \d+ prepared transactions/,
	'the recovery worker resolved what the crashes left in doubt');
$coord->poll_query_until('postgres', 'SELECT count(*) = 0 FROM distsys.dtx_decisions')
  or die 'decision records were not forgotten';
for my $p ($p1, $p2)
{
	$p->poll_query_until('postgres', 'SELECT count(*) = 0 FROM distsys.dtx_marks')
	  or die 'last-agent marks were not forgotten on ' . $p->name;
}
pass('the recovery worker forgot every decision record and every last-agent mark');

my $total = $p1->safe_psql('postgres', 'SELECT sum(bal) FROM acct')
  + $p2->safe_psql('postgres', 'SELECT sum(bal) FROM acct');
is($total, 2 * 1000 * $ACCOUNTS, 'the total balance is unchanged');

my $ids = "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM";
my $applied = $p1->safe_psql('postgres', "$ids applied");
is($p2->safe_psql('postgres', "$ids applied"), $applied, 'p1 and p2 applied the same transfers');
my %applied = map { $_ => 1 } split /,/, $applied;
my @local = grep { int($_ / 10000) % 2 == 1 } keys %applied;	# even clients' ids
is(join(',', sort { $a <=> $b } @local), $coord->safe_psql('postgres', "$ids transfers"),
	'with a local write, the nodes applied exactly the transfers the coordinator committed');
my @lost = grep { !$applied{$_} } keys %acked;
is(scalar(@lost), 0, 'every transfer a client saw committed is applied');
for my $parity (0, 1)
{
	my $n = grep { int($_ / 10000) % 2 != $parity } keys %acked;
	cmp_ok($n, '>', $CLIENTS * $PER_CLIENT / 8,
		($parity ? 'last-agent' : 'locally decided') . " transfers went through ($n acknowledged)");
}
note 'applied ' . scalar(keys %applied) . ', acknowledged ' . scalar(keys %acked);

done_testing();
