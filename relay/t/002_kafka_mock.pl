# relay/t/002_kafka_mock.pl: distsys-kafka-mock, the project's Kafka test broker.
#
# Drives the tool as the tests and the demo do: start it, read the bootstrap
# list, produce and consume with kcat, inject failures through the control
# channel and watch a real client see them, then stop it with SIGTERM.
# Needs distsys-kafka-mock and kcat on PATH.  Every wait has a deadline, and
# every process started here is stopped by its harness.
use strict;
use warnings;
use File::Spec;
use File::Temp qw(tempdir);
use Fcntl qw(O_WRONLY O_NONBLOCK);
use Errno qw(ENXIO EAGAIN);
use IPC::Run;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Test::More;

my $WAIT = 30;    # seconds: the bound of every wait for the tool
my @harnesses;    # every mock started, stopped again in END

# find_program NAME: NAME's path on PATH, or die saying what is missing.
sub find_program
{
	my ($name) = @_;
	for my $dir (File::Spec->path)
	{
		my $path = File::Spec->catfile($dir, $name);
		return $path if -f $path && -x _;
	}
	die "$name not found on PATH; build it (make relay) or install it\n";
}

my $MOCK = find_program('distsys-kafka-mock');
my $KCAT = find_program('kcat');
my $dir  = tempdir(CLEANUP => 1);

# start_mock ARGS...: start the tool; returns a handle whose {out} and {err}
# grow as it writes, and {in} feeds its stdin.
sub start_mock
{
	my (@args) = @_;
	my $m = { in => '', out => '', err => '', timer => IPC::Run::timer($WAIT) };
	$m->{h} = IPC::Run::start([ $MOCK, @args ],
		'<' => \$m->{in}, '>' => \$m->{out}, '2>' => \$m->{err}, $m->{timer});
	push @harnesses, $m->{h};
	return $m;
}

# wait_output M STREAM REGEX [FROM]: pump until M's stream ('out' or 'err')
# matches REGEX at or after offset FROM; returns the match, or undef at the
# deadline or if the tool died.
sub wait_output
{
	my ($m, $stream, $re, $from) = @_;
	$from //= 0;
	$m->{timer}->start($WAIT);
	while (1)
	{
		pos($m->{$stream}) = $from;
		return $1 if $m->{$stream} =~ /\G.*?($re)/gs;
		if ($m->{timer}->is_expired || !$m->{h}->pumpable)
		{
			diag("no /$re/ on std$stream; it holds:\n$m->{$stream}");
			return undef;
		}
		$m->{h}->pump;
	}
}

# fifo_write PATH LINE: write one line to the control FIFO.  The open does not
# block: the tool reopens its end after each writer, so "no reader" (ENXIO) is
# retried until the deadline.
sub fifo_write
{
	my ($path, $line) = @_;
	my $deadline = time + $WAIT;
	my $fh;
	until (sysopen($fh, $path, O_WRONLY | O_NONBLOCK))
	{
		die "cannot open control FIFO $path: $!\n"
		  if ($! != ENXIO && $! != EAGAIN) || time > $deadline;
		sleep 0.01;
	}
	syswrite($fh, "$line\n") == length("$line\n")
	  or die "short write to control FIFO $path: $!\n";
	close $fh;
}

# control M LINE: send one command (on the FIFO if M has one, else on stdin)
# and return the tool's answer: "ok LINE", "error: ...", or undef at the
# deadline.
sub control
{
	my ($m, $line) = @_;
	my $from = length $m->{out};
	if ($m->{fifo})
	{
		fifo_write($m->{fifo}, $line);
	}
	else
	{
		$m->{in} .= "$line\n";
	}
	return wait_output($m, 'out', qr/^(?:ok \Q$line\E|error: [^\n]*)$/m, $from);
}

# stop_mock M: SIGTERM, then wait (bounded) for the exit.  Returns the wait
# status and the seconds it took, or undef if it did not exit in time.
sub stop_mock
{
	my ($m) = @_;
	my $t0 = time;
	$m->{h}->signal('TERM');
	$m->{timer}->start($WAIT);
	$m->{h}->pump while $m->{h}->pumpable && !$m->{timer}->is_expired;
	return (undef, time - $t0) if $m->{h}->pumpable;
	$m->{h}->finish;
	return ($m->{h}->full_result(0), time - $t0);
}

# kcat ARGS...: run kcat with a deadline; returns (exit status, stdout,
# stderr).  stdin is the string in $_[0] when the first argument is a ref.
sub kcat
{
	my $input = ref $_[0] ? ${ shift() } : '';
	my @args = @_;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run([ $KCAT, @args ], '<' => \$input, '>' => \$out,
			'2>' => \$err, IPC::Run::timeout($WAIT));
		1;
	};
	return (-1, $out, "kcat did not finish within ${WAIT}s: $@") unless $ok;
	return ($? >> 8, $out, $err);
}

