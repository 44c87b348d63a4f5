#!/usr/bin/env bash
# tools/fuzz.sh: the hostile-input run of distsys's SQL functions (not part of
# 'make test'; see docs/security.md for the figures of the last run).
#
#   tools/fuzz.sh [--seconds N] [--sessions K] [--seed S]
#
# Starts a throwaway node (the same set-up as 'make test'), with distsys,
# a 2PC node registered on itself, an unprivileged role and inbox handlers
# (one that calls inbox_apply from inside itself), then runs tools/fuzz.pl.
# Afterwards the node's log is searched for crashed backends and failed
# assertions.  Exits non-zero if anything was bad.
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECONDS_TO_RUN=60 SESSIONS=4 SEED=$RANDOM
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) SECONDS_TO_RUN=$2; shift ;;
	--sessions) SESSIONS=$2; shift ;;
	--seed) SEED=$2; shift ;;
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	*) echo "fuzz.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

ds_setup
PORT=$(ds_start_node fuzz)
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION distsys;
SELECT distsys.node_add('self', 'host=127.0.0.1 port=$PORT dbname=postgres user=postgres');
CREATE ROLE fuzz_user;
GRANT distsys_dtx_user TO fuzz_user;
CREATE TABLE fuzz_t (k text, v jsonb);
GRANT ALL ON fuzz_t TO PUBLIC;
CREATE FUNCTION fuzz_h(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS \$\$ INSERT INTO fuzz_t VALUES (key, payload) \$\$;
CREATE FUNCTION fuzz_hb(topic text, key text, payload bytea, headers jsonb) RETURNS void
LANGUAGE sql AS \$\$ INSERT INTO fuzz_t VALUES (key, to_jsonb(length(payload))) \$\$;
CREATE FUNCTION fuzz_strict(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql STRICT AS \$\$ SELECT 1 \$\$;
CREATE FUNCTION fuzz_fail(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'fuzz handler fails'; END \$\$;
CREATE FUNCTION fuzz_nest(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE plpgsql AS \$\$
BEGIN
	IF random() < 0.7 THEN
		PERFORM distsys.inbox_apply('fuzz-nest', md5(random()::text),
			(ARRAY['fuzz_h(text,text,jsonb,jsonb)', 'fuzz_nest(text,text,jsonb,jsonb)',
				   'fuzz_nest_sql(text,text,jsonb,jsonb)', 'fuzz_fail(text,text,jsonb,jsonb)'])
				[1 + floor(random() * 4)::int]::regprocedure,
			topic, key, payload, headers);
	END IF;
END \$\$;
CREATE FUNCTION fuzz_nest_sql(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS \$\$
	SELECT distsys.inbox_apply('fuzz-nest', md5(random()::text),
		(ARRAY['fuzz_h(text,text,jsonb,jsonb)', 'fuzz_nest_sql(text,text,jsonb,jsonb)',
			   'fuzz_nest(text,text,jsonb,jsonb)', 'fuzz_fail(text,text,jsonb,jsonb)'])
			[1 + floor(random() * 4)::int]::regprocedure,
		topic, key, payload, headers)
	WHERE random() < 0.7;
\$\$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;
SQL

rc=0
ds_runuser mkdir -p "$DS_WORK/fuzz-out"
perl "$DS_TOP/tools/fuzz.pl" --port "$PORT" --seed "$SEED" --seconds "$SECONDS_TO_RUN" \
	--sessions "$SESSIONS" --outdir "$DS_WORK/fuzz-out" || rc=$?

# what only the server log shows
crashes=$(grep -c 'terminated by signal' "$DS_WORK/fuzz.log" || true)
traps=$(grep -c 'TRAP:' "$DS_WORK/fuzz.log" || true)
echo "fuzz: server log: $crashes backends terminated by a signal, $traps failed assertions"
grep -m 5 -E 'terminated by signal|TRAP:' "$DS_WORK/fuzz.log" || true
if [ "$(pg_config --configure | grep -c enable-cassert)" -eq 0 ]; then
	echo "fuzz: this PostgreSQL was built without --enable-cassert: assertions were not checked"
fi
[ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ] && [ "$traps" -eq 0 ]
