# DistsysTest.pm: helpers shared by the TAP tests of distsys.
#
# Nodes get shared_preload_libraries = 'distsys' and the other settings the
# tests need from TEMP_CONFIG (see tools/test.sh); these helpers only add
# what is specific to one test.
#
# DISTSYS_TEST_SYNC_COMMIT=VALUE (the syncoff pass of tools/test.sh sets
# off): every node initialized while this module is loaded, however the
# test makes it (distsys_node, bank_participant, or
# PostgreSQL::Test::Cluster->new and init directly; a standby made by
# init_from_backup copies its primary's file), gets synchronous_commit =
# VALUE, and with off also wal_writer_delay = 2000ms, so that an
# asynchronous commit stays unflushed long enough for a crash to lose it.
# Settings a test appends to the node afterwards still win.  sync_commit()
# tells a test which value its nodes run at.
package DistsysTest;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Exporter 'import';

our @EXPORT_OK = qw(slurp children);
our @EXPORT = qw(sync_commit durable_psql distsys_node bank_participant standby_pair bg_session kill_postmaster crash_postmaster wait_accepting start_waiter finish_waiter wait_for_queue wait_for_error);

# sync_commit(): the synchronous_commit every node starts with ('on' unless
# DISTSYS_TEST_SYNC_COMMIT says otherwise).
sub sync_commit
{
	my $v = $ENV{DISTSYS_TEST_SYNC_COMMIT};
	return defined $v && $v ne '' ? $v : 'on';
}

# PostgreSQL::Test::Cluster::init, followed by the settings of
# DISTSYS_TEST_SYNC_COMMIT when it is set.
if (sync_commit() ne 'on')
{
	my $init = \&PostgreSQL::Test::Cluster::init;
	my $conf = 'synchronous_commit = ' . sync_commit();
	$conf .= "\nwal_writer_delay = 2000ms" if sync_commit() eq 'off';
	no warnings 'redefine';
	*PostgreSQL::Test::Cluster::init = sub {
		my ($self) = @_;
		$init->(@_);
		$self->append_conf('postgresql.conf', "# DISTSYS_TEST_SYNC_COMMIT\n$conf");
	};
}

# durable_psql(NODE, SQL): safe_psql of a test's set-up, committed at
# synchronous_commit = on whatever the node's default, so that a crash the
# test causes right afterwards cannot take the set-up with it.
sub durable_psql
{
	my ($node, $sql) = @_;
	return $node->safe_psql('postgres', "SET synchronous_commit = on; $sql");
}

# distsys_node(NAME, CONF): a started node with the extension created.
sub distsys_node
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', $conf) if $conf;
	$node->start;
	durable_psql($node, 'CREATE EXTENSION distsys');
	return $node;
}

