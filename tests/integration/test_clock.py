"""Clock jumps on boards without a real-time clock (issue 7).

The daemon runs under libfaketime (FAKETIME_DONT_FAKE_MONOTONIC=1, the offset
read from a file so the test can step it) with its wall clock 1,000 days in
the past and "not synchronised" (EDGELAMBDA_FAULT_CLOCK_SYNCED_FILE stands in
for adjtimex, which libfaketime cannot fake). Shown:
  - status says clock_synced false, then true;
  - events without their own timestamp received before synchronisation are
    never stored, served, recomputed or shipped with the wrong wall time:
    they wait in `unanchored` and, once the clock is set, enter the master
    log with ts = monotonic receive time + the boot's anchor, i.e. their
    true time (checked against the real time of publishing), in seq order;
  - events with their own timestamp are stored at once;
  - answers are exact before and after; the batch watermark never passes a
    waiting event;
  - the clock stepped forward and backward: ingest, commits and status keep
    going (timers are monotonic), the steps are counted;
  - events left waiting by a boot that ended unsynchronised become dead
    letters (clock_never_synced) on the next boot, never silently dropped.
"""
import glob
import json
import os
import sys
import time

from harness import (SLOW, Broker, Daemon, TempDir, check, lg_value, loadgen_async, log, publish_lines, rr, run,
                     values, wait_until)
from test_query import reference, rows_upto

LIBS = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))


def faked_daemon(td, b, **sets):
    ft = os.path.join(td.path, "faketime")
    synced = os.path.join(td.path, "synced")
    with open(ft, "w") as f:
        f.write("-1000d\n")
    d = Daemon(td.path, b, clock__synced="auto", **sets)
    d.env.update({"LD_PRELOAD": LIBS[0], "FAKETIME_TIMESTAMP_FILE": ft, "FAKETIME_NO_CACHE": "1",
                  "FAKETIME_DONT_FAKE_MONOTONIC": "1", "EDGELAMBDA_FAULT_CLOCK_SYNCED_FILE": synced})
    return d, ft, synced


def set_clock(ft, spec):
    with open(ft, "w") as f:
        f.write(spec + "\n")


