# Paxos among three PostgreSQL nodes (issue 17): decree instances and
# CASPaxos registers through their SQL calls.
#
# - paxos_propose returns the chosen value; a later, different proposal
#   of the same instance (from another node) returns the first value;
#   every node learns it (paxos_learned) within a few seconds, and
#   paxos_instances shows it with its proposal number; an instance nobody
#   proposed is NULL; decree instances and register keys of one name are
#   apart.
# - paxos_cas and paxos_read: expected NULL means absent, a present key
#   (even one holding JSON null) fails it; a stale expected value fails;
#   jsonb equality; JSON null is not SQL NULL; every node reads the same.
# - Bad arguments give their SQLSTATEs (NULL: 22004; empty or over the
#   documented 1022 bytes: 22023, counted in bytes); on a server where
#   Raft is not configured the calls are 55000.
# - An ordinary role may read (paxos_read, paxos_learned, paxos_instances)
#   but not call paxos_propose or paxos_cas, write distsys.paxos_learned
#   or call raft_deliver; a member of distsys_raft_user may write.
# - A member of distsys_raft_peer that sends malformed Paxos items (of each
#   kind) or a forged catch-up row that is not JSON: they are dropped and
#   logged, and Paxos goes on.
# - A node stopped while instances are chosen learns them after its
#   restart, with nobody proposing them again (catch-up).
# - Acceptor state survives kill -9 at synchronous_commit = off: with one
#   node down, an instance chosen and a register written just before the
#   two others are killed (their learned rows, committed asynchronously,
#   likely lost) keep their values: every node's new proposal returns the
#   chosen value, the node that was down first; an instance chosen long
#   before (its learned rows flushed, its acceptor state maybe collected)
#   too.
# - With round trips (240 ms) longer than a phase's first wait (the
#   150 ms election timeout), cas, read and propose still complete, and a
#   cas swaps rather than answering "unknown" (the phase wait adapts).
# - With two of three nodes down, propose, cas and read fail with YR001
#   within distsys.raft_request_timeout.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DistsysTest;
use RaftTest;

my @nodes = raft_cluster(3, 'paxos');
ok(defined wait_raft_leader(@nodes), 'three nodes run their Raft workers and agree on a leader');
my ($n1, $n2, $n3) = @nodes;

# run(NODE, SQL): safe_psql on the postgres database.
sub run { return $_[0]->safe_psql('postgres', $_[1]); }

# learned_within(NODE, INSTANCE, WANT, SECONDS): whether NODE's
# paxos_learned(INSTANCE) shows WANT (jsonb text) within SECONDS.
sub learned_within
{
	my ($node, $instance, $want, $seconds) = @_;
	my $deadline = time + $seconds;
	while (1)
	{
		my ($rc, $out) = $node->psql('postgres',
			"SELECT coalesce(distsys.paxos_learned('$instance')::text, 'NULL')");
		return 1 if $rc == 0 && $out eq $want;
		return 0 if time > $deadline;
		select(undef, undef, undef, 0.1);
	}
}

# sqlstate(NODE, SQL): the SQLSTATE SQL fails with ('' if it succeeds).
sub sqlstate
{
	my ($node, $sql) = @_;
	my ($out, $err) = raft_try($node, "\\set VERBOSITY verbose\n$sql");
	return $err =~ /ERROR:  ([0-9A-Z]{5}):/ ? $1 : '';
}

# ---- decree instances
is(run($n1, q{SELECT distsys.paxos_propose('i1', '{"a": 1}')}), '{"a": 1}',
	'paxos_propose returns the chosen value, its own when it is the first');
is(run($n2, q{SELECT distsys.paxos_propose('i1', '"other"')}), '{"a": 1}',
	'a different proposal of the same instance from another node returns the first value');
is(run($n3, q{SELECT distsys.paxos_propose('i1', '{"a":1}')}), '{"a": 1}',
	'and so does one from the third');
