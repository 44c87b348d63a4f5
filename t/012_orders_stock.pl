# t/012_orders_stock.pl: the local message table end to end, with faults.
#
# Node A takes orders: each pgbench transaction inserts an order and
# outbox_sends "reserve stock" (key = order id) in the same transaction,
# one in ten rolled back.  distsys-relay publishes A's outbox to
# distsys-kafka-mock; distsys-relay consume applies the messages to node B's
# stock table through a handler.  During the run the publishing relay, the
# consumer and node B are killed (SIGKILL, kill -9 of the postmaster) at
# random moments and restarted.  Once everything is quiet: stock = initial
# stock - exactly the committed orders' quantities, one inbox entry and one
# reservation per committed order, nothing applied twice, nothing
# dead-lettered.  The duplicates the faults caused (deliveries the inbox
# skipped) are printed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Test::More;
use DistsysTest;
use RelayTest;

my $ORDERS = 3000;
my $SKUS = 20;
my $INITIAL = 1_000_000;
my $seed = $ENV{DISTSYS_SEED} // int(rand(1_000_000));
srand($seed);
diag("random seed $seed (set DISTSYS_SEED to replay the kill schedule)");

my $a = distsys_node('orders');
my $b = distsys_node('stock');
my $m = start_mock('mock012', '--topic', 'reserve-stock:4');

$a->safe_psql('postgres', q{
	CREATE TABLE orders (id bigserial PRIMARY KEY, sku text NOT NULL, qty int NOT NULL);
});
$b->safe_psql('postgres', qq{
	CREATE TABLE stock (sku text PRIMARY KEY, qty bigint NOT NULL);
	INSERT INTO stock SELECT 'sku-' || i, $INITIAL FROM generate_series(1, $SKUS) i;
	-- not unique on purpose: a second application would show here
	CREATE TABLE reservations (order_id bigint NOT NULL, sku text, qty int);
	CREATE FUNCTION reserve_stock(topic text, key text, payload jsonb, headers jsonb)
	RETURNS void LANGUAGE plpgsql AS \$\$
	BEGIN
		UPDATE stock SET qty = qty - (payload->>'qty')::int WHERE sku = payload->>'sku';
		INSERT INTO reservations VALUES ((payload->>'order_id')::bigint, payload->>'sku',
			(payload->>'qty')::int);
	END \$\$;
});

my $port = do {
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0');
	my $p = $s->sockport;
	close $s;
	$p;
};
my @consumer_args = ('--topic', 'reserve-stock', '--group', 'stock',
	'--handler', 'public.reserve_stock', '--batch-size', '200',
	'--metrics-addr', "127.0.0.1:$port");
my $relay = start_relay('relay012', $a, $m);
my $consumers = 0;
my $consumer = start_consumer('consumer012-0', $b, $m, @consumer_args);
my $duplicates = 0;
ok(wait_until(sub { relay_log($consumer) =~ /partitions assigned: 4/ }, 30),
	'the consumer joins its group') or diag(relay_log($consumer));

# counter(NAME): a counter of the running consumer, 0 when unreachable.
sub counter
{
	my ($name) = @_;
	my ($n) = metrics_page($port) =~ /^distsys_relay_consumer_${name} (\d+)$/m;
	return $n // 0;
}

# applying(): once the running consumer has its partitions and applies.
sub applying
{
	return wait_until(sub {
		relay_log($consumer) =~ /partitions assigned/ && counter('messages_applied_total') > 0 }, 30);
}

