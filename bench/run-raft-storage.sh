#!/usr/bin/env bash
# bench/run-raft-storage.sh: where the Raft log should live (issue 16),
# measured, one command.
#
#   bench/run-raft-storage.sh            full run, under 3 minutes
#   bench/run-raft-storage.sh --quick    smoke run, under a minute
#   options: --run-ms N (recorded time per cell and round, default 1200),
#   --rounds N (default 2), --report FILE (also write the report there)
#
# One writer (the Raft worker is one process) appends log entries of 64 B
# and 1 KB, one entry per sync and batches of 16 per sync, to each
# candidate store; the driver (bench/raft-storage/, C, built here) records
# every sync's latency.  The stores:
#   (a) a table in the Raft database: INSERT of the batch and a durable
#       COMMIT (synchronous_commit = on), from a libpq client, whose round
#       trip (SELECT 1) is measured and subtracted alongside, and from a
#       loop inside the server (a PL/pgSQL procedure that COMMITs per
#       batch: what a background worker pays, without the round trip);
#   (b) files under the data directory: pwrite + fdatasync into a
#       pre-allocated segment (and for comparison fsync, O_DSYNC writes, and
#       a growing file), run as the cluster's user in its data directory;
#   (c) WAL records: pg_logical_emit_message(true, ...) per entry and a
#       durable commit, from the client and from the server-side loop;
#       pg_logical_emit_message(false, ...) alone is shown too (not
#       durable: PostgreSQL 15's SQL cannot ask for the flush);
#   (d) the disk's floor: 4 KB pwrite + fdatasync.
# Then (a), (b), (c), (d) again while pgbench writes on the same server (4
# clients, autocommit INSERTs, durable), for WAL's group commit and the
# shared disk.  One throwaway cluster (tools/common.sh) on 127.0.0.1,
# stopped at exit with pgbench, both by PID.  Cells run in rounds, every
# other round in reverse order.  Not a test: it never fails on a figure,
# only on a broken set-up.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"

ARGS=""
[ $# -eq 0 ] || ARGS=$(printf ' %s' "$@" | sed 's/ --report [^ ]*//')
RUN_MS=1200
WARMUP_MS=300
ROUNDS=2
MODE=full
REPORT_FILE=
LOAD_CLIENTS=4
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) RUN_MS=400 WARMUP_MS=150 ROUNDS=1 MODE=quick ;;
	--run-ms) RUN_MS=$2; shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	-h|--help) sed -n '2,9p' "$0"; exit 0 ;;
	*) echo "run-raft-storage.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

pg_psql() { ds_psql "$PG_PORT" "$@"; }

# The cells: "kind size batch".  Without load: every store at every size
# and batch; under load: the floor, the round trip and the three
# candidates at the smallest and the largest batch.
cells_quiet() {
	local size batch kind
	echo "file-floor 4096 1"
	echo "pg-select1 0 1"
	for size in 64 1024; do
		for batch in 1 16; do
			for kind in file-pre-fdatasync file-pre-fsync file-pre-odsync \
				file-grow-fdatasync pg-table srv-table pg-wal-tx srv-wal-tx pg-wal-notx; do
				echo "$kind $size $batch"
			done
		done
	done
}
cells_load() {
	local kind
	echo "idle 0 1"
	echo "file-floor 4096 1"
	echo "pg-select1 0 1"
	for kind in file-pre-fdatasync pg-table srv-table pg-wal-tx srv-wal-tx; do
		echo "$kind 64 1"
		echo "$kind 1024 16"
	done
}