for my $n (@nodes)
{
	ok(learned_within($n, 'i1', '{"a": 1}', 5), $n->name . ': paxos_learned gives the chosen value within 5 s');
}
is(run($n2, q{SELECT value::text || ' ' || (proposal_round > 0) || ' ' || (proposal_node BETWEEN 1 AND 3)
	|| ' ' || (learned_at BETWEEN now() - interval '1 minute' AND now())
	FROM distsys.paxos_instances WHERE instance = 'i1'}),
	'{"a": 1} true true true', 'paxos_instances has the instance, its value, proposal number and time');
is(run($n1, q{SELECT coalesce(distsys.paxos_learned('never-proposed')::text, 'NULL')}), 'NULL',
	'an instance nobody proposed is not learned');
is(run($n1, q{SELECT count(*) FROM distsys.paxos_instances WHERE instance = 'never-proposed'}), '0',
	'and has no row');
is(run($n3, q{SELECT distsys.paxos_propose('i2', 'null')}), 'null', 'JSON null can be proposed and chosen');
is(run($n1, q{SELECT distsys.paxos_propose('i2', '5')}), 'null', 'and stays chosen');
is(run($n1, q{SELECT distsys.paxos_propose(repeat('x', 1022), '1022')}), '1022',
	'an instance name of 1022 bytes (the documented limit) is accepted');
is(run($n1, q{SELECT distsys.paxos_cas(repeat('k', 1022), NULL, '1022')}), 't',
	'and so is a key of 1022 bytes');
is(run($n1, q{SELECT coalesce(distsys.paxos_read('i1')::text, 'NULL')}), 'NULL',
	'a register of the same name as a decree instance is apart from it');

# ---- registers
is(run($n1, q{SELECT coalesce(distsys.paxos_read('k')::text, 'NULL')}), 'NULL', 'an absent key reads as NULL');
is(run($n1, q{SELECT distsys.paxos_cas('k', '1', '2')}), 'f', 'paxos_cas expecting a value fails on an absent key');
is(run($n2, q{SELECT distsys.paxos_cas('k', NULL, '1')}), 't', 'paxos_cas expecting absence creates the key');
is(run($n3, q{SELECT distsys.paxos_cas('k', NULL, '5')}), 'f', 'and then fails, the key being present');
is(run($n3, q{SELECT distsys.paxos_read('k')}), '1', 'another node reads the value');
is(run($n1, q{SELECT distsys.paxos_cas('k', '2', '3')}), 'f', 'a stale expected value fails');
is(run($n1, q{SELECT distsys.paxos_cas('k', '1', 'null')}), 't', 'the right one swaps, here to JSON null');
is(run($n2, q{SELECT coalesce(distsys.paxos_read('k')::text, 'SQL NULL')}), 'null',
	'a key holding JSON null reads as JSON null, not as SQL NULL');
is(run($n2, q{SELECT distsys.paxos_cas('k', NULL, '6')}), 'f', 'a key holding JSON null is not absent');
is(run($n3, q{SELECT distsys.paxos_cas('k', 'null', '{"b": [1, 2]}')}), 't', 'JSON null can be expected');
is(run($n1, q{SELECT distsys.paxos_cas('k', '{"b":[1,2]}', '7')}), 't',
	'expected values compare as jsonb, whatever the spacing');
is(join(',', map { run($_, q{SELECT distsys.paxos_read('k')}) } @nodes), '7,7,7', 'every node reads the last value');
is(run($n1, q{SELECT distsys.paxos_cas('k', '7', '8') AND distsys.paxos_cas('k', '8', '9')}), 't',
	'two swaps in one statement');
is(run($n2, q{SELECT distsys.paxos_read('k')}), '9', 'both took effect');

