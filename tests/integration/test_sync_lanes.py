"""Sync shares the link: live lane, backlog lane, bandwidth cap (issue #15; sync/sync.c "LANES").

test_lanes_interleave_and_sigkill
  A real mosquitto and edgelambdad, loadgen publishing at a steady rate, and
  FaultServer (sync_servers.py) answering 503 + Retry-After for a while, so a
  backlog older than sync.live_window_s (5 s) builds up; then it answers 200
  while ingest goes on. sync.max_kbps slows the drain so that it takes several
  seconds. The server notes, for every request, the newest seq in master.db
  when the request arrived (its own read-only SQLite connection). Twice the
  daemon is SIGKILLed while a request hangs, once for each lane (the server
  hangs the first request of that lane after a point). Checked:
    - a live lane was used (X-Edgelambda-Lane: live) and its batches arrived
      while the backlog lane still had batches to send, at least 3 of them;
    - the live lane first catches up with its window in full batches; from
      its first partial batch on, live data waits for at most one backlog
      batch: a partial live batch holds every event that was in master.db
      when the request before it arrived (it was cut after that request's
      answer, from all that was committed; less one group commit the daemon
      may not have told sync of yet), and when more than a full batch was
      waiting as a live batch arrived (the newest seq then minus its last seq
      > sync.batch_events, plus that group commit), the next request was
      live again: the live lane never waits behind the backlog with a full
      batch. Both are read at arrival, never against the time between a cut
      and its arrival, so a stall of a loaded machine does not fail them
      (EL_LANES_STALL=1 stops the daemon with SIGSTOP for 0.7 s every
      0.75-2.25 s to show it);
    - each lane's batches are in order and contiguous (dead letters aside:
      none here) within the lane; the backlog starts at 1, the live lane at
      status live_from_seq;
    - the request after each restart is the hung one: same key, same lane,
      byte-identical body;
    - exactly once after dedup: every seq of the master log arrived, each
      duplicate only as an identical resend; cursor = last seq at the end,
      the live lane merged (live_from NULL).

test_max_kbps_against_nginx
  Real nginx (TLS, a sink answering 204, access log with $msec and
  $request_length, no limit_rate) as the upstream; 12000 events ingested
  with sync off, then the daemon restarted with sync on and sync.max_kbps =
  800 (100000 bytes/s). The bytes nginx counted over
  >= 5 s after the first second (the bucket's burst) average within 15% of the
  cap; the same run without a cap is at least 3 times faster; status shows
  sent_bytes and rate_limited_ms.

test_one_hour_outage
  The daemon runs under libfaketime (FAKETIME_DONT_FAKE_MONOTONIC=1: backoff
  and timeouts stay real, the wall clock - receive times, the live window -
  is faked). Through an outage (503) the fake clock is stepped ahead (5
  minutes at a time, then 7.5 and 2.5 minutes) while 250 events arrive at
  each of 12 steps: the outage lasts one fake hour (status
  oldest_unsent_age_s >= 3600) in about 10 s of real time. Then the upstream comes back while ingest goes on: the
  live lane starts at the first event received within the last 300 s (the
  default sync.live_window_s) and everything arrives exactly once after dedup.
  Why libfaketime, not event timestamps spanning an hour: the live window is
  about when events were received, which only a moving daemon clock changes.

test_second_outage_and_window_reload
  Lanes with live_window_s = 3 and a 100 kbit/s cap (the backlog drains for
  many seconds). A first outage builds a backlog; the upstream comes back and
  a live lane starts; then a second outage (8 s, longer than the window)
  while both lanes exist. After it the live lane's next event is older than
  the window: it gets no priority (sync.c: the lane is not moved forward), so
  the lanes alternate - no two live batches in a row while the backlog lane
  still ships. Then, with the live lane still open, a live request hangs and
  SIGHUP reloads live_window_s = 0: the new worker resends exactly that batch
  first, byte-identical, still labelled X-Edgelambda-Lane: live (the header
  follows the lane that cut it, not the window); the stored lane finishes and
  merges, its batches labelled until then, none after; every event arrives
  exactly once after dedup.

test_lane_start_survives_power_cut
  Under tests/fault/powercut.c (only what was fsynced survives): a backlog
  built during an outage, ingest over, the upstream back: the live lane
  starts and ships a batch; then the power is cut, with no group commit of
  the master log since (nothing else made the lane's start durable). After
  the restart every seq the upstream receives is under one Idempotency-Key
  only: the stored lane start (synchronous=FULL) makes the next run cut the
  same ranges, not the same events again under other keys.
"""
import glob
import os
import random
import signal
import sqlite3
import sys
import threading
import time

