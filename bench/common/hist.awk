# hist.awk: latency histograms of the benchmark drivers' lines, added up
# over rounds (loaded before a report.awk with awk -f).
#
# A driver prints a histogram as "i:n,i:n,...": n samples between
# HIST_BASE^i and HIST_BASE^(i+1) ns (bench_print_hist in benchutil.c).
# A histogram is named by one key, which may join several with SUBSEP.

BEGIN { HIST_BASE = 1.02 }

# kv_val: the value of key k in a driver's "key=value key=value" line ("" if
# none); us_ms: microseconds us as milliseconds ("n/a" if none)
function kv_val(text, k,   m) {
	if (match(text, "(^| )" k "=[^ ]*")) {
		m = substr(text, RSTART, RLENGTH)
		sub(/^ /, "", m)
		return substr(m, length(k) + 2)
	}
	return ""
}
function us_ms(us) { return (us == "" || us < 0) ? "n/a" : sprintf("%.2f", us / 1000) }

# hist_add: add "i:n,i:n" (or "-", none) to histogram k
function hist_add(k, text,   n, i, parts, bn) {
	if (text == "-")
		return
	n = split(text, parts, ",")
	for (i = 1; i <= n; i++) {
		split(parts[i], bn, ":")
		hist[k, bn[1] + 0] += bn[2]
		total[k] += bn[2]
		if (!(k in lo) || bn[1] + 0 < lo[k]) lo[k] = bn[1] + 0
		if (!(k in hi) || bn[1] + 0 > hi[k]) hi[k] = bn[1] + 0
	}
}

# hist_pct: nearest-rank percentile p of histogram k, in microseconds
# (bucket midpoint); -1 when it is empty
function hist_pct(k, p,   rank, seen, b) {
	if (!(k in total) || total[k] == 0)
		return -1
	rank = int(p / 100 * total[k] + 0.999999)
	if (rank < 1) rank = 1
	seen = 0
	for (b = lo[k]; b <= hi[k]; b++) {
		seen += hist[k, b]
		if (seen >= rank)
			return exp((b + 0.5) * log(HIST_BASE)) / 1000
	}
	return -1
}
