# relay/t/003_netem.pl: distsys-netem, the network emulator the tests and
# benchmarks put between nodes (issue 18).
#
# Drives the tool as they do: start it with links to an echo server, wait
# for its ports file, and send commands on its stdin, waiting for each
# "ok".  Checks what a test relies on: bytes arrive intact and in order
# (also with jitter), a delay is at least what was asked, a partition holds
# bytes (and new connections) until it is healed and then delivers them,
# one-way partitions hold one direction, a reset reaches the client,
# links can be added at run time, stats count, and bad options and
# commands are refused with a message.  Needs distsys-netem on PATH.
use strict;
use warnings;
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use IPC::Run;
use POSIX qw(WNOHANG);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);
use Test::More;

my $WAIT = 30;    # seconds: the bound of every wait for the tool
my (@harnesses, @children);

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

my $NETEM = find_program('distsys-netem');
my $dir   = tempdir(CLEANUP => 1);

# echo_server: a forked server that echoes every connection; its port.
sub echo_server
{
	my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
		Listen => 64, ReuseAddr => 1) or die "listen: $!";
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		$SIG{CHLD} = 'IGNORE';
		while (my $c = $l->accept)
		{
			next if fork;
			my $buf;
			while (sysread($c, $buf, 65536)) { syswrite($c, $buf) // last; }
			exit 0;
		}
		exit 0;
	}
	push @children, $pid;
	return $l->sockport;
}

# start_netem ARGS...: the tool with its commands on stdin; a handle whose
# {out} and {err} grow as it writes.
sub start_netem
{
	my (@args) = @_;
	my $m = { in => '', out => '', err => '', timer => IPC::Run::timer($WAIT) };
	$m->{h} = IPC::Run::start([ $NETEM, '--control', '-', @args ],
		'<' => \$m->{in}, '>' => \$m->{out}, '2>' => \$m->{err}, $m->{timer});
	push @harnesses, $m->{h};
	return $m;
}

# pump_until M, CODE: let the tool run until CODE is true or the deadline.
sub pump_until
{
	my ($m, $code) = @_;
	$m->{timer}->start($WAIT);
	until ($code->())
	{
		return 0 if $m->{timer}->is_expired || !$m->{h}->pumpable;
		$m->{h}->pump_nb;
		sleep 0.01;
	}
	return 1;
}

# command M, LINE: send LINE and wait for its "ok" or "error" answer; the
# answer line.
sub command
{
	my ($m, $line) = @_;
	my $before = length $m->{out};
	$m->{in} .= "$line\n";
	my $re = qr/^(ok \Q$line\E|error: \Q$line\E: .*)$/m;
	pump_until($m, sub { substr($m->{out}, $before) =~ $re });
	return substr($m->{out}, $before) =~ $re ? $1 : 'no answer';
}

# port_of M, NAME: the link's port, from the "listening" lines.
sub port_of
{
	my ($m, $name) = @_;
	pump_until($m, sub { $m->{out} =~ /^listening \Q$name\E (\d+)$/m });
	return $m->{out} =~ /^listening \Q$name\E (\d+)$/m ? $1 : die "no port for $name";
}

sub connect_to
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $_[0])
	  or die "connect: $!";
	setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
	return $s;
}

# read_bytes S, N, SECONDS: up to N bytes, whatever came within SECONDS.
sub read_bytes
{
	my ($s, $n, $secs) = @_;
	my ($got, $sel, $deadline) = ('', IO::Select->new($s), time + $secs);
	while (length $got < $n)
	{
		my $left = $deadline - time;
		last if $left <= 0 || !$sel->can_read($left);
		my $r = sysread($s, my $buf, $n - length $got);
		last if !$r;
		$got .= $buf;
	}
	return $got;
}

# round_trip S, BYTES: send them, read them back; (echo, seconds)
sub round_trip
{
	my ($s, $bytes) = @_;
	my $t = time;
	syswrite($s, $bytes);
	my $got = read_bytes($s, length $bytes, $WAIT);
	return ($got, time - $t);
}

# cpu_seconds PID: user and system time the process has used
sub cpu_seconds
{
	open my $fh, '<', "/proc/$_[0]/stat" or return 0;
	my @f = split / /, (<$fh> =~ s/^.*\) //r);
	return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

my $echo = echo_server();

# ---- options refused ----
for my $case ([ [], qr/at least one --link/ ],
	[ [ '--link', 'e=0:127.0.0.1:1', '--delay-ms', '-1' ], qr/--delay-ms must be milliseconds/ ],
	[ [ '--link', 'e=0:127.0.0.1:1', '--jitter', 'pareto' ], qr/--jitter is uniform or normal/ ],
	[ [ '--link', 'nohost' ], qr/is not NAME=LISTEN_PORT:HOST:PORT/ ],
	[ [ '--link', 'e=0:127.0.0.1:1', '--link', 'e=0:127.0.0.1:2' ], qr/link "e" exists already/ ],
	[ [ '--link', 'all=0:127.0.0.1:1' ], qr/and not "all"/ ])
{
	my ($args, $re) = @$case;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $NETEM, @$args ], '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout($WAIT));
	isnt($? >> 8, 0, "refused: @$args");
	like($err, $re, "and says why: @$args");
}

# ---- bytes intact, delays ----
my $ports = "$dir/ports";
my $m = start_netem('--link', "e=0:127.0.0.1:$echo", '--ports-file', $ports, '--seed', '7');
ok(pump_until($m, sub { -s $ports }), 'the ports file appears');
my $port = port_of($m, 'e');
like(scalar `cat $ports`, qr/^e $port$/m, 'it names the link and its port');

