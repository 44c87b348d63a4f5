# Who may do what through distsys's 2PC connections (issue 14).
#  - A role that is not a superuser connects to a node only with a password
#    from the node's conninfo that the node asked for: never on the
#    coordinator server's own credentials (trust here), postgres_fdw's rule.
#  - Each local role has its own remote session, and each remote
#    transaction begins with the session's settings and identity reset; a
#    PREPARE runs as the conninfo's user, so recovery can finish it.
#  - A statement that ends the remote transaction and begins another
#    ("COMMIT; BEGIN") fails the distributed transaction.
#  - distsys's own statements on a node do not run the operators a role
#    there puts ahead of pg_catalog's in its search_path; the user's do.
#  - A last agent's mark belongs to the role that wrote it: another role
#    can neither delete it nor write one recovery believes.
#  - CREATE EXTENSION adopts distsys's cluster-wide roles only if a distsys
#    install created them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest qw(:DEFAULT slurp);

my $coord = distsys_node('coord', "distsys.dtx_recovery_interval = 0\nrestart_after_crash = on");
my $p1 = PostgreSQL::Test::Cluster->new('p1');
$p1->init;
$p1->start;
$p1->safe_psql('postgres', q{
	CREATE EXTENSION distsys;
	CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
	CREATE ROLE bob LOGIN PASSWORD 'bob-pw';
	GRANT distsys_dtx_user TO alice;
	GRANT bob TO alice;
	CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL);
	INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g;
	GRANT ALL ON acct TO alice, bob});
# alice must give her password; every other role (bob too) keeps trust
my $hba = $p1->data_dir . '/pg_hba.conf';
my $old_hba = slurp($hba);
open my $fh, '>', $hba or die "$hba: $!";
print $fh "local all alice scram-sha-256\nhost all alice 127.0.0.1/32 scram-sha-256\n$old_hba";
close $fh;
$p1->reload;

