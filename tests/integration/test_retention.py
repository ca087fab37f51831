"""Retention (issue 4): with storage.max_bytes small, the oldest raw events
are trimmed in whole ranges once the views cover them, ingest goes on, and
old ranges still answer — exactly, at view resolution — from the views."""
import json
import math
import time

from harness import (Broker, Daemon, TempDir, check, lg_value, loadgen, rr, run, wait_until)


def test_trim_keeps_views_and_ingest():
    td = TempDir("retention")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, storage__max_bytes="1M", batch__max_lag_s=3600, speed__slots=60).start()
    try:
        now = int(time.time() * 1000)
        old_base = (now - 6 * 3600000) // 3600000 * 3600000 + 1000  # inside one hour bucket
        loadgen(b, count=30000, series=10, ts_base=old_base)
        loadgen(b, count=30000, series=10, ts_base=now - 60000, start_index=30000)
        st = d.status(pred=lambda st: st["ingest"]["accepted"] == 60000 and
                      st["log"].get("trimmed_events", 0) > 0 and
                      st["log"]["used_bytes"] <= st["log"]["max_bytes"], timeout=90)
        check(st["log"]["oldest_seq"] > 1, "oldest_seq %s" % st["log"])
        stored = d.event_count()
        check(stored < 60000, "nothing was trimmed from the master log (%d rows)" % stored)
        # The old hour is answered from the views, exactly (count, sum, min, max, last).
        q = {"series": "sensors/dev3/temp", "from": old_base - 1000, "to": old_base - 1000 + 3600000,
             "step": "1h", "agg": ["count", "sum", "min", "max", "last"]}
        ans = rr(b, json.dumps(q))
        check(ans["ok"] and ans["sources"]["batch"] == 1, "old range: %s" % ans)
        check(ans.get("raw_from_seq", 0) > 1, "answer does not say raw data was trimmed: %s" % ans)
        idx = [i for i in range(30000) if i % 10 == 3]
        vals = [lg_value(i) for i in idx]
        bk = ans["buckets"][0]
        check(bk["count"] == len(idx) and bk["sum"] == math.fsum(vals) and bk["min"] == min(vals)
              and bk["max"] == max(vals) and bk["last"] == lg_value(idx[-1]),
              "old hour from views: %s, expected count %d" % (bk, len(idx)))
        # New readings are still accepted and queryable.
        loadgen(b, count=5000, series=10, ts_base=now, start_index=60000)
        d.status(pred=lambda st: st["ingest"]["accepted"] == 65000 and not st["log"]["full"], timeout=60)
        d.stop()
        check(d.query1("PRAGMA integrity_check") == "ok", "integrity_check")
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_trim_keeps_views_and_ingest])