# ---- bad arguments
for my $case (
	[ q{SELECT distsys.paxos_propose(NULL, '1')}, '22004', 'NULL instance' ],
	[ q{SELECT distsys.paxos_propose('', '1')}, '22023', 'empty instance' ],
	[ q{SELECT distsys.paxos_propose(repeat('x', 1023), '1')}, '22023', 'instance of 1023 bytes' ],
	[ q{SELECT distsys.paxos_propose(repeat('é', 512), '1')}, '22023', 'instance of 512 characters, 1024 bytes' ],
	[ q{SELECT distsys.paxos_propose('bad', NULL)}, '22004', 'NULL proposed value' ],
	[ q{SELECT distsys.paxos_cas(NULL, NULL, '1')}, '22004', 'NULL key of a cas' ],
	[ q{SELECT distsys.paxos_cas('', NULL, '1')}, '22023', 'empty key of a cas' ],
	[ q{SELECT distsys.paxos_cas(repeat('k', 1023), NULL, '1')}, '22023', 'key of a cas of 1023 bytes' ],
	[ q{SELECT distsys.paxos_cas('k', '9', NULL)}, '22004', 'NULL new value' ],
	[ q{SELECT distsys.paxos_read(NULL)}, '22004', 'NULL key of a read' ],
	[ q{SELECT distsys.paxos_read('')}, '22023', 'empty key of a read' ],
	[ q{SELECT distsys.paxos_read(repeat('k', 1023))}, '22023', 'key of a read of 1023 bytes' ])
{
	is(sqlstate($n1, $case->[0]), $case->[1], "bad input: $case->[2] is $case->[1]");
}
is(run($n1, q{SELECT coalesce(distsys.paxos_learned('bad')::text, 'NULL') || ' ' || distsys.paxos_read('k')::text}),
	'NULL 9', 'refused calls changed nothing');

# a server without Raft settings runs no Paxos
my $plain = distsys_node('plain');
for my $case (
	[ q{SELECT distsys.paxos_propose('p', '1')}, 'paxos_propose' ],
	[ q{SELECT distsys.paxos_cas('p', NULL, '1')}, 'paxos_cas' ],
	[ q{SELECT distsys.paxos_read('p')}, 'paxos_read' ])
{
	is(sqlstate($plain, $case->[0]), '55000', "$case->[1] on a server where Raft is not configured is 55000");
}
$plain->stop;

# ---- an ordinary role
for my $n (@nodes)
{
	durable_psql($n, 'CREATE ROLE mallory LOGIN');
}
my ($o, $err) = raft_try($n1, q{SET ROLE mallory; SELECT distsys.paxos_propose('m1', '1')});
like($err, qr/permission denied for function paxos_propose/, 'an ordinary role cannot call paxos_propose');
($o, $err) = raft_try($n1, q{SET ROLE mallory; SELECT distsys.paxos_cas('k', '9', '10')});
like($err, qr/permission denied for function paxos_cas/, 'nor paxos_cas');
for my $case (
	[ q{INSERT INTO distsys.paxos_learned SELECT * FROM distsys.paxos_learned}, 'insert into' ],
	[ q{DELETE FROM distsys.paxos_learned}, 'delete from' ],
	[ q{TRUNCATE distsys.paxos_learned}, 'truncate' ])
{
	($o, $err) = raft_try($n1, "SET ROLE mallory; $case->[0]");
	like($err, qr/permission denied for table paxos_learned/, "nor $case->[1] distsys.paxos_learned");
}
($o, $err) = raft_try($n1, q{SET ROLE mallory; SELECT distsys.raft_deliver('\x00')});
like($err, qr/permission denied for function raft_deliver/, 'nor deliver a Raft or Paxos batch');
is(run($n1, q{SET ROLE mallory; SELECT distsys.paxos_read('k')::text || ' ' || distsys.paxos_learned('i1')::text
	|| ' ' || (SELECT count(*) FROM distsys.paxos_instances WHERE instance = 'i1')}),
	'9 {"a": 1} 1', 'but it may read a register, the learned values and paxos_instances');
is(run($n1, q{SELECT coalesce(distsys.paxos_learned('m1')::text, 'NULL') || ' ' || distsys.paxos_read('k')::text}),
	'NULL 9', 'and its refused calls changed nothing');
durable_psql($n1, 'GRANT distsys_raft_user TO mallory');
is(run($n1, q{SET ROLE mallory; SELECT distsys.paxos_cas('k', '9', '10')}), 't',
	'a member of distsys_raft_user may call paxos_cas');
is(run($n1, q{SET ROLE mallory; SELECT distsys.paxos_propose('m1', '"mallory"')}), '"mallory"',
	'and paxos_propose');

