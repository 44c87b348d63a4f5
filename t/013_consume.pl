# t/013_consume.pl: distsys-relay consume applies each message once through
# the inbox, in partition order, and dead-letters what cannot be applied.
#
# Messages are produced with kcat to distsys-kafka-mock, so the headers
# (message id, sent-at) can be chosen: a failing handler retried then
# dead-lettered while another partition goes on; a message sent before
# the retention horizon (YI001) dead-lettered at once; the same message
# delivered twice applied once; a message without a message id; bad flags
# and an unknown handler refused at start (exit 2); the metrics; SIGTERM
# commits the offsets (a new consumer of the group gets nothing again); the
# database restarted and the broker down and up; a metrics page of 600
# partitions arrives whole at a client that reads late.
use strict;
use warnings;
use IPC::Run;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF pack_sockaddr_in inet_aton);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Test::More;
use DistsysTest;
use RelayTest;

my $node = distsys_node('consume');
my $m = start_mock('mock013', '--topic', 'in:2');
setup_handler($node);
$node->safe_psql('postgres', q{
	CREATE FUNCTION app.strict_one(text, text, jsonb, jsonb) RETURNS void
		LANGUAGE sql STRICT AS 'SELECT';
});

my $port = free_port();

# --- bad flags and handlers: one line, exit 2 --------------------------------
sub run_relay
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'distsys-relay', 'consume', '--db', $node->connstr('postgres'),
		'--brokers', $m->{bs}, @args ], '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout(60));
	return ($? >> 8, $err);
}
my ($rc, $err) = run_relay('--topic', 'in', '--handler', 'app.apply');
is($rc, 2, 'missing --group: exit 2');
like($err, qr/--group is required/, 'missing --group: names the flag');
($rc, $err) = run_relay('--topic', 'in', '--group', 'g');
is($rc, 2, 'missing --handler: exit 2');
like($err, qr/--handler is required/, 'missing --handler: names the flag');
($rc, $err) = run_relay('--topic', 'in', '--group', 'g', '--handler', 'app.nope');
is($rc, 2, 'unknown handler: exit 2');
like($err, qr/no function app\.nope\(topic text, key text, payload jsonb/, 'unknown handler: says what to create');
is(scalar(() = $err =~ /\n/g), 1, 'unknown handler: one line');
($rc, $err) = run_relay('--topic', 'in', '--group', 'g', '--handler', 'app.strict_one');
is($rc, 2, 'STRICT handler: exit 2');
like($err, qr/must not be STRICT/, 'STRICT handler: says why');
($rc, $err) = run_relay('--topic', 'in', '--group', 'g', '--handler', 'app.apply', '--lanes', '4');
is($rc, 2, 'a publish-only flag: exit 2');
like($err, qr/--lanes is not available for the consume command/, 'a publish-only flag: says so');

# --- a failing handler: retried, dead-lettered; other partitions go on ------
my $c = start_consumer('consumer013', $node, $m, '--topic', 'in', '--group', 'g1',
	'--handler', 'app.apply', '--dead-letter-after', '3', '--retry-backoff', '300ms',
	'--metrics-addr', "127.0.0.1:$port");
produce($m, 'in', 0, 'a1', '{"n": 1}', 'distsys-message-id=id-1');
produce($m, 'in', 0, 'a2', '{"fail": true}', 'distsys-message-id=id-2', 'trace=t-2');
produce($m, 'in', 0, 'a3', '{"n": 3}', 'distsys-message-id=id-3');
produce($m, 'in', 1, 'b1', '{"n": 4}', 'distsys-message-id=id-4');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 3 FROM app.applied WHERE k IN ('a1', 'a3', 'b1')"), 'the good messages are applied')
  or diag(relay_log($c));
my $dead = $node->safe_psql('postgres',
	"SELECT message_id, topic, kafka_partition, kafka_offset, attempts, convert_from(payload, 'UTF8'),"
	  . " headers->>'trace' FROM distsys.inbox_dead WHERE consumer = 'g1'");
is($dead, 'id-2|in|0|1|3|{"fail": true}|t-2', 'the failing message is dead-lettered after 3 attempts');
like($node->safe_psql('postgres', "SELECT error FROM distsys.inbox_dead WHERE message_id = 'id-2'"),
	qr/^P0001: cannot apply a2$/, 'with the handler\'s error');
is($node->safe_psql('postgres', "SELECT count(*) FROM distsys.inbox WHERE message_id = 'id-2'"),
	0, 'its claim is not recorded');
is($node->safe_psql('postgres', 'SELECT string_agg(k, \',\' ORDER BY seq) FROM app.applied'
	  . " WHERE k LIKE 'a%'"), 'a1,a3', 'partition order: a3 after a2 was given up');
ok($node->safe_psql('postgres', "SELECT (SELECT at FROM app.applied WHERE k = 'b1')"
	  . " < (SELECT failed_at FROM distsys.inbox_dead WHERE message_id = 'id-2')") eq 't',
	'the other partition was applied while a2 was retried');
like(relay_log($c), qr/message id-2 .* failed, attempt 1 of 3: P0001: cannot apply a2; retry in 300 ms/,
	'each retry is logged');
like($node->safe_psql('postgres', "SELECT headers->>'distsys-message-id' || ' ' || topic"
	  . " FROM app.applied WHERE k = 'a1'"), qr/^id-1 in$/, 'the handler gets topic and headers');

# --- YI001: sent before the retention horizon -> dead-lettered at once -----
produce($m, 'in', 1, 'old', '{"n": 5}', 'distsys-message-id=id-old',
	'distsys-sent-at=2000-01-01T00:00:00.000000Z');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM distsys.inbox_dead WHERE message_id = 'id-old'"), 'an old message is dead-lettered');
like($node->safe_psql('postgres', "SELECT attempts || ' ' || error FROM distsys.inbox_dead"
	  . " WHERE message_id = 'id-old'"), qr/^1 YI001: message "id-old" was sent before/,
	'at the first attempt, with YI001');

# --- the same message twice: applied once ----------------------------------
produce($m, 'in', 1, 'dup', '{"n": 6}', 'distsys-message-id=id-dup');
produce($m, 'in', 1, 'dup', '{"n": 6}', 'distsys-message-id=id-dup');
produce($m, 'in', 1, 'last', '{"n": 7}');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM app.applied WHERE k = 'last'"),
	'a message after the duplicate is applied');
