"""Batch layer (issue 4): views recomputed from the master log, swapped in
whole, merged exactly with the speed layer and the log's tail.

- Exactness before, during and after recompute runs, with late events
  (event times hours in the past) arriving between and during runs.
- SIGKILL in the middle of a recompute: the old views keep serving, no
  half view is visible, answers stay exact.
- A tampered view is restored by a full recompute.
"""
import json
import os
import random
import sqlite3
import time

from harness import (SLOW, Broker, Daemon, TempDir, check, loadgen, loadgen_async, publish_lines,
                     rr, run, wait_until)
from test_query import SERIES, compare, publish_history, reference, rows_upto

QAGGS = ["count", "sum", "min", "max", "mean", "stddev", "last", "p50", "p95", "p99"]


def compare_q(ans, exp, aggs, what):
    """Exact except quantiles of buckets fed by views: within the sketch's 1%."""
    plain = [a for a in aggs if not a.startswith("p")]
    compare(ans, exp, plain, what)
    for g, e in zip(ans["buckets"], exp):
        for a in aggs:
            if a.startswith("p"):
                rel = abs(g[a] - e[a]) / max(abs(e[a]), 1e-9)
                check(rel <= 0.0100001 or abs(g[a] - e[a]) < 1e-9,
                      "%s: %s %s = %r, exact %r (rel %.4f)" % (what, g["t"], a, g[a], e[a], rel))


def query_and_check(b, d, q, step, what):
    ans = rr(b, json.dumps(q))
    check(ans.get("ok") is True, "%s: %s" % (what, ans))
    exp = reference(rows_upto(d, q["series"], ans["seq"]), q["from"], q["to"], step, q["agg"])
    compare_q(ans, exp, q["agg"], what)
    return ans


def queries(now):
    out = []
    for name in SERIES[:2]:
        for step, span in ((60000, 4 * 3600000), (3600000, 5 * 3600000), (300000, 3600000), (1000, 600000)):
            out.append(({"series": name, "from": now - span, "to": now + 1000, "step": "%dms" % step,
                         "agg": QAGGS}, step))
        # unaligned edges
        out.append(({"series": name, "from": now - 3 * 3600000 + 12345, "to": now - 1800000 + 777,
                     "step": "1m", "agg": QAGGS}, 60000))
    return out


def watermark(d):
    return d.status(pred=lambda st: not st["batch"]["running"])["batch"]["watermark_seq"]


def recompute(b, d, full=False):
    """Asks for a run and waits until it has finished (the run counter moves).
    A run still going (a slow machine) is waited out first: the daemon
    refuses to start a second one beside it (started: false)."""
    d.status(pred=lambda st: not st["batch"]["running"], timeout=120 * SLOW)
    before = rr(b, '{"op":"status"}')
    ans = rr(b, json.dumps({"op": "recompute", "full": full}), topic="edgelambda/command")
    check(ans["ok"] and ans["started"], "recompute: %s" % ans)
    runs = before["batch"]["runs"]
    st = d.status(pred=lambda st: not st["batch"]["running"] and st["batch"]["runs"] > runs, timeout=120)
    check(st["batch"]["watermark_seq"] >= before["log"]["seq"], "watermark behind: %s" % st["batch"])
    check(st["batch"]["last_full"] == full, "ran the wrong kind: %s" % st["batch"])


