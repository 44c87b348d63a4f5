#!/usr/bin/perl
# tools/fuzz-relay.pl: hostile input for distsys-relay and its consume
# command.  Run by tools/fuzz-relay.sh (which puts the sanitized binaries
# first on PATH and reads their reports); not part of 'make test'.
#
#   - flags: random argument vectors built from the flags --help lists,
#     with hostile values, ending in --print-config;
#   - config files: random lines of known keys and garbage bytes;
#   - Kafka records: keys, headers and message ids of random bytes (not
#     UTF-8, empty, huge, many headers) produced straight to the topic a
#     consumer applies, next to well-formed messages sent through the
#     outbox and the relay;
#   - the metrics ports of both: random bytes, partial and huge requests,
#     idle connections.
#
# It checks that the programs end every bad flag and file with status 1 or
# 2 (never a signal), that the relay and the consumer survive everything,
# and that every record ends either applied or dead-lettered (no partition
# stuck).  FUZZ_SEED, FUZZ_RECORDS and FUZZ_ARGV set the seed and sizes.
use strict;
use warnings;
use IO::Socket::INET;
use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use DistsysTest;
use RelayTest;

my $seed = $ENV{FUZZ_SEED} // time;
my $records = $ENV{FUZZ_RECORDS} // 2000;
my $argvs = $ENV{FUZZ_ARGV} // 1500;
srand($seed);
diag("seed $seed (FUZZ_SEED replays it)");

# bytes(MAX): a random string of 0..MAX bytes, any byte but NUL and newline.
sub bytes
{
	my ($max) = @_;
	my $n = int(rand($max + 1));
	return join '', map { chr(1 + int(rand(255))) =~ s/\n/ /r } 1 .. $n;
}

# hostile(): a value to give a flag or key.
sub hostile
{
	my @v = ('', '0', '-1', '1', '99999999999999999999', '1e9', 'nan', 'yes', 'off',
		'1ms', '0s', '-5s', '1h', '10000000h', 'debug', 'json', 'text', 'x' x 5000,
		'127.0.0.1:0', '127.0.0.1:99999', ':', '[::1]:x', 'host=/nonexistent',
		'a=b=c', "é€\x{1F600}", "\x{fffe}", '%s%n', 'public.f', '--help');
	return rand() < 0.2 ? bytes(40) : $v[ int(rand(@v)) ];
}

my $relay = RelayTest::find_program('distsys-relay');
my ($help) = ('');
IPC::Run::run([ $relay, '--help' ], '>', \$help);
my @flags = sort { $a cmp $b } keys %{ { map { $_ => 1 } $help =~ /(--[a-z][a-z0-9-]+)/g } };
ok(@flags > 10, scalar(@flags) . " flags listed by --help");

# run_relay(ARGS): exit status (or 128 + signal) and stderr.
sub run_relay
{
	my @args = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ $relay, @args ], '<', \'', '>', \$out, '2>', \$err,
		IPC::Run::timeout(20));
	eval { $h->finish };
	if ($@) { $h->kill_kill; return (999, "timed out: $@"); }
	my $st = $h->full_result(0);
	return (($st & 127) ? 128 + ($st & 127) : $st >> 8, $err);
}

