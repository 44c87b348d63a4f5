# t/018_outbox_durable.pl: the relay publishes only what a crash or a
# failover keeps, and a message id is never handed out twice.
#
# 1. synchronous_commit = off (wal_writer_delay 10 s, so an asynchronous
#    commit stays unflushed): messages sent with their business rows are
#    relayed, then the postmaster is SIGKILLed.  After the restart every
#    message Kafka has must have its business row (a send commits durably
#    whatever the session says), and messages sent after the restart must
#    not reuse a relayed message's id.
# 2. A failover to an asynchronous standby that lacks the last 100 sends.
#    With --standbys 1 the relay holds them back while the standby is down;
#    a relay without it publishes them (the documented cost of asynchronous
#    replication); after the promotion the new primary hands out the same
#    outbox ids again, and the message ids still differ (new timeline).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Test::More;
use DistsysTest;
use RelayTest;

my $m = start_mock('mock018');

# send(NODE, TOPIC, WHAT, FROM, TO): one transaction per 10 orders, each
# order a business row and its message in one transaction.
sub send_orders
{
	my ($node, $topic, $what, $from, $to) = @_;
	my $sql = '';
	for (my $i = $from; $i <= $to; $i += 10)
	{
		my $last = $i + 9 > $to ? $to : $i + 9;
		$sql .= "BEGIN; INSERT INTO orders SELECT g, '$what' FROM generate_series($i, $last) g;"
		  . " SELECT count(distsys.outbox_send('$topic', jsonb_build_object('order', g, 'what', '$what'),"
		  . " 'o' || g)) FROM generate_series($i, $last) g; COMMIT;\n";
	}
	$node->safe_psql('postgres', $sql);
}

# by_id(MSGS): message id => { payload => 1 }.
sub by_id
{
	my %ids;
	$ids{ $_->[1] }{ $_->[2] } = 1 for @{ $_[0] };
	return \%ids;
}

# reused(MSGS): message ids that carry two different payloads.
sub reused
{
	my $ids = by_id($_[0]);
	return grep { keys %{ $ids->{$_} } > 1 } keys %$ids;
}

sub lanes_taken
{
	my ($node) = @_;
	return wait_until(sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM distsys.dlocks WHERE name LIKE 'distsys.relay.lane.%'") > 0 });
}

subtest 'synchronous_commit = off, postmaster SIGKILLed after the relay published' => sub {
	my $node = distsys_node('durable', "synchronous_commit = off\nwal_writer_delay = 10s\n");
	$node->safe_psql('postgres', 'CREATE TABLE orders (id int PRIMARY KEY, what text)');
	my $r = start_relay('relay018a', $node, $m);
	ok(lanes_taken($node), 'the relay took its lanes');
	send_orders($node, 'crash', 'before', 1, 40);
	ok(wait_until(sub { $node->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox') == 0 }, 30),
		'relayed and acknowledged');
	crash_postmaster($node);

	my $msgs = consume($m, 'crash');
	my %kept = map { $_ => 1 } split /\n/,
	  $node->safe_psql('postgres', 'SELECT id FROM orders');
	my @phantoms = grep { !$kept{ ($_->[2] =~ /"order": (\d+)/)[0] } } @$msgs;
	is(scalar(@phantoms), 0,
		'every relayed message has its business row after the crash (' . scalar(@$msgs) . ' relayed)');

	send_orders($node, 'crash', 'after', 41, 80);
	ok(wait_outbox_empty($node, 30), 'messages sent after the restart relayed');
	$msgs = consume($m, 'crash');
	is(scalar(keys %{ by_id($msgs) }), 80, 'every order has its message id in Kafka');
	is_deeply([ reused($msgs) ], [], 'no message id carries two different messages');
	stop_relay($r);
	$node->stop;
};

subtest 'failover to an asynchronous standby that lacks the last sends' => sub {
	my $primary = PostgreSQL::Test::Cluster->new('fo_primary');
	$primary->init(allows_streaming => 1);
	$primary->start;
	$primary->safe_psql('postgres',
		'CREATE EXTENSION distsys; CREATE TABLE orders (id int PRIMARY KEY, what text)');
	$primary->backup('b018');
	my $standby = PostgreSQL::Test::Cluster->new('fo_standby');
	$standby->init_from_backup($primary, 'b018', has_streaming => 1);
	$standby->start;

	my $r = start_relay('relay018b', $primary, $m, '--standbys', '1');
	ok(lanes_taken($primary), 'the relay took its lanes');
	send_orders($primary, 'fo', 'before', 1, 20);
	ok(wait_outbox_empty($primary, 30), 'with the standby streaming, --standbys 1 relays');
	$primary->wait_for_catchup($standby);
	$standby->stop('fast');

	send_orders($primary, 'fo', 'lost', 21, 120);
	sleep 2;
	is($primary->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox'), 100,
		'with the standby down, --standbys 1 holds the new rows back');
	is(scalar(grep { $_->[2] =~ /"lost"/ } @{ consume($m, 'fo') }), 0, 'none of them reached Kafka');
	stop_relay($r);

	$r = start_relay('relay018c', $primary, $m);
	ok(wait_outbox_empty($primary, 30), 'a relay without --standbys publishes them');
	stop_relay($r);
	$primary->stop('immediate');

	$standby->start;
	$standby->promote;
	is($standby->safe_psql('postgres', "SELECT count(*) FROM orders WHERE what = 'lost'"), 0,
		'the promoted standby never had the last 100 orders');
	$r = start_relay('relay018d', $standby, $m);
	send_orders($standby, 'fo', 'after', 121, 220);
	ok(wait_outbox_empty($standby, 30), 'the new primary relays');
	stop_relay($r);

	my $msgs = consume($m, 'fo');
	my %num = (lost => {}, after => {});
	for (@$msgs)
	{
		my ($what) = $_->[2] =~ /"what": "(\w+)"/;
		my ($tli, $id) = $_->[1] =~ /^\d+-\d+-(\d+)-\d+-(\d+)$/;
		$num{$what}{$id} = $tli if $what ne 'before';
	}
	is(scalar(keys %{ $num{after} }), 100, 'every order sent after the failover reached Kafka');
	my @again = grep { exists $num{lost}{$_} } keys %{ $num{after} };
	ok(@again > 0, 'the new primary drew outbox ids again (' . scalar(@again) . ' of them)');
	is_deeply([ sort { $a <=> $b } grep { $num{after}{$_} != 2 } keys %{ $num{after} } ], [],
		'messages of the new primary carry timeline 2');
	is_deeply([ reused($msgs) ], [], 'no message id carries two different messages');
	$standby->stop;
};

done_testing();
