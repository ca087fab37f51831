"""Cross builds under QEMU user emulation: the ARM daemon against a host broker.

Must show (issue: cross builds and QEMU): edgelambdad cross-built for aarch64
and armhf (cmake/toolchain-*.cmake with a sysroot from Debian's arm64/armhf
packages, tools/sysroot ARCH --build), run under qemu-aarch64-static /
qemu-arm-static -L <sysroot> (the emulator ctest uses for the unit tests),
connects to a real mosquitto on 127.0.0.1 on the host, ingests readings
published by the cross-built CLI (also emulated) and by the host's
mosquitto_pub, stores them exactly in its SQLite master log (read here with
the host's sqlite3) and reports them in its retained status; stops cleanly on
SIGTERM. Also measures and prints the emulated aarch64 ingest rate.

The builds are cached under $EL_XC_CACHE (default build/xc): the first run
builds them (about a minute), later runs -- the ASan ctest run, ./tools/check's
cross section -- reuse them.
"""
import json
import os
import struct
import subprocess
import time

import harness
from harness import (Broker, Daemon, TempDir, check, lg_topic, lg_value, log, publish_lines, rr, run,
                     wait_until)

TS_BASE = 1767225600000  # 2026-01-01T00:00:00Z
XC_CACHE = os.environ.get("EL_XC_CACHE") or os.path.join(harness.SOURCE, "build", "xc")
ARCHES = {  # cmake name: (Debian arch, emulator, ELF e_machine)
    "aarch64": ("arm64", "qemu-aarch64-static", 183),
    "armhf": ("armhf", "qemu-arm-static", 40),
}


def xc_build(arch):
    """Cross-builds the tree for arch (cached); returns (build dir, sysroot)."""
    deb_arch = ARCHES[arch][0]
    r = subprocess.run([os.path.join(harness.SOURCE, "tools", "sysroot"), deb_arch, "--build", "--print"],
                       capture_output=True, text=True, timeout=1200,
                       env=dict(os.environ, EL_XC_CACHE=XC_CACHE))
    check(r.returncode == 0, "tools/sysroot %s --build failed:\n%s" % (deb_arch, r.stderr[-4000:]))
    return r.stdout.strip().splitlines()[-1], os.path.join(XC_CACHE, "sysroot-" + deb_arch)


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    check(head[:4] == b"\x7fELF", "%s is not an ELF file" % path)
    return struct.unpack("<H", head[18:20])[0]


class Emulated:
    """Points harness.DAEMON/CLI at the cross build and puts the emulator in
    front of them (harness.EMULATOR) for the duration of a with-block."""

    def __init__(self, arch):
        self.arch = arch
        self.build, self.sysroot = xc_build(arch)
        self.qemu = ARCHES[arch][1]

    def __enter__(self):
        self.saved = (harness.EMULATOR, harness.DAEMON, harness.CLI, harness.SLOW)
        harness.EMULATOR = [self.qemu, "-L", self.sysroot]
        harness.DAEMON = os.path.join(self.build, "edgelambdad")
        harness.CLI = os.path.join(self.build, "edgelambda")
        harness.SLOW = max(harness.SLOW, 3.0)  # emulation: scale every bounded wait
        for b in (harness.DAEMON, harness.CLI):
            check(elf_machine(b) == ARCHES[self.arch][2], "%s is not an %s binary" % (b, self.arch))
        return self

    def __exit__(self, *exc):
        harness.EMULATOR, harness.DAEMON, harness.CLI, harness.SLOW = self.saved
        return False


