"""One bad request must not knock the daemon off the broker, blow its memory or
stall ingest (issues 11 and 17).

- Reply paths the broker would refuse (wildcards: mosquitto disconnects the
  publisher) or that would loop back (ingest filters, the daemon's own
  topics) get no publish: each shape 100 times during QoS 1 ingest; the
  daemon's connection count stays 1, its status stays online, nothing is
  lost, every refusal is counted by reason; a v5 request with a bad
  response topic but a good reply_to gets an error reply there.
- A flood of requests: each gets exactly one reply or is counted.
- Hostile query shapes (empty rings, ranges far outside 2000..2099, steps of
  milliseconds or centuries, every series, the two slow shapes of issue 17)
  are answered or refused, naming the bound, within the deadline (the
  built-in 500 ms), while ingest keeps committing; SIGTERM in the middle of a
  heavy query ends the daemon within a second.
- 100,000 series and a storm of match/last/series requests: peak RSS stays
  within the configured rings plus the documented bound.
"""
import json
import os
import signal
import subprocess
import time
import uuid

import mqttraw
from harness import (SANITIZER, SLOW, Broker, Daemon, Ledger, TempDir, check, loadgen, loadgen_async, log, publish_lines,
                     rr, run, wait_until)

TS = 1767225600000


def online_and_connected_once(d, pred=None):
    st = d.status(timeout=30 * SLOW, pred=pred)
    check(st.get("state") == "online", "status went %s" % st.get("state"))
    check(st["mqtt"]["connects"] == 1, "the daemon reconnected: %s" % st["mqtt"])
    return st


def test_bad_reply_paths_never_disconnect():
    td = TempDir("hostile-rt")
    b = Broker(td.path).start()
    d = Daemon(td.path, b).start()
    acked = os.path.join(td.path, "acked.txt")
    # v5 Response Topics mosquitto forwards (it refuses bad UTF-8 itself, by
    # disconnecting the sender), and reply_to values (any bytes reach us).
    v5 = [("wildcard", b"reply/+/x"), ("wildcard", b"reply/#"), ("empty", b""),
          ("too_long", b"r/" + b"x" * 300), ("reserved", b"$SYS/reply"),
          ("ingest_topic", b"sensors/reply"), ("own_topic", b"edgelambda/query")]
    # (A control character reaches reply_to only as a JSON escape: raw, it
    # makes the request malformed JSON, whose reply_to cannot be trusted.)
    v311 = [("wildcard", b"reply/+"), ("bad_utf8", b"reply/\xff\xfe"), ("bad_utf8", b"reply/\\u0001"),
            ("no_reply_topic", b"reply/\x01"),
            ("too_long", b"r/" + b"y" * 300), ("reserved", b"$share/x"),
            ("ingest_topic", b"sensors/dev1/temp"), ("own_topic", b"edgelambda/status")]
    count = 20000
    lg = None
    try:
        lg = loadgen_async(b, count=count, series=50, qos=1, ts_base=TS, acked_file=acked, rate=2000)
        watcher = mqttraw.Client(b.port, "watcher")
        watcher.subscribe("fallback/#")
        c = mqttraw.Client(b.port, "hostile")
        expected = {}

        # Groups of 100 (below the request queue's 128), each refused before
        # the next is sent: this test is about where replies go, not about
        # "busy" (test_flood_every_request_accounted is).
        def settle():
            sent = sum(expected.values())
            online_and_connected_once(d, lambda s: sum(s["queries"]["rejected"].values()) +
                                      s["queries"]["busy_at_intake"] >= sent)

        for reason, rt in v5:
            for i in range(100):
                c.publish("edgelambda/query", b'{"op":"series"}', response_topic=rt, correlation=b"%d" % i)
            expected[reason] = expected.get(reason, 0) + 100
            settle()
        for reason, rt in v311:
            for i in range(100):
                c.publish("edgelambda/query", b'{"op":"series","id":%d,"reply_to":"%s"}' % (i, rt))
            expected[reason] = expected.get(reason, 0) + 100
            settle()
        # A bad response topic with a good reply_to: an error reply there.
        for i in range(100):
            c.publish("edgelambda/query", b'{"op":"series","reply_to":"fallback/%d"}' % i, response_topic=b"r/+")
        expected["wildcard"] += 100
        c.close()
        st = online_and_connected_once(d, lambda s: all(
            s["queries"]["rejected"][r] >= n for r, n in expected.items()))
        check(st["queries"]["busy_at_intake"] == 0, "busy at intake: %s" % st["queries"])
        got = {r: st["queries"]["rejected"][r] for r in expected}
        check(got == expected, "refusals by reason: %s, expected %s" % (got, expected))
        fallback = [json.loads(p) for _, p, _ in watcher.messages(timeout=2)]
        watcher.close()
        check(len(fallback) == 100 and all(f["ok"] is False and f["error"]["code"] == "bad_request" and
                                            "response topic" in f["error"]["message"] for f in fallback),
              "fallback replies: %d, e.g. %s" % (len(fallback), fallback[:1]))
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen: %s %s" % (out, err))
        wait_until(lambda: d.event_count() >= count, 60, "every reading")
        st = online_and_connected_once(d)
        g = Ledger(d, acked, TS)
        check(not g.missing and g.dupes == 0, "lost %d, doubled %d" % (len(g.missing), g.dupes))
        check(st["ingest"]["dead_letters"] == 0 and st["speed"]["series"] == 50,
              "a reply came back as a reading: %s" % st["ingest"])
        log("1,600 requests with bad reply paths during QoS 1 ingest: connects 1, online, %d acked, 0 lost, "
            "0 doubled; refused %s; 100 error replies via reply_to" % (len(g.acked), got))
        d.stop()
    finally:
        if lg and lg.poll() is None:
            lg.kill()
            lg.wait()
        d.kill()
        b.stop()
        td.cleanup()