# ---- a member of distsys_raft_peer (what another node's worker logs in
# as) sending malformed Paxos items: each kind's decoder refuses its item,
# logs it, and Paxos goes on; a forged catch-up answer whose value is not
# JSON is dropped whole.
durable_psql($n1, 'CREATE ROLE peer LOGIN IN ROLE distsys_raft_peer');
my ($cluster) = slurp_file($n1->data_dir . '/pg_distsys/raft/identity') =~ /cluster_id=([0-9a-f]{32})/;
sub envelope
{
	my ($c, $from, $to, $count) = @_;
	return unpack('H*', 'DSRB') . $c . unpack('H*', pack('Q<Q<L<', $from, $to, $count));
}
sub item { my ($kind, $body) = @_; return sprintf('%02x', $kind) . unpack('H*', pack('L<', length $body)) . unpack('H*', $body); }
my $junk = join '', map { item($_, "\xff\xff\xff") } 8 .. 11;
my $off = -s $n1->logfile;
run($n1, "SET ROLE peer; SELECT distsys.raft_deliver('\\x" . envelope($cluster, 2, 1, 4) . "$junk')");
my $tell = pack('CL<Q<L<a*CL<a*Q<Q<', 0, 1, 1, 6, 'forged', 1, 4, '{bad', 1, 2);
run($n1, "SET ROLE peer; SELECT distsys.raft_deliver('\\x" . envelope($cluster, 2, 1, 1) . item(10, $tell) . "')");
is(run($n1, q{SELECT distsys.paxos_propose('after-junk', '1')}), '1',
	'malformed Paxos items from a member are dropped and Paxos goes on');
my $logged = 0;
for (1 .. 100)
{
	my @m = slurp_file($n1->logfile, $off) =~
	  /distsys paxos: a malformed (?:message|catch-up question|catch-up answer|chosen value) from node 2/g;
	last if ($logged = @m) >= 4;
	select(undef, undef, undef, 0.1);
}
is($logged, 4, 'each of the four is logged as malformed');
is(run($n1, q{SELECT coalesce(distsys.paxos_learned('forged')::text, 'none')}), 'none',
	'a forged catch-up row that is not JSON is not learned');

# ---- catch-up: n3 is down while instances are chosen
$n3->stop;
my %chosen;
for my $i (1 .. 5)
{
	$chosen{"c$i"} = run($n1, "SELECT distsys.paxos_propose('c$i', '$i')");
}
is(join(',', map { $chosen{"c$_"} } 1 .. 5), '1,2,3,4,5', 'with one node down the two others choose values');
$n3->start;
my $t0 = time;
wait_raft_leader(@nodes);
my $learned = 0;
for my $i (1 .. 5)
{
	$learned += learned_within($n3, "c$i", $i, 10);
}
is($learned, 5, 'the node that was down learns every value chosen meanwhile after its restart, nobody proposing');
note(sprintf('it learned them within %.1f s', time - $t0));
cmp_ok(time - $t0, '<', 10, 'within 10 s');

# ---- durability: commits at synchronous_commit = off with the WAL
# writer 2 s behind, so that a learned row (committed asynchronously) can
# be lost in a crash, and then only the acceptors' own synced files
# remember the value
for my $n (@nodes)
{
	run($n, q{ALTER SYSTEM SET synchronous_commit = off; ALTER SYSTEM SET wal_writer_delay = '2000ms';
		SELECT pg_reload_conf()});
}
# an instance whose learned rows are durable on every node, so that every
# node may have collected its acceptor state (design/paxos.md, finished
# instances)
is(run($n1, q{SELECT distsys.paxos_propose('dur-old', '"first"')}), '"first"', 'an instance chosen long before the crash');
for my $n (@nodes)
{
	learned_within($n, 'dur-old', '"first"', 5);
	my $lsn = run($n, 'SELECT pg_current_wal_insert_lsn()');
	ok($n->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$lsn'"),
		$n->name . ': its learned row is flushed');
}
# n1 down; an instance chosen and a register written by n2 and n3 just
# before both are killed: their learned rows are likely lost, and n1
# never had one, so n1 can only get the value from the acceptors' files
$n1->stop;
is(run($n2, q{SELECT distsys.paxos_propose('dur-new', '"first"')}), '"first"', 'an instance chosen just before the crash');
is(run($n3, q{SELECT distsys.paxos_cas('durk', NULL, '41')}), 't', 'a register written just before the crash');
kill_postmaster($_) for ($n2, $n3);
$_->start for @nodes;
ok(defined wait_raft_leader(@nodes), 'the three nodes run again after kill -9 of two and a restart of the third');
note('learned rows of dur-new that survived the crash: '
	  . join(', ', map { $_->name . ' ' . run($_, q{SELECT count(*) FROM distsys.paxos_learned WHERE instance = 'dur-new'}) } @nodes));
