# Errors on the coordinator while it holds a node's answer: a remote value
# that jsonb refuses fails dtx_query with a clear error, and the connection
# and the transaction stay usable (in an exception block, the rest of the
# transaction commits); many such failures in one backend do not grow its
# memory (libpq's results are freed on every error path).  Also: what stops
# dtx_recover() and dtx_in_doubt: this backend's own lock_timeout does, a
# node's lock_timeout or statement_timeout (a remote error with the same
# SQLSTATE) is only that node's failure.  A node that answers with results
# of the wrong shape is reported (08P01) instead of crashing the
# coordinator.
use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $coord = distsys_node('coord', 'distsys.dtx_recovery_interval = 0');
my $p1 = bank_participant($coord, 'p1', 10, 100);

sub c { return $coord->safe_psql('postgres', $_[0]); }
sub bal { return $p1->safe_psql('postgres', "SELECT bal FROM acct WHERE id = $_[0]"); }

# c_err(SQL): what the coordinator's psql printed on stderr (verbose)
sub c_err
{
	my ($ret, $out, $err) = $coord->psql('postgres', $_[0], extra_params => ['-v', 'VERBOSITY=verbose']);
	return $err;
}

# a json value holding \u0000 is valid json, but jsonb refuses it
my $bad = q{SELECT 1 AS n, '"\u0000"'::json AS bad};

# --- the error and what is usable afterwards ---------------------------------
like(c_err("SELECT * FROM distsys.dtx_query('p1', \$\$$bad\$\$)"),
	qr/ERROR:  22P05: unsupported Unicode escape sequence.*row 1 of the result of node "p1"/s,
	'a remote value jsonb refuses: its SQLSTATE, and the node named');

my $session = bg_session($coord, on_error_stop => 0);
my $remote_pid_sql = "SELECT distsys.dtx_query('p1', 'SELECT pg_backend_pid() AS pid')->>'pid'";
my $remote_pid = $session->query_safe($remote_pid_sql);
$session->query("SELECT * FROM distsys.dtx_query('p1', \$\$$bad\$\$)");
like($session->{stderr}, qr/unsupported Unicode escape sequence/, 'the session got the error');
$session->{stderr} = '';
is($session->query_safe($remote_pid_sql), $remote_pid, 'the next transaction uses the same connection to the node');
is($session->query_safe("SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 1')")
	  . ' ' . bal(1), '1 101', 'and commits there');

