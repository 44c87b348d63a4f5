# Distributed transactions with a participant behind distsys-netem, the
# network emulator, so that a message to it takes seconds: recovery run
# while a backend is still committing a transaction it decided (its
# decision row visible, its COMMIT PREPARED to p2 on the way) leaves that
# transaction to the backend, as the design says, instead of committing
# p2's part under it; the client's COMMIT then ends without a WARNING.
# (Before: recovery committed it first, and the backend's own COMMIT
# PREPARED, finding the GID busy or gone, could warn its client that the
# outcome of its committed transaction was unknown: seen in
# bench/run-dtx.sh --matrix.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use NetemTest;
use IPC::Run;

my $coord = distsys_node('coord', 'distsys.dtx_recovery_interval = 0');
my $p1 = bank_participant($coord, 'p1', 10, 100);
my $p2 = bank_participant($coord, 'p2', 10, 100, "listen_addresses = '127.0.0.1'");
my $m = NetemTest::start_netem('dtx_netem', { p2 => $p2->port });
$coord->safe_psql('postgres',
	"SELECT distsys.node_add('p2', 'host=127.0.0.1 port=$m->{ports}{p2} dbname=postgres')");

sub c { return $coord->safe_psql('postgres', $_[0]); }
sub prepared { return $_[0]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'); }

# every message to and from p2 now takes 2 s: the decided transfer's COMMIT
# PREPARED reaches p2 2 s after its decision row is visible
netem_command($m, 'delay p2 2000');
my $bg = IPC::Run::start(['psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d', $coord->connstr('postgres'),
	'-c', "SET distsys.dtx_last_agent = off; BEGIN;
		SELECT distsys.dtx_exec('p1', 'UPDATE acct SET bal = bal - 1 WHERE id = 1');
		SELECT distsys.dtx_exec('p2', 'UPDATE acct SET bal = bal + 1 WHERE id = 1');
		COMMIT;"], '<', \undef, '>', \my $bg_out, '2>', \my $bg_err);
$coord->poll_query_until('postgres', 'SELECT count(*) = 1 FROM distsys.dtx_decisions')
	or die 'the transfer was not decided';
# new connections to p2 are quick again; the backend's are still held
netem_command($m, 'delay p2 0');
is(prepared($p2), '1', 'decided, p2 is still prepared: its COMMIT PREPARED is on the way');
is(c('SELECT distsys.dtx_recover()'), '0',
	'recovery leaves a transaction its backend is committing alone, even with its decision visible');
is(prepared($p2), '1', 'so p2 stays prepared until the backend\'s COMMIT PREPARED arrives');

$bg->finish;
is($bg_err, '', 'the client\'s COMMIT ends without a WARNING');
is($p1->safe_psql('postgres', 'SELECT bal FROM acct WHERE id = 1') . ' '
	  . $p2->safe_psql('postgres', 'SELECT bal FROM acct WHERE id = 1'),
	'99 101', 'the transfer is applied on both nodes');
is(prepared($p1) + prepared($p2), 0, 'nothing is left prepared');
is(c('SELECT distsys.dtx_recover()'), '0', 'and recovery finds nothing to resolve');

is(netem_stop($m), 0, 'distsys-netem stops cleanly');
done_testing();
