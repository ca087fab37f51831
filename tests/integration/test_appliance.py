"""The appliance image under full-system QEMU: boot, ingest from the host, power off.

Must show (issue: appliance image): tools/appliance builds a kernel (Debian's
linux-image-arm64) and an initramfs (busybox, mosquitto, the aarch64
edgelambdad and its libraries, an init); booted under qemu-system-aarch64
-M virt with user networking restricted to the guest (restrict=on) and one
forward from 127.0.0.1:<free port> to the guest's broker, the guest comes up
with its broker and daemon; readings published from the host are ingested
and reported back in the daemon's retained status; a publish to
edgelambda/appliance/poweroff makes the guest stop the daemon cleanly and
power off, which ends QEMU. The guest's broker also serves the live page
(issue #14): through a second forward every file of web/ comes back byte for
byte over HTTP, and MQTT over WebSockets on that listener (what the page
does) gets the daemon's retained status. Every step is bounded by a timeout, and the
guest powers itself off after el.max_s seconds whatever happens.
"""
import json
import math
import os
import subprocess
import time
import urllib.request

import harness
import mqttraw
from harness import TempDir, check, free_port, log, run, wait_until

TS_BASE = 1767225600000  # 2026-01-01T00:00:00Z
XC_CACHE = os.environ.get("EL_XC_CACHE") or os.path.join(harness.SOURCE, "build", "xc")
APPLIANCE = os.path.join(harness.SOURCE, "tools", "appliance")
GUEST_MAX_S = 240  # the guest's own time limit (el.max_s)


class Guest:
    """One boot of the appliance; the host reaches its broker on self.port only."""

    def __init__(self, workdir):
        self.port = free_port()
        self.http_port = free_port()
        self.logfile = os.path.join(workdir, "serial.log")
        self.proc = None

    def boot(self):
        for attempt in range(3):
            self.logf = open(self.logfile, "w")
            self.proc = subprocess.Popen([APPLIANCE, "run", "--no-build", "--port", str(self.port),
                                          "--http-port", str(self.http_port), "--max-seconds", str(GUEST_MAX_S)],
                                         stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=dict(os.environ, EL_XC_CACHE=XC_CACHE))
            # The free port may have been taken since it was chosen: QEMU then
            # fails at once on the forward; pick another.
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                return self
            if "host forwarding" not in self.serial():
                return self  # some other early exit: status() reports it
            log("port %d or %d was taken; trying others" % (self.port, self.http_port))
            self.logf.close()
            self.port, self.http_port = free_port(), free_port()
        return self

    def serial(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def sub(self, topic, wait_s=2):
        """One retained message, or None. Short -W and retry: the forward
        accepts before the guest's NIC is up, and a poll may hang until then."""
        try:
            r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-t", topic,
                                "-C", "1", "-W", str(wait_s)], capture_output=True, text=True, timeout=wait_s + 10)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0 or not r.stdout.strip():
            return None
        return r.stdout.strip().splitlines()[-1]

    def status(self):
        if self.proc.poll() is not None:
            raise AssertionError("QEMU exited (%s) early:\n%s" % (self.proc.returncode, self.serial()[-4000:]))
        s = self.sub("edgelambda/status")
        return json.loads(s) if s else None

    def pub(self, topic, payload=None, lines=None):
        args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t", topic]
        data = None
        if lines is not None:
            args.append("-l")
            data = ("\n".join(lines) + "\n").encode()
        else:
            args += ["-m", payload]
        r = subprocess.run(args, input=data, capture_output=True, timeout=120)
        check(r.returncode == 0, "mosquitto_pub to the guest failed: %s" % r.stderr)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.logf.close()


def verify_readings_via_status(guest, expected, series):
    """Checks that the guest's daemon ingested exactly `expected` readings in
    `series` series, through what exists today: its retained status read from
    the host with mosquitto_sub. This is the one place where the readings are
    verified: the query check (mosquitto_rr on edgelambda/query through the
    forward) belongs here. Returns the status document."""
    last = [None]

    def done():
        st = guest.status()
        last[0] = st
        return st if st and st["ingest"]["accepted"] == expected else None
    try:
        st = wait_until(done, 60, "%d readings accepted in the guest" % expected, interval=0.2)
    except AssertionError:
        raise AssertionError("status never matched; last seen: %s" % json.dumps(last[0]))
    check(st["ingest"]["dead_letters"] == 0, "dead letters: %s" % st["ingest"])
    check(st["log"]["seq"] >= expected, "log.seq %s" % st["log"]["seq"])
    check(st["speed"]["series"] == series, "series %s, expected %d" % (st["speed"]["series"], series))
    return st


