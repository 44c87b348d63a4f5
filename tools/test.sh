#!/usr/bin/env bash
# tools/test.sh: 'make test' - every test of distsys on throwaway clusters.
#
# pg_regress (sql/, expected/), pg_isolation_regress (specs/), the TAP tests
# (t/: several PostgreSQL::Test::Cluster nodes; relay/t: the relay's tools),
# the Raft simulator and its mutants (make sim, make sim-mutants), the
# Paxos core's simulator and its mutants (make paxos-sim,
# make paxos-sim-mutants), the
# linearizability checker as a tool (make histcheck-test), the Raft
# node's durable store (make store-test), the Paxos node's acceptor store
# (make paxos-store-test), and the
# relay's TAP tests again against distsys-relay and distsys-kafka-mock built
# with AddressSanitizer and UndefinedBehaviorSanitizer (make relay-asan),
# and the fault tests of each subsystem again with synchronous_commit = off
# on every node.
# Ends with one line "N passed, N failed" and exits non-zero on any failure.
#
# ONLY=REGEX (make test ONLY=...) runs only the tests whose name matches it
# (a regress or isolation test's name, a TAP file's name, sim, sim-mutants,
# paxos-sim, paxos-sim-mutants, histcheck-test, store-test, paxos-store-test;
# asan:FILE for a file of the sanitized run, so ONLY=asan runs all of it;
# syncoff:FILE likewise for the synchronous_commit = off run):
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
# what failed, named for the summary at the end (a CI log may keep only its tail)
FAILED_WHAT=()
TAP_ENV=()
# the client programs the TAP tests run (t/042, t/043, t/047:
# tools/raft-history writes a history, tests/sim/histcheck judges it),
# copied by copy_test_tools
TOOL_ENV=()

# The relay's TAP tests that run a second time against the sanitized
# programs: the command line, the mock broker, publishing (headers, lanes,
# metrics), its faults (kills, crashes, broker errors, several relays),
# consuming and dead letters, hostile input and roles.  t/012 (27 s) is
# left out: its faults (SIGKILL, a crashed database) are those of t/011 and
# t/013, on a longer workload.  Measured on 2 cores: this run takes about
# 65 s, the sanitized build a few seconds.
SANITIZED_TAP="relay/t/001_cli.pl relay/t/002_kafka_mock.pl relay/t/003_netem.pl t/010_outbox_relay.pl
	t/011_outbox_faults.pl t/013_consume.pl t/014_relay_hostile.pl t/015_relay_roles.pl"

# The fault tests that run a second time with every node at
# synchronous_commit = off and wal_writer_delay = 2000ms
# (DISTSYS_TEST_SYNC_COMMIT, t/DistsysTest.pm), where a crash loses the
# commits of the last two seconds that distsys does not force durable:
# locks (t/003 kills a backend and the postmaster; t/006 crashes with
# grants of two roles), outbox (t/011: relay and postmaster killed under
# the workload), consumer (t/016: the postmaster killed right after the
# offsets moved), 2PC (t/021: coordinator and participants killed under
# transfers; t/026: a sole writer's commit held, cancelled, cut off;
# t/027: registry changes and a crash).  Left out: tests whose restarts
# are clean (t/007, t/013: a shutdown flushes every commit), t/012 (its
# crashes are t/011's and t/016's, 27 s), t/020 and t/023 (their slow
# nodes are made by waits for a missing synchronous standby, which a
# session at off never waits for; their crashes are t/021's), and the
# Raft and Paxos fault tests (t/042, t/047, and t/046's crash), which set
# synchronous_commit = off on their nodes themselves.  Measured on 2
# cores: about 70 s.
SYNCOFF_TAP="t/003_dlock_crash.pl t/006_dlock_roles.pl t/011_outbox_faults.pl t/016_consume_durable.pl
	t/021_dtx_bank.pl t/026_dtx_sole_writer.pl t/027_dtx_registry_durable.pl"

