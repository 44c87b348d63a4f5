# t/014_relay_hostile.pl: distsys-relay with what others choose: outbox
# headers (many, long, empty, null), Kafka records whose key, headers or
# message id are not text, message ids made to forge log lines, and idle
# clients that fill the metrics endpoint.
#
# Headers: messages with 2, 100 and 5,000 headers (names up to 2,000
# bytes, values up to 100 kB, empty and null values, non-ASCII text) go
# through the publishing relay and come back, through the consume command,
# exactly as sent (the relay's decoder once wrote n - 1 bytes past its
# buffer for n headers).  Bad records: a key, a header value, a message id
# that is not UTF-8 text and a key with a NUL byte are dead-lettered,
# escaped, and the partition goes on (they used to fail and then fail their
# dead letter too, forever).  Log lines: a message id with a newline and an
# escape sequence stays inside its line, escaped.  Metrics: more idle
# connections than the endpoint has slots neither lock a scraper out nor
# make the relay spin.
#
# tools/test.sh runs this file a second time against the programs built
# with AddressSanitizer and UndefinedBehaviorSanitizer.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Test::More;
use DistsysTest qw(distsys_node slurp);
use RelayTest;

my $node = distsys_node('hostile');
my $m = start_mock('mock014', '--topic', 'hdr:1', '--topic', 'in:1');
setup_handler($node);
$node->safe_psql('postgres', 'CREATE TABLE sent (k text, headers jsonb)');

my $relay_port = free_port();
my $relay = start_relay('relay014', $node, $m, '--metrics-addr', "127.0.0.1:$relay_port");
my $c = start_consumer('consumer014', $node, $m, '--topic', 'hdr,in', '--group', 'g014',
	'--handler', 'app.apply', '--dead-letter-after', '2', '--retry-backoff', '100ms');

# --- 2, 100 and 5,000 headers, byte-exact ----------------------------------
$node->safe_psql('postgres', q{
	WITH h(k, headers) AS (VALUES
		('h2', jsonb_build_object(repeat('n', 300) || 'ä', repeat('v€', 5000), 'empty', '')),
		('h100', (SELECT jsonb_object_agg('name-' || i || repeat('x', i),
				CASE WHEN i % 17 = 0 THEN NULL WHEN i % 10 = 0 THEN '' ELSE repeat('ü', i) END)
			FROM generate_series(1, 100) i)),
		('h5000', (SELECT jsonb_object_agg(k, v) FROM (
			SELECT 'h' || i || '-' || repeat('n', i % 40) AS k,
				CASE WHEN i % 13 = 0 THEN NULL WHEN i % 7 = 0 THEN ''
					 ELSE repeat('v', i % 60) || '😀' END AS v
			  FROM generate_series(1, 4998) i
			UNION ALL SELECT repeat('N', 2000), repeat('V', 100000)
			UNION ALL SELECT '', 'empty name') x)))
	INSERT INTO sent SELECT k, headers FROM h;
	SELECT distsys.outbox_send('hdr', jsonb_build_object('k', k), k, headers) FROM sent;
});
is($node->safe_psql('postgres', 'SELECT string_agg(k || \'=\' || (SELECT count(*) FROM jsonb_object_keys(headers)), \',\' ORDER BY k) FROM sent'),
	'h100=100,h2=2,h5000=5000', 'messages with 2, 100 and 5,000 headers sent');
ok($node->poll_query_until('postgres', "SELECT count(*) = 3 FROM app.applied WHERE topic = 'hdr'"),
	'all three arrive') or diag(relay_log($relay), relay_log($c));
is($node->safe_psql('postgres', q{
	SELECT string_agg(s.k, ',' ORDER BY s.k) FROM sent s JOIN app.applied k ON k.k = s.k
	 WHERE k.headers - '{distsys-message-id,distsys-sent-at,content-type}'::text[] = s.headers}),
	'h100,h2,h5000', 'every header name and value arrives byte-exact (null and empty ones too)');