# produce BOOTSTRAP TOPIC LINES [KCAT OPTIONS]: produce "key:value" lines.
sub produce
{
	my ($bs, $topic, $lines, @opts) = @_;
	my $input = join('', map { "$_\n" } @$lines);
	return kcat(\$input, '-P', '-b', $bs, '-t', $topic, '-K:', @opts);
}

# consume BOOTSTRAP TOPIC: every message of the topic as "partition|key:value".
sub consume
{
	my ($bs, $topic) = @_;
	my ($rc, $out, $err) =
	  kcat('-C', '-b', $bs, '-t', $topic, '-o', 'beginning', '-e', '-q',
		'-f', '%p|%k:%s\n');
	diag("kcat -C failed ($rc): $err") if $rc != 0;
	return [ split /\n/, $out ];
}

# by_key LINES: for "partition|key:value" lines, key => [values in order],
# and key => {partitions seen}.
sub by_key
{
	my ($lines) = @_;
	my (%values, %parts);
	for (@$lines)
	{
		my ($p, $k, $v) = /^(\d+)\|([^:]*):(.*)$/ or next;
		push @{ $values{$k} }, $v;
		$parts{$k}{$p} = 1;
	}
	return (\%values, \%parts);
}

# --- command line errors -------------------------------------------------

for my $bad ([ '--no-such-flag' ], [ '--brokers', '0' ], [ '--brokers', 'ten' ],
	[ '--log-format', 'xml' ], [ '--topic', 'a:0' ], [ 'stray' ])
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ $MOCK, @$bad ], '<' => \undef, '>' => \$out, '2>' => \$err,
		IPC::Run::timeout($WAIT));
	is($? >> 8, 2, "@$bad: exits 2");
	like($err, qr/\Adistsys-kafka-mock: [^\n]+\n\z/, "@$bad: one line on stderr");
	is($out, '', "@$bad: nothing on stdout");
}

# --- start-up --------------------------------------------------------------

my $bsfile = "$dir/bootstrap";
my $fifo   = "$dir/control";
my $m = start_mock('--bootstrap-file', $bsfile, '--control', $fifo,
	'--topic', 'orders:3');
$m->{fifo} = $fifo;

my $bs = wait_output($m, 'out', qr/\A[^\n]*\n/);
ok(defined $bs, 'prints a first line on stdout');
$bs //= '';
chomp $bs;
like($bs, qr/\A127\.0\.0\.1:\d+\z/, 'first line is the bootstrap list, loopback only');
ok(-p $fifo, 'control FIFO exists once the bootstrap list is out');
my $content = -f $bsfile ? do { local (@ARGV, $/) = $bsfile; <> } : undef;
is($content, "$bs\n", 'bootstrap file holds the same list');

# --- produce and consume ---------------------------------------------------

my @sent;
for my $i (1 .. 5)
{
	push @sent, "k$_:v$i" for 1 .. 6;
}
my ($rc, $out, $err) = produce($bs, 'orders', \@sent);
is($rc, 0, 'kcat produces 30 keyed messages') or diag($err);

