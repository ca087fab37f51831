"""Reload (issue 15): SIGHUP (systemctl reload) re-reads the configuration
file without stopping ingest. Every key config.c marks live takes effect at
once, on the thread that owns it: the core's own (log level,
storage.max_bytes, full_policy, flush_interval_ms), the decoding rules
([decode] sections: a table swapped between two messages on the Paho
thread), sync.* (the worker restarted with the new url and token), the
batch schedule and the query limits. Every other changed key is named in
one log line and keeps its running value until a restart; a file that does
not load changes nothing. Under QoS 1 ingest through the reloads: nothing
lost, nothing stored twice, each message decoded wholly by the old rules or
wholly by the new ones.

A reload that stops sync and cannot start it again (neither with the new
settings nor with the running ones: here a token file others may read)
leaves a floor: retention (storage.max_age_s) keeps every event the old
worker had not acknowledged until a later reload starts sync again, which
then ships each of them exactly once. A reloaded storage.max_bytes moves the
automatic hard ceiling (hard_max_bytes = 0) with it: commits go on past the
old ceiling.
"""
import contextlib
import os
import signal
import types

from harness import (SLOW, Broker, Daemon, Ledger, TempDir, check, free_port, loadgen, loadgen_async, log, rr, run,
                     wait_until)
from sync_servers import FaultServer, dump_diagnostics, master_events
from test_decode import pub_bytes, sp_metric, sp_payload, stored

TS_BASE = 1767225600000


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def sighup(d, conf, text, until):
    """Writes the file, sends SIGHUP and waits for a log line containing
    until; returns that line."""
    write(conf, text)
    mark = len(d.log_text())
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: until in d.log_text()[mark:], 10 * SLOW, "the reload's log line (%s)" % until)
    return [ln for ln in d.log_text()[mark:].splitlines() if until in ln][0]


def reload(d, conf, text):
    return sighup(d, conf, text, "reload: applied")


@contextlib.contextmanager
def ingesting(name, config, count, series, rate, first, fs=None):
    """A daemon reading config(workdir) from its file, and loadgen publishing
    count QoS 1 messages into it; yields once first events are stored."""
    td = TempDir(name)
    b = Broker(td.path).start()
    d = Daemon(td.path, b)
    t = types.SimpleNamespace(td=td, b=b, d=d, count=count, lg=None, conf=os.path.join(td.path, "edgelambda.conf"),
                              acked=os.path.join(td.path, "acked.txt"))
    try:
        # (the harness passes log.level and query.deadline_ms with --set: an override outranks the file)
        d.config_text = config(td.path)
        d.start()
        t.lg = loadgen_async(b, count=count, series=series, qos=1, ts_base=TS_BASE, acked_file=t.acked, rate=rate)
        wait_until(lambda: d.event_count() >= first, 30 * SLOW, "ingest before the reload")
        yield t
        d.stop()
    except Exception:
        dump_diagnostics(fs, d)
        raise
    finally:
        if t.lg and t.lg.poll() is None:
            t.lg.kill()
            t.lg.wait()
        d.kill()
        b.stop()
        td.cleanup()


def all_stored(t):
    """Waits for loadgen and every event; checks 0 lost, 0 doubled."""
    out, err = t.lg.communicate(timeout=120 * SLOW)
    check(t.lg.returncode == 0, "loadgen: %s %s" % (out, err))
    wait_until(lambda: t.d.event_count() >= t.count, 60 * SLOW, "every event")
    g = Ledger(t.d, t.acked, TS_BASE)
    check(not g.missing and g.dupes == 0 and len(g.acked) == t.count and len(g.stored) == t.count,
          "%d acked, %d stored, %d missing, %d twice" % (len(g.acked), len(g.stored), len(g.missing), g.dupes))
    return g