# --- flags -------------------------------------------------------------
my %exits;
my @bad;
for my $i (1 .. $argvs)
{
	my @args = rand() < 0.3 ? ('consume') : ();
	for (1 .. 1 + int(rand(5)))
	{
		my $f = $flags[ int(rand(@flags)) ];
		next if $f =~ /^--(help|version)$/ && rand() < 0.9;
		push @args, rand() < 0.5 ? ("$f=" . hostile()) : ($f, hostile());
	}
	push @args, '--print-config';
	my ($rc, $err) = run_relay(@args);
	$exits{$rc}++;
	push @bad, "exit $rc: @args" if $rc > 2;
}
is(scalar(@bad), 0, "$argvs random argument vectors: exit 0, 1 or 2 only")
  or diag(join("\n", @bad[ 0 .. ($#bad < 5 ? $#bad : 5) ]));
diag('argument vectors by exit status: ' . join(', ', map { "$_: $exits{$_}" } sort keys %exits));

# --- config files ------------------------------------------------------
my @keys = map { s/^--//r =~ s/-/_/gr } @flags;
%exits = ();
@bad = ();
my $conf = "$ENV{TESTDIR}/tmp_check/fuzz.conf";
for my $i (1 .. $argvs / 3)
{
	open my $fh, '>:raw', $conf or die $!;
	for (1 .. int(rand(12)))
	{
		my $r = rand();
		print $fh $r < 0.6 ? $keys[ int(rand(@keys)) ] . ' = ' . hostile() . "\n"
		  : $r < 0.8 ? bytes(200) . "\n"
		  : $r < 0.9 ? '# ' . bytes(50) . "\n"
		  : ('k' x 20000) . " = v\n";
	}
	close $fh;
	my ($rc, $err) = run_relay(rand() < 0.3 ? ('consume') : (), '--config', $conf, '--print-config');
	$exits{$rc}++;
	push @bad, "exit $rc" if $rc > 2;
}
is(scalar(@bad), 0, int($argvs / 3) . " random config files: exit 0, 1 or 2 only");
diag('config files by exit status: ' . join(', ', map { "$_: $exits{$_}" } sort keys %exits));

# --- records and metrics -----------------------------------------------
my $node = distsys_node('fz');
$node->safe_psql('postgres', q{
	CREATE SCHEMA app;
	CREATE TABLE app.seen (key text, n int);
	CREATE FUNCTION app.take(topic text, key text, payload jsonb, headers jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO app.seen VALUES (key, 1) $$;
	CREATE FUNCTION app.take(topic text, key text, payload bytea, headers jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO app.seen VALUES (key, 2) $$;
});
my $m = start_mock('fzmock', '--topic', 'fz:4');
my ($rport, $cport) = (free_port(), free_port());

# alive(PID): whether our child PID still runs (not exited, not a zombie)
sub alive { return waitpid($_[0], POSIX::WNOHANG()) == 0; }
my $r = start_relay('fzrelay', $node, $m, '--metrics-addr', "127.0.0.1:$rport");
my $c = start_consumer('fzcons', $node, $m, '--topic', 'fz', '--group', 'fzg',
	'--handler', 'app.take', '--dead-letter-after', '2', '--metrics-addr', "127.0.0.1:$cport");

# well-formed messages through the outbox, with hostile but valid content
my $sent = 0;
for my $batch (1 .. 10)
{
	my $sql = "BEGIN;\n";
	for (1 .. $records / 20)
	{
		my $key = join '', map { chr(32 + int(rand(0x2000))) } 1 .. int(rand(30));
		$key =~ s/'/''/g;
		my $nh = int(rand(40));
		$sql .= "SELECT distsys.outbox_send('fz', decode(md5(random()::text) || repeat('ab', "
		  . int(rand(2000)) . "), 'hex'), "
		  . ($key eq '' ? 'NULL' : "'$key'")
		  . ", (SELECT coalesce(jsonb_object_agg('h' || g || repeat('n', (random() * 50)::int), "
		  . "CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('v', (random() * 300)::int) END), '{}') "
		  . "FROM generate_series(1, $nh) g));\n";
		$sent++;
	}
	$node->safe_psql('postgres', "$sql COMMIT;");
}

# hostile records straight to Kafka
my $kcat = RelayTest::find_program('kcat');
my $raw = 0;
for my $i (1 .. $records / 2)
{
	my @h;
	my $id = rand() < 0.8 ? "fz-raw-$i" : rand() < 0.5 ? bytes(30) : 'x' x 10000;
	push @h, '-H', "distsys-message-id=$id" if rand() < 0.9;
	push @h, '-H', 'content-type=' . (rand() < 0.5 ? 'application/json' : bytes(20)) if rand() < 0.5;
	push @h, '-H', bytes(20) . '=' . bytes(100) for 1 .. int(rand(rand() < 0.1 ? 500 : 5));
	my $payload = rand() < 0.3 ? '{"a": 1}' : bytes(rand() < 0.1 ? 50000 : 200);
	my $key = bytes(40);
	$key =~ s/\t/ /g;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run([ $kcat, '-P', '-b', $m->{bs}, '-t', 'fz', '-K', "\t", @h ],
			'<', \"$key\t$payload\n", '>', \$out, '2>', \$err, IPC::Run::timeout(30));
	};
	$raw++ if $ok;
}
diag("$sent messages through the outbox, $raw hostile records produced");

# the metrics ports, while all that is consumed
my %answers;
for my $i (1 .. 300)
{
	my $port = rand() < 0.5 ? $rport : $cport;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5) or do { $answers{refused}++; next; };
	my $r = rand();
	if ($r < 0.3) { print $s "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"; }
	elsif ($r < 0.5) { print $s bytes(2000); }
	elsif ($r < 0.6) { print $s 'GET /' . ('a' x 100000) . " HTTP/1.1\r\n\r\n"; }
	elsif ($r < 0.7) { print $s "GET / HTTP/1.1\r\n"; }	# never finished
	elsif ($r < 0.8) { next; }	# idle: left open until the end of the loop
	else { print $s "\x00\xff\r\n\r\n"; }
	$s->blocking(0);
	my ($buf, $got, $t0) = ('', '', time);
	while (time - $t0 < 0.5) { $got .= $buf if sysread($s, $buf, 65536); sleep 0.01; }
	$answers{ $got =~ m{^HTTP/1\.[01] (\d+)} ? $1 : length($got) ? 'other' : 'none' }++;
}
diag('metrics answers: ' . join(', ', map { "$_: $answers{$_}" } sort keys %answers));

my $want = $sent + $raw;
my $done_sql = q{SELECT (SELECT count(*) FROM distsys.inbox WHERE consumer = 'fzg')
	+ (SELECT count(*) FROM distsys.inbox_dead WHERE consumer = 'fzg')};
ok(wait_until(sub { $node->safe_psql('postgres', $done_sql) >= $want }, 180),
	"every record applied or dead-lettered ($want)")
  or diag('got ' . $node->safe_psql('postgres', $done_sql));
diag('applied ' . $node->safe_psql('postgres', "SELECT count(*) FROM distsys.inbox WHERE consumer = 'fzg'")
	. ', dead-lettered ' . $node->safe_psql('postgres', "SELECT count(*) FROM distsys.inbox_dead WHERE consumer = 'fzg'"));
ok(alive($r->{pid}), 'the relay is still running');
ok(alive($c->{pid}), 'the consumer is still running');
my $metrics = metrics_page($cport);
like($metrics, qr/distsys_relay_consumer/, 'the consumer still answers its metrics port');
stop_relay($r);
stop_relay($c);
done_testing();
