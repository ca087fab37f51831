"""Retention that keeps what matters (issue #15), over simulated months.

Readings whose event times are spread over 14 months (the daemon's clock is
today: the "fake clock" is the events' own timestamps), with
storage.max_age_s = 90 d and the views ladder keep_1m_s = 30 d,
keep_1h_s = 180 d, keep_1d_s = 0 (forever):

- raw events older than max_age stay while sync cannot ship them (the
  upstream, a local HTTP server, answers 503) although the views cover them;
  once shipped they go, in whole blocks, and nothing younger than max_age;
- 1 min views older than 30 d and 1 h views older than 180 d go, 1 d views
  all stay;
- a 1 h query over a range whose raw events and 1 min views are gone is
  still exact (count, sum, min, max against a reference computed here); a
  1 min step there, or an hour edge there, is refused `not_retained`; 1 d
  steps stay exact where 1 h views are gone too;
- status `storage` says what each tier holds, checked against the files
  (opened read-only).

test_max_bytes_counts_views: views.db (many 1 min buckets) pushes the total
over storage.max_bytes: covered raw events go first, then the oldest 1 min
buckets are shed (never 1 h or 1 d here), until the total is under the bound.
"""
import datetime
import glob
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import time

from harness import (CLI, EMULATOR, SLOW, Broker, Daemon, TempDir, check, lg_topic, lg_value, loadgen, log, rr, run,
                     wait_until)
from sync_servers import FaultServer

DAY = 86400000
HOUR = 3600000
MIN = 60000


