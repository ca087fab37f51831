"""Dead-letter replay (issue 13): `edgelambda deadletters --replay`.

A fleet's payloads (Zigbee2MQTT, Tasmota, Shelly Gen2, InfluxDB line protocol,
CBOR, a JSON array of readings, Sparkplug B) and one that is plain garbage are
published with QoS 1 through the real mosquitto to a daemon with the default
`auto` decoding: every one becomes a dead letter with its reason and detail.
The daemon is restarted (same storage) with the configuration fixed by
[decode] sections; `edgelambda deadletters --replay` decodes them again:
every value is then answered exactly by the query API, at its original
receive time (or its own), flagged as replayed in the master log, each dead
letter marked with the seq of its events. Sparkplug B is skipped (its aliases
belong to a session), the garbage still fails, and both say why. Replaying
again replays nothing (exactly once); a full recompute answers the same.
A kill -9 after the replay was journaled but before its group commit, and the
restart's journal replay, still store each dead letter's events exactly once;
so do kills at random moments during replays. A replay beside 20,000 live QoS 1
readings (two producers on the journal) loses and doubles nothing, and keeps
duplicate detection's packet-id table in step with the journal.
"""
import json
import os
import random
import re
import signal
import subprocess
import time

from harness import (CLI, EMULATOR, SLOW, Broker, Daemon, TempDir, check, loadgen, loadgen_async, log, publish,
                     publish_lines, rr, run, wait_until)
from test_decode import cbor, pub_bytes, sp_metric, sp_payload

CLI_ARGS = EMULATOR + [CLI]
T0 = 1767225600000  # 2026-01-01T00:00:00Z

SUBSCRIBE = "zigbee2mqtt/#, tele/#, shellies/#, telegraf/#, cbor/#, batch/#, spBv1.0/#, junk/#"
AUTO = "[ingest]\nsubscribe = %s\n" % SUBSCRIBE
FIXED = AUTO + """
[decode "zigbee2mqtt/#"]
fields = all

[decode "tele/+/SENSOR"]
fields = all
drop_fields = Time, TempUnit

[decode "shellies/+/status/#"]
fields = all
keep_fields = apower, voltage, aenergy.total

[decode "telegraf/#"]
format = influx
precision = ns

[decode "cbor/#"]
format = cbor

[decode "batch/#"]
value = reading
time = t
time_unit = ms

[decode "spBv1.0/#"]
format = sparkplug_b
"""


def sparkplug_ndata():
    """A Sparkplug B NDATA: alias 1 (no birth in this session) = 21.25."""
    return sp_payload(T0, 1, [sp_metric(alias=1, ts=T0, double=21.25)])


# (topic, payload, reason under auto, {series: [values]} after the fix, own time?)
FLEET = [
    ("zigbee2mqtt/kitchen",
     b'{"temperature":21.4,"humidity":40.1,"battery":97,"occupancy":true,"linkquality":120}',
     "no_value",
     {"zigbee2mqtt/kitchen/temperature": [21.4], "zigbee2mqtt/kitchen/humidity": [40.1],
      "zigbee2mqtt/kitchen/battery": [97], "zigbee2mqtt/kitchen/occupancy": [1],
      "zigbee2mqtt/kitchen/linkquality": [120]}, False),
    ("tele/sonoff1/SENSOR",
     b'{"Time":"2026-12-04T10:00:00","AM2301":{"Temperature":21.4,"Humidity":40.1},"TempUnit":"C"}',
     "no_value",
     {"tele/sonoff1/SENSOR/AM2301/Temperature": [21.4], "tele/sonoff1/SENSOR/AM2301/Humidity": [40.1]},
     False),
    ("shellies/plug1/status/switch:0",
     b'{"id":0,"apower":12.5,"voltage":231.2,"aenergy":{"total":1234.5}}',
     "no_value",
     {"shellies/plug1/status/switch:0/apower": [12.5], "shellies/plug1/status/switch:0/voltage": [231.2],
      "shellies/plug1/status/switch:0/aenergy/total": [1234.5]}, False),
    ("telegraf/pi",
     ("cpu,host=pi usage_idle=97.5,usage_user=1.5 %d000000\nmem,host=pi used_percent=41i %d000000"
      % (T0, T0)).encode(),
     "malformed",
     {"cpu/pi/usage_idle": [97.5], "cpu/pi/usage_user": [1.5], "mem/pi/used_percent": [41]}, True),
    ("cbor/meter", cbor([{"ts": T0 + i * 1000, "value": i * 1.5} for i in range(4)]),
     "malformed", {"cbor/meter": [0.0, 1.5, 3.0, 4.5]}, True),
    ("batch/meter", json.dumps([{"t": T0 + i * 1000, "reading": i * 0.5} for i in range(5)]).encode(),
     "no_value", {"batch/meter": [0.0, 0.5, 1.0, 1.5, 2.0]}, True),
]
SPARKPLUG = ("spBv1.0/plant/NDATA/edge1", sparkplug_ndata(), "malformed")
GARBAGE = ("junk/x", b"not json at all", "malformed")


