# t/015_relay_roles.pl: distsys-relay as least-privileged roles, among
# roles that try to subvert it.
#
# The publishing relay runs as a LOGIN role that is only a member of
# distsys_relay, the consumer as one that is only a member of
# distsys_consumer: messages go from outbox_send through Kafka to the
# handler, a refused message is dead-lettered by the relay (outbox_fail), a
# failing one by the consumer (inbox_dead), the consumer's inbox_cleanup
# runs: the grants of the install script are enough.  Meanwhile mallory, an
# ordinary role with CREATE on schema public (which both relay roles have
# first in their search_path), has put functions, operators and domains
# there with the names and argument types of pg_catalog's that the relay's
# statements use: none of them is ever called.  mallory also tries to take
# the relay's lane and member locks, before the relay starts and while it
# runs: refused (42501), and the relay owns every lane.  Lock names that
# only look like the relay's, taken by a superuser, are not counted.
# Finally outbox_topic_grants: open while empty; once it has rows, alice
# may send only to her topics and bob to none but the public one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DistsysTest;
use RelayTest;

my $node = distsys_node('roles');
my $m = start_mock('mock015', '--topic', 'orders:2');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# as(ROLE, SQL): run SQL as ROLE; (exit code, stdout, stderr).
sub as
{
	my ($role, $query) = @_;
	my ($out, $err);
	my $rc = $node->psql('postgres', $query, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return ($rc, $out, $err);
}

# --- the roles, created by CREATE EXTENSION, also in a second database ------
is(sql("SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles"
	  . " WHERE rolname IN ('distsys_relay', 'distsys_consumer')"),
	'distsys_consumer:false,distsys_relay:false', 'the install script creates both roles, NOLOGIN');
sql('CREATE DATABASE other');
is($node->psql('other', 'CREATE EXTENSION distsys'), 0,
	'a second database installs the extension although the roles exist');

sql(q{
	CREATE ROLE relay_login LOGIN IN ROLE distsys_relay;
	CREATE ROLE consumer_login LOGIN IN ROLE distsys_consumer;
	CREATE ROLE mallory LOGIN;
	GRANT CREATE ON SCHEMA public TO mallory;
	ALTER ROLE relay_login SET search_path = public, pg_catalog;
	ALTER ROLE consumer_login SET search_path = public, pg_catalog;

	CREATE SCHEMA app;
	CREATE TABLE app.taken (k text, payload jsonb, headers jsonb);
	-- a handler as docs/relay.md advises: its own search_path
	CREATE FUNCTION app.take(topic text, key text, payload jsonb, headers jsonb)
	RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $$
	BEGIN
		IF payload ? 'fail' THEN
			RAISE EXCEPTION 'cannot take %', key;
		END IF;
		INSERT INTO app.taken VALUES (key, payload, headers);
	END $$;
	GRANT USAGE ON SCHEMA app TO consumer_login;
	GRANT INSERT ON app.taken TO consumer_login;
});

# --- mallory's traps ----------------------------------------------------------
# Each records its call in public.trap_calls (as mallory) and then does
# what pg_catalog's would, so a relay that resolved to it would still work.
sql(q{
	SET ROLE mallory;
	CREATE TABLE public.trap_calls (what text, by_role text);
	CREATE FUNCTION public.trap(what pg_catalog.text) RETURNS pg_catalog.bool
		LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
		AS 'INSERT INTO public.trap_calls VALUES (what, session_user); SELECT true';
	GRANT EXECUTE ON FUNCTION public.trap(pg_catalog.text) TO PUBLIC;

	CREATE FUNCTION public.convert_to(t pg_catalog.text, e pg_catalog.name) RETURNS pg_catalog.bytea
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('convert_to'); RETURN pg_catalog.convert_to(t, e); END $$;
	CREATE FUNCTION public.convert_from(b pg_catalog.bytea, e pg_catalog.name) RETURNS pg_catalog.text
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('convert_from'); RETURN pg_catalog.convert_from(b, e); END $$;
	CREATE FUNCTION public.encode(b pg_catalog.bytea, f pg_catalog.text) RETURNS pg_catalog.text
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('encode'); RETURN pg_catalog.encode(b, f); END $$;
	CREATE FUNCTION public.to_regprocedure(t pg_catalog.text) RETURNS pg_catalog.regprocedure
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('to_regprocedure'); RETURN pg_catalog.to_regprocedure(t); END $$;
	CREATE FUNCTION public.pg_current_xact_id() RETURNS pg_catalog.xid8
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('pg_current_xact_id'); RETURN pg_catalog.pg_current_xact_id(); END $$;
	CREATE FUNCTION public.clock_timestamp() RETURNS pg_catalog.timestamptz
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END $$;
	CREATE FUNCTION public.unnest(a pg_catalog.int4[]) RETURNS SETOF pg_catalog.int4
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('unnest'); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;

	CREATE FUNCTION public.t_textcat(a pg_catalog.text, b pg_catalog.text) RETURNS pg_catalog.text
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('||'); RETURN pg_catalog.textcat(a, b); END $$;
	CREATE OPERATOR public.|| (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = public.t_textcat);
	CREATE FUNCTION public.t_textint(a pg_catalog.text, b pg_catalog.int4) RETURNS pg_catalog.text
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('|| int'); RETURN pg_catalog.textcat(a, b::pg_catalog.text); END $$;
	CREATE OPERATOR public.|| (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.int4, FUNCTION = public.t_textint);
	CREATE FUNCTION public.t_texteq(a pg_catalog.text, b pg_catalog.text) RETURNS pg_catalog.bool
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('= text'); RETURN pg_catalog.texteq(a, b); END $$;
	CREATE OPERATOR public.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = public.t_texteq);
	CREATE FUNCTION public.t_int8gt(a pg_catalog.int8, b pg_catalog.int8) RETURNS pg_catalog.bool
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('> bigint'); RETURN pg_catalog.int8gt(a, b); END $$;
	CREATE OPERATOR public.> (LEFTARG = pg_catalog.int8, RIGHTARG = pg_catalog.int8, FUNCTION = public.t_int8gt);
	CREATE FUNCTION public.t_textlike(a pg_catalog.text, b pg_catalog.text) RETURNS pg_catalog.bool
		LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap('LIKE'); RETURN pg_catalog.textlike(a, b); END $$;
	CREATE OPERATOR public.~~ (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = public.t_textlike);

	-- a cast to text or jsonb that finds these runs their CHECK
	CREATE DOMAIN public.text AS pg_catalog.text CHECK (public.trap('::text'));
	CREATE DOMAIN public.jsonb AS pg_catalog.jsonb CHECK (public.trap('::jsonb'));
	RESET ROLE;
});
as('relay_login', q{SELECT 'a' || 'b'});
is(sql('SELECT string_agg(what || \' by \' || by_role, \', \') FROM public.trap_calls'),
	'|| by relay_login', 'the traps work: an unqualified || run as relay_login is mallory\'s');
