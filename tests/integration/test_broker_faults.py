"""Broker faults (issue 7): a broker restart, a broker frozen (SIGSTOP) for
longer than the keepalive, and a broker whose queue overflows while the
daemon is down. Reconnect and re-subscribe work, the broker's own drop count
($SYS) shows in status, and nothing the broker delivered is lost."""
import os
import signal
import time

from harness import (Broker, Daemon, TempDir, check, lg_value, loadgen, run, wait_until)

TS = 1767225600000


def stored_indexes(d):
    con = d.db()
    rows = [r[0] - TS for r in con.execute("SELECT ts FROM events")]
    con.close()
    return rows


def test_restart_and_freeze():
    td = TempDir("broker")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, mqtt__keepalive_s=5).start()
    try:
        loadgen(b, count=1000, series=10, ts_base=TS)
        wait_until(lambda: d.event_count() == 1000, 30, "first events")
        # 1. Restart (persistence off: the broker forgets the session; we re-subscribe).
        b.stop()
        b.start()
        d.status(pred=lambda st: st.get("mqtt", {}).get("connected") and st["mqtt"]["connects"] >= 2, timeout=60)
        wait_until(lambda: d.log_text().count("subscribed to") >= 2, 30, "re-subscription")
        loadgen(b, count=1000, series=10, ts_base=TS, start_index=1000)
        wait_until(lambda: d.event_count() == 2000, 30, "events after the restart")
        # 2. Freeze the broker for longer than 1.5 x keepalive.
        lost = d.log_text().count("connection to the broker lost")
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: d.log_text().count("connection to the broker lost") > lost, 30,
                       "the daemon to notice the frozen broker")
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        d.status(pred=lambda st: st.get("mqtt", {}).get("connected") and st["mqtt"]["connects"] >= 3, timeout=60)
        loadgen(b, count=1000, series=10, ts_base=TS, start_index=2000)
        wait_until(lambda: d.event_count() == 3000, 30, "events after the freeze")
        got = sorted(stored_indexes(d))
        check(got == list(range(3000)), "events lost or doubled across broker faults")
        check(d.alive(), "daemon died")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_queue_overflow_is_reported():
    td = TempDir("overflow")
    b = Broker(td.path, extra="").start()
    # Re-write the broker config with a small per-client queue, as a careless setup would have.
    b.stop()
    with open(b.conf) as f:
        conf = f.read().replace("max_queued_messages 0", "max_queued_messages 100")
    with open(b.conf, "w") as f:
        f.write(conf)
    b.start()
    d = Daemon(td.path, b).start()
    try:
        d.stop()  # its persistent session stays: the broker queues for it, up to 100
        loadgen(b, count=1000, series=5, ts_base=TS)
        d.start()
        st = d.status(pred=lambda st: (st.get("mqtt", {}).get("broker_dropped") or 0) >= 900, timeout=30)
        wait_until(lambda: d.event_count() >= 100, 30, "queued events")
        got = stored_indexes(d)
        check(len(got) == len(set(got)) and 100 <= len(got) < 1000,
              "expected what the broker kept (~100), got %d" % len(got))
        con = d.db()
        for ts, v in con.execute("SELECT ts, value FROM events"):
            check(v == lg_value(ts - TS), "value altered")
        con.close()
        check(st["mqtt"]["broker_dropped"] >= 900, "status: %s" % st["mqtt"])
        check("broker dropped" in d.log_text(), "no warning logged about broker drops")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_restart_and_freeze, test_queue_overflow_is_reported])
