"""Power loss (issue 7): simulated power cuts during QoS 1 ingest, batch
recomputes and sync (tests/fault/powercut.c keeps exactly what fsync,
fdatasync and msync made durable, and directory entries only once their
directory was fsync'ed; everything else is lost at a cut).

strict: 100 cuts; every event the daemon acknowledged is in the master log
afterwards (the broker keeps what was not acknowledged, so "all published
events stored exactly once" is the check), integrity_check is ok on both
databases, views and the sync cursor are consistent and answers exact.
normal: the loss per cut is measured from the journal's page-cache view at
the moment of the cut (acknowledged records) against the master log after it.
"""
import json
import os
import random
import sqlite3
import sys
import time

from harness import (SLOW, Broker, Daemon, Ledger, TempDir, check, loadgen_async, log, rr, run, values, wait_until)
from powercut import PowerCut, available, committed_seq, journal_records
from sync_servers import PKI, FaultServer, master_events, sync_cursor, wait_synced
from test_query import reference, rows_upto

TS_BASE = 1767225600000


def check_consistent(d, b, count, acked_file, fs=None):
    try:
        wait_until(lambda: d.event_count() >= count, 60 * SLOW, "all events")
    except AssertionError:
        pass  # the count below says which are missing
    g = Ledger(d, acked_file, TS_BASE)
    check(len(g.acked) == count, "broker acknowledged %d of %d" % (len(g.acked), count))
    vcon = sqlite3.connect(os.path.join(d.datadir, "views.db"))
    vintegrity = vcon.execute("PRAGMA integrity_check").fetchone()[0]
    vcon.close()
    check(g.integrity == "ok", "master.db integrity_check: %s" % g.integrity)
    check(vintegrity == "ok", "views.db integrity_check: %s" % vintegrity)
    check(not g.missing, "%d acknowledged events missing, e.g. %s" % (len(g.missing), sorted(g.missing)[:5]))
    check(g.dupes == 0, "%d events stored twice" % g.dupes)
    st = rr(b, '{"op":"status"}')
    check(st["batch"]["watermark_seq"] <= st["log"]["seq"], "views ahead of the log: %s" % st)
    for s in (0, 17, 49):
        q = {"series": "sensors/dev%d/temp" % s, "from": TS_BASE - 3600000, "to": TS_BASE + 3600000,
             "step": "1m", "agg": ["count", "sum", "min", "max", "last"]}
        ans = rr(b, json.dumps(q))
        exp = reference(rows_upto(d, q["series"], ans["seq"]), q["from"], q["to"], 60000, q["agg"])
        check(values(ans["buckets"]) == exp, "answer after cuts differs for %s" % q["series"])
    if fs:
        events = master_events(d)
        wait_synced(d, count, 120 * SLOW)
        acked, parked = sync_cursor(d)
        check(acked <= events[-1][0], "sync cursor %d beyond the log (%d)" % (acked, events[-1][0]))
        got = set()
        for r in fs.requests:
            if r["received"] and r["action"] == "ok":
                got.update(e["seq"] for e in r["events"])
        lost = [e[0] for e in events if e[0] not in got]
        check(not lost, "%d events never reached the upstream, e.g. %s" % (len(lost), lost[:5]))
        check(parked == 0, "%d batches parked" % parked)
    return len(g.stored), len(g.missing), g.dupes, g.integrity


def test_strict_hundred_cuts():
    rng = random.Random(int(os.environ.get("EL_SEED", "23")))
    td = TempDir("powercut")
    b = Broker(td.path).start()
    pki = PKI(td.path)
    fs = FaultServer(pki).start()
    d = Daemon(td.path, b, storage__durability="strict", batch__idle_cpu_pct=0,
               batch__max_lag_s=3600, speed__slots=60, sync__url=fs.url, sync__format="ndjson",
               sync__compression="none", sync__ca_file=pki.crt("ca"), sync__batch_events=500)
    pc = PowerCut(d, td.path)
    d.start()
    acked = os.path.join(td.path, "acked.txt")
    count = 20000
    try:
        lg = loadgen_async(b, count=count, series=50, qos=1, ts_base=TS_BASE, acked_file=acked, rate=700)
        replays = 0
        while pc.cuts < 100:
            if rng.random() < 0.3 and d.alive():
                try:
                    rr(b, json.dumps({"op": "recompute", "full": rng.random() < 0.5}),
                       topic="edgelambda/command", timeout=2)
                except Exception:  # noqa: BLE001 - the daemon may be starting; the cut comes anyway
                    pass
            time.sleep(rng.uniform(0.0, 0.4))
            pc.cut()
            d.start(wait_subscribed=rng.random() < 0.5)
        out, err = lg.communicate(timeout=300 * SLOW)
        check(lg.returncode == 0, "loadgen: %s %s" % (out, err))
        if not d.alive():
            d.start()
        replays = d.log_text().count("replayed ")
        stored, missing, dupes, integrity = check_consistent(d, b, count, acked, fs)
        log("strict, %d power cuts: %d published and acknowledged, %d stored, %d missing, %d twice, "
            "integrity %s, journal replayed after %d cuts, %d upstream requests" % (
                pc.cuts, count, stored, missing, dupes, integrity, replays, len(fs.requests)))
        d.stop()
    finally:
        d.kill()
        fs.stop()
        b.stop()
        td.cleanup()