def test_flood_every_request_accounted():
    td = TempDir("hostile-flood")
    b = Broker(td.path).start()
    d = Daemon(td.path, b).start()
    n = 10000
    try:
        loadgen(b, count=2000, series=20, ts_base=TS)
        sub = mqttraw.Client(b.port, "flood-sub")
        sub.subscribe("flood/reply")
        pub = mqttraw.Client(b.port, "flood-pub")
        t0 = time.monotonic()
        for i in range(n):
            pub.publish("edgelambda/query", b'{"op":"series","match":"sensors/dev1/#"}',
                        response_topic=b"flood/reply", correlation=b"%d" % i)
        sent_s = time.monotonic() - t0
        replies = {}
        for _, payload, props in sub.messages(timeout=5 * SLOW):
            cid = int(props[mqttraw.PROP_CORRELATION])
            replies[cid] = replies.get(cid, 0) + 1
        sub.close()
        pub.close()
        st = d.status(timeout=10 * SLOW)
        q = st["queries"]
        busy, busy_unsent = q["busy_at_intake"], q["busy_unsent"]
        errors = sum(q["errors"].values())
        accounted = q["received"] + busy + busy_unsent + sum(q["rejected"].values())
        check(accounted == n, "requests accounted: received %d + busy %d + busy unsent %d != %d" % (
            q["received"], busy, busy_unsent, n))
        check(q["received"] == q["answered"] + errors,
              "every request taken ends answered, in error or refused: %s" % q)
        check(all(v == 1 for v in replies.values()), "a request got more than one reply")
        sent = q["answered"] + errors - q["unsent"] + busy
        check(len(replies) == sent, "%d replies arrived, the daemon sent %d (%s)" % (len(replies), sent, q))
        check(sum(q["rejected"].values()) == 0, "status: %s" % q)
        # Counted is the promise (none vanish); on a quiet machine none is even dropped.
        log("%d requests in %.2f s: %d answered, %d errors (%d busy at intake), %d replies received, "
            "%d counted as not sent, 0 unaccounted" % (n, sent_s, q["answered"], errors + busy, busy, len(replies),
                                                       q["unsent"] + busy_unsent))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def timed_rr(b, q, timeout=10):
    t0 = time.monotonic()
    ans = rr(b, json.dumps(q) if isinstance(q, dict) else q, timeout=timeout)
    return ans, time.monotonic() - t0


