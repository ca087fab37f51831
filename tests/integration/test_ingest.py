"""Ingest end to end: loadgen -> real mosquitto -> edgelambdad -> SQLite master log.

Must show (issue 2): 100,000 QoS 1 messages over 100 series become exactly
100,000 events with values and timestamps as published and sequence numbers
in publish order; messages published while the daemon is stopped arrive
after it restarts; a clean stop says "offline" and a start says "online".
"""
from harness import (Broker, Daemon, TempDir, check, lg_topic, lg_value, loadgen, run, wait_until)

TS_BASE = 1767225600000  # 2026-01-01T00:00:00Z


def verify_rows(d, expected_indexes, series, ts_base=TS_BASE, ordered=True):
    con = d.db()
    rows = con.execute("SELECT e.seq, s.name, e.ts, e.value, e.flags, e.payload FROM events e"
                       " JOIN series s ON s.id = e.series ORDER BY e.seq").fetchall()
    con.close()
    check(len(rows) == len(expected_indexes), "expected %d events, found %d" % (len(expected_indexes), len(rows)))
    seen = []
    last_seq = 0
    for seq, name, ts, value, flags, payload in rows:
        i = ts - ts_base
        check(seq > last_seq, "sequence not strictly increasing at %d" % seq)
        last_seq = seq
        check(name == lg_topic(i, series), "event %d: series %s, expected %s" % (seq, name, lg_topic(i, series)))
        check(value == lg_value(i), "event %d: value %r, expected %r" % (seq, value, lg_value(i)))
        check(payload == ('{"value":%.2f,"ts":%d}' % (lg_value(i), ts)).encode(),
              "event %d: raw payload %r not as published" % (seq, payload))
        check(flags & 0x2, "event %d: has_ts flag missing" % seq)
        seen.append(i)
    check(sorted(seen) == sorted(expected_indexes), "the set of stored messages differs from the published set")
    if ordered:
        check(seen == sorted(seen), "events are not in publish order")


def test_100k_qos1_exact():
    td = TempDir("ingest")
    b = Broker(td.path).start()
    d = Daemon(td.path, b).start()
    try:
        s = loadgen(b, count=100000, series=100, qos=1, ts_base=TS_BASE)
        check(int(s["acked"]) == 100000, "broker acknowledged %s of 100000" % s["acked"])
        wait_until(lambda: d.event_count() >= 100000, 120, "100,000 events in the master log")
        st = d.status(pred=lambda st: st["ingest"]["accepted"] == 100000)
        check(st["ingest"]["dead_letters"] == 0, "unexpected dead letters: %s" % st["ingest"])
        check(st["log"]["seq"] == 100000, "log.seq %s" % st["log"]["seq"])
        check(st["speed"]["series"] == 100, "series %s" % st["speed"]["series"])
        check(st["state"] == "online" and st["clock_synced"] is True, "status: %s" % st)
        verify_rows(d, list(range(100000)), 100)
        d.stop()
        check(d.query1("PRAGMA integrity_check") == "ok", "integrity_check failed")
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_published_while_stopped_arrive_after_restart():
    td = TempDir("restart")
    b = Broker(td.path).start()
    d = Daemon(td.path, b).start()
    try:
        loadgen(b, count=2000, series=10, qos=1, ts_base=TS_BASE)
        wait_until(lambda: d.event_count() == 2000, 60, "first 2000 events")
        d.stop()
        st = d.status(pred=lambda st: st.get("state") == "offline")
        check(st == {"state": "offline"}, "offline status: %s" % st)
        # The daemon is down; its persistent session makes the broker queue these.
        loadgen(b, count=5000, series=10, qos=1, ts_base=TS_BASE, start_index=2000)
        d.start()
        wait_until(lambda: d.event_count() >= 7000, 60, "messages queued while stopped")
        d.status(pred=lambda st: st.get("state") == "online" and st["ingest"]["accepted"] == 5000)
        verify_rows(d, list(range(7000)), 10)
        # A second clean restart with nothing pending changes nothing.
        d.stop()
        d.start()
        check(d.event_count() == 7000, "events changed across an idle restart")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_qos0_and_qos2_subscriptions():
    for qos in (0, 2):
        td = TempDir("qos%d" % qos)
        b = Broker(td.path).start()
        d = Daemon(td.path, b, ingest__qos=qos).start()
        try:
            loadgen(b, count=3000, series=7, qos=qos, ts_base=TS_BASE, rate=3000)
            wait_until(lambda: d.event_count() >= 3000, 60, "3000 events at QoS %d" % qos)
            verify_rows(d, list(range(3000)), 7)
            d.stop()
        finally:
            d.kill()
            b.stop()
            td.cleanup()


if __name__ == "__main__":
    run([test_100k_qos1_exact, test_published_while_stopped_arrive_after_restart,
         test_qos0_and_qos2_subscriptions])
