# bench/outbox/report.awk: the Markdown report of bench/run-outbox.sh.
#
# Input: results.tsv lines "cell<TAB>row<TAB>round<TAB>key=value ...", with
# -v dir=DS_WORK where the latency cells left lat-ROW-RATE.ns (one latency
# in ns per line, every round) and hist-RATE.txt (the relay's histogram
# deltas, "le count" per bucket and round).  Rounds are added up: rows over
# seconds for rates, all latencies together for percentiles.

function kv(line, key,    n, i, a, p) {
	n = split(line, a, " ")
	for (i = 1; i <= n; i++) {
		p = index(a[i], "=")
		if (substr(a[i], 1, p - 1) == key)
			return substr(a[i], p + 1)
	}
	return ""
}

function rate(c, r) { return secs[c, r] > 0 ? rows[c, r] / secs[c, r] : 0 }
function fmt(x) { return x > 0 ? sprintf("%.0f", x) : "n/a" }
function ratio(x, y) { return (x > 0 && y > 0) ? sprintf("%.2f", x / y) : "n/a" }
function span(c, r) { return lo[c, r] == hi[c, r] ? "" : sprintf("rounds %.0f–%.0f", lo[c, r], hi[c, r]) }

# percentiles FILE: sets P50, P99, PMAX (ms) and PN from a file of ns figures.
function percentiles(file,    cmd, v, n, i) {
	PN = 0; P50 = P99 = PMAX = -1
	cmd = "sort -n " file " 2>/dev/null"
	while ((cmd | getline v) > 0)
		vals[++PN] = v
	close(cmd)
	if (PN == 0)
		return
	P50 = vals[int(0.50 * (PN - 1) + 1.5)] / 1e6
	P99 = vals[int(0.99 * (PN - 1) + 1.5)] / 1e6
	PMAX = vals[PN] / 1e6
	delete vals
}

# histogram RATE: sets H50, H99 (the bucket bound, in ms, at which the
# relay's cumulative count reaches the quantile) and HN.
function histogram(r,    file, le, c, n, i, total, cum, order, line, f) {
	file = dir "/hist-" r ".txt"
	delete h
	n = 0
	while ((getline line < file) > 0) {
		split(line, f, " ")	# FS is a tab for the results file
		if (!((f[1]) in h))
			order[++n] = f[1]
		h[f[1]] += f[2]
	}
	close(file)
	total = h["+Inf"]
	HN = total; H50 = H99 = ""
	if (total <= 0)
		return
	cum = 0
	for (i = 1; i <= n; i++) {
		le = order[i]
		cum = h[le]	# buckets are cumulative already
		if (H50 == "" && cum >= 0.50 * total)
			H50 = (le == "+Inf") ? "> 10 s" : "≤ " le * 1000 " ms"
		if (H99 == "" && cum >= 0.99 * total)
			H99 = (le == "+Inf") ? "> 10 s" : "≤ " le * 1000 " ms"
	}
}

{
	cell = $1; row = $2; line = $4
	if (line ~ /^na=/) {
		na[cell, row] = substr(line, 4)
		next
	}
	if (cell == "L") next
	if (cell ~ /^L/) {
		achieved[cell, row] += kv(line, "achieved_s"); nl[cell, row]++
		missing[cell, row] += kv(line, "missing")
		dups[cell, row] += kv(line, "duplicates")
		copies[cell, row] += kv(line, "copies")
		over100[cell, row] += kv(line, "over_100ms")
		next
	}
	n = (kv(line, "rows") != "") ? kv(line, "rows") : kv(line, "delivered")
	rows[cell, row] += n
	secs[cell, row] += kv(line, "seconds")
	x = ((kv(line, "msgs_s") != "") ? kv(line, "msgs_s") : kv(line, "rows_s")) + 0
	if (!((cell, row) in lo) || x < lo[cell, row]) lo[cell, row] = x
	if (!((cell, row) in hi) || x > hi[cell, row]) hi[cell, row] = x
	if (kv(line, "relay_cpu_s") != "") {
		relay_cpu += kv(line, "relay_cpu_s")
		backend_cpu += kv(line, "backend_cpu_s")
	}
	if (row == "naive") {
		for (i = 1; i <= 4; i++) {
			split("select_s produce_flush_s delete_s sleep_s", ph, " ")
			phase[ph[i]] += kv(line, ph[i])
		}
	}
}

