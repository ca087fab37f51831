"""Sync through a scripted outage (docs/SPEC.md §8, docs/RELIABILITY.md "Upstream over HTTPS").

A real mosquitto, a real edgelambdad, loadgen's stream, and the fault-injecting
HTTPS endpoint of sync_servers.FaultServer (TLS with the test CA) that answers,
in order: 500, 503 + Retry-After, 429 + Retry-After, 413, 400, 401, a hang
longer than sync.timeout_s, a reset in the middle of the body, a reset after
the whole body was received — each followed by a success — and then a hang
during which the daemon is SIGKILLed and restarted.

Checked afterwards, against the master log:
  - every event arrived (in a request whose body the server fully received);
  - every request's headers match its body (device, first/last seq,
    Idempotency-Key = device-first-last); bodies are zstd (decoded here);
  - duplicates are only exact resends: a seq that arrived twice arrived in
    requests with the same key and byte-identical events;
  - order: seqs increase within each batch, and across delivered batches
    (parked batches, shipped late by retry-parked, aside);
  - Retry-After (1 s) and the timeout were honoured (gaps between attempts);
  - the batch in flight at the SIGKILL is the first one resent after the
    restart, with the same key;
  - 400/401 parked two batches, shown in status (sync.parked_batches,
    last_error; acked_seq stays below the first parked seq, so retention keeps
    them), and a {"op":"sync","retry_parked":true} command on the
    command topic shipped them (same keys as when they were refused).
"""
import os
import time

from harness import (Broker, Daemon, TempDir, check, loadgen_async, log, rr, run, wait_until, SLOW)
from sync_servers import (dump_diagnostics, PKI, FaultServer, master_events, sync_cursor, sync_status, wait_synced)

COUNT = 30000
DEVICE = "pi-faults"


def kind(action):
    return action if isinstance(action, str) else action[0]


