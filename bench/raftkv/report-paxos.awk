# report-paxos.awk: bench/run-paxos.sh's report, in Markdown.
#
# Input: results.tsv (tab-separated, one line per cell and round: register
# raft or paxos, op cas or cas-one, clients, destination, "cpu_ticks=T
# hz=H syncs=S ports=P", and kvbench's "key=value ..." line or
# "na=REASON"), then gaps.tsv (register, kill number, killed node, ms from
# the kill to the restarted node accepting connections, kvbench --gap's
# line or "na=REASON").  The rounds of a cell are added up: operations and
# seconds for the rates, histogram buckets for the percentiles
# (../common/hist.awk, loaded first), counters for the rest.  Per-CAS
# costs divide by total_ops, every CAS of the cells' runs (warm-up
# included), since the CPU and fsync counts cover the runs.

function has(c) { return sum[c, "secs"] > 0 }
function rate(c, what) { return sum[c, what] / sum[c, "secs"] }
function fmt_rate(c, what) { return has(c) ? sprintf("%.0f", rate(c, what)) : "n/a" }
function pctl(c, q) { return hist_pct(c, q) }
function share(c) {
	return (has(c) && sum[c, "ops"] > 0) ? sprintf("%.0f%%", 100 * sum[c, "swapped"] / sum[c, "ops"]) : "n/a"
}
function per_op_cpu(c) {
	return (has(c) && sum[c, "total_ops"] > 0) ? sprintf("%.0f", sum[c, "cpu_ticks"] / hz / sum[c, "total_ops"] * 1e6) : "n/a"
}
function per_op_syncs(c) {
	return (has(c) && sum[c, "total_ops"] > 0 && !nosyncs[c]) ? sprintf("%.2f", sum[c, "syncs"] / sum[c, "total_ops"]) : "n/a"
}
function ratio(a, b, what) {
	if (!has(a) || !has(b) || rate(b, what) == 0) return "n/a"
	return sprintf("%.2f", rate(a, what) / rate(b, what))
}
function pratio(a, b, q,   x, y) {
	x = pctl(a, q); y = pctl(b, q)
	return (x > 0 && y > 0) ? sprintf("%.2f", x / y) : "n/a"
}
function note(sys, c,   t) {
	if (!(c in rounds) && !(c in failed)) return sys ": not run"
	if (c in failed) t = "failed: " failed[c] (has(c) ? " (in some rounds)" : "")
	if (sum[c, "errors"] > 0) t = t (t ? ", " : "") sum[c, "errors"] " errors"
	if (own[c] && sum[c, "missed"] > 0) t = t (t ? ", " : "") sum[c, "missed"] " CASes missed"
	return t == "" ? "" : sys ": " t
}
function notes(r, p,   a, b) {
	a = note("raft", r); b = note("paxos", p)
	return a (a != "" && b != "" ? "; " : "") b
}

FILENAME !~ /gaps/ {
	c = $2 SUBSEP $3 SUBSEP $4
	if (!(c in seen)) { seen[c] = 1; order[++n] = c }
	k = $1 SUBSEP c
	own[k] = ($2 == "cas")
	if (substr($6, 1, 3) == "na=") { failed[k] = substr($6, 4); next }
	rounds[k]++
	hz = kv_val($5, "hz")
	if (kv_val($5, "syncs") == "na") nosyncs[k] = 1
	sum[k, "cpu_ticks"] += kv_val($5, "cpu_ticks"); sum[k, "syncs"] += kv_val($5, "syncs")
	split("secs ops total_ops errors swapped missed", keys, " ")
	for (i = 1; i <= 6; i++) sum[k, keys[i]] += kv_val($6, keys[i])
	hist_add(k, kv_val($6, "hist"))
	next
}
{
	s = $1
	anygap = 1
	g = kv_val($5, "gap_ms")
	if (g == "") { gfailed[s]++; gfail_why[s] = substr($5, 4); next }
	ng[s]++
	gap[s, ng[s]] = g + 0
	pre[s, ng[s]] = kv_val($5, "pre_kill_gap_ms") + 0
	rst[s, ng[s]] = ($4 == "na") ? 0 : $4 + 0
	opens[s] += kv_val($5, "open")
	gerrors[s] += kv_val($5, "errors")
	per_kill[s] = per_kill[s] (per_kill[s] == "" ? "" : ", ") sprintf("%.0f", g) (kv_val($5, "open") == 1 ? "+" : "") " (" $3 ")"
}