from harness import (SLOW, Broker, Daemon, TempDir, check, loadgen_async, log, run, wait_until)
from sync_servers import (PKI, FaultServer, Nginx, dump_diagnostics, last_event_seq, master_events, sync_status,
                          wait_synced)
from powercut import PowerCut, available as powercut_available
from test_reload import reload

DEVICE = "pi-lanes"
# events a group commit may hold that sync has not been told of yet (core_commit
# notifies sync after the COMMIT): 300/s with flush_interval_ms 10 is ~3
GROUP_SLACK = 10
FAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))


class LaneServer(FaultServer):
    """FaultServer that records the newest seq in master.db when each request
    arrives, and can hang the next request of a given lane (once)."""

    def __init__(self, db_path, **kw):
        super().__init__(**kw)
        self.db_path = db_path
        self.hang_lane = None
        self.local = threading.local()

    def head_seq(self):
        try:
            con = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=30)
            try:
                return con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return -1

    def _handle(self, h):
        t0 = time.monotonic()
        head = self.head_seq()
        self.local.head_s = time.monotonic() - t0
        lane = h.headers.get("X-Edgelambda-Lane")
        with self.lock:
            if self.hang_lane and lane == self.hang_lane and not self.script:
                self.script = ["hang"]
                self.hang_lane = None
        self.local.head = head
        super()._handle(h)

    def _record(self, rec):
        rec["head"] = self.local.head
        rec["head_s"] = self.local.head_s
        super()._record(rec)


def kind(action):
    return action if isinstance(action, str) else action[0]


def seq_range(r):
    return int(r["headers"]["x-edgelambda-first-seq"]), int(r["headers"]["x-edgelambda-last-seq"])


def check_exactly_once(d, reqs):
    """Every master-log event arrived in a fully received request; a seq that
    arrived twice arrived in identical resends (same key, same events)."""
    events = master_events(d)
    by_seq = {}
    bodies = {}
    for r in reqs:
        if not r["received"] or kind(r["action"]) not in ("ok", "hang", "reset_after"):
            continue
        key = r["headers"]["idempotency-key"]
        if key in bodies:
            check(bodies[key] == r["events"], "resend of %s differs" % key)
        bodies[key] = r["events"]
        first, last = seq_range(r)
        seqs = [e["seq"] for e in r["events"]]
        check(seqs == sorted(seqs) and seqs[0] == first and seqs[-1] == last,
              "batch %s holds seqs %s..%s" % (key, seqs[0], seqs[-1]))
        for e in r["events"]:
            prev = by_seq.get(e["seq"])
            check(prev is None or prev == e, "seq %d arrived twice, differently" % e["seq"])
            by_seq[e["seq"]] = e
    check(len(by_seq) == len(events), "%d distinct seqs arrived, the master log holds %d" % (len(by_seq), len(events)))
    for seq, series, ts, value in events:
        e = by_seq.get(seq)
        check(e is not None and e["series"] == series and e["ts"] == ts and e["value"] == value,
              "event %d (%s, %d, %s) arrived as %s" % (seq, series, ts, value, e))
    return len(events)


def live_state(d):
    con = d.db()
    try:
        return con.execute("SELECT acked_seq, live_from, live_to FROM sync_cursor").fetchone()
    finally:
        con.close()


def teardown(lg, d, b, fs, td):
    if lg and lg.poll() is None:
        lg.kill()
        lg.wait()
    if d:
        d.kill()
    b.stop()
    fs.stop()
    td.cleanup()