def verify_readings_via_status(d, expected, check_rows=None):
    """Checks that the daemon has ingested exactly `expected` readings.

    Today through what exists: the retained status on <prefix>/status, read
    from the host with mosquitto_sub (ingest.accepted, log.seq, no dead
    letters), and, with check_rows, the master log itself. This is the one
    place where the readings are verified: the query check
    (<prefix>/query through harness.rr, i.e. mosquitto_rr) belongs here.
    Returns the status document."""
    st = d.status(timeout=60, pred=lambda st: st.get("ingest", {}).get("accepted") == expected)
    check(st["state"] == "online", "state %s" % st["state"])
    check(st["ingest"]["dead_letters"] == 0, "unexpected dead letters: %s" % st["ingest"])
    check(st["log"]["seq"] >= expected, "log.seq %s < %d" % (st["log"]["seq"], expected))
    if check_rows:
        wait_until(lambda: d.event_count() >= expected, 60, "%d events in the master log" % expected)
        check_rows(d)
    # The emulated daemon answers a query (real mosquitto_rr) that equals a
    # direct aggregation over its master log.
    con = d.db()
    name, n, total, lo, hi = con.execute(
        "SELECT s.name, count(*), sum(e.value), min(e.ts), max(e.ts) FROM events e JOIN series s"
        " ON s.id = e.series GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    con.close()
    ans = rr(d.broker, json.dumps({"series": name, "from": lo, "to": hi + 1, "step": "1d",
                                   "agg": ["count", "sum"]}), timeout=30)
    check(ans.get("ok") and sum(b["count"] for b in ans["buckets"]) == n and
          abs(sum(b["sum"] for b in ans["buckets"]) - total) <= 1e-9 * max(1.0, abs(total)),
          "emulated daemon's answer %s != %d events, sum %r" % (ans, n, total))
    return st


def rows_match_loadgen(count, series):
    """A check_rows for the load generator's deterministic stream."""
    def check_rows(d):
        con = d.db()
        rows = con.execute("SELECT s.name, e.ts, e.value FROM events e JOIN series s ON s.id = e.series"
                           " ORDER BY e.seq").fetchall()
        con.close()
        check(len(rows) == count, "expected %d events, found %d" % (count, len(rows)))
        for name, ts, value in rows:
            i = ts - TS_BASE
            check(name == lg_topic(i, series) and value == lg_value(i),
                  "event %s %s %s differs from what was published" % (name, ts, value))
        check(sorted(ts - TS_BASE for _, ts, _ in rows) == list(range(count)), "wrong set of events")
    return check_rows


def emulated_ingest(arch, count):
    with Emulated(arch):
        td = TempDir("xc-" + arch)
        b = Broker(td.path).start()
        d = Daemon(td.path, b, client_id="el-xc-" + arch)
        try:
            t0 = time.monotonic()
            d.start()
            log("%s: emulated daemon subscribed in %.1fs" % (arch, time.monotonic() - t0))
            # The cross-built CLI's load generator, emulated too.
            s = harness.loadgen(b, count=count, series=10, qos=1, ts_base=TS_BASE, timeout=300)
            check(int(s["acked"]) == count, "broker acknowledged %s of %d" % (s["acked"], count))
            st = verify_readings_via_status(d, count, rows_match_loadgen(count, 10))
            check(st["speed"]["series"] == 10, "series %s" % st["speed"]["series"])
            d.stop()  # SIGTERM through qemu: must exit 0
            check(d.query1("PRAGMA integrity_check") == "ok", "integrity_check failed")
        finally:
            d.kill()
            b.stop()
            td.cleanup()


def test_aarch64_daemon_ingests_from_host_broker():
    emulated_ingest("aarch64", 2000)


def test_armhf_daemon_ingests_from_host_broker():
    emulated_ingest("armhf", 1000)


def test_aarch64_emulated_ingest_rate():
    """20,000 QoS 1 readings from the host's mosquitto_pub as fast as it
    goes; the rate is that of the emulated daemon (qemu-user on this
    machine), a rough lower bound for a Pi-class core."""
    n = 20000
    with Emulated("aarch64"):
        td = TempDir("xc-rate")
        b = Broker(td.path).start()
        d = Daemon(td.path, b, client_id="el-xc-rate").start()
        try:
            lines = ['{"value":%.2f,"ts":%d}' % (lg_value(i), TS_BASE + i) for i in range(n)]
            t0 = time.monotonic()
            publish_lines(b, "sensors/rate/temp", lines)
            wait_until(lambda: d.event_count() >= n, 300, "%d events" % n, interval=0.05)
            secs = time.monotonic() - t0
            verify_readings_via_status(d, n)
            log("emulated aarch64 ingest: %d QoS 1 messages in %.2f s = %.0f msg/s" % (n, secs, n / secs))
            d.stop()
        finally:
            d.kill()
            b.stop()
            td.cleanup()


if __name__ == "__main__":
    run([test_aarch64_daemon_ingests_from_host_broker, test_armhf_daemon_ingests_from_host_broker,
         test_aarch64_emulated_ingest_rate])
