"""Prometheus metrics: the metrics.textfile and `edgelambda metrics`, checked by Debian's promtool.

A real mosquitto and edgelambdad with metrics.textfile set take readings,
bad payloads (three dead-letter reasons), a bad query (bad_request) and a
query whose reply topic is a wildcard (rejected). Shown:
- the textfile passes `promtool check metrics` (the real parser and its
  linter: HELP/TYPE, _total on counters, base units), is mode 0644, ends in
  .prom and no temporary file is left beside it;
- once ingest has stopped, its values equal `edgelambda status --json`'s:
  every counter of ingest (by reason), queries (by code and reason, unsent,
  busy), the log's sequence, commit times in seconds, booleans as 0/1, and
  as many samples as the status document has numbers;
- `edgelambda metrics` prints an exposition that passes promtool too, with
  the same ingest counters and its own request counted;
- a textfile in a directory that does not exist is an error in the log, not
  a stopped daemon; a name not ending in .prom is refused by --check-config.
Skipped (exit 77) when promtool (Debian package prometheus) is not installed.
"""
import json
import os
import re
import shutil
import subprocess
import sys

from harness import (CLI, DAEMON, EMULATOR, SLOW, Broker, Daemon, TempDir, check, log, publish,
                     publish_lines, rr, run, wait_until)

ENV = {}
READINGS = 25
BAD = {"malformed": "not a number", "non_numeric": '{"value":"warm"}', "no_value": '{"temp":1}'}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def promtool(text):
    """`promtool check metrics` on text: (exit code, its complaints)."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


def parse(text):
    """{(name, ((label, value), ...)): float} and {family: type}; checks
    that every sample's family has HELP and TYPE lines before it."""
    samples, types, helps = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            check(name not in types, "family %s typed twice" % name)
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            check(m is not None, "not a sample line: %r" % line)
            name = m.group(1)
            check(name in types and name in helps, "%s: no HELP/TYPE before its sample" % name)
            labels = tuple(LABEL.findall(m.group(2) or ""))
            samples[(name, labels)] = float(m.group(3))
    return samples, types


def cli(*args):
    return subprocess.run(EMULATOR + [CLI, "--uri", ENV["broker"].uri] + list(args), capture_output=True,
                          text=True, timeout=60 * SLOW)


