"""Sync to a real VictoriaMetrics (Debian's victoria-metrics) behind nginx
terminating TLS, in InfluxDB line protocol, gzip-compressed.

200,000 events from loadgen through a real mosquitto into edgelambdad, shipped
to https://127.0.0.1:<nginx>/write (nginx proxy_pass to VictoriaMetrics on
another free port; the daemon verifies nginx's certificate with the test CA).
Then every event of the master log is looked up in VictoriaMetrics'
/api/v1/export: metric <series>_value and <series>_seq with label device, at
the event's timestamp (ns on the wire, ms in VictoriaMetrics): the counts and
every value and seq must match.
"""
import time

from harness import Broker, Daemon, TempDir, check, loadgen_async, log, run, wait_until, SLOW
from sync_servers import dump_diagnostics, PKI, Nginx, VictoriaMetrics, master_events, wait_synced

COUNT = 200000
SERIES = 100
DEVICE = "pi-vm"


def test_victoriametrics_influx_gzip():
    td = TempDir("sync-vm")
    pki = PKI(td.path)
    vm = ng = b = d = None
    try:
        vm = VictoriaMetrics(td.path).start()
        ng = Nginx(td.path, pki, upstream_port=vm.port).start()
        b = Broker(td.path).start()
        d = Daemon(td.path, b, sync__url=ng.url("/write"), sync__format="influx",
                   sync__compression="gzip", sync__ca_file=pki.crt("ca"), sync__device_id=DEVICE,
                   sync__include_seq="true").start()  # every seq checked below
        t0 = time.monotonic()
        # event times within the last minutes: VictoriaMetrics keeps what its retention covers
        lg = loadgen_async(b, count=COUNT, series=SERIES, qos=1, ts_base=int(time.time() * 1000) - COUNT)
        out, err = lg.communicate(timeout=600 * SLOW)
        check(lg.returncode == 0, "loadgen failed: %s %s" % (out, err))
        wait_synced(d, COUNT, 180)
        elapsed = time.monotonic() - t0
        events = master_events(d)
        check(len(events) == COUNT, "master log holds %d events" % len(events))

        def exported():
            got = vm.export('{device="%s"}' % DEVICE)
            n = sum(len(v) for (name, _), v in got.items() if name.endswith("_value"))
            return got if n >= COUNT else None
        got = wait_until(exported, 60, "VictoriaMetrics to show %d samples" % COUNT, interval=0.5)
        values, seqs = {}, {}
        for (name, dev), samples in got.items():
            check(dev == DEVICE, "device label %s" % dev)
            base, _, field = name.rpartition("_")
            target = values if field == "value" else seqs if field == "seq" else None
            check(target is not None, "unexpected metric %s" % name)
            for ts, v in samples:
                check((base, ts) not in target, "duplicate sample %s at %d" % (name, ts))
                target[(base, ts)] = v
        check(len(values) == COUNT and len(seqs) == COUNT,
              "VictoriaMetrics holds %d values and %d seqs for %d events" % (len(values), len(seqs), COUNT))
        for seq, series, ts, value in events:
            check(values.get((series, ts)) == value, "event %d (%s at %d): %s in VictoriaMetrics, %s in the log" % (
                seq, series, ts, values.get((series, ts)), value))
            check(seqs.get((series, ts)) == seq, "event %d: seq %s in VictoriaMetrics" % (seq, seqs.get((series, ts))))
        d.stop()
        lines = ng.access_lines()
        wire = sum(int(l[1]) for l in lines if l[0] == "204")
        log("%d events shipped to VictoriaMetrics and verified; %.1f s from the first publish; "
            "%d requests through nginx, %.1f request bytes/event (influx+gzip)" % (
                COUNT, elapsed, len(lines), wire / COUNT))
    except Exception:
        dump_diagnostics(d, b, vm, ng)
        raise
    finally:
        if d:
            d.kill()
        for srv in (ng, vm, b):
            if srv:
                srv.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_victoriametrics_influx_gzip])