my $s = connect_to($port);
my $data = join '', map { chr(int(rand(256))) } 1 .. 300000;
my ($back) = round_trip($s, $data);
ok($back eq $data, '300 kB of random bytes come back intact');

is(command($m, 'delay e 20'), 'ok delay e 20', 'delay set');
my @rtt = map { (round_trip($s, "ping $_"))[1] } 1 .. 5;
my ($min) = sort { $a <=> $b } @rtt;
cmp_ok($min, '>=', 0.040, 'a round trip through a 20 ms link takes at least 40 ms');
cmp_ok($min, '<', 1, 'and not seconds');

# jitter must not reorder: 2000 numbered writes come back in order
is(command($m, 'delay e 3 3 normal'), 'ok delay e 3 3 normal', 'jitter set');
my $expect = '';
for my $i (1 .. 2000)
{
	syswrite($s, "<$i>");
	$expect .= "<$i>";
	sleep 0.0005 if $i % 50 == 0;
}
is(read_bytes($s, length $expect, $WAIT), $expect, 'with jitter, 2000 writes come back whole and in order');
is(command($m, 'delay all 0'), 'ok delay all 0', 'delay cleared');

# ---- partitions ----
is(command($m, 'partition e'), 'ok partition e', 'partition both ways');
syswrite($s, 'held');
is(read_bytes($s, 4, 0.5), '', 'nothing comes back while partitioned');
my $late = connect_to($port);
syswrite($late, 'waiting');
is(read_bytes($late, 7, 0.3), '', 'a connection made during the partition gets no answer');
my $cpu = cpu_seconds($m->{h}{KIDS}[0]{PID});
sleep 1;
cmp_ok(cpu_seconds($m->{h}{KIDS}[0]{PID}) - $cpu, '<', 0.5, 'holding bytes does not spin (CPU seconds in 1 s)');
is(command($m, 'heal e'), 'ok heal e', 'healed');
is(read_bytes($s, 4, $WAIT), 'held', 'the held bytes are delivered after the heal');
is(read_bytes($late, 7, $WAIT), 'waiting', 'and the waiting connection is connected');

is(command($m, 'partition e down'), 'ok partition e down', 'one-way partition (answers held)');
syswrite($s, 'one');
is(read_bytes($s, 3, 0.4), '', 'the answer is held');
is(command($m, 'heal all'), 'ok heal all', 'healed');
is(read_bytes($s, 3, $WAIT), 'one', 'and delivered');

is(command($m, 'partition e up'), 'ok partition e up', 'one-way partition (requests held)');
syswrite($s, 'two');
is(read_bytes($s, 3, 0.4), '', 'the request is held');
is(command($m, 'heal e'), 'ok heal e', 'healed');
is(read_bytes($s, 3, $WAIT), 'two', 'and answered');

# ---- reset, links at run time, stats ----
is(command($m, 'reset e'), 'ok reset e', 'reset');
syswrite($s, 'x');
my $r = sysread($s, my $buf, 10);
ok(!$r, 'the client sees its connection closed');

is(command($m, "link f 0 127.0.0.1:$echo"), "ok link f 0 127.0.0.1:$echo", 'a link added at run time');
my $f = connect_to(port_of($m, 'f'));
is((round_trip($f, 'via f'))[0], 'via f', 'it forwards');
close $f;

is(command($m, 'stats'), 'ok stats', 'stats');
like($m->{out}, qr/^stats e port=$port target=127\.0\.0\.1:$echo conns=2 open=\d+ up_bytes=(\d+) down_bytes=\1 /m,
	'stats count link e\'s connections, and as many bytes down as up');
my ($up) = $m->{out} =~ /^stats e .* up_bytes=(\d+)/m;
cmp_ok($up, '>=', 300000 + length($expect), 'every byte sent through e is counted');

# ---- bad commands change nothing ----
for my $case ([ 'delay nosuch 1', qr/no link "nosuch"/ ],
	[ 'delay e -1', qr/milliseconds from 0/ ],
	[ 'delay e 1 1 pareto', qr/uniform" or "normal/ ],
	[ 'partition e sideways', qr/"up", "down" or "both"/ ],
	[ "link e 0 127.0.0.1:$echo", qr/exists already/ ],
	[ 'link g 99999 127.0.0.1:1', qr/not 0 to 65535/ ],
	[ 'link g 0 nocolon', qr/not HOST:PORT/ ],
	[ 'heal', qr/usage: heal LINK\|all/ ],
	[ 'teleport e', qr/unknown command/ ])
{
	my ($line, $re) = @$case;
	like(command($m, $line), qr/^error: \Q$line\E: .*$re/, "refused: $line");
}
my $c2 = connect_to($port);
is((round_trip($c2, 'still'))[0], 'still', 'and the link still forwards, undelayed');

# ---- stop ----
$m->{h}->signal('TERM');
$m->{timer}->start($WAIT);
$m->{h}->pump while $m->{h}->pumpable && !$m->{timer}->is_expired;
$m->{h}->finish;
is($m->{h}->full_result(0), 0, 'SIGTERM stops it with status 0');
like($m->{err}, qr/stopped\n\z/, 'and it logs that it stopped');
ok(!-e $ports, 'and removes its ports file');

END
{
	local $?;
	$_->kill_kill for grep { $_->pumpable } @harnesses;
	kill 'TERM', @children;
	waitpid($_, 0) for @children;
}

done_testing();