# --- records that are not text: dead-lettered, escaped; the partition goes on
# produce_bytes(TOPIC, KEY, PAYLOAD, HEADERS...): one message with kcat, the
# key read from stdin (-K), so it may hold any byte but a tab and a newline.
sub produce_bytes
{
	my ($topic, $key, $payload, @headers) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'kcat', '-P', '-b', $m->{bs}, '-t', $topic, '-p', 0, '-K', "\t",
		map { ('-H', $_) } @headers ], '<', \"$key\t$payload\n", '>', \$out, '2>', \$err,
		IPC::Run::timeout(60))
	  or die "kcat -P failed: $err";
}
produce_bytes('in', "k\xff\xfe", '{"n": 1}', 'distsys-message-id=bad-key');
produce_bytes('in', 'k2', '{"n": 2}', 'distsys-message-id=bad-header', "trace=t\xc3\x28");
produce_bytes('in', 'k3', '{"n": 3}', "distsys-message-id=bad-id-\xff");
produce_bytes('in', "k\0nul", '{"n": 4}', 'distsys-message-id=nul-key');
produce_bytes('in', 'good', '{"n": 5}', 'distsys-message-id=good');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM app.applied WHERE k = 'good'"),
	'a good message after four that are not text is applied') or diag(relay_log($c));
is($node->safe_psql('postgres', q{
	SELECT string_agg(concat_ws(' ', message_id, key, headers->>'trace', attempts), ', '
		ORDER BY kafka_offset)
	  FROM distsys.inbox_dead WHERE consumer = 'g014'}),
	'bad-key k\xff\xfe 0, bad-header k2 t\xc3( 0, bad-id-\xff k3 0, nul-key k\x00nul 0',
	'each is dead-lettered at once, key, header and message id escaped');
like($node->safe_psql('postgres', "SELECT error FROM distsys.inbox_dead WHERE message_id = 'bad-key'"),
	qr/^22021: the Kafka key is not UTF-8 text \(key, header names and values stored escaped/,
	'the error says what was wrong and how it is stored');
is($node->safe_psql('postgres', "SELECT count(*) FROM app.applied WHERE topic = 'in'"), 1,
	'none of them reached the handler');

# --- a message id made to forge a log line ---------------------------------
my $forged = '2026-01-01T00:00:00.000Z distsys-relay error: forged';
produce_bytes('in', 'evil', '{"fail": true}', "distsys-message-id=evil\n$forged\e[31m");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM distsys.inbox_dead WHERE message_id LIKE 'evil%'"),
	'the failing message is dead-lettered');
my $log = relay_log($c);
unlike($log, qr/^\Q$forged\E/m, 'no log line starts with what the message id carried');
unlike($log, qr/\e/, 'no escape character reaches the log');
like($log, qr/message evil\\x0a\Q$forged\E\\x1b\[31m \(topic in, partition 0, offset \d+\) failed, attempt 1 of 2/,
	'the message id is logged escaped, inside its line');

# --- idle clients on the metrics endpoint -----------------------------------
# cpu_seconds(PID): user + system CPU time of a process, from /proc.
sub cpu_seconds
{
	my @f = split ' ', (slurp("/proc/$_[0]/stat") =~ s/^.*\) //sr);
	return ($f[11] + $f[12]) / 100;		# utime, stime: fields 14 and 15, in ticks
}

# ask(PORT, SECONDS): the answer to a metrics request, read until the server
# closes, or undef when it has not closed within SECONDS.
sub ask
{
	my ($port, $secs) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => $secs) or return undef;
	my ($page, $deadline) = ('', time + $secs);
	syswrite($s, "GET /metrics HTTP/1.0\r\n\r\n");
	my $sel = IO::Select->new($s);
	while (time < $deadline)
	{
		next unless $sel->can_read($deadline - time);
		my $n = sysread($s, my $buf, 65536);
		return $page if !$n;
		$page .= $buf;
	}
	return undef;
}

my @idle = map { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$relay_port") } 1 .. 12;
is(scalar(grep { defined } @idle), 12, '12 idle connections, more than the 8 slots');
my $cpu0 = cpu_seconds($relay->{pid});
sleep 3;
my $cpu = cpu_seconds($relay->{pid}) - $cpu0;
cmp_ok($cpu, '<', 1.0, sprintf('the relay does not spin meanwhile (%.2f s of CPU in 3 s)', $cpu));
my $answer = ask($relay_port, 5);
ok(defined $answer, 'a new client gets an answer at once, not after the idle ones time out');
like($answer // '', qr/^HTTP\/1\.0 (200|503)/, 'the page, or 503 when every slot is busy');
close $_ for grep { defined } @idle;

is(stop_relay($c), 0, 'consumer: SIGTERM, exit 0');
is(stop_relay($relay), 0, 'relay: SIGTERM, exit 0');
done_testing();
