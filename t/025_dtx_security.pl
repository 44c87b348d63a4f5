# Who may do what through distsys's 2PC connections (issue 14).
#  - A role that is not a superuser connects to a node only with a password
#    from the node's conninfo that the node asked for: never on the
#    coordinator server's own credentials (trust here), postgres_fdw's rule.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest qw(:DEFAULT slurp);

my $coord = distsys_node('coord', 'distsys.dtx_recovery_interval = 0');
my $p1 = PostgreSQL::Test::Cluster->new('p1');
$p1->init;
$p1->start;
$p1->safe_psql('postgres', q{
	CREATE EXTENSION distsys;
	CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
	CREATE ROLE bob LOGIN PASSWORD 'bob-pw';
	GRANT distsys_dtx_user TO alice;
	CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL);
	INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g;
	GRANT ALL ON acct TO alice});
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
   CREATE ROLE app LOGIN; GRANT distsys_dtx_user TO app;");
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

done_testing();