class Staller(threading.Thread):
    """EL_LANES_STALL=1: stops the daemon (whichever process d runs now) for
    0.7 s every 0.75-2.25 s, a loaded board's stalls at their worst."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.done, self.stalls = d, threading.Event(), 0

    def run(self):
        while not self.done.wait(random.uniform(0.75, 2.25)):
            p = self.d.proc
            if p is None or p.poll() is not None:
                continue
            try:
                os.kill(p.pid, signal.SIGSTOP)
            except ProcessLookupError:  # killed meanwhile (kill_during_hang)
                continue
            try:
                self.done.wait(0.7)
                self.stalls += 1
            finally:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass


def kill_during_hang(d, fs, lane, timeout):
    """Hangs the next request of lane, SIGKILLs the daemon while it hangs,
    restarts it; returns the hung request's index."""
    n0 = len(fs.snapshot()[0])
    fs.hang_lane = lane
    def hung():
        reqs, _ = fs.snapshot()
        return next((i for i in range(n0, len(reqs)) if kind(reqs[i]["action"]) == "hang"), None)
    i = wait_until(hung, timeout, "a hanging %s request" % lane)
    d.kill()
    d.start()
    return i


def test_lanes_interleave_and_sigkill():
    td = TempDir("sync-lanes")
    batch = 150
    count, rate = 12000, 300
    d = None
    b = Broker(td.path).start()
    fs = LaneServer(os.path.join(td.path, "data", "master.db"), default=("status", 503, 1), hang_s=60)
    fs.start()
    lg = staller = None
    try:
        d = Daemon(td.path, b, sync__url=fs.url, sync__format="ndjson", sync__compression="none",
                   sync__device_id=DEVICE, sync__batch_events=batch, sync__live_window_s=5,
                   sync__max_kbps=600, sync__timeout_s=10)
        d.start()
        if os.environ.get("EL_LANES_STALL"):
            staller = Staller(d)
            staller.start()
        ts_base = int(time.time() * 1000) - count
        lg = loadgen_async(b, count=count, series=20, qos=1, ts_base=ts_base, rate=rate)
        # the outage: about 20 s of ingest, well over the 5 s live window
        wait_until(lambda: last_event_seq(d) >= 20 * rate, 120, "a backlog to build")
        outage_reqs = len(fs.snapshot()[0])
        fs.set_script([], default="ok")
        log("upstream up after %d refused requests, %d events committed" % (outage_reqs, last_event_seq(d)))

        hung_live = kill_during_hang(d, fs, "live", 60)
        hung_backlog = kill_during_hang(d, fs, "backlog", 60)

        out, err = lg.communicate(timeout=300 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        wait_synced(d, count, 180)
        st = sync_status(d, b)
        log("status at the end: %s" % {k: st[k] for k in ("acked_seq", "live_from_seq", "lane_live_events",
                                                          "lane_backlog_events", "sent_bytes", "rate_limited_ms")})
        acked, live_from, live_to = live_state(d)
        check(live_from is None and live_to is None, "live lane still open at the end: %s" % ((live_from, live_to),))
        if staller:
            staller.done.set()
            staller.join()
            log("the daemon was stopped %d times for 0.7 s (EL_LANES_STALL)" % staller.stalls)
        d.stop()

        reqs, _ = fs.snapshot()
        for i in (hung_live, hung_backlog):
            r, again = reqs[i], reqs[i + 1]
            check(again["headers"]["idempotency-key"] == r["headers"]["idempotency-key"]
                  and again["headers"]["x-edgelambda-lane"] == r["headers"]["x-edgelambda-lane"]
                  and again["events"] == r["events"] and again["raw_len"] == r["raw_len"],
                  "after the SIGKILL request %d (%s) was not resent first and identical: %s" % (
                      i, r["headers"]["idempotency-key"], again["headers"]["idempotency-key"]))
        log("SIGKILL during a live and a backlog request: both resent byte-identical first")

        delivered = [r for r in reqs[outage_reqs:] if kind(r["action"]) == "ok"]
        lanes = [r["headers"]["x-edgelambda-lane"] for r in delivered]
        live = [r for r in delivered if r["headers"]["x-edgelambda-lane"] == "live"]
        check(live, "no live lane")
        first_live = seq_range(live[0])[0]
        # after the merge there is one lane again (labelled backlog: the cursor's)
        back = [r for r in delivered if r["headers"]["x-edgelambda-lane"] == "backlog"
                and seq_range(r)[1] < first_live]
        tail = [r for r in delivered if r["headers"]["x-edgelambda-lane"] == "backlog"
                and seq_range(r)[0] > first_live]
        check(back, "no backlog lane")
        n_merge = len(back) + len(live)
        check(len(delivered) == n_merge + len(tail) and all(r in tail for r in delivered[n_merge:]),
              "single-lane batches before the lanes merged")
        last_back_t = max(r["t"] for r in back)
        during = [r for r in live if r["t"] < last_back_t]
        check(len(during) >= 3, "only %d live batches arrived while the backlog drained" % len(during))

        # the live lane catches up with its window in full batches first; from
        # then on live data waits for one backlog batch at most
        log("live batches while the backlog drained: %s" % [len(r["events"]) for r in during])
        if os.environ.get("EL_LANES_TRACE"):
            for r in reqs[outage_reqs:]:
                log("%.3f %s %s %s head %s %.3f" % (r["t"], r["headers"]["x-edgelambda-lane"], kind(r["action"]),
                                                   seq_range(r), r["head"], r["head_s"]))
        caught = next((i for i, r in enumerate(during) if len(r["events"]) < batch), None)
        check(caught is not None, "the live lane never caught up with its window while the backlog drained")
        check(all(len(r["events"]) == batch for r in during[:caught]), "catch-up batches not full")
        during = during[caught:]
        check(len(during) >= 3, "only %d live batches arrived while the backlog drained (after catching up)"
              % len(during))
        behind = [r["head"] - seq_range(r)[1] for r in during]
        index = {id(r): i for i, r in enumerate(delivered)}
        for r, n in zip(during, behind):
            i = index[id(r)]
            prev, last = delivered[i - 1], seq_range(r)[1]
            # cut after prev's answer, so from at least what master.db held when
            # prev arrived; partial = all of it (the time from the cut to the
            # arrival, a stall included, is not the daemon's choice). Less one
            # group commit: the core tells sync just after its COMMIT (~3
            # events per 10 ms flush interval here), and may be preempted there
            check(len(r["events"]) == batch or last >= prev["head"] - GROUP_SLACK,
                  "a live batch of %d events ended at seq %d, though seq %d was committed when the %s request "
                  "before it arrived" % (len(r["events"]), last, prev["head"], prev["headers"]["x-edgelambda-lane"]))
            if n > batch + GROUP_SLACK:
                nxt = delivered[i + 1]
                check(nxt["headers"]["x-edgelambda-lane"] == "live",
                      "a live batch of %d events arrived %d events behind the head (batch %d), then a %s "
                      "batch" % (len(r["events"]), n, batch, nxt["headers"]["x-edgelambda-lane"]))
        within = sum(1 for n in behind if n <= batch)
        pairs = sum(1 for a, c in zip(lanes[:n_merge], lanes[1:n_merge]) if a == c == "backlog")

        # per lane: contiguous and in order (resends aside)
        for name, rs in (("backlog", back), ("live", live), ("merged", tail)):
            ranges = []
            for r in rs:
                if not ranges or ranges[-1] != seq_range(r):
                    ranges.append(seq_range(r))
            for a, c in zip(ranges, ranges[1:]):
                check(c[0] == a[1] + 1, "%s lane: %s then %s" % (name, a, c))
        check(not tail or seq_range(tail[0])[0] == seq_range(live[-1])[1] + 1, "after the merge: %s" % (
            tail and seq_range(tail[0]),))
        check(seq_range(back[-1])[1] == first_live - 1, "backlog ended at %d, live lane began at %d" % (
            seq_range(back[-1])[1], first_live))

        n = check_exactly_once(d, reqs)
        log("%d events exactly once after dedup; after the outage %d backlog and %d live batches; after the "
            "live lane caught up with its window %d live batches while the backlog drained, %d of them within "
            "one batch of the head (at most %d events behind, median %d; batch %d); %d backlog batches followed "
            "a backlog batch; live lane from seq %d" % (
                n, len(back), len(live), len(during), within, max(behind), sorted(behind)[len(behind) // 2],
                batch, pairs, first_live))
    except Exception:
        dump_diagnostics(fs, b, d)
        raise
    finally:
        if staller:
            staller.done.set()
            staller.join()
        teardown(lg, d, b, fs, td)


def nginx_run(td, pki, name, max_kbps, count):
    """Ingests count events with sync off, then restarts the daemon with sync
    to nginx and sync.max_kbps (the whole backlog is there from the start, so
    the link, not ingest, sets the pace); returns [(msec, request_length,
    content_length)] of the requests and the status."""
    work = os.path.join(td.path, name)
    os.makedirs(work)
    os.chmod(work, 0o755)
    ng = Nginx(td.path, pki, name="nginx-" + name).start()
    b = Broker(work).start()
    d = Daemon(work, b, sync__ca_file=pki.crt("ca"), sync__format="ndjson", sync__compression="none",
               sync__device_id=DEVICE, sync__batch_events=100, sync__max_kbps=max_kbps)
    try:
        d.start()
        lg = loadgen_async(b, count=count, series=20, qos=1, ts_base=int(time.time() * 1000) - count)
        out, err = lg.communicate(timeout=300 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        wait_until(lambda: d.event_count() >= count, 60, "the backlog committed")
        d.stop()
        d.sets["sync.url"] = ng.url("/ingest")
        d.start()
        wait_synced(d, count, 180)
        st = sync_status(d, b)
        d.stop()
        lines = [l for l in ng.access_lines() if l[0] == "204"]
        return [(float(l[4]), int(l[1]), int(l[5])) for l in lines], st
    except Exception:
        dump_diagnostics(d, b, ng)
        raise
    finally:
        d.kill()
        b.stop()
        ng.stop()


def rate_over(reqs, skip_s, span_s):
    """Bytes per second nginx counted in (t0 + skip_s, t0 + skip_s + span_s]."""
    t0 = reqs[0][0] + skip_s
    got = sum(n for t, n, _ in reqs if t0 < t <= t0 + span_s)
    return got / span_s


def test_max_kbps_against_nginx():
    td = TempDir("sync-kbps")
    pki = PKI(td.path)
    cap_kbps, count = 800, 12000
    cap = cap_kbps * 125
    try:
        reqs, st = nginx_run(td, pki, "capped", cap_kbps, count)
        total = sum(n for _, n, _ in reqs)
        duration = reqs[-1][0] - reqs[0][0]
        header = [n - c for _, n, c in reqs]
        check(duration >= 7, "the capped run took %.1f s for %d bytes" % (duration, total))
        span = min(8.0, duration - 1.5)
        measured = rate_over(reqs, 1.0, span)
        log("max_kbps %d (%d B/s): nginx counted %d requests, %d bytes in %.2f s; %.0f B/s over %.1f s after "
            "the first second (%.1f%% of the cap); request line + headers %d..%d bytes; status sent_bytes %d, "
            "rate_limited_ms %d" % (cap_kbps, cap, len(reqs), total, duration, measured, span,
                                    100.0 * measured / cap, min(header), max(header), st["sent_bytes"],
                                    st["rate_limited_ms"]))
        check(abs(measured - cap) <= 0.15 * cap, "measured %.0f B/s against a cap of %d B/s" % (measured, cap))
        check(st["rate_limited_ms"] > 1000 and st["sent_bytes"] >= total * 0.9,
              "status: rate_limited_ms %d, sent_bytes %d (nginx %d)" % (st["rate_limited_ms"], st["sent_bytes"], total))
        check(abs(st["sent_bytes"] - total) <= 0.05 * total,
              "the bucket's count %d vs nginx's %d bytes" % (st["sent_bytes"], total))

        free, st2 = nginx_run(td, pki, "free", 0, count)
        free_total = sum(n for _, n, _ in free)
        free_dur = max(free[-1][0] - free[0][0], 0.001)
        log("without a cap: %d bytes in %.2f s, %.0f B/s (%.1f x the cap)" % (
            free_total, free_dur, free_total / free_dur, free_total / free_dur / cap))
        check(free_total / free_dur >= 3 * cap, "uncapped %.0f B/s is not much faster than %d" % (
            free_total / free_dur, cap))
        check(st2["rate_limited_ms"] == 0, "uncapped run waited %d ms" % st2["rate_limited_ms"])
    finally:
        td.cleanup()


def test_one_hour_outage():
    if not FAKETIME or os.environ.get("EL_EMULATOR") or "asan" in os.path.basename(
            os.path.normpath(os.environ.get("EL_BUILD_DIR", ""))).lower():
        log("SKIP test_one_hour_outage: needs libfaketime and an uninstrumented native build")
        return
    td = TempDir("sync-hour")
    step_s, steps, per_step, after = 300, 12, 250, 1500
    b = Broker(td.path).start()
    fs = LaneServer(os.path.join(td.path, "data", "master.db"), default=("status", 503, 1))
    fs.start()
    ft = os.path.join(td.path, "faketime")
    with open(ft, "w") as f:
        f.write("+0\n")
    d = Daemon(td.path, b, sync__url=fs.url, sync__format="ndjson", sync__compression="gzip",
               sync__device_id=DEVICE, sync__batch_events=200)
    d.env.update({"LD_PRELOAD": FAKETIME[0], "FAKETIME_TIMESTAMP_FILE": ft, "FAKETIME_NO_CACHE": "1",
                  "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    lg = None
    try:
        d.start()
        ts_base = int(time.time() * 1000) - 10 * (steps * per_step + after)
        total = 0
        # 250 events at fake +0, +300 .. +3000 s, +3450 s (150 s before the end:
        # inside the live window, the step before it well outside), then +3600 s
        offsets = [k * step_s for k in range(steps - 1)] + [3450, 3600]
        for k, offset in enumerate(offsets):
            with open(ft, "w") as f:
                f.write("+%ds\n" % offset)
            n = per_step if k < steps else 0
            if n:
                lg = loadgen_async(b, count=n, series=10, qos=1, ts_base=ts_base, start_index=total)
                out, err = lg.communicate(timeout=120 * SLOW)
                check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
                total += n
                wait_until(lambda: d.event_count() >= total, 60, "step %d committed" % k)
        # the status document is a snapshot (at most one a second): poll it
        st = wait_until(lambda: (lambda x: x if x["backlog_events"] == total and x["oldest_unsent_age_s"] >= 3600
                                 else None)(sync_status(d, b)), 30, "status to show the hour's backlog",
                        interval=0.2)
        log("outage: %d events over %d fake seconds; status backlog_events %d, oldest_unsent_age_s %d, "
            "acked_seq %d, %d requests refused" % (total, steps * step_s, st["backlog_events"],
                                                   st["oldest_unsent_age_s"], st["acked_seq"], len(fs.snapshot()[0])))
        check(st["acked_seq"] == 0, "shipped during the outage: %s" % st)
        con = d.db()
        try:
            lo, hi = con.execute("SELECT min(recv), max(recv) FROM events").fetchone()
        finally:
            con.close()
        check(hi - lo >= (steps - 1) * step_s * 1000, "receive times span only %.0f s" % ((hi - lo) / 1000))

        outage_reqs = len(fs.snapshot()[0])
        fs.set_script([], default="ok")
        lg = loadgen_async(b, count=after, series=10, qos=1, ts_base=ts_base, start_index=total, rate=200)
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        total += after
        wait_synced(d, total, 180)
        d.stop()

        reqs, _ = fs.snapshot()
        delivered = [r for r in reqs[outage_reqs:] if kind(r["action"]) == "ok"]
        live = [r for r in delivered if r["headers"].get("x-edgelambda-lane") == "live"]
        back = [r for r in delivered if r["headers"].get("x-edgelambda-lane") == "backlog"]
        check(live and back, "no live lane after an hour's outage")
        first_live = seq_range(live[0])[0]
        # the live lane starts with the +3450 s step (received within 300 s)
        check(first_live == (steps - 1) * per_step + 1,
              "the live lane started at seq %d, expected %d" % (first_live, (steps - 1) * per_step + 1))
        check(live[0]["t"] < max(r["t"] for r in back), "the live lane waited for the backlog")
        n = check_exactly_once(d, reqs)
        log("1 h outage (fake clock): %d events exactly once after dedup; %d backlog and %d live batches after "
            "it, the live lane from seq %d" % (n, len(back), len(live), first_live))
    except Exception:
        dump_diagnostics(fs, b, d)
        raise
    finally:
        teardown(lg, d, b, fs, td)


def lanes_conf(url, window):
    return ("[sync]\nurl = %s\nformat = ndjson\ncompression = none\ndevice_id = %s\nbatch_events = 50\n"
            "live_window_s = %d\nmax_kbps = 100\ntimeout_s = 10\n" % (url, DEVICE, window))


def test_second_outage_and_window_reload():
    td = TempDir("sync-outage2")
    count, rate = 2600, 50
    d = lg = None
    b = Broker(td.path).start()
    fs = LaneServer(os.path.join(td.path, "data", "master.db"), default=("status", 503, 1), hang_s=60)
    fs.start()
    conf = os.path.join(td.path, "edgelambda.conf")
    lane = lambda r: r["headers"].get("x-edgelambda-lane")  # noqa: E731
    try:
        d = Daemon(td.path, b)
        d.config_text = lanes_conf(fs.url, 3)
        d.start()
        lg = loadgen_async(b, count=count, series=20, qos=1, ts_base=int(time.time() * 1000) - count, rate=rate)
        wait_until(lambda: last_event_seq(d) >= 20 * rate, 60 * SLOW, "the first outage's backlog")
        fs.set_script([], default="ok")
        up1 = len(fs.snapshot()[0])

        def delivered(since):
            return [r for r in fs.snapshot()[0][since:] if kind(r["action"]) == "ok"]
        wait_until(lambda: any(lane(r) == "live" for r in delivered(up1)) and
                   lane(delivered(up1)[-1]) == "backlog", 30 * SLOW, "both lanes shipping")
        first_live = seq_range(next(r for r in delivered(up1) if lane(r) == "live"))[0]
        # the second outage, longer than the window, while both lanes exist
        fs.set_script([], default=("status", 503, 1))
        head = last_event_seq(d)
        wait_until(lambda: last_event_seq(d) >= head + 8 * rate, 30 * SLOW, "the second outage")
        check(live_state(d)[1] == first_live, "the live lane ended during the first catch-up: %s" % (live_state(d),))
        fs.set_script([], default="ok")
        up2 = len(fs.snapshot()[0])
        wait_until(lambda: len(delivered(up2)) >= 8, 30 * SLOW, "batches after the second outage")
        after = delivered(up2)[:8]
        # while the backlog lane still ships: strictly alternating (the stale live lane has no priority)
        while_two = []
        for r in after:
            if lane(r) == "backlog" and seq_range(r)[1] >= first_live - 1:
                break  # the backlog's last batch: the lanes merge after it
            while_two.append(lane(r))
        check(len(while_two) >= 6, "the backlog lane drained too early to judge: %s" % [lane(r) for r in after])
        doubled = [i for i in range(1, len(while_two)) if while_two[i] == while_two[i - 1] == "live"]
        check(not doubled, "after the second outage the live lane sent back-to-back batches: %s" % while_two)
        log("after a second outage of 8 s (window 3 s): %s" % while_two)

        # a live request hangs; live_window_s reloaded to 0 meanwhile
        check(live_state(d)[1] is not None, "the lanes merged before the reload: %s" % (live_state(d),))
        n0 = len(fs.snapshot()[0])
        fs.hang_lane = "live"
        hung = wait_until(lambda: next((i for i, r in enumerate(fs.snapshot()[0][n0:], n0)
                                        if kind(r["action"]) == "hang"), None), 30 * SLOW, "a hanging live request")
        line = reload(d, conf, lanes_conf(fs.url, 0))
        check("applied sync.live_window_s;" in line, "reload line: %s" % line)
        wait_until(lambda: len(fs.snapshot()[0]) > hung + 1, 30 * SLOW, "a request after the reload")
        reqs = fs.snapshot()[0]
        r, again = reqs[hung], reqs[hung + 1]
        check(again["headers"] == r["headers"] and again["events"] == r["events"] and again["raw_len"] == r["raw_len"],
              "after the reload the hung live batch was not resent first with the same headers: %s vs %s" % (
                  r["headers"], again["headers"]))

        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        wait_synced(d, count, 120 * SLOW)
        check(live_state(d)[1:] == (None, None), "live lane still open: %s" % (live_state(d),))
        d.stop()
        reqs, _ = fs.snapshot()
        labels = [lane(r) for r in reqs[hung + 1:] if kind(r["action"]) == "ok"]
        k = labels.index(None) if None in labels else len(labels)
        check(all(x in ("live", "backlog") for x in labels[:k]) and not any(labels[k:]),
              "labels after the reload: %s" % labels)
        n = check_exactly_once(d, reqs)
        log("live_window_s reloaded to 0 during a hung live batch: resent first with identical headers; %d "
            "labelled batches until the stored lane merged, %d single-lane ones after; %d events exactly once"
            % (k, len(labels) - k, n))
    except Exception:
        dump_diagnostics(fs, b, d)
        raise
    finally:
        teardown(lg, d, b, fs, td)


def test_lane_start_survives_power_cut():
    if not powercut_available() or "asan" in os.path.basename(
            os.path.normpath(os.environ.get("EL_BUILD_DIR", ""))).lower():
        log("SKIP test_lane_start_survives_power_cut: needs libel_powercut.so and an uninstrumented native build")
        return
    td = TempDir("sync-lane-cut")
    count = 1000
    d = lg = None
    b = Broker(td.path).start()
    fs = LaneServer(os.path.join(td.path, "data", "master.db"), default=("status", 503, 1))
    fs.start()
    try:
        d = Daemon(td.path, b, sync__url=fs.url, sync__format="ndjson", sync__compression="none",
                   sync__device_id=DEVICE, sync__batch_events=50, sync__live_window_s=5, sync__max_kbps=100)
        pc = PowerCut(d, td.path)
        d.start()
        lg = loadgen_async(b, count=count, series=10, qos=1, ts_base=int(time.time() * 1000) - count, rate=150)
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        wait_until(lambda: d.event_count() >= count, 30 * SLOW, "the outage's events committed")
        fs.set_script([], default="ok")
        up = len(fs.snapshot()[0])
        wait_until(lambda: any(kind(r["action"]) == "ok" and r["headers"].get("x-edgelambda-lane") == "live"
                               for r in fs.snapshot()[0][up:]), 30 * SLOW, "a live batch delivered")
        started = live_state(d)[1]
        check(started, "no live lane in sync_cursor")
        pc.cut()
        d.start()
        wait_synced(d, count, 120 * SLOW)
        d.stop()
        reqs, _ = fs.snapshot()
        keys = {}
        for r in reqs:
            if r["received"] and kind(r["action"]) == "ok":
                for e in r["events"]:
                    keys.setdefault(e["seq"], set()).add(r["headers"]["idempotency-key"])
        split = sorted(seq for seq, k in keys.items() if len(k) > 1)
        check(not split, "after the power cut %d seqs were sent again under another key (from seq %s): %s" % (
            len(split), split[:1], sorted(keys[split[0]]) if split else ""))
        n = check_exactly_once(d, reqs)
        log("power cut after the live lane started at seq %d and shipped: %d events exactly once, each seq under "
            "one Idempotency-Key" % (started, n))
    except Exception:
        dump_diagnostics(fs, b, d)
        raise
    finally:
        teardown(lg, d, b, fs, td)


if __name__ == "__main__":
    run([test_lanes_interleave_and_sigkill, test_max_kbps_against_nginx, test_one_hour_outage,
         test_second_outage_and_window_reload, test_lane_start_survives_power_cut])
