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

my $t_durable = sql("SELECT distsys.dlock_try('durable', '1 hour', 'svc')");
sql("SELECT distsys.dlock_try('durable', '1 hour', 'svc')");	# depth 2
my $holder = bg_session($node);
my $t_sess = $holder->query_safe("SELECT distsys.dlock_try('sess', '1 hour')");
my $hpid = $holder->query_safe('SELECT pg_backend_pid()');
my $max_token = $t_sess > $t_durable ? $t_sess : $t_durable;

# 1. kill -9 of the backend holding the session lock: the postmaster
# resets shared memory and restarts every backend.
kill 'KILL', $hpid;
$node->poll_query_until('postgres', 'SELECT true') or die 'node did not come back';
$holder->quit;
my $t_after = sql("SELECT distsys.dlock_try('sess', '1 hour', 'new-owner')");
ok(defined $t_after && $t_after ne '', 'the killed session no longer holds its lock');
cmp_ok($t_after, '>', $max_token, 'the next token is larger than every earlier one');
is(sql("SELECT distsys.dlock_try('durable', owner => 'intruder') IS NULL"), 't',
	'the application-owned lease survived the crash');
is(sql("SELECT distsys.dlock_check('durable', $t_durable)"), 't',
	'with its original token');
is(sql("SELECT owner || ' ' || depth FROM distsys.dlocks WHERE name = 'durable'"), 'svc 2',
	'and its owner and depth');
$max_token = $t_after;

# 2. kill -9 of the postmaster, then a restart: the same holds, and a
# short lease taken before the crash still ends on time after it.
my $t_short = sql("SELECT distsys.dlock_try('short', '4 seconds', 'svc')");
crash_postmaster($node);
is(sql("SELECT distsys.dlock_try('durable', owner => 'intruder') IS NULL"), 't',
	'application-owned lease held after postmaster crash');
is(sql("SELECT distsys.dlock_try('short', owner => 'intruder') IS NULL"), 't',
	'the short lease is still held right after the restart');
is(sql("SELECT distsys.dlock_try('sess', owner => 'intruder') IS NULL"), 't',
	'the application-owned lock taken after the first crash is held too');
$node->poll_query_until('postgres',
	"SELECT distsys.dlock_try('short', owner => 'intruder') IS NOT NULL")
  or die 'the short lease never expired';
my $t_late = sql("SELECT token FROM distsys.dlocks WHERE name = 'short'");
cmp_ok($t_late, '>', $t_short, 'the lease expired after the restart and was taken over');
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
