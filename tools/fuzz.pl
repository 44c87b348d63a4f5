#!/usr/bin/perl
# tools/fuzz.pl: call every distsys SQL function with random and hostile
# arguments, and count what comes back.  Run by tools/fuzz.sh, which starts
# the server; not part of 'make test'.
#
#   fuzz.pl --port P --seed S --seconds N --sessions K --outdir DIR
#
# The function list is read from pg_proc (schema distsys), so a new function
# is fuzzed without a change here.  Each argument gets a value from a pool
# of its type: NULL, empty and huge values, names at and past each limit,
# bytes that are not UTF-8, zero, negative, infinite and huge intervals and
# times, SQL for dtx_exec that ends or prepares the remote transaction.  A
# call runs bare, in a transaction that is rolled back, in an aborted
# transaction, in a subtransaction that is rolled back, in a PL/pgSQL
# exception block, as an unprivileged role, or with a short statement
# timeout.  K sessions run at once, each with its own seed.
#
# Every error is counted by SQLSTATE.  A call is bad when the server
# answers XX000 (an internal error) or the session dies; tools/fuzz.sh also
# reads the server log for crashes and assertion failures.  Prints the
# counts and exits 1 if anything was bad.
use strict;
use warnings;
use Getopt::Long;
use POSIX qw(:sys_wait_h);

my %opt = (port => 5432, seed => time, seconds => 60, sessions => 4, outdir => '.',
	host => '127.0.0.1', user => 'postgres', db => 'postgres');
GetOptions(\%opt, 'port=i', 'seed=i', 'seconds=i', 'sessions=i', 'outdir=s',
	'host=s', 'user=s', 'db=s') or die "usage: see the top of $0\n";

my @psql = ('psql', '-X', '-q', '-h', $opt{host}, '-p', $opt{port}, '-U', $opt{user},
	'-d', $opt{db});

# sql_out(SQL): psql's output of one statement (dies on failure).
sub sql_out
{
	my ($sql) = @_;
	open my $fh, '-|', @psql, '-At', '-v', 'ON_ERROR_STOP=1', '-c', $sql
	  or die "psql: $!";
	local $/;
	my $out = <$fh>;
	close $fh or die "psql failed on: $sql\n";
	chomp $out;
	return $out;
}

# The functions: name and argument types, one per overload.
my @functions = map { [ split /\|/, $_, 2 ] } split /\n/, sql_out(q{
	SELECT p.proname, coalesce(string_agg(format_type(t, NULL), ',' ORDER BY o), '')
	  FROM pg_proc p
	  JOIN pg_namespace n ON n.oid = p.pronamespace
	  LEFT JOIN LATERAL unnest(p.proargtypes) WITH ORDINALITY AS a(t, o) ON true
	 WHERE n.nspname = 'distsys' AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
	 GROUP BY p.oid, p.proname ORDER BY p.proname, p.oid});
die "no distsys functions found: is the extension created?\n" unless @functions;

