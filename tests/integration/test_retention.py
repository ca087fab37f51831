"""Retention (issues 4 and 7): with storage.max_bytes small, the oldest raw
events are trimmed in whole ranges once the views cover them, ingest goes on,
and old ranges still answer — exactly, at view resolution — from the views.

When nothing may be removed (sync enabled, upstream down: nothing shipped),
the configured policy holds: stop_ingest stops acknowledging (the broker
keeps the readings once the journal is full; nothing is trimmed) and ingest
resumes by itself once the upstream takes the data; drop_oldest keeps
ingesting and removes the oldest.
"""
import json
import math
import os
import time

from harness import (SLOW, Broker, Daemon, Ledger, TempDir, check, lg_value, loadgen, loadgen_async, log, rr, run,
                     wait_until)
from sync_servers import PKI, FaultServer

TS = 1767225600000


def test_trim_keeps_views_and_ingest():
    td = TempDir("retention")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, storage__max_bytes="1M", batch__max_lag_s=3600, speed__slots=60).start()
    try:
        now = int(time.time() * 1000)
        old_base = (now - 6 * 3600000) // 3600000 * 3600000 + 1000  # inside one hour bucket
        loadgen(b, count=30000, series=10, ts_base=old_base)
        loadgen(b, count=30000, series=10, ts_base=now - 60000, start_index=30000)
        st = d.status(pred=lambda st: st["ingest"]["accepted"] == 60000 and
                      st["log"].get("trimmed_events", 0) > 0 and
                      st["log"]["used_bytes"] <= st["log"]["max_bytes"], timeout=90)
        check(st["log"]["oldest_seq"] > 1, "oldest_seq %s" % st["log"])
        stored = d.event_count()
        check(stored < 60000, "nothing was trimmed from the master log (%d rows)" % stored)
        # The old hour is answered from the views, exactly (count, sum, min, max, last).
        q = {"series": "sensors/dev3/temp", "from": old_base - 1000, "to": old_base - 1000 + 3600000,
             "step": "1h", "agg": ["count", "sum", "min", "max", "last"]}
        ans = rr(b, json.dumps(q))
        check(ans["ok"] and ans["sources"]["batch"] == 1, "old range: %s" % ans)
        check(ans.get("raw_from_seq", 0) > 1, "answer does not say raw data was trimmed: %s" % ans)
        idx = [i for i in range(30000) if i % 10 == 3]
        vals = [lg_value(i) for i in idx]
        bk = ans["buckets"][0]
        check(bk["count"] == len(idx) and bk["sum"] == math.fsum(vals) and bk["min"] == min(vals)
              and bk["max"] == max(vals) and bk["last"] == lg_value(idx[-1]),
              "old hour from views: %s, expected count %d" % (bk, len(idx)))
        # New readings are still accepted and queryable.
        loadgen(b, count=5000, series=10, ts_base=now, start_index=60000)
        d.status(pred=lambda st: st["ingest"]["accepted"] == 65000 and not st["log"]["full"], timeout=60)
        d.stop()
        check(d.query1("PRAGMA integrity_check") == "ok", "integrity_check")
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def upstream_seqs(fs):
    return set(e["seq"] for r in fs.requests if r["received"] and r["action"] == "ok" for e in r["events"])


def policy_daemon(td, b, policy):
    pki = PKI(td.path)
    fs = FaultServer(pki, default=("status", 503)).start()  # the upstream is down
    d = Daemon(td.path, b, storage__max_bytes="1M", storage__full_policy=policy, sync__url=fs.url,
               sync__ca_file=pki.crt("ca"), sync__compression="none", sync__batch_events=2000,
               batch__max_lag_s=10, speed__slots=60, storage__journal_segments=2,
               storage__journal_segment_bytes="2M", log__level=os.environ.get("EL_LOG_LEVEL", "info"))
    return d, fs


