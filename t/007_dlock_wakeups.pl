# Lost wake-ups, stale undo records and the reload of conflicting rows
# (issue 15, items 9 to 11).
#
# The expiry worker sleeps until the earliest lease of a lock with waiters
# ends.  A hand-off to a short lease, and a rolled-back renewal that brings
# back an earlier expiry, must move that wake-up earlier, or the next waiter
# sleeps while the lock is free.  And an undo record must only undo its own
# change: when another connection of the same owner changed the grant after
# it and committed, shared memory must keep that change, as dlock_leases does.
# A restart must not reload two rows that conflict.
#
# Not tested here: the CHECK_FOR_INTERRUPTS before the first wait of
# dlock_acquire.  Its window (a cancel arriving while the backend holds the
# lock manager's LWLock, between its last interrupt check and the latch
# reset in enqueue_me) cannot be hit on purpose without injection points,
# which PostgreSQL 15 lacks.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $node = distsys_node('wakeups');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# wait_for_row_lock(PID): until backend PID waits for a heavyweight lock
# (here: the row lock of a lease row another transaction updated).
sub wait_for_row_lock
{
	my ($pid) = @_;
	$node->poll_query_until('postgres',
		"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid")
	  or die "backend $pid never waited for the row lock";
}

# shmem_agrees(NAME): whether dlocks (shared memory) and dlock_leases (the
# committed rows) show the same lease and depth for NAME.
sub shmem_agrees
{
	my ($name) = @_;
	return sql("SELECT l.expires_at = r.expires_at AND l.depth = r.depth"
		  . "  FROM distsys.dlocks l JOIN distsys.dlock_leases r USING (name, owner)"
		  . " WHERE name = '$name'");
}

# 1. Hand-off to a short lease.  A holds M for an hour; B (2 s lease) and C
# wait.  A releases: B is granted M with a 2 s lease and never releases it.
# C must get M when B's lease ends, well before its own 60 s timeout; with
# the worker still asleep until A's old expiry, C times out with NULL.
my $a = bg_session($node);
$a->query_safe("SELECT distsys.dlock_try('M', '1 hour')");
my ($b) = start_waiter($node, "SELECT distsys.dlock_acquire('M', '2s', '60s') IS NOT NULL");
wait_for_queue($node, 'M', 1);
my ($c, $cpid) = start_waiter($node, "SELECT distsys.dlock_acquire('M', '1 hour', '60s') IS NOT NULL");
wait_for_queue($node, 'M', 2);
$a->query_safe("SELECT distsys.dlock_release('M')");
is(finish_waiter($b), 'true', 'B is granted M with a 2 s lease by the hand-off');
is(finish_waiter($c), 'true', 'C is granted M when B\'s lease ends, not at its timeout');
is(sql("SELECT pid FROM distsys.dlocks WHERE name = 'M'"), $cpid, 'C holds M');
$_->quit for ($a, $b, $c);

# 2. A renewal rolled back.  X holds R with a 15 s lease, W waits; X renews
# R to an hour in a transaction (the worker now plans to look in an hour)
# and rolls back, which brings the 15 s lease back.  W must get R when it
# ends, before its own 120 s timeout.
my $x = bg_session($node);
$x->query_safe("SELECT distsys.dlock_try('R', '15s', owner => 'app-x')");
my ($w) = start_waiter($node, "SELECT distsys.dlock_acquire('R', '1 hour', '120s') IS NOT NULL");
wait_for_queue($node, 'R', 1);
$x->query_safe("BEGIN");
is($x->query_safe("SELECT distsys.dlock_renew('R', '1 hour', 'app-x')"), 't',
	'the renewal happens while the 15 s lease runs');
$x->query_safe("ROLLBACK");
is(finish_waiter($w), 'true', 'the waiter is granted R when the restored lease ends');
$_->quit for ($x, $w);

