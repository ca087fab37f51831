"""Crash safety under load (issue 11): kill -9 while the broker has far more
messages in flight to us than our Receive Maximum; every message the broker
acknowledged to the publisher must be stored exactly once.

Why this needs its own test: mosquitto 2.0.11 does not bound what it has in
flight to a client by the client's Receive Maximum (mqtt.max_inflight) nor by
its own max_inflight_messages once messages are queued for that client, and
PUBACKs we wrote that the broker had not read yet are lost with the
connection. So after a kill -9 the broker redelivers (DUP) thousands of
messages we had journaled; ingest recognises them by packet id
(firmware/ingest.h, "Duplicates"). Checked two ways, each with the broker at
max_inflight_messages 0 (unlimited) and at a small value:

- frozen broker: a backlog is queued while the daemon is down; once it
  drains, the broker is stopped (SIGSTOP) while the daemon journals what is
  already in its socket, acknowledging into a broker that reads nothing; then
  kill -9. Every one of those messages comes back as a redelivery.
- CPU load: a busy process per core (started and stopped here, each ends by
  itself after 15 minutes at most) beside publisher, broker and daemon, the
  broker at nice 19 so that it falls behind reading our PUBACKs (without
  that, this machine rarely showed the problem); EL_CRASH_KILLS kill -9s at
  random moments, half of them after 1-3 s of ingest (default 8 per broker
  setting; by hand EL_CRASH_KILLS=100, and EL_CRASH_HOGS=0 for no load).

Serial (the _serial suffix makes ctest run nothing beside it): the busy
processes would slow every other test, and other tests would blur the load.

The ledger: loadgen --acked-file lists what the broker acknowledged to the
publisher; --ts-base makes an event's ts - TS_BASE its message index.
"""
import os
import random
import signal
import subprocess
import sys
import time

from harness import (SLOW, Broker, Daemon, Ledger, TempDir, check, loadgen, loadgen_async, log,
                     run, wait_until)

TS_BASE = 1767225600000
KILLS = int(os.environ.get("EL_CRASH_KILLS", "8"))
HOGS = int(os.environ.get("EL_CRASH_HOGS", str(os.cpu_count() or 1)))  # 0: no load (comparison)
SMALL_INFLIGHT = 10  # broker max_inflight_messages below our Receive Maximum (100)


def verify(d, acked_file, count, what):
    wait_until(lambda: d.event_count() >= count, 120, "all acknowledged events")
    time.sleep(0.5)  # a straggling redelivery would show up as a duplicate
    d.stop()
    g = Ledger(d, acked_file, TS_BASE)
    log("%s: %d acked, %d stored, %d lost, %d doubled, integrity %s" % (
        what, len(g.acked), len(g.stored), len(g.missing), g.dupes, g.integrity))
    check(len(g.acked) == count, "broker acknowledged %d of %d" % (len(g.acked), count))
    check(g.integrity == "ok", "integrity_check: %s" % g.integrity)
    check(not g.missing, "%d acknowledged messages lost, e.g. %s" % (len(g.missing), sorted(g.missing)[:10]))
    check(g.dupes == 0, "%d messages stored twice" % g.dupes)
    return g


def frozen_broker(inflight):
    td = TempDir("crash-frozen")
    b = Broker(td.path, extra="max_inflight_messages %d\n" % inflight)
    d = Daemon(td.path, b)
    acked = os.path.join(td.path, "acked.txt")
    count = 60000
    stopped = False
    try:
        b.start()
        d.start()
        d.kill()  # the session stays: the broker queues the backlog
        loadgen(b, count=count, series=100, qos=1, ts_base=TS_BASE, acked_file=acked)
        d.start(wait_subscribed=False)
        wait_until(lambda: d.event_count() > 2000, 60, "ingest to begin")
        os.kill(b.proc.pid, signal.SIGSTOP)
        stopped = True
        before = d.event_count()
        # The daemon journals what its socket already holds, acknowledging into
        # a broker that reads nothing: wait until it has drained (bounded).
        last, deadline = -1, time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = d.event_count()
            if now == last:
                break
            last = now
        during = d.event_count() - before
        d.kill()
        os.kill(b.proc.pid, signal.SIGCONT)
        stopped = False
        d.start()
        verify(d, acked, count, "frozen broker, max_inflight_messages %d: %d committed while it "
               "was frozen" % (inflight, during))
        restart = d.log_text()[d.log_mark:]
        check("packet-id table" not in restart,
              "the packet-id table was not trusted after the kill:\n%s" % restart[-2000:])
    finally:
        if stopped:
            os.kill(b.proc.pid, signal.SIGCONT)
        d.kill()
        b.stop()
        td.cleanup()


def start_hogs():
    """HOGS busy processes (one per core); each ends by itself after 15 minutes at most."""
    code = "import time\nend = time.monotonic() + 900\nwhile time.monotonic() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(HOGS)]


def stop_hogs(hogs):
    for h in hogs:
        h.kill()
    for h in hogs:
        h.wait()


def kills_under_load(inflight, kills, seed):
    rng = random.Random(seed)
    td = TempDir("crash-load")
    b = Broker(td.path, extra="max_inflight_messages %d\n" % inflight)
    d = Daemon(td.path, b)
    acked = os.path.join(td.path, "acked.txt")
    count = 5000 * kills
    hogs, lg = [], None
    try:
        b.start()
        os.setpriority(os.PRIO_PROCESS, b.proc.pid, 19)
        d.start()
        hogs = start_hogs()
        lg = loadgen_async(b, count=count, series=100, qos=1, ts_base=TS_BASE, acked_file=acked,
                           rate=8000)
        for _ in range(kills):
            # A random moment: often soon after start (replay, redelivery), else
            # after 1-3 s, long enough for a large backlog in flight.
            time.sleep(rng.uniform(0.05, 0.8) if rng.random() < 0.5 else rng.uniform(1.0, 3.0))
            d.kill()
            time.sleep(rng.uniform(0.0, 0.3))  # stay down a little: the broker queues meanwhile
            d.start(wait_subscribed=rng.random() < 0.5)
        out, err = lg.communicate(timeout=300 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        stop_hogs(hogs)
        hogs = []
        text = d.log_text()
        verify(d, acked, count, "%d kills, %d busy processes, broker at nice 19, "
               "max_inflight_messages %d; restarts that dropped redeliveries: %d"
               % (kills, HOGS, inflight, text.count("redelivered duplicate")))
    finally:
        stop_hogs(hogs)
        if lg and lg.poll() is None:
            lg.kill()
            lg.wait()
        d.kill()
        b.stop()
        td.cleanup()


def test_frozen_broker_unlimited_inflight():
    frozen_broker(0)


def test_frozen_broker_small_inflight():
    frozen_broker(SMALL_INFLIGHT)


def test_kills_under_load_unlimited_inflight():
    kills_under_load(0, KILLS, int(os.environ.get("EL_SEED", "11")))


def test_kills_under_load_small_inflight():
    kills_under_load(SMALL_INFLIGHT, KILLS, int(os.environ.get("EL_SEED", "12")))


if __name__ == "__main__":
    run([test_frozen_broker_unlimited_inflight, test_frozen_broker_small_inflight,
         test_kills_under_load_unlimited_inflight, test_kills_under_load_small_inflight])