is($node->safe_psql('postgres', "SELECT count(*) FROM app.applied WHERE k = 'dup'"), 1,
	'a duplicate delivery is applied once');
is($node->safe_psql('postgres', "SELECT message_id FROM distsys.inbox"
	  . " WHERE consumer = 'g1' AND message_id LIKE 'in-%'"), 'in-1-4',
	'no message id header: topic-partition-offset');

# --- metrics ---------------------------------------------------------------
my $page = metrics_page($port);
like($page, qr/^distsys_relay_consumer_$_ /m, "metric distsys_relay_consumer_$_")
  for qw(messages_consumed_total messages_applied_total duplicates_skipped_total
  messages_failed_total messages_dead_lettered_total);
like($page, qr/^distsys_relay_consumer_messages_applied_total 5$/m, 'applied counts 5');
like($page, qr/^distsys_relay_consumer_duplicates_skipped_total 1$/m, 'duplicates count 1');
like($page, qr/^distsys_relay_consumer_messages_dead_lettered_total 2$/m, 'dead letters count 2');
like($page, qr/^distsys_relay_consumer_lag\{topic="in",partition="1"\} 0$/m, 'lag per partition');
is(scalar(() = $page =~ /^# TYPE /mg), scalar(() = $page =~ /^# HELP /mg), 'one HELP and TYPE each');

# --- SIGTERM: exit 0 after committing; the group does not get them again ----
is(stop_relay($c), 0, 'SIGTERM: exit 0');
like(relay_log($c), qr/stopped: 5 applied, 1 duplicates skipped, 2 dead-lettered/, 'logs its stop');
$c = start_consumer('consumer013b', $node, $m, '--topic', 'in', '--group', 'g1',
	'--handler', 'app.apply', '--metrics-addr', "127.0.0.1:$port");
produce($m, 'in', 0, 'after', '{"n": 8}');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM app.applied WHERE k = 'after'"),
	'a new consumer of the group applies new messages');
$page = metrics_page($port);
like($page, qr/^distsys_relay_consumer_messages_consumed_total 1$/m,
	'and receives nothing it had committed') or diag($page);

# --- database and broker lost and back: one line each, nothing lost --------
$node->restart;
produce($m, 'in', 1, 'after-restart', '{"n": 9}');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM app.applied WHERE k = 'after-restart'"),
	'applies again after the database restarted');
