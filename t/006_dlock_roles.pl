# An application-owned grant belongs to the role that took it, also after a
# clean restart and after a crash: the role is reloaded from dlock_leases
# with the grant, so the owner string still gives another role nothing
# (no re-entry, release, renewal or fence) and the grant's own role still
# re-enters it with its token.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $node = distsys_node('roles', 'restart_after_crash = on');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# sql_as(ROLE, SQL): SQL's output when run as ROLE.
sub sql_as { return sql("SET ROLE $_[0]; $_[1]"); }

sql('CREATE ROLE alice; CREATE ROLE bob;');
my $t_job = sql_as('alice', "SELECT distsys.dlock_try('job', '1 hour', 'svc')");
sql_as('alice', "SELECT distsys.dlock_try('job', '1 hour', 'svc')");	# depth 2
my $t_cfg = sql_as('bob', "SELECT distsys.dlock_try('cfg', '1 hour', 'reader', 'shared')");

# check(WHEN): the grants are still their roles' alone.
sub check
{
	my ($when) = @_;

	is(sql_as('bob', "SELECT distsys.dlock_try('job', '1 hour', 'svc') IS NULL"), 't',
		"$when: another role cannot re-enter under the owner string");
	is(sql_as('bob', "SELECT distsys.dlock_release('job', 'svc')"), 'f',
		"$when: nor release the grant");
	is(sql_as('bob', "SELECT distsys.dlock_renew('job', '2 hours', 'svc')"), 'f',
		"$when: nor renew it");
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET ROLE bob; BEGIN; SELECT distsys.dlock_assert('job', $t_job);");
	like($err, qr/permission denied to assert lock "job"/, "$when: nor fence it");
	is(sql_as('alice', "SELECT distsys.dlock_release('cfg', 'reader')"), 'f',
		"$when: the other grant is closed to the first role too");
	is(sql_as('alice', "SELECT distsys.dlock_try('job', '1 hour', 'svc')"), $t_job,
		"$when: the grant's role re-enters it with its token");
	is(sql_as('alice', "SELECT distsys.dlock_release('job', 'svc')"), 't',
		"$when: and releases that level again");
	is(sql("SELECT string_agg(name || ' ' || owner || ' ' || role || ' ' || depth, ', ' ORDER BY name)
			FROM distsys.dlocks"),
		'cfg reader bob 1, job svc alice 2', "$when: each grant still names its role");
	is(sql("SELECT string_agg(name || ' ' || role, ', ' ORDER BY name) FROM distsys.dlock_leases"),
		'cfg bob, job alice', "$when: and so do the rows");
}

check('before a restart');
$node->restart;
check('after a clean restart');
crash_postmaster($node);
check('after a crash');

is(sql_as('bob', "SELECT distsys.dlock_check('job', $t_job) AND distsys.dlock_check('cfg', $t_cfg)"),
	't', 'both grants kept their tokens');
is(sql_as('alice', "SELECT distsys.dlock_release('job', 'svc') AND distsys.dlock_release('job', 'svc')")
	  . sql_as('bob', "SELECT distsys.dlock_release('cfg', 'reader')"),
	'tt', 'each role releases its own grant in the end');
is(sql('SELECT count(*) FROM distsys.dlock_leases'), '0', 'and no row is left');

# The queue's hand-off: bob's waiter under the owner string that alice's
# waiter ahead of it is granted does not join her shared grant (an owner
# string is held by one grant of a lock); it and the bob waiter behind it
# wait for that grant to end, then are granted as bob.
sql_as('alice', "SELECT distsys.dlock_try('q', '1 hour', 'w')");
my @w;
for my $who (['alice', 'r'], ['bob', 'r'], ['bob', 'b'])
{
	my ($bg) = start_waiter($node,
		"SELECT distsys.dlock_acquire('q', '1 hour', '60s', '$who->[1]', 'shared') IS NOT NULL",
		$who->[0]);
	push @w, $bg;
	wait_for_queue($node, 'q', scalar @w);
}
is(sql("SELECT string_agg(owner || ' ' || role, ', ' ORDER BY position) FROM distsys.dlock_waiters"),
	'r alice, r bob, b bob', 'the waiters queue with their roles');
sql_as('alice', "SELECT distsys.dlock_release('q', 'w')");
is(finish_waiter($w[0]), 'true', "alice's waiter is granted");
is(sql("SELECT string_agg(owner || ' ' || role, ', ' ORDER BY position) FROM distsys.dlock_waiters"),
	'r bob, b bob', "bob's waiters still wait");
sql_as('alice', "SELECT distsys.dlock_release('q', 'r')");
is(finish_waiter($w[1]) . finish_waiter($w[2]), 'truetrue', "then both of bob's are granted");
is(sql("SELECT string_agg(owner || ' ' || role, ', ' ORDER BY owner) FROM distsys.dlock_leases"),
	'b bob, r bob', 'as bob');
$_->quit for @w;

$node->stop;
done_testing();
