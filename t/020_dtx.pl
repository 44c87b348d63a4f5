# Distributed transactions across three nodes: a coordinator and two
# participants, plus one whose max_prepared_transactions is 0 (so any
# attempt to prepare there fails, which proves when 2PC is skipped).
# Covers commit and rollback everywhere, a failing PREPARE, read-only and
# single-writer transactions, the node registry and its privileges, bad
# input, cross-node deadlocks, and recovery at each fault point.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use IPC::Run;

my $coord = distsys_node('coord', "restart_after_crash = on\ndistsys.dtx_recovery_interval = 0");
my $p1 = bank_participant($coord, 'p1', 10, 100);
my $p2 = bank_participant($coord, 'p2', 10, 100);
my $p3 = bank_participant($coord, 'p3', 10, 100, 'max_prepared_transactions = 0');
$coord->safe_psql('postgres', "CREATE TABLE ledger (id int PRIMARY KEY)");

sub c { return $coord->safe_psql('postgres', $_[0]); }

# c_err(SQL): run SQL on the coordinator expecting failure; its stderr.
sub c_err
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $coord->psql('postgres', $sql, on_error_stop => 1,
		extra_params => ['-v', 'VERBOSITY=verbose']);
	return $ret == 0 ? "(no error; output: $out)" : $err;
}
sub bal { return $_[0]->safe_psql('postgres', "SELECT bal FROM acct WHERE id = $_[1]"); }
sub prepared { return $_[0]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'); }

sub transfer_sql
{
	my ($from, $to, $amount, $ledger) = @_;
	my $local = defined $ledger ? "INSERT INTO ledger VALUES ($ledger);" : '';
	return "BEGIN; $local
		SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - $amount WHERE id = $from');
		SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + $amount WHERE id = $to');
		COMMIT;";
}

# --- commit, rollback, rows affected -------------------------------------
c(transfer_sql(1, 1, 10, 1));
is(bal($p1, 1) . ' ' . bal($p2, 1) . ' ' . c('SELECT count(*) FROM ledger'), '90 110 1',
	'a committed transfer is applied on both nodes and locally');
is(prepared($p1) + prepared($p2), 0, 'no prepared transaction is left');
is(c('SELECT count(*) FROM distsys.dtx_decisions'), '1',
	'the decision record stays until recovery sees every participant committed');
is(c('SELECT distsys.dtx_recover()'), '0', 'recovery finds nothing to resolve');
is(c('SELECT count(*) FROM distsys.dtx_decisions'), '0', 'and forgets the finished decision');

c("BEGIN; SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = 0');
   SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = 0'); ROLLBACK;");
is(bal($p1, 1) . ' ' . bal($p2, 1), '90 110', 'a local ROLLBACK rolls every node back');
is(c("SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal WHERE id <= 3')"), '3',
	'dtx_exec returns the rows affected');

# --- a PREPARE that fails fails the commit, and nothing is half-committed ---
my $err = c_err("BEGIN; INSERT INTO ledger VALUES (2);
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 5 WHERE id = 2');
	SELECT distsys.dtx_exec('p2', 'CREATE TEMP TABLE t (x int); UPDATE acct SET bal = bal + 5 WHERE id = 2');
	COMMIT;");
like($err, qr/0A000.*node "p2".*temporary/s,
	'PREPARE refused on a node (temporary table): remote SQLSTATE and the node named');
like($err, qr/remote statement on node "p2": PREPARE TRANSACTION/, 'with the statement in the context');
is(bal($p1, 2) . ' ' . bal($p2, 2) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 2'), '100 100 0',
	'the other node and the local transaction were rolled back');
is(prepared($p1) + prepared($p2), 0, 'and no prepared transaction is left');

# (LISTEN alone does not make a node a writer, and with a local write
# every writing node is prepared)
$err = c_err("BEGIN; INSERT INTO ledger VALUES (3);
	SELECT distsys.dtx_exec('p1', 'LISTEN ch; UPDATE acct SET bal = bal - 1 WHERE id = 3');
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 3'); COMMIT;");
like($err, qr/0A000.*node "p1".*LISTEN/s, 'LISTEN cannot be prepared: a clear error');
is(bal($p1, 3) . ' ' . bal($p2, 3) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 3'), '100 100 0',
	'and nothing was committed');

# --- read-only participants and the single writer: no PREPARE -----------
# p3 cannot prepare at all, so these pass only if 2PC is skipped there.
is(c("BEGIN; SELECT distsys.dtx_query('p3', 'SELECT sum(bal) AS s FROM acct');
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 4');
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal - 1 WHERE id = 4');
	COMMIT;") =~ /"s": 1000/ ? 1 : 0, 1, 'a read-only participant is not prepared');
c("SELECT distsys.dtx_exec('p3', 'UPDATE acct SET bal = 7 WHERE id = 1')");
is(bal($p3, 1), '7', 'one writing node and no local write commit in one phase');
$err = c_err("BEGIN; INSERT INTO ledger VALUES (3);
	SELECT distsys.dtx_exec('p3', 'UPDATE acct SET bal = 8 WHERE id = 1'); COMMIT;");
like($err, qr/prepared transactions are disabled/, 'with a local write it needs PREPARE');
is(bal($p3, 1) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 3'), '7 0',
	'and its failure rolls back both sides');
is(c("SELECT distsys.dtx_query('p3', 'SELECT count(*) FROM pg_prepared_xacts')->>'count'"), '0',
	'a query with its own transaction commits without PREPARE');

# --- dtx_query and the isolation level ----------------------------------
is(c("SELECT x FROM distsys.dtx_query('p1',
	'SELECT 1 AS i, 2.5 AS n, true AS b, NULL::text AS z, ''a\"b'' AS s, ''{\"k\":1}''::jsonb AS j') x"),
	'{"b": true, "i": 1, "j": {"k": 1}, "n": 2.5, "s": "a\"b", "z": null}',
	'dtx_query returns typed jsonb objects');
is(c("BEGIN ISOLATION LEVEL REPEATABLE READ;
	SELECT x->>'transaction_isolation' FROM distsys.dtx_query('p1', 'SHOW transaction_isolation') x;
	COMMIT;"), 'repeatable read', 'the remote transaction has the local isolation level');
is(c("BEGIN; DO \$\$ BEGIN PERFORM distsys.dtx_exec('p1', 'CREATE TABLE t_once (x int)'); END \$\$;
	SELECT x->>'n' FROM distsys.dtx_query('p1', 'SELECT count(*) AS n FROM t_once') x; ROLLBACK;"),
	'0', 'later calls reuse the remote transaction (they see its uncommitted work)');

my ($nret, $nout, $nerr) = $coord->psql('postgres',
	"SELECT distsys.dtx_exec('p1', 'DO \$\$ BEGIN RAISE NOTICE ''hello from p1''; END \$\$')");
like($nerr, qr/NOTICE:  node "p1": hello from p1/, "a node's notices reach the client, naming the node");

# --- bad input -----------------------------------------------------------
like(c_err("SELECT distsys.dtx_exec('nowhere', 'SELECT 1')"), qr/42704.*node "nowhere" is not registered/s,
	'unknown node: 42704');
c("SELECT distsys.node_add('dead', 'host=127.0.0.1 port=1 connect_timeout=2')");
like(c_err("SELECT distsys.dtx_exec('dead', 'SELECT 1')"), qr/08001.*could not connect to node "dead"/s,
	'unreachable node: 08001 naming the node');
like(c_err("SELECT distsys.dtx_exec('p1', 'SELEC 1')"),
	qr/42601.*node "p1": syntax error.*remote statement on node "p1": SELEC 1/s,
	'invalid SQL: the remote SQLSTATE, and the node and statement in the context');
like(c_err("SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = 1/0')"), qr/22012/,
	'a remote runtime error keeps its SQLSTATE');
like(c_err("SELECT distsys.node_add('bad name', 'host=x')"), qr/22023.*invalid node name/s,
	'invalid node name: 22023');
like(c_err("SELECT distsys.node_add('n', 'host=x nonsense')"), qr/22023.*invalid connection string/s,
	'invalid conninfo: 22023');
like(c_err("BEGIN; SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal WHERE id = 1');
	PREPARE TRANSACTION 'mine';"), qr/0A000.*cannot PREPARE a transaction that has run statements on other nodes/s,
	'a distributed transaction cannot be PREPAREd by hand');
is(prepared($p1), '0', 'and its remote part was rolled back');
c("SELECT distsys.node_remove('dead', force => true)");	# it cannot be asked: forced
c("SET distsys.dtx_prepared_reserve = 19");	# a no-op: this session ends here
like(c_err("SET distsys.dtx_prepared_reserve = 100; SELECT distsys.dtx_exec('p1', 'SELECT 1')"),
	qr/53400.*node "p1" has only \d+ free prepared-transaction slots/s,
	'a node short of prepared-transaction slots is refused');

# statements that would end the remote transaction, and COPY, are refused
like(c_err("BEGIN; INSERT INTO ledger VALUES (4);
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = 3; ROLLBACK');
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 3'); COMMIT;"),
	qr/2D000.*the statement ended the remote transaction on node "p1"/s,
	'a statement that ends the remote transaction is an error');
is(bal($p1, 3) . ' ' . bal($p2, 3) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 4'), '100 100 0',
	'and nothing of that transaction is committed anywhere');
like(c_err("SELECT distsys.dtx_exec('p1', 'COPY acct TO STDOUT')"), qr/0A000.*COPY is not supported/s,
	'COPY TO through dtx_exec is refused');
like(c_err("SELECT distsys.dtx_exec('p1', 'COPY acct FROM STDIN')"), qr/COPY is not supported/,
	'so is COPY FROM');

# --- the registry and its privileges ------------------------------------
c("CREATE ROLE app LOGIN; GRANT distsys_dtx_user TO app;");
my ($ret, $out, $stderr) = $coord->psql('postgres',
	"SELECT name, conninfo IS NULL FROM distsys.nodes ORDER BY name", extra_params => ['-U', 'app']);
is($out, "p1|t\np2|t\np3|t", 'other roles see node names but not connection strings');
is(c("SELECT count(*) FROM distsys.nodes WHERE conninfo IS NOT NULL"), '3', 'the owner sees them');
($ret, $out, $stderr) = $coord->psql('postgres', "SELECT conninfo FROM distsys.node_registry",
	extra_params => ['-U', 'app']);
like($stderr, qr/permission denied/, 'the registry table itself is not readable');
($ret, $out, $stderr) = $coord->psql('postgres', "SELECT distsys.node_add('x', 'host=y')",
	extra_params => ['-U', 'app']);
like($stderr, qr/permission denied/, 'only the owner may register nodes');
# (t/025_dtx_security.pl runs them with a password)
($ret, $out, $stderr) = $coord->psql('postgres',
	"SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 10')", extra_params => ['-U', 'app']);
like($stderr, qr/password is required to connect to node "p1"/,
	'a member of distsys_dtx_user that is not a superuser needs a password in the conninfo');
is(bal($p1, 10), '100', 'and nothing ran on the node');

# the extension's own statements run as its owner, but with its own
# search_path: an operator the caller puts first is not theirs to run
c("CREATE SCHEMA trap AUTHORIZATION app");
$coord->psql('postgres', q{
	CREATE FUNCTION trap.eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
	  $$ BEGIN EXECUTE 'ALTER ROLE app SUPERUSER'; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
	CREATE OPERATOR trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = trap.eq);
	SET search_path = trap, pg_catalog;
	SELECT distsys.dtx_exec('p1', 'SELECT 1');}, extra_params => ['-U', 'app']);
is(c("SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"), 'f',
	'a caller cannot make the owner run its own operator');

# --- a cross-node deadlock ends with a clear error ----------------------
c("ALTER SYSTEM SET distsys.dtx_lock_timeout = '2s'; SELECT pg_reload_conf();");
my $s1 = bg_session($coord, on_error_stop => 0);
my $s2 = bg_session($coord, on_error_stop => 0);
$s1->query_safe("BEGIN; SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal WHERE id = 5')");
$s2->query_safe("BEGIN; SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal WHERE id = 5')");
$s1->query_until(qr/sent/, "\\echo sent\nSELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal WHERE id = 5');\n");
my ($r2, $e2) = ($s2->query("SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal WHERE id = 5')"));
$s1->query('COMMIT');
$s2->query('ROLLBACK');
like($s2->{stderr} . $s1->{stderr}, qr/lock timeout/, 'crossed waits end with a lock timeout, not a hang');
$s1->quit;
$s2->quit;
is(prepared($p1) + prepared($p2), 0, 'and nothing stays prepared');

# --- timeouts: a node whose PREPARE never returns ----------------------
# PREPARE waits for a synchronous standby that does not exist
$p2->append_conf('postgresql.conf',
	"wal_level = replica\nmax_wal_senders = 2\nsynchronous_standby_names = 'nobody'");
$p2->restart;
is(c("SELECT distsys.dtx_exec('p2', 'SELECT 1')"), '1',
	'a restarted node is reconnected to without an error');
($ret, $out, $stderr) = $coord->psql('postgres',
	"SET distsys.dtx_prepare_timeout = '1s'; " . transfer_sql(6, 6, 5, 6));
like($stderr, qr/node "p2" did not answer within 1000 ms/, 'a PREPARE past dtx_prepare_timeout fails the commit');
is(bal($p1, 6) . ' ' . prepared($p1), '100 0', 'the node that answered is rolled back at once');
$p2->adjust_conf('postgresql.conf', 'synchronous_standby_names', "''");
$p2->restart;
# p2 prepared all the same (only its wait for the standby never ended) and
# was disconnected rather than sent a cancel; recovery rolls it back
is(c("SELECT string_agg(participant || ' ' || outcome, ',') FROM distsys.dtx_in_doubt"), 'p2 aborted',
	'the stalled node is left prepared and shown as aborted');
is(c('SELECT distsys.dtx_recover()'), '1', 'recovery rolls it back');
is(bal($p1, 6) . ' ' . bal($p2, 6) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 6'), '100 100 0',
	'and nothing of the transfer is applied');
is(prepared($p1) + prepared($p2), 0, 'no prepared transaction is left');

# --- recovery at each fault point ---------------------------------------
# fault_run(FAULT, ID): a transfer whose coordinating backend is killed at
# FAULT (with ledger row 100 + ID, or the one given: undef for none);
# returns once the coordinator is back.
sub fault_run
{
	my ($fault, $id, @ledger) = @_;
	my $ledger = @ledger ? $ledger[0] : 100 + $id;
	$coord->psql('postgres', "SET distsys.dtx_fault = $fault; " . transfer_sql($id, $id, 1, $ledger));
	wait_accepting($coord) or die 'coordinator did not come back';
}

fault_run('crash_after_some_prepares', 6);
# after the crash the coordinator hands out the crashed transaction's xid
# again; the GIDs' own ids keep recovery from mistaking the new one for it
c('SELECT pg_current_xact_id()') for 1 .. 3;
like(c("SELECT string_agg(outcome, ',') FROM distsys.dtx_in_doubt"), qr/^(aborted,?)+$/,
	'killed while preparing: dtx_in_doubt shows the prepared part as aborted');
cmp_ok(c('SELECT distsys.dtx_recover()'), '>=', 1, 'dtx_recover rolls it back');
is(bal($p1, 6) . ' ' . bal($p2, 6) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 106'), '100 100 0',
	'nothing of it is applied anywhere');

fault_run('crash_after_decision', 7);
is(c("SELECT string_agg(outcome, ',') FROM distsys.dtx_in_doubt"), 'committed,committed',
	'killed after the decision: both participants shown as committed in doubt');
is(c('SELECT distsys.dtx_recover()'), '2', 'dtx_recover commits both');
is(bal($p1, 7) . ' ' . bal($p2, 7) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 107'), '99 101 1',
	'the transfer is applied everywhere');

# with synchronous_commit off the decision is flushed all the same
c("ALTER SYSTEM SET wal_writer_delay = '10s'; SELECT pg_reload_conf();");
$coord->psql('postgres', "SET synchronous_commit = off; SET distsys.dtx_fault = crash_after_decision; "
	  . transfer_sql(5, 5, 1, 105));
wait_accepting($coord) or die 'coordinator did not come back';
is(c('SELECT count(*) FROM ledger WHERE id = 105') . ' ' . c('SELECT distsys.dtx_recover()'), '1 2',
	'with synchronous_commit off, the decision survives the crash and recovery commits it');
is(bal($p1, 5) . ' ' . bal($p2, 5), '99 101', 'on both participants');
c("ALTER SYSTEM RESET wal_writer_delay; SELECT pg_reload_conf();");

# a COMMIT PREPARED that does not answer within dtx_commit_timeout: the
# pass reports the node and goes on (p2 waits for a standby that does not
# exist, after committing locally)
fault_run('crash_after_decision', 4);
$p2->adjust_conf('postgresql.conf', 'synchronous_standby_names', "'nobody'");
$p2->restart;
($ret, $out, $stderr) = $coord->psql('postgres',
	"SET distsys.dtx_commit_timeout = '1s'; SELECT distsys.dtx_recover()");
like($stderr, qr/WARNING:.*node "p2".*did not answer within 1000 ms/s,
	'a node that does not answer COMMIT PREPARED in time is reported, not waited for');
is($out, '1', 'and the other node is committed in the same pass');
$p2->adjust_conf('postgresql.conf', 'synchronous_standby_names', "''");
$p2->restart;
c('SELECT distsys.dtx_recover()');
is(bal($p1, 4) . ' ' . bal($p2, 4) . ' ' . prepared($p2), '100 100 0',
	'the transfer ends applied on both nodes');

# a participant that is down during recovery: the others are resolved, it
# is reported and resolved on a later pass
fault_run('crash_after_decision', 9);
$p2->stop('immediate');
my ($rret, $rout, $rerr) = $coord->psql('postgres', 'SELECT distsys.dtx_recover()');
is($rout, '1', 'with one participant down, recovery commits the other');
like($rerr, qr/WARNING:.*could not reach node "p2"/, 'and warns about the one it could not reach');
is(c('SELECT count(*) FROM distsys.dtx_decisions'), '1', 'the decision is kept for it');
$p2->start;
is(c('SELECT distsys.dtx_recover()'), '1', 'once it is back, the next pass commits it');
is(bal($p1, 9) . ' ' . bal($p2, 9) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 109'), '99 101 1',
	'and the transfer is applied everywhere');

# --- the last agent: no local write, the last writing node decides ------
# Account 10, whose balances are tracked from here: tens() says where it
# stands on p1, p2 and p3 relative to the start of this part.
my @base = map { bal($_, 10) } $p1, $p2, $p3;
sub tens { my @b = map { bal($_, 10) } $p1, $p2, $p3; return join ' ', map { $b[$_] - $base[$_] } 0 .. 2; }
sub in_doubt { return c("SELECT coalesce(string_agg(participant || ' ' || outcome || ' ' || decider, ','), '')"
	  . " FROM distsys.dtx_in_doubt"); }
my $agent_sql = transfer_sql(10, 10, 1);
sub decisions { return c('SELECT count(*) FROM distsys.dtx_decisions'); }
sub marks { return $_[0]->safe_psql('postgres', 'SELECT count(*) FROM distsys.dtx_marks'); }
my $decisions = decisions();

# a last agent keeps a mark, so it needs distsys: without it, the
# coordinator decides
c($agent_sql);
is(tens() . ' ' . decisions(), '-1 1 0 ' . ($decisions + 1),
	'without distsys on the writing nodes, the coordinator records the decision');
$_->safe_psql('postgres', 'CREATE EXTENSION distsys') for $p1, $p2, $p3;
$decisions = decisions();
c($agent_sql);
is(tens() . ' ' . decisions(), "-2 2 0 $decisions",
	'with distsys there and no local write, a transfer commits with no decision record here');
is(marks($p2) . ' ' . marks($p1), '1 0', 'the writer used last, p2, decided it and keeps its mark');
is(prepared($p1) + prepared($p2), 0, 'nothing is left prepared');
c("BEGIN; SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = 10');
	SELECT distsys.dtx_exec('p3', 'UPDATE acct SET bal = bal + 1 WHERE id = 10'); COMMIT;");
is(tens(), '-3 2 1', 'the writer used last is committed in one phase (p3 cannot prepare) and decides');
like(c_err("BEGIN; SELECT distsys.dtx_exec('p3', 'UPDATE acct SET bal = bal + 1 WHERE id = 10');
	SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = 10'); COMMIT;"),
	qr/prepared transactions are disabled/, 'a writer used earlier is prepared');
is(tens(), '-3 2 1', 'and when that fails, both nodes are rolled back');
like(c_err("BEGIN; INSERT INTO ledger VALUES (10); SELECT distsys.dtx_query('p3',
	'WITH u AS (UPDATE acct SET bal = bal + 1 WHERE id = 10 RETURNING bal) SELECT bal FROM u'); COMMIT;"),
	qr/prepared transactions are disabled/, 'a query that writes makes its node a writer');
c("SET distsys.dtx_last_agent = off; $agent_sql");
is(tens() . ' ' . decisions(), '-4 3 1 ' . ($decisions + 1),
	'with distsys.dtx_last_agent off, the coordinator records the decision');

$p2->safe_psql('postgres', 'CREATE TABLE once (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)');
$err = c_err("BEGIN; SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = 10');
	SELECT distsys.dtx_exec('p2', 'INSERT INTO once VALUES (1), (1)'); COMMIT;");
like($err, qr/23505.*node "p2".*remote statement on node "p2": SELECT pg_catalog.set_config.*INSERT INTO distsys.dtx_marks.*COMMIT/s,
	'the deciding node failing its COMMIT (a deferred constraint) fails the transaction, with its SQLSTATE');
is(tens() . ' ' . prepared($p1), '-4 3 1 0', 'and the prepared node is rolled back at once');

# the coordinator killed at each point of the last-agent commit
fault_run('crash_after_some_prepares', 10, undef);
# p2's transaction ends (rolled back) when its session notices the crash
$coord->poll_query_until('postgres', 'SELECT count(*) = 1 FROM distsys.dtx_in_doubt WHERE outcome = \'aborted\'')
	or die 'p2 did not roll back';
is(in_doubt(), 'p1 aborted p2', 'killed before the decision: p1 is in doubt, aborted by p2\'s outcome');
is(c('SELECT distsys.dtx_recover()') . ' ' . tens(), '1 -4 3 1', 'recovery rolls it back');

fault_run('crash_while_deciding', 10, undef);
$coord->poll_query_until('postgres', 'SELECT count(*) = 1 FROM distsys.dtx_in_doubt WHERE outcome = \'committed\'')
	or die 'p2 did not commit';
is(in_doubt(), 'p1 committed p2', 'killed with the COMMIT on its way to p2: p2 committed, so p1 is committed in doubt');
is(c('SELECT distsys.dtx_recover()') . ' ' . tens(), '1 -5 4 1', 'recovery commits it');

fault_run('crash_after_decision', 10, undef);
is(in_doubt(), 'p1 committed p2', 'killed after the decision: the same');
like(c_err("SELECT distsys.node_remove('p2')"), qr/55006.*node "p2" still has distributed transactions to finish/s,
	'the deciding node cannot be removed while a node waits for its outcome');
like(c_err("SELECT distsys.node_add('p2', 'host=127.0.0.1 port=1')"), qr/55006/,
	'nor pointed elsewhere');
like(c_err("SELECT distsys.node_remove('p1')"), qr/55006/,
	'nor can the node that holds the prepared part');
$p2->stop('fast');
($ret, $out, $stderr) = $coord->psql('postgres', 'SELECT outcome FROM distsys.dtx_in_doubt');
is($out, 'unknown', 'with the deciding node down, the outcome is unknown');
like($stderr, qr/WARNING:.*could not reach node "p2"/, 'and the view says why');
($ret, $out, $stderr) = $coord->psql('postgres', 'SELECT distsys.dtx_recover()');
is($out . ' ' . prepared($p1), '0 1', 'recovery leaves it prepared');
$p2->start;
is(c('SELECT distsys.dtx_recover()') . ' ' . tens(), '1 -6 5 1', 'and commits it once p2 answers');

# no answer to the deciding COMMIT (p2 waits for a standby that does not
# exist): the client is told the outcome is p2's, and p2 settles it later
$p2->append_conf('postgresql.conf', "synchronous_standby_names = 'nobody'");
$p2->restart;
($ret, $out, $stderr) = $coord->psql('postgres', "SET distsys.dtx_commit_timeout = '1s'; $agent_sql",
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($stderr, qr/ERROR:  08007: node "p2" did not answer the COMMIT that decides.*within 1000 ms/s,
	'a deciding COMMIT past dtx_commit_timeout is an error: 08007, transaction resolution unknown');
like($stderr, qr/WARNING:  08007: the outcome of the distributed transaction is known only to node "p2"/,
	'and the client learns the outcome is p2\'s');
is(in_doubt(), 'p1 in progress p2', 'p1 waits for p2\'s outcome');

# the connection to the deciding node is lost after it committed (its
# backend is terminated while it waits for the standby): not a rollback
# (account 9: account 10 is locked on both nodes by the transfer above)
my $bg = IPC::Run::start(['psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d', $coord->connstr('postgres'),
	'-c', transfer_sql(9, 9, 1)], '<', \undef, '>', \my $bg_out, '2>', \my $bg_err);
$p2->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM pg_stat_activity WHERE wait_event = 'SyncRep'") or die 'no second commit waits';
$p2->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
$bg->finish;
like($bg_err, qr/08007.*node "p2" did not answer the COMMIT that decides/s,
	'a connection lost at the deciding COMMIT: 08007, not a rollback');
is(prepared($p1), '2', 'both transactions wait prepared on p1');
$p2->adjust_conf('postgresql.conf', 'synchronous_standby_names', "''");
$p2->restart;
is(in_doubt(), 'p1 committed p2,p1 committed p2', 'p2 committed both: its marks say so');
is(c('SELECT distsys.dtx_recover()') . ' ' . tens(), '2 -7 6 1', 'recovery commits p1');
is(prepared($p1) + prepared($p2), 0, 'nothing is left prepared');
cmp_ok(marks($p2), '>', 0, 'p2 still has marks');
# a mark read by one pass, unneeded in the next, is deleted in the one after
# (passes of one backend, as the worker's are)
c('SELECT distsys.dtx_recover(); SELECT distsys.dtx_recover(); SELECT distsys.dtx_recover()');
is(marks($p2) . ' ' . marks($p3), '0 0', 'recovery forgets the marks once no node needs them');

# a backend keeps the connection strings it looked up until a change of the
# registry commits: re-pointing p1 reaches its connections at once
my $p1_conn = $p1->connstr('postgres');
my $p2_conn = $p2->connstr('postgres');
my $port_sql = "SELECT distsys.dtx_query('p1', 'SELECT current_setting(''port'') AS port')->>'port'";
is(c("$port_sql; SELECT distsys.node_add('p1', \$\$$p2_conn\$\$); $port_sql;
	SELECT distsys.node_add('p1', \$\$$p1_conn\$\$)"),
	$p1->port . "\n\n" . $p2->port . "\n", 'a re-pointed node is reached at its new address by a backend that used it');

# the worker resolves the third case by itself
c("ALTER SYSTEM SET distsys.dtx_recovery_interval = '1s'; SELECT pg_reload_conf();");
fault_run('crash_after_some_commits', 8);
$coord->poll_query_until('postgres', 'SELECT count(*) = 0 FROM distsys.dtx_in_doubt')
	or die 'the recovery worker did not resolve the transaction';
is(bal($p1, 8) . ' ' . bal($p2, 8) . ' ' . c('SELECT count(*) FROM ledger WHERE id = 108'), '99 101 1',
	'killed between commits: the recovery worker finishes the commit');
$coord->poll_query_until('postgres', 'SELECT count(*) = 0 FROM distsys.dtx_decisions')
	or die 'decision records were not forgotten';
is(prepared($p1) + prepared($p2), 0, 'and every decision is forgotten once applied');

done_testing();