is(scalar(() = relay_log($c) =~ /database connection lost/g), 1, 'one line for the lost connection');
ok(mock_control($m, 'broker-down all'), 'broker down');
ok(wait_until(sub { relay_log($c) =~ /broker down/ }, 30), 'logs broker down');
ok(mock_control($m, 'broker-up all'), 'broker up');
produce($m, 'in', 0, 'after-broker', '{"n": 10}');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM app.applied WHERE k = 'after-broker'"),
	'applies again after the broker came back');
like(relay_log($c), qr/broker up/, 'logs broker up');
is(stop_relay($c), 0, 'SIGTERM again: exit 0');
is($node->safe_psql('postgres', 'SELECT count(*) FROM distsys.inbox WHERE consumer = \'g1\''), 8,
	'one inbox entry per applied message');

# --- a large metrics page arrives whole at a client that reads late --------
# 600 partitions of a topic with a 200-character name: a lag line each, a
# page of about 160 kB, more than a metrics connection's send buffer
# (64 kB).  The client asks with a small receive buffer and reads only after
# another client got a page: by then the relay has read its request and
# written what the socket took (requests are served in the order they came),
# and the rest must follow as the client reads (one write() cut it off, and
# a page was cut at 64 kB).  The other client's page, meanwhile, shows that
# the waiting answer does not hold the relay's loop up.
my $big = 'lag-' . ('x' x 196);
ok(mock_control($m, "create-topic $big 600"), 'a topic of 600 partitions');
my $big_port = free_port();
$c = start_consumer('consumer013c', $node, $m, '--topic', $big, '--group', 'g-big',
	'--handler', 'app.apply', '--metrics-addr', "127.0.0.1:$big_port");
sub lag_lines { return scalar(() = $_[0] =~ /^distsys_relay_consumer_lag\{/mg); }
ok(wait_until(sub { lag_lines(metrics_page($big_port)) == 600 }, 90),
	'the page has the lag of all 600 partitions')
  or diag(substr(metrics_page($big_port), -300), relay_log($c));

# late_reader(PORT, CODE): ask for the page with a 4 kB receive buffer, run
# CODE, then read the answer (headers and body).
sub late_reader
{
	my ($p, $meanwhile) = @_;
	my $page = '';
	socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
	setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096) or die "setsockopt: $!";
	connect($s, pack_sockaddr_in($p, inet_aton('127.0.0.1'))) or die "connect: $!";
	syswrite($s, "GET /metrics HTTP/1.0\r\n\r\n");
	$meanwhile->();
	local $SIG{ALRM} = sub { die "metrics page not complete within 60 s\n" };
	alarm 60;
	while (sysread($s, my $buf, 65536)) { $page .= $buf; }
	alarm 0;
	close $s;
	return $page;
}
my $other = '';
my ($head, $body) = split /\r\n\r\n/, late_reader($big_port, sub { $other = metrics_page($big_port) }), 2;
like($other, qr/^distsys_relay_consumer_messages_consumed_total 0$/m,
	'another client is served while the late reader waits');
my ($length) = ($head // '') =~ /^Content-Length: (\d+)\r?$/mi;
ok(defined $length && $length > 128 * 1024, 'the page is larger than the socket buffers')
  or diag($head);
is(length($body // ''), $length, 'the late reader gets as many bytes as Content-Length says');
is(lag_lines($body // ''), 600, 'with the lag of every partition');
like($body // '', qr/^distsys_relay_consumer_lag\{topic="\Q$big\E",partition="\d+"\} 0\n\z/m,
	'ending with a whole line');
is(stop_relay($c), 0, 'SIGTERM: exit 0');

done_testing();