# --- the workload: orders on A, 150 per second -------------------------------
my $script = "$PostgreSQL::Test::Utils::tmp_check/orders.sql";
open my $fh, '>', $script or die;
print $fh <<"SQL";
\\set sku random(1, $SKUS)
\\set qty random(1, 5)
\\set rb random(1, 10)
BEGIN;
INSERT INTO orders (sku, qty) VALUES ('sku-' || :sku, :qty) RETURNING id \\gset
SELECT distsys.outbox_send('reserve-stock', jsonb_build_object('order_id', :id, 'sku', 'sku-' || :sku, 'qty', :qty), :id::text);
\\if :rb = 1
ROLLBACK;
\\else
COMMIT;
\\endif
SQL
close $fh;
my ($out, $err) = ('', '');
my $t0 = time;
my $pgbench = IPC::Run::start([ 'pgbench', '-n', '-c', 4, '-j', 2, '-t', $ORDERS / 4,
	'-R', 150, '-f', $script, '-h', $a->host, '-p', $a->port, 'postgres' ],
	'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(180));

# --- faults at random moments while it runs --------------------------------
# Each fault waits until the consumer has its partitions and applies, so
# every kill hits a consumer at work.
my @faults = ('relay', 'consumer', 'node B') x 2;
for my $i (0 .. $#faults)
{
	my $j = $i + int(rand(@faults - $i));
	@faults[ $i, $j ] = @faults[ $j, $i ];
}
for my $fault (@faults)
{
	sleep(0.5 + rand(1.5));
	applying() or diag('the consumer does not apply: ' . relay_log($consumer));
	note(sprintf('%.1f s: killing %s', time - $t0, $fault));
	if ($fault eq 'relay')
	{
		kill_relay($relay);
		$relay = start_relay('relay012', $a, $m);
	}
	elsif ($fault eq 'consumer')
	{
		$duplicates += counter('duplicates_skipped_total');
		kill_relay($consumer);
		$consumers++;
		$consumer = start_consumer("consumer012-$consumers", $b, $m, @consumer_args);
	}
	else
	{
		crash_postmaster($b);
	}
}
$pgbench->finish or diag("pgbench: $err");
note(sprintf('%.1f s: workload done', time - $t0));

# --- quiescence --------------------------------------------------------------
my $committed = $a->safe_psql('postgres', 'SELECT count(*) FROM orders');
cmp_ok($committed, '>', $ORDERS * 0.8, "$committed of $ORDERS orders committed");
ok(wait_outbox_empty($a, 90), 'the outbox on A drains') or diag(relay_log($relay));
ok(wait_until(sub {
	$b->safe_psql('postgres', 'SELECT count(*) FROM distsys.inbox') >= $committed }, 90),
	'B claimed every committed order') or diag(relay_log($consumer));
my $elapsed = time - $t0;

# --- exactly once ------------------------------------------------------------
my $expected = $a->safe_psql('postgres',
	"SELECT string_agg(sku || ':' || ($INITIAL - coalesce(s, 0)), ',' ORDER BY sku)"
	  . " FROM (SELECT 'sku-' || i AS sku FROM generate_series(1, $SKUS) i) k"
	  . " LEFT JOIN (SELECT sku, sum(qty) AS s FROM orders GROUP BY sku) o USING (sku)");
my $stock = $b->safe_psql('postgres',
	"SELECT string_agg(sku || ':' || qty, ',' ORDER BY sku) FROM stock");
is($stock, $expected, 'stock = initial stock - exactly the committed orders');
my ($n, $distinct) = split /\|/, $b->safe_psql('postgres',
	'SELECT count(*), count(DISTINCT order_id) FROM reservations');
is($n, $committed, 'one reservation per committed order');
is($distinct, $n, 'no order applied twice');
my $orders = $a->safe_psql('postgres', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM orders');
is($b->safe_psql('postgres', 'SELECT string_agg(order_id::text, \',\' ORDER BY order_id) FROM reservations'),
	$orders, 'the reserved orders are exactly the committed ones (none rolled back)');
is($b->safe_psql('postgres', "SELECT count(*) FROM distsys.inbox WHERE consumer = 'stock'"),
	$committed, 'the inbox on B has one entry per committed order');
is($b->safe_psql('postgres', 'SELECT count(*) FROM distsys.inbox_dead'), 0, 'nothing dead-lettered on B');
is($a->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox_dead'), 0, 'nothing dead-lettered on A');

$duplicates += counter('duplicates_skipped_total');
my $in_topic = @{ consume($m, 'reserve-stock') };
diag(sprintf('%d orders committed, %d messages in the topic (%d published twice), '
	  . '%d deliveries skipped as duplicates by the inbox (counted by the consumers '
	  . 'before each kill; a killed one\'s last moments are not counted); '
	  . 'quiet after %.1f s', $committed, $in_topic, $in_topic - $committed,
	$duplicates, $elapsed));
is(stop_relay($consumer), 0, 'the consumer stops on SIGTERM with exit 0');
is(stop_relay($relay), 0, 'the relay stops on SIGTERM with exit 0');

done_testing();
