"""Bad input is kept, counted and never stops ingest (issue 2).

Each kind of bad input (non-JSON, JSON without the value, NaN/Inf, absurd
timestamps, oversized, series over speed.max_series, over-long series names)
lands in the dead_letters table with its reason, topic and bytes; the good
messages around them all land; status counts match the table.
"""
from harness import Broker, Daemon, TempDir, check, publish, run, wait_until

GOOD_TS = 1767225600000

BAD = [
    ("sensors/a/t", b"not json at all", "malformed"),
    ("sensors/a/t", b'{"value": 1', "malformed"),
    ("sensors/a/t", b"[1,2,3]", "malformed"),
    ("sensors/a/t", b"", "malformed"),
    ("sensors/b/t", b'{"temp": 21.5}', "no_value"),
    ("sensors/b/t", b'{"value": "warm"}', "non_numeric"),
    ("sensors/b/t", b"NaN", "non_finite"),
    ("sensors/b/t", b"-Infinity", "non_finite"),
    ("sensors/b/t", b'{"value": 1e999}', "non_finite"),
    ("sensors/c/t", b'{"value": 1, "ts": "yesterday"}', "bad_timestamp"),
    ("sensors/c/t", b'{"value": 1, "ts": 12}', "bad_timestamp"),
    ("sensors/c/t", b'{"value": 1, "ts": "1969-07-20T20:17:40Z"}', "bad_timestamp"),
    ("sensors/c/t", b'{"value": 1, "ts": 4102444800000}', "bad_timestamp"),
    ("sensors/c/t", b"9" * 1500, "oversized"),
    ("sensors/d/t", b"1.5", "series_limit"),
    ("sensors/" + "x" * 300, b"2.5", "name_too_long"),
]


def test_each_bad_input_is_kept_with_its_reason():
    td = TempDir("dead")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, speed__max_series=3, ingest__max_payload=1024).start()
    try:
        good = []
        n = 0
        for topic, payload, reason in BAD:
            for series in ("sensors/a/t", "sensors/b/t", "sensors/c/t"):
                v = n * 0.25
                publish(b, series, '{"value":%s,"ts":%d}' % (v, GOOD_TS + n))
                good.append((series, GOOD_TS + n, v))
                n += 1
            publish(b, topic, payload)
        wait_until(lambda: d.event_count() >= len(good), 60, "good events")
        con = d.db()

        def dl_count():
            return con.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        wait_until(lambda: dl_count() >= len(BAD), 30, "dead letters")
        dls = con.execute("SELECT topic, payload, payload_bytes, reason, recv FROM dead_letters"
                          " ORDER BY seq").fetchall()
        check(len(dls) == len(BAD), "expected %d dead letters, got %d" % (len(BAD), len(dls)))
        for (topic, payload, reason), (t, p, pb, r, recv) in zip(BAD, dls):
            check(r == reason, "%r on %s: reason %s, expected %s" % (payload[:40], topic[:40], r, reason))
            check(t == topic, "dead letter topic %s, expected %s" % (t[:40], topic[:40]))
            check(pb == len(payload), "payload_bytes %d, expected %d" % (pb, len(payload)))
            if reason == "oversized":
                check(p == payload[:1024], "oversized payload not kept (cut to max_payload)")
            else:
                check(bytes(p or b"") == payload, "dead letter bytes differ for %s" % reason)
            check(recv > 1700000000000, "receive time missing")
        rows = con.execute("SELECT s.name, e.ts, e.value FROM events e JOIN series s ON s.id=e.series"
                           " ORDER BY e.seq").fetchall()
        check(rows == good, "the good messages around the bad ones differ")
        con.close()
        want = {}
        for _, _, reason in BAD:
            want[reason] = want.get(reason, 0) + 1

        def counts_match(st):
            rej = st["ingest"]["rejected"]
            return all(rej.get(k, 0) == v for k, v in want.items()) and \
                st["ingest"]["dead_letters"] == len(BAD) and st["ingest"]["accepted"] == len(good)
        d.status(pred=counts_match)
        check(d.alive(), "daemon died")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_each_bad_input_is_kept_with_its_reason])
