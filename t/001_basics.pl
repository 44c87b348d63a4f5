# The extension without shared_preload_libraries: it installs and answers,
# and every function that needs shared memory says exactly what to fix.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION distsys');
is($node->safe_psql('postgres', 'SELECT distsys.version()'), '1.0.0',
	'version() answers without preloading');

for my $call ("distsys.dlock_try('x')", "distsys.dlock_release('x')",
	"distsys.dlock_acquire('x')", "(SELECT count(*) FROM distsys.dlocks)")
{
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT $call",
		on_error_stop => 0);
	like($err, qr/55000: distributed locks requires distsys to be loaded via shared_preload_libraries/,
		"$call: clear error with SQLSTATE 55000");
	like($err, qr/HINT:  Add distsys to shared_preload_libraries in postgresql.conf and restart the server/,
		"$call: hint says how to fix it");
}

# With preloading, the same calls work, and the expiry worker runs.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'distsys'");
$node->restart;
ok($node->safe_psql('postgres', "SELECT distsys.dlock_try('x') > 0") eq 't',
	'dlock_try works once preloaded');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'distsys lock expiry worker'"),
	'the lock expiry worker is running');

$node->stop;
done_testing();