sql('TRUNCATE public.trap_calls');

# --- mallory and the relay's locks -------------------------------------------
my ($rc, $out, $err) = as('mallory', "SELECT distsys.dlock_try('distsys.relay.lane.16.0')");
like($err, qr/permission denied for lock "distsys\.relay\.lane\.16\.0"/, 'an ordinary role cannot take a lane lock');
like($err, qr/HINT:  Choose another name\. A role that runs distsys-relay needs membership in distsys_relay\./,
	'the hint says what to do');
($rc, $out, $err) = as('mallory', "SELECT distsys.dlock_try('distsys.relay.member.16.1', '1 hour', 'fake')");
like($err, qr/permission denied for lock/, 'nor a member lock, application-owned either');
($rc, $out, $err) = as('mallory', "SELECT distsys.dlock_try('relay.lane.16.0') IS NOT NULL");
is($out, 't', 'other names are free for anyone');

# mallory tries every lane and 20 fake members, in a session it keeps open
my $grab = q{DO $$ BEGIN
	FOR r IN 0 .. 15 LOOP BEGIN
		PERFORM distsys.dlock_try('distsys.relay.lane.16.' || r, '1 hour');
	EXCEPTION WHEN insufficient_privilege THEN NULL; END; END LOOP;
	FOR p IN 1 .. 20 LOOP BEGIN
		PERFORM distsys.dlock_try('distsys.relay.member.16.' || (100000 + p), '1 hour');
	EXCEPTION WHEN insufficient_privilege THEN NULL; END; END LOOP;
END $$};
my $mallory = bg_session($node, extra_params => [ '-U', 'mallory' ]);
$mallory->query_safe($grab);