def parse_time(s):
    if s is None:
        return 0
    return int(datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


def views_db(d):
    return sqlite3.connect("file:%s?mode=ro" % os.path.join(d.datadir, "views.db"), uri=True, timeout=30)


def one(con, sql, *args):
    return con.execute(sql, args).fetchone()[0]


class Stream:
    """loadgen's json-ts stream: message i at ts_base + i * step, series i % n."""

    def __init__(self, count, series, ts_base, step):
        self.count, self.series, self.ts_base, self.step = count, series, ts_base, step

    def ts(self, i):
        return self.ts_base + i * self.step

    def reference(self, name, lo, hi, width):
        """{bucket start: (count, fsum, min, max)} of one series over [lo, hi)."""
        out = {}
        for i in range(self.count):
            t = self.ts(i)
            if lo <= t < hi and lg_topic(i, self.series) == name:
                out.setdefault(t - (t - lo) % width, []).append(lg_value(i))
        return {k: (len(v), math.fsum(v), min(v), max(v)) for k, v in out.items()}


def check_exact(ans, ref, what):
    check(ans.get("ok"), "%s: %s" % (what, ans))
    got = {b["t"]: (b["count"], b["sum"], b["min"], b["max"]) for b in ans["buckets"] if b["count"]}
    check(got == ref, "%s: answer %s, reference %s" % (what, sorted(got.items())[:3], sorted(ref.items())[:3]))
    return len(got)


def query(b, name, lo, hi, step):
    return rr(b, json.dumps({"series": name, "from": lo, "to": hi, "step": step,
                             "agg": ["count", "sum", "min", "max"]}), timeout=30)


def tiers_match(d, st):
    """Status storage tiers against the files; returns a description of the first mismatch."""
    s = st["storage"]
    con = d.db()
    try:
        raw = (one(con, "SELECT count(*) FROM events"), one(con, "SELECT coalesce(min(ts), 0) FROM events"))
    finally:
        con.close()
    if (s["raw_events"], parse_time(s["raw_oldest"])) != raw:
        return "raw: status %s/%s, master.db %s" % (s["raw_events"], s["raw_oldest"], raw)
    v = views_db(d)
    try:
        for name, res in (("1m", MIN), ("1h", HOUR), ("1d", DAY)):
            rows = one(v, "SELECT count(*) FROM views WHERE res=?", res)
            oldest = one(v, "SELECT coalesce(min(t), 0) FROM views WHERE res=?", res)
            if (s["view_%s_rows" % name], parse_time(s["view_%s_oldest" % name])) != (rows, oldest):
                return "%s views: status %s/%s, views.db %s/%s" % (
                    name, s["view_%s_rows" % name], s["view_%s_oldest" % name], rows, oldest)
    finally:
        v.close()
    return None


def test_months_of_data():
    td = TempDir("retention-age")
    b = Broker(td.path).start()
    fs = FaultServer(default=("status", 503)).start()  # the upstream is down at first
    now = int(time.time() * 1000)
    today = now // DAY * DAY
    # 14 months of readings, one every 15 minutes, 4 series.
    s = Stream(count=40800, series=4, ts_base=today - 425 * DAY, step=15 * MIN)
    max_age = 90 * DAY
    d = Daemon(td.path, b, storage__max_age_s=max_age // 1000, storage__keep_1m_s=30 * 86400,
               storage__keep_1h_s=180 * 86400, storage__keep_1d_s=0, batch__max_lag_s=10,
               speed__slots=60, sync__url=fs.url, sync__compression="none", sync__batch_events=5000,
               query__max_rows=10000000)
    try:
        d.start()
        loadgen(b, count=s.count, series=s.series, ts_base=s.ts_base, extra=["--ts-step", str(s.step)])
        st = d.status(timeout=120 * SLOW, pred=lambda x: x["batch"]["watermark_seq"] == s.count and
                      x["storage"].get("view_1m_dropped_before") is not None)
        # Covered by the views, but not shipped: every raw event stays.
        check(d.query1("SELECT min(seq) FROM events") == 1 and d.event_count() == s.count,
              "raw events went before sync shipped them: %s" % st["storage"])
        check(st["storage"]["raw_aged_events"] == 0, "aged: %s" % st["storage"])
        log("upstream down: views cover all %d events, %d raw events kept (nothing shipped)" % (
            s.count, d.event_count()))

        # The upstream takes the data: what is old, covered and shipped goes.
        fs.set_script([], default="ok")
        cutoff = now - max_age
        st = d.status(timeout=120 * SLOW, pred=lambda x: x["sync"]["acked_seq"] == s.count and
                      x["storage"]["raw_aged_events"] > 0 and
                      parse_time(x["storage"]["raw_oldest"]) >= cutoff - 11 * DAY)
        wait_until(lambda: d.query1("SELECT min(seq) FROM events") is not None and
                   s.ts(d.query1("SELECT min(seq) FROM events") + 1023 - 1) >= cutoff - 2 * s.step,
                   60 * SLOW, "every whole block older than max_age trimmed")
        oldest_seq = d.query1("SELECT min(seq) FROM events")
        check(oldest_seq % 1024 == 0, "trimmed in whole blocks: oldest seq %d" % oldest_seq)
        # Everything removed was older than max_age (seq = index + 1) ...
        check(s.ts(oldest_seq - 2) < cutoff, "an event younger than max_age was removed")
        # ... and the first block left holds an event that is not.
        check(d.query1("SELECT max(ts) FROM events WHERE seq < ?", (oldest_seq // 1024 + 1) * 1024) >= cutoff - 60000,
              "a whole old block was left")
        check(d.query1("SELECT count(*) FROM events") == s.count - oldest_seq + 1, "a gap in the raw events")
        shipped = set()
        for r in fs.requests:
            if r["received"] and r["action"] == "ok":
                shipped.update(e["seq"] for e in r["events"])
        check(all(q in shipped for q in range(1, oldest_seq)), "an unshipped event was removed")
        text = d.log_text()
        m = re.search(r"retention: removed sequences (\d+)\.\.(\d+) from the master log \(older than "
                      r"storage.max_age_s\)", text)
        check(m is not None, "no age retention logged")

        # The ladder: 1 min views older than 30 d, 1 h older than 180 d gone; 1 d all kept.
        def ladder_done():
            v = views_db(d)
            try:
                return (one(v, "SELECT count(*) FROM views WHERE res=? AND t < ?", MIN, now - 30 * DAY - MIN) == 0 and
                        one(v, "SELECT count(*) FROM views WHERE res=? AND t < ?", HOUR,
                            now - 180 * DAY - HOUR) == 0)
            finally:
                v.close()
        wait_until(ladder_done, 60 * SLOW, "the views ladder")
        v = views_db(d)
        try:
            days = set((lg_topic(i, s.series), s.ts(i) // DAY) for i in range(s.count))
            n1d = one(v, "SELECT count(*) FROM views WHERE res=?", DAY)
            check(n1d == len(days), "1 d views: %d rows, %d (series, day) in the data" % (n1d, len(days)))
            n1h_kept = one(v, "SELECT count(*) FROM views WHERE res=? AND t >= ? AND t < ?", HOUR,
                           now - 170 * DAY, now - 40 * DAY)
            check(n1h_kept == 4 * 130 * 24, "1 h views between 170 and 40 days ago: %d rows" % n1h_kept)
            n1m = one(v, "SELECT count(*) FROM views WHERE res=?", MIN)
            n1h = one(v, "SELECT count(*) FROM views WHERE res=?", HOUR)
        finally:
            v.close()

        # Status tiers match the files (the ladder and the age trim settle).
        wait_until(lambda: tiers_match(d, d.status(timeout=30)) is None, 60 * SLOW, "status tiers = files")
        st = d.status(timeout=30)
        log("status storage: %s" % json.dumps(st["storage"]))

        name = "sensors/dev1/temp"
        # 100 days back: raw and 1 min views gone, 1 h kept: exact at 1 h.
        d100 = today - 100 * DAY
        ans = query(b, name, d100, d100 + DAY, "1h")
        n = check_exact(ans, s.reference(name, d100, d100 + DAY, HOUR), "1 h step, 100 days back")
        check(ans.get("raw_from_seq", 0) == oldest_seq and ans["sources"]["batch"] > 0,
              "answer does not come from the views: %s" % {k: ans.get(k) for k in ("raw_from_seq", "sources")})
        # ... a 1 min step there, or an hour edge, needs the dropped 1 min views.
        for lo, hi, step in ((d100, d100 + HOUR, "1m"), (d100 + 30 * MIN, d100 + 5 * HOUR, "1h")):
            ans = query(b, name, lo, hi, step)
            check(not ans["ok"] and ans["error"]["code"] == "not_retained" and
                  "keep_1m_s" in ans["error"]["message"], "step %s from %d: %s" % (step, lo, ans))
        refused = ans["error"]["message"]
        # 300 days back: 1 h views gone too; 1 d steps still exact.
        d300 = today - 300 * DAY
        ans = query(b, name, d300, d300 + HOUR * 5, "1h")
        check(not ans["ok"] and ans["error"]["code"] == "not_retained" and "keep_1h_s" in ans["error"]["message"],
              "1 h step 300 days back: %s" % ans)
        ans = query(b, name, d300, d300 + 7 * DAY, "1d")
        n1 = check_exact(ans, s.reference(name, d300, d300 + 7 * DAY, DAY), "1 d step, 300 days back")
        # Recent: 20 days back, 1 min views (and raw) are there.
        d20 = today - 20 * DAY
        ans = query(b, name, d20, d20 + 2 * HOUR, "1m")
        n2 = check_exact(ans, s.reference(name, d20, d20 + 2 * HOUR, MIN), "1 min step, 20 days back")
        log("14 months, max_age 90 d: raw from seq %d (%d of %d kept); views 1 min %d rows, 1 h %d, 1 d %d; "
            "1 h answers 100 days back exact (%d buckets), 1 d 300 days back exact (%d), 1 min 20 days back "
            "exact (%d); refused: %s" % (oldest_seq, s.count - oldest_seq + 1, s.count, n1m, n1h, n1d, n, n1, n2,
                                         refused))
        # A full recompute keeps what the raw events no longer hold.
        d.status(pred=lambda x: not x["batch"]["running"], timeout=120 * SLOW)
        runs = rr(b, '{"op":"status"}')["batch"]["runs"]
        ans = rr(b, json.dumps({"op": "recompute", "full": True}), topic="edgelambda/command")
        check(ans["ok"] and ans["started"], "recompute: %s" % ans)
        st = d.status(pred=lambda x: not x["batch"]["running"] and x["batch"]["runs"] > runs, timeout=120 * SLOW)
        check(st["batch"]["last_full"] is True, "ran the wrong kind: %s" % st["batch"])
        ans = query(b, name, d100, d100 + DAY, "1h")
        check_exact(ans, s.reference(name, d100, d100 + DAY, HOUR), "1 h step after a full recompute")
        ans = query(b, name, d300, d300 + 7 * DAY, "1d")
        check_exact(ans, s.reference(name, d300, d300 + 7 * DAY, DAY), "1 d step after a full recompute")
        d.stop()
        out = subprocess.run(EMULATOR + [CLI, "verify", "--dir", d.datadir], capture_output=True, text=True,
                             timeout=120 * SLOW)
        check(out.returncode == 0, "edgelambda verify: %s %s" % (out.stdout, out.stderr))
        log("verify after age retention and the ladder: %s" % out.stdout.strip().splitlines()[-1])
    finally:
        d.kill()
        fs.stop()
        b.stop()
        td.cleanup()


def test_max_bytes_counts_views():
    td = TempDir("retention-views-bytes")
    b = Broker(td.path).start()
    now = int(time.time() * 1000)
    today = now // DAY * DAY
    # One reading a minute per series, 20 series, 3 days long, ending 2 days ago:
    # views.db holds a 1 min bucket per reading.
    count = 20 * 3 * 1440
    ts_base = today - 5 * DAY
    d = Daemon(td.path, b, storage__max_bytes="6M", batch__max_lag_s=10, speed__slots=60,
               storage__keep_1m_s=0, storage__keep_1h_s=0, storage__keep_1d_s=0)
    try:
        d.start()
        loadgen(b, count=count, series=20, ts_base=ts_base, extra=["--ts-step", "3000"])
        st = d.status(timeout=180 * SLOW, pred=lambda x: x["ingest"]["accepted"] == count and
                      x["batch"]["watermark_seq"] == count and
                      x["storage"].get("view_1m_dropped_before") is not None and
                      x["storage"]["total_bytes"] <= x["storage"]["max_bytes"])
        s = st["storage"]
        check(st["log"]["trimmed_events"] > 0, "raw events did not go first: %s" % st["log"])
        check(s.get("view_1h_dropped_before") is None and s.get("view_1d_dropped_before") is None,
              "coarser views were shed: %s" % s)
        v = views_db(d)
        try:
            n1h = one(v, "SELECT count(*) FROM views WHERE res=?", HOUR)
            oldest_1m = one(v, "SELECT min(t) FROM views WHERE res=?", MIN)
        finally:
            v.close()
        check(n1h == 20 * 3 * 24, "1 h views: %d rows" % n1h)
        check(oldest_1m is None or oldest_1m >= parse_time(s["view_1m_dropped_before"]),
              "1 min rows below the horizon")
        text = d.log_text()
        first_trim = text.find("retention: removed sequences")
        first_shed = text.find("(over storage.max_bytes)")
        check(0 <= first_trim < first_shed, "the raw events were not trimmed before the views were shed:\n%s" %
              "\n".join(l for l in text.splitlines() if "retention" in l)[:3000])
        log("max_bytes 6M with views: total %d bytes (raw %d, views %d, journal %d), %d raw events trimmed, "
            "1 min views shed before %s, 1 h views all %d kept" % (
                s["total_bytes"], s["raw_bytes"], s["views_bytes"], s["journal_bytes"],
                st["log"]["trimmed_events"], s["view_1m_dropped_before"], n1h))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


LIBS = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))


def storage_conf(max_age_d, keep_1m_d, keep_1h_d, keep_1d_d):
    return "[storage]\nmax_age_s = %d\nkeep_1m_s = %d\nkeep_1h_s = %d\nkeep_1d_s = %d\n" % (
        max_age_d * 86400, keep_1m_d * 86400, keep_1h_d * 86400, keep_1d_d * 86400)


def test_months_pass_on_the_daemon_clock():
    """The daemon's own clock moves on (libfaketime, wall clock only): ten days of
    readings, then +25 days and +100 days; max_age and the ladder follow the
    clock; a reload (SIGHUP) changes keep_1d_s live."""
    td = TempDir("retention-faketime")
    b = Broker(td.path).start()
    ft = os.path.join(td.path, "faketime")
    with open(ft, "w") as f:
        f.write("+0\n")
    d = Daemon(td.path, b, batch__max_lag_s=10, speed__slots=60)
    d.config_text = storage_conf(30, 20, 60, 0)
    d.env.update({"LD_PRELOAD": LIBS[0], "FAKETIME_TIMESTAMP_FILE": ft, "FAKETIME_NO_CACHE": "1",
                  "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    now = int(time.time() * 1000)
    s = Stream(count=14400, series=4, ts_base=now - 10 * DAY, step=MIN)

    def moved(spec):
        with open(ft, "w") as f:
            f.write(spec + "\n")
    try:
        d.start()
        loadgen(b, count=s.count, series=s.series, ts_base=s.ts_base, extra=["--ts-step", str(s.step)])
        st = d.status(timeout=60 * SLOW, pred=lambda x: x["batch"]["watermark_seq"] == s.count and
                      x["storage"].get("view_1m_rows") == s.count)
        check(st["storage"]["raw_events"] == s.count and st["storage"]["view_1m_dropped_before"] is None,
              "today: nothing is old yet: %s" % st["storage"])
        # 25 days later: raw older than 30 d (now - 5 d) and 1 min views older than 20 d (all) go.
        moved("+25d")
        st = d.status(timeout=60 * SLOW, pred=lambda x: x["storage"]["view_1m_rows"] == 0 and
                      x["storage"]["raw_aged_events"] > 0)
        wait_until(lambda: s.ts(d.query1("SELECT min(seq) FROM events") - 1 + 1023) >= now - 5 * DAY - MIN,
                   60 * SLOW, "raw events older than 30 days (of the fake clock) trimmed")
        oldest = d.query1("SELECT min(seq) FROM events")
        check(s.ts(oldest - 2) < now - 5 * DAY and oldest > 1, "trimmed up to seq %d" % oldest)
        check(st["storage"]["view_1h_rows"] == 4 * 10 * 24 + 4 or st["storage"]["view_1h_rows"] >= 4 * 240,
              "1 h views kept: %s" % st["storage"])
        log("+25 d: raw from seq %d, 1 min views dropped before %s, 1 h %d rows" % (
            oldest, st["storage"]["view_1m_dropped_before"], st["storage"]["view_1h_rows"]))
        # 100 days later: every whole block of raw events and every 1 h view is gone; 1 d stays exact.
        moved("+100d")
        partial = s.count - (s.count + 1) // 1024 * 1024 + 1  # the newest block is not whole: it stays
        st = d.status(timeout=60 * SLOW, pred=lambda x: x["storage"]["view_1h_rows"] == 0 and
                      x["storage"]["raw_events"] == partial)
        name = "sensors/dev2/temp"
        lo = (now - 10 * DAY) // DAY * DAY
        ans = query(b, name, lo, lo + 11 * DAY, "1d")
        n = check_exact(ans, s.reference(name, lo, lo + 11 * DAY, DAY), "1 d step after 100 days")
        ans = query(b, name, lo + DAY, lo + 2 * DAY, "1h")
        check(not ans["ok"] and ans["error"]["code"] == "not_retained" and "keep_1h_s" in ans["error"]["message"],
              "1 h step after 100 days: %s" % ans)
        # A reload applies a keep duration for the 1 d views at once.
        with open(os.path.join(td.path, "edgelambda.conf"), "w") as f:
            f.write(storage_conf(30, 1, 2, 5))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "keep_1d_s" in d.log_text() and "reload: applied" in d.log_text(), 30 * SLOW, "reload")
        st = d.status(timeout=60 * SLOW, pred=lambda x: x["storage"]["view_1d_rows"] == 0 and
                      x["storage"]["view_1d_dropped_before"] is not None)
        log("+100 d: %d raw events left (the newest partial block), 1 d answers exact (%d buckets), "
            "1 h refused; after a reload with keep_1d_s = 5 d: 1 d views dropped before %s" % (
                partial, n, st["storage"]["view_1d_dropped_before"]))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    tests = [test_months_of_data, test_max_bytes_counts_views]
    if LIBS and not os.environ.get("EL_EMULATOR") and "asan" not in os.path.basename(
            os.path.normpath(os.environ.get("EL_BUILD_DIR", ""))).lower():
        tests.append(test_months_pass_on_the_daemon_clock)
    else:
        log("test_months_pass_on_the_daemon_clock skipped: needs libfaketime and an uninstrumented native build")
    run(tests)