def publish_all(b, td):
    for topic, payload, *_ in FLEET + [SPARKPLUG, GARBAGE]:
        pub_bytes(b, td, topic, payload)


def dead_letters(d):
    con = d.db()
    try:
        return con.execute("SELECT seq, topic, reason, detail, recv, replayed_seq FROM dead_letters "
                           "ORDER BY seq").fetchall()
    finally:
        con.close()


def check_dead_letters(d):
    """Every payload is a dead letter under auto, with its reason (and detail)."""
    n = len(FLEET) + 2
    wait_until(lambda: len(dead_letters(d)) == n, 30, "%d dead letters" % n)
    rows = dead_letters(d)
    want = [(t, r) for t, _, r, *_ in FLEET] + [(SPARKPLUG[0], SPARKPLUG[2]), (GARBAGE[0], GARBAGE[2])]
    check([(t, r) for _, t, r, *_ in rows] == want, "dead letters: %s" % rows)
    # auto says why where it can tell more than the reason
    details = [detail for _, _, _, detail, _, _ in rows]
    check(details == [None] * 5 + ["element 0: no_value", None, None], "details: %s" % details)
    check(d.event_count() == 0, "events stored under auto")
    return rows


def cli(b, *args, timeout=60):
    r = subprocess.run(CLI_ARGS + ["--uri", b.uri] + list(args), capture_output=True, text=True,
                       timeout=timeout * SLOW)
    return r


def replay(b):
    r = cli(b, "deadletters", "--replay")
    check(r.returncode == 0, "deadletters --replay: %s %s" % (r.stdout, r.stderr))
    m = re.search(r"replayed (\d+) dead letters? \((\d+) events\) \S+ (\d+) still failing \S+ (\d+) skipped",
                  r.stdout)
    check(m, "no totals line: %s" % r.stdout)
    return tuple(int(x) for x in m.groups()), r.stdout


def answer(b, series, from_ms, to_ms):
    ans = rr(b, json.dumps({"series": series, "from": from_ms, "to": to_ms, "step": to_ms - from_ms,
                            "agg": ["count", "sum", "min", "max", "last"]}))
    check(ans["ok"], "query %s: %s" % (series, ans))
    return ans


def check_answers(b, dls, replay_started_ms):
    """Every series answers exactly its values, at the original receive time
    (or the payload's own time)."""
    recv_of = {topic: recv for _, topic, _, _, recv, _ in dls}
    for topic, _, _, series, own_time in FLEET:
        t = T0 if own_time else recv_of[topic]
        check(t < replay_started_ms, "%s: time %d is not before the replay" % (topic, t))
        for name, vals in series.items():
            ans = answer(b, name, t - 3600000, t + 3600000)
            got = [(x["count"], x["sum"], x["min"], x["max"], x["last"]) for x in ans["buckets"]]
            want = [(len(vals), sum(vals), min(vals), max(vals), vals[-1])]
            check(len(got) == 1 and got[0][0] == want[0][0] and
                  all(abs(g - w) < 1e-9 for g, w in zip(got[0][1:], want[0][1:])),
                  "%s: answered %s, want %s" % (name, got, want))


