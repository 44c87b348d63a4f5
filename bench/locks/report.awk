# report.awk: the lock benchmark's report, in Markdown, from results.tsv.
#
# Input (tab-separated, one line per cell and round, written by
# run-locks.sh): scenario, row key, label, client library, where a grant is
# kept, and the driver's
# "key=value ..." line, or "na=REASON".  The rounds of a row are added up:
# operations and seconds for the rate, histogram buckets (HIST_BASE in
# lockbench.h) for the percentiles, counters for the rest.  Ratios are taken
# against the pg_advisory_lock row ("adv") of the same scenario, and for the
# durable distsys rows also against the unique-index row.  Needs
# ../common/hist.awk loaded first.

function field(s, r, k) { return ((s, r, k) in v) ? v[s, r, k] : "" }
function has(s, r) { return field(s, r, "secs") + 0 > 0 }
function ops_s(s, r) { return field(s, r, "ops") / field(s, r, "secs") }
function ms(us) { return (us == "" || us < 0) ? "n/a" : sprintf("%.3f", us / 1000) }
function ratio(s, r, ref) {
	if (!has(s, r) || !has(s, ref) || ops_s(s, ref) == 0)
		return "n/a"
	return sprintf("%.2f", ops_s(s, r) / ops_s(s, ref))
}
function verdict(ok, known) { return known ? (ok ? "**met**" : "**not met**") : "n/a (not measured)" }

# add_hist, pct: the histogram named h of row (s, r) (common/hist.awk)
function add_hist(s, r, h, text) { hist_add(s SUBSEP r SUBSEP h, text) }
function pct(s, r, h, p) { return hist_pct(s SUBSEP r SUBSEP h, p) }

{
	s = $1; r = $2
	if (s == "E") {
		# paired rounds: the label column is the round number
		if (match($6, /ops_s=[0-9.]+/))
			paired_ops[$3, r] = substr($6, RSTART + 6, RLENGTH - 6) + 0
		if ($3 + 0 > paired_rounds) paired_rounds = $3 + 0
		next
	}
	if (!((s, r) in label)) order[s, ++nrows[s]] = r
	label[s, r] = $3; client[s, r] = $4; kept[s, r] = $5
	if (substr($6, 1, 3) == "na=") {
		na[s, r] = substr($6, 4)
		next
	}
	rounds[s, r]++
	n = split($6, kv, " ")
	for (i = 1; i <= n; i++) {
		eq = index(kv[i], "=")
		if (eq == 0) continue
		k = substr(kv[i], 1, eq - 1); val = substr(kv[i], eq + 1)
		if (k ~ /_hist$/)
			add_hist(s, r, k, val)
		else if (k ~ /^(secs|ops|busy|errors|handoffs|self_regrants|violations|stat_.*)$/)
			v[s, r, k] += val
	}
}

function notes(s, r,   t) {
	if ((s, r) in na)
		t = na[s, r] == "distsys" ? "distsys not measured (see above)" : \
			"failed: " na[s, r] (has(s, r) ? " (in some rounds)" : "")
	if (field(s, r, "errors") + 0 > 0)
		t = t (t ? "; " : "") field(s, r, "errors") " errors"
	if (field(s, r, "violations") + 0 > 0)
		t = t (t ? "; " : "") "**" field(s, r, "violations") " mutual-exclusion violations**"
	return t
}

function uncontended(s, title,   i, r) {
	print "### " title
	print ""
	print "| lock | client | grant kept in | pairs/s | p50 ms | p99 ms | × pg_advisory_lock | notes |"
	print "|---|---|---|---:|---:|---:|---:|---|"
	for (i = 1; i <= nrows[s]; i++) {
		r = order[s, i]
		if (has(s, r))
			printf "| %s | %s | %s | %.0f | %s | %s | %s | %s |\n", label[s, r], client[s, r], kept[s, r],
				ops_s(s, r), ms(pct(s, r, "pair_hist", 50)), ms(pct(s, r, "pair_hist", 99)),
				ratio(s, r, "adv"), notes(s, r)
		else
			printf "| %s | %s | %s | n/a | n/a | n/a | n/a | %s |\n", label[s, r], client[s, r],
				kept[s, r], notes(s, r)
	}
	print ""
	printf "distsys dlock_try ÷ pg_try_advisory_lock (try vs try): %s×; ", ratio(s, "dlock_try", "adv_try")
	printf "app-owned ÷ unique index (same durability): %s×\n\n", ratio(s, "app", "uniq")
}

function share(s, r,   h, self) {
	h = field(s, r, "handoffs") + 0; self = field(s, r, "self_regrants") + 0
	return (h + self) ? sprintf("%.0f%%", 100 * h / (h + self)) : "n/a"
}

function per(s, r, num, den,   d) {
	d = field(s, r, "stat_" den)
	if (d == "" || d == 0) return "n/a"
	return sprintf("%.2f", field(s, r, "stat_" num) / d)
}

function counters(s, r) {
	return sprintf("wakeups %s, grants %s, waits %s", field(s, r, "stat_wakeups"),
		field(s, r, "stat_grants"), field(s, r, "stat_waits"))
}