def test_exact_across_recomputes_with_late_events():
    rng = random.Random(int(os.environ.get("EL_SEED", "5")))
    td = TempDir("batch")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, speed__slots=120, batch__max_lag_s=3600, batch__idle_cpu_pct=0).start()
    try:
        now = int(time.time() * 1000)
        total = publish_history(b, now, rng)
        wait_until(lambda: d.event_count() >= total, 60, "history")
        for q, step in queries(now):
            query_and_check(b, d, q, step, "before any run")
        recompute(b, d)
        batch_used = 0
        for q, step in queries(now):
            batch_used += sum(1 for _ in [0]) if query_and_check(b, d, q, step, "after run")["sources"]["batch"] else 0
        check(batch_used > 0, "no answer used the views")
        # Late events: hours old, after the run — the views do not cover them yet.
        for name in SERIES[:2]:
            publish_lines(b, name, ['{"value":%.2f,"ts":%d}' % (rng.uniform(-50, 50), now - rng.randint(3600000, 3 * 3600000))
                                    for _ in range(200)])
        wait_until(lambda: d.event_count() >= total + 400, 60, "late events")
        for q, step in queries(now):
            query_and_check(b, d, q, step, "late events, before the next run")
        # During a run: a full recompute while late events keep arriving.
        lg = loadgen_async(b, count=20000, series=10, rate=4000, ts_base=now - 2 * 3600000)
        rr(b, '{"op":"recompute","full":true}', topic="edgelambda/command")
        for q, step in queries(now):
            query_and_check(b, d, q, step, "during a run")
        lg.communicate(timeout=120 * SLOW)
        recompute(b, d)
        for q, step in queries(now):
            query_and_check(b, d, q, step, "after the second run")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_sigkill_mid_recompute_and_tampering():
    td = TempDir("batch-kill")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, speed__slots=60, batch__max_lag_s=3600, batch__idle_cpu_pct=0).start()
    try:
        now = int(time.time() * 1000)
        loadgen(b, count=20000, series=20, ts_base=now - 4 * 3600000)
        wait_until(lambda: d.event_count() >= 20000, 60, "first events")
        recompute(b, d)
        w1 = watermark(d)
        check(w1 >= 20000, "watermark %s" % w1)
        # Enough new data that a full recompute takes a while.
        loadgen(b, count=300000, series=20, ts_base=now - 3 * 3600000, start_index=20000)
        wait_until(lambda: d.event_count() >= 320000, 120, "bulk events")
        # Fault injection makes the run pause between chunks of 100,000 events.
        d.stop()
        d.env["EDGELAMBDA_FAULT_RECOMPUTE_PAUSE_MS"] = "1500"
        d.start()
        rr(b, '{"op":"recompute","full":true}', topic="edgelambda/command")
        d.status(pred=lambda st: st["batch"]["running"], timeout=30)
        d.kill()
        del d.env["EDGELAMBDA_FAULT_RECOMPUTE_PAUSE_MS"]
        con = sqlite3.connect(os.path.join(d.datadir, "views.db"))
        w_after = con.execute("SELECT value FROM meta WHERE key='watermark_seq'").fetchone()[0]
        con.close()
        check(w_after == w1, "a killed run changed the watermark: %s -> %s" % (w1, w_after))
        d.start()
        qs = [({"series": "sensors/dev%d/temp" % s, "from": now - 5 * 3600000, "to": now, "step": "1h",
                "agg": QAGGS}, 3600000) for s in (0, 7, 19)]
        for q, step in qs:
            ans = query_and_check(b, d, q, step, "old views after SIGKILL")
            check(ans["sources"]["batch"] > 0, "old views not used: %s" % ans["sources"])
        # Tamper with a view row: the answer goes wrong; a full recompute mends it.
        recompute(b, d)
        con = sqlite3.connect(os.path.join(d.datadir, "views.db"))
        con.execute("UPDATE views SET count = count + 5, max = 1e9 WHERE res = 3600000")
        con.commit()
        con.close()
        ans = rr(b, json.dumps(qs[0][0]))
        exp = reference(rows_upto(d, qs[0][0]["series"], ans["seq"]), qs[0][0]["from"], qs[0][0]["to"], 3600000, QAGGS)
        check([x["count"] for x in ans["buckets"]] != [x["count"] for x in exp], "tampering had no effect")
        recompute(b, d, full=True)
        for q, step in qs:
            query_and_check(b, d, q, step, "after a full recompute")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_views_db_in_the_way_at_start():
    """views.db cannot be opened at start (here a directory stands in its
    place; on a board, a full or read-only disk): the daemon runs and answers
    exactly from the speed layer and the log, says why in its log, and once
    the file can be opened the batch worker and the serving thread both take
    it up again without a restart (they used to give up for the daemon's life)."""
    td = TempDir("batch-in-the-way")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, speed__slots=60, batch__max_lag_s=3600, batch__idle_cpu_pct=0)
    in_the_way = os.path.join(d.datadir, "views.db")
    os.makedirs(in_the_way)
    d.start()
    try:
        now = int(time.time() * 1000)
        loadgen(b, count=5000, series=5, ts_base=now - 4 * 3600000)
        loadgen(b, count=500, series=5, ts_base=now - 60000, start_index=5000)  # the ring moves on
        wait_until(lambda: d.event_count() >= 5500, 60, "events")
        wait_until(lambda: "batch: cannot open views.db" in d.log_text(), 30, "the batch worker's error")
        check("serving: cannot open views.db" in d.log_text(), "no word from the serving thread")
        err = d.status()["batch"]["error"]
        check(err and "views.db" in err, "status does not say why the batch layer is off: %r" % err)
        q = {"series": "sensors/dev1/temp", "from": now - 5 * 3600000, "to": now, "step": "1h", "agg": QAGGS}
        ans = query_and_check(b, d, q, 3600000, "without views")
        check(ans["sources"]["batch"] == 0, "views used while views.db cannot be opened: %s" % ans["sources"])
        os.rmdir(in_the_way)
        recompute(b, d)  # the worker opens views.db, then runs
        check(watermark(d) >= 5500, "watermark %s" % watermark(d))
        check(d.status()["batch"]["error"] is None, "the error outlived its cause")

        def from_views():
            a = query_and_check(b, d, q, 3600000, "once views.db is back")
            return a if a["sources"]["batch"] > 0 else None
        wait_until(from_views, 90, "an answer from the views")
        check("serving: views.db opened" in d.log_text(), "the serving thread did not say so")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_exact_across_recomputes_with_late_events, test_sigkill_mid_recompute_and_tampering,
         test_views_db_in_the_way_at_start])