def status_json():
    r = cli("status", "--json")
    check(r.returncode == 0, "edgelambda status --json: %s %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)


def read_textfile():
    try:
        with open(ENV["textfile"]) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def settled(st):
    q = st.get("queries", {})
    return (st.get("ingest", {}).get("accepted") == READINGS and
            st["ingest"].get("dead_letters") == len(BAD) and
            q.get("errors", {}).get("bad_request") == 1 and q.get("rejected", {}).get("wildcard") == 1)


def setup():
    td = TempDir("metrics")
    ENV["td"] = td
    node = os.path.join(td.path, "node-exporter")  # stands for /var/lib/prometheus/node-exporter
    os.mkdir(node)
    ENV["textfile"] = os.path.join(node, "edgelambda.prom")
    ENV["broker"] = b = Broker(td.path).start()
    ENV["daemon"] = Daemon(td.path, b, metrics__textfile=ENV["textfile"]).start()
    publish_lines(b, "sensors/kitchen/temp", ["%d.5" % (20 + i % 5) for i in range(READINGS)])
    for reason, payload in BAD.items():
        publish(b, "sensors/bad/%s" % reason, payload)
    answer = rr(b, '{"op":"no-such-op"}')
    check(answer["ok"] is False and answer["error"]["code"] == "bad_request", "bad query: %s" % answer)
    # a reply topic with a wildcard: not answered, counted (queries.rejected.wildcard)
    publish(b, "edgelambda/query", '{"op":"series","reply_to":"replies/#"}')


def cleanup():
    for k in ("daemon", "broker"):
        if k in ENV:
            ENV[k].stop()
    if "td" in ENV:
        ENV["td"].cleanup()


def test_textfile_passes_promtool():
    st = wait_until(lambda: (lambda s: s if settled(s) else None)(status_json()), 30,
                    "status: %d accepted, %d dead letters, 1 bad_request, 1 wildcard" % (READINGS, len(BAD)))
    text = wait_until(lambda: (lambda t: t if "edgelambda_query_rejected_total{reason=\"wildcard\"} 1\n" in t
                               and "edgelambda_ingest_accepted_total %d\n" % READINGS in t else None)(
        read_textfile()), 30, "the textfile to show the same")
    rc, out = promtool(text)
    log("promtool check metrics < textfile: exit %d %s" % (rc, out))
    check(rc == 0 and out == "", "promtool rejects the textfile (exit %d):\n%s" % (rc, out))
    mode = os.stat(ENV["textfile"]).st_mode & 0o777
    check(mode == 0o644, "textfile mode %o, expected 644 (node_exporter's user must read it)" % mode)
    left = sorted(os.listdir(os.path.dirname(ENV["textfile"])))
    check(left == ["edgelambda.prom"], "files beside the textfile: %s" % left)
    ENV["status"] = st


def test_textfile_equals_status():
    # Ingest and queries have stopped: counters cannot move between these reads.
    st = status_json()
    samples, types = parse(read_textfile())
    check(settled(st), "status moved: %s" % json.dumps(st))

    def get(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        check(key in samples, "no sample %s%s" % (name, labels or ""))
        return samples[key]

    want = {
        "edgelambda_ingest_received_total": st["ingest"]["received"],
        "edgelambda_ingest_accepted_total": st["ingest"]["accepted"],
        "edgelambda_ingest_dead_letters_total": st["ingest"]["dead_letters"],
        "edgelambda_ingest_duplicates_total": st["ingest"]["duplicates"],
        "edgelambda_log_seq": st["log"]["seq"],
        "edgelambda_log_journal_bytes": st["log"]["journal_bytes"],
        "edgelambda_log_commit_seconds": st["log"]["commit_ms"] / 1000,
        "edgelambda_log_commit_max_seconds": st["log"]["commit_ms_max"] / 1000,
        "edgelambda_log_replayed_total": st["log"]["replayed"],
        "edgelambda_speed_series": st["speed"]["series"],
        "edgelambda_speed_memory_bytes": st["speed"]["memory_bytes"],
        "edgelambda_mqtt_connects_total": st["mqtt"]["connects"],
        "edgelambda_mqtt_connected": 1 if st["mqtt"]["connected"] else 0,
        "edgelambda_clock_synced": 1 if st["clock_synced"] else 0,
        "edgelambda_query_requests_total": st["queries"]["received"],
        "edgelambda_query_answered_total": st["queries"]["answered"],
        "edgelambda_query_unsent_total": st["queries"]["unsent"],
        "edgelambda_query_busy_at_intake_total": st["queries"]["busy_at_intake"],
        "edgelambda_query_busy_unsent_total": st["queries"]["busy_unsent"],
        "edgelambda_query_slow_total": st["queries"]["slow"],
        "edgelambda_query_quick_total": st["queries"]["quick"],
        "edgelambda_query_quick_declined_total": st["queries"]["quick_declined"],
        "edgelambda_query_memory_bytes": st["queries"]["memory_bytes"],
        "edgelambda_batch_watermark_seq": st["batch"]["watermark_seq"],
        "edgelambda_batch_runs_total": st["batch"]["runs"],
        "edgelambda_sync_enabled": 0,
        "edgelambda_log_error": 0,
    }
    for name, value in want.items():
        check(get(name) == value, "%s = %s, status says %s" % (name, get(name), value))
    for name, label, counts in (("edgelambda_ingest_rejected_total", "reason", st["ingest"]["rejected"]),
                                ("edgelambda_query_errors_total", "code", st["queries"]["errors"]),
                                ("edgelambda_query_rejected_total", "reason", st["queries"]["rejected"])):
        for value, n in counts.items():
            check(get(name, **{label: value}) == n, "%s{%s=%r} != %s" % (name, label, value, n))
    check(get("edgelambda_ingest_rejected_total", reason="malformed") == 1 and
          get("edgelambda_query_errors_total", code="bad_request") == 1, "the bad inputs are counted")
    check(get("edgelambda_build_info", version=st["version"]) == 1, "build_info")
    check(types["edgelambda_ingest_rejected_total"] == "counter" and
          types["edgelambda_log_seq"] == "gauge", "types %s" % types)

    def numbers(doc):
        if isinstance(doc, dict):
            return sum(numbers(v) for v in doc.values())
        return 1 if isinstance(doc, (bool, int, float)) else 0
    # every number and boolean of the document has a sample; texts add build/clock info and the
    # error flags of the log and the batch layer
    extra = 4
    check(len(samples) == numbers(st) + extra,
          "%d samples for %d numbers in the status document" % (len(samples), numbers(st)))


def test_cli_metrics_passes_promtool():
    st = status_json()
    r = cli("metrics")
    check(r.returncode == 0, "edgelambda metrics: exit %d %s" % (r.returncode, r.stderr))
    rc, out = promtool(r.stdout)
    log("edgelambda metrics | promtool check metrics: exit %d %s" % (rc, out))
    check(rc == 0 and out == "", "promtool rejects `edgelambda metrics` (exit %d):\n%s" % (rc, out))
    samples, _ = parse(r.stdout)
    check(samples[("edgelambda_ingest_accepted_total", ())] == READINGS, "accepted")
    check(samples[("edgelambda_ingest_rejected_total", (("reason", "non_numeric"),))] == 1, "non_numeric")
    # the metrics request itself is counted before it is answered
    check(samples[("edgelambda_query_requests_total", ())] == st["queries"]["received"] + 1,
          "requests %s vs status %s" % (samples[("edgelambda_query_requests_total", ())],
                                        st["queries"]["received"]))
    raw = json.loads(cli("metrics", "--json").stdout)
    check(raw["ok"] is True and raw["op"] == "metrics" and raw["text"].startswith("# HELP "), "--json: %s" % raw)
    via_rr = rr(ENV["broker"], '{"op":"metrics","id":7}')
    check(via_rr["id"] == 7 and "edgelambda_ingest_accepted_total %d\n" % READINGS in via_rr["text"],
          "mosquitto_rr {\"op\":\"metrics\"}: %s" % via_rr)


def test_unwritable_textfile_is_logged_not_fatal():
    td = TempDir("metrics-missing")
    try:
        b = Broker(td.path).start()
        missing = os.path.join(td.path, "no-such-dir", "edgelambda.prom")
        d = Daemon(td.path, b, client_id="el-metrics-2", metrics__textfile=missing).start()
        try:
            publish(b, "sensors/x", "1")
            wait_until(lambda: "metrics: cannot write" in d.log_text(), 30, "the write error in the log")
            wait_until(lambda: d.event_count() == 1, 30, "the reading stored anyway")
            check(d.alive(), "the daemon stopped")
        finally:
            d.stop()
            b.stop()
    finally:
        td.cleanup()
    r = subprocess.run(EMULATOR + [DAEMON, "--check-config", "--set", "metrics.textfile=/tmp/edgelambda.txt"],
                       capture_output=True, text=True, timeout=60 * SLOW)
    check(r.returncode == 1 and "ending in .prom" in r.stderr, "--check-config: %d %s" % (r.returncode, r.stderr))


if __name__ == "__main__":
    if not shutil.which("promtool"):
        log("SKIP: promtool not found (Debian package prometheus, in EL_TEST_PACKAGES; "
            "not available on %s?)" % os.uname().machine)
        sys.exit(77)
    try:
        setup()
        run([test_textfile_passes_promtool, test_textfile_equals_status, test_cli_metrics_passes_promtool,
             test_unwritable_textfile_is_logged_not_fatal])
    finally:
        cleanup()