def test_hostile_shapes_answered_in_bounded_time():
    td = TempDir("hostile-shapes")
    b = Broker(td.path).start()
    # The built-in deadline; 100 series with a day of history, views over it.
    d = Daemon(td.path, b, query__deadline_ms=500, speed__slots=120).start()
    lg = None
    try:
        now = int(time.time() * 1000)
        day = now - 86400000
        loadgen(b, count=100000, series=100, ts_base=day, extra=["--ts-step", "864"])
        wait_until(lambda: d.event_count() >= 100000, 60 * SLOW, "a day of history")
        rr(b, '{"op":"recompute","full":true}', topic="edgelambda/command")
        d.status(timeout=60 * SLOW, pred=lambda s: s["batch"]["runs"] >= 1 and not s["batch"]["running"])
        lg = loadgen_async(b, count=10 ** 6, series=100, qos=1, style="json", rate=2000)
        shapes = [
            ("the demo's query", {"match": "sensors/#", "from": "-1m", "to": "now", "step": "10000w",
                                  "agg": ["count", "mean", "min", "max", "p95", "last"]}),
            ("an empty series range", {"series": "sensors/dev1/temp", "from": 1000, "to": 2000, "step": "1s"}),
            ("before 1970", {"series": "sensors/dev1/temp", "from": -900000000000000, "to": 1000, "step": "100w"}),
            ("after 2099", {"series": "sensors/dev1/temp", "from": 4200000000000, "to": 4300000000000,
                            "step": "1000w"}),
            ("a step of centuries", {"match": "#", "from": 0, "to": "now", "step": "10000w", "agg": ["count"]}),
            ("milliseconds over an hour", {"series": "sensors/dev1/temp", "from": "-1h", "step": "1ms"}),
            ("every series, a day at 1 min, p95", {"match": "#", "from": "-1d", "step": "1m",
                                                   "agg": ["count", "p95"]}),
            ("100 series, 1 h at 1 min with p95", {"match": "sensors/+/temp", "from": "-1h", "step": "1m",
                                                   "agg": ["count", "mean", "p95"]}),
            ("50 series over 7 days at 61 s", {"match": "sensors/dev1+/temp", "from": "-7d", "step": "61s"}),
            ("50 series over 7 days at 1 h with p95", {"match": "sensors/dev1+/temp", "from": "-7d",
                                                       "step": "1h", "agg": ["count", "p95"]}),
            ("series list", {"op": "series"}),
            ("last of everything", {"op": "last", "match": "#", "n": 1000}),
        ]
        results = []
        for name, q in shapes:
            before = d.status(timeout=10 * SLOW)["log"]["seq"]
            ans, took = timed_rr(b, q)
            after = d.status(timeout=10 * SLOW, pred=lambda s: s["log"]["seq"] > before)["log"]["seq"]
            ok = ans.get("ok") is True
            code = None if ok else ans["error"]["code"]
            msg = "" if ok else ans["error"]["message"]
            check(ok or code in ("too_large", "timeout"), "%s: %s" % (name, ans))
            check(ok or any(w in msg for w in ("query.", "per series", "reply size", "bound")),
                  "%s: the refusal does not name its bound: %s" % (name, msg))
            # 500 ms deadline + mosquitto_rr's own start-up and round trip
            check(took < 1.5 * SLOW, "%s took %.2f s" % (name, took))
            results.append("%s: %s in %.0f ms (ingest %d -> %d)" % (name, "answered" if ok else code,
                                                                   took * 1000, before, after))
        demo = timed_rr(b, shapes[0][1])[0]
        check(demo["ok"] and any(s["buckets"] and s["buckets"][0]["count"] > 0 for s in demo["series"]),
              "the demo's query has no counts: %s" % str(demo)[:300])
        # SIGTERM while a heavy query runs: gone within a second.
        heavy = subprocess.Popen(["mosquitto_rr", "-h", "127.0.0.1", "-p", str(b.port), "-t", "edgelambda/query",
                                  "-e", "t/heavy/%s" % uuid.uuid4().hex, "-W", "5", "-m",
                                  json.dumps({"match": "#", "from": "-1d", "step": "1m", "agg": ["p50", "p99"]})],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: d.status()["queries"]["received"] >= len(shapes) + 2, 10, "the heavy query")
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(10 * SLOW)
        stop_s = time.monotonic() - t0
        heavy.kill()
        heavy.wait()
        check(rc == 0, "exit code %s" % rc)
        check(stop_s < 1.0 * SLOW, "SIGTERM during a query took %.2f s" % stop_s)
        lg.kill()
        lg.wait()
        for line in results:
            log(line)
        log("SIGTERM during a heavy query: stopped in %.0f ms" % (stop_s * 1000))
    finally:
        if lg and lg.poll() is None:
            lg.kill()
            lg.wait()
        d.kill()
        b.stop()
        td.cleanup()


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_memory_bound_with_100k_series():
    td = TempDir("hostile-mem")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, speed__max_series=100000, speed__slots=16, speed__raw_samples=4,
               query__max_match=100000).start()
    n = 100000
    try:
        loadgen(b, count=n, series=n, ts_base=TS, rate=0)
        st = d.status(timeout=120 * SLOW, pred=lambda s: s["speed"]["series"] == n)
        storm = [{"match": "#", "from": TS - 60000, "to": TS + 600000, "step": "1m", "agg": ["count", "p95"]},
                 {"op": "last", "match": "#", "n": 1000}, {"op": "series"},
                {"op": "last", "match": "sensors/dev1+/temp", "n": 4}, {"op": "series", "match": "sensors/dev9+/#"},
                {"match": "sensors/dev99+/temp", "from": TS - 60000, "to": TS + 600000, "step": "1m",
                 "agg": ["count", "p95"]},
                 {"match": "sensors/+/temp", "from": TS, "to": TS + 1000, "step": "1ms"}]
        codes = {}
        for i in range(20):
            for q in storm:
                ans = rr(b, json.dumps(q), timeout=30)
                key = "ok" if ans["ok"] else ans["error"]["code"]
                codes[key] = codes.get(key, 0) + 1
        st = d.status(timeout=10 * SLOW)
        hwm = vm_hwm_kb(d.proc.pid) * 1024
        # The documented bound (README "Memory"): the rings, the serving
        # thread's working set, the journal's mapped segments, and 64 MiB for
        # SQLite page caches, Paho, the outbox and the C library.
        journal = 4 * 8 * 1024 * 1024
        bound = st["speed"]["memory_bytes"] + st["queries"]["memory_bytes"] + journal + 64 * 1024 * 1024
        log("100,000 series, a storm of %d requests (%s): peak RSS %.1f MiB, bound %.1f MiB "
            "(rings %.1f, serving %.1f, journal %.1f, other 64)" % (
                sum(codes.values()), codes, hwm / 2 ** 20, bound / 2 ** 20, st["speed"]["memory_bytes"] / 2 ** 20,
                st["queries"]["memory_bytes"] / 2 ** 20, journal / 2 ** 20))
        if not SANITIZER:  # a sanitizer's shadow memory is not ours to bound
            check(hwm <= bound, "peak RSS %d > bound %d" % (hwm, bound))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_bad_reply_paths_never_disconnect, test_flood_every_request_accounted,
         test_hostile_shapes_answered_in_bounded_time, test_memory_bound_with_100k_series])
