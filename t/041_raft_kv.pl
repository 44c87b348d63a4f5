# Raft among three PostgreSQL nodes (issue 16): elections over the libpq
# transport, the replicated key-value store and its SQL calls.
#
# - The three nodes agree on one leader.
# - raft_put on the leader and on a follower (forwarded) return the log
#   index; a linearizable raft_get on another node sees the write at once;
#   every node's distsys.raft_kv gets the same rows.
# - raft_cas and raft_delete answer by the state before them.
# - Each applied change is NOTIFYed on channel distsys_raft as
#   "<index> <key>".
# - The leader killed (SIGKILL of its postmaster): the two others elect a
#   new leader, which serves writes; the old one comes back as a follower
#   and catches up.
# - With two of three nodes down, writes and linearizable reads fail with
#   YR001 within distsys.raft_request_timeout; stale reads still answer.
# - An ordinary role cannot deliver Raft batches, write the store without
#   distsys_raft_user, or write the tables directly.
# - Bad arguments give their SQLSTATEs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RaftTest;

my @nodes = raft_cluster(3, 'kv');
my $leader = wait_raft_leader(@nodes);
ok(defined $leader, 'three nodes agree on a leader');
my $L = $nodes[$leader - 1];
my @followers = grep { $_ != $L } @nodes;

my $i1 = $L->safe_psql('postgres', q{SELECT distsys.raft_put('a', '{"v": 1}')});
cmp_ok($i1, '>', 1, 'raft_put on the leader returns its log index');
is($followers[0]->safe_psql('postgres', q{SELECT distsys.raft_get('a')}), '{"v": 1}',
	'a linearizable read on a follower sees it');
my $i2 = $followers[0]->safe_psql('postgres', q{SELECT distsys.raft_put('b', '2')});
cmp_ok($i2, '>', $i1, 'raft_put on a follower is forwarded to the leader');
is($followers[1]->safe_psql('postgres', q{SELECT distsys.raft_get('b')}), '2',
	'the other follower reads it linearizably');
is($followers[1]->safe_psql('postgres', q{SELECT distsys.raft_get('b', 'lease')}), '2',
	'and with a lease read');
is($L->safe_psql('postgres', q{SELECT distsys.raft_get('nothing')}), '',
	'an absent key reads as NULL');

# compare and swap, delete
is($L->safe_psql('postgres', q{SELECT distsys.raft_cas('a', NULL, '0')}), 'f',
	'raft_cas expecting absence fails on a present key');
is($followers[0]->safe_psql('postgres', q{SELECT distsys.raft_cas('a', '{"v":1}', '{"v": 2}')}), 't',
	'raft_cas with the right value swaps (jsonb equality, whatever the spacing)');
is($followers[1]->safe_psql('postgres', q{SELECT distsys.raft_cas('a', '{"v": 1}', '{"v": 3}')}), 'f',
	'raft_cas with a stale value does not');
is($L->safe_psql('postgres', q{SELECT distsys.raft_cas('c', NULL, '"new"')}), 't',
	'raft_cas expecting absence creates the key');
is($followers[0]->safe_psql('postgres', q{SELECT distsys.raft_delete('c')}), 't',
	'raft_delete removes a key');
is($followers[0]->safe_psql('postgres', q{SELECT distsys.raft_delete('c')}), 'f',
	'and says when it was not there');

# every node applies the same state
my $want = $L->safe_psql('postgres', q{SELECT distsys.raft_get('a')});
is($want, '{"v": 2}', 'the swap is in force');
for my $n (@nodes)
{
	ok($n->poll_query_until('postgres',
		q{SELECT string_agg(key || '=' || value::text, ',' ORDER BY key) FROM distsys.raft_kv},
		'a={"v": 2},b=2'), $n->name . ': distsys.raft_kv has the applied state');
}

# watches
my $out = $followers[1]->safe_psql('postgres',
	q{LISTEN distsys_raft; SELECT distsys.raft_put('w', '1'); SELECT pg_sleep(0.3);});
like($out, qr/Asynchronous notification "distsys_raft" with payload "\d+ w"/,
	'an applied change is notified with its index and key');