END {
	relay = rate("T", "relay"); naive = rate("T", "naive")
	broker = rate("T", "producer"); drain = rate("T", "drain")
	dbb = rate("D", "batch"); dbs = rate("D", "single")
	limit = (dbb > 0 && broker > 0) ? (dbb < broker ? dbb : broker) : 0

	print "#### Throughput (messages/s, rounds added up)"
	print ""
	print "| row | what runs | messages | msgs/s | × distsys-relay | × smaller limit | notes |"
	print "|---|---|---:|---:|---:|---:|---|"
	split("T relay|T naive|T producer|D batch|D single|T drain", keys, "|")
	label["T", "relay"] = "distsys-relay (defaults: --batch-size 1000, --lanes 16) draining the pre-filled outbox to empty"
	label["T", "naive"] = "naive relay (bench/outbox/naive.c): every 100 ms SELECT 1000 ORDER BY id, produce, flush, DELETE each row (autocommit)"
	label["T", "producer"] = "broker's limit: librdkafka producer alone (relay's settings), same messages"
	label["D", "batch"] = "database's limit: outbox_send, 2 clients, 1000 messages per transaction, no relay"
	label["D", "single"] = "outbox_send, 8 clients, 1 message per transaction (autocommit), no relay"
	label["T", "drain"] = "database read + delete alone: fetch 1000 rows by id, DELETE ... = ANY, 1 transaction per batch, no Kafka"
	for (k = 1; k <= 6; k++) {
		split(keys[k], ck, " ")
		c = ck[1]; r = ck[2]
		if ((c, r) in na) {
			printf "| %s | %s | | n/a | | | %s |\n", r, label[c, r], na[c, r]
			continue
		}
		printf "| %s | %s | %d | %s | %s | %s | %s |\n", r, label[c, r], rows[c, r],
			fmt(rate(c, r)), ratio(rate(c, r), relay), ratio(rate(c, r), limit), span(c, r)
	}
	print ""
	if (relay > 0)
		printf "distsys-relay's CPU over its throughput cells: relay process %.1f s, its database backend(s) %.1f s, in %.1f s of wall time (2 cores).\n\n",
			relay_cpu, backend_cpu, secs["T", "relay"]
	if (naive > 0)
		printf "Naive relay's time: select %.1f s, produce + flush %.1f s, delete one by one %.1f s, sleep %.1f s.\n\n",
			phase["select_s"], phase["produce_flush_s"], phase["delete_s"], phase["sleep_s"]

	print "#### Latency: commit → consumer receipt at a steady offered rate (1,000/s: 1 message per transaction; 10,000/s: 1,000 transactions/s of 10 messages)"
	print ""
	print "Consumer receipt minus the moment the committing client's COMMIT returned (16 client connections, `synchronous_commit = on`; achieved below offered means the senders fell behind schedule, bound by commits), one clock (CLOCK_MONOTONIC, one process); the relay's own histogram (`distsys_relay_commit_to_ack_seconds`, row `created_at` → delivery report, bucket bounds only) beside it."
	print ""
	print "| offered msgs/s | relay | achieved msgs/s | messages counted | missing after 15 s | received twice (same offset / another offset) | > 100 ms | p50 ms | p99 ms | max ms | relay histogram p50 / p99 |"
	print "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---|"
	split("1000 10000", rates, " ")
	for (k = 1; k <= 2; k++) {
		for (j = 1; j <= 2; j++) {
			r = (j == 1) ? "relay" : "naive"
			c = "L" rates[k]
			name = (r == "relay") ? "distsys-relay" : "naive relay"
			if ((c, r) in na) {
				printf "| %s | %s | n/a | | | | | | | | %s |\n", rates[k], name, na[c, r]
				continue
			}
			percentiles(dir "/lat-" r "-" rates[k] ".ns")
			hist = ""
			if (r == "relay") {
				histogram(rates[k])
				hist = (HN > 0) ? H50 " / " H99 : "n/a"
			}
			lat50[c, r] = P50; lat99[c, r] = P99
			printf "| %s | %s | %s | %d | %d | %d / %d | %d | %.3f | %.3f | %.3f | %s |\n", rates[k], name,
				nl[c, r] ? sprintf("%.0f", achieved[c, r] / nl[c, r]) : "n/a",
				PN, missing[c, r], dups[c, r], copies[c, r], over100[c, r],
				P50, P99, PMAX, hist
		}
	}
	print ""

	print "#### Targets (issue 4)"
	print ""
	print "| target | figure | verdict |"
	print "|---|---|---|"
	printf "| relay throughput ≥ 0.5 × min(database limit, broker limit) | %s msgs/s vs min(%s, %s) = %s: %s× | %s |\n",
		fmt(relay), fmt(dbb), fmt(broker), fmt(limit), ratio(relay, limit),
		(relay > 0 && limit > 0) ? (relay >= 0.5 * limit ? "**met**" : "**not met**") : "n/a"
	printf "| relay throughput ≥ 10 × naive relay | %s vs %s msgs/s: %s× | %s |\n",
		fmt(relay), fmt(naive), ratio(relay, naive),
		(relay > 0 && naive > 0) ? (relay >= 10 * naive ? "**met**" : "**not met**") : "n/a"
	p = lat99["L1000", "relay"]
	printf "| p99 commit-to-ack < 20 ms at 1,000 msgs/s | %s | %s |\n",
		(p != "" && p >= 0) ? sprintf("%.3f ms (consumer receipt)", p) : "n/a",
		(p != "" && p >= 0) ? (p < 20 ? "**met**" : "**not met**") : "n/a"
}
