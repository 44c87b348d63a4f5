# RelayTest.pm: helpers of the outbox relay TAP tests (t/010, t/011).
#
# A Kafka test broker (distsys-kafka-mock, controlled through a FIFO), relay
# processes (started, SIGKILLed, SIGTERMed), a pgbench workload whose
# committed messages are recorded in the same transactions, and a kcat
# consumer whose stream is checked per key: nothing committed missing, no
# rolled-back message, first occurrences in order, duplicates counted.
# Every wait has a deadline; every process started here is killed in END.
package RelayTest;

use strict;
use warnings;
use Errno qw(ENXIO EAGAIN);
use Fcntl qw(O_WRONLY O_NONBLOCK);
use File::Spec;
use IO::Socket::INET;
use IPC::Run;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Test::More;
use Exporter 'import';
use DistsysTest qw(slurp durable_psql);

our @EXPORT = qw(start_mock mock_control start_relay start_consumer produce produce_many free_port setup_handler
  kill_relay stop_relay relay_log metrics_page wait_until consume check_stream setup_workload run_workload
  expected_messages wait_outbox_empty dead_ids);

our $WAIT = 60;
my @pids;
my $tmp = $ENV{TESTDIR} ? "$ENV{TESTDIR}/tmp_check" : '/tmp';

sub find_program
{
	my ($name) = @_;
	for my $dir (File::Spec->path)
	{
		my $path = File::Spec->catfile($dir, $name);
		return $path if -f $path && -x _;
	}
	die "$name not found on PATH\n";
}

# spawn(LOG, CMD...): start CMD with stdout and stderr appended to LOG.
sub spawn
{
	my ($log, @cmd) = @_;
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log or die "open $log: $!";
		open STDERR, '>&', \*STDOUT;
		exec @cmd or die "exec $cmd[0]: $!";
	}
	push @pids, $pid;
	return $pid;
}

# wait_until(CODE, SECONDS): poll CODE every 50 ms until it is true.
sub wait_until
{
	my ($code, $secs) = @_;
	my $deadline = time + ($secs // $WAIT);
	while (time < $deadline)
	{
		return 1 if $code->();
		sleep 0.05;
	}
	return $code->() ? 1 : 0;
}

# start_mock(NAME, ARGS...): the broker; returns {bs, fifo, log, pid}.
sub start_mock
{
	my ($name, @args) = @_;
	my $m = { log => "$tmp/$name.log", fifo => "$tmp/$name.fifo",
		bsfile => "$tmp/$name.bootstrap" };
	unlink $m->{bsfile};
	$m->{pid} = spawn($m->{log}, find_program('distsys-kafka-mock'),
		'--bootstrap-file', $m->{bsfile}, '--control', $m->{fifo}, @args);
	wait_until(sub { -s $m->{bsfile} }, 30) or die "mock broker did not start";
	chomp($m->{bs} = slurp($m->{bsfile}));
	return $m;
}

# mock_control(M, LINE): send a control command; true when it answered ok.
sub mock_control
{
	my ($m, $line) = @_;
	my $deadline = time + $WAIT;
	my $before = () = slurp($m->{log}) =~ /^ok \Q$line\E$/mg;
	my $fh;
	until (sysopen($fh, $m->{fifo}, O_WRONLY | O_NONBLOCK))
	{
		die "control FIFO: $!" if ($! != ENXIO && $! != EAGAIN) || time > $deadline;
		sleep 0.01;
	}
	syswrite($fh, "$line\n");
	close $fh;
	return wait_until(sub { my $n = () = slurp($m->{log}) =~ /^ok \Q$line\E$/mg; $n > $before }, 30);
}

# start_relay(NAME, NODE, M, ARGS...): a relay; returns {pid, log}.
sub start_relay
{
	my ($name, $node, $m, @args) = @_;
	my $r = { log => "$tmp/$name.log" };
	$r->{pid} = spawn($r->{log}, find_program('distsys-relay'),
		'--db', $node->connstr('postgres'), '--brokers', $m->{bs},
		'--retry-backoff', '50ms', '--retry-backoff-max', '1s', @args);
	return $r;
}

# start_consumer(NAME, NODE, M, ARGS...): distsys-relay consume; returns
# {pid, log}.  A short session timeout lets a restarted consumer have the
# partitions of a SIGKILLed one within seconds (about 5 s with the mock).
sub start_consumer
{
	my ($name, $node, $m, @args) = @_;
	my $r = { log => "$tmp/$name.log" };
	$r->{pid} = spawn($r->{log}, find_program('distsys-relay'), 'consume',
		'--db', $node->connstr('postgres'), '--brokers', $m->{bs},
		'--retry-backoff', '50ms', '--retry-backoff-max', '1s',
		'-X', 'session.timeout.ms=3000', '-X', 'heartbeat.interval.ms=500', @args);
	return $r;
}

# produce(M, TOPIC, PARTITION, KEY, PAYLOAD, HEADERS...): one message with
# kcat; HEADERS are "name=value" strings.
sub produce
{
	my ($m, $topic, $partition, $key, $payload, @headers) = @_;
	kcat_produce($m, $topic, $partition, "$payload\n", '-k', $key, map { ('-H', $_) } @headers);
}

# produce_many(M, TOPIC, PARTITION, [KEY, PAYLOAD]...): one kcat run that
# produces each pair as a message, in order, without headers.
sub produce_many
{
	my ($m, $topic, $partition, @pairs) = @_;
	kcat_produce($m, $topic, $partition, join('', map { "$_->[0]\t$_->[1]\n" } @pairs), '-K', "\t");
}

# kcat_produce(M, TOPIC, PARTITION, INPUT, ARGS...): kcat -P with ARGS,
# one message per line of INPUT.
sub kcat_produce
{
	my ($m, $topic, $partition, $input, @args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ find_program('kcat'), '-P', '-b', $m->{bs}, '-t', $topic,
		'-p', $partition, @args ], '<', \$input, '>', \$out, '2>', \$err, IPC::Run::timeout($WAIT))
	  or die "kcat -P failed: $err";
}

