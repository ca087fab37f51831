"""I/O errors injected under the storage layer (issue 7): failed fdatasync
(EIO), failed writes (ENOSPC), short writes and, in strict mode, failed msync
of the ingest journal — injected by tests/fault/powercut.c (EL_IOFAULT) into
the real calls SQLite and the journal make, switched on and off by a file.

Each must give a clean, named error and never a crash or a lie: the daemon
stays up, reports the failure, acknowledges nothing it could not make safe,
and once the faults stop, every published event is stored exactly once and
integrity_check is ok.
"""
import json
import os
import sys
import time

from harness import (SLOW, Broker, Daemon, Ledger, TempDir, check, loadgen_async, log, rr, run, wait_until)
from powercut import LIB, available

TS_BASE = 1767225600000

SCENARIOS = [
    # (name, durability, EL_IOFAULT, what the log must say while it fails,
    #  whether the status reports an error while it lasts: short writes are
    #  retried inside SQLite and never surface). A failing strict msync holds
    #  the Paho thread; the control plane's own connection (control.h) must
    #  still publish the status, answer {"op":"status"} and queries, and keep
    #  the will unfired.
    ("fdatasync EIO", "normal", "fdatasync:EIO:1", "disk I/O error", True),
    ("write ENOSPC", "normal", "pwrite:ENOSPC:3", "database or disk is full", True),
    ("short writes", "normal", "pwrite:SHORT:2", None, False),
    ("strict fdatasync EIO", "strict", "fdatasync:EIO:1", "disk I/O error", True),
    ("strict msync EIO", "strict", "msync:EIO:1", "journal: msync failed: Input/output error", True),
]


def answers_while_held(d, b):
    """Ingest is held (the Paho callback waits in journal_append): the
    retained status says so and stays "online", {"op":"status"} and a query
    are answered over the control connection."""
    st = d.status(timeout=20 * SLOW, pred=lambda s: s["ingest"]["held"])
    check(st["state"] != "offline" and st["mqtt"]["control_connected"],
          "retained status while held: %s" % st)
    t0 = time.monotonic()
    ans = rr(b, json.dumps({"op": "status"}), timeout=10 * SLOW)
    check(ans.get("ok") and ans["ingest"]["held"], "status answer while held: %s" % ans)
    name = d.query1("SELECT name FROM series ORDER BY id LIMIT 1")
    q = rr(b, json.dumps({"series": name, "from": TS_BASE, "to": TS_BASE + 86400000, "step": "1d",
                          "agg": ["count"]}), timeout=10 * SLOW)
    check(q.get("ok") and sum(x["count"] for x in q["buckets"]) > 0, "query while held: %s" % q)
    log("held: status and a query answered in %.0f ms" % ((time.monotonic() - t0) * 1000))


def one(name, durability, fault, expect_log, expect_status):
    td = TempDir("iofault")
    b = Broker(td.path).start()
    switch = os.path.join(td.path, "faults-on")
    d = Daemon(td.path, b, storage__durability=durability)
    os.makedirs(d.datadir)
    d.env.update({"LD_PRELOAD": LIB, "EL_IOFAULT": fault, "EL_IOFAULT_FILE": switch,
                  "EL_POWERCUT_DIR": d.datadir, "EL_POWERCUT_SHADOW": os.path.join(td.path, "shadow")})
    acked = os.path.join(td.path, "acked.txt")
    count = 6000
    try:
        d.start()
        lg = loadgen_async(b, count=count, series=20, qos=1, ts_base=TS_BASE, acked_file=acked, rate=1500)
        wait_until(lambda: d.event_count() >= 500, 30 * SLOW, "ingest before the faults")
        open(switch, "w").close()
        before = d.event_count()
        if expect_log:
            wait_until(lambda: expect_log in d.log_text()[d.log_mark:], 20 * SLOW,
                       "the daemon to report '%s'" % expect_log)
        else:
            wait_until(lambda: d.event_count() >= before + 500, 20 * SLOW, "ingest through short writes")
        check(d.alive(), "the daemon died under %s:\n%s" % (name, d.log_text()[-2000:]))
        during = d.event_count()
        if expect_status:  # and the retained status says so while it lasts
            st = d.status(timeout=10 * SLOW, pred=lambda s: s["log"]["error"] is not None)
            reported = st["log"]["error"]
        if fault.startswith("msync"):
            answers_while_held(d, b)
        os.unlink(switch)
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen: %s %s" % (out, err))
        wait_until(lambda: d.event_count() >= count, 60 * SLOW, "every event after the faults stopped")
        g = Ledger(d, acked, TS_BASE)
        stored, missing, dupes, integrity = g.stored, g.missing, g.dupes, g.integrity
        errors = sum(1 for line in d.log_text().splitlines() if "edgelambda error:" in line)
        if expect_status:
            check(d.status(timeout=10 * SLOW, pred=lambda s: s["log"]["error"] is None),
                  "status still reports an error")
        log("%s: %d stored before the faults, %d while failing, %d of %d at the end, %d missing, "
            "%d twice, integrity %s, %d error lines logged, status said %r" % (
                name, before, during - before, len(stored), count, len(missing), dupes, integrity, errors,
                reported if expect_status else None))
        check(not missing, "%d events missing" % len(missing))
        check(dupes == 0, "%d events stored twice" % dupes)
        check(integrity == "ok", "integrity_check: %s" % integrity)
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def make(args):
    def t():
        one(*args)
    t.__name__ = "test_" + args[0].replace(" ", "_").lower()
    return t


if __name__ == "__main__":
    if not available():
        print("SKIP: no libel_powercut.so in this build (sanitizer or cross build)")
        sys.exit(77)
    run([make(s) for s in SCENARIOS])
