# report.awk: the Raft log storage benchmark's report, in Markdown.
#
# Input (tab-separated, one line per cell with its rounds added up, from
# run-raft-storage.sh's summarize): phase (quiet or load), kind, entry
# size, entries per sync, syncs, entries, recorded seconds, load
# transactions per second during the cell (or -), the driver's first error
# (or -), sync latency p50 and p99 in microseconds (or -).  Ratios compare
# cells of the same run: syncs/s with the disk's floor (file-floor) of the
# same phase, entries/s with the pre-allocated fdatasync file at the same
# size and batch, and under load with the same cell without load.

BEGIN {
	label["file-floor"] = "(d) disk floor: 4 KB pwrite + fdatasync, pre-allocated file"
	label["pg-select1"] = "client round trip: SELECT 1 (libpq, TCP loopback)"
	label["file-pre-fdatasync"] = "(b) file, pre-allocated segment, pwrite + fdatasync"
	label["file-pre-fsync"] = "(b) file, pre-allocated segment, pwrite + fsync"
	label["file-pre-odsync"] = "(b) file, pre-allocated segment, O_DSYNC pwrite"
	label["file-grow-fdatasync"] = "(b) file, growing, pwrite + fdatasync"
	label["pg-table"] = "(a) table: INSERT of the batch, durable COMMIT"
	label["srv-table"] = "(a) table, the same looped inside the server (PL/pgSQL, COMMIT per batch)"
	label["srv-wal-tx"] = "(c) WAL, the same looped inside the server (PL/pgSQL, COMMIT per batch)"
	label["pg-wal-tx"] = "(c) WAL: pg_logical_emit_message(true) per entry, durable COMMIT"
	label["pg-wal-notx"] = "(c) WAL: pg_logical_emit_message(false) per entry, no flush (NOT durable)"
	label["idle"] = "no Raft writer (pgbench alone)"
	nkinds = split("file-pre-fdatasync file-pre-fsync file-pre-odsync file-grow-fdatasync pg-table srv-table pg-wal-tx srv-wal-tx pg-wal-notx", kinds, " ")
}

{
	key = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4
	seen[key] = 1
	syncs[key] = $5; entries[key] = $6; secs[key] = $7
	load[key] = $8; err[key] = $9; p50[key] = $10; p99[key] = $11
}

function ok(k) { return (k in seen) && err[k] == "-" && secs[k] > 0 }
function eps(k) { return entries[k] / secs[k] }
function sps(k) { return syncs[k] / secs[k] }
function ms(us) { return us == "-" ? "n/a" : sprintf("%.3f", us / 1000) }
function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
function floorkey(ph) { return ph SUBSEP "file-floor" SUBSEP 4096 SUBSEP 1 }
function rttkey(ph) { return ph SUBSEP "pg-select1" SUBSEP 0 SUBSEP 1 }
function filekey(ph, s, b) { return ph SUBSEP "file-pre-fdatasync" SUBSEP s SUBSEP b }

# row: one table row for cell (ph, kind, s, b); extra is the phase's last
# columns, already formatted
function row(ph, kind, s, b, extra,   k, rtt, fk) {
	k = ph SUBSEP kind SUBSEP s SUBSEP b
	if (!(k in seen))
		return
	if (!ok(k)) {
		printf "| %s | %s | %s | n/a: %s |||||||\n", label[kind], s, b, err[k]
		return
	}
	rtt = ""
	if (kind ~ /^pg-/ && kind != "pg-select1" && ok(rttkey(ph)) && p50[k] != "-")
		rtt = sprintf("%.3f", (p50[k] - p50[rttkey(ph)]) / 1000)
	fk = filekey(ph, s, b)
	printf "| %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s |%s\n", label[kind],
		kind == "pg-select1" ? "-" : s, b, kind == "pg-select1" ? "-" : sprintf("%.0f", eps(k)), sps(k),
		ms(p50[k]), ms(p99[k]), rtt,
		kind == "pg-select1" ? "" : ok(floorkey(ph)) ? ratio(sps(k), sps(floorkey(ph))) : "n/a",
		(kind ~ /^(file-floor|pg-select1)$/ || !ok(fk)) ? "" : ratio(eps(k), eps(fk)), extra
}

# loadcols: the load table's last columns for cell (kind, s, b)
function loadcols(kind, s, b,   k, q) {
	k = "load" SUBSEP kind SUBSEP s SUBSEP b
	q = "quiet" SUBSEP kind SUBSEP s SUBSEP b
	return sprintf(" %s | %s |", (ok(k) && ok(q) && kind != "idle") ? ratio(kind == "pg-select1" ? sps(k) : eps(k), kind == "pg-select1" ? sps(q) : eps(q)) : "",
		load[k] == "-" ? "n/a" : sprintf("%.0f", load[k]))
}

function header(extra) {
	print "| store | entry bytes | entries per sync | entries/s | syncs/s | sync p50 ms | sync p99 ms | p50 − round trip ms | syncs/s ÷ floor | entries/s ÷ (b) pre-allocated fdatasync |" extra
}

END {
	print "#### One writer alone"
	print ""
	header("")
	print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	row("quiet", "file-floor", 4096, 1, "")
	row("quiet", "pg-select1", 0, 1, "")
	for (s = 64; s <= 1024; s *= 16)
		for (b = 1; b <= 16; b *= 16)
			for (i = 1; i <= nkinds; i++)
				row("quiet", kinds[i], s, b, "")
	print ""
	print "#### The same while pgbench writes on the same server (" LOAD_CLIENTS " clients, durable autocommit INSERTs)"
	print ""
	header(" entries/s ÷ alone (syncs/s for SELECT 1) | pgbench commits/s during the cell |")
	print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	k = "load" SUBSEP "idle" SUBSEP 0 SUBSEP 1
	if (k in seen)
		printf "| %s | | | | | | | | | |%s\n", label["idle"], loadcols("idle", 0, 1)
	row("load", "file-floor", 4096, 1, loadcols("file-floor", 4096, 1))
	row("load", "pg-select1", 0, 1, loadcols("pg-select1", 0, 1))
	for (s = 64; s <= 1024; s *= 16)
		for (b = 1; b <= 16; b *= 16)
			for (i = 1; i <= nkinds; i++)
				row("load", kinds[i], s, b, loadcols(kinds[i], s, b))
}
