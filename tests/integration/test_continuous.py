"""Continuous queries and watches (issue 14).

A [continuous "temps"] section over a match publishes, when a bucket closes,
one message per series whose buckets equal the ordinary range query's answer
for that bucket, exactly; late data republishes it as a correction
(revision 1) with the new exact values; over continuous.max_msgs_per_s
messages are dropped and counted while every reading is still stored; a
watch ({"op":"watch"}) gets its buckets until it expires, then nothing;
too many watches get an error; a bad section key is a config error naming
key and line. Real mosquitto, real daemon, real SQLite.
"""
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import mqttraw
from harness import (DAEMON, SLOW, Broker, Daemon, TempDir, check, log, publish_lines, rr, run,
                     values, wait_until)

AGGS = ["count", "sum", "min", "max", "mean", "last", "p50"]
CQ = """
[continuous "temps"]
match = sensors/+/temp
step = 1s
grace = %s
agg = count, sum, min, max, mean, last, p50
"""


@contextlib.contextmanager
def tempdir():
    td = TempDir("cq")
    try:
        yield td.path
    finally:
        td.cleanup()


class Collector:
    """Every message on a topic filter, from a raw MQTT v5 client in a thread."""

    def __init__(self, broker, topic_filter):
        self.client = mqttraw.Client(broker.port, client_id="col-" + uuid.uuid4().hex[:8])
        self.client.subscribe(topic_filter, qos=1)
        self.msgs = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            for topic, payload, props in self.client.messages(0.2):
                with self.lock:
                    self.msgs.append((topic, json.loads(payload.decode()), props))
                if self.stop:
                    break

    def snapshot(self):
        with self.lock:
            return list(self.msgs)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.client.close()


