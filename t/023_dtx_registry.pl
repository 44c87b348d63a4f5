# The node registry against distributed transactions in flight: a change
# made with plain SQL reaches the backends' cached connection strings; a
# node removed or re-pointed while a transaction uses it fails that
# transaction's COMMIT with 40001 and nothing is applied, and the
# transaction itself cannot move it; node_remove and plain SQL changes wait
# for a transaction that is preparing, and a transaction waits to prepare
# while node_add or node_remove is in progress.  Also: a cancel (here a
# statement_timeout) stops dtx_recover() instead of being reported as one
# more unreachable node, connect_timeout bounds a connection attempt, and
# savepoints roll back remote work.
use strict;
use warnings;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $coord = distsys_node('coord', "restart_after_crash = on\ndistsys.dtx_recovery_interval = 0");
my ($p1, $p2) = map { bank_participant($coord, $_, 20, 100) } qw(p1 p2);
my ($p1_conn, $p2_conn) = map { $_->connstr('postgres') } $p1, $p2;

sub c { return $coord->safe_psql('postgres', $_[0]); }

# c_err_verbose(SQL): what the coordinator's psql printed on stderr
sub c_err_verbose
{
	my ($ret, $out, $err) = $coord->psql('postgres', $_[0], extra_params => ['-v', 'VERBOSITY=verbose']);
	return $err;
}
sub bal { return $_[0]->safe_psql('postgres', "SELECT bal FROM acct WHERE id = $_[1]"); }
sub prepared { return $_[0]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'); }
sub balances { return join ' ', bal($p1, $_[0]), bal($p2, $_[0]); }

# transfer(ID): the two halves of a transfer of 1 on account ID
sub transfer
{
	my ($id) = @_;
	return "SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = $id');
		SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = $id');";
}

# handler_block(FIRST, INNER, CONDITION, AFTER): a DO block that runs
# dtx_exec(FIRST), then dtx_exec(INNER) in an exception block that catches
# CONDITION with a NOTICE, then dtx_exec(AFTER) (each a node and a
# statement, quoted)
sub handler_block
{
	my ($first, $inner, $condition, $after) = @_;
	return "DO \$\$ BEGIN
		PERFORM distsys.dtx_exec($first);
		BEGIN
			PERFORM distsys.dtx_exec($inner);
		EXCEPTION WHEN $condition THEN
			RAISE NOTICE 'caught';
		END;
		PERFORM distsys.dtx_exec($after);
	END \$\$";
}

my $bg = bg_session($coord, on_error_stop => 0);
$bg->query_safe('\set VERBOSITY verbose');

# a plain UPDATE of the registry by its owner reaches a backend that cached
# the connection string
my $port_sql = "SELECT distsys.dtx_query('p1', 'SELECT current_setting(''port'') AS port')->>'port'";
is($bg->query_safe($port_sql), $p1->port, 'a backend reaches p1');
c("UPDATE distsys.node_registry SET conninfo = \$\$$p2_conn\$\$ WHERE name = 'p1'");
is($bg->query_safe($port_sql), $p2->port, 'a registry change by plain SQL reaches its cached connection string');
c("UPDATE distsys.node_registry SET conninfo = \$\$$p1_conn\$\$ WHERE name = 'p1'");

# a transaction that changed the registry cannot begin work on a node (its
# connection string could be the uncommitted change)
like(c_err_verbose("BEGIN; SELECT distsys.node_add('p1', \$\$$p2_conn\$\$);
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 15'); COMMIT"),
	qr/55000: cannot begin work on node "p1" in a transaction that changed the node registry/,
	'no distributed work after a registry change in the same transaction');
is(balances(15) . ' ' . c("SELECT conninfo = \$\$$p1_conn\$\$ FROM distsys.nodes WHERE name = 'p1'"),
	'100 100 t', 'nothing applied, the change rolled back');

# a REPEATABLE READ transaction looks the registry up as it is now, not as
# of its snapshot (which would be stamped with the newer registry version)
$bg->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
c("SELECT distsys.node_add('p1', \$\$$p2_conn\$\$)");
is($bg->query_safe($port_sql), $p2->port, 'a REPEATABLE READ transaction reaches a node where it is registered now');
$bg->query_safe('COMMIT');
c("SELECT distsys.node_add('p1', \$\$$p1_conn\$\$)");

# the transaction that uses a node cannot move it
$bg->query_safe('BEGIN; ' . transfer(1));
$bg->query("SELECT distsys.node_add('p1', \$\$$p2_conn\$\$)");
like($bg->{stderr}, qr/ERROR:  55006: node "p1" is used by this transaction/,
	'a transaction cannot re-point a node it used');
$bg->{stderr} = '';
$bg->query_safe('ROLLBACK; BEGIN; ' . transfer(1));
$bg->query("SELECT distsys.node_remove('p2', force => true)");
like($bg->{stderr}, qr/ERROR:  55006: node "p2" is used by this transaction/,
	'nor remove it, even with force');
$bg->{stderr} = '';
$bg->query_safe('ROLLBACK');
is(balances(1), '100 100', 'nothing was applied');

# removed, then re-pointed, while a transaction uses it: COMMIT fails
$bg->query_safe('BEGIN; ' . transfer(1));
c("SELECT distsys.node_remove('p1')");
$bg->query('COMMIT');
like($bg->{stderr}, qr/ERROR:  40001: node "p1" was removed while this transaction used it/,
	'a node removed while a transaction used it: its COMMIT fails with 40001');
is(balances(1) . ' ' . (prepared($p1) + prepared($p2)), '100 100 0', 'and nothing of it is applied or left prepared');
$bg->{stderr} = '';
c("SELECT distsys.node_add('p1', \$\$$p1_conn\$\$)");

$bg->query_safe('BEGIN; ' . transfer(2));
c("SELECT distsys.node_add('p2', \$\$$p1_conn\$\$)");
$bg->query('COMMIT');
like($bg->{stderr}, qr/ERROR:  40001: node "p2" was re-pointed while this transaction used it/,
	'a node re-pointed while a transaction used it: its COMMIT fails with 40001');
is(balances(2) . ' ' . (prepared($p1) + prepared($p2)), '100 100 0', 'and nothing of it is applied or left prepared');
$bg->{stderr} = '';
c("SELECT distsys.node_add('p2', \$\$$p2_conn\$\$)");
$bg->query_safe('BEGIN; ' . transfer(2) . ' COMMIT;');
is(balances(2), '99 101', 'the retried transaction commits');

# node_remove waits for a transaction between its first PREPARE and its
# outcome (which holds the registry in ROW EXCLUSIVE mode, as here); first
# recovery forgets the decision that still names p2
c('SELECT distsys.dtx_recover()');
is(c('SELECT count(*) FROM distsys.dtx_decisions'), '0', 'no decision names p2');
my $holder = bg_session($coord);
$holder->query_safe('BEGIN; LOCK TABLE distsys.node_registry IN ROW EXCLUSIVE MODE');
my ($remover) = start_waiter($coord, "distsys.node_remove('p2')");
$coord->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_locks
	WHERE relation = 'distsys.node_registry'::regclass AND NOT granted")
  or die 'node_remove did not wait';
is(c("SELECT count(*) FROM distsys.nodes WHERE name = 'p2'"), '1', 'node_remove waits for a transaction that is preparing');
$holder->query_safe('COMMIT');
is(finish_waiter($remover), 'true', 'and removes the node once it ended');
$remover->quit;
c("SELECT distsys.node_add('p2', \$\$$p2_conn\$\$)");

# a transaction waits to prepare while node_add is in progress (which holds
# the registry in SHARE ROW EXCLUSIVE mode, as here), then commits
$holder->query_safe('BEGIN; LOCK TABLE distsys.node_registry IN SHARE ROW EXCLUSIVE MODE');
my ($mover) = start_waiter($coord,
	"distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = 3')
	 + distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 3')");
$coord->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_locks
	WHERE relation = 'distsys.node_registry'::regclass AND NOT granted")
  or die 'the committing transaction did not wait';
is(balances(3), '100 100', 'a committing transaction waits while the registry changes');
$holder->query_safe('COMMIT');
is(finish_waiter($mover) . ' ' . balances(3), '2 99 101', 'and commits once the change is done');
$mover->quit;

# a plain SQL change of the registry waits for a preparing transaction too
$holder->query_safe('BEGIN; LOCK TABLE distsys.node_registry IN ROW EXCLUSIVE MODE');
my $editor = bg_session($coord, on_error_stop => 0);
$editor->query_until(qr/sent/, "\\echo sent\n"
	. "UPDATE distsys.node_registry SET added_at = now() WHERE name = 'p1';\n\\echo done:updated\n");
$coord->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_locks
	WHERE relation = 'distsys.node_registry'::regclass AND NOT granted")
  or die 'the plain UPDATE did not wait';
$holder->query_safe('COMMIT');
is(finish_waiter($editor), 'updated', 'a plain UPDATE of the registry waits for a preparing transaction');
$editor->quit;
$holder->quit;

# savepoints: a subtransaction that rolls back rolls its remote work back
# (to a savepoint the node got when the subtransaction first used it), at
# once, so its row locks are gone too; one that commits keeps it
c("BEGIN;
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 6');
	SAVEPOINT a;
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 10 WHERE id = 6');
	SAVEPOINT b;
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 100 WHERE id = 6');
	RELEASE b;
	ROLLBACK TO a;
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1000 WHERE id = 6');
	SAVEPOINT c;
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 10000 WHERE id = 6');
	RELEASE c;
	COMMIT;");
is(balances(6), '10101 1100', 'ROLLBACK TO undoes the remote work after the savepoint, RELEASE keeps it');
$bg->query_safe("BEGIN; SELECT distsys.dtx_exec('p1', 'SELECT 1'); SAVEPOINT s;
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 7'); ROLLBACK TO s");
is($p1->safe_psql('postgres', "SET lock_timeout = '5s'; UPDATE acct SET bal = bal + 5 WHERE id = 7 RETURNING bal"),
	'105', 'the rolled back row is not locked any more');
$bg->query_safe('COMMIT');
my $plpgsql = c("DO \$\$
	BEGIN
		PERFORM distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = 8');
		BEGIN
			PERFORM distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 8');
			PERFORM distsys.dtx_exec('p1', 'SELECT 1 / 0');
		EXCEPTION WHEN division_by_zero THEN
			RAISE NOTICE 'caught';
		END;
		PERFORM distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 2 WHERE id = 8');
	END \$\$; SELECT 'done'");
is($plpgsql . ' ' . balances(8), 'done 99 102',
	'a PL/pgSQL exception block catches a remote error, its remote work is undone and the rest commits');
is(prepared($p1) + prepared($p2), 0, 'nothing is left prepared');

# a syntax error keeps a whole message from running (the server parses it
# first): savepoints of a node already open are made in a round trip of
# their own, so a rollback finds them; a new node's BEGIN did not run, so
# it begins afresh
c("BEGIN;
	SAVEPOINT a;
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 10');
	RELEASE a;
	SAVEPOINT b;
	DO \$\$ BEGIN PERFORM distsys.dtx_exec('p1', 'SELEC 1'); EXCEPTION WHEN syntax_error THEN NULL; END \$\$;
	DO \$\$ BEGIN PERFORM distsys.dtx_exec('p2', 'SELEC 1'); EXCEPTION WHEN syntax_error THEN NULL; END \$\$;
	ROLLBACK TO b;
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 2 WHERE id = 10');
	COMMIT;");
is(balances(10), '101 102', 'syntax errors in subtransactions: the work before them is kept, a new node begins afresh');

# a node refused by its slot check in a subtransaction has not begun: it
# begins when next used, not in autocommit
my ($dret, $dout, $derr) = $coord->psql('postgres', "DO \$\$ BEGIN
		PERFORM set_config('distsys.dtx_prepared_reserve', '100', true);
		BEGIN
			PERFORM distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 11');
		EXCEPTION WHEN configuration_limit_exceeded THEN
			RAISE NOTICE 'refused';
		END;
		PERFORM set_config('distsys.dtx_prepared_reserve', '0', true);
		PERFORM distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 11');
		RAISE EXCEPTION 'undo it all';
	END \$\$");
like($derr, qr/NOTICE:  refused.*ERROR:  undo it all/s, 'the slot check refused the node inside the block');
is(balances(11), '100 100', 'and the later statement there was rolled back with the transaction');

# a node whose transaction a statement ended inside a subtransaction (a
# COMMIT sent through dtx_exec) cannot be rolled back to the savepoint:
# even with the error caught, the distributed transaction fails
($dret, $dout, $derr) = $coord->psql('postgres',
	handler_block("'p1', 'SELECT 1'", "'p1', 'SELECT 2; COMMIT'", 'invalid_transaction_termination',
		"'p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 14'"),
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($derr, qr/NOTICE:  00000: caught.*ERROR:  25P02: the remote transaction on node "p1" could not be rolled back to a savepoint/s,
	'a node whose transaction ended in a subtransaction fails the transaction');
is(balances(14), '100 100', 'and nothing of it is applied');

# a top-level ROLLBACK with savepoints open rolls everything back
c("BEGIN; SAVEPOINT a; SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 12');
	SAVEPOINT b; SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 12'); ROLLBACK;");
is(balances(12) . ' ' . (prepared($p1) + prepared($p2)), '100 100 0', 'ROLLBACK with savepoints open: nothing applied');

# a cancel while a node runs a statement inside an exception block: the
# statement is cancelled there, the node rolled back to the savepoint, and
# the next statement is not hit by a stray cancel
my $sleeper = bg_session($coord, on_error_stop => 0);
my $sleeper_pid = $sleeper->query_safe('SELECT pg_backend_pid()');
$sleeper->query_until(qr/sent/, "\\echo sent\n"
	. handler_block("'p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 13'",
		"'p1', 'UPDATE acct SET bal = bal + 100 WHERE id = 13; SELECT pg_sleep(60)'", 'query_canceled',
		"'p1', 'UPDATE acct SET bal = bal + 10 WHERE id = 13'")
	. ";\n\\echo done:ran\n");
$p1->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
  or die 'the node does not run the statement';
c("SELECT pg_cancel_backend($sleeper_pid)");
is(finish_waiter($sleeper) . ' ' . balances(13), 'ran 111 100',
	'a cancel inside an exception block: the node rolled back to the savepoint, the rest committed');
$sleeper->quit;

# a node whose savepoint rollback fails (its backend is gone) fails COMMIT
$bg->query_safe("BEGIN; SELECT distsys.dtx_exec('p2', 'SELECT 1'); SAVEPOINT s;
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 9')");
$p1->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
$bg->query('ROLLBACK TO s');
$bg->{stderr} = '';
$bg->query("SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 9')");
$bg->query('COMMIT');
like($bg->{stderr}, qr/25P02: the remote transaction on node "p1" could not be rolled back to a savepoint/,
	'a node that could not be rolled back to the savepoint fails the transaction: 25P02');
$bg->{stderr} = '';
is(balances(9) . ' ' . (prepared($p1) + prepared($p2)), '100 100 0', 'and nothing of it is applied');

# recovery asks a deciding node over one connection per pass: with p2 (the
# last agent here) down, two transactions it decided are unknown after one
# attempt to reach it as their decider, not one per transaction
$p2->safe_psql('postgres', 'CREATE EXTENSION distsys');
for my $id (4, 5)
{
	my $log_offset = -s $coord->logfile;
	$coord->psql('postgres', 'SET distsys.dtx_fault = crash_after_decision; BEGIN; ' . transfer($id) . ' COMMIT;');
	# back once the crash restart is over, not before it began
	$coord->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
	wait_accepting($coord) or die 'the coordinator did not come back';
}
is(c("SELECT string_agg(participant || ' ' || outcome || ' ' || decider, ',') FROM distsys.dtx_in_doubt"),
	'p1 committed p2,p1 committed p2', 'two transactions decided by p2 are in doubt on p1');
$p2->stop('fast');
my ($ret, $out, $err) = $coord->psql('postgres', "SELECT string_agg(outcome, ',') FROM distsys.dtx_in_doubt");
is($out, 'unknown,unknown', 'with p2 down, both outcomes are unknown');
my @unreachable = $err =~ /could not reach node "p2"/g;
is(scalar @unreachable, 2, 'p2 was tried once as their decider (and once to list it), not once per transaction');
$p2->start;
is(c('SELECT distsys.dtx_recover()') . ' ' . balances(4) . ' ' . balances(5), '2 99 101 99 101',
	'once p2 is back, recovery commits both');

# a cancel stops dtx_recover(): here statement_timeout, while it waits for
# a server that accepts connections and never answers
my $silent = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp')
  or die "listen: $!";
c("SELECT distsys.node_add('silent', 'host=127.0.0.1 port=" . $silent->sockport
	  . " dbname=postgres connect_timeout=60')");
($ret, $out, $err) = $coord->psql('postgres',
	"SET statement_timeout = '500ms'; SELECT distsys.dtx_recover();", extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
	'a statement_timeout stops dtx_recover() waiting for a silent node');
unlike($err, qr/could not reach node/, 'instead of being reported as an unreachable node');
c("SELECT distsys.node_remove('silent', force => true)");

# connect_timeout in a node's conninfo bounds the connection attempt
c("SELECT distsys.node_add('silent', 'host=127.0.0.1 port=" . $silent->sockport
	  . " dbname=postgres connect_timeout=2')");
($ret, $out, $err) = $coord->psql('postgres', "SELECT distsys.dtx_exec('silent', 'SELECT 1')",
	timeout => $PostgreSQL::Test::Utils::timeout_default);
like($err, qr/could not connect to node "silent".*no answer within connect_timeout/s,
	'a node that does not answer fails the connection after connect_timeout');
c("SELECT distsys.node_remove('silent', force => true)");
close $silent;

$bg->quit;
done_testing();