def test_reload_under_ingest():
    """The core's own keys; a non-live key named and kept; a file that does
    not load changes nothing."""
    with ingesting("reload", lambda _: "[storage]\nflush_interval_ms = 10\n\n[mqtt]\nkeepalive_s = 30\n",
                   20000, 20, 4000, 2000) as t:
        d = t.d
        line = reload(d, t.conf, "[storage]\nflush_interval_ms = 50\nmax_bytes = 64M\n\n[mqtt]\nkeepalive_s = 10\n")
        check("storage.flush_interval_ms" in line and "storage.max_bytes" in line and
              "kept until a restart: mqtt.keepalive_s" in line, "reload line: %s" % line)
        st = d.status(pred=lambda s: s["log"].get("max_bytes") == 64 << 20, timeout=10 * SLOW)
        check(st["state"] == "online", "status after the reload: %s" % st)
        # a file that does not load: named, nothing changes, ingest goes on
        refused = sighup(d, t.conf, "[storage]\nflush_interval_ms = soon\n", "keeping the running configuration")
        check("flush_interval_ms" in refused and d.alive(), "refused reload: %s" % refused)
        st = d.status(pred=lambda s: s["reload"]["count"] == 2, timeout=10 * SLOW)
        check(st["reload"]["failures"] == 1 and "flush_interval_ms" in st["reload"]["result"],
              "status after the refused reload: %s" % st["reload"])
        all_stored(t)
        log("two reloads under QoS 1 ingest: %d acked, 0 lost, 0 doubled; %s" % (t.count, line.split(": ", 1)[1]))


def test_reload_decoders_under_ingest():
    """(a) a reload adds a [decode] section under QoS 1 ingest: every message
    is decoded by exactly one rule set, the old one up to a point and the new
    one from there on (loadgen's json-ts {"value":V,"ts":T}: the [ingest]
    keys store series <topic>, fields = all stores <topic>/value); (e) keys
    that are not live are named and keep working (the old subscription
    still ingests)."""
    with ingesting("reload-decode", lambda _: "[storage]\nflush_interval_ms = 10\n", 20000, 20, 4000, 3000) as t:
        d = t.d
        before = d.event_count()  # committed before SIGHUP: decoded by the old rules
        line = reload(d, t.conf, "[storage]\nflush_interval_ms = 10\n\n[ingest]\nsubscribe = sensors/#, other/#\n"
                                 "\n[query]\nmax_match = 50\n\n[decode \"sensors/#\"]\nfields = all\n")
        check("applied decode.sections" in line and
              "kept until a restart: ingest.subscribe, query.max_match" in line, "reload line: %s" % line)
        st = d.status(pred=lambda s: s["reload"]["count"] == 1, timeout=10 * SLOW)
        received_after = st["ingest"]["received"]  # >= every message decoded before the swap
        check(st["reload"]["failures"] == 0 and "decode.sections" in st["reload"]["result"],
              "status reload: %s" % st["reload"])
        all_stored(t)
        rules = []  # per message in arrival (seq) order: "old" or "new"
        for seq, series, ts, value in master_events(d):
            i = ts - TS_BASE
            old = "sensors/dev%d/temp" % (i % 20)
            check(series in (old, old + "/value"), "message %d stored as %r" % (i, series))
            rules.append((i, "old" if series == old else "new"))
        check([i for i, _ in rules] == sorted(i for i, _ in rules), "messages stored out of order")
        k = next(n for n, (_, r) in enumerate(rules) if r == "new")
        check(all(r == "old" for _, r in rules[:k]) and all(r == "new" for _, r in rules[k:]),
              "the rules switch more than once: %s" % [n for n in range(1, len(rules))
                                                       if rules[n][1] != rules[n - 1][1]][:10])
        check(before <= k <= received_after,
              "first message under the new rules is #%d: before SIGHUP %d were stored, %d received by "
              "the reload" % (k, before, received_after))
        log("decoders reloaded under QoS 1 ingest: messages 0-%d by the [ingest] keys, %d-%d by the new "
            "[decode] section (SIGHUP after %d stored, %d received by the reload): %d acked, 0 lost, 0 doubled, "
            "none decoded twice or by both" % (k - 1, k, t.count - 1, before, received_after, t.count))