build_driver() {
	# shellcheck disable=SC2046
	gcc -O2 -march=native -Wall $(pkg-config --cflags libpq) "$BENCH"/raft-storage/*.c \
		$(pkg-config --libs libpq) -o "$DS_WORK/raftstore"
}

# load_count: how many load transactions have committed so far
load_count() {
	pg_psql -At -c 'SELECT last_value FROM bench_load_id_seq'
}

# cell PHASE KIND SIZE BATCH: one driver run (or, for kind idle, a pause of
# the same length); appends "phase kind size batch syncs entries seconds
# load_per_s" to the results, or the same with n/a and the first error.
cell() {
	local phase=$1 kind=$2 size=$3 batch=$4 lat line err n0 t0 load=-
	lat="$DS_WORK/lat/$phase.$kind.$size.$batch"
	if [ "$phase" = load ]; then n0=$(load_count); t0=$(date +%s.%N); fi
	if [ "$kind" = idle ]; then
		sleep "$(echo "($WARMUP_MS + $RUN_MS) / 1000" | bc -l)"
		line=$(printf 'syncs=0 entries=0 seconds=%.3f' "$(echo "$RUN_MS / 1000" | bc -l)")
	elif ! line=$(ds_runuser timeout 60 "$DS_WORK/raftstore" --kind "$kind" --size "$size" \
		--batch "$batch" --dir "$DS_WORK/pg/raftstore" --port "$PG_PORT" \
		--warmup-ms "$WARMUP_MS" --run-ms "$RUN_MS" --lat-file "$lat" \
		< /dev/null 2> "$DS_WORK/cell.err"); then
		err=$(grep -v '^\s*$' "$DS_WORK/cell.err" | head -1 | tr '\t' ' ')
		line="na=${err:-driver failed}"
	fi
	if [ "$phase" = load ]; then
		load=$(echo "($(load_count) - $n0) / ($(date +%s.%N) - $t0)" | bc -l)
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$kind" "$size" "$batch" "$line" "$load" >> "$RESULTS"
	printf '  %-5s %-20s %5s B x %-2s %s\n' "$phase" "$kind" "$size" "$batch" "$line" >&2
}

# phase NAME LISTER: every cell of the list, ROUNDS times, every other
# round in reverse order.
phase() {
	local name=$1 lister=$2 round list kind size batch
	for round in $(seq "$ROUNDS"); do
		list=$($lister)
		[ $((round % 2)) -eq 1 ] || list=$(printf '%s\n' "$list" | tac)
		while read -r kind size batch; do
			cell "$name" "$kind" "$size" "$batch"
		done <<< "$list"
	done
}

# start_load: pgbench, LOAD_CLIENTS clients of durable autocommit INSERTs,
# in the background until stop_load.
start_load() {
	echo "INSERT INTO bench_load (v) VALUES (repeat('x', 100));" > "$DS_WORK/load.sql"
	pgbench -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$LOAD_CLIENTS" -j 2 -T 3600 \
		-f "$DS_WORK/load.sql" postgres > "$DS_WORK/pgbench.log" 2>&1 &
	LOAD_PID=$!
	DS_PIDS+=("$LOAD_PID")
	sleep 1
	kill -0 "$LOAD_PID" 2>/dev/null || { cat "$DS_WORK/pgbench.log" >&2; return 1; }
}

stop_load() {
	kill "$LOAD_PID" 2>/dev/null || true
	wait "$LOAD_PID" 2>/dev/null || true
	DS_PIDS=()
}

# summarize: one line per cell with the rounds added up and the sync
# latency percentiles (nearest rank) of all its rounds' samples.
summarize() {
	local phase kind size batch lat
	awk -F'\t' '{ print $1, $2, $3, $4 }' "$RESULTS" | sort -u | while read -r phase kind size batch; do
		lat="$DS_WORK/lat/$phase.$kind.$size.$batch"
		awk -F'\t' -v p="$phase" -v k="$kind" -v s="$size" -v b="$batch" '
			$1 == p && $2 == k && $3 == s && $4 == b {
				if ($5 ~ /^na=/) { na = substr($5, 4); next }
				split($5, f, /[ =]/); syncs += f[2]; entries += f[4]; secs += f[6]
				if ($6 != "-") { load += $6; nl++ }
			}
			END { printf "%s\t%s\t%s\t%s\t%d\t%d\t%.3f\t%s\t%s", p, k, s, b, syncs, entries, secs,
				nl ? load / nl : "-", na == "" ? "-" : na }' "$RESULTS"
		if [ -s "$lat" ]; then
			sort -n "$lat" | awk '{ v[NR] = $1 } END {
				r50 = int(NR * 0.50 + 0.999999); r99 = int(NR * 0.99 + 0.999999)
				printf "\t%s\t%s\n", v[r50], v[r99] }'
		else
			printf '\t-\t-\n'
		fi
	done
}

main() {
	local started=$SECONDS
	ds_setup
	trap 'set +e; ds_cleanup' EXIT
	RESULTS="$DS_WORK/results.tsv"
	mkdir -p "$DS_WORK/lat"
	[ "$(id -u)" -ne 0 ] || chown postgres: "$DS_WORK/lat"
	build_driver
	PG_PORT=$(ds_start_node pg)
	ds_runuser mkdir "$DS_WORK/pg/raftstore"
	pg_psql -c 'CREATE TABLE raft_log (idx bigint PRIMARY KEY, term bigint NOT NULL, data bytea NOT NULL)' \
		-c 'CREATE TABLE bench_load (id bigserial PRIMARY KEY, v text)'
	PG_SETTINGS=$(pg_psql -At -c "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name)
		FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'wal_level',
		'full_page_writes', 'commit_delay', 'wal_writer_delay', 'shared_buffers', 'max_wal_size')")
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

	ds_say "quiet: one writer alone" >&2
	phase quiet cells_quiet
	ds_say "load: the same with pgbench writing ($LOAD_CLIENTS clients)" >&2
	start_load
	phase load cells_load
	stop_load

	{
		echo "- Run: \`bench/run-raft-storage.sh$ARGS\` ($MODE: per cell $ROUNDS round(s) of ${WARMUP_MS} ms warm-up + ${RUN_MS} ms recorded), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$DS_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(uname -sr), data directory on $(findmnt -no FSTYPE -T "$DS_WORK"); load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "- $(postgres --version): $PG_SETTINGS"
		echo
		summarize | awk -F'\t' -v LOAD_CLIENTS="$LOAD_CLIENTS" -f "$BENCH/raft-storage/report.awk"
	} > "$DS_WORK/report.md"
	cat "$DS_WORK/report.md"
	[ -z "$REPORT_FILE" ] || cp "$DS_WORK/report.md" "$REPORT_FILE"
	echo "(total $((SECONDS - started)) s)" >&2
}

main