function contended(s, title,   i, r) {
	print "### " title
	print ""
	print "Pair = from sending the acquire to the release returning, so it includes the wait in the queue."
	print "Hand-off = from the releasing client's clock reading just before it sends its release to the"
	print "next holder's acquire returning in another client (CLOCK_MONOTONIC, same machine); grants that"
	print "went straight back to the client that released are counted apart (\"to another client\")."
	print ""
	print "| lock | client | grant kept in | grants/s | pair p50 ms | pair p99 ms | × pg_advisory_lock | hand-off p50 ms | hand-off p99 ms | to another client | notes |"
	print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
	for (i = 1; i <= nrows[s]; i++) {
		r = order[s, i]
		if (has(s, r))
			printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", label[s, r],
				client[s, r], kept[s, r],
				ops_s(s, r), ms(pct(s, r, "pair_hist", 50)), ms(pct(s, r, "pair_hist", 99)),
				ratio(s, r, "adv"), ms(pct(s, r, "ho_hist", 50)), ms(pct(s, r, "ho_hist", 99)),
				share(s, r), notes(s, r)
		else
			printf "| %s | %s | %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | %s |\n", label[s, r],
				client[s, r], kept[s, r], notes(s, r)
	}
	print ""
	printf "distsys wakeups per grant under 8-way contention (distsys.dlock_stats deltas over the recording windows): "
	printf "session %s per grant, %s per wait (%s); ", per(s, "dlock_acq", "wakeups", "grants"),
		per(s, "dlock_acq", "wakeups", "waits"), counters(s, "dlock_acq")
	printf "app-owned %s per grant, %s per wait (%s). ", per(s, "app_acq", "wakeups", "grants"),
		per(s, "app_acq", "wakeups", "waits"), counters(s, "app_acq")
	printf "App-owned ÷ unique index: %s×\n\n", ratio(s, "app_acq", "uniq")
}

# paired: scenario E, the per-round ratios app-owned ÷ unique index; sets
# paired_median (or "n/a").
function paired(   i, n, k, j, t, sa, sb, q) {
	n = 0; sa = 0; sb = 0
	for (i = 1; i <= paired_rounds; i++)
		if (paired_ops[i, "app"] > 0 && paired_ops[i, "uniq"] > 0) {
			q[++n] = paired_ops[i, "app"] / paired_ops[i, "uniq"]
			sa += paired_ops[i, "app"]; sb += paired_ops[i, "uniq"]
		}
	paired_median = "n/a"
	if (n == 0)
		return
	for (i = 2; i <= n; i++)		# insertion sort: a few dozen values
		for (j = i; j > 1 && q[j - 1] > q[j]; j--) { t = q[j]; q[j] = q[j - 1]; q[j - 1] = t }
	paired_median = sprintf("%.2f", n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2)
	print "### E: durable rows, 1 client, paired rounds"
	print ""
	printf "%d rounds of one 2 s cell each of app-owned distsys and the unique index, in alternating order. ", n
	print "Per-round ratio app-owned ÷ unique index:"
	print ""
	printf "- median %s×, quartiles %.2f× and %.2f×, lowest %.2f×, highest %.2f×\n", paired_median,
		q[int((n + 3) / 4)], q[int((3 * n + 3) / 4)], q[1], q[n]
	printf "- all rounds added up: %.0f against %.0f pairs/s, %.2f×\n", sa / n, sb / n, sa / sb
	print ""
}

# targets: the issue's targets, each with the figure it was judged on.
function targets(   s, t, x, y, ho, w) {
	print "### Targets (issue 3)"
	print ""
	print "| target | figure | verdict |"
	print "|---|---|---|"
	for (t = 1; t <= 2; t++) {
		s = t == 1 ? "A" : "B"
		x = ratio(s, "dlock_try", "adv"); y = ratio(s, "dlock_try", "adv_try")
		printf "| session dlock_try+release ≥ 0.8× advisory pair, %s | %s× pg_advisory_lock, %s× pg_try_advisory_lock | %s |\n",
			s == "A" ? "1 client" : "8 clients", x, y,
			verdict(x >= 0.8 && y >= 0.8, x != "n/a" && y != "n/a")
	}
	for (t = 1; t <= 2; t++) {
		s = t == 1 ? "A" : "B"
		x = ratio(s, "app", "uniq")
		printf "| app-owned ≥ 1.0× unique index (same durability), %s | %s× | %s |\n",
			s == "A" ? "1 client" : "8 clients", x, verdict(x >= 1.0, x != "n/a")
	}
	if (paired_median != "n/a")
		printf "| app-owned ≥ 1.0× unique index, 1 client, median of E's paired rounds | %s× | %s |\n",
			paired_median, verdict(paired_median + 0 >= 1.0, 1)
	x = ratio("C", "app_acq", "uniq")
	printf "| app-owned ≥ 1.0× unique index, 8 clients on one name | %s× | %s |\n", x, verdict(x >= 1.0, x != "n/a")
	ho = pct("C", "dlock_acq", "ho_hist", 50)
	printf "| contended hand-off p50 < 0.5 ms (session dlock_acquire) | %s ms | %s |\n",
		ms(ho), verdict(ho >= 0 && ho < 500, ho >= 0)
	w = per("C", "dlock_acq", "wakeups", "grants")
	printf "| wakeups per grant ≈ 1.0 under 8-way contention (0.9-1.1) | %s | %s |\n",
		w, verdict(w >= 0.9 && w <= 1.1, w != "n/a")
	print ""
}

END {
	uncontended("A", "A: 1 client (acquire + release, one name)")
	uncontended("B", "B: 8 clients, each on its own name")
	contended("C", "C and D: 8 clients contending for one name (blocking acquire where the peer has one), hand-off latency")
	paired()
	targets()
}