def sync_conf(url, token, batch_events=500):
    return ("[sync]\nurl = %s\ntoken_file = %s\ncompression = none\nbatch_events = %d\ntimeout_s = 5\n"
            % (url, token, batch_events))


def test_reload_sync_under_ingest():
    """(b) sync.url from a dead port to a live upstream, and a new token file:
    the worker restarts with them; every event arrives upstream exactly once
    (after dedup by sequence: a resend is byte-identical) with the new token.
    A second reload while a request hangs: the next worker resends exactly
    that batch first."""
    fs = FaultServer().start()
    dead = "http://127.0.0.1:%d/ingest" % free_port()

    def config(path):
        write(os.path.join(path, "old.token"), "old-secret\n", 0o600)
        write(os.path.join(path, "new.token"), "new-secret\n", 0o600)
        return sync_conf(dead, os.path.join(path, "old.token"))
    try:
        with ingesting("reload-sync", config, 10000, 10, 3000, 2000, fs) as t:
            d, new_tok = t.d, os.path.join(t.td.path, "new.token")
            st = d.status(pred=lambda s: s["sync"]["enabled"] and s["sync"]["last_error"], timeout=20 * SLOW)
            check(not fs.snapshot()[0] and st["sync"]["acked_seq"] == 0, "nothing shipped to the dead port: %s" % st)
            line = reload(d, t.conf, sync_conf(fs.url, new_tok))
            check("applied sync.url, sync.token_file;" in line and "kept until a restart: none" in line,
                  "reload line: %s" % line)
            reply = rr(t.b, '{"op":"sync"}', topic=d.prefix + "/command")  # reaches the new worker
            check(reply.get("ok") is True, "sync command after the reload: %s" % reply)
            fs.set_script(["hang"])
            wait_until(lambda: any(r["action"] == "hang" for r in fs.snapshot()[0]), 30 * SLOW, "a hanging request")
            hung = [r for r in fs.snapshot()[0] if r["action"] == "hang"][0]["headers"]["idempotency-key"]
            n_before = len(fs.snapshot()[0])
            line = reload(d, t.conf, sync_conf(fs.url, new_tok, 400))
            check("applied sync.batch_events;" in line, "reload line: %s" % line)
            wait_until(lambda: len(fs.snapshot()[0]) > n_before, 30 * SLOW, "a request after the reload")
            resent = fs.snapshot()[0][n_before]["headers"]["idempotency-key"]
            check(resent == hung, "after the reload %s was sent first, expected the one in flight %s" % (resent, hung))
            all_stored(t)
            events = master_events(d)
            wait_until(lambda: d.status()["sync"].get("acked_seq", 0) >= events[-1][0], 60 * SLOW,
                       "sync of every event")
            reqs, _ = fs.snapshot()
            by_seq, sent = {}, 0
            for r in fs.accepted_batches():
                check(r["headers"].get("authorization") == "Bearer new-secret",
                      "request with %r" % r["headers"].get("authorization"))
                for e in r["events"]:
                    sent += 1
                    check(by_seq.setdefault(e["seq"], e) == e, "seq %d arrived twice, differently" % e["seq"])
            check(sorted(by_seq) == [e[0] for e in events],
                  "upstream has %d distinct events, the master log %d" % (len(by_seq), len(events)))
            for seq, series, ts, value in events:
                e = by_seq[seq]
                check((e["series"], e["ts"], e["value"]) == (series, ts, value), "event %d differs: %s" % (seq, e))
            # an empty url turns sync off, live too
            line = reload(d, t.conf, sync_conf("", new_tok))
            check("applied sync.url, sync.batch_events;" in line, "reload line: %s" % line)
            reply = rr(t.b, '{"op":"sync"}', topic=d.prefix + "/command")
            check(reply.get("ok") is False and "sync is disabled" in reply["error"]["message"],
                  "sync command with sync off: %s" % reply)
            d.status(pred=lambda s: s["sync"]["enabled"] is False and s["reload"]["count"] == 3, timeout=10 * SLOW)
            log("sync reloaded from a dead port to a live upstream with a new token under QoS 1 ingest: %d events "
                "upstream exactly once (%d sent in %d requests), all with the new token; a second reload while "
                "%s hung: resent first; then off by an empty url; 0 lost, 0 doubled" % (len(by_seq), sent, len(reqs), hung))
    finally:
        fs.stop()


