# report.awk: the Raft key-value benchmark's report, in Markdown.
#
# Input: results.tsv (tab-separated, one line per cell and round, written
# by run-raft-kv.sh: system, op, clients, destination, "cpu_ticks=T hz=H
# syncs=S leader=L", and kvbench's "key=value ..." line or "na=REASON"),
# then elections.txt (kvbench --kill lines, distsys' and etcd's told apart
# by their target=).  The rounds of a cell are added
# up: operations and seconds for the rate, histogram buckets for the
# percentiles (../common/hist.awk, loaded first), counters for the rest.
# Per-operation costs divide by total_ops, every operation of the cells'
# runs (warm-up included), since the CPU and fsync counts cover the runs.

function has(c) { return sum[c, "secs"] > 0 }
function ops_s(c) { return sum[c, "ops"] / sum[c, "secs"] }
function pctl(c, q) { return hist_pct(c, q) }
function per_op_cpu(c) {
	return (has(c) && sum[c, "total_ops"] > 0) ? sprintf("%.0f", sum[c, "cpu_ticks"] / hz / sum[c, "total_ops"] * 1e6) : "n/a"
}
function per_op_syncs(c) {
	return (has(c) && sum[c, "total_ops"] > 0 && !nosyncs[c]) ? sprintf("%.2f", sum[c, "syncs"] / sum[c, "total_ops"]) : "n/a"
}
function ops(c) { return has(c) ? sprintf("%.0f", ops_s(c)) : "n/a" }
function ratio(a, b) {
	if (!has(a) || !has(b) || ops_s(b) == 0) return "n/a"
	return sprintf("%.2f", ops_s(a) / ops_s(b))
}
function note(c,   t) {
	if (!(c in rounds) && !(c in failed)) return "not run"
	if (c in failed) t = "failed: " failed[c] (has(c) ? " (in some rounds)" : "")
	if (sum[c, "errors"] > 0) t = t (t ? ", " : "") sum[c, "errors"] " errors"
	return t
}
function verdict(ok, known) { return known ? (ok ? "**met**" : "**not met**") : "n/a" }

FILENAME !~ /elections/ {
	c = $2 SUBSEP $3 SUBSEP $4
	if (!(c in seen)) { seen[c] = 1; order[++n] = c }
	k = $1 SUBSEP c
	if (substr($6, 1, 3) == "na=") { failed[k] = substr($6, 4); next }
	rounds[k]++
	hz = kv_val($5, "hz")
	if (kv_val($5, "syncs") == "na") nosyncs[k] = 1
	sum[k, "cpu_ticks"] += kv_val($5, "cpu_ticks"); sum[k, "syncs"] += kv_val($5, "syncs")
	split("secs ops total_ops errors", keys, " ")
	for (i = 1; i <= 4; i++) sum[k, keys[i]] += kv_val($6, keys[i])
	hist_add(k, kv_val($6, "hist"))
	next
}
{
	t = kv_val($0, "kill_to_first_write_ms")
	s = kv_val($0, "target")
	if (s == "") s = "na"
	if (t != "") { el[s, ++nel[s]] = t + 0; tries[s] += kv_val($0, "failed_tries") } else el_failed[s]++
}

function throughput(   i, c, d, e, split_c) {
	print "### Throughput and latency (3 nodes each)"
	print ""
	print "put: `raft_put(key, '{\"c\": i, \"n\": k}')` / etcd `PUT /v3/kv/put`; get: `raft_get(key)` (linearizable, ReadIndex) / etcd `range` with `serializable: false`; keys random among the same set. \"leader\": every client to the leader; \"follower\": to the member after the leader, which forwards to it; \"spread\": client i to member i mod 3 (two thirds of the requests forwarded). CPU: all the user + system time the three servers used during the cell divided by its operations, background work (ticks, heartbeats) included (all PostgreSQL processes of the three nodes; the three etcd processes). fsyncs: the servers' fsync + fdatasync calls per operation (see above)."
	print ""
	print "| op | clients | sent to | distsys ops/s | p50 ms | p99 ms | etcd ops/s | p50 ms | p99 ms | distsys ÷ etcd | CPU µs/op distsys | CPU µs/op etcd | fsyncs/op distsys | fsyncs/op etcd | notes |"
	print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for (i = 1; i <= n; i++) {
		c = order[i]; split(c, split_c, SUBSEP)
		d = "distsys" SUBSEP c; e = "etcd" SUBSEP c
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			split_c[1], split_c[2], split_c[3],
			ops(d), us_ms(pctl(d, 50)), us_ms(pctl(d, 99)), ops(e), us_ms(pctl(e, 50)), us_ms(pctl(e, 99)),
			ratio(d, e), per_op_cpu(d), per_op_cpu(e), per_op_syncs(d), per_op_syncs(e),
			(note(d) note(e) == "") ? "" : "distsys: " note(d) "; etcd: " note(e)
	}
	print ""
}