# names that only look like the relay's (taken by a superuser, who may):
# not members, not lanes
my $fakes = bg_session($node);
$fakes->query_safe("SELECT distsys.dlock_try(n, '1 hour') FROM unnest(ARRAY["
	  . "'distsys.relay..16.', 'distsys.relay.member.16.99999999999999999999',"
	  . "'distsys.relay.member.16.-5', 'distsys.relay.member.16.007x',"
	  . "'distsys.relay.lane.16.3x', 'distsys.relay.lane.16.-1', 'distsys.relay.lane.16.16']) n");

# --- the relay and the consumer as their least-privileged roles --------------
my $port = free_port();
my $connstr = $node->connstr('postgres');
my $relay = start_relay('relay015', $node, $m, '--db', "$connstr user=relay_login",
	'--metrics-addr', "127.0.0.1:$port", '--dead-letter-after', '2');
my $c = start_consumer('consumer015', $node, $m, '--db', "$connstr user=consumer_login",
	'--topic', 'orders', '--group', 'g015', '--handler', 'app.take', '--dead-letter-after', '2');
ok(wait_until(sub { relay_log($relay) =~ /lanes taken: .* \(16 of 16 owned, share 16\)/ }, 30),
	'the relay, as relay_login, owns all 16 lanes') or diag(relay_log($relay));
$mallory->query_safe($grab);
is(sql("SELECT count(*) FROM distsys.dlocks d JOIN pg_stat_activity a USING (pid)"
	  . " WHERE a.usename = 'mallory' AND d.name LIKE 'distsys.%'"), 0,
	'mallory holds none of the relay\'s locks');

sql(q{SELECT distsys.outbox_send('orders', jsonb_build_object('n', i), 'k' || i % 4, '{"h": "v"}')
	FROM generate_series(1, 50) i});
$mallory->query_safe($grab);
ok($node->poll_query_until('postgres', 'SELECT count(*) = 50 FROM app.taken'),
	'50 messages relayed and applied while mallory tries') or diag(relay_log($relay), relay_log($c));
like(metrics_page($port), qr/^distsys_relay_lanes_owned 16$/m, 'all lanes still the relay\'s');

# a message the broker refuses: dead-lettered by the relay (outbox_fail)
ok(mock_control($m, 'produce-errors 1 MSG_SIZE_TOO_LARGE'), 'the broker refuses the next produce');
sql(q{SELECT distsys.outbox_send('orders', '{"refused": true}'::jsonb, 'r')});
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM distsys.outbox_dead'),
	'relay_login dead-letters a refused message');
# a message the handler refuses: dead-lettered by the consumer (inbox_dead)
sql(q{SELECT distsys.outbox_send('orders', '{"fail": true}'::jsonb, 'f')});
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM distsys.inbox_dead WHERE key = 'f'"),
	'consumer_login dead-letters a failing message');
like(relay_log($c), qr/inbox cleanup: \d+ entries past the retention forgotten/,
	'consumer_login runs inbox_cleanup');
