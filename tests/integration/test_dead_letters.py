"""Bad input is kept, counted and never stops ingest (issue 2).

Each kind of bad input (non-JSON, JSON without the value, NaN/Inf, absurd
timestamps, oversized, series over speed.max_series, over-long series names)
lands in the dead_letters table with its reason, topic and bytes; the good
messages around them all land; status counts match the table.
"""
import json
import subprocess
import time

from harness import CLI, Broker, Daemon, TempDir, check, publish, rr, run, wait_until

GOOD_TS = 1767225600000

BAD = [
    ("sensors/a/t", b"not json at all", "malformed"),
    ("sensors/a/t", b'{"value": 1', "malformed"),
    ("sensors/a/t", b"[1,2,", "malformed"),  # (a whole array is a batch of readings)
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
        # `edgelambda status` puts problems first: here, the dead letters by reason
        r = subprocess.run([CLI, "--uri", b.uri, "status"], capture_output=True, text=True, timeout=60)
        first = r.stdout.splitlines()[0] if r.stdout else ""
        check(r.returncode == 0 and first.startswith("! %d dead letters (" % len(BAD)) and
              "malformed %d" % want["malformed"] in first and "\ningest " in r.stdout,
              "status summary: %s %s" % (r.stdout, r.stderr))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


LISTED = [
    ("sensors/x/t", b"not json", "malformed"),
    ("sensors/y/t", b'{"temp": 1}', "no_value"),
    ("sensors/x/t", b"\xff\xfe\x00binary", "malformed"),
    ("plant/z/t", b"{", "malformed"),
]


def test_dead_letters_listed_over_mqtt():
    """{"op":"deadletters"} and `edgelambda deadletters`: newest first, filtered by
    reason, topic filter and time, payloads as text or hex, bounded by n."""
    td = TempDir("dead-list")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="sensors/#,plant/#").start()
    try:
        for topic, payload, _ in LISTED:
            publish(b, topic, payload)
        con = d.db()
        wait_until(lambda: con.execute("SELECT count(*) FROM dead_letters").fetchone()[0] >= len(LISTED),
                   30, "dead letters")
        seqs = [r[0] for r in con.execute("SELECT seq FROM dead_letters ORDER BY seq DESC")]
        con.close()
        ans = rr(b, '{"op":"deadletters"}')
        got = ans["dead_letters"]
        check(ans["ok"] and [x["seq"] for x in got] == seqs, "listing: %s" % ans)
        for x, (topic, payload, reason) in zip(got, reversed(LISTED)):
            check(x["topic"] == topic and x["reason"] == reason and x["payload_bytes"] == len(payload),
                  "entry %s for %r" % (x, payload))
            try:
                text = payload.decode("utf-8")
                check(x.get("payload") == text, "payload text %s" % x)
            except UnicodeDecodeError:
                check(x.get("payload_hex") == payload.hex() and "payload" not in x, "payload hex %s" % x)
        only = rr(b, '{"op":"deadletters","reason":"malformed","match":"sensors/#"}')["dead_letters"]
        check([x["seq"] for x in only] == [seqs[1], seqs[3]], "filtered: %s" % only)
        check(len(rr(b, '{"op":"deadletters","n":1}')["dead_letters"]) == 1, "n = 1")
        check(rr(b, '{"op":"deadletters","since":"now"}')["dead_letters"] == [], "since now")
        bad = rr(b, '{"op":"deadletters","n":0}')
        check(not bad["ok"] and bad["error"]["code"] == "bad_request", "n = 0: %s" % bad)
        out = subprocess.run([CLI, "--uri", b.uri, "deadletters", "--reason", "malformed"],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0 and "3 dead letters" in out.stdout and "hex:fffe00" in out.stdout
              and "plant/z/t" in out.stdout and "no_value" not in out.stdout, "CLI: %s %s" % (out.stdout, out.stderr))
        js = subprocess.run([CLI, "--uri", b.uri, "deadletters", "-n", "2", "--json"],
                            capture_output=True, text=True, timeout=30)
        check(js.returncode == 0 and len(json.loads(js.stdout)["dead_letters"]) == 2, "CLI --json: %s" % js.stdout)
        # --since as epoch ms goes as a JSON number, anything else as text.
        hour_ago = str(int(time.time() * 1000) - 3600000)
        for since, want in ((hour_ago, seqs), ("-1h", seqs), ("now", [])):
            js = subprocess.run([CLI, "--uri", b.uri, "deadletters", "--since", since, "--json"],
                                capture_output=True, text=True, timeout=30)
            got = [x["seq"] for x in json.loads(js.stdout)["dead_letters"]] if js.returncode == 0 else None
            check(got == want, "CLI --since %s: %s %s" % (since, js.stdout, js.stderr))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_each_bad_input_is_kept_with_its_reason, test_dead_letters_listed_over_mqtt])
