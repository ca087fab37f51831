"""The `edgelambda` client against a real mosquitto and a real edgelambdad.

Known readings (explicit event times, published with the real mosquitto_pub)
go into two series; then every request/response command of the CLI (query,
query --match, series, last, recompute, sync) is run as a subprocess: its
table shows the right counts and values, its --json output equals the
answer mosquitto_rr gets for the same request, error answers print the
daemon's message and exit 1, a missing daemon is a clear timeout (exit 1),
usage errors and unknown commands exit 2, and --help works for every
command. `loadgen --style z2m` publishes exactly the stream lg_stream.h
documents (topics and payloads recomputed here).
"""
import datetime
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time

from harness import (CLI, SLOW, Broker, Daemon, TempDir, check, free_port, lg_payload_z2m, log,
                     publish_lines, rr, run, wait_until)
from mqttraw import Client

A = "sensors/a/temp"
B = "sensors/b/temp"
NOW_MS = int(time.time() * 1000)
BASE = (NOW_MS // 60000 - 5) * 60000  # a minute boundary five minutes ago
# series A: 10 readings in the minute at BASE, 3 in the next; series B: 5 later on.
A_ROWS = [(BASE + i * 1000, 20.0 + i) for i in range(10)] + \
         [(BASE + 60000 + i * 1000, 30.5 + i) for i in range(3)]
B_ROWS = [(BASE + 120000 + i * 1000, -1.25 * i) for i in range(5)]
RANGE = ["--from", str(BASE - 60000), "--to", str(BASE + 600000), "--step", "1m"]

ENV = {}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
FOOTER = re.compile(r"^seq (\d+) \u00b7 sources: speed (\d+), batch (\d+), log (\d+)$")


def cli(*args, uri=None, timeout=30):
    """Runs the CLI; returns CompletedProcess (text)."""
    cmd = [CLI, "--uri", uri or ENV["broker"].uri] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW)


def ok(r, what):
    check(r.returncode == 0, "%s: exit %s\nstdout: %s\nstderr: %s" % (what, r.returncode, r.stdout, r.stderr))
    return r.stdout