unlike(relay_log($relay) . relay_log($c), qr/permission denied/, 'no privilege is missing');
is(sql('SELECT count(*) FROM distsys.outbox'), 0, 'the outbox is empty');
is(sql("SELECT coalesce(string_agg(DISTINCT what || ' by ' || by_role, ', '), 'none') FROM public.trap_calls"
	  . " WHERE by_role IN ('relay_login', 'consumer_login')"),
	'none', 'none of mallory\'s functions, operators or domains was called by the relay or the consumer');
is(stop_relay($c), 0, 'consumer: SIGTERM, exit 0');
is(stop_relay($relay), 0, 'relay: SIGTERM, exit 0');
$mallory->quit;
$fakes->quit;

# --- outbox_topic_grants ------------------------------------------------------
sql(q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE carol LOGIN IN ROLE alice;
});
($rc, $out, $err) = as('bob', q{SELECT distsys.outbox_send('payments', '{}'::jsonb) > 0});
is($out, 't', 'no grants: any role sends to any topic');
($rc, $out, $err) = as('alice', q{INSERT INTO distsys.outbox_topic_grants VALUES ('*', 'alice')});
like($err, qr/permission denied for table outbox_topic_grants/, 'only administrators edit the grants');
($rc, $out, $err) = as('bob', q{SELECT count(*) FROM distsys.outbox_topic_grants});
is($out, '0', 'everyone may read them');
sql(q{INSERT INTO distsys.outbox_topic_grants VALUES ('orders.*', 'alice'), ('public-news', NULL)});
($rc, $out, $err) = as('alice', q{SELECT distsys.outbox_send('orders.eu', '{}'::jsonb) > 0});
is($out, 't', 'alice sends to a topic of her pattern');
($rc, $out, $err) = as('carol', q{SELECT distsys.outbox_send('orders.us', 'x'::text) > 0});
is($out, 't', 'so does carol, who has alice\'s privileges');
($rc, $out, $err) = as('alice', q{SELECT distsys.outbox_send('payments', '{}'::jsonb)});
like($err, qr/ERROR:  permission denied to send to outbox topic "payments" as role "alice"/,
	'alice cannot send to another topic: the error names topic and role');
like($err, qr/HINT:  An administrator can allow it: INSERT INTO distsys\.outbox_topic_grants VALUES \('payments', 'alice'\)\./,
	'and the hint says how to allow it');
($rc, $out, $err) = as('alice', q{SELECT distsys.outbox_send('ordersX', '{}'::jsonb)});
like($err, qr/permission denied to send to outbox topic "ordersX"/, 'a prefix pattern matches only its prefix');
($rc, $out, $err) = as('bob', q{SELECT distsys.outbox_send('orders.eu', '{}'::jsonb)});
like($err, qr/permission denied to send to outbox topic "orders\.eu" as role "bob"/, 'bob cannot send to alice\'s topics');
($rc, $out, $err) = as('bob', q{\set VERBOSITY verbose
	SELECT distsys.outbox_send('orders.eu', '\x00'::bytea)});
like($err, qr/ERROR:  42501:/, 'with SQLSTATE 42501');
($rc, $out, $err) = as('bob', q{SELECT distsys.outbox_send('public-news', '{}'::jsonb) > 0});
is($out, 't', 'a row without role allows every role');
is(sql(q{SELECT distsys.outbox_send('payments', '{}'::jsonb) > 0}), 't', 'superusers are not checked');
($rc, $out, $err) = as('postgres', q{INSERT INTO distsys.outbox_topic_grants VALUES ('a b*', 'bob')});
like($err, qr/violates check constraint/, 'a pattern is a topic name or a prefix and *');
is(sql(q{SELECT count(*) FROM distsys.outbox WHERE topic IN ('payments', 'orders.eu', 'orders.us', 'public-news')}),
	5, 'what was allowed was queued, nothing else');

($rc, $out, $err) = as('alice', q{SELECT distsys.outbox_send('orders.eu', '{}'::jsonb, 'k', '{"distsys-message-id": "x"}')});
like($err, qr/outbox header name "distsys-message-id" is reserved/, 'a sender cannot choose the relay\'s headers');

done_testing();