def check_master_log(d, dls):
    """Replayed events carry the flag and the dead letter's receive time; each
    replayable dead letter is marked with the first seq of its events."""
    con = d.db()
    try:
        events = con.execute("SELECT e.seq, s.name, e.ts, e.recv, e.flags FROM events e JOIN series s "
                             "ON s.id = e.series ORDER BY e.seq").fetchall()
        marks = dict(con.execute("SELECT seq, replayed_seq FROM dead_letters").fetchall())
    finally:
        con.close()
    want_events = sum(len(v) for _, _, _, series, _ in FLEET for v in series.values())
    check(len(events) == want_events, "%d events stored, want %d" % (len(events), want_events))
    check(all(f & 0x20 for *_, f in events), "an event without the replayed flag")
    by_topic = {topic: (seq, recv) for seq, topic, _, _, recv, _ in dls}
    for topic, _, _, series, own_time in FLEET:
        seq, recv = by_topic[topic]
        first = marks[seq]
        check(first is not None, "%s: dead letter %d not marked replayed" % (topic, seq))
        n = sum(len(v) for v in series.values())
        mine = [e for e in events if first <= e[0] < first + n]
        check(len(mine) == n and all(e[3] == recv for e in mine),
              "%s: events %s, want %d at recv %d" % (topic, mine, n, recv))
        if not own_time:
            check(all(e[2] == recv for e in mine), "%s: event time is not the receive time" % topic)
    for topic in (SPARKPLUG[0], GARBAGE[0]):
        check(marks[by_topic[topic][0]] is None, "%s marked replayed" % topic)
    return events


def fleet_as_dead_letters(name):
    """A broker and a daemon with the default `auto` decoding that has stored
    the fleet as dead letters: (td, b, d, dead letter rows)."""
    td = TempDir(name)
    b = Broker(td.path).start()
    d = Daemon(td.path, b)
    d.config_text = AUTO
    try:
        d.start()
        publish_all(b, td)
        return td, b, d, check_dead_letters(d)
    except BaseException:
        d.kill()
        b.stop()
        td.cleanup()
        raise