def table(text):
    """The first aligned table in text: (header, rows) split on 2+ spaces."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    cells = [re.split(r"\s{2,}", ln.strip()) for ln in lines]
    header = cells[0]
    rows = []
    for c in cells[1:]:
        if len(c) != len(header):
            break
        rows.append(dict(zip(header, c)))
    return header, rows


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + \
        (".%03dZ" % (ms % 1000) if ms % 1000 else "Z")


def setup():
    td = TempDir("cli")
    ENV["td"] = td
    ENV["broker"] = b = Broker(td.path).start()
    ENV["daemon"] = d = Daemon(td.path, b).start()
    publish_lines(b, A, [json.dumps({"value": v, "ts": t}) for t, v in A_ROWS])
    publish_lines(b, B, [json.dumps({"value": v, "ts": t}) for t, v in B_ROWS])
    total = len(A_ROWS) + len(B_ROWS)
    wait_until(lambda: d.event_count() >= total, 30, "%d events in the master log" % total)


def cleanup():
    if "daemon" in ENV:
        ENV["daemon"].stop()
    if "broker" in ENV:
        ENV["broker"].stop()
    if "td" in ENV:
        ENV["td"].cleanup()


# ---- query ----

def test_query_table_shows_counts_and_values():
    out = ok(cli("query", A, *RANGE, "--agg", "count,mean,min,max,last"), "query")
    log(out)
    header, rows = table(out)
    check(header == ["t", "count", "mean", "min", "max", "last"], "header %s" % header)
    check(len(rows) == 2, "two buckets expected: %s" % rows)
    check(rows[0]["t"] == iso(BASE) and rows[1]["t"] == iso(BASE + 60000), "bucket times %s" % rows)
    check(all(RFC3339.match(r["t"]) for r in rows), "t not RFC 3339: %s" % rows)
    check((rows[0]["count"], rows[0]["mean"], rows[0]["min"], rows[0]["max"], rows[0]["last"]) ==
          ("10", "24.5", "20", "29", "29"), "first bucket %s" % rows[0])
    check((rows[1]["count"], rows[1]["mean"], rows[1]["min"], rows[1]["max"], rows[1]["last"]) ==
          ("3", "31.5", "30.5", "32.5", "32.5"), "second bucket %s" % rows[1])
    foot = [FOOTER.match(ln) for ln in out.splitlines()]
    foot = [m for m in foot if m]
    check(len(foot) == 1, "one footer line expected:\n%s" % out)
    check(int(foot[0].group(1)) == len(A_ROWS) + len(B_ROWS), "seq in footer: %s" % foot[0].group(0))


def test_query_default_columns_and_quantiles():
    out = ok(cli("query", A, *RANGE), "query with default aggregates")
    header, rows = table(out)
    check(header == ["t", "count", "mean", "min", "max", "last"], "default header %s" % header)
    out = ok(cli("query", A, *RANGE, "--agg", "p50,stddev,sum"), "query quantiles")
    header, rows = table(out)
    check(header == ["t", "p50", "stddev", "sum"], "header %s" % header)
    check(rows[0]["p50"] == "24" and rows[0]["sum"] == "245" and rows[0]["stddev"] == "2.87228",
          "p50/sum/stddev %s" % rows[0])


def test_query_json_equals_mosquitto_rr():
    out = ok(cli("query", A, *RANGE, "--agg", "count,mean,p95,last", "--json"), "query --json")
    got = json.loads(out)
    req = {"series": A, "from": BASE - 60000, "to": BASE + 600000, "step": "1m",
           "agg": ["count", "mean", "p95", "last"]}
    want = rr(ENV["broker"], json.dumps(req))
    check(got == want, "CLI --json differs from mosquitto_rr:\n%s\n%s" % (got, want))
    check(got["ok"] is True and [b["count"] for b in got["buckets"]] == [10, 3], "answer %s" % got)


def test_query_match_prints_one_table_per_series():
    out = ok(cli("query", "sensors/+/temp", "--match", *RANGE, "--agg", "count,last"), "query --match")
    log(out)
    blocks = [blk for blk in out.strip().split("\n\n")]
    check(len(blocks) == 2, "two series blocks expected:\n%s" % out)
    counts = {}
    for blk in blocks:
        name, rest = blk.split("\n", 1)
        header, rows = table(rest)
        check(header == ["t", "count", "last"], "header %s" % header)
        counts[name] = [int(r["count"]) for r in rows]
        check(any(FOOTER.match(ln) for ln in rest.splitlines()), "footer missing in %s" % blk)
    check(counts == {A: [10, 3], B: [5]}, "counts per series %s" % counts)
    got = json.loads(ok(cli("query", "sensors/#", "--match", *RANGE, "--json"), "query --match --json"))
    want = rr(ENV["broker"], json.dumps({"match": "sensors/#", "from": BASE - 60000,
                                         "to": BASE + 600000, "step": "1m"}))
    check(got == want, "match --json differs from mosquitto_rr:\n%s\n%s" % (got, want))


def test_query_errors_exit_1_with_the_daemons_message():
    r = cli("query", "no/such/series")
    check(r.returncode == 1 and "no such series" in r.stderr, "unknown series: %s %r" % (r.returncode, r.stderr))
    check(r.stdout == "", "nothing on stdout for an error: %r" % r.stdout)
    r = cli("query", A, "--from", "yesterday")
    check(r.returncode == 1 and 'bad value for "from"' in r.stderr, "bad from: %s %r" % (r.returncode, r.stderr))
    r = cli("query", A, "--from", "-30d", "--step", "1s")
    check(r.returncode == 1 and "too_large" in r.stderr, "too many buckets: %s %r" % (r.returncode, r.stderr))
    r = cli("query", "no/such/series", "--json")
    check(r.returncode == 1 and json.loads(r.stdout)["error"]["code"] == "not_found",
          "--json error: %s %r" % (r.returncode, r.stdout))


def test_no_daemon_or_no_broker_is_a_clear_failure():
    t0 = time.monotonic()
    r = cli("--prefix", "nobody-here", "query", A, "--timeout", "0.5")
    check(r.returncode == 1 and "no answer" in r.stderr and "nobody-here/query" in r.stderr,
          "no daemon: %s %r" % (r.returncode, r.stderr))
    check(time.monotonic() - t0 < 10 * SLOW, "the timeout was not honoured")
    r = cli("series", "--timeout", "1", uri="tcp://127.0.0.1:%d" % free_port())
    check(r.returncode == 1 and "cannot use the broker" in r.stderr, "no broker: %s %r" % (r.returncode, r.stderr))


# ---- series and last ----

def test_series_lists_counts_and_newest_event():
    out = ok(cli("series"), "series")
    log(out)
    header, rows = table(out)
    check(header == ["series", "count", "last time", "last value"], "header %s" % header)
    by = {r["series"]: r for r in rows}
    check(set(by) == {A, B}, "series %s" % list(by))
    check(by[A]["count"] == "13" and by[A]["last value"] == "32.5" and by[A]["last time"] == iso(A_ROWS[-1][0]),
          "A row %s" % by[A])
    check(by[B]["count"] == "5" and by[B]["last value"] == "-5", "B row %s" % by[B])
    out = ok(cli("series", "--match", "sensors/b/#"), "series --match")
    header, rows = table(out)
    check([r["series"] for r in rows] == [B], "filtered %s" % rows)
    got = json.loads(ok(cli("series", "--json"), "series --json"))
    check(got == rr(ENV["broker"], '{"op":"series"}'), "series --json differs from mosquitto_rr")


def test_last_prints_newest_samples():
    out = ok(cli("last", A, "-n", "3"), "last -n 3")
    log(out)
    header, rows = table(out)
    check(header == ["series", "t", "value", "seq"], "header %s" % header)
    check([r["value"] for r in rows] == ["32.5", "31.5", "30.5"], "newest first: %s" % rows)
    check(rows[0]["t"] == iso(A_ROWS[-1][0]), "time %s" % rows[0])
    out = ok(cli("last", "--match", "sensors/+/temp"), "last --match")
    header, rows = table(out)
    check({r["series"]: r["value"] for r in rows} == {A: "32.5", B: "-5"}, "one sample each: %s" % rows)
    got = json.loads(ok(cli("last", B, "-n", "2", "--json"), "last --json"))
    check(got == rr(ENV["broker"], json.dumps({"op": "last", "series": B, "n": 2})),
          "last --json differs from mosquitto_rr")
    r = cli("last", "no/such/series")
    check(r.returncode == 1 and "no series" in r.stderr, "unknown series: %s %r" % (r.returncode, r.stderr))


# ---- commands ----

def check_command(args, request):
    """The CLI prints what the daemon answers to the same command."""
    want = rr(ENV["broker"], json.dumps(request), topic="edgelambda/command")
    r = cli(*args)
    if want["ok"]:
        check(r.returncode == 0 and re.search(r"^ok\s+true$", r.stdout, re.M),
              "%s: exit %s, %r (daemon: %s)" % (args, r.returncode, r.stdout, want))
    else:
        check(r.returncode == 1 and want["error"]["message"] in r.stderr,
              "%s: exit %s, %r (daemon: %s)" % (args, r.returncode, r.stderr, want))
    r = cli(*(list(args) + ["--json"]))
    got = json.loads(r.stdout)
    check(got.get("ok") == want["ok"] and r.returncode == (0 if want["ok"] else 1),
          "%s --json: %s %r" % (args, r.returncode, r.stdout))
    return want


def test_sync_and_recompute_print_the_daemons_answer():
    want = check_command(["sync"], {"op": "sync", "retry_parked": False})
    check(want["ok"] is False and "sync is disabled" in want["error"]["message"], "sync answer %s" % want)
    r = cli("sync", "--retry-parked")
    check(r.returncode == 1 and "sync is disabled" in r.stderr, "sync --retry-parked: %r" % r.stderr)
    check_command(["recompute"], {"op": "recompute", "full": False})
    check_command(["recompute", "--full"], {"op": "recompute", "full": True})


# ---- export ----


def test_export_streams_raw_events_beside_the_daemon():
    """export reads master.db directly while the daemon runs: CSV and NDJSON
    rows equal the master log's, --match and --from/--to select."""
    d = ENV["daemon"]
    con = d.db()
    want = con.execute("SELECT s.name, e.ts, e.value, e.seq FROM events e JOIN series s ON s.id = e.series "
                       "ORDER BY s.id, e.ts, e.seq").fetchall()
    con.close()
    r = subprocess.run([CLI, "export", "--dir", d.datadir, "--match", "sensors/+/temp"],
                       capture_output=True, text=True, timeout=60 * SLOW)
    lines = ok(r, "export csv").splitlines()
    check(lines[0] == "series,ts_ms,time,value,seq", "csv header %r" % lines[0])
    got = []
    for ln in lines[1:]:
        name, ts, when, value, seq = ln.split(",")
        parsed = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
        check(round(parsed.timestamp() * 1000) == int(ts), "time column %r for %s" % (when, ts))
        got.append((name, int(ts), float(value), int(seq)))
    check(got == want, "csv export differs from the master log:\n%s\n%s" % (got[:3], want[:3]))
    r = subprocess.run([CLI, "export", "--dir", d.datadir, "--series", A, "--format", "ndjson",
                        "--from", str(BASE + 60000), "--to", str(BASE + 62000)],
                       capture_output=True, text=True, timeout=60 * SLOW)
    rows = [json.loads(ln) for ln in ok(r, "export ndjson").splitlines()]
    check([(x["ts"], x["value"]) for x in rows] == [(t, v) for t, v in A_ROWS if BASE + 60000 <= t < BASE + 62000],
          "ndjson export over a range: %s" % rows)
    r = subprocess.run([CLI, "export", "--dir", d.datadir, "--series", "no/such"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "no series" in r.stderr, "unknown series: %s %r" % (r.returncode, r.stderr))
    log("export: %d events as CSV equal the master log; a range as NDJSON" % len(got))


def test_verify_reports_in_plain_words():
    """verify on the live log (after a full recompute) is all good; on a copy
    with a missing event, a block summary that lies and a view row that
    disagrees, it names each problem and exits 1."""
    d = ENV["daemon"]
    ok(cli("recompute", "--full"), "recompute --full")
    total = len(A_ROWS) + len(B_ROWS)
    d.status(pred=lambda st: st["batch"]["watermark_seq"] >= total and not st["batch"]["running"], timeout=60)
    r = subprocess.run([CLI, "verify", "--dir", d.datadir], capture_output=True, text=True, timeout=60 * SLOW)
    out = ok(r, "verify")
    m = re.search(r"(\d+) sampled rows recomputed, 0 differ", out)
    check("verify: all good" in out and m and int(m.group(1)) > 0, "verify on a good log: %s" % out)
    bad = os.path.join(ENV["td"].path, "bad")
    shutil.rmtree(bad, ignore_errors=True)
    os.makedirs(bad)
    for f in ("master.db", "views.db"):
        src = sqlite3.connect(os.path.join(d.datadir, f))
        dst = sqlite3.connect(os.path.join(bad, f))
        src.backup(dst)
        src.close()
        dst.close()
    con = sqlite3.connect(os.path.join(bad, "master.db"))
    con.execute("DELETE FROM events WHERE seq = 3")
    con.execute("UPDATE blocks SET max_ts = min_ts")
    con.commit()
    con.close()
    con = sqlite3.connect(os.path.join(bad, "views.db"))
    con.execute("UPDATE views SET count = count + 1")
    con.commit()
    con.close()
    r = subprocess.run([CLI, "verify", "--dir", bad], capture_output=True, text=True, timeout=60 * SLOW)
    check(r.returncode == 1 and "sequence numbers between" in r.stdout and "the first 3" in r.stdout and
          "beyond its summary" in r.stdout and "the raw events say" in r.stdout and "problems found" in r.stdout,
          "verify on a damaged copy: %s %s" % (r.stdout, r.stderr))
    log("verify: all good on the live log; a gap, a block and a view row named on a damaged copy")


# ---- loadgen ----

def test_loadgen_z2m_publishes_the_documented_stream():
    b = ENV["broker"]
    sub = Client(b.port, client_id="cli-z2m")
    try:
        sub.subscribe("lgz2m/#")  # not the daemon's filter: nothing is stored
        ok(cli("loadgen", "--style", "z2m", "--topic-prefix", "lgz2m", "--series", "3", "--count", "6",
               "--start-index", "7", "--qos", "1", "--quiet"), "loadgen --style z2m")
        got = [(t, p.decode()) for t, p, _ in sub.messages(2 * SLOW)]
    finally:
        sub.close()
    want = [("lgz2m/dev%d" % (i % 3), lg_payload_z2m(i)) for i in range(7, 13)]
    check(sorted(got) == sorted(want), "z2m stream: got %r, expected %r" % (got, want))
    for _, p in want:
        check(96 <= len(p) <= 103 and len(json.loads(p)) == 6, "z2m payload %r" % p)


# ---- usage ----

COMMANDS = ["query", "series", "last", "status", "recompute", "sync", "loadgen", "export", "verify"]


def test_help_for_every_command():
    out = ok(cli("--help"), "--help")
    for c in COMMANDS:
        check(re.search(r"^  %s\s" % c, out, re.M), "%s missing from --help" % c)
    for c in COMMANDS:
        r = ok(cli(c, "--help"), "%s --help" % c)
        check(r.startswith("usage: edgelambda") and (" %s " % c) in r.splitlines()[0] + " ",
              "%s --help: %r" % (c, r[:200]))
        check(ok(cli("help", c), "help %s" % c) == r, "help %s differs from %s --help" % (c, c))
    ok(cli("status", "--timeout", "5"), "status still works")


def test_usage_errors_exit_2():
    for args in (["no-such-command"], [], ["query"], ["query", A, B], ["query", A, "--bogus"],
                 ["query", A, "--agg", ""], ["last", "-n", "0"], ["series", "extra"],
                 ["sync", "--full"], ["recompute", "--retry-parked"], ["query", A, "--timeout", "x"]):
        r = cli(*args)
        check(r.returncode == 2, "%s: exit %s, expected 2 (%r)" % (args, r.returncode, r.stderr))
        check(r.stderr != "", "%s: no message" % args)


if __name__ == "__main__":
    try:
        setup()
        run([test_query_table_shows_counts_and_values, test_query_default_columns_and_quantiles,
             test_query_json_equals_mosquitto_rr, test_query_match_prints_one_table_per_series,
             test_query_errors_exit_1_with_the_daemons_message,
             test_no_daemon_or_no_broker_is_a_clear_failure,
             test_series_lists_counts_and_newest_event, test_last_prints_newest_samples,
             test_sync_and_recompute_print_the_daemons_answer,
             test_export_streams_raw_events_beside_the_daemon, test_verify_reports_in_plain_words,
             test_loadgen_z2m_publishes_the_documented_stream, test_help_for_every_command,
             test_usage_errors_exit_2])
    finally:
        cleanup()