def future_bucket(lead_s):
    """The start (ms) of a 1 s bucket at least lead_s seconds ahead."""
    return (int(time.time() * 1000) // 1000 + int(lead_s) + 1) * 1000


def readings(t0, n, base):
    return [json.dumps({"value": base + i * 0.25, "ts": t0 + 50 * i}) for i in range(n)]


def bucket_answer(broker, series, t):
    a = rr(broker, json.dumps({"series": series, "from": t, "to": t + 1000, "step": 1000,
                               "agg": AGGS}))
    check(a.get("ok"), "range answer: %s" % a)
    return a


def status(broker):
    s = rr(broker, '{"op":"status"}')
    check(s.get("ok"), "status: %s" % s)
    return s


def by_key(msgs, t):
    """{series: [message, ...]} of the continuous messages of bucket t."""
    out = {}
    for _, m, _ in msgs:
        if "cq" in m and m["buckets"] and m["buckets"][0]["t"] == t:
            out.setdefault(m["series"], []).append(m)
    return out


def test_closed_buckets_and_correction():
    series = ["sensors/r%d/temp" % i for i in range(3)]
    with tempdir() as d:
        b = Broker(d).start()
        dm = Daemon(d, b)
        dm.config_text = CQ % ("%ds" % int(3 * SLOW))
        dm.start()
        col = Collector(b, "edgelambda/continuous/#")
        try:
            t0 = future_bucket(3 * SLOW)
            counts = {}
            for i, s in enumerate(series):
                publish_lines(b, s, readings(t0, 5 + i, 10 * i))  # QoS 1, committed at ack
                publish_lines(b, s, readings(t0 + 1000, 3, 100 + i))
                counts[s] = (5 + i, 3)
            check(int(time.time() * 1000) < t0 + 1000 + 3000 * SLOW,
                  "the readings were published before the buckets closed")

            def closed():
                m = col.snapshot()
                return all(len(by_key(m, t).get(s, [])) >= 1 for s in series for t in (t0, t0 + 1000))
            wait_until(closed, 30 * SLOW, "one message per series per closed bucket")
            for t, k in ((t0, 0), (t0 + 1000, 1)):
                got = by_key(col.snapshot(), t)
                for s in series:
                    msg = got[s][0]
                    check(len(got[s]) == 1, "exactly one message for %s at %d: %s" % (s, t, got[s]))
                    ans = bucket_answer(b, s, t)
                    check(msg["cq"] == "temps" and msg["revision"] == 0 and not msg.get("correction"),
                          "a first message: %s" % msg)
                    check(msg["step_ms"] == 1000 and msg["seq"] >= 1, "range shape: %s" % msg)
                    check(values(msg["buckets"]) == values(ans["buckets"]),
                          "%s at %d: continuous %s != range %s" % (s, t, msg["buckets"], ans["buckets"]))
                    check(msg["buckets"][0]["count"] == counts[s][k], "exact count %s" % msg)
                    extra = set(msg) - set(ans) - {"cq", "revision"}
                    check(not extra, "only cq and revision added to the range shape: %s" % extra)
            log("closed buckets: %d messages equal the range answers" % (2 * len(series)))

            # late data into a published bucket: a correction, revision 1, exact new values
            s = series[0]
            publish_lines(b, s, [json.dumps({"value": 1000.5, "ts": t0 + 999})])
            wait_until(lambda: len(by_key(col.snapshot(), t0).get(s, [])) >= 2, 20 * SLOW,
                       "a correction of the late bucket")
            corr = by_key(col.snapshot(), t0)[s][1]
            ans = bucket_answer(b, s, t0)
            check(corr["revision"] == 1 and corr["correction"] is True, "correction: %s" % corr)
            check(corr["changed"]["events"] == 1 and
                  corr["changed"]["after_seq"] == by_key(col.snapshot(), t0)[s][0]["seq"],
                  "what changed: %s" % corr["changed"])
            check(values(corr["buckets"]) == values(ans["buckets"]), "corrected values %s != %s" %
                  (corr["buckets"], ans["buckets"]))
            check(corr["buckets"][0]["count"] == counts[s][0] + 1 and corr["buckets"][0]["max"] == 1000.5,
                  "new exact values: %s" % corr["buckets"])
            # nothing else was sent for these buckets
            st = status(b)["continuous"]
            got = col.snapshot()
            n = sum(len(v) for t in (t0, t0 + 1000) for v in by_key(got, t).values())
            check(n == 2 * len(series) + 1, "messages: %d" % n)
            check(st["queries"] == 1 and st["published"] >= 7 and st["corrections"] == 1 and
                  st["dropped"] == 0, "status: %s" % st)
            log("late reading: correction revision 1, count %d -> %d" %
                (counts[s][0], corr["buckets"][0]["count"]))
        finally:
            col.close()
            dm.stop()
            b.stop()


def test_readings_before_the_first_tick():
    """The serving thread scheduled late (a loaded board; here a fault
    injection holds it 4 s): readings stored before its first tick still make
    their bucket's message. The tail starts where the log ended when the
    daemon started, not where it ends at the first tick."""
    late_ms = int(4000 * SLOW)
    s = "sensors/early/temp"
    with tempdir() as d:
        b = Broker(d).start()
        dm = Daemon(d, b)
        dm.env["EDGELAMBDA_FAULT_SERVING_START_MS"] = str(late_ms)
        dm.config_text = CQ % "1s"
        started = time.monotonic()
        dm.start()
        col = Collector(b, "edgelambda/continuous/#")
        try:
            t0 = future_bucket(0)
            publish_lines(b, s, readings(t0, 4, 1.0))
            wait_until(lambda: dm.query1("SELECT count(*) FROM events") == 4, 10, "4 readings stored")
            stored_ms = int((time.monotonic() - started) * 1000)
            check(stored_ms < late_ms, "the readings were stored before the serving thread's first tick")
            wait_until(lambda: by_key(col.snapshot(), t0).get(s), 30 * SLOW,
                       "the message of the bucket stored before the first tick")
            msg = by_key(col.snapshot(), t0)[s][0]
            check(msg["buckets"][0]["count"] == 4 and msg["revision"] == 0, "message: %s" % msg)
            log("stored %d ms before the serving thread's first tick: published, count 4" %
                (late_ms - stored_ms))
        finally:
            col.close()
            dm.stop()
            b.stop()


def test_rate_limit_drops_never_stalls_ingest():
    n_series, per = 30, 4
    series = ["sensors/f%02d/temp" % i for i in range(n_series)]
    with tempdir() as d:
        b = Broker(d).start()
        dm = Daemon(d, b, continuous__max_msgs_per_s=3)
        dm.config_text = CQ % ("%ds" % int(4 * SLOW))
        dm.start()
        try:
            t0 = future_bucket(4 * SLOW)
            for i, s in enumerate(series):
                publish_lines(b, s, readings(t0, per, i))
            wait_until(lambda: status(b)["continuous"]["published"] +
                       status(b)["continuous"]["dropped"] >= n_series, 30 * SLOW,
                       "every series' bucket published or dropped")
            # ingest went on: more readings while messages are dropped, all stored
            for i, s in enumerate(series):
                publish_lines(b, s, readings(t0 + 1000, 2, i))
            total = n_series * (per + 2)
            wait_until(lambda: dm.query1("SELECT count(*) FROM events") == total, 30 * SLOW,
                       "all %d readings stored" % total)
            # every bucket of every series ends counted: published or dropped, nothing else
            wait_until(lambda: status(b)["continuous"]["published"] +
                       status(b)["continuous"]["dropped"] >= 2 * n_series, 30 * SLOW,
                       "the second buckets published or dropped")
            st = status(b)["continuous"]
            check(st["published"] + st["dropped"] == 2 * n_series and st["errors"] == 0 and
                  st["unsent"] == 0 and st["cells_full"] == 0, "accounted: %s" % st)
            check(st["dropped"] >= n_series - 3 * 3, "dropped over the limit: %s" % st)
            check(st["published"] >= 3, "some published: %s" % st)
            check("over continuous.max_msgs_per_s" in dm.log_text(), "the drop is logged")
            check(dm.log_text().count("over continuous.max_msgs_per_s") <= 3, "logged rarely")
            log("rate limit 3/s: %d published, %d dropped, %d readings stored" %
                (st["published"], st["dropped"], total))
        finally:
            dm.stop()
            b.stop()


def watch(client, reply, body, corr=b"w1"):
    client.publish("edgelambda/query", json.dumps(body), qos=1, response_topic=reply,
                   correlation=corr)


def test_watch_until_expiry_and_bound():
    s = "sensors/w1/temp"
    with tempdir() as d:
        b = Broker(d).start()
        dm = Daemon(d, b, continuous__max_watches=2)
        dm.start()
        reply = "test/watch/%s" % uuid.uuid4().hex
        col = Collector(b, reply)
        pub = mqttraw.Client(b.port, client_id="pub-" + uuid.uuid4().hex[:8])
        try:
            expires = int(10 * SLOW)
            watch(pub, reply, {"op": "watch", "series": s, "step": "1s", "agg": AGGS,
                               "expires_s": expires, "id": "a"})
            wait_until(lambda: any(m.get("op") == "watch" for _, m, _ in col.snapshot()), 10 * SLOW,
                       "the watch's reply")
            ok = [m for _, m, _ in col.snapshot() if m.get("op") == "watch"][0]
            check(ok["ok"] and ok["id"] == "a" and ok["watch"] >= 1 and not ok["renewed"], "reply %s" % ok)
            t0 = future_bucket(1)
            publish_lines(b, s, readings(t0, 4, 1))

            def got_bucket():
                return [m for _, m, _ in col.snapshot() if m.get("watch") == ok["watch"] and
                        m.get("buckets") and m["buckets"][0]["t"] == t0]
            wait_until(got_bucket, 15 * SLOW, "the watched bucket")
            msg = got_bucket()[0]
            ans = bucket_answer(b, s, t0)
            check(msg["revision"] == 0 and msg["id"] == "a" and msg["series"] == s, "watch msg %s" % msg)
            check(values(msg["buckets"]) == values(ans["buckets"]), "watch %s != range %s" %
                  (msg["buckets"], ans["buckets"]))
            # the same watch again renews it: the same number, a later expiry
            watch(pub, reply, {"op": "watch", "series": s, "step": "1s", "agg": AGGS,
                               "expires_s": expires, "id": "a"})
            wait_until(lambda: any(m.get("op") == "watch" and m.get("renewed") for _, m, _ in col.snapshot()),
                       10 * SLOW, "the renewal's reply")
            again = [m for _, m, _ in col.snapshot() if m.get("op") == "watch" and m.get("renewed")][0]
            check(again["watch"] == ok["watch"] and again["expires"] >= ok["expires"], "renewed %s" % again)
            # "open": the open bucket's partial answer, live
            s2 = "sensors/w2/temp"
            watch(pub, reply, {"op": "watch", "series": s2, "step": "1m", "id": "b", "expires_s": 60,
                               "open": True, "agg": ["count", "last"]})
            wait_until(lambda: any(m.get("id") == "b" and m.get("op") == "watch" for _, m, _ in col.snapshot()),
                       10 * SLOW, "the open watch's reply")
            publish_lines(b, s2, ['{"value": 7.5}'])  # event time: now, in the open minute
            wait_until(lambda: [m for _, m, _ in col.snapshot() if m.get("id") == "b" and m.get("open")],
                       10 * SLOW, "an open bucket's partial message")
            part = [m for _, m, _ in col.snapshot() if m.get("id") == "b" and m.get("open")][0]
            t2 = part["buckets"][0]["t"]
            ans = rr(b, json.dumps({"series": s2, "from": t2, "to": t2 + 60000, "step": 60000,
                                    "agg": ["count", "last"]}))
            check(values(part["buckets"]) == values(ans["buckets"]) == [{"t": t2, "count": 1, "last": 7.5}],
                  "partial %s, range %s" % (part["buckets"], ans["buckets"]))
            # too many watches: a third one is refused with a clear error
            watch(pub, reply, {"op": "watch", "series": s, "id": "c", "expires_s": 60})
            wait_until(lambda: any(m.get("id") == "c" for _, m, _ in col.snapshot()), 10 * SLOW,
                       "the third watch's reply")
            err = [m for _, m, _ in col.snapshot() if m.get("id") == "c"][0]
            check(not err["ok"] and err["error"]["code"] == "busy" and
                  "continuous.max_watches" in err["error"]["message"], "over the bound: %s" % err)
            watch(pub, reply, {"op": "unwatch", "id": "b"})
            wait_until(lambda: any(m.get("op") == "unwatch" for _, m, _ in col.snapshot()), 10 * SLOW,
                       "unwatch")
            # expiry: one "expired" message, then nothing more for later buckets
            wait_until(lambda: any(m.get("expired") for _, m, _ in col.snapshot()), (expires + 10) * SLOW,
                       "the watch to expire")
            before = len([1 for _, m, _ in col.snapshot() if "buckets" in m])
            t1 = future_bucket(1)
            publish_lines(b, s, readings(t1, 3, 2))
            wait_until(lambda: status(b)["continuous"]["tail_seq"] >= dm.query1("SELECT max(seq) FROM events"),
                       10 * SLOW, "the tail to pass the new readings")
            # a live watch would have published t1's bucket 1 s + its grace (1 s) after t1
            wait_until(lambda: int(time.time() * 1000) > t1 + 2500, 10, "t1's bucket to close")
            wait_until(lambda: status(b)["continuous"]["watches"] == 0, 5 * SLOW, "no watch left")
            after = len([1 for _, m, _ in col.snapshot() if "buckets" in m])
            check(after == before, "no bucket after expiry (%d -> %d)" % (before, after))
            log("watch: bucket equal to range, busy over 2 watches, expired, then silent")
        finally:
            pub.close()
            col.close()
            dm.stop()
            b.stop()


def test_reload_keeps_unchanged_sections():
    """SIGHUP with a new section before an unchanged one: the unchanged query
    keeps the bucket it had seen before the reload and publishes it once
    (revision 0), the new one publishes from the reload on; a reload that
    removes a section stops it."""
    with tempdir() as d:
        b = Broker(d).start()
        dm = Daemon(d, b)
        grace = int(4 * SLOW)
        dm.config_text = CQ % ("%ds" % grace)
        dm.start()
        col = Collector(b, "edgelambda/continuous/#")
        conf = os.path.join(dm.dir, "edgelambda.conf")

        def reload(text):
            mark = len(dm.log_text())
            with open(conf, "w") as f:
                f.write(text)
            dm.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "applied continuous.sections" in dm.log_text()[mark:], 10 * SLOW, "the reload")

        try:
            t0 = future_bucket(1)
            publish_lines(b, "sensors/k/temp", readings(t0, 4, 0))
            wait_until(lambda: status(b)["continuous"]["tail_seq"] >= status(b)["log"]["seq"] >= 4, 10 * SLOW,
                       "the tail to see the readings")
            hums = '[continuous "hums"]\nmatch = sensors/+/hum\nstep = 1s\ngrace = %ds\nagg = count, sum\n' % grace
            reload(hums + CQ % ("%ds" % grace))  # "temps" unchanged, now the second section
            check(int(time.time() * 1000) < t0 + 1000 + grace * 1000,
                  "the reload came after the bucket closed: the test proves nothing")
            publish_lines(b, "sensors/k/hum", readings(t0 + 1000, 3, 50))
            try:
                wait_until(lambda: by_key(col.snapshot(), t0).get("sensors/k/temp") and
                           [m for _, m, _ in col.snapshot() if m.get("cq") == "hums"], 30 * SLOW,
                           "both queries to publish")
            except AssertionError:
                log("messages: %s\nstatus: %s" % ([m for _, m, _ in col.snapshot()], status(b)["continuous"]))
                raise
            temp = by_key(col.snapshot(), t0)["sensors/k/temp"]
            check(len(temp) == 1 and temp[0]["revision"] == 0 and temp[0]["buckets"][0]["count"] == 4,
                  "the unchanged query's bucket seen before the reload: %s" % temp)
            hum = [m for _, m, _ in col.snapshot() if m.get("cq") == "hums"]
            check(len(hum) == 1 and hum[0]["buckets"][0]["count"] == 3 and hum[0]["buckets"][0]["t"] == t0 + 1000,
                  "the new query: %s" % hum)
            check(status(b)["continuous"]["queries"] == 2, "two queries after the reload")

            reload(hums)  # "temps" removed
            t1 = future_bucket(1)
            publish_lines(b, "sensors/k/temp", readings(t1, 2, 0))
            publish_lines(b, "sensors/k/hum", readings(t1, 2, 0))
            wait_until(lambda: [m for _, m, _ in col.snapshot() if m.get("cq") == "hums" and
                                m["buckets"][0]["t"] == t1], 30 * SLOW, "the remaining query's next bucket")
            check(not by_key(col.snapshot(), t1).get("sensors/k/temp"), "a removed query still publishes")
            check(status(b)["continuous"]["queries"] == 1, "one query after the second reload")
            log("reload: the unchanged query kept its pending bucket, the added one publishes, the removed one stops")
        finally:
            col.close()
            dm.stop()
            b.stop()