my $long = 'x' x 100000;
my %pool = (
	text => [ 'NULL', "''", "'a'", "'job'", "'distsys.relay.lane.1'", "'distsys.relay.member.x'",
		"'" . ('n' x 255) . "'", "'" . ('n' x 256) . "'", "'" . ('o' x 127) . "'",
		"'" . ('o' x 128) . "'", "'$long'", "'é€😀'", "'a''b; DROP TABLE t; --'",
		"'self'", "'nosuchnode'", "repeat('ab', 5000000)", "E'\\x7f\\x01'", "'%s%n%x'",
		"'SELECT 1'", "'COMMIT'", "'BEGIN'", "'ROLLBACK'", "'PREPARE TRANSACTION ''fz'''",
		"'SELECT 1/0'", "'SELECT pg_sleep(0.2)'", "'SET ROLE NONE'", "'SELECT repeat(''x'', 1000000)'",
		"'SELECT ''{\"a\": \"\\u0000\"}''::json'", "'SELECT * FROM generate_series(1, 5000)'",
		"'host=127.0.0.1 port=1 connect_timeout=1'", "'dbname=postgres'", "'exclusive'",
		"'shared'", "'bogus'", "'orders'", "'" . ('t' x 300) . "'" ],
	interval => [ 'NULL', "'0'", "'-1 second'", "'1 microsecond'", "'1 second'", "'30 seconds'",
		"'1000000 years'", "'-178000000 years'", "'2147483647 days'", "'1 day -86399 seconds'",
		"'0.0000001 seconds'", "'100 years'" ],
	bigint => [ 'NULL', '0', '-1', '1', '2', '9223372036854775807', '-9223372036854775808',
		'(SELECT max(token) FROM distsys.dlock_leases)', '(SELECT max(id) FROM distsys.outbox)' ],
	integer => [ 'NULL', '0', '-1', '1', '2147483647', '-2147483648' ],
	boolean => [ 'NULL', 'true', 'false' ],
	bytea => [ 'NULL', "''::bytea", "'\\xfffe00'::bytea", "'\\xc3'::bytea",
		"decode(repeat('ff', 100000), 'hex')", "convert_to('ok', 'UTF8')" ],
	jsonb => [ 'NULL', "'{}'", "'[]'", "'null'", "'\"s\"'", "'1'", "'{\"a\": 1}'",
		"'{\"h\": \"v\", \"k\": \"\"}'", "'{\"a\": {\"b\": [1, 2, {\"c\": null}]}}'",
		"(SELECT jsonb_object_agg('h' || g, repeat('v', 100)) FROM generate_series(1, 5000) g)",
		"repeat('[', 5000)::text || repeat(']', 5000)", "'{\"\": \"\"}'", "'{\"é\": \"😀\"}'" ],
	'timestamp with time zone' => [ 'NULL', 'now()', "'infinity'", "'-infinity'",
		"now() - interval '30 days'", "now() + interval '1000 years'", "'4713-01-01 BC'",
		"'294276-12-31'" ],
	regprocedure => [ 'NULL', "'fuzz_h(text,text,jsonb,jsonb)'", "'fuzz_hb(text,text,bytea,jsonb)'",
		"'fuzz_nest(text,text,jsonb,jsonb)'", "'fuzz_nest_sql(text,text,jsonb,jsonb)'", "'fuzz_fail(text,text,jsonb,jsonb)'",
		"'fuzz_strict(text,text,jsonb,jsonb)'", "'pg_sleep(double precision)'", "'now()'" ],
	regrole => [ 'NULL', "'postgres'", "'fuzz_user'", "'pg_read_all_data'", "'public'" ],
	'bigint[]' => [ 'NULL', "'{}'", "'{1}'", "'{NULL}'", "(SELECT array_agg(id) FROM distsys.outbox)",
		"array_fill(1::bigint, ARRAY[100000])" ],
);

# value(TYPE): a random value of that type (a cast keeps overloads apart).
sub value
{
	my ($type) = @_;
	my $p = $pool{$type};
	die "no value pool for type $type (add one to tools/fuzz.pl)\n" unless $p;
	my $v = $p->[ int(rand(@$p)) ];
	return "($v)::$type";
}

# the error that aborts a transaction on purpose (not counted)
my $abort_state = 'Z9001';

# wrap(CALL): the statement(s) that run CALL in a random context.
sub wrap
{
	my ($call) = @_;
	my $r = int(rand(10));
	return "SELECT $call;" if $r <= 2;
	return "BEGIN; SELECT $call; ROLLBACK;" if $r == 3;
	return "BEGIN; SELECT $call; COMMIT;" if $r == 4;
	return "BEGIN; DO \$fz\$ BEGIN RAISE EXCEPTION USING ERRCODE = '$abort_state'; END \$fz\$; SELECT $call; ROLLBACK;"
	  if $r == 5;
	return "BEGIN; SAVEPOINT s; SELECT $call; ROLLBACK TO s; SELECT $call; ROLLBACK;" if $r == 6;
	return "DO \$fz\$ BEGIN PERFORM $call; PERFORM 1/0; EXCEPTION WHEN division_by_zero THEN NULL; END \$fz\$;"
	  if $r == 7;
	return "SET ROLE fuzz_user; SELECT $call; RESET ROLE;" if $r == 8;
	return "SET statement_timeout = '20ms'; SELECT $call; RESET statement_timeout;";
}

