"""Floods (issue 7): 100,000 distinct topics, 1 MiB payloads and a query
storm. Memory stays within the configured bound and the daemon stays
responsive; nothing is silently dropped."""
import json
import os
import subprocess
import time

from harness import (SLOW, Broker, Daemon, TempDir, check, loadgen, loadgen_async, publish, rr, run,
                     wait_until)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_topics_payloads_and_query_storm():
    td = TempDir("flood")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, speed__max_series=500, speed__slots=120).start()
    try:
        # 100,000 distinct topics: 500 become series, the rest are dead letters.
        loadgen(b, count=100000, series=100000, qos=1, rate=0)
        st = d.status(pred=lambda st: st["ingest"]["received"] == 100000, timeout=120)
        check(st["ingest"]["accepted"] == 500 and st["ingest"]["rejected"]["series_limit"] == 99500,
              "series limit: %s" % st["ingest"])
        check(st["speed"]["series"] == 500, "series %s" % st["speed"])
        bound_kb = st["speed"]["memory_bytes"] // 1024 + 64 * 1024  # rings + SQLite, journal, Paho
        if SLOW == 1.0:  # ASan's shadow memory and quarantine make RSS meaningless there
            check(rss_kb(d.proc.pid) < bound_kb, "RSS %d kB over %d kB" % (rss_kb(d.proc.pid), bound_kb))

        # 1 MiB payloads: dead letters cut to max_payload, never a crash.
        big = os.path.join(td.path, "big")
        with open(big, "wb") as f:
            f.write(b"7" * (1 << 20))
        for _ in range(5):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-q", "1", "-t", "sensors/big",
                            "-f", big], check=True)
        st = d.status(pred=lambda st: st["ingest"]["rejected"]["oversized"] == 5, timeout=60)
        con = d.db()
        sizes = con.execute("SELECT length(payload), payload_bytes FROM dead_letters WHERE reason='oversized'").fetchall()
        con.close()
        check(sizes == [(65536, 1 << 20)] * 5, "oversized dead letters: %s" % sizes)

        # A query storm while ingest runs: every request gets an answer (or "busy").
        lg = loadgen_async(b, count=20000, series=50, qos=1, rate=4000)
        q = json.dumps({"series": "sensors/dev1/temp", "from": "-1d", "to": "+1d", "step": "1h",
                        "agg": ["count", "p95"]})
        procs = [subprocess.Popen(["mosquitto_rr", "-h", "127.0.0.1", "-p", str(b.port), "-t", "edgelambda/query",
                                   "-e", "storm/%d" % i, "-W", str(int(20 * SLOW)), "-m", q],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(150)]
        answers = [json.loads(p.communicate(timeout=60 * SLOW)[0]) for p in procs]
        ok = sum(1 for a in answers if a.get("ok"))
        busy = sum(1 for a in answers if not a.get("ok") and a["error"]["code"] == "busy")
        check(ok + busy == 150 and ok > 0, "storm: %d ok, %d busy of 150" % (ok, busy))
        lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen during the storm")
        t0 = time.monotonic()
        ans = rr(b, '{"op":"status"}')
        check(ans["ok"] and time.monotonic() - t0 < 5 * SLOW, "daemon not responsive after the storm")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_topics_payloads_and_query_storm])
