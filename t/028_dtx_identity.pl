# A last agent's GID names the server that decided it (system identifier
# and database oid), not only its node's name, so a registry that points
# the name at another server (restored, or re-pointed by force) cannot
# make recovery read the outcome there: issue 15 item 5.  The schedule:
# p2 decides a transfer as its last agent, the coordinator dies before
# COMMIT PREPARED reaches p1, and p2's registry entry is then pointed at
# another cluster, which has no mark.  Recovery must leave p1 prepared
# with a WARNING (before, it rolled back a committed transfer), and commit
# it once the registry is put right.  p2's conninfo logs in as an ordinary
# role: recovery reads the server's identity as that role.
#
# Also: node_add and node_remove under session_replication_role = replica,
# where ordinary triggers do not fire, still reach the backends' cached
# connection strings.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $coord = distsys_node('coord', "restart_after_crash = on\ndistsys.dtx_recovery_interval = 0");
my $p1 = bank_participant($coord, 'p1', 10, 100);
my ($p2, $other) = map { distsys_node($_) } qw(p2 other);
for my $n ($p2, $other)
{
	$n->safe_psql('postgres', "CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL);
		INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g;
		CREATE ROLE agent LOGIN; GRANT distsys_dtx_user TO agent; GRANT UPDATE, SELECT ON acct TO agent;");
}
my %conn = map { $_->name => $_->connstr('postgres') . ' user=agent' } $p2, $other;

sub c { return $coord->safe_psql('postgres', $_[0]); }
# c_err(SQL): what the coordinator's psql printed on stderr
sub c_err { my ($ret, $out, $err) = $coord->psql('postgres', $_[0]); return $err; }
sub bal { return $_[0]->safe_psql('postgres', "SELECT bal FROM acct WHERE id = $_[1]"); }
sub prepared { return $_[0]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'); }
# point(NODE, NAME): point the registry's NODE at server NAME with plain SQL,
# as a restored registry would (node_add would refuse: recovery needs it)
sub point { c("UPDATE distsys.node_registry SET conninfo = \$\$$conn{$_[1]}\$\$ WHERE name = '$_[0]'"); }

c("SELECT distsys.node_add('p2', \$\$$conn{p2}\$\$)");
is($p2->safe_psql('postgres', "SET ROLE agent; SELECT system_identifier > 0 FROM pg_control_system()"), 't',
	'an ordinary role may read the system identifier recovery compares');

# in_doubt_transfer(ID): a transfer of 7 on account ID, p1 then p2: p2,
# used last, decides as last agent; the coordinator is killed after that
# decision, before COMMIT PREPARED reaches p1.  Returns p1's GID.
sub in_doubt_transfer
{
	my ($id) = @_;
	$coord->psql('postgres', "SET distsys.dtx_fault = crash_after_decision; BEGIN;
		SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 7 WHERE id = $id');
		SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 7 WHERE id = $id');
		COMMIT;");
	wait_accepting($coord) or die 'coordinator did not come back';
	return $p1->safe_psql('postgres', 'SELECT gid FROM pg_prepared_xacts');
}

my $gid = in_doubt_transfer(1);
is(bal($p2, 1) . ' ' . prepared($p1), '107 1', 'p2 committed its part as last agent, p1 is left prepared');
my $p2_server = $p2->safe_psql('postgres', "SELECT lpad(to_hex(system_identifier), 16, '0')
	|| lpad(to_hex((SELECT oid FROM pg_database WHERE datname = current_database())::bigint), 8, '0')
	FROM pg_control_system()");
like($gid, qr/:\Q$p2_server\E:p2$/, 'p1\'s GID names p2\'s server (system identifier and database oid)');

# p2's entry now reaches another cluster, which has no mark of it
point('p2', 'other');
my $err = c_err('SELECT distsys.dtx_recover()');
my ($p2_sysid, $other_sysid) = map { $_->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()') } $p2, $other;
like($err, qr/WARNING:  node "p2" does not reach the server that decided prepared transaction "\Q$gid\E"/,
	'recovery warns that the node reaches another server than the one that decided');
like($err, qr/DETAIL:  It was decided on system identifier $p2_sysid, database oid \d+; node "p2" now reaches system identifier $other_sysid, database oid \d+/,
	'naming both servers');
like($err, qr/HINT:  Point node "p2" back at the server that decided it.*COMMIT PREPARED.*ROLLBACK PREPARED/,
	'with what the operator can do');
is(prepared($p1) . ' ' . bal($p1, 1), '1 100', 'and leaves p1 prepared instead of rolling it back');
is(c("SELECT outcome || ' ' || decider FROM distsys.dtx_in_doubt"), 'unknown p2',
	'dtx_in_doubt shows its outcome as unknown');

# the registry put right: recovery reads p2's mark and commits p1
point('p2', 'p2');
is(c('SELECT distsys.dtx_recover()'), '1', 'once p2 is named again, recovery resolves it');
is(bal($p1, 1) . ' ' . bal($p2, 1) . ' ' . prepared($p1), '93 107 0', 'and the transfer is committed on both');

# another server that holds the mark (a copy of p2, as a restored dump of
# it would be): the mark proves the commit wherever it is
$gid = in_doubt_transfer(2);
my ($id) = $gid =~ /^distsys:\d+:\d+:\d+:(\d+):/;
my $coordinator = c("SELECT system_identifier || ':' || (SELECT oid FROM pg_database
	WHERE datname = current_database()) FROM pg_control_system()");
$other->safe_psql('postgres', "SET ROLE agent;
	INSERT INTO distsys.dtx_marks (id, coordinator) VALUES ($id, '$coordinator')");
point('p2', 'other');
$err = c_err('SELECT distsys.dtx_recover()');
is(bal($p1, 2) . ' ' . prepared($p1) . ' ' . ($err =~ /WARNING/ ? 'warned' : 'quiet'), '93 0 quiet',
	'a mark on the server the node now reaches commits the transaction');
point('p2', 'p2');

# a node whose role may not read its system identifier is never a last
# agent, and recovery does not judge by it
$gid = in_doubt_transfer(3);
$p2->safe_psql('postgres', 'REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC');
$err = c_err('SELECT distsys.dtx_recover()');
like($err, qr/WARNING:  could not reach node "p2" for distributed transaction recovery: node "p2" does not let recovery read its system identifier/,
	'without pg_control_system(), recovery warns');
is(prepared($p1), '1', 'and leaves the transaction prepared');
my $decisions = c('SELECT count(*) FROM distsys.dtx_decisions');
c("BEGIN; SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = 4');
	SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 4'); COMMIT;");
is(c('SELECT count(*) FROM distsys.dtx_decisions') - $decisions, 1,
	'and a transaction whose last writer is that node is decided by the coordinator');
$p2->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC');
c('SELECT distsys.dtx_recover()');
is(bal($p1, 3) . ' ' . bal($p2, 3) . ' ' . prepared($p1), '93 107 0', 'with it back, recovery commits the transaction');

# --- registry changes under session_replication_role = replica -----------
my $bg = bg_session($coord, on_error_stop => 0);
my $port_sql = "SELECT distsys.dtx_query('p2', 'SELECT current_setting(''port'') AS port')->>'port'";
my %port = map { $_->name => $_->port } $p2, $other;
# under_replica(SQL, TO, WHAT): with p2 pointed at the other server than TO
# and cached there by $bg, SQL (which points p2 at TO) under
# session_replication_role = replica reaches $bg's cached string
sub under_replica
{
	my ($sql, $to, $what) = @_;
	my $from = $to eq 'p2' ? 'other' : 'p2';
	c("SELECT distsys.node_add('p2', \$\$$conn{$from}\$\$)");
	is($bg->query_safe($port_sql), $port{$from}, "a backend caches p2's connection string ($what)");
	c("SET session_replication_role = replica; $sql");
	is($bg->query_safe($port_sql), $port{$to}, "$what under session_replication_role = replica reaches it");
}
under_replica("SELECT distsys.node_add('p2', \$\$$conn{other}\$\$)", 'other', 'node_add');
under_replica("UPDATE distsys.node_registry SET conninfo = \$\$$conn{other}\$\$ WHERE name = 'p2'", 'other', 'a plain UPDATE');
c("SET session_replication_role = replica; SELECT distsys.node_remove('p2')");
$bg->query($port_sql);
like($bg->{stderr}, qr/node "p2" is not registered/, 'and so does node_remove');
$bg->quit;

done_testing();