my $p1_conn = $p1->connstr('postgres');
sub c { return $coord->safe_psql('postgres', $_[0]); }
c("SELECT distsys.node_add('p1', \$\$$p1_conn\$\$);
   SELECT distsys.node_add('p1_alice', \$\$$p1_conn user=alice password=alice-pw\$\$);
   SELECT distsys.node_add('p1_bob', \$\$$p1_conn user=bob password=bob-pw\$\$);
   CREATE ROLE app LOGIN; CREATE ROLE app2 LOGIN; GRANT distsys_dtx_user TO app, app2;
   CREATE TABLE ledger (id int PRIMARY KEY);");
sub bal { return $p1->safe_psql('postgres', "SELECT bal FROM acct WHERE id = $_[0]"); }

# as_app(SQL): run SQL on the coordinator as app (not a superuser); its
# stdout and stderr (verbose)
sub as_app
{
	my ($ret, $out, $err) = $coord->psql('postgres', $_[0],
		extra_params => ['-U', 'app', '-v', 'VERBOSITY=verbose']);
	return ($out, $err);
}

# --- no ambient credentials for roles that are not superusers ---------------
my ($out, $err) = as_app("SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 1')");
like($err, qr/ERROR:  2F003: password is required to connect to node "p1"\nDETAIL:  Only superusers may connect to a node whose conninfo has no password/,
	'a conninfo without a password is refused to a role that is not a superuser (2F003)');
like($err, qr/HINT:  Put the password of the node's user in its conninfo/, 'with a hint');
($out, $err) = as_app("SELECT distsys.dtx_exec('p1_bob', 'UPDATE acct SET bal = bal + 1 WHERE id = 1')");
like($err, qr/ERROR:  2F003: password is required to connect to node "p1_bob"\nDETAIL:  The node did not ask for the password/,
	'a password the node did not ask for (trust) does not count');
is(bal(1), '100', 'nothing ran on the node');
($out, $err) = as_app("SELECT distsys.dtx_exec('p1_alice', 'UPDATE acct SET bal = bal + 1 WHERE id = 1')");
is($out . ' ' . bal(1), '1 101', 'with a password the node asked for (scram), a member of distsys_dtx_user runs statements');
is(c("SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 1')") . ' ' . bal(1), '1 102',
	'superusers may use any conninfo');
# a superuser's connection is not lent to another role of the same backend
(undef, $out, $err) = $coord->psql('postgres', "SELECT distsys.dtx_exec('p1', 'SELECT 1');
	SET ROLE app; SELECT distsys.dtx_exec('p1', 'SELECT 1')");
like($err, qr/password is required to connect to node "p1"/,
	'a role that is not a superuser cannot use the connection a superuser opened in its session');

# --- one remote session per local role, reset at each BEGIN -----------------
my $state_sql = "SELECT x->>'u' || ' ' || (x->>'s') || ' ' || (x->>'p') || ' ' || (x->>'t')
	FROM distsys.dtx_query('p1_alice', 'SELECT current_user AS u, session_user AS s,
		current_setting(''search_path'') AS p, current_setting(''statement_timeout'') AS t') x";
is(c("BEGIN; SELECT distsys.dtx_exec('p1_alice',
		'SET search_path = nowhere; SET ROLE bob; SET statement_timeout = 12345'); $state_sql; COMMIT;
	$state_sql"),
	"0\nbob alice nowhere 12345ms\nalice alice \"\$user\", public 0",
	'settings and a SET ROLE of one transaction\'s statements are gone in the next');
is(c("SELECT distsys.dtx_exec('p1', 'SET SESSION AUTHORIZATION bob');
	SELECT distsys.dtx_query('p1', 'SELECT session_user AS s')->>'s'"), "0\n" . $p1->safe_psql('postgres', 'SELECT session_user'),
	'and so is a SET SESSION AUTHORIZATION');
my $pid_sql = "SELECT distsys.dtx_query('p1_alice', 'SELECT pg_backend_pid() AS pid')->>'pid'";
my ($pid_app, $pid_app2, $pid_app_again) = split /\n/, c("SET ROLE app; $pid_sql; RESET ROLE;
	SET ROLE app2; $pid_sql; RESET ROLE; SET ROLE app; $pid_sql");
isnt($pid_app, $pid_app2, 'two local roles of one backend get different remote sessions');
is($pid_app_again, $pid_app, 'and each keeps its own across transactions');
is(c("BEGIN; SET ROLE app; SELECT distsys.dtx_exec('p1_alice', 'UPDATE acct SET bal = bal + 1 WHERE id = 2');
	RESET ROLE; SET ROLE app2; SELECT distsys.dtx_query('p1_alice', 'SELECT bal FROM acct WHERE id = 2')->>'bal';
	SELECT distsys.dtx_exec('p1_alice', 'UPDATE acct SET bal = bal + 1 WHERE id = 3'); COMMIT;")
	  . ' ' . bal(2) . ' ' . bal(3),
	"1\n100\n1 101 101", 'in one transaction, two roles have two remote transactions on a node, committed together');
is($p1->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0', 'and nothing is left prepared');

# a PREPARE runs as the conninfo's user (alice), not as a role the
# statements set: recovery, connected as alice, may finish it (p1 is no
# longer registered as a superuser's node from here on, which recovery
# would use to finish anything on that server)
c("SELECT distsys.node_remove('p1'); SELECT distsys.node_remove('p1_bob')");
my $p2 = bank_participant($coord, 'p2', 10, 100);
$coord->psql('postgres', "SET distsys.dtx_fault = crash_after_decision;
	BEGIN; INSERT INTO ledger VALUES (1);
	SELECT distsys.dtx_exec('p1_alice', 'SET ROLE bob; UPDATE acct SET bal = bal + 1 WHERE id = 4');
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 4'); COMMIT;");
wait_accepting($coord) or die 'coordinator did not come back';
is($p1->safe_psql('postgres', "SELECT string_agg(owner, ',') FROM pg_prepared_xacts"),
	'alice', 'killed after its decision: the part run after SET ROLE bob is prepared as alice');
is(c('SELECT distsys.dtx_recover()') . ' ' . bal(4) . ' '
	  . $p2->safe_psql('postgres', 'SELECT bal FROM acct WHERE id = 4'), '2 101 101', 'and recovery commits it');

# --- a statement that ends the remote transaction and begins another -------
sub c_err
{
	my ($ret, $out, $err) = $coord->psql('postgres', $_[0], extra_params => ['-v', 'VERBOSITY=verbose']);
	return $ret == 0 ? "(no error; output: $out)" : $err;
}
sub p2_bal { return $p2->safe_psql('postgres', "SELECT bal FROM acct WHERE id = $_[0]"); }
for my $end ('COMMIT; BEGIN', "PREPARE TRANSACTION ''by_hand''; BEGIN")
{
	(my $shown = $end) =~ s/''/'/g;
	like(c_err("BEGIN; SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 6; $end');
		SELECT distsys.dtx_exec('p1_alice', 'UPDATE acct SET bal = bal + 1 WHERE id = 6'); COMMIT;"),
		qr/ERROR:  2D000: the statement ended the remote transaction on node "p2"/,
		"\"$shown\" in a node's first statement fails the transaction");
	$p2->safe_psql('postgres', "ROLLBACK PREPARED 'by_hand'") if $end =~ /PREPARE/;
	like(c_err("BEGIN; SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 7');
		SELECT distsys.dtx_exec('p2', '$end'); COMMIT;"),
		qr/ERROR:  2D000: the statement ended the remote transaction on node "p2"/,
		"\"$shown\" after the node wrote fails the transaction");
	$p2->safe_psql('postgres', "ROLLBACK PREPARED 'by_hand'") if $end =~ /PREPARE/;
}
is(bal(6), '100', 'the other node was rolled back');
like(c_err("BEGIN; SELECT distsys.dtx_exec('p2', 'RESET ALL'); COMMIT;"),
	qr/ERROR:  2D000: the statement ended the remote transaction on node "p2"\nDETAIL:  .*reset the settings distsys gave it/,
	'a RESET ALL, which drops the mark of the remote transaction (and its lock_timeout), is refused the same way');
is(c("BEGIN; SELECT distsys.dtx_exec('p2',
		'SAVEPOINT mine; UPDATE acct SET bal = 0 WHERE id = 8; ROLLBACK TO SAVEPOINT mine; RELEASE mine');
	COMMIT;") . ' ' . p2_bal(8), '0 100', 'the statements\' own savepoints are theirs to roll back');

# --- distsys's own statements on a node ignore the node role's search_path --
# alice's search_path puts a schema of hers ahead of pg_catalog, with an
# operator (or a type) of every signature distsys's statements use; each
# WARNINGs when it runs, and the warning reaches the coordinator's client
my $traps = join "\n", map {
	my ($i, $op, $l, $r) = ($_, @{ (['=', 'text', 'text'], ['<>', 'text', 'text'], ['~~', 'text', 'text'],
		['=', 'name', 'name'], ['=', 'oid', 'oid'], ['=', 'bigint', 'bigint'], ['=', 'bigint', 'integer'])[$_] });
	"CREATE FUNCTION trap.f$i($l, $r) RETURNS boolean LANGUAGE plpgsql AS
	   \$\$ BEGIN RAISE WARNING 'trap: $op'; RETURN \$1 OPERATOR(pg_catalog.$op) \$2; END \$\$;
	 CREATE OPERATOR trap.$op (LEFTARG = $l, RIGHTARG = $r, FUNCTION = trap.f$i);"
} 0 .. 6;
$p1->safe_psql('postgres', "CREATE SCHEMA trap AUTHORIZATION alice; SET ROLE alice; $traps
	CREATE FUNCTION trap.fire() RETURNS boolean LANGUAGE plpgsql AS
	  \$\$ BEGIN RAISE WARNING 'trap: xid8'; RETURN true; END \$\$;
	CREATE DOMAIN trap.xid8 AS text CHECK (trap.fire());
	ALTER ROLE alice SET search_path = trap, pg_catalog, public;");
# c_warn(SQL): what the coordinator's psql printed on stderr
sub c_warn { my ($ret, $out, $err) = $coord->psql('postgres', $_[0]); return $err; }
like(c_warn("SELECT distsys.dtx_query('p1_alice', 'SELECT ''a''::text = ''b''::text AS eq')"),
	qr/WARNING:  node "p1_alice": trap: =/, "the user's statements run with the node role's search_path");
my $transfer = "BEGIN; SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 9');
	SELECT distsys.dtx_exec('p1_alice', 'UPDATE acct SET bal = bal - 1 WHERE id = 9'); COMMIT;";
my $marks_sql = 'SELECT count(*) FROM distsys.dtx_marks';
my $marks = $p1->safe_psql('postgres', $marks_sql);
my $warnings = c_warn($transfer);
is($p1->safe_psql('postgres', $marks_sql) - $marks . ' ' . bal(9), '1 99',
	'a transaction decided by p1_alice as its last agent commits');
$coord->psql('postgres', "SET distsys.dtx_fault = crash_after_some_prepares; $transfer");
$coord->poll_query_until('postgres', "SELECT count(*) = 1 FROM distsys.dtx_in_doubt WHERE outcome = 'aborted'")
	or die 'p1_alice did not roll back';
$warnings .= c_warn('SELECT count(*) FROM distsys.dtx_in_doubt; SELECT distsys.dtx_recover(); SELECT distsys.dtx_recover()');
is($p2->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') . ' ' . bal(9), '0 99',
	'killed before its decision: recovery asks p1_alice and rolls it back');
unlike($warnings, qr/trap/, "distsys's own statements there (slot check, probe, mark, listing, recovery) never ran them");

# --- marks belong to the role that wrote them --------------------------------
$p1->safe_psql('postgres', 'CREATE ROLE mallory LOGIN; GRANT distsys_dtx_user TO mallory');
sub marks_of { return $p1->safe_psql('postgres', "SELECT count(*) FROM distsys.dtx_marks WHERE writer = '$_[0]'::regrole"); }
my $alice_marks = marks_of('alice');
cmp_ok($alice_marks, '>', 0, 'the marks p1_alice keeps as last agent are written by alice');
# as_mallory(SQL): run SQL on p1 as mallory (another member of distsys_dtx_user); its stderr
sub as_mallory { my ($ret, $out, $err) = $p1->psql('postgres', $_[0], extra_params => ['-U', 'mallory']); return $err; }
as_mallory('DELETE FROM distsys.dtx_marks');
is(marks_of('alice'), $alice_marks, 'another role cannot delete them');
my ($sysid, $dboid) = split /\|/, c("SELECT system_identifier, (SELECT oid FROM pg_database
	WHERE datname = current_database()) FROM pg_control_system()");
like(as_mallory("INSERT INTO distsys.dtx_marks (id, coordinator, writer) VALUES (777, '$sysid:$dboid', 'alice')"),
	qr/new row violates row-level security policy/, 'nor write one in their name');
# a transaction prepared on p2 whose deciding node is p1_alice, and whose
# xid there ended without a commit: only a mark alice wrote would commit it
my $ended_xid = $p1->safe_psql('postgres', 'BEGIN; SELECT pg_current_xact_id(); ROLLBACK');
is(as_mallory("INSERT INTO distsys.dtx_marks (id, coordinator) VALUES (777, '$sysid:$dboid')"), '',
	'another role may write a mark naming this coordinator in its own name');
$p2->safe_psql('postgres', "BEGIN; UPDATE acct SET bal = bal + 1000 WHERE id = 10;
	PREPARE TRANSACTION 'distsys:$sysid:$dboid:0:777:1:$ended_xid:p1_alice'");
is(c("SELECT outcome || ' ' || decider FROM distsys.dtx_in_doubt"), 'aborted p1_alice',
	'but recovery does not believe it');
is(c('SELECT distsys.dtx_recover()') . ' ' . p2_bal(10), '1 100', 'and rolls the transaction back');
c('SELECT distsys.dtx_recover(); SELECT distsys.dtx_recover(); SELECT distsys.dtx_recover()');
is(marks_of('alice') . ' ' . marks_of('mallory'), '0 1', 'recovery forgets alice\'s marks, and only hers');

# a table distsys.dtx_marks that is not the extension's (p2 has no distsys;
# a role made the schema) is not trusted with a mark: p2, used last, does
# not decide the transaction, p1_alice does
$p2->safe_psql('postgres', 'CREATE SCHEMA distsys; CREATE TABLE distsys.dtx_marks (id bigint,
	coordinator text, writer regrole DEFAULT current_user::regrole, marked_at timestamptz DEFAULT now())');
$alice_marks = marks_of('alice');
c("BEGIN; SELECT distsys.dtx_exec('p1_alice', 'UPDATE acct SET bal = bal + 1 WHERE id = 10');
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal - 1 WHERE id = 10'); COMMIT;");
is($p2->safe_psql('postgres', 'SELECT count(*) FROM distsys.dtx_marks') . ' ' . (marks_of('alice') - $alice_marks),
	'0 1', 'a dtx_marks table that is not the extension\'s does not make its node a last agent');
$p2->safe_psql('postgres', 'DROP SCHEMA distsys CASCADE');

# --- distsys's cluster-wide roles ---------------------------------------------
# create_extension(DB): CREATE EXTENSION distsys on p2; its stderr
sub create_extension { my ($ret, $out, $err) = $p2->psql($_[0], 'CREATE EXTENSION distsys'); return $err; }
$p2->safe_psql('postgres', 'CREATE ROLE distsys_dtx_user LOGIN');
like(create_extension('postgres'), qr/role "distsys_dtx_user" already exists and is not one distsys created/,
	'CREATE EXTENSION refuses a role of that name that it did not create');
$p2->safe_psql('postgres', 'DROP ROLE distsys_dtx_user; CREATE ROLE distsys_lock_admin NOLOGIN');
like(create_extension('postgres'), qr/role "distsys_lock_admin" already exists and is not one distsys created/,
	'even a NOLOGIN one');
$p2->safe_psql('postgres', 'DROP ROLE distsys_lock_admin');
is(create_extension('postgres'), '', 'without them, it creates them');
$p2->safe_psql('postgres', 'CREATE DATABASE db2; CREATE DATABASE db3');
is(create_extension('db2'), '', 'and CREATE EXTENSION in another database adopts them');
$p2->safe_psql('postgres', 'ALTER ROLE distsys_dtx_user LOGIN');
like(create_extension('db3'), qr/role "distsys_dtx_user" already exists and is not one distsys created/,
	'unless one of them was since allowed to log in');

done_testing();
