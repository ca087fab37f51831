"""Disk full (issue 7): the data directory on a small tmpfs. When it fills,
the daemon stops acknowledging (the broker keeps the readings), says so in
status, corrupts nothing, and resumes by itself when space returns; every
reading ends up stored exactly once. Needs root for the tmpfs mount
(exit 77 = skipped when mounting is not permitted)."""
import os
import subprocess
import sys

from harness import (SLOW, Broker, Daemon, TempDir, check, loadgen_async, log, run, wait_until)

TS = 1767225600000


def test_full_tmpfs_holds_then_resumes():
    td = TempDir("full")
    mnt = os.path.join(td.path, "data")
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        print("skipped: cannot mount a tmpfs here: %s" % r.stderr.strip())
        td.cleanup()
        sys.exit(77)
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__max_payload="16K", storage__journal_segment_bytes="2M",
               storage__journal_segments=2, batch__idle_cpu_pct=0)
    d.datadir = mnt
    d.sets["storage.dir"] = mnt
    filler = os.path.join(mnt, "filler")
    try:
        with open(filler, "wb") as f:
            f.write(b"\0" * (10 << 20))  # 10 MiB we give back later
        d.start()
        lg = loadgen_async(b, count=120000, series=50, qos=1, ts_base=TS, rate=8000)
        # Full: commits fail or the journal cannot start a segment (status
        # says so), messageArrived blocks, so no PUBACK: the broker keeps the
        # readings. The status comes over the control connection (control.h),
        # which the held Paho thread does not hold: it stays online.
        st = d.status(pred=lambda st: st["log"]["error"] is not None, timeout=120)
        log("full: %s" % st)
        check(st["state"] == "online", "status while full: %s" % st)
        check("no space" in st["log"]["error"], "error: %s" % st["log"]["error"])
        check("no space" in d.log_text() or "No space" in d.log_text(), "the full disk was not reported")
        stored_when_full = d.event_count()
        out, err = lg.communicate(timeout=300 * SLOW)
        check(lg.returncode == 0, "the broker must still take every reading: %s %s" % (out, err))
        check(d.alive(), "daemon died on a full disk")
        check(d.event_count() < 120000, "the disk never filled")
        con = d.db()
        check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "corrupt after ENOSPC")
        con.close()
        os.unlink(filler)  # space returns
        wait_until(lambda: d.event_count() >= 120000, 180, "ingest to resume by itself")
        d.status(pred=lambda st: st.get("state") == "online" and st["log"]["error"] is None, timeout=60)
        con = d.db()
        n, distinct = con.execute("SELECT count(*), count(DISTINCT ts) FROM events").fetchone()
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        con.close()
        log("stored %d when full, %d at the end" % (stored_when_full, n))
        check(n == 120000 and distinct == 120000, "stored %d (%d distinct) of 120000" % (n, distinct))
        check(integrity == "ok", "integrity: %s" % integrity)
        d.stop()
    finally:
        d.kill()
        b.stop()
        subprocess.run(["umount", mnt], capture_output=True)
        td.cleanup()


if __name__ == "__main__":
    run([test_full_tmpfs_holds_then_resumes])
