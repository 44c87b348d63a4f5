# Crashes and restarts: session-owned locks end with the crash, application-
# owned leases survive it (still held until their lease ends, with the same
# token and depth), and fencing tokens keep increasing, never reissued.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;

my $node = distsys_node('crash', 'restart_after_crash = on');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# At synchronous_commit = off (the syncoff pass of make test) a grant's
# commit is asynchronous, and docs/operations.md promises that a grant
# survives a crash only at on: a crash may take the grant taken (or
# re-entered) within the WAL writer's delay before it.  What holds at off
# too, and is asserted in both runs: a grant comes back as it was or not
# at all (never with another owner or token), and tokens are never issued
# twice.
my $off = sync_commit() eq 'off';

# grant_of(NAME): "owner depth token" of the grant of NAME, or ''.
sub grant_of
{
	return sql("SELECT coalesce(max(owner || ' ' || depth || ' ' || token), '')
		FROM distsys.dlocks WHERE name = '$_[0]'");
}

# survived(NAME, OWNER, DEPTH, TOKEN, WHAT): after a crash, NAME is granted
# to OWNER at DEPTH with TOKEN (dlocks: shared memory, reloaded from
# dlock_leases) and refused to another owner.  At off, a grant lost with
# its asynchronous commits (NAME free, or at a lower depth) passes too, and
# is taken again as before, with a new token, for the rest of the test;
# returns the grant's token.
sub survived
{
	my ($name, $owner, $depth, $token, $what) = @_;
	my $got = grant_of($name);
	if (!$off)
	{
		is($got, "$owner $depth $token", $what);
		is(sql("SELECT distsys.dlock_try('$name', owner => 'intruder') IS NULL"), 't',
			"$what: refused to another owner");
		return $token;
	}
	my ($d) = $got =~ /^\Q$owner\E (\d+) \Q$token\E$/;
	ok($got eq '' || (defined $d && $d <= $depth),
		"$what, or lost with its asynchronous commit (synchronous_commit = off)")
	  or diag("got '$got', want '$owner $depth $token' or less");
	note("$name after the crash: " . ($got eq '' ? 'lost' : $got));
	$d //= 0;
	$token = sql("SELECT distsys.dlock_try('$name', '1 hour', '$owner')") for $d + 1 .. $depth;
	is(sql("SELECT distsys.dlock_try('$name', owner => 'intruder') IS NULL"), 't',
		"$what: refused to another owner");
	return $token;
}

my $t_durable = sql("SELECT distsys.dlock_try('durable', '1 hour', 'svc')");
sql("SELECT distsys.dlock_try('durable', '1 hour', 'svc')");	# depth 2
my $holder = bg_session($node);
my $t_sess = $holder->query_safe("SELECT distsys.dlock_try('sess', '1 hour')");
my $hpid = $holder->query_safe('SELECT pg_backend_pid()');
my $max_token = $t_sess > $t_durable ? $t_sess : $t_durable;

# 1. kill -9 of the backend holding the session lock: the postmaster
# resets shared memory and restarts every backend.
kill 'KILL', $hpid;
wait_accepting($node) or die 'node did not come back';
$holder->quit;
my $t_after = sql("SELECT distsys.dlock_try('sess', '1 hour', 'new-owner')");
ok(defined $t_after && $t_after ne '', 'the killed session no longer holds its lock');
cmp_ok($t_after, '>', $max_token, 'the next token is larger than every earlier one');
my $t_lost = $t_durable;
$t_durable = survived('durable', 'svc', 2, $t_durable,
	'the application-owned lease survived the crash with its owner, depth and token');
is(sql("SELECT distsys.dlock_check('durable', $t_durable)"), 't', 'its token is current');
cmp_ok($t_durable, '>', $max_token, 'a lease lost with the crash is granted again with a new token')
  if $t_durable != $t_lost;
is(sql("SELECT distsys.dlock_check('durable', $t_lost)"), 'f', 'the token of the lost lease is no longer current')
  if $t_durable != $t_lost;
$max_token = $t_after > $t_durable ? $t_after : $t_durable;

# 2. kill -9 of the postmaster, then a restart: the same holds, and a
# short lease taken before the crash still ends on time after it.
my $t_short = sql("SELECT distsys.dlock_try('short', '4 seconds', 'svc')");
$max_token = $t_short;
crash_postmaster($node);
$t_durable = survived('durable', 'svc', 2, $t_durable, 'application-owned lease held after postmaster crash');
my $short = grant_of('short');
ok($short eq "svc 1 $t_short" || ($off && $short eq ''),
	'the short lease is still held right after the restart (at off: or lost, never changed)')
  or diag("got '$short'");
is(sql("SELECT distsys.dlock_try('short', owner => 'intruder') IS NULL"), 't',
	'the short lease is refused to another owner right after the restart') if $short ne '';
survived('sess', 'new-owner', 1, $t_after, 'the application-owned lock taken after the first crash is held too');
$node->poll_query_until('postgres',
	"SELECT distsys.dlock_try('short', owner => 'intruder') IS NOT NULL")
  or die 'the short lease never expired';
my $t_late = sql("SELECT token FROM distsys.dlocks WHERE name = 'short'");
cmp_ok($t_late, '>', $t_short, 'the lease expired after the restart (or was lost with it) and was taken over');
cmp_ok($t_late, '>', $max_token, 'tokens kept increasing across the postmaster crash');

# 3. A lease that ends while the server is down leaves its row behind; the
# next grant of that name (another owner) replaces it.
sql("SELECT distsys.dlock_try('downtime', '1 second', 'svc')");
$node->stop;
sleep 2;	# the lease must end while no server runs; nothing to poll
$node->start;
ok(sql("SELECT distsys.dlock_try('downtime', owner => 'next') IS NOT NULL") eq 't',
	'a lease that expired during the downtime is free after the restart');
is(sql("SELECT string_agg(owner, ',') FROM distsys.dlock_leases WHERE name = 'downtime'"), 'next',
	'and its stale row was replaced');

# 4. A clean restart and a renewal: still the same grant.
is(sql("SELECT distsys.dlock_renew('durable', '2 hours', 'svc')"), 't', 'renewal by the owner works');
$node->restart;
is(sql("SELECT expires_at > now() + interval '90 minutes' FROM distsys.dlocks WHERE name = 'durable'"),
	't', 'the renewed lease survived a clean restart');
is(sql("SELECT distsys.dlock_release('durable', 'svc') AND distsys.dlock_release('durable', 'svc')"),
	't', 'the owner releases both levels after the restarts');
is(sql("SELECT count(*) FROM distsys.dlock_leases WHERE name = 'durable'"), '0', 'and its row is gone');

$node->stop;
done_testing();
