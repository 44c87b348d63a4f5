#!/usr/bin/env bash
# bench/run-paxos.sh: distsys' leaderless Paxos registers (paxos_cas)
# against its Raft store (raft_cas) on the same three PostgreSQL nodes in
# the same run (issue 17), one command.
#
#   bench/run-paxos.sh            full run, about 20 minutes
#   bench/run-paxos.sh --quick    smoke run, about 3 minutes
#   options: --seconds N (recording time per cell and round, default 4),
#   --rounds N (run every cell N times, default 3), --kills N (kills per
#   register in the gap experiment, default 50; 0 skips it),
#   --gap-seconds N (writing after each kill, default 4), --rtt-ms R
#   (every link through distsys-netem at round-trip time R ms: below),
#   --report FILE (also write the report there)
#
# What it measures:
# 1. Throughput and latency of CAS, raft_cas vs paxos_cas, back to back
#    per configuration: "cas", each client compare-and-sets its own key
#    from the value it last wrote (every CAS should swap), 1 client sent
#    to the Raft leader's node or to a follower's, 16 clients all to the
#    leader's node or spread over the three; "cas-one", 16 clients on ONE
#    key (each from the value it last wrote or read; a CAS that misses is
#    followed by a read, not timed), to the leader's node or spread, with
#    the share of CASes that swapped.  Paxos has no leader: "leader" only
#    names the node.  Per cell: ops/s, p50 and p99 latency, the three
#    servers' CPU and (when perf can count them) fsync calls per CAS.
# 2. What a leader costs when it dies: a client per node CASes its own key
#    continuously (distsys.raft_request_timeout = 300 ms, a failed CAS
#    read back and tried again); after 1 s the Raft leader's node (for
#    raft_cas) or node 1, 2, 3 in turn (for paxos_cas) gets SIGKILL, whole
#    (postmaster and every child, as a crash), and is restarted at once;
#    the clients write on for --gap-seconds.  Per kill, the longest gap
#    between successful CASes of the two surviving clients; then median
#    and max over the kills.  Raft and Paxos kills alternate.  The killed
#    node is caught up before the next kill.
#
# On loopback only, in one temporary directory (tools/common.sh), as the
# postgres OS user from a directory it owns: three PostgreSQL servers
# with distsys preloaded (node ids 1-3, fsync on, the default timeouts),
# all stopped by PID at exit (bench/common/distsys-nodes.sh), driven by
# bench/raftkv/kvbench.  Not a test: it never fails on a figure.
#
# Apart (issue 18): with --rtt-ms R, every node-to-node and client-to-node
# link goes through one distsys-netem at R/2 ms one way, a link per node
# (distsys.peers and the clients name its port; bench/common/
# distsys-nodes.sh), and the report ends with the emulator's byte counts
# per link.  --rtt-ms 0 still goes through the emulator (its own cost, the
# baseline for R); without the option nothing does.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"
# shellcheck source-path=SCRIPTDIR source=common/distsys-nodes.sh
. "$BENCH/common/distsys-nodes.sh"
# shellcheck source-path=SCRIPTDIR source=common/netem.sh
. "$BENCH/common/netem.sh"
DS_PACKAGES="$DS_PACKAGES libcurl4-openssl-dev"

ARGS=""
[ $# -eq 0 ] || ARGS=$(printf ' %s' "$@" | sed 's/ --report [^ ]*//')
RUN_MS=4000
ROUNDS=3
WARMUP_MS=1000
KILLS=50
GAP_MS=4000
GAP_WARMUP_MS=1000
TIMEOUT_MS=300
RTT_MS=
REPORT_FILE=
MODE=full
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) RUN_MS=1500 WARMUP_MS=300 ROUNDS=1 KILLS=5 MODE=quick ;;
	--seconds) RUN_MS=$(($2 * 1000)) MODE="$MODE, changed"; shift ;;
	--rounds) ROUNDS=$2 MODE="$MODE, changed"; shift ;;
	--kills) KILLS=$2 MODE="$MODE, changed"; shift ;;
	--gap-seconds) GAP_MS=$(($2 * 1000)) MODE="$MODE, changed"; shift ;;
	--rtt-ms) RTT_MS=$2; shift ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	-h|--help) sed -n '2,43p' "$0"; exit 0 ;;
	*) echo "run-paxos.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