function sort_el(s,   i, j, t) {
	for (i = 2; i <= nel[s]; i++)
		for (j = i; j > 1 && el[s, j - 1] > el[s, j]; j--) { t = el[s, j]; el[s, j] = el[s, j - 1]; el[s, j - 1] = t }
}
function rank(s, p,   r) { r = int(p / 100 * nel[s] + 0.999999); return el[s, r < 1 ? 1 : r] }

function election_row(s) {
	if (nel[s] == 0 && !el_failed[s]) return
	if (nel[s] == 0) { printf "| %s | 0 (+%d failed) | | | | | |\n", s, el_failed[s]; return }
	sort_el(s)
	printf "| %s | %d%s | %.0f | %.0f | %.0f | %.0f | %.1f |\n", s, nel[s], el_failed[s] ? " (+" el_failed[s] " failed)" : "",
		rank(s, 50), rank(s, 99), el[s, nel[s]], el[s, 1], tries[s] / nel[s]
}

function elections() {
	print "### Election after leader loss"
	print ""
	if (nel["distsys"] + nel["etcd"] + el_failed["distsys"] + el_failed["etcd"] + el_failed["na"] == 0) { print "Not run."; print ""; return }
	print "distsys: SIGKILL of the leader's node (its postmaster and all its processes at once, as a crash: the postmaster alone leaves the Raft worker leading for a few milliseconds until it notices, and a write can commit through it meanwhile), then the first `raft_put` that succeeds through one of the other two nodes (a client per node, `distsys.raft_request_timeout = 300ms`, a failed try sent again at once); default timeouts (election 150–300 ms, heartbeat 50 ms). The killed node is restarted and caught up before the next kill. etcd, after the distsys kills: SIGKILL of the leading member, then the first put that succeeds through one of the other two (a client per member, each request given up after 300 ms and sent again); etcd's default timeouts (election 1000 ms, heartbeat 100 ms). The member is restarted and healthy before the next kill."
	print ""
	print "| system | kills | median ms | p99 ms | max ms | min ms | failed tries per kill |"
	print "|---|---:|---:|---:|---:|---:|---:|"
	election_row("distsys")
	election_row("etcd")
	if (el_failed["na"]) printf "| (kvbench failed) | %d | | | | | |\n", el_failed["na"]
	print ""
}

function targets(   r, a, b, x, dests) {
	print "### Targets (issue 16)"
	print ""
	print "| target | figure | verdict |"
	print "|---|---|---|"
	split("leader spread", dests, " ")
	for (x = 1; x <= 2; x++) {
		r = ratio("distsys" SUBSEP "put" SUBSEP "16" SUBSEP dests[x], "etcd" SUBSEP "put" SUBSEP "16" SUBSEP dests[x])
		printf "| put throughput ≥ 1.0× etcd, 16 clients, %s | %s× | %s |\n", dests[x], r, verdict(r >= 1.0, r != "n/a")
	}
	split("leader follower", dests, " ")
	for (x = 1; x <= 2; x++) {
		a = pctl("distsys" SUBSEP "put" SUBSEP "1" SUBSEP dests[x], 50)
		b = pctl("etcd" SUBSEP "put" SUBSEP "1" SUBSEP dests[x], 50)
		printf "| single-client put latency ≤ etcd's (p50), %s | %s ms vs %s ms | %s |\n", dests[x], us_ms(a), us_ms(b),
			verdict(a <= b, a >= 0 && b >= 0)
	}
	printf "| median election-to-first-write < 1 s | %s ms | %s |\n", nel["distsys"] ? sprintf("%.0f", rank("distsys", 50)) : "n/a",
		verdict(nel["distsys"] && rank("distsys", 50) < 1000, nel["distsys"] > 0)
	print ""
}

END {
	throughput()
	elections()
	targets()
}