def test_anchoring_and_steps():
    td = TempDir("clock")
    b = Broker(td.path).start()
    d, ft, synced = faked_daemon(td, b)
    try:
        d.start()
        st = d.status(timeout=10 * SLOW, pred=lambda s: s["clock_synced"] is False)
        t0 = int(time.time() * 1000)
        publish_lines(b, "sensors/bare", ["%d.5" % i for i in range(200)])
        t1 = int(time.time() * 1000)
        publish_lines(b, "sensors/stamped", [json.dumps({"value": i, "ts": t1 + i}) for i in range(50)])
        st = d.status(timeout=20 * SLOW, pred=lambda s: s["ingest"]["accepted"] == 250)
        check(st["clock"]["unanchored_events"] == 200, "status: %s" % st["clock"])
        # Nothing carries the fake wall clock's time into events.
        check(d.query1("SELECT count(*) FROM events") == 50, "only stamped events in the log")
        check(d.query1("SELECT count(*) FROM unanchored") == 200, "bare events wait")
        fake_recv = d.query1("SELECT max(recv) FROM unanchored")
        check(fake_recv < t0 - 900 * 86400000, "the daemon's wall clock is really faked (%d)" % fake_recv)
        check(d.query1("SELECT count(*) FROM events WHERE ts < ?", t0 - 86400000) == 0, "no fake times")
        q = {"series": "sensors/bare", "from": t0 - 60000, "to": t1 + 60000, "step": "1m", "agg": ["count"]}
        ans = rr(b, json.dumps(q))
        check(sum(x["count"] for x in ans["buckets"]) == 0, "nothing at a true time yet: %s" % ans)
        # ... but never invisible: served provisionally at the board's clock, and said so.
        lo, hi = d.query1("SELECT min(recv) FROM unanchored"), d.query1("SELECT max(recv) FROM unanchored")
        qp = {"series": "sensors/bare", "from": lo - 60000, "to": hi + 60000, "step": "1m",
              "agg": ["count", "sum", "p50"]}
        ans = rr(b, json.dumps(qp))
        check(ans["clock_synced"] is False and ans.get("provisional") == 200 and
              sum(x["count"] for x in ans["buckets"]) == 200 and
              sum(x["sum"] for x in ans["buckets"]) == sum(i + 0.5 for i in range(200)) and
              all("provisional" in x["src"] for x in ans["buckets"]), "provisional answer: %s" % ans)
        last = rr(b, json.dumps({"op": "last", "series": "sensors/bare", "n": 3}))
        check([x["value"] for x in last["series"][0]["samples"]] == [199.5, 198.5, 197.5] and
              all(x.get("provisional") for x in last["series"][0]["samples"]), "last: %s" % last)
        rr(b, json.dumps({"op": "recompute", "full": True}), topic="edgelambda/command", timeout=20 * SLOW)
        st = d.status(timeout=20 * SLOW, pred=lambda s: s["batch"]["runs"] >= 1 and not s["batch"]["running"])
        first_waiting = d.query1("SELECT min(seq) FROM unanchored")
        check(st["batch"]["watermark_seq"] < first_waiting,
              "watermark %d passed a waiting event %d" % (st["batch"]["watermark_seq"], first_waiting))

        # The clock is set (a jump of 1,000 days forward) and synchronised.
        set_clock(ft, "+0")
        open(synced, "w").close()
        st = d.status(timeout=20 * SLOW, pred=lambda s: s["clock_synced"] and s["clock"]["unanchored_events"] == 0)
        check(st["clock"]["anchored_events"] == 200, "anchored: %s" % st["clock"])
        rows = [r for r in count_rows(d, "sensors/bare")]
        check(len(rows) == 200, "%d bare events in the log" % len(rows))
        ts = [r[1] for r in rows]
        check(min(ts) >= t0 - 2000 and max(ts) <= t1 + 2000,
              "anchored times %d..%d outside the real publishing window %d..%d" % (min(ts), max(ts), t0, t1))
        check(ts == sorted(ts), "anchored times follow the receive order")
        check(all(r[3] & 0x10 for r in rows), "flag MLOG_F_ANCHORED")
        check([r[2] for r in rows] == [i + 0.5 for i in range(200)], "values in publish order")
        log("anchored 200 events to %d..%d (published %d..%d real ms)" % (min(ts), max(ts), t0, t1))
        ans = rr(b, json.dumps(q))
        exp = reference(rows_upto(d, q["series"], ans["seq"]), q["from"], q["to"], 60000, q["agg"])
        check(values(ans["buckets"]) == exp and sum(x["count"] for x in exp) == 200, "answer after anchoring")
        rr(b, json.dumps({"op": "recompute", "full": False}), topic="edgelambda/command", timeout=20 * SLOW)
        last = d.query1("SELECT max(seq) FROM events")
        d.status(timeout=20 * SLOW, pred=lambda s: s["batch"]["watermark_seq"] >= last)
        ans = rr(b, json.dumps(q))
        check(values(ans["buckets"]) == exp, "answer from the views after anchoring")

        # Step backward one hour while synchronised: everything keeps going.
        set_clock(ft, "-1h")
        publish_lines(b, "sensors/after", ["%d" % i for i in range(100)])
        st = d.status(timeout=20 * SLOW, pred=lambda s: s["ingest"]["accepted"] == 350 and s["clock"]["steps"] >= 2)
        check(d.query1("SELECT count(*) FROM events") == 350, "all events stored after the steps")
        check("the wall clock stepped by" in d.log_text(), "steps are logged")
        log("steps seen: %d; status: %s" % (st["clock"]["steps"], st["clock"]))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def count_rows(d, series):
    con = d.db()
    try:
        return con.execute("SELECT e.seq, e.ts, e.value, e.flags FROM events e JOIN series s ON s.id = e.series"
                           " WHERE s.name = ? ORDER BY e.seq", (series,)).fetchall()
    finally:
        con.close()


