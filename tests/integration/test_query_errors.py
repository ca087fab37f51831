"""Hostile requests get a JSON error reply, fast, while ingest goes on (issue 3)."""
import json

from harness import SLOW, Broker, Daemon, TempDir, check, loadgen_async, rr, run, wait_until

LONG = "s/" + "x" * 300
BAD = [
    ("malformed JSON", b'{"series": "a", ', "bad_request"),
    ("not JSON", b"select * from events", "bad_request"),
    ("empty", b"", "bad_request"),
    ("array", b'["series"]', "bad_request"),
    ("string", b'"hello"', "bad_request"),
    ("trailing garbage", b'{"op":"series"} x', "bad_request"),
    ("unknown op", b'{"op":"drop_table"}', "bad_request"),
    ("unknown aggregate", b'{"series":"a","agg":["median"]}', "bad_request"),
    ("p0", b'{"series":"a","agg":["p0"]}', "bad_request"),
    ("p101", b'{"series":"a","agg":["p101"]}', "bad_request"),
    ("empty agg", b'{"series":"a","agg":[]}', "bad_request"),
    ("duplicate agg", b'{"series":"a","agg":["max","max"]}', "bad_request"),
    ("reversed range", b'{"series":"a","from":"now","to":"-1h"}', "bad_request"),
    ("empty range", b'{"series":"a","from":1000,"to":1000}', "bad_request"),
    ("huge range", b'{"series":"a","from":0,"to":9000000000000000,"step":"1d"}', "too_large"),
    ("millions of buckets", b'{"series":"a","from":"-30d","to":"now","step":"1s"}', "too_large"),
    ("bad step", b'{"series":"a","step":"fast"}', "bad_request"),
    ("zero step", b'{"series":"a","step":0}', "bad_request"),
    ("bad from", b'{"series":"a","from":"yesterday"}', "bad_request"),
    ("deep nesting", b'{"series":' + b"[" * 2000 + b"]" * 2000 + b"}", None),
    ("very long series name", json.dumps({"series": LONG}).encode(), "bad_request"),
    ("series and match", b'{"series":"a","match":"#"}', "bad_request"),
    ("series not a string", b'{"series":42}', "bad_request"),
    ("missing series", b'{"from":"-1h"}', "bad_request"),
    ("unknown member", b'{"series":"a","limit":5}', "bad_request"),
    ("bad n", b'{"op":"last","n":0}', "bad_request"),
    ("command on query topic", b'{"op":"recompute"}', "bad_request"),
    ("unknown series", b'{"series":"no/such/series"}', "not_found"),
    ("invalid UTF-8 and NUL", b'{"series":"\xff\xfe\x00"}', "bad_request"),
    ("oversized request", b'{"series":"' + b"a" * 40000 + b'"}', "bad_request"),
]


def test_bad_requests_get_errors_while_ingest_continues():
    td = TempDir("qerr")
    b = Broker(td.path).start()
    d = Daemon(td.path, b).start()
    try:
        lg = loadgen_async(b, count=40000, series=50, qos=1, rate=4000)
        for name, payload, code in BAD:
            ans = rr(b, payload, timeout=5)
            check(ans.get("ok") is False and "error" in ans, "%s: not an error reply: %s" % (name, str(ans)[:200]))
            check(isinstance(ans["error"].get("message"), str) and ans["error"]["message"],
                  "%s: no message" % name)
            if code:
                check(ans["error"]["code"] == code, "%s: code %s, expected %s (%s)" % (
                    name, ans["error"]["code"], code, ans["error"]["message"]))
        # Commands: sync is disabled here; a query is not a command; recompute works.
        for payload, code in ((b'{"op":"sync"}', "unsupported"), (b'{"series":"a"}', "bad_request"),
                              (b'{"op":"recompute","full":"yes"}', "bad_request")):
            ans = rr(b, payload, topic="edgelambda/command", timeout=5)
            check(ans["ok"] is False and ans["error"]["code"] == code, "command %s: %s" % (payload, ans))
        ans = rr(b, b'{"op":"recompute","id":7}', topic="edgelambda/command", timeout=5)
        check(ans["ok"] is True and ans["id"] == 7, "recompute: %s" % ans)
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen: %s %s" % (out, err))
        wait_until(lambda: d.event_count() >= 40000, 60, "all 40000 events despite the bad requests")
        check(d.alive(), "daemon died")
        st = d.status(pred=lambda st: st["ingest"]["accepted"] == 40000)
        check(st["ingest"]["dead_letters"] == 0, "requests leaked into ingest: %s" % st["ingest"])
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_bad_requests_get_errors_while_ingest_continues])