def test_bad_section_keys():
    with tempdir() as d:
        cases = [
            ('[continuous "t"]\nmatch = a/#\nbogus = 1\n', 'edgelambda.conf:3: [continuous "t"] bogus: unknown key'),
            ('[continuous "t"]\nmatch = a/#\n\nagg = count, p200\n', 'edgelambda.conf:4: [continuous "t"] agg:'),
            ('[continuous "t"]\nmatch = a/#\nstep = soon\n', 'edgelambda.conf:3: [continuous "t"] step:'),
            ('[continuous "bad name"]\nmatch = a/#\n', 'edgelambda.conf:1: [continuous]: a name'),
            ('[continuous "t"]\nstep = 1s\n', '[continuous "t"] match: required'),
        ]
        for text, want in cases:
            path = os.path.join(d, "edgelambda.conf")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([DAEMON, "-c", path, "--check-config", "--set",
                                "storage.dir=" + os.path.join(d, "data")], capture_output=True, text=True)
            out = r.stdout + r.stderr
            check(r.returncode != 0 and want.replace("edgelambda.conf", path) in out,
                  "want %r, got rc %d: %s" % (want, r.returncode, out))
        log("%d bad sections refused, each naming key and line" % len(cases))


if __name__ == "__main__":
    run([test_closed_buckets_and_correction, test_readings_before_the_first_tick,
         test_rate_limit_drops_never_stalls_ingest,
         test_watch_until_expiry_and_bound, test_reload_keeps_unchanged_sections, test_bad_section_keys])
