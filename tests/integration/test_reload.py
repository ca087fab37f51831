"""Reload (issue 15): SIGHUP (systemctl reload) re-reads the configuration
file without stopping ingest. The keys the core owns take effect at once
(log level, storage.max_bytes, full_policy, flush_interval_ms); every other
changed key is named in one log line and keeps its running value until a
restart; a file that does not load changes nothing. Under QoS 1 ingest
through the reloads: nothing lost, nothing stored twice.
"""
import os
import signal

from harness import (SLOW, Broker, Daemon, Ledger, TempDir, check, loadgen_async, log, run, wait_until)

TS_BASE = 1767225600000


def test_reload_under_ingest():
    td = TempDir("reload")
    b = Broker(td.path).start()
    d = Daemon(td.path, b)
    # (the harness passes log.level with --set: an override outranks the file)
    d.config_text = "[storage]\nflush_interval_ms = 10\n\n[mqtt]\nkeepalive_s = 30\n"
    d.start()
    conf = os.path.join(td.path, "edgelambda.conf")
    acked = os.path.join(td.path, "acked.txt")
    count = 20000
    try:
        lg = loadgen_async(b, count=count, series=20, qos=1, ts_base=TS_BASE, acked_file=acked, rate=4000)
        wait_until(lambda: d.event_count() >= 2000, 30 * SLOW, "ingest before the reload")
        with open(conf, "w") as f:
            f.write("[storage]\nflush_interval_ms = 50\nmax_bytes = 64M\n\n[mqtt]\nkeepalive_s = 10\n")
        mark = len(d.log_text())
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload: applied" in d.log_text()[mark:], 10 * SLOW, "the reload's log line")
        line = [ln for ln in d.log_text()[mark:].splitlines() if "reload: applied" in ln][0]
        check("storage.flush_interval_ms" in line and "storage.max_bytes" in line and
              "kept until a restart: mqtt.keepalive_s" in line, "reload line: %s" % line)
        st = d.status(pred=lambda s: s["log"].get("max_bytes") == 64 << 20, timeout=10 * SLOW)
        check(st["state"] == "online", "status after the reload: %s" % st)
        # a file that does not load: named, nothing changes, ingest goes on
        with open(conf, "w") as f:
            f.write("[storage]\nflush_interval_ms = soon\n")
        mark = len(d.log_text())
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "keeping the running configuration" in d.log_text()[mark:], 10 * SLOW,
                   "the refused reload")
        check("flush_interval_ms" in d.log_text()[mark:] and d.alive(),
              "refused reload: %s" % d.log_text()[mark:][-500:])
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen: %s %s" % (out, err))
        wait_until(lambda: d.event_count() >= count, 60 * SLOW, "every event")
        g = Ledger(d, acked, TS_BASE)
        check(not g.missing and g.dupes == 0 and len(g.acked) == count,
              "through two reloads: %d acked, %d missing, %d twice" % (len(g.acked), len(g.missing), g.dupes))
        log("two reloads under QoS 1 ingest: %d acked, 0 lost, 0 doubled; %s" % (count, line.split(": ", 1)[1]))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_reload_under_ingest])
