#!/usr/bin/env bash
# bench/run-raft.sh: figures for the Raft core (extension/raft/core), one command.
#
#   bench/run-raft.sh            full run, about 15 seconds
#   bench/run-raft.sh --quick    1,000 trials and 200,000 entries
#   options: --trials N (election trials per row, default 10000),
#   --entries N (throughput run, default 2000000)
#
# Builds tests/sim/raftbench (tests/sim/sim.mk; only a C compiler needed,
# no PostgreSQL) and prints:
#  (a) the Raft paper's election experiment (section 9.3, figure 16): five
#      simulated servers, one-way delay 5-10 ticks, heartbeat every 75
#      ticks, the leader stopped at a random moment within its heartbeat
#      interval; ticks until a new leader, median / p99 / max, for election
#      timeouts from 150-150 (no randomization) to 150-300 (the default),
#      plus the default with PreVote and CheckQuorum on; 1 tick = 1 ms;
#  (b) core throughput: three nodes in one process, messages passed in
#      memory, nothing persisted (I/O stubbed), proposals of 128 bytes,
#      256 per round (batched) and 1 per round (a full replication round
#      trip per entry): entries committed per second of CPU time, the
#      three nodes' CPU together.
# Not a test: it never fails on a figure.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRIALS=10000
ENTRIES=2000000
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) TRIALS=1000; ENTRIES=200000 ;;
	--trials) TRIALS=$2; shift ;;
	--entries) ENTRIES=$2; shift ;;
	*) echo "usage: $0 [--quick] [--trials N] [--entries N]" >&2; exit 2 ;;
	esac
	shift
done

cd "$TOP"
make -s -f tests/sim/sim.mk raftbench >/dev/null
BIN=tests/sim/raftbench

echo "== election time after leader loss ($TRIALS trials per row, ticks = ms)"
for range in "150 150" "150 151" "150 155" "150 175" "150 200" "150 300"; do
	# shellcheck disable=SC2086
	"$BIN" election $range "$TRIALS"
done
"$BIN" election 150 300 "$TRIALS" prevote
echo "== core throughput (I/O stubbed)"
"$BIN" throughput "$ENTRIES" 256 128
"$BIN" throughput $((ENTRIES / 4)) 1 128