# count_regress LOG: add the "... ok" and "... FAILED" lines of a pg_regress run.
count_regress() {
	local ok bad
	ok=$(grep -cE '\.\.\. ok|^ok [0-9]+' "$1" || true)
	bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+' "$1" || true)
	PASSED=$((PASSED + ok))
	FAILED=$((FAILED + bad))
	if [ "$2" -ne 0 ] && [ "$bad" -eq 0 ]; then FAILED=$((FAILED + 1)); fi
	if [ "$2" -ne 0 ] || [ "$bad" -ne 0 ]; then
		FAILED_WHAT+=("${1##*/}: $(grep -E '\.\.\. FAILED|^not ok [0-9]+' "$1" |
			awk '{ for (i = 2; i <= NF; i++) if ($i == "...") { printf "%s ", $(i - 1); break } }')")
	fi
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

# tap_files PREFIX DIR...: the TAP files of each directory that ONLY lets
# through under the name PREFIX + file name, one a line.
tap_files() {
	local prefix=$1 d f
	shift
	for d in "$@"; do
		for f in "$DS_WORK/tests/$d"/*.pl; do
			[ -f "$f" ] && [ -n "$(selected "$prefix${f##*/}")" ] && echo "$f"
		done
	done
	return 0
}

# listed_tap_files PREFIX FILE...: those of the listed TAP files (paths
# under tests/) that ONLY lets through under the name PREFIX + file name,
# as full paths, one a line.
listed_tap_files() {
	local prefix=$1 f
	shift
	for f in "$@"; do
		[ -f "$DS_WORK/tests/$f" ] && [ -n "$(selected "$prefix${f##*/}")" ] &&
			echo "$DS_WORK/tests/$f"
	done
	return 0
}

# copy_test_tools: build the client programs of the Raft chaos test and
# copy them where the unprivileged user may run them; TOOL_ENV tells every
# TAP test where they are (DISTSYS_RAFT_HISTORY, DISTSYS_HISTCHECK), and
# passes on DISTSYS_CHAOS_SEED.
# Built with the PATH of before ds_setup, as in ds_relay_asan.
copy_test_tools() {
	PATH="${PATH#"$DS_BIN:"}" make -C "$DS_TOP" -s raft-history tests/sim/histcheck >/dev/null
	mkdir -p "$DS_WORK/tests/bin"
	cp "$DS_TOP/tools/raft-history" "$DS_TOP/tests/sim/histcheck" "$DS_WORK/tests/bin/"
	TOOL_ENV=("DISTSYS_RAFT_HISTORY=$DS_WORK/tests/bin/raft-history"
		"DISTSYS_HISTCHECK=$DS_WORK/tests/bin/histcheck")
	# a seed to rerun (docs/tests.md), through runuser's clean environment
	if [ -n "${DISTSYS_CHAOS_SEED:-}" ]; then
		TOOL_ENV+=("DISTSYS_CHAOS_SEED=$DISTSYS_CHAOS_SEED")
	fi
}

# run_prove NAME FILE...: run TAP files (with the environment TAP_ENV adds)
# in their own directory $DS_WORK/NAME (the tests append to their logs
# there), counted by tools/prove.pl into $DS_WORK/NAME.count.
run_prove() {
	local name=$1 rc=0 p f what
	shift
	mkdir -p "$DS_WORK/$name/tmp_check"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$DS_WORK/$name"
	ds_tap_run "$DS_WORK/$name" "${TOOL_ENV[@]}" "${TAP_ENV[@]}" \
		perl "$DS_WORK/tests/prove.pl" "$DS_WORK/$name.count" "$@" || rc=$?
	if [ -f "$DS_WORK/$name.count" ]; then
		{ read -r p f; read -r what || true; } < "$DS_WORK/$name.count"
		PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
		[ -z "$what" ] || FAILED_WHAT+=("$name: $what")
	else
		FAILED=$((FAILED + 1))
		FAILED_WHAT+=("$name: no count (prove.pl did not finish)")
	fi
	if [ $rc -ne 0 ]; then
		tail -n 60 "$DS_WORK/$name"/tmp_check/log/regress_log_* 2>/dev/null | head -c 20000 || true
	fi
	return 0
}

# run_tap DIR...: the TAP files of each directory.
run_tap() {
	local files
	mapfile -t files < <(tap_files "" "$@")
	[ ${#files[@]} -gt 0 ] || return 0
	ds_say "TAP: ${files[*]##*/}"
	TAP_ENV=()
	run_prove tap "${files[@]}"
}

# run_tap_sanitized FILE...: these TAP files (of the relay) again, with the
# sanitized programs first on PATH.  The sanitizers write their reports to
# files (log_path) and stop the program at the first (halt_on_error, and
# -fno-sanitize-recover): each file of reports is one failure more, even
# when the test passed, and is printed.  detect_leaks: both programs free
# what they hold before they exit, so a leak report at exit is memory lost
# on the way.
run_tap_sanitized() {
	local files dir="$DS_WORK/asan" reports n
	mapfile -t files < <(listed_tap_files asan: "$@")
	[ ${#files[@]} -gt 0 ] || return 0
	ds_say "TAP, sanitized (AddressSanitizer, UndefinedBehaviorSanitizer): ${files[*]##*/}"
	if ! ds_relay_asan; then
		echo "make relay-asan failed"
		FAILED=$((FAILED + 1))
		FAILED_WHAT+=("make relay-asan")
		return 0
	fi
	mkdir -p "$dir/reports"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
	reports="$dir/reports/report"
	TAP_ENV=("PATH=$dir/bin:$PATH"
		"ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:log_path=$reports"
		"UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$reports")
	run_prove tap-asan "${files[@]}"
	n=$(find "$dir/reports" -type f | wc -l)
	if [ "$n" -gt 0 ]; then
		echo "sanitizer reports: $n"
		FAILED_WHAT+=("sanitizer reports: $n")
		head -c 20000 "$dir"/reports/*
		FAILED=$((FAILED + n))
	fi
	return 0
}

# run_tap_syncoff FILE...: these TAP files again, every node at
# synchronous_commit = off.
run_tap_syncoff() {
	local files
	mapfile -t files < <(listed_tap_files syncoff: "$@")
	[ ${#files[@]} -gt 0 ] || return 0
	ds_say "TAP, synchronous_commit = off on every node: ${files[*]##*/}"
	TAP_ENV=("DISTSYS_TEST_SYNC_COMMIT=off")
	run_prove tap-syncoff "${files[@]}"
}

# run_make_target TARGET: a make target of the repository (the simulator),
# counted as one test by its exit status.
run_make_target() {
	local rc=0
	ds_say "make $1"
	make -C "$DS_TOP" -s "$1" 2>&1 | tee "$DS_WORK/$1.log" || rc=$?
	if [ $rc -eq 0 ]; then PASSED=$((PASSED + 1)); else
		FAILED=$((FAILED + 1)); FAILED_WHAT+=("make $1"); fi
	return 0
}

ds_setup
mkdir -p "$DS_WORK/tests/relay"
cp -a "$DS_TOP/sql" "$DS_TOP/expected" "$DS_TOP/specs" "$DS_TOP/t" "$DS_WORK/tests/"
cp -a "$DS_TOP/relay/t" "$DS_WORK/tests/relay/"
# everything the unprivileged user runs comes from DS_WORK, which it owns:
# the clone itself may be unreadable to it (a root user's home is mode 700)
cp "$DS_TOP/tools/prove.pl" "$DS_WORK/tests/"
copy_test_tools
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
# shellcheck disable=SC2086
run_tap_sanitized $SANITIZED_TAP
# shellcheck disable=SC2086
run_tap_syncoff $SYNCOFF_TAP
[ -z "$(selected sim)" ] || run_make_target sim
[ -z "$(selected sim-mutants)" ] || run_make_target sim-mutants
[ -z "$(selected paxos-sim)" ] || run_make_target paxos-sim
[ -z "$(selected paxos-sim-mutants)" ] || run_make_target paxos-sim-mutants
[ -z "$(selected histcheck-test)" ] || run_make_target histcheck-test
[ -z "$(selected store-test)" ] || run_make_target store-test
[ -z "$(selected paxos-store-test)" ] || run_make_target paxos-store-test

echo
for w in "${FAILED_WHAT[@]}"; do echo "failed: $w"; done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