def verify_live_page(guest):
    """The page's files over HTTP and MQTT over WebSockets, through the second forward."""
    web = os.path.join(harness.SOURCE, "web")
    files = sorted(os.path.relpath(os.path.join(d, f), web) for d, _, fs in os.walk(web) for f in fs)
    check("index.html" in files and "app.js" in files, "web/ has no page: %s" % files)
    for rel in files:
        with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (guest.http_port, rel), timeout=30) as r:
            got = r.read()
        with open(os.path.join(web, rel), "rb") as f:
            check(got == f.read(), "the guest served a different %s (%d bytes)" % (rel, len(got)))
    log("the guest served the %d files of web/" % len(files))
    c = mqttraw.Client(guest.http_port, client_id="appliance-ws", websocket=True, timeout=30)
    try:
        c.subscribe("edgelambda/status", qos=0)
        for topic, payload, _ in c.messages(20):
            st = json.loads(payload)
            check(topic == "edgelambda/status" and st.get("state") == "online", "status over WebSockets: %s" % st)
            log("status over MQTT over WebSockets: online, log.seq %s" % st["log"]["seq"])
            return
        raise AssertionError("no retained status over MQTT over WebSockets")
    finally:
        c.close()


def test_appliance_boots_ingests_and_powers_off():
    t0 = time.monotonic()
    r = subprocess.run([APPLIANCE, "build", "--print"], capture_output=True, text=True, timeout=1500,
                       env=dict(os.environ, EL_XC_CACHE=XC_CACHE))
    check(r.returncode == 0, "tools/appliance build failed:\n%s" % r.stderr[-4000:])
    log("image ready in %.1fs" % (time.monotonic() - t0))
    # The guest's config must be one the daemon accepts (checked natively first).
    conf = os.path.join(harness.SOURCE, "tools", "appliance.d", "edgelambda.conf")
    r = subprocess.run([harness.DAEMON, "--check-config", "-c", conf], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "appliance config rejected: %s" % r.stderr)

    td = TempDir("appliance")
    g = Guest(td.path)
    try:
        t0 = time.monotonic()
        g.boot()
        wait_until(lambda: (g.status() or {}).get("state") == "online", 120,
                   "the guest's daemon to say online", interval=0.5)
        log("guest online %.1fs after boot" % (time.monotonic() - t0))
        with open("/proc/%d/cmdline" % g.proc.pid) as f:  # tools/appliance run exec'd QEMU
            cmdline = f.read().split("\0")
        check("qemu-system-aarch64" in cmdline[0], "not QEMU: %s" % cmdline[:3])
        check(any("restrict=on" in a and "hostfwd=tcp:127.0.0.1:%d-" % g.port in a for a in cmdline),
              "QEMU's network is not restricted to a 127.0.0.1 forward: %s" % cmdline)

        n = 300
        g.pub("sensors/pi/temp", lines=['{"value":%.1f,"ts":%d}' % (20 + i / 10, TS_BASE + i)
                                        for i in range(n)])
        g.pub("sensors/pi/hum", lines=["%d" % (40 + i % 7) for i in range(n)])
        st = verify_readings_via_status(g, 2 * n, 2)
        log("guest status: %s" % json.dumps(st["ingest"]))
        # The query, from the host, through the forward, with the real mosquitto_rr.
        q = {"series": "sensors/pi/temp", "from": TS_BASE, "to": TS_BASE + n, "step": "1h",
             "agg": ["count", "sum", "min", "max", "last"]}
        r = subprocess.run(["mosquitto_rr", "-h", "127.0.0.1", "-p", str(g.port), "-t", "edgelambda/query",
                            "-e", "appliance/replies", "-W", "20", "-m", json.dumps(q)],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "mosquitto_rr to the guest failed: %s" % r.stderr)
        ans = json.loads(r.stdout)
        vals = [round(20 + i / 10, 1) for i in range(n)]
        got = {k: sum(b[k] for b in ans["buckets"]) if k in ("count", "sum") else None for k in ("count", "sum")}
        check(ans.get("ok") and got["count"] == n and abs(got["sum"] - math.fsum(vals)) < 1e-9 and
              min(b["min"] for b in ans["buckets"]) == min(vals) and
              max(b["max"] for b in ans["buckets"]) == max(vals),
              "the guest's answer does not match what the host published: %s" % r.stdout[:500])
        log("guest answered the query: %s" % r.stdout[:200])

        verify_live_page(g)

        t1 = time.monotonic()
        g.pub("edgelambda/appliance/poweroff", "now")
        try:
            rc = g.proc.wait(90 * harness.SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError("the guest did not power off:\n%s" % g.serial()[-4000:])
        log("guest powered off %.1fs after the request; whole run %.1fs" %
            (time.monotonic() - t1, time.monotonic() - t0))
        serial = g.serial()
        check(rc == 0, "QEMU exited %s:\n%s" % (rc, serial[-4000:]))
        check("appliance: powering off (requested)" in serial,
              "no power-off request seen:\n%s" % serial[-4000:])
        check("edgelambdad exited with status 0" in serial,
              "edgelambdad did not stop cleanly:\n%s" % serial[-4000:])
        check("reboot: Power down" in serial, "the kernel did not power down:\n%s" % serial[-4000:])
    except Exception:
        if os.path.exists(g.logfile):
            log("---- serial console (tail) ----\n%s" % g.serial()[-4000:])
        raise
    finally:
        g.kill()
        td.cleanup()


if __name__ == "__main__":
    run([test_appliance_boots_ingests_and_powers_off])