# stale_undo(NAME, CHANGE): X1 holds NAME (owner app, a 60 s lease, long
# enough for a loaded machine) and runs CHANGE on it in a transaction; X2,
# the same owner in autocommit, renews NAME to an hour (its row update
# waits for X1's); X1 rolls back.  X2's committed hour must stay in shared
# memory too, not X1's restored 60 s.
sub stale_undo
{
	my ($name, $change) = @_;
	my $x1 = bg_session($node);
	$x1->query_safe("SELECT distsys.dlock_try('$name', '60s', owner => 'app')");
	$x1->query_safe("BEGIN");
	$x1->query_safe($change);
	my ($x2, $x2pid) = start_waiter($node, "SELECT distsys.dlock_renew('$name', '1 hour', 'app')");
	wait_for_row_lock($x2pid);
	$x1->query_safe("ROLLBACK");
	is(finish_waiter($x2), 'true', "$name: X2 renews it to an hour");
	is(shmem_agrees($name), 't',
		"$name: after X1's rollback, shared memory agrees with dlock_leases");
	is(sql("SELECT expires_at > now() + interval '30 min' FROM distsys.dlocks WHERE name = '$name'"),
		't', "$name: keeps the hour X2 committed");
	is(sql("SELECT distsys.dlock_try('$name', owner => 'other') IS NULL"), 't',
		"$name: another owner does not get it");
	$_->quit for ($x1, $x2);
}

# 3. A stale undo of a renewal.
stale_undo('S', "SELECT distsys.dlock_renew('S', '90s', 'app')");

# 4. The same with a reentrant dlock_try rolled back.
stale_undo('T', "SELECT distsys.dlock_try('T', '90s', owner => 'app')");

# 4b. Both roll back: X1 renews U in a transaction, X2 (same owner) renews
# it to an hour in a transaction of its own (waiting for X1's row), X1 rolls
# back, then X2 rolls back too.  The row keeps the first 60 s lease; shared
# memory must too, not X1's rolled-back 90 s one that X2's undo record saw
# as its "before".
{
	my $x1 = bg_session($node);
	$x1->query_safe("SELECT distsys.dlock_try('U', '60s', owner => 'app')");
	my $lease = sql("SELECT expires_at FROM distsys.dlocks WHERE name = 'U'");
	$x1->query_safe("BEGIN");
	$x1->query_safe("SELECT distsys.dlock_renew('U', '90s', 'app')");
	my $x2 = bg_session($node, on_error_stop => 0);
	my $x2pid = $x2->query_safe('SELECT pg_backend_pid()');
	$x2->query_safe("BEGIN");
	$x2->query_until(qr/sent/,
		"\\echo sent\nSELECT 'done:' || distsys.dlock_renew('U', '1 hour', 'app');\n");
	wait_for_row_lock($x2pid);
	$x1->query_safe("ROLLBACK");
	is(finish_waiter($x2), 'true', 'U: X2 renews it to an hour');
	$x2->query_safe("ROLLBACK");
	is(shmem_agrees('U'), 't', 'U: after both rollbacks, shared memory agrees with dlock_leases');
	is(sql("SELECT expires_at = '$lease' FROM distsys.dlocks WHERE name = 'U'"), 't',
		'U: the first lease is back');
	$_->quit for ($x1, $x2);
}

# 5. (issue 15, item 11) A restart reloads only rows that fit together.
# An ended shared lease's row left beside a later exclusive grant looks
# current again after the clock goes back; here the two rows are made to
# look so directly (both real grants, the exclusive one renamed onto K).
# After a restart only the later exclusive grant is restored, and the
# skipped row is named in the log.
sql("SELECT distsys.dlock_try('K', '1 hour', owner => 'old-reader', mode => 'shared')");
my $t_ex = sql("SELECT distsys.dlock_try('K2', '1 hour', owner => 'writer')");
sql("UPDATE distsys.dlock_leases SET name = 'K' WHERE name = 'K2'");
my $log_offset = -s $node->logfile;
$node->restart;
is(sql("SELECT string_agg(owner || ' ' || mode || ' ' || token, ',') FROM distsys.dlocks WHERE name = 'K'"),
	"writer exclusive $t_ex", 'only the later exclusive grant is restored');
like(substr(slurp_file($node->logfile), $log_offset),
	qr/not restoring the shared grant of token \d+ of owner "old-reader"/,
	'the skipped row is logged');
is(sql("SELECT distsys.dlock_try('K', owner => 'new-reader', mode => 'shared') IS NULL"), 't',
	'a shared request does not get K beside the exclusive grant');

$node->stop;
done_testing();