my $got = consume($bs, 'orders');
is_deeply([ sort map { s/^\d+\|//r } @$got ], [ sort @sent ],
	'kcat consumes exactly the messages produced');
my ($values, $parts) = by_key($got);
is_deeply($values->{"k$_"}, [ map { "v$_" } 1 .. 5 ], "key k$_: values in order")
  for 1 .. 6;
is(scalar(grep { keys %{ $parts->{$_} } != 1 } keys %$parts), 0,
	'each key stays on one partition');

# --- produce errors --------------------------------------------------------

is(control($m, 'produce-errors 1000 MSG_SIZE_TOO_LARGE'),
	'ok produce-errors 1000 MSG_SIZE_TOO_LARGE', 'produce-errors is confirmed');
like($m->{err}, qr/applied: produce-errors 1000 MSG_SIZE_TOO_LARGE/,
	'and logged as applied');
($rc, $out, $err) = produce($bs, 'errors', ['e:refused']);
isnt($rc, 0, 'a produce fails while errors are pending');
like($err, qr/Message size too large|MSG_SIZE_TOO_LARGE/i,
	'kcat reports the injected error');

is(control($m, 'produce-errors 0'), 'ok produce-errors 0',
	'produce-errors 0 is confirmed');
($rc, $out, $err) = produce($bs, 'errors', ['e:after-clear']);
is($rc, 0, 'a produce succeeds once the errors are cleared') or diag($err);

is(control($m, 'produce-errors 2 RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE'),
	'ok produce-errors 2 RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE',
	'error names take the RD_KAFKA_RESP_ERR_ prefix');
my @rcs = map { (produce($bs, 'errors', ["e:try$_"]))[0] } 1 .. 3;
ok($rcs[0] != 0 && $rcs[1] != 0, 'two errors fail two produces');
is($rcs[2], 0, 'the produce after them succeeds');

is_deeply([ map { s/^\d+\|//r } @{ consume($bs, 'errors') } ],
	[ 'e:after-clear', 'e:try3' ], 'failed produces stored nothing');

# --- errors on other request types (Fetch = API key 1) ----------------------

is(control($m, 'request-errors 1 1000 TOPIC_AUTHORIZATION_FAILED'),
	'ok request-errors 1 1000 TOPIC_AUTHORIZATION_FAILED',
	'request-errors is confirmed');
($rc, $out, $err) =
  kcat('-C', '-b', $bs, '-t', 'errors', '-o', 'beginning', '-e', '-q');
isnt($rc, 0, 'a consumer fails while Fetch errors are pending');
like($err, qr/authorization failed/i, 'kcat reports the injected Fetch error');
is(control($m, 'request-errors 1 0'), 'ok request-errors 1 0',
	'request-errors 1 0 is confirmed');
is(scalar @{ consume($bs, 'errors') }, 2, 'the consumer works again');

# --- bad commands ----------------------------------------------------------

for my $bad ('frobnicate 1', 'produce-errors 5 NO_SUCH_ERROR',
	'produce-errors 5', 'broker-down 2', 'create-topic orders 2',
	'create-topic bad/name 1')
{
	like(control($m, $bad) // '', qr/\Aerror: \Q$bad\E: /, "\"$bad\" is rejected");
}
($rc, $out, $err) = produce($bs, 'orders', ['k1:v6']);
is($rc, 0, 'the tool keeps serving after bad commands') or diag($err);
is(control($m, 'broker-rtt 1 0'), 'ok broker-rtt 1 0',
	'and keeps taking commands');

# --- broker down and up ----------------------------------------------------

is(control($m, 'broker-down 1'), 'ok broker-down 1', 'broker-down is confirmed');
my $t0 = time;
($rc, $out, $err) =
  produce($bs, 'orders', ['k1:while-down'], '-X', 'message.timeout.ms=2000');
isnt($rc, 0, 'a produce fails while the only broker is down');
cmp_ok(time - $t0, '<', 15, 'and fails within its timeout');

is(control($m, 'broker-up 1'), 'ok broker-up 1', 'broker-up is confirmed');
($rc, $out, $err) =
  produce($bs, 'orders', ['k1:v7'], '-X', 'message.timeout.ms=2000');
is($rc, 0, 'a produce succeeds once the broker is up') or diag($err);
($values) = by_key(consume($bs, 'orders'));
is_deeply($values->{k1}, [ map { "v$_" } 1 .. 7 ],
	'key k1 holds every acknowledged message in order, nothing else');

# --- shutdown --------------------------------------------------------------

my ($status, $secs) = stop_mock($m);
is($status, 0, 'SIGTERM: exits 0');
cmp_ok($secs, '<', 5, 'SIGTERM: exits promptly');
like($m->{err}, qr/stopped\n\z/, 'SIGTERM: logs that it stopped');
ok(!-e $bsfile, 'SIGTERM: bootstrap file removed');
ok(!-e $fifo,   'SIGTERM: control FIFO it created removed');

# --- several brokers, stdin control, JSON log ------------------------------

my $m3 = start_mock('--brokers', '3', '--control', '-', '--log-format', 'json');
my $bs3 = wait_output($m3, 'out', qr/\A[^\n]*\n/) // '';
chomp $bs3;
like($bs3, qr/\A127\.0\.0\.1:\d+(?:,127\.0\.0\.1:\d+){2}\z/,
	'--brokers 3: three loopback brokers');

is(control($m3, 'create-topic wide 5 2'), 'ok create-topic wide 5 2',
	'create-topic over stdin is confirmed');
is(control($m3, 'partition-leader wide 0 3'), 'ok partition-leader wide 0 3',
	'partition-leader is confirmed');
($rc, $out, $err) = kcat('-L', '-b', $bs3, '-t', 'wide');
like($out, qr/topic "wide" with 5 partitions/, 'the created topic has 5 partitions');
like($out, qr/partition 0, leader 3,/, 'partition 0 is led by broker 3');
like($out, qr/3 brokers/, 'metadata lists three brokers');

my @json = grep { length } split /\n/, $m3->{err};
my @bad_json = grep { !eval { decode_json($_); 1 } } @json;
is_deeply(\@bad_json, [], '--log-format json: every stderr line is JSON');
ok((grep { (eval { decode_json($_)->{msg} } // '') eq 'applied: create-topic wide 5 2' } @json),
	'--log-format json: applied commands are logged');

($status, $secs) = stop_mock($m3);
is($status, 0, 'second instance: SIGTERM exits 0');

done_testing();

END
{
	for my $h (@harnesses)
	{
		eval { $h->kill_kill if $h->pumpable };
	}
}