is(c("DO \$\$ BEGIN
		PERFORM distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 1 WHERE id = 2');
		BEGIN
			PERFORM distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 100 WHERE id = 2');
			PERFORM * FROM distsys.dtx_query('p1', \$q\$$bad\$q\$);
		EXCEPTION WHEN untranslatable_character THEN
			RAISE NOTICE 'caught';
		END;
		PERFORM distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal + 10 WHERE id = 2');
	END \$\$; SELECT 'done'") . ' ' . bal(2), 'done 111',
	'caught in an exception block: the node is rolled back to the savepoint, the rest commits');

# --- no memory grows with the failures ---------------------------------------
# Each failing call leaves a result of about 64 kB if it is not freed: 2000
# of them grow the backend's anonymous memory by well over 100 MB.  Freed,
# the same blocks are reused and it stays flat.
c("CREATE FUNCTION anon_kb() RETURNS bigint LANGUAGE sql AS
	\$\$SELECT (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\\s+(\\d+)'))[1]::bigint\$\$");
my $fail_many = sub {
	my ($n) = @_;
	return "DO \$\$ BEGIN
		FOR i IN 1..$n LOOP
			BEGIN
				PERFORM * FROM distsys.dtx_query('p1',
					\$q\$SELECT repeat('x', 64000) AS pad, '\"\\u0000\"'::json AS bad\$q\$);
			EXCEPTION WHEN untranslatable_character THEN
				NULL;
			END;
		END LOOP;
	END \$\$;";
};
my $growth_kb = c($fail_many->(50)
	  . "CREATE TEMP TABLE mem0 AS SELECT anon_kb() AS kb;"
	  . $fail_many->(2000)
	  . "SELECT anon_kb() - kb FROM mem0;");
cmp_ok($growth_kb, '<', 30000, "2000 failed dtx_query calls in one backend: its memory grew by $growth_kb kB");

# --- recovery: our own lock_timeout stops it, a node's does not ---------------
# prepare_ours(ID): a prepared transaction on p1 with a GID of this
# coordinator, decided by the coordinator (no decision row: recovery rolls
# it back); dtx_in_doubt and recovery read dtx_decisions for it
my ($sysid, $dboid) = split /\|/, c("SELECT system_identifier, (SELECT oid FROM pg_database
	WHERE datname = current_database()) FROM pg_control_system()");
sub prepare_ours
{
	$p1->safe_psql('postgres', "BEGIN; UPDATE acct SET bal = bal WHERE id = 3;
		PREPARE TRANSACTION 'distsys:$sysid:$dboid:1:$_[0]:1'");
}
prepare_ours(42);
my $holder = bg_session($coord);
$holder->query_safe('BEGIN; LOCK TABLE distsys.dtx_decisions');
my $err = c_err("SET lock_timeout = '200ms'; SELECT count(*) FROM distsys.dtx_in_doubt");
like($err, qr/ERROR:  55P03: canceling statement due to lock timeout/,
	'this backend\'s lock_timeout stops dtx_in_doubt with its error');
unlike($err, qr/could not reach node/, 'instead of being reported as a failure of the node');
$holder->query_safe('COMMIT');

# a node's own lock_timeout and statement_timeout (in its conninfo here),
# hit while recovery reads its dtx_marks, are that node's failure: a
# WARNING, and the pass goes on
$p1->safe_psql('postgres', 'CREATE EXTENSION distsys');
my $p1_holder = bg_session($p1);
$p1_holder->query_safe('BEGIN; LOCK TABLE distsys.dtx_marks');
my $p1_conn = $p1->connstr('postgres');
for my $limit ('lock_timeout', 'statement_timeout')
{
	my $code = $limit eq 'lock_timeout' ? '55P03' : '57014';
	c("SELECT distsys.node_add('p1', \$\$$p1_conn options='-c $limit=200'\$\$, force => true)");
	prepare_ours(43) if $limit eq 'statement_timeout';
	my ($ret, $out, $err) = $coord->psql('postgres', 'SELECT distsys.dtx_recover()',
		extra_params => ['-v', 'VERBOSITY=verbose']);
	is($ret . ' ' . $out, '0 1', "a node's $limit: dtx_recover() goes on and resolves what it listed");
	like($err, qr/WARNING:  $code: could not reach node "p1" for distributed transaction recovery/,
		"and reports the node's $code as that node's failure");
}
$p1_holder->query_safe('COMMIT');
$p1_holder->quit;
c("SELECT distsys.node_add('p1', \$\$$p1_conn\$\$, force => true)");

# --- a node that answers with results of the wrong shape ---------------------
# A fake server that speaks the protocol and answers every query with one
# int4 column and no row: the coordinator reports it (08P01) instead of
# reading a row that is not there.
my $fake = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 0,
	Proto => 'tcp', ReuseAddr => 1) or die "listen: $!";
my $fake_port = $fake->sockport;
my $fake_pid = fork() // die "fork: $!";
if ($fake_pid == 0)
{
	# its own process group, killed at the end; it must not run the test's
	# END blocks (they stop the nodes) nor hold the test's output open
	setpgrp(0, 0);
	open(STDOUT, '>', '/dev/null');
	open(STDERR, '>', '/dev/null');
	$SIG{CHLD} = 'IGNORE';
	while (my $client = $fake->accept)
	{
		my $pid = fork();
		if (defined $pid && $pid == 0)
		{
			fake_session($client);
			POSIX::_exit(0);
		}
		close $client;
	}
	POSIX::_exit(0);
}
close $fake;
# also when the test dies before the end
END { kill 'KILL', -$fake_pid if $fake_pid; }
c("SELECT distsys.node_add('fake', 'host=127.0.0.1 port=" . $fake_port
	  . " dbname=postgres sslmode=disable gssencmode=disable')");
like(c_err("SELECT distsys.dtx_exec('fake', 'SELECT 1')"),
	qr/ERROR:  08P01: unexpected result from node "fake"\nDETAIL:  Expected one row of 5 columns, got 0 rows of 1 columns/,
	'a node answering with no row where one is expected: 08P01 naming it');
my ($fret, $fout, $ferr) = $coord->psql('postgres', 'SELECT distsys.dtx_recover()',
	extra_params => ['-v', 'VERBOSITY=verbose']);
is($fret . ' ' . $fout, '0 0', 'recovery goes on past such a node');
like($ferr, qr/WARNING:  08P01: could not reach node "fake" for distributed transaction recovery: unexpected result/,
	'and reports it');
c("SELECT distsys.node_remove('fake', force => true)");
kill 'KILL', -$fake_pid;
waitpid($fake_pid, 0);
$fake_pid = undef;

$holder->quit;
$session->quit;
done_testing();

# fake_session(SOCKET): a minimal PostgreSQL server on one connection: no
# authentication, every simple query answered with an empty result of one
# int4 column.
sub fake_session
{
	my ($c) = @_;
	my $read = sub {
		my ($n) = @_;
		my $buf = '';
		while (length($buf) < $n)
		{
			my $got = sysread($c, $buf, $n - length($buf), length($buf));
			return undef unless $got;
		}
		return $buf;
	};
	my $msg = sub { return $_[0] . pack('N', length($_[1]) + 4) . $_[1]; };
	# SSL and GSS encryption requests are refused; then the startup packet
	for (;;)
	{
		my $len = $read->(4) // return;
		my $body = $read->(unpack('N', $len) - 4) // return;
		my $code = unpack('N', $body);
		last unless $code == 80877103 || $code == 80877104;
		syswrite($c, 'N');
	}
	syswrite($c, $msg->('R', pack('N', 0))
		  . $msg->('S', "server_version\0" . "15.0\0")
		  . $msg->('S', "client_encoding\0" . "UTF8\0")
		  . $msg->('S', "standard_conforming_strings\0" . "on\0")
		  . $msg->('K', pack('NN', $$, 1))
		  . $msg->('Z', 'I'));
	for (;;)
	{
		my $type = $read->(1) // return;
		my $len = $read->(4) // return;
		$read->(unpack('N', $len) - 4) // return;
		return if $type eq 'X';
		next unless $type eq 'Q';
		syswrite($c, $msg->('T', pack('n', 1) . "x\0" . pack('NnNnNn', 0, 0, 23, 4, 0xFFFFFFFF, 0))
			  . $msg->('C', "SELECT 0\0")
			  . $msg->('Z', 'I'));
	}
}
