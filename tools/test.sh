#!/usr/bin/env bash
# tools/test.sh: 'make test' - every test of distsys on throwaway clusters.
#
# pg_regress (sql/, expected/), pg_isolation_regress (specs/), the TAP tests
# (t/: several PostgreSQL::Test::Cluster nodes; relay/t: the relay's tools),
# the Raft simulator and its mutants (make sim, make sim-mutants).
# Ends with one line "N passed, N failed" and exits non-zero on any failure.
#
# ONLY=REGEX (make test ONLY=...) runs only the tests whose name matches it
# (a regress or isolation test's name, a TAP file's name, sim, sim-mutants):
# for a developer's quick loop; CI runs everything.
set -euo pipefail
. "$(dirname "$0")/common.sh"

ONLY=${ONLY:-}

# selected NAME...: the names that ONLY lets through, one a line.
selected() {
	printf '%s\n' "$@" | grep -E -- "${ONLY:-.}" || true
}

PASSED=0
FAILED=0

# count_regress LOG: add the "... ok" and "... FAILED" lines of a pg_regress run.
count_regress() {
	local ok bad
	ok=$(grep -cE '\.\.\. ok|^ok [0-9]+' "$1" || true)
	bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+' "$1" || true)
	PASSED=$((PASSED + ok))
	FAILED=$((FAILED + bad))
	if [ "$2" -ne 0 ] && [ "$bad" -eq 0 ]; then FAILED=$((FAILED + 1)); fi
	return 0
}

# run_regress KIND PROGRAM TESTS...: one suite on its own temporary instance.
run_regress() {
	local kind=$1 prog=$2 rc=0
	shift 2
	[ $# -gt 0 ] || return 0
	ds_say "$kind: $*"
	(cd "$DS_WORK/tests" && ds_runuser "$prog" \
		--temp-instance="$DS_WORK/$kind-instance" --temp-config="$DS_TEMP_CONFIG" \
		--bindir="$DS_BIN" --inputdir=. --outputdir="$DS_WORK/$kind-out" \
		--dbname=contrib_regression "$@") 2>&1 | tee "$DS_WORK/$kind.log" || rc=$?
	if [ $rc -ne 0 ] && [ -f "$DS_WORK/$kind-out/regression.diffs" ]; then
		head -c 20000 "$DS_WORK/$kind-out/regression.diffs"
	fi
	count_regress "$DS_WORK/$kind.log" "$rc"
}

# run_tap DIR...: the TAP files of each directory, counted by tools/prove.pl.
run_tap() {
	local files=() rc=0 counts
	for d in "$@"; do
		for f in "$DS_WORK/tests/$d"/*.pl; do
			[ -f "$f" ] && [ -n "$(selected "${f##*/}")" ] && files+=("$f")
		done
	done
	[ ${#files[@]} -gt 0 ] || return 0
	ds_say "TAP: ${files[*]##*/}"
	mkdir -p "$DS_WORK/tap/tmp_check"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$DS_WORK/tap"
	(cd "$DS_WORK/tests" && ds_runuser env TESTDIR="$DS_WORK/tap" \
		PG_REGRESS="$DS_PGXS_TEST/regress/pg_regress" TEMP_CONFIG="$DS_TEMP_CONFIG" \
		PERL5LIB="$DS_PGXS_TEST/perl:$DS_WORK/tests/t" PG_TEST_TIMEOUT_DEFAULT=120 \
		perl "$DS_WORK/tests/prove.pl" "$DS_WORK/tap.count" "${files[@]}") || rc=$?
	if [ -f "$DS_WORK/tap.count" ]; then
		read -r p f < "$DS_WORK/tap.count"
		PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
	else
		FAILED=$((FAILED + 1))
	fi
	if [ $rc -ne 0 ]; then
		tail -n 60 "$DS_WORK"/tap/tmp_check/log/regress_log_* 2>/dev/null | head -c 20000 || true
	fi
	return 0
}

# run_make_target TARGET: a make target of the repository (the simulator),
# counted as one test by its exit status.
run_make_target() {
	local rc=0
	ds_say "make $1"
	make -C "$DS_TOP" -s "$1" 2>&1 | tee "$DS_WORK/$1.log" || rc=$?
	if [ $rc -eq 0 ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
	return 0
}

ds_setup
mkdir -p "$DS_WORK/tests/relay"
cp -a "$DS_TOP/sql" "$DS_TOP/expected" "$DS_TOP/specs" "$DS_TOP/t" "$DS_WORK/tests/"
cp -a "$DS_TOP/relay/t" "$DS_WORK/tests/relay/"
# everything the unprivileged user runs comes from DS_WORK, which it owns:
# the clone itself may be unreadable to it (a root user's home is mode 700)
cp "$DS_TOP/tools/prove.pl" "$DS_WORK/tests/"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$DS_WORK"

# the Makefile's REGRESS and ISOLATION lists, as 'make installcheck' runs them
# shellcheck disable=SC2046
regress_tests=$(selected $(make -C "$DS_TOP" -s print-REGRESS))
# shellcheck disable=SC2046
isolation_tests=$(selected $(make -C "$DS_TOP" -s print-ISOLATION))

# shellcheck disable=SC2086
run_regress regress "$DS_PGXS_TEST/regress/pg_regress" $regress_tests
# shellcheck disable=SC2086
run_regress isolation "$DS_PGXS_TEST/isolation/pg_isolation_regress" $isolation_tests
run_tap t relay/t
[ -z "$(selected sim)" ] || run_make_target sim
[ -z "$(selected sim-mutants)" ] || run_make_target sim-mutants

echo
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