def test_stop_ingest_holds_until_shipped():
    td = TempDir("retention-stop")
    b = Broker(td.path).start()
    d, fs = policy_daemon(td, b, "stop_ingest")
    acked = os.path.join(td.path, "acked.txt")
    count = 30000
    try:
        d.start()
        lg = loadgen_async(b, count=count, series=10, qos=1, ts_base=TS, acked_file=acked, rate=5000)
        wait_until(lambda: "stop_ingest: no more commits" in d.log_text(), 60 * SLOW, "stop_ingest")
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "the broker takes every reading meanwhile: %s %s" % (out, err))
        held = d.event_count()
        check(held < count, "ingest did not stop (%d of %d stored)" % (held, count))
        check(d.query1("SELECT min(seq) FROM events") == 1, "nothing may be removed: nothing was shipped")
        # The upstream comes back: shipped, covered ranges go, ingest resumes by itself.
        fs.set_script([], default="ok")
        wait_until(lambda: len(upstream_seqs(fs)) >= count, 60 * SLOW, "every reading shipped")
        st = d.status(timeout=60 * SLOW, pred=lambda s: s.get("state") == "online" and not s["log"]["full"]
                      and s["log"]["trimmed_events"] > 0)
        g = Ledger(d, acked, TS)
        shipped = upstream_seqs(fs)
        log("stop_ingest: held at %d of %d stored while nothing was shipped; after the upstream came "
            "back: %d shipped, %d trimmed, %d still in the log, %d twice" % (
                held, count, len(shipped), st["log"]["trimmed_events"], len(g.stored), g.dupes))
        check(len(shipped) == count and max(shipped) == count, "shipped %d distinct seqs" % len(shipped))
        check(g.dupes == 0 and g.integrity == "ok", "dupes %d, integrity %s" % (g.dupes, g.integrity))
        d.stop()
    finally:
        d.kill()
        fs.stop()
        b.stop()
        td.cleanup()


def test_drop_oldest_keeps_ingesting():
    td = TempDir("retention-drop")
    b = Broker(td.path).start()
    d, fs = policy_daemon(td, b, "drop_oldest")
    count = 30000
    try:
        d.start()
        loadgen(b, count=count, series=10, ts_base=TS, rate=5000)
        st = d.status(timeout=60 * SLOW, pred=lambda s: s["ingest"]["accepted"] == count and
                      s["log"]["trimmed_events"] > 0 and s["log"]["used_bytes"] <= s["log"]["max_bytes"])
        check(not st["log"]["full"] and not upstream_seqs(fs), "status: %s" % st["log"])
        check(d.query1("SELECT max(seq) FROM events") == count, "the newest are kept")
        log("drop_oldest: %d accepted with the upstream down, oldest %d trimmed" % (count, st["log"]["trimmed_events"]))
        d.stop()
    finally:
        d.kill()
        fs.stop()
        b.stop()
        td.cleanup()