for my $n ($n1, $n2, $n3)
{
	is(run($n, "SELECT distsys.paxos_propose('dur-new', '\"second-$n->{raft_id}\"')"), '"first"',
		$n->name . ': after the crash a new proposal of the instance chosen just before it returns the chosen value');
	is(run($n, "SELECT distsys.paxos_propose('dur-old', '\"second-$n->{raft_id}\"')"), '"first"',
		$n->name . ': and of the one chosen long before');
}
is(join(',', map { run($_, q{SELECT distsys.paxos_read('durk')}) } @nodes), '41,41,41',
	'the register holds its value on every node');
is(run($n2, q{SELECT distsys.paxos_cas('durk', NULL, '1')}), 'f', 'and is still present for a cas');
for my $n (@nodes)
{
	ok(learned_within($n, 'dur-new', '"first"', 10), $n->name . ': paxos_learned gives the value');
}

# ---- round trips longer than a phase's first wait (150 ms here): every
# link held 120 ms each way by the fault setting.  A fixed phase wait
# shorter than a round trip never completes (each round times out before
# its promises arrive, and a write answers "unknown"); the wait adapts.
for my $i (0 .. 2)
{
	my $others = join ' ', map { "$_:120" } grep { $_ != $i + 1 } 1 .. 3;
	run($nodes[$i], "ALTER SYSTEM SET distsys.raft_fault_delay_to = '$others'; SELECT pg_reload_conf()");
}
sleep 1;
is(run($n1, q{SELECT distsys.paxos_cas('slow', NULL, '1')}), 't',
	'with 240 ms round trips a paxos_cas completes, and swaps');
is(run($n2, q{SELECT distsys.paxos_cas('slow', '1', '2')}), 't', 'so does one from another node');
is(run($n3, q{SELECT distsys.paxos_read('slow')}), '2', 'and a paxos_read from a third');
is(run($n3, q{SELECT distsys.paxos_propose('slow-decree', '"x"')}), '"x"', 'and a paxos_propose');
for my $n (@nodes)
{
	run($n, "ALTER SYSTEM RESET distsys.raft_fault_delay_to; SELECT pg_reload_conf()");
}

# ---- a minority: two nodes down
$_->stop('immediate') for ($n2, $n3);
for my $case (
	[ q{SELECT distsys.paxos_propose('lonely', '1')}, 'paxos_propose' ],
	[ q{SELECT distsys.paxos_cas('k', '10', '11')}, 'paxos_cas' ],
	[ q{SELECT distsys.paxos_read('k')}, 'paxos_read' ])
{
	my $start = time;
	my $state = sqlstate($n1, "SET distsys.raft_request_timeout = '1s';\n$case->[0]");
	my $took = time - $start;
	is($state, 'YR001', "with two of three nodes down $case->[1] fails with YR001");
	cmp_ok($took, '<', 5, "within the 1 s request timeout (took " . sprintf('%.1f', $took) . ' s)');
	cmp_ok($took, '>=', 0.9, 'having waited for it');
}
$_->start for ($n2, $n3);
wait_raft_leader(@nodes);
is(run($n2, q{SELECT distsys.paxos_propose('back', '1')}), '1', 'with the others back a proposal succeeds again');

$_->stop for @nodes;
done_testing();
