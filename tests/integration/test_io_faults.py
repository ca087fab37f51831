"""I/O errors injected under the storage layer (issue 7): failed fdatasync
(EIO), failed writes (ENOSPC), short writes and, in strict mode, failed msync
of the ingest journal — injected by tests/fault/powercut.c (EL_IOFAULT) into
the real calls SQLite and the journal make, switched on and off by a file.

Each must give a clean, named error and never a crash or a lie: the daemon
stays up, reports the failure, acknowledges nothing it could not make safe,
and once the faults stop, every published event is stored exactly once and
integrity_check is ok.
"""
import os
import sys

from harness import (SLOW, Broker, Daemon, Ledger, TempDir, check, loadgen_async, log, run, wait_until)
from powercut import LIB, available

TS_BASE = 1767225600000

SCENARIOS = [
    # (name, durability, EL_IOFAULT, what the log must say while it fails,
    #  whether the retained status can say so: a failing strict msync holds
    #  the Paho thread, which also publishes the status)
    ("fdatasync EIO", "normal", "fdatasync:EIO:1", "disk I/O error", True),
    ("write ENOSPC", "normal", "pwrite:ENOSPC:3", "database or disk is full", True),
    ("short writes", "normal", "pwrite:SHORT:2", None, False),
    ("strict fdatasync EIO", "strict", "fdatasync:EIO:1", "disk I/O error", True),
    ("strict msync EIO", "strict", "msync:EIO:1", "journal: msync failed: Input/output error", False),
]


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
        os.unlink(switch)
        out, err = lg.communicate(timeout=120 * SLOW)
        check(lg.returncode == 0, "loadgen: %s %s" % (out, err))
        wait_until(lambda: d.event_count() >= count, 60 * SLOW, "every event after the faults stopped")
        g = Ledger(d, acked, TS_BASE)
        stored, missing, dupes, integrity = g.stored, g.missing, g.dupes, g.integrity
        errors = sum(1 for line in d.log_text().splitlines() if line.startswith("edgelambda error:"))
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
