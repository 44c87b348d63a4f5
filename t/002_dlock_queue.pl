# FIFO queues with several waiters at once: arrival order is grant order,
# a shared request never jumps a queued exclusive one, each release or
# expiry wakes exactly the waiters it grants (no herd), and a cancelled
# waiter leaves the queue without disturbing the others.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $node = distsys_node('queue');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# Eight waiters queue behind one holder; releases serve them in order.
my $n = 8;
my $holder = bg_session($node);
$holder->query_safe("SELECT distsys.dlock_try('q', '1 hour')");
sql("SELECT distsys.dlock_stats_reset()");
my (@bg, @pid);
for my $i (0 .. $n - 1)
{
	($bg[$i], $pid[$i]) = start_waiter($node,
		"SELECT distsys.dlock_acquire('q', '1 hour', '60s') IS NOT NULL");
	wait_for_queue($node, 'q', $i + 1);
}
is(sql("SELECT string_agg(pid::text, ',' ORDER BY position) FROM distsys.dlock_waiters WHERE name = 'q'"),
	join(',', @pid), 'the queue is in arrival order');

$holder->query_safe("SELECT distsys.dlock_release('q')");
my @order;
for my $i (0 .. $n - 1)
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM distsys.dlocks WHERE name = 'q' AND pid = $pid[$i]")
	  or die "waiter $i never got the lock";
	push @order, $i;
	is(sql("SELECT count(*) FROM distsys.dlock_waiters WHERE name = 'q'"), $n - 1 - $i,
		"after grant $i the others still wait");
	is(finish_waiter($bg[$i]), 'true', "waiter $i returned with the lock");
	$bg[$i]->query_safe("SELECT distsys.dlock_release('q')");
}
is(join(',', @order), join(',', 0 .. $n - 1), 'grants followed arrival order');
my ($waits, $wakeups) = split /\|/, sql("SELECT waits, wakeups FROM distsys.dlock_stats");
is($waits, $n, "$n waits counted");
is($wakeups, $n, 'exactly one wakeup per grant: no herd');
$_->quit for @bg;

# A shared request behind a queued exclusive one waits, and both shared
# waiters behind it are granted together when the exclusive one releases.
$holder->query_safe("SELECT distsys.dlock_try('m', mode => 'shared')");
my ($ex, $expid) = start_waiter($node, "SELECT distsys.dlock_acquire('m', timeout => '60s') IS NOT NULL");
wait_for_queue($node, 'm', 1);
is(sql("SELECT distsys.dlock_try('m', mode => 'shared') IS NULL"), 't',
	'dlock_try shared does not jump a queued exclusive request');
my ($sh1) = start_waiter($node, "SELECT distsys.dlock_acquire('m', timeout => '60s', mode => 'shared') IS NOT NULL");
my ($sh2) = start_waiter($node, "SELECT distsys.dlock_acquire('m', timeout => '60s', mode => 'shared') IS NOT NULL");
wait_for_queue($node, 'm', 3);
is(sql("SELECT string_agg(mode, ',' ORDER BY position) FROM distsys.dlock_waiters WHERE name = 'm'"),
	'exclusive,shared,shared', 'shared waiters queue behind the exclusive one');
$holder->query_safe("SELECT distsys.dlock_release('m')");
is(finish_waiter($ex), 'true', 'the exclusive waiter is granted first');
is(sql("SELECT count(*) FROM distsys.dlock_waiters WHERE name = 'm'"), '2',
	'the shared waiters still wait while it holds the lock');
$ex->query_safe("SELECT distsys.dlock_release('m')");
is(finish_waiter($sh1) . finish_waiter($sh2), 'truetrue',
	'one release grants both shared waiters');
is(sql("SELECT count(*) || ' ' || min(mode) FROM distsys.dlocks WHERE name = 'm'"), '2 shared',
	'both hold it together');
$sh1->query_safe("SELECT distsys.dlock_release('m')");
$sh2->query_safe("SELECT distsys.dlock_release('m')");

# Cancel (pg_cancel_backend) of the middle waiter: it leaves the queue with
# an error, and the next one is still served in order.
$holder->query_safe("SELECT distsys.dlock_try('c')");
my ($c1, $c1pid) = start_waiter($node, "SELECT distsys.dlock_acquire('c') IS NOT NULL");
wait_for_queue($node, 'c', 1);
my ($c2, $c2pid) = start_waiter($node, "SELECT distsys.dlock_acquire('c') IS NOT NULL");
wait_for_queue($node, 'c', 2);
my ($c3, $c3pid) = start_waiter($node, "SELECT distsys.dlock_acquire('c') IS NOT NULL");
wait_for_queue($node, 'c', 3);
sql("SELECT pg_cancel_backend($c2pid)");
ok(wait_for_error($c2, qr/canceling statement due to user request/),
	'the cancelled waiter got a cancel error');
is(sql("SELECT string_agg(pid::text, ',' ORDER BY position) FROM distsys.dlock_waiters WHERE name = 'c'"),
	"$c1pid,$c3pid", 'the cancelled waiter left the queue, the others kept their places');
$holder->query_safe("SELECT distsys.dlock_release('c')");
is(finish_waiter($c1), 'true', 'first waiter served');
$c1->query_safe("SELECT distsys.dlock_release('c')");
is(finish_waiter($c3), 'true', 'third waiter served after it');
$c3->query_safe("SELECT distsys.dlock_release('c')");

# Expiry with eight waiters: each lease ends on its own and wakes only the
# next waiter, which then holds it for its own short lease.
sql("SELECT distsys.dlock_stats_reset()");
$holder->query_safe("SELECT distsys.dlock_try('x', '1 hour')");
my @xb;
for my $i (0 .. 3)
{
	($xb[$i]) = start_waiter($node, "SELECT distsys.dlock_acquire('x', '200ms', '60s') IS NOT NULL");
	wait_for_queue($node, 'x', $i + 1);
}
# shorten the holder's lease: from here on nobody releases anything
$holder->query_safe("SELECT distsys.dlock_renew('x', '100ms')");
is(finish_waiter($_), 'true', 'waiter got the lock by expiry alone') for @xb;
($waits, $wakeups, my $expiries) = split /\|/, sql("SELECT waits, wakeups, expiries FROM distsys.dlock_stats");
is($wakeups, $waits, "expiry hand-off: $wakeups wakeups for $waits waits");
cmp_ok($expiries, '>=', 4, 'the holders expired');
$_->quit for (@xb, $c1, $c2, $c3, $sh1, $sh2, $ex, $holder);

$node->stop;
done_testing();
