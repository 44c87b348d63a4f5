#!/usr/bin/env bash
# tests/sim/run-mutants.sh: 'make sim-mutants' - run every known-wrong
# variant of the Raft core (built by tests/sim/sim.mk as
# tests/sim/sim-mutant-<NAME>) through the simulator with the default seed
# budget, and fail unless each one is caught by a property check.
#
#   tests/sim/run-mutants.sh SEEDS JOBS NAME...
#
# A mutant counts as detected only if the simulator reports a VIOLATION
# (exit status 1); a crash or a clean run is "not detected".  Ends with one
# line "sim-mutants: X of Y detected".
#
# The Paxos simulator's mutants (make paxos-sim-mutants) use it too:
# MUTANT_PREFIX is the path of the binaries up to the name (default
# tests/sim/sim-mutant-), MUTANT_LABEL the summary's name.
set -u
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${MUTANT_PREFIX:-tests/sim/sim-mutant-}
LABEL=${MUTANT_LABEL:-sim-mutants}
SEEDS=$1
JOBS=$2
shift 2

total=0
detected=0
for name in "$@"; do
	total=$((total + 1))
	out=$("$DIR/../../$PREFIX$name" --seeds "$SEEDS" --jobs "$JOBS" --stop-first --no-scenarios 2>&1)
	rc=$?
	# the violation with the smallest seed (jobs stop at their own first)
	first=$(printf '%s\n' "$out" | grep '^VIOLATION seed=' |
		sed 's/^VIOLATION seed=\([0-9]*\) nodes=\([0-9]*\) property=\([^:]*\):.*/\1 \2 \3/' |
		sort -n | head -n 1)
	if [ "$rc" -eq 1 ] && [ -n "$first" ]; then
		detected=$((detected + 1))
		set -- $first "$@"
		printf 'mutant %-20s detected: yes  first failing seed %s (%s nodes), property %s\n' \
			"$name" "$1" "$2" "$3"
		printf '       replay: %s%s --seed %s --nodes %s --verbose\n' \
			"$PREFIX" "$name" "$1" "$2"
		shift 3
	elif [ "$rc" -eq 0 ]; then
		printf 'mutant %-20s detected: NO   (%s seeds, no violation)\n' "$name" "$SEEDS"
	else
		printf 'mutant %-20s detected: NO   (simulator exited with status %s, not a property violation)\n' \
			"$name" "$rc"
		printf '%s\n' "$out" | tail -n 5
	fi
done
echo "$LABEL: $detected of $total detected"
[ "$detected" -eq "$total" ]