def test_normal_loss_per_cut():
    """normal mode acknowledges before the group commit's fdatasync: a cut may
    lose what arrived since the last commit. Measured, and bounded: every lost
    event was received at most flush_interval_ms + two commits (the one under
    way when it arrived, and the next) + 1 s before the cut; the daemon reports
    how long its commits take (status log.commit_ms_max), which on a loaded
    machine (and under the power-cut library, which copies what each fsync
    makes durable) is far more than on a quiet one."""
    rng = random.Random(int(os.environ.get("EL_SEED", "29")))
    td = TempDir("powercut-normal")
    b = Broker(td.path).start()
    flush_ms = 50
    d = Daemon(td.path, b, storage__durability="normal", storage__flush_interval_ms=flush_ms)
    pc = PowerCut(d, td.path)
    d.start()
    acked = os.path.join(td.path, "acked.txt")
    count, rate = 20000, 1000
    losses, ages = [], []
    commit_max = 0
    try:
        lg = loadgen_async(b, count=count, series=50, qos=1, ts_base=TS_BASE, acked_file=acked, rate=rate)
        while pc.cuts < 30 and lg.poll() is None:
            time.sleep(rng.uniform(0.3, 0.6))
            try:
                commit_max = max(commit_max, rr(b, '{"op":"status"}', timeout=2)["log"]["commit_ms_max"])
            except (AssertionError, KeyError, ValueError, OSError):
                pass  # no answer in time (the daemon is starting): the next cut asks again
            # the moment of the cut is the SIGKILL: taken before it, since on
            # a loaded machine this process may stall seconds inside kill()
            cut_ms = int(time.time() * 1000)
            d.kill()
            recs = journal_records(d.datadir)  # acknowledged: in the page cache
            pc.cut()
            durable = committed_seq(d.datadir)
            # a record the journal itself kept through the cut is replayed, not lost
            kept = {r[0] for r in journal_records(d.datadir)}
            lost = [r for r in recs if r[1] > durable and r[0] not in kept]
            losses.append(sum(r[1] - max(r[0], durable + 1) + 1 for r in lost))
            if lost:
                ages.append(cut_ms - min(r[2] for r in lost))
            d.start()
        out, err = lg.communicate(timeout=300 * SLOW)
        check(lg.returncode == 0, "loadgen: %s %s" % (out, err))
        wait_until(lambda: d.event_count() >= count - sum(losses), 60 * SLOW, "the remaining events")
        g = Ledger(d, acked, TS_BASE)
        missing, dupes, integrity = len(g.missing), g.dupes, g.integrity
        log("normal, %d cuts at %d msg/s, flush_interval_ms=%d: lost per cut mean %.1f max %d events; "
            "oldest lost event received %s ms before the cut (max); longest commit %d ms; %d missing in "
            "total, %d twice, integrity %s" % (pc.cuts, rate, flush_ms, sum(losses) / max(1, len(losses)),
                                               max(losses or [0]), max(ages or [0]), commit_max, missing,
                                               dupes, integrity))
        check(integrity == "ok", "integrity_check: %s" % integrity)
        check(dupes == 0, "%d events stored twice" % dupes)
        # (a record journaled but not yet acknowledged when the cut came is
        # counted as lost above, and then redelivered by the broker)
        check(missing <= sum(losses), "missing %d, but the cuts lost %d" % (missing, sum(losses)))
        # the promise: at most flush_interval_ms of data, plus the commit under way and the next
        check(max(ages or [0]) <= flush_ms + 2 * commit_max + 1000,
              "a cut lost events %d ms old (longest commit %d ms)" % (max(ages or [0]), commit_max))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    if not available():
        print("SKIP: no libel_powercut.so in this build (sanitizer or cross build)")
        sys.exit(77)
    run([test_strict_hundred_cuts, test_normal_loss_per_cut])