def test_scripted_outage_with_sigkill():
    td = TempDir("sync-faults")
    pki = PKI(td.path)
    script = ["ok", ("status", 500), "ok", ("status", 503, 1), "ok", ("status", 429, 1), "ok",
              ("status", 413), "ok", "ok", ("status", 400), "ok", ("status", 401), "ok",
              "hang", "ok", "reset_mid", "ok", "reset_after", "ok", "ok", "hang"]
    kill_at = len(script)  # the request that answers the last "hang": SIGKILL while it hangs
    fs = FaultServer(pki, script=script, hang_s=5).start()
    b = Broker(td.path).start()
    d = Daemon(td.path, b, sync__url=fs.url + "?db=test", sync__format="ndjson",
               sync__compression="zstd", sync__ca_file=pki.crt("ca"), sync__device_id=DEVICE,
               sync__batch_events=400, sync__timeout_s=2)
    lg = None
    try:
        d.start()
        ts_base = int(time.time() * 1000) - COUNT
        lg = loadgen_async(b, count=COUNT, series=50, qos=1, ts_base=ts_base, rate=2500)

        wait_until(lambda: len(fs.snapshot()[0]) >= kill_at, 90, "the scripted requests")
        d.kill()
        reqs, _ = fs.snapshot()
        hung_key = reqs[kill_at - 1]["headers"]["idempotency-key"]
        check(kind(reqs[kill_at - 1]["action"]) == "hang", "request %d should hang" % kill_at)
        log("SIGKILL while %s hangs; %d requests so far" % (hung_key, len(reqs)))
        d.start()

        out, err = lg.communicate(timeout=300 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        wait_synced(d, COUNT, 120, parked=2)

        # the first request after the restart resends the batch in flight at the kill
        reqs, _ = fs.snapshot()
        check(reqs[kill_at]["headers"]["idempotency-key"] == hung_key,
              "after the restart %s was sent first, expected %s" % (
                  reqs[kill_at]["headers"]["idempotency-key"], hung_key))

        st = sync_status(d, b)
        log("status before retry-parked: %s" % st)
        check(st["parked_batches"] == 2, "status shows %s parked batches" % st["parked_batches"])
        check(st["last_error"] and "HTTP 40" in st["last_error"] and "parked" in st["last_error"],
              "last_error: %r" % st["last_error"])
        check(st["backlog_events"] > 0, "parked events count as backlog")
        parked_keys = [r["headers"]["idempotency-key"] for r in reqs
                       if kind(r["action"]) == "status" and r["action"][1] in (400, 401)]
        check(len(parked_keys) == 2, "parked keys %s" % parked_keys)
        first_parked = min(int(k.split("-")[-2]) for k in parked_keys)
        check(st["acked_seq"] == first_parked - 1,
              "status acked_seq %d must stay below the first parked seq %d (retention keeps "
              "parked events)" % (st["acked_seq"], first_parked))

        n_before = len(reqs)
        reply = rr(b, '{"op":"sync","retry_parked":true}', topic=d.prefix + "/command")
        check(reply.get("ok") is True and reply.get("retry_parked") is True, "command reply %s" % reply)
        wait_until(lambda: sync_cursor(d)[1] == 0, 30, "parked batches shipped")
        reqs, _ = fs.snapshot()
        resent = [r["headers"]["idempotency-key"] for r in reqs[n_before:]]
        check(resent == parked_keys, "retry-parked sent %s, expected %s" % (resent, parked_keys))
        st = sync_status(d, b)
        check(st["parked_batches"] == 0 and not st["last_error"] and st["backlog_events"] == 0
              and st["acked_seq"] == sync_cursor(d)[0], "status after retry-parked: %s" % st)
        d.stop()
        verify(d, fs, parked_keys)
    except Exception:
        dump_diagnostics(fs, b, d)
        raise
    finally:
        if lg and lg.poll() is None:
            lg.kill()
            lg.wait()
        d.kill()
        b.stop()
        fs.stop()
        td.cleanup()


def verify(d, fs, parked_keys):
    events = master_events(d)
    check(len(events) == COUNT, "master log holds %d events, expected %d" % (len(events), COUNT))
    reqs, conns = fs.snapshot()
    by_seq = {}
    delivered_order = []
    seen_keys = {}
    for i, r in enumerate(reqs):
        h = r["headers"]
        check(h.get("x-edgelambda-device") == DEVICE, "device header %s" % h.get("x-edgelambda-device"))
        check(h.get("content-encoding") == "zstd", "content-encoding %s" % h.get("content-encoding"))
        check(r["path"] == "/ingest?db=test", "path %s" % r["path"])
        if not r["received"]:
            continue  # reset in the middle of the body: nothing arrived
        evs = r["events"]
        first, last = int(h["x-edgelambda-first-seq"]), int(h["x-edgelambda-last-seq"])
        key = h["idempotency-key"]
        check(key == "%s-%d-%d" % (DEVICE, first, last), "key %s for %d-%d" % (key, first, last))
        check(evs and evs[0]["seq"] == first and evs[-1]["seq"] == last,
              "request %d: headers %d-%d, body %s-%s" % (i, first, last, evs[0]["seq"], evs[-1]["seq"]))
        seqs = [e["seq"] for e in evs]
        check(all(a < b for a, b in zip(seqs, seqs[1:])), "request %d: seqs not increasing" % i)
        if key in seen_keys:
            check(seen_keys[key] == evs, "request %d resends key %s with different events" % (i, key))
        else:
            seen_keys[key] = evs
        if kind(r["action"]) not in ("ok", "reset_after", "hang"):
            continue  # refused: not delivered (413 re-cut, 400/401 parked and resent later)
        for e in evs:
            if e["seq"] in by_seq:
                check(by_seq[e["seq"]][0] == key,
                      "seq %d arrived in %s and in %s: not an exact resend" % (e["seq"], by_seq[e["seq"]][0], key))
            by_seq[e["seq"]] = (key, e)
        if key not in parked_keys and (not delivered_order or delivered_order[-1][0] != key):
            if delivered_order:
                check(first > delivered_order[-1][2],
                      "batch %s delivered after %s: out of order" % (key, delivered_order[-1][0]))
            delivered_order.append((key, first, last))
    missing = [seq for seq, _, _, _ in events if seq not in by_seq]
    check(not missing, "%d events never arrived, e.g. %s" % (len(missing), missing[:10]))
    check(len(by_seq) == len(events), "%d distinct seqs arrived, master log has %d" % (len(by_seq), len(events)))
    for seq, series, ts, value in events:
        e = by_seq[seq][1]
        check(e == {"device": DEVICE, "series": series, "ts": ts, "value": value, "seq": seq},
              "event %d differs: %s vs %s" % (seq, e, (series, ts, value)))

    # timing: Retry-After and the timeout were waited out
    def gap_after(action_match):
        for i, r in enumerate(reqs[:-1]):
            if action_match(r["action"]):
                return reqs[i + 1]["t"] - r["t"]
        raise AssertionError("no such request")
    g503 = gap_after(lambda a: kind(a) == "status" and a[1] == 503)
    g429 = gap_after(lambda a: kind(a) == "status" and a[1] == 429)
    ghang = gap_after(lambda a: a == "hang")
    check(g503 >= 0.95 and g429 >= 0.95, "Retry-After not honoured: %.2f s, %.2f s" % (g503, g429))
    check(ghang >= 1.9, "the hung request was retried after %.2f s (timeout 2 s)" % ghang)
    dup = sum(1 for r in reqs if r["received"]) - len(seen_keys)
    log("%d requests, %d distinct batches, %d exact resends, %d connections; gaps 503 %.2fs, "
        "429 %.2fs, hang %.2fs" % (len(reqs), len(seen_keys), dup, len(conns), g503, g429, ghang))


if __name__ == "__main__":
    run([test_scripted_outage_with_sigkill])