# median/max of arr[s, 1..cnt], sorted in place into tmp
function sorted(arr, s, cnt,   i, j, t) {
	for (i = 1; i <= cnt; i++) tmp[i] = arr[s, i]
	for (i = 2; i <= cnt; i++)
		for (j = i; j > 1 && tmp[j - 1] > tmp[j]; j--) { t = tmp[j]; tmp[j] = tmp[j - 1]; tmp[j - 1] = t }
}
function median(arr, s, cnt) {
	if (cnt == 0) return -1
	sorted(arr, s, cnt)
	return (cnt % 2) ? tmp[(cnt + 1) / 2] : (tmp[cnt / 2] + tmp[cnt / 2 + 1]) / 2
}
function maxof(arr, s, cnt) {
	if (cnt == 0) return -1
	sorted(arr, s, cnt)
	return tmp[cnt]
}
function f0(x) { return x < 0 ? "n/a" : sprintf("%.0f", x) }

function own_key(   i, c, r, p, sc) {
	print "#### CAS on each client's own key (every CAS should swap)"
	print ""
	print "| clients | sent to | raft_cas ops/s | p50 ms | p99 ms | paxos_cas ops/s | p50 ms | p99 ms | paxos ÷ raft ops/s | paxos ÷ raft p50 | CPU µs/op raft | CPU µs/op paxos | fsyncs/op raft | fsyncs/op paxos | notes |"
	print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for (i = 1; i <= n; i++) {
		c = order[i]; split(c, sc, SUBSEP)
		if (sc[1] != "cas") continue
		r = "raft" SUBSEP c; p = "paxos" SUBSEP c
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			sc[2], sc[3], fmt_rate(r, "ops"), us_ms(pctl(r, 50)), us_ms(pctl(r, 99)),
			fmt_rate(p, "ops"), us_ms(pctl(p, 50)), us_ms(pctl(p, 99)),
			ratio(p, r, "ops"), pratio(p, r, 50), per_op_cpu(r), per_op_cpu(p),
			per_op_syncs(r), per_op_syncs(p), notes(r, p)
	}
	print ""
}

function one_key(   i, c, r, p, sc) {
	print "#### CAS, all clients on one key (contended)"
	print ""
	print "| clients | sent to | raft_cas CAS/s | swapped/s | swapped | p50 ms | p99 ms | paxos_cas CAS/s | swapped/s | swapped | p50 ms | p99 ms | paxos ÷ raft swapped/s | notes |"
	print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for (i = 1; i <= n; i++) {
		c = order[i]; split(c, sc, SUBSEP)
		if (sc[1] != "cas-one") continue
		r = "raft" SUBSEP c; p = "paxos" SUBSEP c
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			sc[2], sc[3], fmt_rate(r, "ops"), fmt_rate(r, "swapped"), share(r), us_ms(pctl(r, 50)), us_ms(pctl(r, 99)),
			fmt_rate(p, "ops"), fmt_rate(p, "swapped"), share(p), us_ms(pctl(p, 50)), us_ms(pctl(p, 99)),
			ratio(p, r, "swapped"), notes(r, p)
	}
	print ""
}

function gaps(   x, s, names, mr, mp) {
	print "#### The longest gap between successful writes around a kill"
	print ""
	print "| register | node killed | kills | median gap ms | max gap ms | median gap before the kill ms | kills whose longest gap was still open at the end | failed CASes per kill (survivors) | median kill → restarted ms |"
	print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	split("raft paxos", names, " ")
	for (x = 1; x <= 2; x++) {
		s = names[x]
		printf "| %s_cas | %s | %d%s | %s | %s | %s | %d | %s | %s |\n", s,
			s == "raft" ? "the Raft leader's" : "1, 2, 3 in turn",
			ng[s], gfailed[s] ? " (+" gfailed[s] " failed: " gfail_why[s] ")" : "",
			f0(median(gap, s, ng[s])), f0(maxof(gap, s, ng[s])), f0(median(pre, s, ng[s])),
			opens[s], ng[s] ? sprintf("%.1f", gerrors[s] / ng[s]) : "n/a", f0(median(rst, s, ng[s]))
	}
	print ""
	mr = median(gap, "raft", ng["raft"]); mp = median(gap, "paxos", ng["paxos"])
	if (mr > 0 && mp >= 0)
		printf "Median gap paxos ÷ raft: %.2f.\n\n", mp / mr
	for (x = 1; x <= 2; x++) {
		s = names[x]
		if (ng[s]) printf "Per kill, %s_cas, gap ms (node killed), in order; + = the longest gap was still open at the end: %s.\n\n", s, per_kill[s]
	}
}

END {
	own_key()
	one_key()
	if (anygap) gaps()
}
