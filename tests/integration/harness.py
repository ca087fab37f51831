"""Integration-test harness: real mosquitto, real edgelambdad, real SQLite.

Every test starts its own broker on a free 127.0.0.1 port with a generated
config (queues sized deliberately: mosquitto's default max_queued_messages of
1000 drops QoS 1 messages silently, docs/RELIABILITY.md), its own daemon with a
fresh data directory, and talks to them only over loopback. Waiting is always
a bounded poll (wait_until), never a bare sleep used as synchronisation.

Environment (set by ctest): EL_BUILD_DIR (binaries), EL_SOURCE_DIR.
"""
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("EL_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
SOURCE = os.environ.get("EL_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
DAEMON = os.path.join(BUILD, "edgelambdad")
CLI = os.path.join(BUILD, "edgelambda")
# Emulated runs (test_cross.py): EL_EMULATOR, e.g. "qemu-aarch64-static -L
# <sysroot>", goes in front of DAEMON and CLI wherever they are started.
EMULATOR = shlex.split(os.environ.get("EL_EMULATOR", ""))
# Sanitizer builds are slower: scale every timeout.
SANITIZER = next((n for n in ("asan", "tsan") if n in os.path.basename(os.path.normpath(BUILD)).lower()), None)
SLOW = 3.0 if SANITIZER else 1.0


def log(*args):
    print(*args, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout, what, interval=0.02):
    """Polls pred() until it returns a truthy value; fails after timeout s."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * SLOW, what))
        time.sleep(interval)


def read_text(path):
    """A (log) file's text so far; "" before it exists."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def terminate(proc, timeout=10):
    """SIGTERM, then SIGKILL after timeout s; always waited for."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


class TempDir:
    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix="el-%s-" % name)
        # mosquitto started as root drops to its own user: it must reach its files.
        os.chmod(self.path, 0o755)

    def cleanup(self):
        # Called from a test's finally: when a test is failing, what the
        # daemon and the broker logged is the only trace CI keeps of it.
        if sys.exc_info()[0] is not None:
            for name in sorted(os.listdir(self.path)):
                if name.endswith(".log"):
                    lines = read_text(os.path.join(self.path, name)).splitlines()
                    log("--- last %d lines of %s:" % (min(len(lines), 60), name))
                    for line in lines[-60:]:
                        log("  " + line)
        shutil.rmtree(self.path, ignore_errors=True)


class Broker:
    """A private mosquitto on a free loopback port.

    http_dir: also a WebSockets listener on another free port (ws_port) that
    serves the files of that directory over HTTP (the live page, web/).
    Mosquitto 2.0.11 cannot start a WebSockets listener alone: it is always
    beside the MQTT one."""

    def __init__(self, workdir, extra="", http_dir=None):
        self.dir = workdir
        self.port = free_port()
        self.ws_port = None
        if http_dir is not None:
            self.ws_port = free_port()
            extra = "listener %d 127.0.0.1\nprotocol websockets\nhttp_dir %s\n%s" % (self.ws_port, http_dir, extra)
        self.conf = os.path.join(workdir, "mosquitto.conf")
        self.logfile = os.path.join(workdir, "mosquitto.log")
        with open(self.conf, "w") as f:
            f.write(
                "listener %d 127.0.0.1\n"
                "allow_anonymous true\n"
                "persistence false\n"
                "max_queued_messages 0\n"      # 0 = no limit: never drop for a slow/offline subscriber
                "max_queued_bytes 0\n"
                "max_inflight_messages 1000\n"
                "set_tcp_nodelay true\n"       # replies are not held behind PUBACKs (docs/DEPLOY.md)
                "sys_interval 1\n"
                "log_dest file %s\n"
                "log_type error\nlog_type warning\nlog_type notice\n%s"
                % (self.port, self.logfile, extra)
            )
        self.proc = None

    @property
    def uri(self):
        return "tcp://127.0.0.1:%d" % self.port

    def start(self):
        if not os.path.exists(self.logfile):
            open(self.logfile, "w").close()
            os.chmod(self.logfile, 0o666)
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("mosquitto exited: %s" % open(self.logfile).read()[-2000:])
            try:
                for port in (self.port, self.ws_port):
                    if port is not None:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, "mosquitto to listen")
        return self

    def stop(self):
        terminate(self.proc)


class Daemon:
    """edgelambdad with a fresh data dir; options as --set overrides."""

    def __init__(self, workdir, broker, client_id="el-test", **sets):
        self.dir = workdir
        self.datadir = os.path.join(workdir, "data")
        self.broker = broker
        self.sets = {
            "mqtt.uri": broker.uri,
            "mqtt.client_id": client_id,
            "storage.dir": self.datadir,
            "clock.synced": "yes",
            "log.level": "info",
            # CI machines are loaded (2 cores, tests in parallel, sanitizers): a
            # query's deadline is the product's business, tested where it is
            # the subject (test_hostile_queries.py) with the built-in default.
            "query.deadline_ms": str(int(10000 * SLOW)),
        }
        for k, v in sets.items():
            self.sets[k.replace("__", ".")] = str(v)
        self.logfile = os.path.join(workdir, "edgelambdad.log")
        self.proc = None
        self.starts = 0
        self.env = {}  # extra environment (fault injection)
        self.config_text = None  # INI text written to <workdir>/edgelambda.conf and passed with -c

    @property
    def db_path(self):
        return os.path.join(self.datadir, "master.db")

    @property
    def prefix(self):
        return self.sets.get("mqtt.topic_prefix", "edgelambda")

    def args(self):
        a = EMULATOR + [DAEMON]
        if self.config_text is not None:  # a file for what --set cannot say ([decode "..."])
            path = os.path.join(self.dir, "edgelambda.conf")
            with open(path, "w") as f:
                f.write(self.config_text)
            a += ["-c", path]
        for k, v in self.sets.items():
            a += ["--set", "%s=%s" % (k, v)]
        return a

    def start(self, wait_subscribed=True):
        self.starts += 1
        self.log_mark = len(self.log_text())  # this instance's lines start here
        before = self.ready_lines()
        self.logf = open(self.logfile, "a")
        self.proc = subprocess.Popen(self.args(), stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **self.env))
        if wait_subscribed:
            def ready():
                if self.proc.poll() is not None:
                    raise AssertionError("edgelambdad exited %s:\n%s" % (self.proc.returncode, self.log_text()[-3000:]))
                now = self.ready_lines()
                return now[0] > before[0] and now[1] > before[1]
            wait_until(ready, 20, "edgelambdad to subscribe (readings and requests)")
        return self

    def ready_lines(self):
        """(ingest subscriptions, control-plane subscriptions) logged so far:
        readings flow after the first, queries are answered after the second."""
        t = self.log_text()
        return t.count("subscribed to"), t.count("control: answering queries")

    def log_text(self):
        return read_text(self.logfile)

    def stop(self, timeout=30):
        """SIGTERM and wait: a clean stop must exit 0.

        A process that has not reached main() yet dies of SIGTERM's default
        action (the daemon blocks it first thing in main), so wait until the
        current instance has logged its start before asking it to stop."""
        if self.proc and self.proc.poll() is None:
            wait_until(lambda: self.proc.poll() is not None or
                       re.search(r"edgelambdad \S+: master log", self.log_text()[self.log_mark:]),
                       30, "the daemon to start")
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("edgelambdad did not stop within %ss" % timeout)
            check(rc == 0, "edgelambdad exited %s on SIGTERM:\n%s" % (rc, self.log_text()[-3000:]))
        self.proc = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def db(self):
        """A read-only connection to the master log (WAL allows concurrent readers)."""
        con = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=30)
        return con

    def query1(self, sql, *args):
        con = self.db()
        try:
            return con.execute(sql, args).fetchone()[0]
        finally:
            con.close()

    def event_count(self):
        try:
            return self.query1("SELECT count(*) FROM events")
        except sqlite3.Error:
            return 0

    def status(self, timeout=10, pred=None):
        """The retained status document; with pred, polls until pred(status)."""
        last = [None]

        def get():
            r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                                "-t", self.prefix + "/status", "-C", "1", "-W", "2"],
                               capture_output=True, text=True)
            if r.returncode != 0 or not r.stdout.strip():
                return None
            st = json.loads(r.stdout.strip().splitlines()[-1])
            last[0] = st
            try:
                ok = pred is None or pred(st)
            except KeyError:  # e.g. the last instance's {"state":"offline"} before ours
                ok = False
            return st if ok else None
        try:
            return wait_until(get, timeout, "status")
        except AssertionError:
            raise AssertionError("status never matched; last seen: %s" % json.dumps(last[0]))


# ---- the load generator's deterministic stream (tools/cli/lg_stream.h) ----

def lg_value(i):
    return float("%.2f" % (((i * 7919) % 20000) / 100.0 - 50.0))


def lg_topic(i, series, prefix="sensors"):
    return "%s/dev%d/temp" % (prefix, i % series)


def lg_centi(c):
    """Hundredths as lg_stream writes them ("%.2f" from integers)."""
    return "%s%d.%02d" % ("-" if c < 0 else "", abs(c) // 100, abs(c) % 100)


def lg_payload_z2m(i):
    """Message i's payload in style z2m (topic <prefix>/dev<i mod series>)."""
    return ('{"temperature":%s,"humidity":%s,"battery":%d,"occupancy":%s,"linkquality":%d,'
            '"voltage":%d}' % (lg_centi((i * 7919) % 20000 - 5000), lg_centi((i * 104729) % 10000),
                               i % 100, "true" if i % 2 == 0 else "false", i % 256,
                               2500 + (i * 7) % 700))


def loadgen(broker, count=None, seconds=None, series=100, qos=1, style="json-ts", start_index=0,
            ts_base=None, acked_file=None, rate=0, extra=(), timeout=600, check_ok=True):
    args = EMULATOR + [CLI, "--uri", broker.uri, "loadgen", "--series", str(series), "--qos", str(qos),
            "--style", style, "--start-index", str(start_index), "--rate", str(rate), "--quiet"]
    if count is not None:
        args += ["--count", str(count)]
    if seconds is not None:
        args += ["--seconds", str(seconds)]
    if ts_base is not None:
        args += ["--ts-base", str(ts_base)]
    if acked_file:
        args += ["--acked-file", acked_file]
    args += list(extra)
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout * SLOW)
    summary = {}
    for line in r.stdout.splitlines():
        if line.startswith("loadgen:"):
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                summary[k] = v
    if check_ok:
        check(r.returncode == 0, "loadgen failed (%s): %s %s" % (r.returncode, r.stdout, r.stderr))
    summary["returncode"] = r.returncode
    return summary


def loadgen_async(broker, count, series=100, qos=1, style="json-ts", ts_base=None, acked_file=None,
                  rate=0, start_index=0):
    args = EMULATOR + [CLI, "--uri", broker.uri, "loadgen", "--series", str(series), "--qos", str(qos),
            "--style", style, "--count", str(count), "--rate", str(rate), "--quiet",
            "--start-index", str(start_index)]
    if ts_base is not None:
        args += ["--ts-base", str(ts_base)]
    if acked_file:
        args += ["--acked-file", acked_file]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Ledger:
    """What the publisher saw acknowledged (loadgen --acked-file: message
    indices) against what the master log holds (loadgen --ts-base: an event's
    ts - ts_base is its index): missing, stored twice, integrity_check."""

    def __init__(self, d, acked_file, ts_base):
        with open(acked_file) as f:
            self.acked = set(int(x) for x in f.read().split())
        con = d.db()
        try:
            self.stored = [t - ts_base for (t,) in con.execute("SELECT ts FROM events")]
            self.integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()
        self.missing = self.acked - set(self.stored)
        self.dupes = len(self.stored) - len(set(self.stored))


def publish(broker, topic, payload, qos=1, retain=False):
    """One message through the real mosquitto_pub (bytes or str payload)."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", str(qos), "-t", topic]
    if retain:
        args.append("-r")
    if isinstance(payload, str):
        payload = payload.encode()
    args += ["-s"] if payload else ["-n"]  # -s cannot send an empty message
    r = subprocess.run(args, input=payload, capture_output=True)
    check(r.returncode == 0, "mosquitto_pub failed: %s" % r.stderr)


def rr(broker, payload, topic="edgelambda/query", timeout=10, response_topic=None):
    """One MQTT v5 request/response; returns the parsed reply.

    Text payloads go through the real mosquitto_rr (-m). mosquitto_rr cannot
    send bytes that do not fit in argv (NUL, empty), so those are published
    with mosquitto_pub -f and a v5 Response Topic property while
    mosquitto_sub waits on that topic (the request is repeated until the
    subscriber is in place; every request here is idempotent)."""
    import uuid
    rt = response_topic or "test/reply/%s" % uuid.uuid4().hex
    if isinstance(payload, str):
        payload = payload.encode()
    if payload and b"\0" not in payload:
        args = ["mosquitto_rr", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-e", rt,
                "-W", str(int(timeout * SLOW)), "-q", "1", "-m", payload]
        r = subprocess.run(args, capture_output=True, timeout=timeout * SLOW + 10)
        check(r.returncode == 0, "mosquitto_rr failed (%s): %s" % (r.returncode, r.stderr.decode(errors="replace")))
        return json.loads(r.stdout.decode())
    fd, path = tempfile.mkstemp()
    os.write(fd, payload)
    os.close(fd)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", rt, "-C", "1",
                            "-W", str(int(timeout * SLOW))], stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            pub = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-q", "1",
                   "-D", "publish", "response-topic", rt]
            pub += ["-f", path] if payload else ["-n"]
            subprocess.run(pub, check=True, capture_output=True)
            try:
                out, _ = sub.communicate(timeout=0.5)
                return json.loads(out.decode())
            except subprocess.TimeoutExpired:
                continue
        raise AssertionError("no reply to a binary request")
    finally:
        sub.kill()
        os.unlink(path)


def values(buckets):
    """An answer's buckets without their per-bucket "src" (which parts of the
    lambda fed them: it depends on timing, the values do not)."""
    return [{k: v for k, v in x.items() if k != "src"} for x in buckets]


def publish_lines(broker, topic, lines, qos=1):
    """Publishes each line as one message with the real mosquitto_pub -l."""
    data = ("\n".join(lines) + "\n").encode()
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", str(qos),
                        "-t", topic, "-l"], input=data, capture_output=True, timeout=120 * SLOW)
    check(r.returncode == 0, "mosquitto_pub -l failed: %s" % r.stderr)


def run(tests):
    """Runs test functions in order; prints a closing 'N passed, N failed' line."""
    passed = failed = 0
    for t in tests:
        name = t.__name__
        log("--- %s" % name)
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            log("PASS %s (%.1fs)" % (name, time.monotonic() - t0))
        except Exception as e:  # noqa: BLE001 - report every failure kind
            failed += 1
            import traceback
            traceback.print_exc()
            log("FAIL %s: %s" % (name, e))
    log("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