# free_port(): a loopback port nothing listens on (for --metrics-addr).
sub free_port
{
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0');
	my $p = $s->sockport;
	close $s;
	return $p;
}

# metrics_page(PORT): the text served on the metrics port, or ''.
sub metrics_page
{
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10) or return '';
	print $s "GET /metrics HTTP/1.0\r\n\r\n";
	local $/;
	return <$s> // '';
}

sub relay_log { return slurp($_[0]->{log}); }

sub kill_relay
{
	my ($r) = @_;
	kill 'KILL', $r->{pid};
	waitpid($r->{pid}, 0);
}

# stop_relay(R): SIGTERM; the exit status, or undef when it did not exit
# within 20 s (it is then killed).
sub stop_relay
{
	my ($r) = @_;
	my $st;
	kill 'TERM', $r->{pid};
	wait_until(sub { my $w = waitpid($r->{pid}, WNOHANG); $st = $? if $w > 0; $w > 0 }, 20)
	  and return $st >> 8;
	kill 'KILL', $r->{pid};
	waitpid($r->{pid}, 0);
	return undef;
}

# consume(M, TOPIC): every message as [key, message id, payload, headers,
# Kafka timestamp in ms].
sub consume
{
	my ($m, $topic) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ find_program('kcat'), '-C', '-b', $m->{bs}, '-t', $topic,
		'-o', 'beginning', '-e', '-q', '-f', '%k|%T|%h|%s\n' ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout($WAIT));
	my @msgs;
	for (split /\n/, $out)
	{
		my ($k, $ts, $h, $s) = split /\|/, $_, 4;
		my ($id) = $h =~ /distsys-message-id=([^,]+)/;
		push @msgs, [ $k, $id // '', $s, $h, $ts ];
	}
	return \@msgs;
}

# setup_handler(NODE): the consumers' handler app.apply(topic, key, payload
# jsonb, headers), which records each message in app.applied and fails for
# a payload {"fail": true}.
sub setup_handler
{
	my ($node) = @_;
	durable_psql($node, q{
		CREATE SCHEMA app;
		CREATE TABLE app.applied (seq serial, topic text, k text, payload jsonb, headers jsonb,
			at timestamptz DEFAULT clock_timestamp());
		CREATE FUNCTION app.apply(topic text, key text, payload jsonb, headers jsonb)
		RETURNS void LANGUAGE plpgsql AS $$
		BEGIN
			IF payload->>'fail' = 'true' THEN
				RAISE EXCEPTION 'cannot apply %', key;
			END IF;
			INSERT INTO app.applied (topic, k, payload, headers)
				VALUES (topic, key, payload, headers);
		END $$;
	});
}