def test_replay_after_fixing_the_config():
    td, b, d, dls = fleet_as_dead_letters("replay")
    try:
        # nothing decodes yet: a replay now replays nothing and says why
        (n, ev, failed, skipped), _ = replay(b)
        check((n, ev, failed, skipped) == (0, 0, len(FLEET) + 2, 0),
              "replay before the fix: %s" % ((n, ev, failed, skipped),))
        # --json: one reply per request (-n 3: 3 + 3 + 2 dead letters), the cursor moving on
        r = cli(b, "deadletters", "--replay", "--json", "-n", "3")
        replies = [json.loads(line) for line in r.stdout.splitlines()]
        check(r.returncode == 0 and [x["examined"] for x in replies] == [3, 3, 2] and
              [x["done"] for x in replies] == [False, False, True] and
              [x["after"] for x in replies] == [dls[2][0], dls[5][0], dls[7][0]] and
              all(x["failed"] == x["examined"] and x["replayed"] == 0 for x in replies),
              "--replay --json: %s %s" % (r.stdout, r.stderr))
        d.stop()
        d.config_text = FIXED
        d.start()
        started = int(time.time() * 1000)
        (n, ev, failed, skipped), out = replay(b)
        want_ev = sum(len(v) for _, _, _, s, _ in FLEET for v in s.values())
        check((n, ev, failed, skipped) == (len(FLEET), want_ev, 1, 1), "replay: %s" % out)
        check("seq %d on junk/x: malformed" % dls[-1][0] in out and
              "on spBv1.0/plant/NDATA/edge1: sparkplug_b" in out, "not-replayed lines: %s" % out)
        log("replayed %d dead letters into %d events; 1 still failing, 1 skipped" % (n, ev))
        events = check_master_log(d, dls)
        check_answers(b, dls, started)
        # exactly once: again, nothing
        (n2, ev2, failed2, skipped2), _ = replay(b)
        check((n2, ev2) == (0, 0) and (failed2, skipped2) == (1, 1), "second replay: %s" %
              ((n2, ev2, failed2, skipped2),))
        check(d.event_count() == len(events), "a second replay stored events")
        # the listing shows where each went
        js = json.loads(cli(b, "deadletters", "--json").stdout)
        marked = {x["seq"]: x["replayed_seq"] for x in js["dead_letters"] if "replayed_seq" in x}
        check(len(marked) == len(FLEET), "listing replayed_seq: %s" % js)
        table = cli(b, "deadletters").stdout
        check(table.count(", replayed as seq ") == len(FLEET), "table: %s" % table)
        # the batch layer: an incremental run (the late buckets), then a full one, answer the same
        for full in (False, True):
            d.status(pred=lambda st: not st["batch"]["running"], timeout=120)
            before = rr(b, '{"op":"status"}')
            ans = rr(b, json.dumps({"op": "recompute", "full": full}), topic="edgelambda/command")
            check(ans["ok"] and ans["started"], "recompute: %s" % ans)
            st = d.status(pred=lambda st: not st["batch"]["running"] and
                          st["batch"]["runs"] > before["batch"]["runs"], timeout=120)
            check(st["batch"]["watermark_seq"] >= before["log"]["seq"] and st["batch"]["last_full"] == full,
                  "recompute: %s" % st["batch"])
            check_answers(b, dls, started)
        st = d.status(pred=lambda s: s["ingest"]["dead_letters_replayed"] == len(FLEET))
        check(st["ingest"]["replayed_events"] == want_ev and st["ingest"]["replay_runs"] == 2 and
              st["ingest"]["replay_failed"] == 2 and st["ingest"]["replay_skipped"] == 2,
              "status: %s" % st["ingest"])
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_kill_before_the_commit_is_still_exactly_once():
    td, b, d, dls = fleet_as_dead_letters("replay-crash")
    try:
        d.stop()
        d.config_text = FIXED
        d.sets["storage.flush_interval_ms"] = "10000"  # the replay waits for its commit
        d.start()
        mark = len(d.log_text())
        asker = subprocess.Popen(CLI_ARGS + ["--uri", b.uri, "deadletters", "--replay", "--timeout", "60"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: "%d journaled" % len(FLEET) in d.log_text()[mark:], 30, "the replay journaled")
            check(all(r[5] is None for r in dead_letters(d)) and d.event_count() == 0,
                  "committed before the kill: the test proves nothing")
            d.kill()
        finally:
            asker.kill()
            asker.wait()
        d.sets["storage.flush_interval_ms"] = "10"
        d.start()
        check("journal records left by the previous run" in d.log_text()[mark:], "no journal replay at start")
        # the replay's record kept the packet-id table in step with the journal
        check("does not match the journal" not in d.log_text()[mark:], "duplicate detection lost its table")
        events = check_master_log(d, dls)
        (n, ev, failed, skipped), _ = replay(b)
        check((n, ev, failed, skipped) == (0, 0, 1, 1), "replay after the crash: %s" %
              ((n, ev, failed, skipped),))
        check(d.event_count() == len(events), "events doubled")
        check_answers(b, dls, int(time.time() * 1000))
        # and a kill -9 after the commit: the restart replays nothing twice
        d.kill()
        d.start()
        check(d.event_count() == len(events), "events doubled after a second crash")
        (n, ev, _, _), _ = replay(b)
        check((n, ev) == (0, 0), "replayed again after a second crash")
        log("kill -9 before the commit: %d events after the restart, each dead letter once" % len(events))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


LIVE = 20000  # QoS 1 readings published while the replay runs
Z2M = 600     # Zigbee2MQTT-style dead letters (six fields each)


def expected_fields(payload):
    """{field: value} a fields = all section makes of a Zigbee2MQTT payload."""
    return {k: (1.0 if v is True else 0.0 if v is False else float(v)) for k, v in json.loads(payload).items()}


def z2m_dead_letters(b, d):
    """Z2M Zigbee2MQTT-style messages (loadgen z2m) under auto: dead letters;
    then the daemon is stopped and its configuration fixed (fields = all)."""
    loadgen(b, count=Z2M, series=20, style="z2m", extra=["--topic-prefix", "z2m"])
    wait_until(lambda: d.query1("SELECT count(*) FROM dead_letters") == Z2M, 60, "the z2m dead letters")
    d.stop()
    d.config_text = '[decode "z2m/#"]\nfields = all\n'


def check_z2m_replayed_once(d):
    """Every z2m dead letter marked once, its six events exactly, nothing else."""
    con = d.db()
    try:
        dls = con.execute("SELECT seq, topic, payload, recv, replayed_seq FROM dead_letters").fetchall()
        replayed = {seq: (name, v, recv, ts) for seq, name, v, recv, ts in con.execute(
            "SELECT e.seq, s.name, e.value, e.recv, e.ts FROM events e JOIN series s ON s.id = e.series "
            "WHERE e.flags & 32")}
    finally:
        con.close()
    check(len(replayed) == 6 * Z2M, "%d replayed events, want %d" % (len(replayed), 6 * Z2M))
    for seq, topic, payload, recv, first in dls:
        check(first is not None, "dead letter %d not replayed" % seq)
        # no time of their own: at the original receive time
        want = {("%s/%s" % (topic, k), v, recv, recv) for k, v in expected_fields(payload).items()}
        got = {replayed.get(s) for s in range(first, first + 6)}
        check(got == want, "dead letter %d: events %s, want %s" % (seq, got, want))
    return replayed


def test_replay_beside_live_ingest():
    """The Paho thread and the replay both append to the journal: 20,000 live
    QoS 1 readings published during a replay of 600 dead letters in rounds of
    50 are all stored once, each dead letter's six events exactly once, and a
    kill -9 afterwards keeps duplicate detection's table in step."""
    td = TempDir("replay-live")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="sensors/#, z2m/#")
    try:
        d.start()
        z2m_dead_letters(b, d)
        d.start()
        ts_base = 1767225600000
        live = loadgen_async(b, LIVE, series=50, ts_base=ts_base, rate=4000)
        # the replay starts once the stream is in, and the stream lasts ~5 s
        wait_until(lambda: d.query1("SELECT count(*) FROM events WHERE flags & 32 = 0") > 0, 60,
                   "the first live readings")
        r = cli(b, "deadletters", "--replay", "-n", "50", timeout=300)
        out, err = live.communicate(timeout=600 * SLOW)
        check(live.returncode == 0, "loadgen: %s %s" % (out, err))
        check(r.returncode == 0 and "replayed %d dead letters (%d events)" % (Z2M, 6 * Z2M) in r.stdout,
              "replay beside ingest: %s %s" % (r.stdout, r.stderr))
        wait_until(lambda: d.query1("SELECT count(*) FROM events WHERE flags & 32 = 0") == LIVE, 120,
                   "the live readings")
        con = d.db()
        try:
            rows = con.execute("SELECT seq, ts FROM events WHERE flags & 32 = 0").fetchall()
        finally:
            con.close()
        check(sorted(t - ts_base for _, t in rows) == list(range(LIVE)),
              "live readings lost or doubled beside the replay")
        replayed = check_z2m_replayed_once(d)
        check(any(min(replayed) < seq < max(replayed) for seq, _ in rows),
              "the replay did not run beside ingest: the test proves nothing")
        mark = len(d.log_text())
        d.kill()
        d.start()
        check("does not match the journal" not in d.log_text()[mark:], "duplicate detection lost its table")
        check(d.query1("SELECT count(*) FROM events") == LIVE + 6 * Z2M, "events after the restart")
        log("%d live readings and %d replayed dead letters (%d events) side by side, each once"
            % (LIVE, Z2M, 6 * Z2M))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_replay_beside_reloads():
    """The replay reads the decoding rules on the serving thread while SIGHUP
    swaps them (the core frees a replaced table once no reader holds it):
    600 dead letters replayed two per request while the configuration is
    reloaded, a table replaced each time, are each replayed exactly once."""
    td = TempDir("replay-reload")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="sensors/#, z2m/#")
    try:
        d.start()
        z2m_dead_letters(b, d)
        d.start()
        conf = os.path.join(d.dir, "edgelambda.conf")
        texts = [d.config_text, d.config_text + '[decode "unused/#"]\nformat = number\n']
        # Two per request: 300 requests, so that the replay outlasts a good
        # number of reloads on a fast machine as on a slow one.
        proc = subprocess.Popen(EMULATOR + [CLI, "--uri", b.uri, "deadletters", "--replay", "-n", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reloads, mark = 0, len(d.log_text())
        while proc.poll() is None and reloads < 30:
            with open(conf, "w") as f:
                f.write(texts[(reloads + 1) % 2])  # a change each time: a new table
            d.proc.send_signal(signal.SIGHUP)
            reloads += 1
            wait_until(lambda: d.log_text()[mark:].count(" reload: ") >= reloads, 30, "reload %d" % reloads)
            # A reading, so that the Paho thread takes the new table and the
            # core may free the old ones (unless the replay holds one).
            publish(b, "sensors/reload/x", str(reloads))
        applied = d.log_text()[mark:].count("reload: applied decode.sections")
        running = proc.poll() is None
        out, err = proc.communicate(timeout=600 * SLOW)
        check(proc.returncode == 0 and "replayed %d dead letters (%d events)" % (Z2M, 6 * Z2M) in out,
              "replay beside reloads: %s %s" % (out, err))
        # Every reload was sent while the replay ran (the loop's condition);
        # how many fit in it depends on the machine, a handful proves the race.
        check(reloads >= 10 and applied >= 3,
              "%d reloads (%d applied) during the replay: the test proves little" % (reloads, applied))
        check_z2m_replayed_once(d)
        wait_until(lambda: d.query1("SELECT count(*) FROM events WHERE flags & 32 = 0") == reloads, 30,
                   "the %d readings published between the reloads" % reloads)
        log("%d dead letters replayed once each through %d reloads of the decoding rules (%d applied)%s"
            % (Z2M, reloads, applied, ", the replay still running after them" if running else ""))
        d.stop()
    except Exception:
        log("\n".join(l for l in d.log_text().splitlines() if "replay:" not in l)[-3000:])
        raise
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_kill_at_random_points_during_replays():
    """kill -9 at five random moments while replays of 600 dead letters run in
    rounds of 50 (journaling, waiting, committing): after the restarts and a
    last replay, each dead letter's six events are stored exactly once."""
    rng = random.Random(int(os.environ.get("EL_SEED", "13")))
    td = TempDir("replay-kills")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="z2m/#")
    try:
        d.start()
        z2m_dead_letters(b, d)
        kills = []
        for _ in range(5):
            d.start()
            before = d.query1("SELECT count(*) FROM dead_letters WHERE replayed_seq IS NOT NULL")
            asker = subprocess.Popen(CLI_ARGS + ["--uri", b.uri, "deadletters", "--replay", "-n", "5"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 0.6))  # where the kill lands, not synchronisation
            d.kill()
            asker.kill()
            asker.wait()
            kills.append(before)
        d.start()
        (n, ev, failed, skipped), _ = replay(b)
        check((failed, skipped) == (0, 0) and ev == 6 * n, "last replay: %s" % ((n, ev, failed, skipped),))
        check_z2m_replayed_once(d)
        check(d.event_count() == 6 * Z2M, "events: %d" % d.event_count())
        log("5 kills during replays (dead letters marked before each: %s), then %d left to replay: "
            "%d events, each once" % (kills, n, 6 * Z2M))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def restart_and_replay(b, d, sets):
    """Restarts d with sets and starts `deadletters --replay` in the
    background: (the log's length at the start, the CLI's process)."""
    d.stop()
    d.sets.update(sets)
    d.start()
    mark = len(d.log_text())
    return mark, subprocess.Popen(CLI_ARGS + ["--uri", b.uri, "deadletters", "--replay"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_part_dead_letter_refused_again_stays_replayable():
    """A message's event refused for series_limit (a per-event dead letter,
    PART 2 of 3) replayed before speed.max_series is raised still fails, says
    why, and stays as it is (no new dead letter, not marked); so does its
    record when the core itself refuses it (a kill -9 before the commit, the
    restart's journal replay under the old limit), whose seqs are never
    handed out again, even after a clean stop. Once the limit is raised, it
    is replayed exactly once."""
    td = TempDir("replay-part")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="zigbee2mqtt/#", speed__max_series=2)
    d.config_text = '[decode "zigbee2mqtt/#"]\nfields = all\n'
    try:
        d.start()
        publish(b, "zigbee2mqtt/x", '{"a":1,"b":2,"c":3}')
        wait_until(lambda: d.query1("SELECT count(*) FROM dead_letters") == 1, 30, "the dead letter")
        wait_until(lambda: d.event_count() == 2, 30, "the two events")
        dls = dead_letters(d)
        check(dls[0][2] == "series_limit", "dead letter: %s" % dls)
        dl_seq = dls[0][0]

        def unchanged(why):
            rows = dead_letters(d)
            check(len(rows) == 1 and rows[0][0] == dl_seq and rows[0][5] is None and d.event_count() == 2,
                  "%s: dead letters %s, %d events" % (why, rows, d.event_count()))

        # the limit is still 2: still failing, and replayable later
        for _ in range(2):
            (n, ev, failed, skipped), out = replay(b)
            check((n, ev, failed, skipped) == (0, 0, 1, 0), "replay under the limit: %s" % out)
            check("seq %d on zigbee2mqtt/x: series_limit" % dl_seq in out, "why: %s" % out)
            unchanged("replay under the limit")
        # journaled under a raised limit, killed before the commit, restarted under the old one:
        # the core refuses the record at the start-up replay
        mark, asker = restart_and_replay(b, d, {"speed.max_series": "3", "storage.flush_interval_ms": "10000"})
        try:
            wait_until(lambda: "1 journaled" in d.log_text()[mark:], 30, "the replay journaled")
            unchanged("committed before the kill: the test proves nothing")
            d.kill()
        finally:
            asker.kill()
            asker.wait()
        d.sets["speed.max_series"] = "2"
        d.sets["storage.flush_interval_ms"] = "10"
        d.start()
        m = re.search(r"dead letter %d is still refused \(series_limit[^)]*\).* at seq (\d+)" % dl_seq,
                      d.log_text()[mark:])
        check(m, "the core did not refuse the record: %s" % d.log_text()[mark:][-2000:])
        refused_seq = int(m.group(1))
        unchanged("the core refused the record")
        st = d.status(pred=lambda st: "replay_refused" in st["ingest"])
        check(st["ingest"]["replay_refused"] == 1 and st["ingest"]["dead_letters_replayed"] == 0,
              "status: %s" % st["ingest"])
        # its seq stays taken after a clean stop (the journal's segments are gone then)
        d.stop()
        d.start()
        publish(b, "zigbee2mqtt/x", '{"a":5}')
        wait_until(lambda: d.event_count() == 3, 30, "a new reading")
        new_seq = d.query1("SELECT max(seq) FROM events")
        check(new_seq > refused_seq, "seq %d handed out again (the refused record had it)" % new_seq)
        unchanged_rows = dead_letters(d)
        check(len(unchanged_rows) == 1 and unchanged_rows[0][5] is None, "dead letters: %s" % unchanged_rows)
        # the limit raised: replayed, exactly once
        d.stop()
        d.sets["speed.max_series"] = "3"
        d.start()
        (n, ev, failed, skipped), out = replay(b)
        check((n, ev, failed, skipped) == (1, 1, 0, 0), "replay after raising the limit: %s" % out)
        rows = dead_letters(d)
        check(len(rows) == 1 and rows[0][5] is not None, "dead letters after the replay: %s" % rows)
        check(d.query1("SELECT count(*) FROM events e JOIN series s ON s.id = e.series WHERE "
                       "s.name = 'zigbee2mqtt/x/c' AND e.value = 3 AND e.flags & 32") == 1, "the event c=3")
        (n, ev, failed, skipped), out = replay(b)
        check((n, ev, failed, skipped) == (0, 0, 0, 0), "second replay: %s" % out)
        check(d.event_count() == 4, "%d events, want 4" % d.event_count())
        log("a per-event dead letter refused again stayed replayable (reply and core), its seq %d unused "
            "after a restart, and was replayed once the limit was raised" % refused_seq)
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


BIG = 150  # dead letters of BIG_PAD bytes: more than the journal holds
BIG_PAD = 60000


def test_stop_during_a_replay():
    """SIGTERM while a replay fills a small journal (the replay waits for
    room; the core commits every 3 s): the daemon stops in bounded time
    (nothing journals after the stop began, and a producer blocked on the
    full journal is woken), exits 0, and the next start and replay still
    store each dead letter's event exactly once."""
    td = TempDir("replay-stop")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="big/#", storage__journal_segment_bytes="2M",
               storage__journal_segments=2)
    try:
        d.start()
        publish_lines(b, "big/x", ['{"v":%d,"pad":"%s"}' % (i, "x" * BIG_PAD) for i in range(BIG)])
        wait_until(lambda: d.query1("SELECT count(*) FROM dead_letters") == BIG, 60, "the dead letters")
        d.config_text = '[decode "big/#"]\nvalue = v\n'
        mark, asker = restart_and_replay(b, d, {"storage.flush_interval_ms": "3000"})
        try:
            # the journal full: the replay waits for the core's commit
            wait_until(lambda: d.query1("SELECT count(*) FROM events") > 0, 30, "the first commit")
            check(d.query1("SELECT count(*) FROM events") < BIG, "the replay is over: the test proves nothing")
            t0 = time.time()
            d.stop(timeout=20)
            took = time.time() - t0
        finally:
            asker.kill()
            asker.wait()
        # the replay stopped with the daemon: it did not go on through every dead letter
        m = re.search(r"replay: (\d+) dead letters examined", d.log_text()[mark:])
        check(m and int(m.group(1)) < BIG, "the replay went on after SIGTERM: %s" % (m and m.group(0)))
        stopped_at = int(m.group(1))
        d.sets["storage.flush_interval_ms"] = "10"
        d.start()
        (n, ev, failed, skipped), out = replay(b)
        check((failed, skipped) == (0, 0) and ev == n, "replay after the stop: %s" % out)
        check(d.query1("SELECT count(*) FROM dead_letters WHERE replayed_seq IS NULL") == 0 and
              d.event_count() == BIG and
              d.query1("SELECT count(DISTINCT value) FROM events") == BIG, "events: %d" % d.event_count())
        log("stopped %.1f s after SIGTERM during a replay (it stopped after %d of %d dead letters); "
            "each replayed once after the restart" % (took, stopped_at, BIG))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_cli_waits_for_a_slow_commit():
    """A replay request waits for its group commit (up to
    storage.flush_interval_ms + 5 s): at flush_interval_ms = 10000 a round
    takes about 10 s, and --replay's default --timeout (30 s) outlasts it."""
    td = TempDir("replay-slow")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="zigbee2mqtt/#")
    try:
        d.start()
        publish(b, "zigbee2mqtt/slow", '{"temperature":21.5}')
        wait_until(lambda: d.query1("SELECT count(*) FROM dead_letters") == 1, 30, "the dead letter")
        d.stop()
        d.config_text = '[decode "zigbee2mqtt/#"]\nfields = all\n'
        d.sets["storage.flush_interval_ms"] = "10000"
        d.start()
        t0 = time.time()
        (n, ev, failed, skipped), out = replay(b)
        took = time.time() - t0
        check((n, ev, failed, skipped) == (1, 1, 0, 0) and "not committed" not in out, "replay: %s" % out)
        check(d.event_count() == 1, "events: %d" % d.event_count())
        log("a replay round waited %.1f s for its commit; the CLI's default timeout outlasted it" % took)
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_replay_after_fixing_the_config, test_part_dead_letter_refused_again_stays_replayable, test_kill_before_the_commit_is_still_exactly_once,
         test_replay_beside_live_ingest, test_replay_beside_reloads, test_kill_at_random_points_during_replays,
         test_stop_during_a_replay, test_cli_waits_for_a_slow_commit])