def test_reload_query_limit_and_batch_schedule():
    """(d) query.max_rows lowered: a request over the new limit gets
    too_large, raised again: answered; (c) batch.schedule from none to
    'every 1s': a scheduled run happens. Under QoS 1 ingest, 0 lost 0 doubled."""
    base = "[batch]\nidle_for_s = 86400\nmax_lag_s = 604800\n"
    series_q = '{"op":"series"}'
    with ingesting("reload-batch", lambda _: base, 12000, 10, 2000, 3000) as t:
        d, b = t.d, t.b
        line = reload(d, t.conf, base + "\n[query]\nmax_rows = 1000\n")
        check("applied query.max_rows;" in line, "reload line: %s" % line)
        ans = rr(b, series_q, topic=d.prefix + "/query")
        check(ans.get("ok") is False and ans["error"]["code"] == "too_large" and
              "1000" in ans["error"]["message"], "over the new max_rows: %s" % ans)
        line = reload(d, t.conf, base)
        ans = rr(b, series_q, topic=d.prefix + "/query")
        check(ans.get("ok") is True and len(ans["series"]) == 10, "max_rows back to its default: %s" % ans)
        st = d.status()
        check(st["batch"]["runs"] == 0, "no batch run before the schedule: %s" % st["batch"])
        line = reload(d, t.conf, base + "schedule = every 1s\n")
        check("applied batch.schedule;" in line, "reload line: %s" % line)
        st = d.status(pred=lambda s: s["batch"]["runs"] >= 1, timeout=30 * SLOW)
        check(st["batch"]["last_trigger"] == "schedule", "batch after the reload: %s" % st["batch"])
        all_stored(t)
        log("query.max_rows 1000 -> too_large, back -> answered; batch.schedule 'every 1s' -> run by "
            "'schedule'; under QoS 1 ingest: %d acked, 0 lost, 0 doubled" % t.count)