build_driver() {
	# shellcheck disable=SC2046
	gcc -O2 -Wall -pthread $(pkg-config --cflags libpq libcurl) \
		"$BENCH"/raftkv/*.c "$BENCH"/common/*.c $(pkg-config --libs libpq libcurl) -lm -o "$DS_WORK/kvbench"
}

# target SYSTEM: kvbench's target for raft or paxos.
target() { [ "$1" = raft ] && echo distsys || echo paxos; }

# cell_ports DEST: the ports of a cell's clients: leader (the Raft leader's
# node), follower (the node after it) or spread (all three).
cell_ports() {
	local l
	l=$(distsys_leader)
	case "$1" in
	leader) echo "${CLIENT_PORTS[l]}" ;;
	follower) echo "${CLIENT_PORTS[l % 3 + 1]}" ;;
	spread) echo "${CLIENT_PORTS[1]},${CLIENT_PORTS[2]},${CLIENT_PORTS[3]}" ;;
	esac
}

# cell SYSTEM OP CLIENTS DEST ROUND: one kvbench run on keys of its own;
# appends its line to RESULTS.
cell() {
	local sys=$1 op=$2 n=$3 dest=$4 ports pids before after line syncs=na
	ports=$(cell_ports "$dest")
	pids=$(distsys_pids)
	before=$(pids_cpu_ticks "$pids")
	local cmd=("$DS_WORK/kvbench" --target "$(target "$sys")" --ports "$ports" --op "$op"
		--clients "$n" --warmup-ms "$WARMUP_MS" --run-ms "$RUN_MS" --prefix "r$5-$sys-$op-$n-$dest")
	[ "$PERF" = no ] || cmd=(perf stat -p "$pids" -x ',' -o "$DS_WORK/perf.out"
		-e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync' -- "${cmd[@]}")
	if ! line=$("${cmd[@]}" 2> "$DS_WORK/cell.err"); then
		line="na=$(head -1 "$DS_WORK/cell.err")"
	fi
	cat "$DS_WORK/cell.err" >> "$DS_WORK/cells.err"
	sleep 0.3	# let the postmasters reap the clients' backends
	after=$(pids_cpu_ticks "$pids")
	[ "$PERF" = no ] || syncs=$(awk -F, '$3 ~ /sys_enter_f(data)?sync/ { s += $1 } END { print s + 0 }' "$DS_WORK/perf.out")
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$op" "$n" "$dest" \
		"cpu_ticks=$((after - before)) hz=$(getconf CLK_TCK) syncs=$syncs ports=$ports" "$line" >> "$RESULTS"
	printf '  %-5s %-7s %2s clients to %-8s %s\n' "$sys" "$op" "$n" "$dest" \
		"$(echo "$line" | grep -o 'ops_s=[^ ]*\|p50_us=[^ ]*\|p99_us=[^ ]*\|errors=[^ ]*\|swapped=[^ ]*\|missed=[^ ]*\|^na=.*' | tr '\n' ' ')" >&2
}

# throughput: every cell in ROUNDS rounds, raft and paxos back to back per
# configuration (paxos first in every other round), so that a change in
# the machine's load falls on both alike.  The report adds the rounds up.
throughput() {
	local round cfg sys order op n dest
	for round in $(seq "$ROUNDS"); do
		order="raft paxos"
		[ $((round % 2)) -eq 1 ] || order="paxos raft"
		for cfg in cas:1:leader cas:1:follower cas:16:leader cas:16:spread \
			cas-one:16:leader cas-one:16:spread; do
			IFS=: read -r op n dest <<< "$cfg"
			for sys in $order; do
				cell "$sys" "$op" "$n" "$dest" "$round"
			done
		done
	done
}

# paxos_serves ID: node ID answers a paxos_read.
paxos_serves() {
	ds_psql "${PG_PORTS[$1]}" -c "SELECT distsys.paxos_read('run-paxos-probe')" >/dev/null 2>&1
}

# settle ID: wait until the cluster has a leader, node ID has caught up
# with its commit index and serves Paxos again.
settle() {
	local index
	wait_until 60 "a distsys leader" distsys_leader >/dev/null
	index=$(ds_psql "${PG_PORTS[$(distsys_leader)]}" -At -c 'SELECT commit_index FROM distsys.raft_status')
	if [ "$(distsys_leader)" != "$1" ]; then
		wait_until 60 "node $1 catching up" caught_up "$1" "$index"
	fi
	wait_until 60 "node $1 serving paxos_read" paxos_serves "$1"
}

# gap_trial SYSTEM K: kill K of SYSTEM's gap experiment; appends a line
# (system, kill, killed node, kill-to-restarted ms, kvbench's line) to GAPS.
gap_trial() {
	local sys=$1 k=$2 victim pm pid kv line t0 restart_ms=na
	if [ "$sys" = raft ]; then
		victim=$(distsys_leader)
	else
		victim=$(((k - 1) % 3 + 1))
	fi
	pm=$(postmaster_pid "$victim")
	rm -f "$DS_WORK/killed"
	"$DS_WORK/kvbench" --target "$(target "$sys")" \
		--ports "${CLIENT_PORTS[1]},${CLIENT_PORTS[2]},${CLIENT_PORTS[3]}" --gap --victim "$victim" \
		--kill "$pm" --killed-file "$DS_WORK/killed" --timeout-ms "$TIMEOUT_MS" \
		--warmup-ms "$GAP_WARMUP_MS" --run-ms "$GAP_MS" --prefix "g$k-$sys" \
		> "$DS_WORK/gap.out" 2>> "$DS_WORK/gaps.err" &
	kv=$!
	DS_PIDS+=("$kv")
	# kvbench kills the node (postmaster and every child, the clients'
	# backends included, listed in DS_WORK/killed) after its warm-up;
	# restart it as soon as all are gone (a straggler would keep the old
	# shared memory)
	wait_until 30 "the kill of node $victim" sh -c "! kill -0 $pm 2>/dev/null || ! kill -0 $kv 2>/dev/null"
	if ! kill -0 "$pm" 2>/dev/null; then
		t0=$(date +%s%N)
		wait_until 10 "the list of killed processes" test -s "$DS_WORK/killed"
		while read -r pid; do
			wait_until 10 "exit of PID $pid" sh -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid"
		done < "$DS_WORK/killed"
		start_node "$victim"
		restart_ms=$((($(date +%s%N) - t0) / 1000000))
	fi
	if wait "$kv"; then
		line=$(cat "$DS_WORK/gap.out")
	else
		line="na=kvbench failed: $(tail -1 "$DS_WORK/gaps.err")"
	fi
	forget_pid "$kv"
	printf '%s\t%s\t%s\t%s\t%s\n' "$sys" "$k" "$victim" "$restart_ms" "$line" >> "$GAPS"
	printf '  %-5s kill %2s (node %s): %s restart_ms=%s\n' "$sys" "$k" "$victim" \
		"$(echo "$line" | grep -o '\bgap_ms=[^ ]*\|open=[^ ]*\|errors=[^ ]*\|^na=.*' | tr '\n' ' ')" "$restart_ms" >&2
	settle "$victim"
}

gaps() {
	local k sys order
	for k in $(seq "$KILLS"); do
		order="raft paxos"
		[ $((k % 2)) -eq 1 ] || order="paxos raft"
		for sys in $order; do
			gap_trial "$sys" "$k"
		done
	done
}

report() {
	echo "- Run: \`bench/run-paxos.sh$ARGS\` (${MODE%%, changed*}$([ "$MODE" = "${MODE%%, changed*}" ] || echo ' with options'): per cell $ROUNDS round(s) of ${WARMUP_MS} ms warm-up + ${RUN_MS} ms recorded; $KILLS kills per register, ${GAP_WARMUP_MS} ms writing before each and ${GAP_MS} ms after), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$DS_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$DS_TOP" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'), $(nproc) cores, $(uname -sr); load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- Versions: $(postgres --version)"
	echo "- PostgreSQL (each node): $PG_SETTINGS"
	echo "- Disk: a 4 kB write with O_DSYNC takes $SYNC_BEFORE ms on average before the cells, $(sync_write_ms) ms after (dd, 200 writes)"
	echo "- Links: $([ -z "$NETEM_PID" ] && echo "loopback, direct" || echo "every node-to-node and client-to-node link through one distsys-netem, $NETEM_DELAY ms one way in each direction (RTT $RTT_MS ms)")"
	echo "- fsync counts: $([ "$PERF" = no ] && echo "not measured (perf cannot count syscall tracepoints here)" || echo "perf stat -p, syscalls:sys_enter_fsync + sys_enter_fdatasync of the three postmasters and the children they had when the cell started (not the clients' backends)")"
	echo
	awk -F'\t' -f "$BENCH/common/hist.awk" -f "$BENCH/raftkv/report-paxos.awk" "$RESULTS" "$GAPS"
	[ -z "$NETEM_PID" ] || netem_report "pgI: node I, node-to-node and clients"
}

# keep_logs: on failure, the servers' logs and what the driver wrote, copied
# out of DS_WORK before ds_cleanup removes it.
keep_logs() {
	local dir
	dir=$(mktemp -d "${TMPDIR:-/tmp}/run-paxos-failed.XXXXXX")
	cp "$DS_WORK"/*.log "$DS_WORK"/*.err "$DS_WORK"/*.tsv "$DS_WORK"/*.out "$dir"/ 2>/dev/null
	echo "run-paxos.sh: failed; the nodes' logs are in $dir" >&2
}

# on_exit: keep the logs of a failed run, then stop everything; ds_cleanup
# stops at the first failing command under set -e.
on_exit() {
	local rc=$?
	set +e
	[ "$rc" -eq 0 ] || keep_logs
	ds_cleanup
}

main() {
	local started=$SECONDS
	ds_say "set-up" >&2
	ds_setup
	trap on_exit EXIT
	RESULTS="$DS_WORK/results.tsv"
	GAPS="$DS_WORK/gaps.tsv"
	: > "$RESULTS"
	: > "$GAPS"
	build_driver
	PERF=yes
	perf_works || PERF=no
	if [ -n "$RTT_MS" ]; then
		pick_distsys_ports
		start_netem "$RTT_MS" pg1="${PG_PORTS[1]}" pg2="${PG_PORTS[2]}" pg3="${PG_PORTS[3]}"
	fi
	start_distsys
	PG_SETTINGS=$(ds_psql "${PG_PORTS[1]}" -At -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name)
		FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method',
		'shared_buffers', 'distsys.raft_election_timeout', 'distsys.raft_heartbeat_interval',
		'distsys.raft_request_timeout')")
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	SYNC_BEFORE=$(sync_write_ms)
	ds_say "throughput and latency: raft_cas vs paxos_cas" >&2
	throughput
	if [ "$KILLS" -gt 0 ]; then
		ds_say "gap between writes around a kill, $KILLS kills per register" >&2
		gaps
	fi
	ds_say "report" >&2
	report > "$DS_WORK/report.md"
	cat "$DS_WORK/report.md"
	[ -z "$REPORT_FILE" ] || cp "$DS_WORK/report.md" "$REPORT_FILE"
	if [ -s "$DS_WORK/cells.err" ] || [ -s "$DS_WORK/gaps.err" ]; then
		echo "first client errors:" >&2
		{ cat "$DS_WORK/cells.err" "$DS_WORK/gaps.err" 2>/dev/null || true; } | grep '^kvbench:' |
			sed 's/client [0-9]*: //' | sort | uniq -c | sort -rn | head -8 >&2
	fi
	echo "(total $((SECONDS - started)) s)" >&2
}

main
