"""Crash safety (issue 2): SIGKILL the daemon at random moments during QoS 1
ingest; every message the broker acknowledged to the publisher must end up
in the master log exactly once.

The publisher (loadgen) records every PUBACK it gets in an acked file. The
daemon is killed at least 5 times at random moments and restarted each time;
its persistent session makes the broker keep what it did not acknowledge,
and redeliveries (DUP) of messages it had already journaled must not become
second events.
"""
import os
import random
import time

from harness import (Broker, Daemon, TempDir, check, lg_topic, lg_value, loadgen_async, log, run,
                     wait_until, SLOW)

TS_BASE = 1767225600000


def crash_run(durability, count, kills, rate, seed):
    rng = random.Random(seed)
    td = TempDir("crash-" + durability)
    b = Broker(td.path).start()
    d = Daemon(td.path, b, storage__durability=durability).start()
    acked = os.path.join(td.path, "acked.txt")
    try:
        lg = loadgen_async(b, count=count, series=100, qos=1, ts_base=TS_BASE, acked_file=acked,
                           rate=rate)
        done_kills = 0
        while done_kills < kills:
            # A random moment: sometimes right after start (replay, redelivery), sometimes later.
            time.sleep(rng.uniform(0.05, 0.8))
            d.kill()
            done_kills += 1
            time.sleep(rng.uniform(0.0, 0.3))  # stay down a little: the broker queues meanwhile
            d.start(wait_subscribed=rng.random() < 0.5)
        out, err = lg.communicate(timeout=300 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        with open(acked) as f:
            acked_idx = [int(x) for x in f.read().split()]
        check(len(acked_idx) == count, "broker acknowledged %d of %d" % (len(acked_idx), count))
        wait_until(lambda: d.event_count() >= count, 120, "all acknowledged events")
        # Give a straggling redelivery the chance to show up as a duplicate.
        d.stop()
        con = d.db()
        rows = con.execute("SELECT s.name, e.ts, e.value FROM events e JOIN series s"
                           " ON s.id = e.series").fetchall()
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        con.close()
        check(integrity == "ok", "integrity_check: %s" % integrity)
        stored = [ts - TS_BASE for _, ts, _ in rows]
        dupes = len(stored) - len(set(stored))
        missing = set(acked_idx) - set(stored)
        log("%s: %d kills, %d acked, %d stored, %d duplicates, %d missing, runs that replayed the journal: %d, runs that dropped DUP redeliveries: %d" % (
            durability, done_kills, len(acked_idx), len(stored), dupes, len(missing),
            d.log_text().count("journal records left by the previous run"),
            d.log_text().count("redelivered duplicate")))
        check(not missing, "%d acknowledged messages missing, e.g. %s" % (len(missing), sorted(missing)[:10]))
        check(dupes == 0, "%d messages stored twice" % dupes)
        for name, ts, value in rows:
            i = ts - TS_BASE
            check(name == lg_topic(i, 100) and value == lg_value(i), "event %d altered" % i)
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_sigkill_normal():
    crash_run("normal", count=50000, kills=6, rate=8000, seed=int(os.environ.get("EL_SEED", "2")))


def test_sigkill_strict():
    crash_run("strict", count=10000, kills=5, rate=2500, seed=int(os.environ.get("EL_SEED", "3")))


if __name__ == "__main__":
    run([test_sigkill_normal, test_sigkill_strict])