def test_reload_sparkplug_aliases_survive():
    """A reload adds a sparkplug_b section (its state is made then); a later
    reload that changes the sections keeps the aliases the birth taught:
    the next NDATA by alias lands in its named series, no gap, no dead letter."""
    td = TempDir("reload-spb")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="spBv1.0/#")
    d.config_text = ""
    conf = os.path.join(td.path, "edgelambda.conf")
    spb = '[decode "spBv1.0/#"]\nformat = sparkplug_b\n'
    try:
        d.start()
        line = reload(d, conf, spb)
        check("applied decode.sections;" in line, "reload line: %s" % line)
        birth = sp_payload(TS_BASE, 0, [sp_metric("temp", 1, double=20.5), sp_metric("on", 2, boolean=True)])
        pub_bytes(b, td, "spBv1.0/plant/NBIRTH/edge1", birth)
        pub_bytes(b, td, "spBv1.0/plant/NDATA/edge1", sp_payload(TS_BASE + 1000, 1, [sp_metric(alias=1, double=21.0)]))
        wait_until(lambda: stored(d).get("plant/edge1/temp", (0,))[0] == 2, 30 * SLOW, "the birth and NDATA")
        line = reload(d, conf, '[decode "other/#"]\nformat = number\n\n' + spb)
        check("applied decode.sections;" in line, "reload line: %s" % line)
        pub_bytes(b, td, "spBv1.0/plant/NDATA/edge1", sp_payload(TS_BASE + 2000, 2, [sp_metric(alias=1, double=22.5)]))
        wait_until(lambda: stored(d).get("plant/edge1/temp", (0,))[0] == 3, 30 * SLOW, "the NDATA after the reload")
        got = stored(d)
        check(got["plant/edge1/temp"] == (3, 22.5) and d.query1("SELECT count(*) FROM dead_letters") == 0,
              "after the reload: %s" % got)
        st = d.status(pred=lambda s: s["ingest"].get("sparkplug_births") == 1)
        check(st["ingest"]["sparkplug_seq_gaps"] == 0 and st["ingest"]["sparkplug_unknown_alias"] == 0,
              "sparkplug counters: %s" % st["ingest"])
        log("sparkplug_b section added by a reload; aliases from its birth survive a second reload")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_reload_sync_cannot_restart_keeps_floor():
    """(a) sync ships the first 3000 events, then the upstream refuses (503)
    and 3000 more build a backlog; every event is older than
    storage.max_age_s, so retention removes whatever the views cover and sync
    acknowledged. The token file becomes readable by others and a reload
    changes sync.batch_events: sync cannot start, with the new settings nor
    with the running ones. Retention ticks on with the views covering
    everything, yet every event above the old acknowledged seq stays. The
    mode fixed and the original file reloaded (no key differs from the running
    settings): sync starts again and the upstream has every event exactly once
    after dedup."""
    fs = FaultServer().start()
    td = TempDir("reload-sync-floor")
    b = Broker(td.path).start()
    d = Daemon(td.path, b)
    conf, token = os.path.join(td.path, "edgelambda.conf"), os.path.join(td.path, "sync.token")
    first, second = 3000, 3000
    total = first + second

    def config(batch_events):
        return "[storage]\nmax_age_s = 2592000\n\n" + sync_conf(fs.url, token, batch_events)
    try:
        write(token, "secret\n", 0o600)
        d.config_text = config(500)
        d.start()
        loadgen(b, count=first, series=10, ts_base=TS_BASE)
        wait_until(lambda: d.event_count() + (d.query1("SELECT coalesce(min(seq), 1) FROM events") - 1) >= first,
                   30 * SLOW, "the first events")
        d.status(pred=lambda s: s["sync"]["acked_seq"] == first, timeout=60 * SLOW)
        oldest = lambda: d.query1("SELECT coalesce(min(seq), 0) FROM events")  # noqa: E731
        wait_until(lambda: oldest() > 1, 60 * SLOW, "retention of shipped events")
        trimmed_before = oldest() - 1
        fs.set_script([], default=("status", 503, 1))
        loadgen(b, count=second, series=10, ts_base=TS_BASE, start_index=first)
        d.status(pred=lambda s: s["log"]["seq"] >= total and s["sync"]["last_error"], timeout=30 * SLOW)
        os.chmod(token, 0o644)
        line = sighup(d, conf, config(400), "sync cannot start again with the running settings either")
        check("up to seq %d" % first in line, "the floor: %s" % line)
        # the views cover everything, every event is old: only the floor keeps them
        st = d.status(pred=lambda s: s["batch"]["watermark_seq"] >= total and not s["batch"]["running"] and
                      not s["sync"]["enabled"], timeout=60 * SLOW)
        up0 = st["uptime_s"]

        def uptime():  # the live status ({"op":"status"}): the retained one is published on change
            r = rr(b, '{"op":"status"}', topic=d.prefix + "/query")
            return r.get("uptime_s", 0) if r.get("ok") else 0
        wait_until(lambda: uptime() >= up0 + 4, 30 * SLOW, "four more retention ticks", interval=0.5)
        kept = d.query1("SELECT count(*) FROM events WHERE seq > ?", first)
        check(kept == second and d.query1("SELECT max(seq) FROM events") == total,
              "with sync unable to restart, %d of the %d unshipped events stayed (oldest seq %s)" % (
                  kept, second, d.query1("SELECT min(seq) FROM events")))
        # the mode fixed and the ORIGINAL file back: nothing differs from the
        # running settings, yet sync (off since the failed reload) starts again
        os.chmod(token, 0o600)
        fs.set_script([], default="ok")
        line = reload(d, conf, config(500))
        check("applied sync (off since a failed reload);" in line, "reload line: %s" % line)
        d.status(pred=lambda s: s["sync"]["enabled"] and s["sync"]["acked_seq"] >= total, timeout=60 * SLOW)
        by_seq = {}
        for r in fs.accepted_batches():
            for e in r["events"]:
                check(by_seq.setdefault(e["seq"], e) == e, "seq %d arrived twice, differently" % e["seq"])
        check(sorted(by_seq) == list(range(1, total + 1)),
              "upstream has %d distinct seqs of %d" % (len(by_seq), total))
        log("sync could not restart after a reload (token file mode 0644): retention had trimmed %d shipped "
            "events and kept all %d unshipped ones through the outage's ticks; fixed and reloaded: %d events "
            "upstream exactly once after dedup" % (trimmed_before, second, len(by_seq)))
        d.stop()
    except Exception:
        dump_diagnostics(fs, d)
        raise
    finally:
        d.kill()
        b.stop()
        fs.stop()
        td.cleanup()