# session(N): one psql session's script, run; returns its output file.
sub session
{
	my ($n, $deadline) = @_;
	srand($opt{seed} + $n);
	my $script = "$opt{outdir}/fuzz-$n.sql";
	my $out = "$opt{outdir}/fuzz-$n.out";
	my $calls = 0;
	open my $fh, '>', $script or die "$script: $!";
	print $fh "\\set VERBOSITY verbose\nSET client_min_messages = warning;\n"
	  . "SET distsys.dtx_prepare_timeout = '2s'; SET distsys.dtx_commit_timeout = '2s';\n";
	for my $i (1 .. 3000)
	{
		my ($name, $args) = @{ $functions[ int(rand(@functions)) ] };
		my @types = $args eq '' ? () : split /,/, $args;
		my $call = "distsys.$name(" . join(', ', map { value($_) } @types) . ")";
		print $fh "\\echo FUZZCALL $name\n", wrap($call), "\nRESET ROLE;\n";
		$calls++;
	}
	close $fh;
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		open STDOUT, '>', $out or die;
		open STDERR, '>&', \*STDOUT or die;
		exec @psql, '-f', $script;
	}
	return ($pid, $out, $calls);
}

my $deadline = time + $opt{seconds};
my (%by_state, %by_func_state, @internal);
my ($calls, $died, $rounds) = (0, 0, 0);
while (time < $deadline)
{
	my @running = map { [ session($_ + $rounds * $opt{sessions}, $deadline) ] } 1 .. $opt{sessions};
	my $left = $deadline - time + 60;
	for my $r (@running)
	{
		my ($pid, $out) = @$r;
		my $t0 = time;
		while (waitpid($pid, WNOHANG) == 0)
		{
			if (time > $deadline + 120) { kill 'TERM', $pid; }
			select(undef, undef, undef, 0.2);
		}
		open my $fh, '<', $out or die "$out: $!";
		my $func = '?';
		while (my $line = <$fh>)
		{
			if ($line =~ /^FUZZCALL (\S+)/) { $func = $1; $calls++; next; }
			if ($line =~ /(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5}):\s*(.*)/)
			{
				next if $1 eq $abort_state;
				$by_state{$1}++;
				$by_func_state{"$func $1"}++;
				push @internal, "$func: $1: $2" if $1 eq 'XX000' || $line =~ /^\S*(FATAL|PANIC)/;
			}
			if ($line =~ /server closed the connection unexpectedly|connection to server was lost|terminated abnormally/)
			{
				$died++;
				push @internal, "$func: session died: $line";
			}
		}
	}
	$rounds++;
}

print "fuzz: seed $opt{seed}, $opt{sessions} sessions, $rounds rounds, $calls calls of "
  . scalar(@functions) . " functions\n";
print "fuzz: errors by SQLSTATE: "
  . join(', ', map { "$_ $by_state{$_}" } sort { $by_state{$b} <=> $by_state{$a} } keys %by_state) . "\n";
for my $state (sort keys %by_state)
{
	my @f = sort grep { /\Q $state\E$/ } keys %by_func_state;
	printf "  %s: %s\n", $state, join(', ', map { /^(\S+)/; "$1 $by_func_state{$_}" } @f);
}
print "fuzz: sessions that died: $died\n";
print "fuzz: internal errors (XX000, FATAL, PANIC): " . scalar(@internal) . "\n";
my %seen;
print "  $_\n" for grep { !$seen{$_}++ } @internal[ 0 .. ($#internal < 20 ? $#internal : 20) ];
exit(@internal || $died ? 1 : 0);
