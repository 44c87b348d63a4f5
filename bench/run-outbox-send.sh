#!/usr/bin/env bash
# bench/run-outbox-send.sh: what a durable outbox_send costs the sending
# transaction (issue 15), one command.
#
#   bench/run-outbox-send.sh            about 3 minutes
#   options: --seconds N (per cell and round, default 10), --rounds N
#   (default 2), --report FILE (also write the report there)
#
# outbox_send makes its transaction commit durably whatever
# synchronous_commit says.  At synchronous_commit = on that changes
# nothing; at off it takes away the asynchronous commit from transactions
# that send.  This measures both with pgbench on one throwaway cluster
# (tools/common.sh), at 1 and 8 clients, for one transaction shape (BEGIN,
# an order row, its message, COMMIT) written three ways:
#   naive          the message as a row of a plain table (the peer: what a
#                  hand-written outbox costs, asynchronous at off)
#   naive+notify   the same plus pg_notify, as a relay woken on commit needs
#   outbox_send    distsys (a row, the key's lock, NOTIFY, durable commit)
# Cells run in rounds, every other round in reverse order; the report
# prints transactions per second and the ratio of outbox_send to each.
# Not a test: it never fails on a figure.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"

SECONDS_PER=10
ROUNDS=2
REPORT_FILE=
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) SECONDS_PER=$2; shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	-h|--help) sed -n '2,6p' "$0"; exit 0 ;;
	*) echo "run-outbox-send.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

pg_psql() { ds_psql "$PG_PORT" "$@"; }

# write_scripts: the three pgbench transactions.
write_scripts() {
	cat > "$DS_WORK/naive.sql" <<'SQL'
\set n random(1, 1000000000)
BEGIN;
INSERT INTO orders (n, what) VALUES (:n, repeat('x', 100));
INSERT INTO naive_outbox (topic, key, payload) VALUES ('orders', 'k' || (:n % 1000), jsonb_build_object('n', :n, 'what', repeat('x', 100)));
COMMIT;
SQL
	sed "s/^COMMIT;/SELECT pg_notify('naive_outbox', '');\nCOMMIT;/" "$DS_WORK/naive.sql" > "$DS_WORK/notify.sql"
	cat > "$DS_WORK/send.sql" <<'SQL'
\set n random(1, 1000000000)
BEGIN;
INSERT INTO orders (n, what) VALUES (:n, repeat('x', 100));
SELECT distsys.outbox_send('orders', jsonb_build_object('n', :n, 'what', repeat('x', 100)), 'k' || (:n % 1000));
COMMIT;
SQL
	chmod 644 "$DS_WORK"/*.sql
}

# cell SYNC SCRIPT CLIENTS: pgbench for SECONDS_PER s; prints its tps.
cell() {
	local out
	pg_psql -c "ALTER SYSTEM SET synchronous_commit = $1" -c 'SELECT pg_reload_conf()' >/dev/null
	pg_psql -c 'TRUNCATE orders, naive_outbox, distsys.outbox' -c 'CHECKPOINT' >/dev/null
	out=$(pgbench -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$3" -j "$3" -T "$SECONDS_PER" \
		-f "$DS_WORK/$2.sql" postgres 2>&1)
	echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

main() {
	local cells=() round i c key tps
	declare -A sum
	ds_setup
	PG_PORT=$(ds_start_node pg)
	pg_psql -c 'CREATE EXTENSION distsys' \
		-c 'CREATE TABLE orders (id bigserial PRIMARY KEY, n bigint, what text)' \
		-c 'CREATE TABLE naive_outbox (id bigserial PRIMARY KEY, topic text, key text, payload jsonb)'
	write_scripts
	for sc in off on; do
		for c in 1 8; do
			for s in naive notify send; do cells+=("$sc $s $c"); done
		done
	done
	for ((round = 1; round <= ROUNDS; round++)); do
		for ((i = 0; i < ${#cells[@]}; i++)); do
			key=${cells[$i]}
			[ $((round % 2)) -eq 0 ] && key=${cells[$((${#cells[@]} - 1 - i))]}
			# shellcheck disable=SC2086
			tps=$(cell $key)
			echo "round $round: synchronous_commit=${key%% *} ${key#* } -> $tps tps" >&2
			sum[$key]=$(echo "${sum[$key]:-0} + $tps" | bc -l)
		done
	done
	{
		echo "# outbox_send: the cost of a durable send ($(date -u +%Y-%m-%d), commit $(git -C "$DS_TOP" rev-parse --short HEAD))"
		echo
		echo "bench/run-outbox-send.sh --seconds $SECONDS_PER --rounds $ROUNDS; $(nproc) cores, one disk, loopback"
		echo
		echo "| synchronous_commit | clients | naive (tps) | naive+notify (tps) | outbox_send (tps) | ÷ naive | ÷ naive+notify |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for sc in off on; do
			for c in 1 8; do
				local a n b
				a=$(echo "${sum[$sc naive $c]} / $ROUNDS" | bc -l)
				n=$(echo "${sum[$sc notify $c]} / $ROUNDS" | bc -l)
				b=$(echo "${sum[$sc send $c]} / $ROUNDS" | bc -l)
				printf '| %s | %d | %.0f | %.0f | %.0f | %.2f | %.2f |\n' "$sc" "$c" "$a" "$n" "$b" \
					"$(echo "$b / $a" | bc -l)" "$(echo "$b / $n" | bc -l)"
			done
		done
	} | tee "${REPORT_FILE:-/dev/null}"
}

main