def test_reload_max_bytes_moves_hard_ceiling():
    """(c) storage.max_bytes = 2M with the automatic hard ceiling
    (hard_max_bytes = 0: max_bytes + max(max_bytes / 4, 4M) = 6M) and
    stop_ingest; sync to an upstream that refuses, so nothing may be removed:
    commits stop at 2M. A reload to max_bytes = 64M: commits resume and go on
    past the old 6M ceiling (no "database or disk is full"), every reading
    acknowledged and stored."""
    fs = FaultServer(default=("status", 503, 1)).start()
    old_ceiling = (2 << 20) + (4 << 20)

    def config(max_bytes):
        return ("[storage]\nmax_bytes = %s\nfull_policy = stop_ingest\nflush_interval_ms = 10\n\n"
                "[sync]\nurl = %s\ncompression = none\n" % (max_bytes, fs.url))
    try:
        with ingesting("reload-ceiling", lambda _: config("2M"), 200000, 50, 20000, 1000, fs) as t:
            d = t.d
            wait_until(lambda: "stop_ingest: no more commits" in d.log_text(), 120 * SLOW, "commits stopped at 2M")
            held = d.event_count()
            mark = len(d.log_text())
            line = reload(d, t.conf, config("64M"))
            check("applied storage.max_bytes;" in line, "reload line: %s" % line)
            g = all_stored(t)
            size = d.query1("PRAGMA page_count") * d.query1("PRAGMA page_size")
            check(size > old_ceiling, "master.db is %d bytes, not past the old ceiling %d" % (size, old_ceiling))
            check("database or disk is full" not in d.log_text()[mark:],
                  "a commit hit the old ceiling: %s" % [ln for ln in d.log_text()[mark:].splitlines()
                                                       if "disk is full" in ln][:3])
            check(d.query1("PRAGMA integrity_check") == "ok", "integrity_check")
            log("max_bytes 2M -> 64M by a reload: commits held at %d events went on to %d, master.db %d bytes "
                "(old automatic ceiling %d), no commit refused; %d acked, 0 lost, 0 doubled" % (
                    held, len(g.stored), size, old_ceiling, len(g.acked)))
    finally:
        fs.stop()


if __name__ == "__main__":
    run([test_reload_under_ingest, test_reload_decoders_under_ingest, test_reload_sync_under_ingest,
         test_reload_query_limit_and_batch_schedule, test_reload_sparkplug_aliases_survive,
         test_reload_sync_cannot_restart_keeps_floor, test_reload_max_bytes_moves_hard_ceiling])