def test_boot_that_never_synced():
    td = TempDir("clock-boot")
    b = Broker(td.path).start()
    d, ft, synced = faked_daemon(td, b)
    try:
        d.env["EDGELAMBDA_FAULT_BOOT_ID"] = "boot-without-clock"
        d.start()
        publish_lines(b, "sensors/bare", ["%d" % i for i in range(30)])
        d.status(timeout=20 * SLOW, pred=lambda s: s["clock"]["unanchored_events"] == 30)
        d.stop()
        # The next boot: its monotonic clock says nothing about the last one.
        d.env["EDGELAMBDA_FAULT_BOOT_ID"] = "next-boot"
        open(synced, "w").close()
        set_clock(ft, "+0")
        d.start()
        st = d.status(timeout=20 * SLOW, pred=lambda s: s.get("clock_synced") is True)
        check(st["clock"]["unanchored_events"] == 0, "status: %s" % st["clock"])
        dl = d.query1("SELECT count(*) FROM dead_letters WHERE reason = 'clock_never_synced'")
        check(dl == 30, "%d dead letters (clock_never_synced), expected 30" % dl)
        check(d.query1("SELECT count(*) FROM events") == 0, "none placed at a made-up time")
        check("cannot be placed in time" in d.log_text(), "logged")
        log("30 events of a boot that never synchronised: 30 dead letters (clock_never_synced)")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_crashes_while_unsynchronised():
    """kill -9 while readings wait for the clock: redeliveries are recognised
    (the dedup window is seeded from the waiting readings too), nothing is
    lost or doubled, and all are placed in time once the clock is set."""
    td = TempDir("clock-crash")
    b = Broker(td.path).start()
    d, ft, synced = faked_daemon(td, b)
    acked = os.path.join(td.path, "acked.txt")
    n = 6000
    try:
        d.start()
        t0 = int(time.time() * 1000)
        lg = loadgen_async(b, count=n, series=20, qos=1, style="bare", acked_file=acked, rate=1500)
        for _ in range(3):
            wait_until(lambda: lg.poll() is not None or
                       d.query1("SELECT count(*) FROM unanchored") > 0, 30 * SLOW, "ingest")
            time.sleep(0.5)  # a random moment during ingest, not a synchronisation
            d.kill()
            d.start()
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen: %s %s" % (out, err))
        t1 = int(time.time() * 1000)
        with open(acked) as f:
            check(len(f.read().split()) == n, "broker acknowledged all")
        wait_until(lambda: d.query1("SELECT count(*) FROM unanchored") >= n, 60 * SLOW, "all readings waiting")
        values = [v for (v,) in d.db().execute("SELECT value FROM unanchored")]
        check(len(values) == n and len(set(values)) == n, "%d waiting, %d distinct" % (len(values), len(set(values))))
        check(d.query1("SELECT count(*) FROM events") == 0, "none placed yet")
        set_clock(ft, "+0")
        open(synced, "w").close()
        wait_until(lambda: d.query1("SELECT count(*) FROM events") == n, 30 * SLOW, "all placed in time")
        rows = d.db().execute("SELECT ts, value FROM events ORDER BY seq").fetchall()
        check(set(v for _, v in rows) == set(lg_value(i) for i in range(n)), "the published values")
        check(all(t0 - 2000 <= t <= t1 + 2000 for t, _ in rows), "placed within the real ingest window")
        check(d.query1("SELECT count(*) FROM unanchored") == 0, "none left waiting")
        log("3 kills while unsynchronised: %d acknowledged, %d waited, 0 twice, all placed in %d..%d" % (
            n, len(values), t0, t1))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_idle_after_dead_letter_writes_nothing():
    """No work for nothing (issue 11): after the views cover every event and
    the last message was a dead letter, ten minutes of idleness (libfaketime
    at 60x, monotonic clock included, so batch.max_lag_s and idle_for_s pass
    many times) start no recompute and leave views.db and its WAL as they were."""
    td = TempDir("clock-idle")
    b = Broker(td.path).start()
    ft = os.path.join(td.path, "faketime")
    set_clock(ft, "+0 x60")
    d = Daemon(td.path, b, batch__max_lag_s=10, batch__idle_for_s=10)
    d.env.update({"LD_PRELOAD": LIBS[0], "FAKETIME_TIMESTAMP_FILE": ft, "FAKETIME_NO_CACHE": "1"})
    try:
        d.start()
        ts = 1767225600000
        publish_lines(b, "sensors/a", [json.dumps({"value": i, "ts": ts + i}) for i in range(100)])
        d.status(timeout=20 * SLOW, pred=lambda s: s["ingest"]["accepted"] == 100)
        rr(b, json.dumps({"op": "recompute", "full": False}), topic="edgelambda/command", timeout=20 * SLOW)
        st = d.status(timeout=20 * SLOW, pred=lambda s: s["batch"]["watermark_seq"] == 100 and not s["batch"]["running"])
        publish_lines(b, "sensors/a", ["not a number"])
        st = d.status(timeout=20 * SLOW, pred=lambda s: s["ingest"]["dead_letters"] == 1)
        runs = st["batch"]["runs"]
        views = os.path.join(d.datadir, "views.db")

        def sizes():
            return [os.path.getsize(p) if os.path.exists(p) else -1 for p in (views, views + "-wal")]
        before = sizes()
        mark = len(d.log_text())
        real0 = time.monotonic()
        # Ten fake minutes (10 s of real time at 60x); sampled throughout.
        samples = []
        while time.monotonic() - real0 < 10:
            samples.append(sizes())
            time.sleep(0.25)  # sampling interval of an observation, not a synchronisation
        st = d.status(timeout=10 * SLOW)
        check(st["uptime_s"] >= 600, "at least ten fake minutes passed (uptime %s s)" % st["uptime_s"])
        check(all(x == before for x in samples), "views.db/-wal changed while idle: %s -> %s" % (before, samples[-1]))
        check(st["batch"]["runs"] == runs, "recompute runs while idle: %d -> %d" % (runs, st["batch"]["runs"]))
        idle_log = d.log_text()[mark:]
        check("recompute" not in idle_log, "runs logged while idle: %s" % idle_log[-2000:])
        log("10 fake minutes idle after a trailing dead letter: views.db %s bytes unchanged, runs %d" % (before, runs))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    if not LIBS or os.environ.get("EL_EMULATOR") or "asan" in os.path.basename(
            os.path.normpath(os.environ.get("EL_BUILD_DIR", ""))).lower():
        print("SKIP: needs libfaketime (package libfaketime) and an uninstrumented native build")
        sys.exit(77)
    run([test_anchoring_and_steps, test_boot_that_never_synced, test_crashes_while_unsynchronised,
         test_idle_after_dead_letter_writes_nothing])
