#!/usr/bin/env bash
# tools/fuzz-relay.sh: the hostile-input run of distsys-relay and its consume
# command (not part of 'make test'; docs/security.md has the last figures).
#
#   tools/fuzz-relay.sh [--records N] [--argv N] [--seed S]
#
# Builds the relay and the Kafka test broker with AddressSanitizer and
# UndefinedBehaviorSanitizer (make relay-asan), then runs tools/fuzz-relay.pl
# with them first on PATH: random flags and config files, hostile Kafka
# records next to well-formed outbox messages, junk on the metrics ports.
# Fails on a failed check or any sanitizer report.
set -euo pipefail
. "$(dirname "$0")/common.sh"

RECORDS=2000 ARGVS=1500 SEED=$RANDOM
while [ $# -gt 0 ]; do
	case "$1" in
	--records) RECORDS=$2; shift ;;
	--argv) ARGVS=$2; shift ;;
	--seed) SEED=$2; shift ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "fuzz-relay.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

ds_setup
ds_relay_asan
mkdir -p "$DS_WORK/tap/tmp_check" "$DS_WORK/tests"
cp -a "$DS_TOP/t" "$DS_TOP/tools/fuzz-relay.pl" "$DS_WORK/tests/"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$DS_WORK"

rc=0
ds_tap_run "$DS_WORK/tap" PATH="$DS_WORK/asan/bin:$PATH" \
	FUZZ_SEED="$SEED" FUZZ_RECORDS="$RECORDS" FUZZ_ARGV="$ARGVS" \
	ASAN_OPTIONS="halt_on_error=1:detect_leaks=0:log_path=$DS_WORK/asan/report" \
	UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$DS_WORK/asan/report" \
	perl fuzz-relay.pl || rc=$?
[ "$rc" -eq 0 ] || tail -n 40 "$DS_WORK"/tap/tmp_check/log/regress_log_* 2>/dev/null || true
reports=$(cat "$DS_WORK"/asan/report.* 2>/dev/null | grep -c 'ERROR: AddressSanitizer\|runtime error:' || true)
echo "fuzz-relay: sanitizer reports: $reports"
cat "$DS_WORK"/asan/report.* 2>/dev/null | head -40 || true
[ "$rc" -eq 0 ] && [ "$reports" -eq 0 ]