# the ordinary role
$L->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');
for my $n (@nodes)
{
	$n->safe_psql('postgres', 'CREATE ROLE mallory LOGIN') if $n != $L;
}
my ($o, $err) = raft_try($L, q{SET ROLE mallory; SELECT distsys.raft_deliver('\x00')});
like($err, qr/permission denied for function raft_deliver/, 'an ordinary role cannot deliver a Raft batch');
($o, $err) = raft_try($L, q{SET ROLE mallory; SELECT distsys.raft_put('a', '1')});
like($err, qr/permission denied for function raft_put/, 'nor write the store without distsys_raft_user');
($o, $err) = raft_try($L, q{SET ROLE mallory; INSERT INTO distsys.raft_kv VALUES ('x', '1', 1)});
like($err, qr/permission denied for table raft_kv/, 'nor write distsys.raft_kv');
($o, $err) = raft_try($L, q{SET ROLE mallory; UPDATE distsys.raft_applied SET index = 0});
like($err, qr/permission denied for table raft_applied/, 'nor distsys.raft_applied');
($o, $err) = raft_try($L, q{SET ROLE mallory; SET distsys.raft_fault_drop_to = '1'});
like($err, qr/parameter "distsys.raft_fault_drop_to" cannot be changed now/,
	'nor set a fault setting in its session');
($o, $err) = raft_try($L, q{SET ROLE mallory; ALTER SYSTEM SET distsys.raft_fault_drop_to = '1'});
like($err, qr/permission denied to set parameter "distsys.raft_fault_drop_to"/, 'nor for the server');
is($L->safe_psql('postgres', q{SET ROLE mallory; SELECT distsys.raft_get('b')}), '2',
	'but it may read');
$L->safe_psql('postgres', 'GRANT distsys_raft_user TO mallory');
cmp_ok($L->safe_psql('postgres', q{SET ROLE mallory; SELECT distsys.raft_put('m', '1')}), '>', 0,
	'a member of distsys_raft_user may write');


# a role that may deliver (a member of distsys_raft_peer) is still held to
# the envelope: this cluster, a known sender, this node
$L->safe_psql('postgres', 'CREATE ROLE peer LOGIN IN ROLE distsys_raft_peer');
my ($cluster) = slurp_file($L->data_dir . '/pg_distsys/raft/identity') =~ /cluster_id=([0-9a-f]{32})/;
# envelope(CLUSTER_HEX, FROM, TO, COUNT): a batch's first 40 bytes, as hex
sub envelope
{
	my ($c, $from, $to, $count) = @_;
	return unpack('H*', 'DSRB') . $c . unpack('H*', pack('Q<Q<L<', $from, $to, $count));
}
my $me = $L->{raft_id};
my $other = $followers[0]->{raft_id};
my $off;
for my $case (
	[ envelope('00' x 16, $other, $me, 0), qr/28000.*another Raft cluster/s, 'another cluster' ],
	[ envelope($cluster, 9, $me, 0), qr/28000.*node 9.*not a member/s, 'an unknown sender' ],
	[ envelope($cluster, $other, $followers[1]->{raft_id}, 0), qr/28000.*addressed to another node/s, 'another addressee' ],
	[ '00', qr/22P03/, 'a malformed envelope' ])
{
	($o, $err) = raft_try($L, "\\set VERBOSITY verbose\nSET ROLE peer; SELECT distsys.raft_deliver('\\x$case->[0]')");
	like($err, $case->[1], "raft_deliver refuses $case->[2]");
}
like(slurp_file($L->logfile), qr/LOG:.*node 9/, 'a refused sender is logged');
# a well-formed envelope from a member with a garbage item: the worker
# drops the item and keeps running
my $junk = envelope($cluster, $other, $me, 1) . '01' . unpack('H*', pack('L<', 3)) . 'ffffff';
$L->safe_psql('postgres', "SET ROLE peer; SELECT distsys.raft_deliver('\\x$junk')");
cmp_ok($L->safe_psql('postgres', q{SELECT distsys.raft_put('after-junk', '1')}), '>', 0,
	'a garbage item from a member is dropped and Raft goes on');
