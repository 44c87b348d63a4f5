# Fencing tokens across a failover to a streaming standby.
#
# Tokens are per server: the counter's reservation lives in
# $PGDATA/pg_distsys/fencing_token, which streaming does not keep up to
# date (a standby has the copy its base backup took), while the durable
# grants (dlock_leases) replicate like any table.  After the base backup
# the old primary issues tokens to session-owned locks past the limit the
# backup's copy of the file reserved, then to a grant that is still held,
# to one that expired (its row stays) and to grants that were released (no
# row left), and is killed (-9).  Two standbys of it are promoted, each on
# its own:
#
# 1. with the procedure of docs/operations.md ("Failover and standbys"):
#    the old primary's token file copied into the standby's data directory
#    while it is stopped, then started and promoted.  The held grant is
#    still its owner's with its token, and every new token is larger than
#    every token the old primary issued.
# 2. without it: the restore rule still moves the counter above every token
#    in dlock_leases (the held and the expired grant's), but a token the old
#    primary gave a grant that left no row is handed out again: what the
#    procedure is for.
use strict;
use warnings;
use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest qw(:DEFAULT slurp);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
durable_psql($primary, 'CREATE EXTENSION distsys');
$primary->backup('base');
my $backup_limit = slurp($primary->backup_dir . '/base/pg_distsys/fencing_token');
like($backup_limit, qr/^\d+\s*$/, 'the base backup has a copy of the token file');
$backup_limit += 0;

my @standbys = map {
	my $s = PostgreSQL::Test::Cluster->new($_);
	$s->init_from_backup($primary, 'base', has_streaming => 1);
	$s->start;
	$s
} qw(carried bare);
my ($carried, $bare) = @standbys;

sub sql { return $_[0]->safe_psql('postgres', $_[1]); }

# tokens issued by the old primary, in order
# session-owned grants, until the tokens pass the limit in the backup's
# copy (the last few are kept)
my @t_gone = split /\n/, sql($primary, "
	SELECT t FROM (SELECT distsys.dlock_try('session-owned') AS t, distsys.dlock_release('session-owned')
		FROM generate_series(1, $backup_limit + 10)) s WHERE t > $backup_limit - 5");
my $t_held = sql($primary, "SELECT distsys.dlock_try('held', '1 hour', 'svc')");
my $t_brief = sql($primary, "SELECT distsys.dlock_try('brief', '1 second', 'svc')");
cmp_ok($t_held, '>', $backup_limit, 'the old primary issued tokens past the limit in the backup\'s copy');
for my $w (1 .. 5)
{
	push @t_gone, sql($primary, "SELECT distsys.dlock_try('job', '1 hour', 'w$w')");
	sql($primary, "SELECT distsys.dlock_release('job', 'w$w')") eq 't' or die 'release failed';
}
my $max_old = $t_gone[-1];
cmp_ok($max_old, '>', $t_brief, 'the last of them went to released grants (no row)');
$primary->poll_query_until('postgres', "SELECT NOT distsys.dlock_check('brief', $t_brief)")
  or die 'the brief lease did not expire';
is(sql($primary, "SELECT string_agg(name || ' ' || token, ',' ORDER BY token) FROM distsys.dlock_leases"),
	"held $t_held,brief $t_brief", 'its lease rows: the held grant and the expired one');
$primary->wait_for_catchup($_, 'replay') for @standbys;

$primary->kill9;

# promoted(STANDBY): once STANDBY accepts writes.
sub promoted
{
	my ($s) = @_;
	$s->promote;
	$s->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die $s->name . ' was not promoted';
}

# 1. The documented procedure: the token file carried over before the
# standby starts as the new primary (the file is read at server start).
$carried->stop('fast');
mkdir $carried->data_dir . '/pg_distsys', 0700;
copy($primary->data_dir . '/pg_distsys/fencing_token',
	$carried->data_dir . '/pg_distsys/fencing_token')
  or die "cannot copy the token file: $!";
$carried->start;
promoted($carried);
is(sql($carried, "SELECT owner || ' ' || token FROM distsys.dlocks WHERE name = 'held'"), "svc $t_held",
	'carried: the held grant is its owner\'s on the new primary, with its token');
is(sql($carried, "SELECT distsys.dlock_try('held', owner => 'intruder') IS NULL"), 't',
	'carried: and refused to another owner');
my $t_new = sql($carried, "SELECT distsys.dlock_try('job', '1 hour', 'after')");
cmp_ok($t_new, '>', $max_old, 'carried: a new grant\'s token is larger than every token the old primary issued');
my $t_sess = sql($carried, "SELECT distsys.dlock_try('session-owned')");
cmp_ok($t_sess, '>', $t_new, 'carried: and tokens keep increasing');
$carried->restart;
cmp_ok(sql($carried, "SELECT distsys.dlock_try('brief', '1 hour', 'after')"), '>', $t_sess,
	'carried: also after a restart of the new primary');

# 2. Without the file: only the restore rule (dlock_leases) keeps tokens
# above the stale copy's limit.
promoted($bare);
my $t_bare = sql($bare, "SELECT distsys.dlock_try('job', '1 hour', 'after')");
cmp_ok($t_bare, '>', $t_brief,
	'bare: a new token is still larger than every token in dlock_leases (the expired grant\'s too)');
is(sql($bare, "SELECT owner || ' ' || token FROM distsys.dlocks WHERE name = 'held'"), "svc $t_held",
	'bare: the held grant keeps its token');
ok((grep { $_ == $t_bare } @t_gone),
	"bare: but token $t_bare, which the old primary gave a grant that left no row, is handed out again"
	  . ' (why docs/operations.md says to carry the file over)');

$_->stop for @standbys;
done_testing();
