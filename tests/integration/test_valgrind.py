"""The daemon under valgrind memcheck (issue 7): ingest, bad input, queries,
a batch run and a clean stop with no memory errors and no definite leaks.
Skipped (exit 77) when the binaries are an ASan build (the two don't mix)."""
import json
import os
import shutil
import sys
import time

from harness import (BUILD, Broker, Daemon, TempDir, check, loadgen, publish, rr, run, wait_until)


def test_memcheck_clean():
    td = TempDir("vg")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, speed__max_series=200, speed__slots=60)
    vg_log = os.path.join(td.path, "valgrind.log")
    args = d.args
    d.args = lambda: ["valgrind", "--error-exitcode=99", "--leak-check=full",
                      "--errors-for-leak-kinds=definite", "--log-file=" + vg_log] + args()
    try:
        d.start()
        now = int(time.time() * 1000)
        loadgen(b, count=2000, series=20, ts_base=now - 7200000)
        loadgen(b, count=200, series=20, ts_base=now - 1000, start_index=2000)  # the ring moves on
        publish(b, "sensors/bad", "not a number")
        wait_until(lambda: d.event_count() >= 2200, 120, "events under valgrind")
        for q in ({"series": "sensors/dev1/temp", "from": now - 8000000, "to": now, "step": "1h",
                   "agg": ["count", "mean", "p95", "last"]},
                  {"op": "series"}, {"op": "last", "match": "#", "n": 2}, {"op": "status"}, {"bad": 1}):
            ans = rr(b, json.dumps(q), timeout=30)
            check("ok" in ans, "no answer: %s" % ans)
        rr(b, '{"op":"recompute","full":true}', topic="edgelambda/command", timeout=30)
        d.status(pred=lambda st: st["batch"]["runs"] >= 1 and not st["batch"]["running"], timeout=60)
        hour = (now - 3 * 3600000) // 3600000 * 3600000
        ans = rr(b, json.dumps({"series": "sensors/dev1/temp", "from": hour, "to": now,
                                "step": "1h", "agg": ["count", "p50"]}), timeout=30)
        check(ans["ok"] and ans["sources"]["batch"] > 0, "views not used: %s" % ans)
        d.stop(timeout=120)  # exit code 99 would mean valgrind found errors
        text = open(vg_log).read()
        check("ERROR SUMMARY: 0 errors" in text, "valgrind:\n" + text[-3000:])
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    if "asan" in os.path.basename(os.path.normpath(BUILD)).lower() or not shutil.which("valgrind"):
        print("skipped: ASan build or no valgrind")
        sys.exit(77)
    run([test_memcheck_clean])
