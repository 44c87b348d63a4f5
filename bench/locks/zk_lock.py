"""ZooKeeper target of the lock benchmark: kazoo's Lock recipe.

The Python twin of lockbench.c for the one peer whose natural client is
Python (python3-kazoo): same options, same measurement, same output line.
kazoo.recipe.lock.Lock is ZooKeeper's lock recipe: acquire creates an
ephemeral sequential node under the lock's path and, unless it is the
lowest, watches only its predecessor (a FIFO queue, no herd); release
deletes the node.

One process per client, so the clients do not share the interpreter lock.
State shared between them (a RawArray, see the slot names below) is written
by the lock holder before it releases and read by the next holder after its
grant: the lock being measured orders those accesses, as in lockbench.c.
All times are CLOCK_MONOTONIC nanoseconds, the clock the C driver reads.
"""

import argparse
import math
import multiprocessing
import sys
import time

from kazoo.client import KazooClient

HOST = "127.0.0.1"
REC_START, REC_END, STOP, RELEASE_NS, RELEASER, HOLDER = range(6)
MAX_ERRORS = 100
HIST_BASE = 1.02  # as in lockbench.h


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def in_window(shared, t):
    start, end = shared[REC_START], shared[REC_END]
    return start != 0 and t >= start and (end == 0 or t <= end)


def take_lock(lock, args, shared, stats):
    """Acquire, retrying a busy try; False if the client should stop."""
    while True:
        try:
            if lock.acquire(blocking=args.wait):
                return True
            stats["busy"] += 1
        except Exception as exc:  # kazoo raises many kinds; count them all
            stats["errors"] += 1
            if stats["errors"] <= 3:
                print(f"zk_lock: client {stats['id']}: acquire: {exc!r}", file=sys.stderr)
            time.sleep(0.01)
        if shared[STOP] or stats["errors"] >= MAX_ERRORS:
            return False
        time.sleep(args.retry_us / 1e6)


def note_grant(shared, stats, granted):
    """Check mutual exclusion; record the hand-off from the last releaser."""
    if shared[HOLDER] != -1:
        stats["violations"] += 1
    shared[HOLDER] = stats["id"]
    released, releaser = shared[RELEASE_NS], shared[RELEASER]
    if released == 0 or not in_window(shared, granted):
        return
    if releaser == stats["id"]:
        stats["self_regrants"] += 1
    else:
        stats["handoffs"].append((granted, granted - released))


def client_main(cid, args, shared, barrier, results):
    """One client: connect, then acquire and release until told to stop."""
    stats = {"id": cid, "pairs": [], "handoffs": [], "self_regrants": 0,
             "busy": 0, "errors": 0, "violations": 0}
    zk = KazooClient(hosts=f"{HOST}:{args.port}", timeout=30)
    zk.start(timeout=30)
    name = f"{args.prefix}-lock" if args.contend else f"{args.prefix}-lock-{cid}"
    path = f"/lockbench/{name}"
    zk.ensure_path(path)
    lock = zk.Lock(path, identifier=f"c{cid}")
    barrier.wait()
    while not shared[STOP] and stats["errors"] < MAX_ERRORS:
        t0 = now_ns()
        if not take_lock(lock, args, shared, stats):
            break
        if args.contend:
            note_grant(shared, stats, now_ns())
        t1 = now_ns()
        if args.contend:
            shared[HOLDER] = -1
            shared[RELEASER] = cid
            shared[RELEASE_NS] = t1
        try:
            lock.release()
        except Exception as exc:
            stats["errors"] += 1
            print(f"zk_lock: client {cid}: release: {exc!r}", file=sys.stderr)
            continue
        t2 = now_ns()
        if in_window(shared, t2):
            stats["pairs"].append((t2, t2 - t0))
    results.put(stats)
    zk.stop()
    zk.close()


def percentile_us(samples, p):
    """Nearest-rank percentile of sorted latencies (ns), in microseconds."""
    if not samples:
        return -1.0
    rank = max(1, int(p / 100.0 * len(samples) + 0.999999))
    return samples[rank - 1] / 1000.0


def hist(samples):
    """Histogram of latencies (ns) as lockbench.c prints it: "i:n,i:n"."""
    counts = {}
    for ns in samples:
        b = math.floor(math.log(ns + 1) / math.log(HIST_BASE))
        counts[b] = counts.get(b, 0) + 1
    return ",".join(f"{b}:{n}" for b, n in sorted(counts.items())) or "-"


def report(args, shared, all_stats):
    """Print the one line lockbench.c prints, with the same keys."""
    secs = (shared[REC_END] - shared[REC_START]) / 1e9
    keep = lambda xs: sorted(d for t, d in xs if in_window(shared, t))
    pairs = keep(p for s in all_stats for p in s["pairs"])
    handoffs = keep(h for s in all_stats for h in s["handoffs"])
    per_client = [len(keep(s["pairs"])) for s in all_stats]
    total = lambda k: sum(s[k] for s in all_stats)
    line = (f"target=zk mode={'wait' if args.wait else 'try'} clients={args.clients}"
            f" names={'one' if args.contend else 'distinct'} secs={secs:.3f}"
            f" ops={len(pairs)} ops_s={len(pairs) / secs:.1f}"
            f" p50_us={percentile_us(pairs, 50):.1f} p99_us={percentile_us(pairs, 99):.1f}"
            f" client_min_ops={min(per_client)} client_max_ops={max(per_client)}"
            f" busy={total('busy')} errors={total('errors')}")
    if args.contend:
        line += (f" handoffs={len(handoffs)} self_regrants={total('self_regrants')}"
                 f" ho_p50_us={percentile_us(handoffs, 50):.1f}"
                 f" ho_p99_us={percentile_us(handoffs, 99):.1f}"
                 f" violations={total('violations')}")
    line += f" pair_hist={hist(pairs)}"
    if args.contend:
        line += f" ho_hist={hist(handoffs)}"
    print(line, flush=True)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--contend", action="store_true")
    ap.add_argument("--wait", action="store_true")
    ap.add_argument("--warmup-ms", type=int, default=1000)
    ap.add_argument("--run-ms", type=int, default=5000)
    ap.add_argument("--retry-us", type=int, default=1000)
    ap.add_argument("--prefix", default="lockbench")
    return ap.parse_args()


def main():
    args = parse_args()
    ctx = multiprocessing.get_context("fork")
    shared = ctx.RawArray("q", 6)
    shared[HOLDER] = shared[RELEASER] = -1
    barrier = ctx.Barrier(args.clients + 1, timeout=60)
    results = ctx.Queue()
    procs = [ctx.Process(target=client_main, args=(i, args, shared, barrier, results),
                         daemon=True)
             for i in range(args.clients)]
    for p in procs:
        p.start()
    barrier.wait()
    time.sleep(args.warmup_ms / 1000)
    shared[REC_START] = now_ns()
    time.sleep(args.run_ms / 1000)
    shared[REC_END] = now_ns()
    shared[STOP] = 1
    all_stats = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.terminate()
    report(args, shared, all_stats)


if __name__ == "__main__":
    main()
