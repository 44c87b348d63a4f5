# Limits and plain disconnects: running out of lock entries or holder slots
# is a clear error with a hint, loses nothing and recovers as soon as a slot
# is free; a client that simply disconnects hands its lock to the waiter.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $node = distsys_node('limits', "distsys.max_locks = 16\ndistsys.max_lock_holders = 20");
sub sql { return $node->safe_psql('postgres', $_[0]); }

# 16 names fill the lock table; the 17th is refused with a hint.
is(sql(q{SELECT count(distsys.dlock_try('n' || g, owner => 'o')) FROM generate_series(1, 16) g}),
	'16', '16 locks fit distsys.max_locks = 16');
my ($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT distsys.dlock_try('n17', owner => 'o')");
like($err, qr/53200: too many distributed locks held or waited for at once/, 'the 17th name: SQLSTATE 53200');
like($err, qr/HINT:  Increase distsys.max_locks and restart the server/, 'with a hint naming the setting');
is(sql("SELECT count(*) FROM distsys.dlocks"), '16', 'the 16 held locks are untouched');
is(sql("SELECT count(*) FROM distsys.dlock_leases"), '16', 'and so are their rows');
sql("SELECT distsys.dlock_release('n1', 'o')");
ok(sql("SELECT distsys.dlock_try('n17', owner => 'o') IS NOT NULL") eq 't',
	'a released slot is usable at once');

# Holder slots: 20 in all, 16 used; four more shared holders of one name fit.
is(sql(q{SELECT count(distsys.dlock_try('n2', owner => 'r' || g, mode => 'shared'))
		 FROM generate_series(1, 3) g}), '0', 'n2 is held exclusively, shared requests are refused');
sql("SELECT distsys.dlock_release('n2', 'o')");
is(sql(q{SELECT count(distsys.dlock_try('n2', owner => 'r' || g, mode => 'shared'))
		 FROM generate_series(1, 5) g}), '5', 'five shared holders of n2 fill the 20 holder slots');
($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT distsys.dlock_try('n2', owner => 'r6', mode => 'shared')");
like($err, qr/53200: too many distributed lock grants held at once/, 'the 21st grant: SQLSTATE 53200');
like($err, qr/HINT:  Increase distsys.max_lock_holders/, 'with a hint naming the setting');
is(sql("SELECT count(*) FROM distsys.dlocks"), '20', 'all 20 grants are still held');

# One release can grant several shared waiters but frees only one slot: the
# waiter that finds no slot when its turn comes gets the same error instead
# of hanging, and the one before it keeps its grant.
sql("SELECT distsys.dlock_release('n3', 'o')");	# 19 grants, n3 free
my $holder = bg_session($node);
$holder->query_safe("SELECT distsys.dlock_try('n3')");	# 20 grants: full
my ($w1) = start_waiter($node,
	"SELECT distsys.dlock_acquire('n3', timeout => '60s', owner => 'w1', mode => 'shared') IS NOT NULL");
wait_for_queue($node, 'n3', 1);
my ($w2) = start_waiter($node,
	"SELECT distsys.dlock_acquire('n3', timeout => '60s', owner => 'w2', mode => 'shared') IS NOT NULL");
wait_for_queue($node, 'n3', 2);
$holder->query_safe("SELECT distsys.dlock_release('n3')");	# frees one slot
is(finish_waiter($w1), 'true', 'the first shared waiter got the freed slot');
ok(wait_for_error($w2, qr/too many distributed lock grants held at once/),
	'the second one got a clear error instead of waiting forever');
is(sql("SELECT count(*) FROM distsys.dlock_waiters"), '0', 'and left the queue');
$_->quit for ($w1, $w2);

# Disconnect: a session-owned lock held by a client that just goes away.
sql("SELECT distsys.dlock_break(name) FROM distsys.dlocks");
my $quitter = bg_session($node);
$quitter->query_safe("SELECT distsys.dlock_try('d', '1 hour')");
my ($dw) = start_waiter($node, "SELECT distsys.dlock_acquire('d', timeout => '60s') IS NOT NULL");
wait_for_queue($node, 'd', 1);
$quitter->quit;
is(finish_waiter($dw), 'true', 'a plain disconnect hands the lock to the waiter');
$dw->quit;
$holder->quit;

$node->stop;
done_testing();
