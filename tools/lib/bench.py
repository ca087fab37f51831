"""tools/bench: ingest benchmark against the broker-path limit (see tools/bench).

ingest: for each QoS, in one run:
  limit  - el_countsub (a Paho MQTTAsync subscriber that only counts) receives
           N messages over S series from loadgen through a tuned mosquitto;
           rate = N / (last - first message).
  daemon - edgelambdad receives the same stream into its master log;
           rate = N / (last - first receive time stored in the log).
  sqlite - el_sqlite_baseline writes the same rows with plain SQLite in
           1,000-row transactions: bytes written per row (from /proc/self/io).
Reports msgs/s, the ratio to the limit, bytes written to disk per event
(/proc/PID/io write_bytes - cancelled_write_bytes) against SQLite's own, and
the daemon's peak RSS (VmHWM).
"""
import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out waiting for " + what)
        time.sleep(0.05)


def proc_io(pid):
    io = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            io[k.strip()] = int(v)
    return io["write_bytes"] - io["cancelled_write_bytes"]


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Broker:
    def __init__(self, d):
        self.port = free_port()
        conf = os.path.join(d, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 1000\n" % self.port)
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, "mosquitto")
        self.uri = "tcp://127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def loadgen(build, uri, n, series, qos, ts_base):
    r = subprocess.run([os.path.join(build, "edgelambda"), "--uri", uri, "loadgen", "--count", str(n),
                        "--series", str(series), "--qos", str(qos), "--ts-base", str(ts_base),
                        "--quiet"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("bench: loadgen failed: " + r.stdout + r.stderr)
    return r.stdout.strip()


def run_limit(build, uri, n, series, qos):
    cs = subprocess.Popen([os.path.join(build, "el_countsub"), "--uri", uri, "--topic", "sensors/#",
                           "--qos", str(qos), "--count", str(n), "--timeout", "60"],
                          stdout=subprocess.PIPE, text=True)
    line = cs.stdout.readline()
    if "ready" not in line:
        raise SystemExit("bench: countsub did not get ready: " + line)
    loadgen(build, uri, n, series, qos, 1767225600000)
    out = cs.stdout.read()
    cs.wait()
    kv = dict(x.split("=", 1) for x in out.split() if "=" in x)
    if int(kv.get("received", 0)) != n:
        raise SystemExit("bench: countsub received %s of %d" % (kv.get("received"), n))
    return float(kv["rate"])


def run_daemon(build, uri, n, series, qos, durability, workdir):
    data = os.path.join(workdir, "data-q%d" % qos)
    logf = open(os.path.join(workdir, "daemon-q%d.log" % qos), "w")
    d = subprocess.Popen([os.path.join(build, "edgelambdad"), "--set", "mqtt.uri=" + uri,
                          "--set", "storage.dir=" + data, "--set", "ingest.qos=%d" % qos,
                          "--set", "storage.durability=" + durability,
                          "--set", "clock.synced=yes", "--set", "mqtt.client_id=bench-q%d" % qos],
                         stdout=logf, stderr=subprocess.STDOUT)
    logpath = logf.name
    wait_until(lambda: "subscribed to" in open(logpath).read(), 20, "daemon subscription")
    io0 = proc_io(d.pid)
    loadgen(build, uri, n, series, qos, 1767225600000)
    db = os.path.join(data, "master.db")

    def count():
        try:
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            c = con.execute("SELECT count(*) FROM events").fetchone()[0]
            con.close()
            return c >= n
        except sqlite3.Error:
            return False
    wait_until(count, 300, "daemon to store %d events" % n)
    io1 = proc_io(d.pid)
    hwm = vm_hwm_kb(d.pid)
    d.send_signal(signal.SIGTERM)
    d.wait()
    con = sqlite3.connect(db)
    c, lo, hi = con.execute("SELECT count(*), min(recv), max(recv) FROM events").fetchone()
    con.close()
    rate = (c - 1) / max((hi - lo) / 1000.0, 1e-3)
    return rate, (io1 - io0) / n, hwm, c


def run_baseline(build, workdir, n, series):
    db = os.path.join(workdir, "baseline.db")
    r = subprocess.run([os.path.join(build, "el_sqlite_baseline"), db, str(n), str(series), "1000"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("bench: sqlite baseline failed: " + r.stderr)
    kv = dict(x.split("=", 1) for x in r.stdout.split() if "=" in x)
    return float(kv["bytes_per_row"]), float(kv["rate"])


def bench_ingest(args):
    work = tempfile.mkdtemp(prefix="el-bench-", dir=args.workdir)
    qoses = [0, 1] if args.qos == "all" else [int(args.qos)]
    print("ingest benchmark: %d messages over %d series, durability %s" % (args.messages, args.series, args.durability))
    base_bpr, base_rate = run_baseline(args.build, work, args.messages, args.series)
    print("  sqlite baseline (1,000-row transactions): %.0f rows/s, %.0f bytes written/row" % (base_rate, base_bpr))
    results = []
    try:
        for q in qoses:
            b = Broker(work)
            try:
                limit = run_limit(args.build, b.uri, args.messages, args.series, q)
                rate, bpe, hwm, c = run_daemon(args.build, b.uri, args.messages, args.series, q,
                                               args.durability, work)
            finally:
                b.stop()
            target = 0.9 if q == 1 else 0.8
            results.append((q, limit, rate, bpe, hwm))
            print("  QoS %d: limit (counting subscriber) %.0f msgs/s | edgelambdad %.0f msgs/s = %.2f of limit (target >= %.2f) | "
                  "%.0f bytes written/event = %.2fx sqlite (target <= 1.5) | peak RSS %.1f MB | stored %d"
                  % (q, limit, rate, rate / limit, target, bpe, bpe / base_bpr, hwm / 1024.0, c))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main():
    ap = argparse.ArgumentParser(prog="tools/bench")
    ap.add_argument("--build", required=True)
    ap.add_argument("what", choices=["ingest"])
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--qos", default="all")
    ap.add_argument("--durability", default="normal")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    if args.what == "ingest":
        bench_ingest(args)


if __name__ == "__main__":
    main()