# bank_participant(COORD, NAME, ACCOUNTS, BALANCE, CONF): a started plain
# PostgreSQL node with table acct (ids 1..ACCOUNTS, each at BALANCE),
# registered on the coordinator COORD as a 2PC participant named NAME.
sub bank_participant
{
	my ($coord, $name, $accounts, $balance, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', $conf) if $conf;
	$node->start;
	durable_psql($node,
		"CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL);
		 INSERT INTO acct SELECT g, $balance FROM generate_series(1, $accounts) g;");
	$coord->safe_psql('postgres',
		"SELECT distsys.node_add('$name', \$\$" . $node->connstr('postgres') . "\$\$)");
	return $node;
}

# standby_pair(CONF): a coordinator (CONF added to its configuration; its
# recovery worker idle) with distsys and table ledger (id int PRIMARY KEY),
# participants p1 and p2 (bank_participant: 10 accounts at 100), and a
# streaming standby of it whose recovery worker runs every second once it
# is promoted.  Returns the primary, the standby, p1 and p2.
sub standby_pair
{
	my ($conf) = @_;
	my $primary = PostgreSQL::Test::Cluster->new('primary');
	$primary->init(allows_streaming => 1);
	$primary->append_conf('postgresql.conf', "distsys.dtx_recovery_interval = 0\n" . ($conf // ''));
	$primary->start;
	durable_psql($primary, 'CREATE EXTENSION distsys; CREATE TABLE ledger (id int PRIMARY KEY);');
	my ($p1, $p2) = map { bank_participant($primary, $_, 10, 100) } qw(p1 p2);
	$primary->backup('base');
	my $standby = PostgreSQL::Test::Cluster->new('standby');
	$standby->init_from_backup($primary, 'base', has_streaming => 1);
	$standby->append_conf('postgresql.conf', 'distsys.dtx_recovery_interval = 1');
	$standby->start;
	$primary->wait_for_catchup($standby);
	return ($primary, $standby, $p1, $p2);
}

# alive(PID): whether PID runs (a zombie does not count).
sub alive
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/stat" or return 0;
	my $stat = <$fh>;
	return $stat !~ /^\d+ \(.*\) Z/;
}

# children(PID): the pids of PID's child processes now.
sub children
{
	my ($pid) = @_;
	return grep { slurp("/proc/$_/status") =~ /^PPid:\s+\Q$pid\E$/m }
	  map { m{/proc/(\d+)} ? $1 : () } glob('/proc/[0-9]*');
}

# kill_postmaster(NODE): kill -9 the postmaster and wait until every
# process of it is gone, so that the node can be started again.  The
# killed postmaster may stay a zombie (nothing here reaps orphans), and its
# lock file then names a pid that still exists, so it and the socket's lock
# file are removed once that pid is dead.  Its processes are those that
# were its children before the kill (after it, they are orphans): other
# test runs on the machine may have nodes of the same name.
sub kill_postmaster
{
	my ($node) = @_;
	my $pid = $node->{_pid};
	my @children = children($pid);
	$node->kill9;
	# a child forked just before the kill: look once more
	push @children, children($pid);
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my @left = grep { alive($_) } @children;
		last if !alive($pid) && !@left;
		select(undef, undef, undef, 0.05);
	}
	unlink($node->data_dir . '/postmaster.pid',
		$node->host . '/.s.PGSQL.' . $node->port . '.lock');
}

# crash_postmaster(NODE): kill_postmaster, then start the node again.
sub crash_postmaster
{
	my ($node) = @_;
	kill_postmaster($node);
	$node->start;
}

# wait_accepting(NODE): wait until NODE answers a query (after a crash,
# while it recovers); false if it does not within the test timeout.  Like
# poll_query_until, but a psql that exits (the server refusing
# connections) before it read its query from the pipe makes IPC::Run die
# with "Broken pipe" in poll_query_until; that is one more try here.
sub wait_accepting
{
	my ($node) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my $up = eval { $node->poll_query_until('postgres', 'SELECT true') };
		return 1 if $up;
		die $@ if $@ && $@ !~ /Broken pipe/;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# slurp(FILE): its contents, or '' if it cannot be read (a /proc entry of
# a process that just ended).
sub slurp
{
	my ($file) = @_;
	open my $fh, '<', $file or return '';
	local $/;
	return <$fh> // '';
}

# bg_session(NODE): a background psql session whose timeout applies to
# each query, not to the session's whole life.
sub bg_session
{
	my ($node, %params) = @_;
	my $bg = $node->background_psql('postgres', %params);
	$bg->set_query_timer_restart;
	return $bg;
}

# start_waiter(NODE, SQL, ROLE): a background session that runs SQL (which
# may block), as ROLE if given, and prints "done:" and its result when it
# returns.  Returns the session and its backend pid.
sub start_waiter
{
	my ($node, $sql, $role) = @_;
	my $bg = bg_session($node, on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_safe("SET ROLE $role") if $role;
	$bg->query_until(qr/sent/, "\\echo sent\nSELECT 'done:' || coalesce(($sql)::text, 'null');\n");
	return ($bg, $pid);
}

# finish_waiter(BG): wait for the blocked statement to return; its result.
sub finish_waiter
{
	my ($bg) = @_;
	my $out = $bg->query_until(qr/done:\S*\n/, '');
	my ($result) = $out =~ /done:(\S*)\n/;
	return $result;
}

# wait_for_error(BG, REGEX): until the background session prints an error
# matching REGEX on stderr.
sub wait_for_error
{
	my ($bg, $re) = @_;
	pump_until($bg->{run}, $bg->{timeout}, \$bg->{stderr}, $re);
	my $ok = $bg->{stderr} =~ $re;
	$bg->{stderr} = '';
	return $ok;
}

# wait_for_queue(NODE, LOCK, N): until N sessions wait for LOCK.
sub wait_for_queue
{
	my ($node, $lock, $n) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) >= $n FROM distsys.dlock_waiters WHERE name = '$lock'")
	  or die "timed out waiting for $n waiters on $lock";
}

1;
