# relay/t/001_cli.pl: the command line, environment and config file of
# distsys-relay, as a user meets them.
#
# Needs distsys-relay on PATH (the test runner puts the build's relay/
# directory there).  Effective values are read back with --print-config.
# No database or broker is needed: the only connection attempted goes to a
# closed port.

use strict;
use warnings;

use File::Spec;
use File::Temp qw(tempdir);
use IPC::Run qw(run);
use IPC::Run ();
use Test::More;

my $relay = find_program('distsys-relay')
  or BAIL_OUT('distsys-relay not found on PATH');
my $tmp = tempdir(CLEANUP => 1);

# The caller's settings must not leak into the tests.
delete $ENV{$_} for grep { /^DISTSYS_/ } keys %ENV;

sub find_program
{
	my ($name) = @_;

	for my $dir (File::Spec->path)
	{
		my $path = File::Spec->catfile($dir, $name);
		return $path if -x $path && !-d $path;
	}
	return undef;
}

# relay(\@args, ENV => value, ...): run distsys-relay; returns the exit
# code, stdout and stderr.
sub relay
{
	my ($args, %env) = @_;
	my ($out, $err) = ('', '');

	local %ENV = (%ENV, %env);
	run([ $relay, @$args ], '<', \undef, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

sub write_file
{
	my ($name, $text) = @_;
	my $path = "$tmp/$name";

	open my $fh, '>', $path or die "could not write $path: $!";
	print $fh $text;
	close $fh;
	return $path;
}

# config_of(\@args, ENV => value, ...): the effective settings, as a hash
# read from --print-config; empty (so the caller's test fails) on error.
sub config_of
{
	my ($args, %env) = @_;
	my ($rc, $out, $err) = relay([ @$args, '--print-config' ], %env);
	my %config;

	if ($rc != 0)
	{
		diag("--print-config failed with exit code $rc: $err");
		return {};
	}
	for my $line (split /\n/, $out)
	{
		$config{$1} = $2 if $line =~ /^(\S+) = (.*)$/;
	}
	return \%config;
}

# usage_error(\@args, \%env, qr/message/, test name): exit code 2, nothing on
# stdout, and exactly one line on stderr that starts with the program name
# and matches the pattern.
sub usage_error
{
	my ($args, $env, $pattern, $name) = @_;
	my ($rc, $out, $err) = relay($args, %$env);

	subtest $name => sub {
		is($rc, 2, 'exit code 2');
		is($out, '', 'nothing on stdout');
		is(scalar(split /\n/, $err), 1, 'one line on stderr');
		like($err, qr/^distsys-relay: /, 'starts with the program name');
		like($err, $pattern, 'names the culprit and what is expected');
	};
}

# usage_error_log: as usage_error, for errors found after logging is set up,
# which come as one log line.
sub usage_error_log
{
	my ($args, $env, $pattern, $name) = @_;
	my ($rc, $out, $err) = relay($args, %$env);

	subtest $name => sub {
		is($rc, 2, 'exit code 2');
		is(scalar(split /\n/, $err), 1, 'one line on stderr');
		like($err, qr/distsys-relay error: /, 'an error log line');
		like($err, $pattern, 'names what is missing');
	};
}

# --help and --version

my @options = qw(--db --brokers --config -X --kafka --batch-size
  --retry-backoff --retry-backoff-max --dead-letter-after --lanes
  --metrics-addr --log-format --log-level --print-config -h --help -V
  --version);
my @variables = qw(DISTSYS_DB DISTSYS_BROKERS DISTSYS_CONFIG DISTSYS_KAFKA
  DISTSYS_BATCH_SIZE DISTSYS_RETRY_BACKOFF DISTSYS_RETRY_BACKOFF_MAX
  DISTSYS_DEAD_LETTER_AFTER DISTSYS_LANES DISTSYS_METRICS_ADDR
  DISTSYS_LOG_FORMAT DISTSYS_LOG_LEVEL);

for my $flag ('--help', '-h')
{
	my ($rc, $out, $err) = relay([$flag]);

	subtest "$flag prints usage naming every option and variable" => sub {
		is($rc, 0, 'exit code 0');
		is($err, '', 'nothing on stderr');
		like($out, qr/^Usage:/m, 'has a usage line');
		like($out, qr/(?<![\w-])\Q$_\E(?![\w-])/, "mentions $_")
		  for @options, @variables;
		like($out, qr/default 1000/, 'shows the default of --batch-size');
		like($out, qr/\bpublish\b/, 'lists the publish command');
	};
}

{
	my ($rc, $out) = relay(['--help'], DISTSYS_LANES => '0');
	is($rc, 0, '--help works even when the environment holds a bad value');
}

for my $flag ('--version', '-V')
{
	my ($rc, $out, $err) = relay([$flag]);

	is($rc, 0, "$flag exits 0");
	like($out,
		qr/^distsys-relay 1\.0\.0 \(librdkafka \d+\.\d+\.\d+\S*, libpq \d+\)\n\z/,
		"$flag prints program, librdkafka and libpq versions");
}

# Command-line errors

usage_error(['--bogus'], {}, qr/unknown option "--bogus"/, 'unknown long flag');
usage_error(['-Z'], {}, qr/unknown option "-Z"/, 'unknown short flag');
usage_error(['--batch-size'], {},
	qr/option --batch-size needs a value: expected an integer from 1 to 100000/,
	'missing argument');
usage_error(['--print-config=yes'], {}, qr/option --print-config takes no value/,
	'value given to a flag without value');
usage_error([qw(--batch-size abc)], {},
	qr/invalid value "abc" for --batch-size: expected an integer from 1 to 100000$/,
	'integer that is not a number');
usage_error([qw(--batch-size 100001)], {},
	qr/invalid value "100001" for --batch-size: expected an integer from 1 to 100000/,
	'integer above its range');
usage_error([qw(--lanes 0)], {},
	qr/invalid value "0" for --lanes: expected an integer from 1 to 1024/,
	'integer below its range');
usage_error([qw(--dead-letter-after 99999999999999999999)], {},
	qr/for --dead-letter-after: expected an integer from 1 to 1000000/,
	'integer that overflows');
usage_error([qw(--retry-backoff 5parsecs)], {},
	qr/invalid value "5parsecs" for --retry-backoff: expected a duration from 1ms to 10min/,
	'duration with an unknown unit');
usage_error([qw(--retry-backoff-max 2h)], {},
	qr/invalid value "2h" for --retry-backoff-max: expected a duration from 1ms to 1h/,
	'duration above its range');
usage_error([qw(--retry-backoff 20s --retry-backoff-max 10s)], {},
	qr/--retry-backoff \(20s\) must not be greater than --retry-backoff-max \(10s\)/,
	'backoff above its maximum');
usage_error([qw(--log-format xml)], {},
	qr/invalid value "xml" for --log-format: expected one of text, json$/,
	'enum value that is not a choice');
usage_error([qw(--log-level loud)], {},
	qr/for --log-level: expected one of debug, info, warning, error$/,
	'log level that is not a choice');
usage_error([qw(-X acks)], {},
	qr/invalid value "acks" for -X: expected a librdkafka property as NAME=VALUE/,
	'-X without =');
usage_error([qw(--kafka acks)], {}, qr/for --kafka: expected a librdkafka property/,
	'--kafka without =');
usage_error([qw(-X no.such.property=1)], {},
	qr/for -X: No such configuration property/,
	'-X with a property librdkafka does not know');
usage_error([qw(-X bootstrap.servers=k:9092)], {}, qr/with --brokers/,
	'-X bootstrap.servers points to --brokers');
usage_error([ '--db', 'nonsense' ], {}, qr/invalid value for --db: .*"nonsense"/,
	'conninfo libpq cannot parse');

# Subcommands

usage_error(['frobnicate'], {}, qr/unknown command "frobnicate": expected publish or consume/,
	'unknown subcommand');
usage_error([qw(consume --lanes 4)], {}, qr/option --lanes is not available for the consume command/,
	'a publish-only option with consume');
usage_error([qw(publish --group g)], {}, qr/option --group is not available for the publish command/,
	'a consume-only option with publish');
{
	my ($rc, $out) = relay([qw(consume --help)]);
	like($out, qr/(?<![\w-])\Q$_\E(?![\w-])/, "consume --help mentions $_")
	  for qw(--topic --group --handler --batch-size --dead-letter-after DISTSYS_TOPIC
	  DISTSYS_GROUP DISTSYS_HANDLER);
	unlike($out, qr/--lanes/, 'consume --help does not offer --lanes');
	my $c = config_of([ 'consume', '--topic', 'a,b', qw(--group g --handler app.h) ],
		DISTSYS_BATCH_SIZE => 50);
	is(join(' ', map { $c->{$_} } qw(topic group handler batch-size)), 'a,b g app.h 50',
		'consume takes --topic, --group, --handler and the shared options');
}
usage_error([qw(--lanes 4 publish)], {}, qr/unexpected argument "publish"/,
	'subcommand after the options');
is(config_of([qw(publish --lanes 4)])->{lanes}, 4,
	'explicit publish subcommand takes its options');

# Defaults and durations

{
	my $c = config_of([]);
	my %defaults = (
		'batch-size' => 1000,
		'retry-backoff' => '100ms',
		'retry-backoff-max' => '10s',
		'dead-letter-after' => 10,
		'lanes' => 16,
		'metrics-addr' => '',
		'log-format' => 'text',
		'log-level' => 'info',
		'db' => '');

	is_deeply({ map { $_ => $c->{$_} } keys %defaults }, \%defaults,
		'built-in defaults');
}

for my $case ([ '250ms', '250ms' ], [ '2s', '2s' ], [ '1min', '1min' ],
	[ '1500', '1500ms' ], [ '3000', '3s' ])
{
	my ($in, $shown) = @$case;

	is(config_of([ '--retry-backoff-max', $in ])->{'retry-backoff-max'},
		$shown, "duration $in is read as $shown");
}

# Precedence: defaults < config file < environment < command line

my $conf = write_file('relay.conf', <<'EOF');
# distsys-relay settings

batch-size = 11
   lanes=12
dead-letter-after = 13
log-level = "debug"
kafka.acks = 1
kafka.linger.ms = 5
kafka.client.id = from-file
EOF

{
	my $c = config_of([ '--config', $conf ]);

	is($c->{'batch-size'}, 11, 'config file beats default');
	is($c->{lanes}, 12, 'config file key with spaces around it');
	is($c->{'log-level'}, 'debug', 'config file value in double quotes');
	is($c->{'kafka.client.id'}, 'from-file', 'kafka.NAME in config file');
	is($c->{config}, $conf, 'the config file is shown');
}

{
	my %env = (DISTSYS_CONFIG => $conf, DISTSYS_BATCH_SIZE => 21,
		DISTSYS_LANES => 22, DISTSYS_KAFKA => 'acks=all; linger.ms=7');
	my $c = config_of([ '--lanes', 32, '-X', 'linger.ms=9' ], %env);

	is($c->{'batch-size'}, 21, 'environment beats config file');
	is($c->{lanes}, 32, 'command line beats environment');
	is($c->{'dead-letter-after'}, 13, 'config file read through DISTSYS_CONFIG');
	is($c->{'kafka.acks'}, 'all', 'DISTSYS_KAFKA beats kafka.NAME in the file');
	is($c->{'kafka.linger.ms'}, 9, '-X beats DISTSYS_KAFKA');
	is($c->{'kafka.client.id'}, 'from-file',
		'librdkafka properties merge across sources');
}

is(config_of([], DISTSYS_LOG_FORMAT => 'json')->{'log-format'}, 'json',
	'environment used when no flag is given');
is(config_of([], DISTSYS_BATCH_SIZE => '')->{'batch-size'}, 1000,
	'empty environment variable counts as unset');
is(config_of([qw(-X linger.ms=1 -X linger.ms=2)])->{'kafka.linger.ms'}, 2,
	'the last -X of one property wins');

usage_error([], { DISTSYS_BATCH_SIZE => 'abc' },
	qr/invalid value "abc" for DISTSYS_BATCH_SIZE: expected an integer/,
	'bad value in the environment names the variable');
usage_error([], { DISTSYS_KAFKA => 'acks=all;oops' },
	qr/invalid value "oops" for DISTSYS_KAFKA: expected a librdkafka property/,
	'bad property in DISTSYS_KAFKA names the variable');

# Config file errors

{
	my $bad = write_file('unknown.conf', "lanes = 2\n# fine\nbogus = 1\n");

	usage_error([ '--config', $bad ], {}, qr/\Q$bad\E:3: unknown key "bogus"$/,
		'unknown config key names file:line and the key');
	$bad = write_file('value.conf', "\nbatch-size = lots\n");
	usage_error([ '--config', $bad ], {},
		qr/\Q$bad\E:2: invalid value "lots" for batch-size: expected an integer/,
		'bad config value names file:line and the key');
	$bad = write_file('noeq.conf', "batch-size 5\n");
	usage_error([ '--config', $bad ], {}, qr/\Q$bad\E:1: expected "key = value"/,
		'config line without =');
	$bad = write_file('self.conf', "config = /etc/other.conf\n");
	usage_error([ '--config', $bad ], {},
		qr/\Q$bad\E:1: key "config" cannot be set in a config file/,
		'config file cannot name another config file');
	$bad = write_file('kafka.conf', "kafka.no.such.property = 1\n");
	usage_error([ '--config', $bad ], {},
		qr/\Q$bad\E:1: invalid value .* for kafka\.no\.such\.property/,
		'unknown librdkafka property in the config file');
	usage_error([ '--config', "$tmp/missing.conf" ], {},
		qr/could not open config file "\Q$tmp\E\/missing\.conf": No such file/,
		'missing config file');
	usage_error([], { DISTSYS_CONFIG => $tmp }, qr/could not read config file "\Q$tmp\E"/,
		'config file that is a directory');
}

# Secrets

{
	my ($rc, $out) = relay([ '--db', "host=db.example user=relay password=s3cret",
		'-X', 'sasl.password=hunter2', '--print-config' ]);

	is($rc, 0, '--print-config exits 0');
	unlike($out, qr/s3cret|hunter2/, '--print-config shows no password');
	like($out, qr/^db = .*password=\*+/m, 'conninfo password is masked');
	like($out, qr/^db = .*host=db\.example/m, 'rest of the conninfo is shown');
	like($out, qr/^kafka\.sasl\.password = \*+$/m, 'librdkafka password is masked');

	($rc, $out) = relay([ '--db', 'postgresql://relay:s3cret@db.example/app',
		'--print-config' ]);
	unlike($out, qr/s3cret/, 'password in a connection URI is masked');
	like($out, qr/^db = .*dbname=app/m, 'connection URI is shown as keywords');
}

# Running: required settings and the database connection

usage_error_log([ '--brokers', 'k:9092' ], {}, qr/--db is required/,
	'missing --db');
usage_error_log([ '--db', 'host=127.0.0.1 port=1' ], {}, qr/--brokers is required/,
	'missing --brokers');

# An unreachable database is not fatal: the relay says so in one line and
# keeps retrying with backoff until it is stopped; SIGTERM then exits 0.
# relay_until(\@args, qr/line/, ENV => value, ...): start the relay, wait
# (bounded) for the pattern on stderr, check it still runs, SIGTERM it;
# returns its exit code and stderr.
sub relay_until
{
	my ($args, $pattern, %env) = @_;
	my ($out, $err) = ('', '');
	my $timer = IPC::Run::timer(30);

	local %ENV = (%ENV, %env);
	my $h = IPC::Run::start([ $relay, @$args ], '<', \undef, '>', \$out, '2>', \$err, $timer);
	$h->pump until $err =~ $pattern || $timer->is_expired || !$h->pumpable;
	my $running = $h->pumpable;
	$h->signal('TERM');
	$timer->start(30);
	$h->pump while $h->pumpable && !$timer->is_expired;
	$h->kill_kill if $h->pumpable;
	$h->finish;
	return ($running, $h->result(0), $err);
}

{
	my @args = ('--db', 'host=127.0.0.1 port=1 connect_timeout=2',
		'--brokers', 'localhost:9092', '--retry-backoff', '50ms');
	my ($running, $rc, $err) = relay_until(\@args, qr/could not connect/);

	ok($running, 'unreachable database: the relay keeps retrying');
	is($rc, 0, 'and exits 0 on SIGTERM');
	my @lines = grep { /could not connect/ } split /\n/, $err;
	is(scalar(@lines), 1, 'unreachable database gives one line, not one per attempt');
	like($err, qr/error: could not connect to the database: .*port 1 failed.*retrying/,
		'the line says the connection failed, where, and that it retries');

	($running, $rc, $err) = relay_until(\@args, qr/could not connect/,
		DISTSYS_LOG_FORMAT => 'json');
	like($err, qr/^\{"ts":"[^"]+","program":"distsys-relay","level":"error","msg":"could not connect/m,
		'--log-format from the environment applies to the log');
	($running, $rc, $err) = relay_until([ @args, '--log-level', 'error' ], qr/could not connect/);
	like($err, qr/could not connect/, 'log level error still shows errors');
}

done_testing();
