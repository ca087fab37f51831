"""Sync benchmark: edgelambdad's upstream shipping against the transport limit.

Usage: python3 tools/lib/bench_sync.py --build BUILD_DIR [--events 200000]
         [--series 100] [--runs 3] [--json FILE]

1. A master log of N events of loadgen's sensor stream is made once: a private
   mosquitto, edgelambdad with sync disabled, `edgelambda loadgen` (QoS 1).
2. A local HTTPS sink: nginx terminating TLS (test PKI from the openssl CLI)
   that reads every request body and answers 204 (docs/LIMITS.md's setup).
3. For each format x compression, `runs` times on a fresh copy of the log:
   daemon  edgelambdad starts with sync.url = the sink and drains the whole
           backlog (catch-up at full speed). Rate = N / (end of the last
           request - start of the first), from nginx's access log ($msec,
           $request_time); the sync thread's CPU (thread "el-sync",
           /proc/PID/task/TID/stat) per event; request bytes per event from
           $request_length (body + headers, i.e. on the wire before TLS).
   limit   el_sync_post_loop POSTs the same batches (cut, encoded and
           compressed beforehand by the same code) in a plain libcurl loop on
           one keep-alive connection: the transport's events/s. It also
           measures the encode (incl. SQLite read) and compression ns/event.
   Reported: medians [min-max] of daemon events/s, limit events/s and their
   ratio; the sequential cost of the same work in one thread (SQLite read +
   encode + compress + POST: N / the sum of the three timings) and the
   daemon's ratio to it; wire bytes/event, compression ratio, encode and
   compress ns/event, sync CPU us/event.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))

CONFIGS = [("ndjson", "none"), ("ndjson", "gzip"), ("ndjson", "zstd"), ("influx", "gzip"),
           ("influx", "zstd")]


def thread_cpu_s(pid, name):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != name:
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def med(xs):
    return "%s [%s-%s]" % (fmt(statistics.median(xs)), fmt(min(xs)), fmt(max(xs)))


def fmt(x):
    return "%.3gM" % (x / 1e6) if x >= 1e6 else "%.3gk" % (x / 1e3) if x >= 1e4 else "%.3g" % x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    os.environ["EL_BUILD_DIR"] = os.path.abspath(a.build)
    import harness  # noqa: E402 - needs EL_BUILD_DIR
    from harness import Broker, Daemon, TempDir, check, loadgen, wait_until
    from sync_servers import PKI, Nginx, sync_cursor

    post_loop = os.path.join(a.build, "el_sync_post_loop")
    td = TempDir("bench-sync")
    b = ng = None
    results = {}
    try:
        pki = PKI(td.path)
        b = Broker(td.path).start()
        src = Daemon(os.path.join(td.path), b)
        src.start()
        loadgen(b, count=a.events, series=a.series, qos=1, ts_base=int(time.time() * 1000) - a.events)
        wait_until(lambda: src.event_count() >= a.events, 300, "the master log to fill")
        src.stop()
        last_seq = src.query1("SELECT max(seq) FROM events")
        print("master log: %d events, %d series, %.1f MB" % (
            a.events, a.series, os.path.getsize(src.db_path) / 1e6), flush=True)

        ng = Nginx(td.path, pki, upstream_port=None, name="sink")
        with open(ng.conf) as f:
            conf = f.read().replace("log_format sizes '$status $request_length $bytes_sent $ssl_client_verify';",
                                    "log_format sizes '$status $request_length $msec $request_time';")
        with open(ng.conf, "w") as f:
            f.write(conf)
        ng.start()

        for fmt_, comp in CONFIGS:
            runs = []
            for r in range(a.runs):
                run_dir = os.path.join(td.path, "run")
                shutil.rmtree(run_dir, ignore_errors=True)
                os.makedirs(run_dir)
                shutil.copytree(src.datadir, os.path.join(run_dir, "data"))
                open(ng.access_log, "w").close()
                d = Daemon(run_dir, b, client_id="el-bench-sync", sync__url=ng.url("/ingest"),
                           sync__format=fmt_, sync__compression=comp, sync__ca_file=pki.crt("ca"),
                           sync__device_id="bench", log__level="warn")
                d.proc = subprocess.Popen(d.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_until(lambda: sync_cursor(d)[0] >= last_seq, 300, "the drain")
                cpu = thread_cpu_s(d.proc.pid, "el-sync")
                d.stop()
                lines = wait_until(lambda: (lambda ls: ls if len(ls) > 0 else None)(ng.access_lines()),
                                   10, "nginx's log")
                check(all(l[0] == "204" for l in lines), "sink answered %s" % {l[0] for l in lines})
                start = min(float(l[2]) - float(l[3]) for l in lines)
                end = max(float(l[2]) for l in lines)
                wire = sum(int(l[1]) for l in lines)
                lp = subprocess.run([post_loop, "--dir", os.path.join(run_dir, "data"), "--url",
                                     ng.url("/ingest"), "--ca-file", pki.crt("ca"), "--format", fmt_,
                                     "--compression", comp, "--device", "bench", "--repeat", "3"],
                                    capture_output=True, text=True, timeout=600)
                check(lp.returncode == 0, "el_sync_post_loop failed: %s" % lp.stderr)
                limit = json.loads(lp.stdout)
                work_s = limit["encode_s"] + limit["compress_s"] + limit["post_s"]
                runs.append({
                    "daemon_eps": a.events / max(end - start, 1e-6),
                    "limit_eps": limit["events_per_s"],
                    "pipeline_eps": a.events / work_s,
                    "requests": len(lines),
                    "wire_bytes_per_event": wire / a.events,
                    "body_bytes_per_event": limit["wire_bytes"] / a.events,
                    "raw_bytes_per_event": limit["raw_bytes"] / a.events,
                    "ratio": limit["raw_bytes"] / limit["wire_bytes"],
                    "encode_ns": limit["encode_s"] * 1e9 / a.events,
                    "compress_ns": limit["compress_s"] * 1e9 / a.events,
                    "sync_cpu_us": cpu * 1e6 / a.events,
                })
            results["%s+%s" % (fmt_, comp)] = runs
            rr = runs
            print("%-13s daemon %s ev/s | transport limit %s ev/s (ratio %s) | sequential "
                  "read+encode+compress+post %s ev/s (ratio %s) | %.1f B/event on the wire "
                  "(body %.1f of %.1f raw, %.1fx) | encode %s ns/ev, compress %s ns/ev | sync CPU %s us/ev"
                  % ("%s+%s" % (fmt_, comp), med([x["daemon_eps"] for x in rr]),
                     med([x["limit_eps"] for x in rr]),
                     med([x["daemon_eps"] / x["limit_eps"] for x in rr]),
                     med([x["pipeline_eps"] for x in rr]),
                     med([x["daemon_eps"] / x["pipeline_eps"] for x in rr]),
                     statistics.median(x["wire_bytes_per_event"] for x in rr),
                     statistics.median(x["body_bytes_per_event"] for x in rr),
                     statistics.median(x["raw_bytes_per_event"] for x in rr),
                     statistics.median(x["ratio"] for x in rr),
                     med([x["encode_ns"] for x in rr]), med([x["compress_ns"] for x in rr]),
                     med([x["sync_cpu_us"] for x in rr])), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        if ng:
            ng.stop()
        if b:
            b.stop()
        td.cleanup()


if __name__ == "__main__":
    main()
