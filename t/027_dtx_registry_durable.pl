# A change of the node registry is durable before it commits, whatever
# synchronous_commit says: backends use a committed change at once (a
# last-agent transaction may make the re-pointed node its deciding node),
# so a crash must not bring the old connection string back.  The
# coordinator runs at synchronous_commit = off with a 10 s WAL writer
# delay, so an asynchronous commit would still be unflushed when the
# postmaster is killed right after it.  The nodes name hosts that do not
# exist, so moving them is forced (the check for work left on a node would
# have to reach it).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $coord = distsys_node('coord',
	"restart_after_crash = on\ndistsys.dtx_recovery_interval = 0\n"
	  . "synchronous_commit = off\nwal_writer_delay = 10s");

sub c { return $coord->safe_psql('postgres', $_[0]); }

# repointed(HOW, SQL, EXPECT): after SQL changes the registry and the
# postmaster is killed at once, the registry lists EXPECT (name=conninfo)
sub repointed
{
	my ($how, $sql, $expect) = @_;
	c($sql);
	crash_postmaster($coord);
	is(c("SELECT coalesce(string_agg(name || '=' || conninfo, ',' ORDER BY name), '') FROM distsys.node_registry"),
		$expect, "$how survives a crash at synchronous_commit = off");
}

c("SELECT distsys.node_add('p2', 'host=old.invalid dbname=postgres')");
c('CHECKPOINT');
repointed('node_add re-pointing a node',
	"SELECT distsys.node_add('p2', 'host=new.invalid dbname=postgres', force => true)",
	'p2=host=new.invalid dbname=postgres');
repointed('node_add of a new node',
	"SELECT distsys.node_add('p3', 'host=p3.invalid dbname=postgres')",
	'p2=host=new.invalid dbname=postgres,p3=host=p3.invalid dbname=postgres');
repointed('node_remove',
	"SELECT distsys.node_remove('p3', force => true)",
	'p2=host=new.invalid dbname=postgres');
repointed('a plain UPDATE',
	"UPDATE distsys.node_registry SET conninfo = 'host=sql.invalid dbname=postgres' WHERE name = 'p2'",
	'p2=host=sql.invalid dbname=postgres');
repointed('node_add under session_replication_role = replica (no ordinary trigger fires)',
	"SET session_replication_role = replica; SELECT distsys.node_add('p2', 'host=replica.invalid dbname=postgres', force => true)",
	'p2=host=replica.invalid dbname=postgres');
repointed('a plain UPDATE under session_replication_role = replica',
	"SET session_replication_role = replica; UPDATE distsys.node_registry SET conninfo = 'host=sqlr.invalid dbname=postgres' WHERE name = 'p2'",
	'p2=host=sqlr.invalid dbname=postgres');

$coord->stop;
done_testing();
