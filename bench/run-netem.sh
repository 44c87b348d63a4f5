#!/usr/bin/env bash
# bench/run-netem.sh: what distsys-netem itself costs (issue 18), one
# command, about 2 minutes.
#
#   bench/run-netem.sh            full run
#   bench/run-netem.sh --quick    smoke run, about 40 s
#   options: --seconds N (pgbench time per cell, default 8), --report FILE
#
# The emulator must not become what a benchmark measures.  One throwaway
# PostgreSQL server on loopback, and pgbench running 'SELECT 1' (the
# smallest round trip a client makes) at 1 and 16 clients three ways:
# straight to the server, through a distsys-netem link with no delay (the
# emulator's own cost: the latency it adds, the throughput it allows, and
# its CPU per round trip), and through a link with 0.5 ms each way (RTT
# 1 ms: how close the added latency comes to what was asked).  Then bulk
# throughput: a 300 MB COPY TO STDOUT through psql, straight and through
# the undelayed link.  Not a test: it never fails on a figure.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"
# shellcheck source-path=SCRIPTDIR source=common/netem.sh
. "$BENCH/common/netem.sh"

ARGS=""
[ $# -eq 0 ] || ARGS=$(printf ' %s' "$@" | sed 's/ --report [^ ]*//')
SECS=8
COPY_ROWS=300000
REPORT_FILE=
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) SECS=3 COPY_ROWS=100000 ;;
	--seconds) SECS=$2; shift ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	-h|--help) sed -n '2,8p' "$0"; exit 0 ;;
	*) echo "run-netem.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

ds_setup
trap 'set +e; netem_stop; ds_cleanup' EXIT
PORT=$(ds_start_node bench)
export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=postgres

netem_start "$DS_WORK/netem" 0 --link "pg=0:127.0.0.1:$PORT"
PROXY=$(netem_port pg)

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

echo 'SELECT 1;' > "$DS_WORK/select1.sql"
# cell PORT CLIENTS: "tps latency_ms" of pgbench's SELECT 1
cell() {
	pgbench -n -p "$1" -c "$2" -j "$(($2 < 2 ? 1 : 2))" -T "$SECS" -f "$DS_WORK/select1.sql" 2>&1 |
		awk '/^latency average/ { lat = $4 } /^tps/ { tps = $3 } END { printf "%.0f %.3f\n", tps, lat }'
}

# copy_mbs PORT: MB/s of a COPY TO STDOUT of COPY_ROWS rows of 1000 bytes
copy_mbs() {
	local t0 t1
	t0=$(date +%s%N)
	psql -X -p "$1" -c "COPY (SELECT repeat('x', 1000) FROM generate_series(1, $COPY_ROWS)) TO STDOUT" > /dev/null
	t1=$(date +%s%N)
	awk -v t0="$t0" -v t1="$t1" -v r="$COPY_ROWS" 'BEGIN { printf "%.0f", r * 1001 / ((t1 - t0) / 1e3) }'
}

pgbench -n -p "$PORT" -c 2 -T 2 -f "$DS_WORK/select1.sql" > /dev/null 2>&1 # warm-up
declare -A R
for clients in 1 16; do
	R[direct,$clients]=$(cell "$PORT" "$clients")
	netem_cmd "delay pg 0"
	c0=$(cpu_ticks "$NETEM_PID")
	R[netem0,$clients]=$(cell "$PROXY" "$clients")
	R[cpu,$clients]=$(( $(cpu_ticks "$NETEM_PID") - c0 ))
	netem_cmd "delay pg 0.5"
	R[netem1,$clients]=$(cell "$PROXY" "$clients")
done
netem_cmd "delay pg 0"
R[copy,direct]=$(copy_mbs "$PORT")
R[copy,netem]=$(copy_mbs "$PROXY")
HZ=$(getconf CLK_TCK)

report() {
	echo "# distsys-netem's own cost$([ -z "$ARGS" ] || echo " ($ARGS)")"
	echo
	echo "- Command: bench/run-netem.sh$ARGS; commit $(git -C "$DS_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1 /proc/loadavg)"
	echo "- pgbench 'SELECT 1', $SECS s per cell; latency is pgbench's average"
	echo
	echo "| clients | direct | through netem, no delay | added by netem | netem CPU per round trip | through netem, RTT 1 ms | added over direct (asked: 1.000 ms) |"
	echo "|---|---|---|---|---|---|---|"
	for clients in 1 16; do
		read -r dt dl <<< "${R[direct,$clients]}"
		read -r nt nl <<< "${R[netem0,$clients]}"
		read -r mt ml <<< "${R[netem1,$clients]}"
		awk -v c="$clients" -v dt="$dt" -v dl="$dl" -v nt="$nt" -v nl="$nl" -v mt="$mt" -v ml="$ml" \
			-v cpu="${R[cpu,$clients]}" -v hz="$HZ" -v s="$SECS" 'BEGIN {
			printf "| %d | %d tps, %.3f ms | %d tps (%.2fx), %.3f ms | %.3f ms | %.1f us | %d tps, %.3f ms | %.3f ms |\n",
				c, dt, dl, nt, nt / dt, nl, nl - dl, cpu / hz * 1e6 / (nt * s), mt, ml, ml - dl }'
	done
	echo
	echo "Bulk: COPY of $((COPY_ROWS / 1000)) MB to psql: ${R[copy,direct]} MB/s direct, ${R[copy,netem]} MB/s through netem."
}

report | tee "$DS_WORK/report.md"
[ -z "$REPORT_FILE" ] || cp "$DS_WORK/report.md" "$REPORT_FILE"