# setup_workload(NODE): the counter and record tables of the workload.  A
# row of sent records the message id of its outbox row (a trigger reads it
# in the sending transaction): the id's prefix changes with each server
# start, so it cannot be rebuilt afterwards.
sub setup_workload
{
	my ($node) = @_;
	durable_psql($node, q{
		CREATE TABLE IF NOT EXISTS counters (topic text, k int, n int NOT NULL DEFAULT 0,
			PRIMARY KEY (topic, k));
		CREATE TABLE IF NOT EXISTS sent (topic text, k int, seq int, id bigint, mid text);
		CREATE OR REPLACE FUNCTION sent_mid() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			NEW.mid := (SELECT message_id FROM distsys.outbox WHERE id = NEW.id);
			RETURN NEW;
		END $$;
		CREATE OR REPLACE TRIGGER sent_mid BEFORE INSERT ON sent
			FOR EACH ROW EXECUTE FUNCTION sent_mid();
	});
}

# run_workload(NODE, TOPIC, CLIENTS, TXNS, [BACKGROUND]): pgbench: each
# transaction bumps the counter of one key of 8, sends (key, seq), records
# the message; one in ten rolls back.  Returns the harness when BACKGROUND.
sub run_workload
{
	my ($node, $topic, $clients, $txns, $bg) = @_;
	my $script = "$tmp/workload_$topic.sql";
	$node->safe_psql('postgres',
		"INSERT INTO counters SELECT '$topic', k FROM generate_series(1, 8) k ON CONFLICT DO NOTHING");
	open my $fh, '>', $script or die;
	print $fh <<"SQL";
\\set k random(1, 8)
\\set rb random(1, 10)
BEGIN;
UPDATE counters SET n = n + 1 WHERE topic = '$topic' AND k = :k RETURNING n AS seq \\gset
SELECT distsys.outbox_send('$topic', jsonb_build_object('k', :k, 'seq', :seq), 'k' || :k, '{"src": "pgbench"}') AS id \\gset
INSERT INTO sent VALUES ('$topic', :k, :seq, :id);
\\if :rb = 1
ROLLBACK;
\\else
COMMIT;
\\endif
SQL
	close $fh;
	my @cmd = ('pgbench', '-n', '-c', $clients, '-j', 2, '-t', $txns, '-f', $script,
		'-h', $node->host, '-p', $node->port, 'postgres');
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout(120));
	return $h if $bg;
	$h->finish or diag("pgbench failed: $err");
	return undef;
}

# expected_messages(NODE, TOPIC): key => [message ids in seq order].
sub expected_messages
{
	my ($node, $topic) = @_;
	my %exp;
	for (split /\n/, $node->safe_psql('postgres',
		"SELECT k, mid FROM sent WHERE topic = '$topic' ORDER BY k, seq"))
	{
		my ($k, $mid) = split /\|/;
		push @{ $exp{"k$k"} }, $mid;
	}
	return \%exp;
}

# dead_ids(NODE, TOPIC): message id => error of the dead-lettered messages.
sub dead_ids
{
	my ($node, $topic) = @_;
	my %dead = map { split /\|/, $_, 2 } split /\n/, $node->safe_psql('postgres',
		"SELECT message_id, error FROM distsys.outbox_dead WHERE topic = '$topic'");
	return \%dead;
}

# check_stream(CONSUMED, EXPECTED, DEAD): compare per key.  DEAD: message
# ids dead-lettered (allowed to be missing).  Returns (missing, unexpected,
# reordered, duplicates).
sub check_stream
{
	my ($msgs, $exp, $dead) = @_;
	my (%seen, %first);
	my ($dups, $unexpected, $missing, $reordered) = (0, 0, 0, 0);
	my %want = map { my $k = $_; map { ($_ => $k) } @{ $exp->{$k} } } keys %$exp;
	$dead //= {};
	for my $m (@$msgs)
	{
		my ($k, $id) = @$m;
		if ($seen{$id}++) { $dups++; next; }
		if (!exists $want{$id} || $want{$id} ne $k) { $unexpected++; next; }
		push @{ $first{$k} }, $id;
	}
	for my $k (keys %$exp)
	{
		my @want = grep { !$dead->{$_} } @{ $exp->{$k} };
		my @got = grep { !$dead->{$_} } @{ $first{$k} // [] };
		my %got = map { $_ => 1 } @got;
		my %pos;
		$missing += grep { !$got{$_} } @want;
		@pos{@want} = 0 .. $#want;
		for my $i (1 .. $#got)
		{
			$reordered++ if $pos{ $got[$i] } < $pos{ $got[ $i - 1 ] };
		}
	}
	return ($missing, $unexpected, $reordered, $dups);
}

# wait_outbox_empty(NODE, SECONDS): until the outbox holds no rows.
sub wait_outbox_empty
{
	my ($node, $secs) = @_;
	return wait_until(sub {
		$node->safe_psql('postgres', 'SELECT count(*) FROM distsys.outbox') == 0 }, $secs);
}

END
{
	local $?;
	for my $pid (@pids)
	{
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
}

1;