# a forwarded write whose value is not JSON (only a peer can forge one):
# the leader proposes it, every node fails to apply it and skips it, and
# the store goes on
my $cmd = pack('CCQ<Q<Q<L<a*CL<L<a*', 1, 1, $other, 0, 0, 6, 'poison', 0, 0, 4, '{bad');
my $item = '02' . unpack('H*', pack('L<', length $cmd)) . unpack('H*', $cmd);
$off = -s $L->logfile;
$L->safe_psql('postgres', "SET ROLE peer; SELECT distsys.raft_deliver('\\x" . envelope($cluster, $other, $me, 1) . "$item')");
cmp_ok($L->safe_psql('postgres', q{SELECT distsys.raft_put('after-poison', '1')}), '>', 0,
	'a command that cannot be applied does not stop the store');
ok($L->poll_query_until('postgres', q{SELECT count(*) FROM distsys.raft_kv WHERE key = 'poison'}, '0'),
	'it is not applied');
like(slurp_file($L->logfile, $off), qr/entry \d+ could not be applied, and is skipped on every node/,
	'and the server log says so');

# bad arguments
for my $case (
	[ q{SELECT distsys.raft_get('a', 'strong')}, qr/unknown consistency "strong"/, 'unknown consistency' ],
	[ q{SELECT distsys.raft_put('', '1')}, qr/a key must be 1 to 1024 bytes long, not 0/, 'empty key' ],
	[ q{SELECT distsys.raft_put(repeat('k', 1025), '1')}, qr/not 1025/, 'long key' ],
	[ q{SELECT distsys.raft_put(NULL, '1')}, qr/key must not be NULL/, 'NULL key' ],
	[ q{SELECT distsys.raft_put('a', NULL)}, qr/value must not be NULL/, 'NULL value' ],
	[ q{SELECT distsys.raft_put('a', to_jsonb(repeat('x', 70000)))}, qr/over the limit of 65536/, 'large value' ],
	[ q{BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT distsys.raft_get('a')},
	  qr/cannot run in a REPEATABLE READ or SERIALIZABLE transaction/, 'linearizable read in REPEATABLE READ' ])
{
	($o, $err) = raft_try($L, "\\set VERBOSITY verbose\n" . $case->[0]);
	like($err, $case->[1], "bad input: $case->[2]");
}
($o, $err) = raft_try($L, "\\set VERBOSITY verbose\nSELECT distsys.raft_get('a', 'strong')");
like($err, qr/ERROR:  22023/, 'an unknown consistency is 22023');

# the leader dies
my $old = $L;
kill_postmaster($old);
my @rest = grep { $_ != $old } @nodes;
my $new = wait_raft_leader(@rest);
ok(defined $new && $new != $leader, 'the two others elect a new leader');
cmp_ok($rest[0]->safe_psql('postgres', q{SELECT distsys.raft_put('after', '"kill"')}), '>', $i2,
	'which serves writes');
$old->start;
ok($old->poll_query_until('postgres',
	q{SELECT value FROM distsys.raft_kv WHERE key = 'after'}, '"kill"'),
	'the old leader comes back and catches up');
is(wait_raft_leader(@nodes), $new, 'as a follower of the new leader');
is($old->safe_psql('postgres', q{SELECT distsys.raft_get('after')}), '"kill"',
	'and answers linearizable reads');

# a minority
my @down = grep { $_ != $old } @nodes;
$_->stop('immediate') for @down;
my $t0 = time;
($o, $err) = raft_try($old, "SET distsys.raft_request_timeout = '1s'; \\set VERBOSITY verbose\n"
	  . q{SELECT distsys.raft_put('lonely', '1')});
like($err, qr/ERROR:  YR001: raft_put: no Raft quorum answered within 1000 ms/, 'a write in a minority fails with YR001');
like($err, qr/The write may still commit/, 'and says it may still commit');
cmp_ok(time - $t0, '<', 10, 'within the request timeout');
($o, $err) = raft_try($old, "SET distsys.raft_request_timeout = '1s'; \\set VERBOSITY verbose\n"
	  . q{SELECT distsys.raft_get('after')});
like($err, qr/YR001/, 'so does a linearizable read');
is($old->safe_psql('postgres', q{SELECT distsys.raft_get('after', 'stale')}), '"kill"',
	'a stale read still answers');
$_->start for @down;
ok(defined wait_raft_leader(@nodes), 'with the others back a leader is elected again');

$_->stop for @nodes;
done_testing();