def test_hard_quota_between_retention_ticks():
    """storage.hard_max_bytes (SQLite max_page_count) just above max_bytes: a
    burst fills the database between two retention ticks, commits fail like
    a full disk ("database or disk is full"), retention (drop_oldest) frees
    pages, commits resume by themselves; the file never grows past the quota."""
    td = TempDir("retention-quota")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, storage__max_bytes="1M", storage__hard_max_bytes="1100K",
               storage__full_policy="drop_oldest", batch__max_lag_s=10, speed__slots=60)
    count = 60000
    try:
        d.start()
        loadgen(b, count=count, series=10, ts_base=TS)
        st = d.status(timeout=90 * SLOW, pred=lambda s: s["ingest"]["accepted"] == count and
                      s["log"]["error"] is None)
        check("database or disk is full" in d.log_text(), "the quota was never reached")
        pages = d.query1("PRAGMA page_count")
        page_size = d.query1("PRAGMA page_size")
        check(pages * page_size <= 1100 * 1024, "master.db has %d pages of %d bytes" % (pages, page_size))
        check(d.query1("SELECT max(seq) FROM events") == count, "the newest are kept")
        check(d.query1("PRAGMA integrity_check") == "ok", "integrity_check")
        log("hard quota 1100K: %d accepted, %d trimmed, master.db %d bytes, commits failed and resumed "
            "%d times" % (count, st["log"]["trimmed_events"], pages * page_size,
                          d.log_text().count("database or disk is full")))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_hard_quota_after_backlog():
    """The livelock of issue 11: a backlog (here: 60,000 readings the broker
    queued while the daemon was down, drained with flush_interval_ms = 2000
    as a slow board would) makes group commits far bigger than
    hard_max_bytes - max_bytes. Such a commit can never fit,
    while "used <= max_bytes" told retention there was nothing to do. Now a
    commit that does not fit makes retention free room and the core retry
    smaller transactions: every reading is committed, the file stays under
    the quota."""
    td = TempDir("retention-backlog")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, storage__max_bytes="1M", storage__hard_max_bytes="1100K",
               storage__full_policy="drop_oldest", batch__max_lag_s=10, speed__slots=60,
               storage__flush_interval_ms=2000)
    count = 60000
    try:
        d.start()
        d.stop()  # the persistent session stays: the broker queues what follows
        loadgen(b, count=count, series=10, ts_base=TS)
        d.start()
        st = d.status(timeout=120 * SLOW, pred=lambda s: s["ingest"]["accepted"] == count and
                      s["log"]["error"] is None)
        pages = d.query1("PRAGMA page_count") * d.query1("PRAGMA page_size")
        check(pages <= 1100 * 1024, "master.db is %d bytes" % pages)
        check(d.query1("SELECT max(seq) FROM events") == count, "the newest are kept")
        check(d.query1("PRAGMA integrity_check") == "ok", "integrity_check")
        log("backlog of %d under a 1100K quota: all committed, %d trimmed, master.db %d bytes, "
            "%d commits did not fit" % (count, st["log"]["trimmed_events"], pages,
                                        d.log_text().count("database or disk is full")))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_hard_quota_replay_after_crash():
    """kill -9 while the journal holds more acknowledged readings than fit under
    storage.hard_max_bytes: the next start replays them anyway (the ceiling
    is lifted by the journal's size for the replay), instead of failing to
    start again and again under systemd; retention then trims."""
    td = TempDir("retention-replay")
    b = Broker(td.path).start()
    # No max_bytes while the journal fills: retention (which counts the
    # journal's bytes, and commits before it trims) would commit the stream
    # each second; max_bytes = 1M from the restart on, so it trims after.
    d = Daemon(td.path, b, storage__max_bytes="0", storage__hard_max_bytes="1100K",
               storage__full_policy="drop_oldest", batch__max_lag_s=10, speed__slots=60,
               storage__flush_interval_ms=10000)
    acked = os.path.join(td.path, "acked.txt")
    count = 30000
    try:
        d.start()
        loadgen(b, count=count, series=10, ts_base=TS, acked_file=acked)
        d.kill()  # the journal holds the rest; they do not fit under the ceiling
        # What the journal held at the kill, read from the master log itself
        # (on a slow machine loadgen may outlast flush_interval_ms).
        committed = d.query1("SELECT coalesce(max(seq), 0) FROM events")
        d.sets["storage.max_bytes"] = "1M"
        d.start()
        st = d.status(timeout=120 * SLOW, pred=lambda s: s["log"]["error"] is None and
                      s["log"]["seq"] == count)
        # ~85 bytes per event here (test_hard_quota_after_backlog): 1100K holds
        # under 13,000, so 15,000 journaled readings cannot fit.
        if count - committed >= 15000:
            check("lifting the ceiling" in d.log_text(),
                  "the replay of %d journaled readings never met the ceiling" % (count - committed))
        else:
            log("only %d readings were left in the journal at the kill (the machine is slow): the "
                "replay fit under the ceiling; checked for loss and duplicates only" % (count - committed))
        g = Ledger(d, acked, TS)
        check(g.dupes == 0 and g.integrity == "ok", "dupes %d, integrity %s" % (g.dupes, g.integrity))
        check(d.query1("SELECT max(seq) FROM events") == count, "the newest are kept")
        log("replay of %d journaled readings past a 1100K ceiling: started, %d replayed, %d trimmed" % (
            count, st["log"]["replayed"], st["log"]["trimmed_events"]))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_trim_keeps_views_and_ingest, test_stop_ingest_holds_until_shipped, test_drop_oldest_keeps_ingesting,
         test_hard_quota_between_retention_ticks, test_hard_quota_after_backlog,
         test_hard_quota_replay_after_crash])
