"""Idle windows (issue 4): under a driven ingest load and under a driven CPU
load no batch run starts; once the board is idle, one does; on request, one
does. The board's CPU use is driven through EDGELAMBDA_FAULT_BUSY_PCT_FILE
(plat_idle.h), so the test needs no quiet machine and owns none: on a loaded
CI machine it measures the same thing."""
import os
import time

from harness import SLOW, Broker, Daemon, TempDir, check, loadgen_async, publish, rr, run, wait_until


def set_busy(path, pct):
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % pct)
    os.replace(path + ".tmp", path)


def watch_no_run(d, seconds, what, load=None):
    """Polls the status for `seconds` (or until the load process ends): no run
    may start meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (load is None or load.poll() is None):
        st = d.status()
        check(st["batch"]["runs"] == 0 and not st["batch"]["running"],
              "a batch run started under %s: %s" % (what, st["batch"]))


def test_idle_windows():
    td = TempDir("idle")
    b = Broker(td.path).start()
    busy = os.path.join(td.path, "busy_pct")
    set_busy(busy, 5)
    d = Daemon(td.path, b, batch__idle_for_s=2, batch__idle_cpu_pct=60, batch__idle_ingest_rate=100,
               batch__max_lag_s=3600)
    d.env["EDGELAMBDA_FAULT_BUSY_PCT_FILE"] = busy
    d.start()
    try:
        # 1. Ingest load: 1,000 events/s for 12 s, above idle_ingest_rate;
        # watched while it lasts (a slow start must not leave the watch
        # running into the idle window after it)
        lg = loadgen_async(b, count=12000, series=10, qos=1, rate=1000)
        wait_until(lambda: d.status()["ingest"]["rate_per_s"] > 100, 10, "ingest load to show")
        watch_no_run(d, 5, "ingest load", lg)
        lg.communicate(timeout=60 * SLOW)
        st = d.status(pred=lambda st: st["batch"]["runs"] >= 1 and not st["batch"]["running"], timeout=20)
        check(st["batch"]["last_trigger"] == "idle", "first run not idle-triggered: %s" % st["batch"])
        runs = st["batch"]["runs"]

        # 2. CPU load with new (uncovered) events: no run until the CPUs calm down.
        set_busy(busy, 95)
        wait_until(lambda: d.status()["batch"]["runs"] == runs, 5, "status")
        for i in range(5):
            publish(b, "sensors/cpu/t", '{"value":%d}' % i)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = d.status()
            check(st["batch"]["runs"] == runs, "a run started under CPU load: %s" % st["batch"])
        set_busy(busy, 5)
        st = d.status(pred=lambda st: st["batch"]["runs"] > runs and not st["batch"]["running"], timeout=20)
        check(st["batch"]["last_trigger"] == "idle", "not idle-triggered: %s" % st["batch"])
        check(st["batch"]["watermark_seq"] == st["log"]["seq"], "idle run did not cover everything")

        # 3. On request, whatever the load.
        publish(b, "sensors/cpu/t", '{"value":99}')
        runs = st["batch"]["runs"]
        ans = rr(b, '{"op":"recompute"}', topic="edgelambda/command")
        check(ans["ok"], "recompute: %s" % ans)
        st = d.status(pred=lambda st: st["batch"]["runs"] > runs and not st["batch"]["running"], timeout=20)
        check(st["batch"]["last_trigger"] in ("request", "idle"), "trigger: %s" % st["batch"])
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_idle_windows])
