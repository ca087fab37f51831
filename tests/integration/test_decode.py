"""What real sensors send (issue 13): [decode "<filter>"] sections choose how
payloads on matching topics are read. The payloads of Zigbee2MQTT, Tasmota,
Shelly Gen2 and Telegraf (InfluxDB line protocol), arrays of readings and a
time member of another name are published through the real mosquitto_pub to
a daemon configured with one section per fleet; every value must land in the
series the README promises, exactly, and be answered by a query. A string
member that is neither a number nor a state word is a non_numeric dead
letter with its detail, never silently dropped. A kill -9 before the commit
replays the journal, names built by a decoder included.
"""
import json
import os
import struct
import subprocess

from harness import (CLI, EMULATOR, SLOW, Broker, Daemon, TempDir, check, log, rr, run, wait_until)

CLI_ARGS = EMULATOR + [CLI]

T0 = 1767225600000  # 2026-01-01T00:00:00Z

CONFIG = """
[ingest]
subscribe = zigbee2mqtt/#, tele/#, shellies/#, telegraf/#, batch/#, legacy/#

[decode "zigbee2mqtt/#"]
fields = all
drop_fields = update

[decode "tele/+/SENSOR"]
fields = all
drop_fields = Time, TempUnit

[decode "shellies/+/status/#"]
fields = all
keep_fields = apower, voltage, aenergy.total

[decode "telegraf/#"]
format = influx

[decode "legacy/#"]
time = timestamp
"""

FLEET = [
    # (topic, payload, {series: value})
    ("zigbee2mqtt/kitchen",
     '{"temperature":21.4,"humidity":40.1,"battery":97,"occupancy":true,"linkquality":120,'
     '"update":{"state":"idle"}}',
     {"zigbee2mqtt/kitchen/temperature": 21.4, "zigbee2mqtt/kitchen/humidity": 40.1,
      "zigbee2mqtt/kitchen/battery": 97, "zigbee2mqtt/kitchen/occupancy": 1,
      "zigbee2mqtt/kitchen/linkquality": 120}),
    ("tele/sonoff1/SENSOR",
     '{"Time":"2026-12-04T10:00:00","AM2301":{"Temperature":21.4,"Humidity":40.1},"TempUnit":"C"}',
     {"tele/sonoff1/SENSOR/AM2301/Temperature": 21.4, "tele/sonoff1/SENSOR/AM2301/Humidity": 40.1}),
    ("shellies/plug1/status/switch:0",
     '{"id":0,"apower":12.5,"voltage":231.2,"aenergy":{"total":1234.5,"by_minute":[1,2,3]}}',
     {"shellies/plug1/status/switch:0/apower": 12.5, "shellies/plug1/status/switch:0/voltage": 231.2,
      "shellies/plug1/status/switch:0/aenergy/total": 1234.5}),
    ("telegraf/pi", "cpu,host=pi usage_idle=97.5,usage_user=1.5 %d000000\nmem,host=pi used_percent=41i %d000000"
     % (T0, T0),
     {"cpu/pi/usage_idle": 97.5, "cpu/pi/usage_user": 1.5, "mem/pi/used_percent": 41}),
    ("batch/meter", json.dumps([{"ts": T0 + i * 1000, "value": i * 0.5} for i in range(5)]),
     {"batch/meter": 2.0}),  # the last of five readings, one message
    ("legacy/dev", '{"value":5,"timestamp":%d}' % T0, {"legacy/dev": 5}),
]


def pub(b, topic, payload):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-q", "1", "-t", topic,
                    "-m", payload], check=True, timeout=30)


def stored(d):
    """{series: (count, last value by ts)} of the master log."""
    con = d.db()
    try:
        rows = con.execute("SELECT s.name, count(*), (SELECT e2.value FROM events e2 WHERE "
                           "e2.series = s.id ORDER BY e2.ts DESC, e2.seq DESC LIMIT 1) "
                           "FROM events e JOIN series s ON s.id = e.series GROUP BY s.id").fetchall()
    finally:
        con.close()
    return {name: (n, v) for name, n, v in rows}


def expected():
    want = {}
    for _, _, series in FLEET:
        want.update(series)
    return want


def check_fleet(d, b):
    want = expected()
    wait_until(lambda: set(want) <= set(stored(d)), 30 * SLOW, "every fleet series")
    got = stored(d)
    for name, value in want.items():
        n, v = got[name]
        check(abs(v - value) < 1e-9, "%s: stored %r, want %r" % (name, v, value))
        check(n == (5 if name == "batch/meter" else 1), "%s: %d events" % (name, n))
    extra = sorted(set(got) - set(want))
    check(not extra, "series nobody asked for: %s" % extra)
    # answered exactly: the array's five readings at their own times
    ans = rr(b, json.dumps({"series": "batch/meter", "from": T0, "to": T0 + 60000, "step": "1m",
                            "agg": ["count", "sum", "last"]}))
    bucket = ans["buckets"][0]
    check(ans["ok"] and bucket["count"] == 5 and abs(bucket["sum"] - 5.0) < 1e-9 and bucket["last"] == 2.0,
          "query over the array's readings: %s" % ans)
    ans = rr(b, json.dumps({"op": "last", "match": "tele/+/SENSOR/#"}))
    check(ans["ok"] and len(ans["series"]) == 2, "last over the flattened Tasmota series: %s" % ans)
    return got


def test_fleet_payloads_land_in_their_series():
    td = TempDir("decode")
    b = Broker(td.path).start()
    d = Daemon(td.path, b)
    d.config_text = CONFIG
    d.start()
    try:
        for topic, payload, _ in FLEET:
            pub(b, topic, payload)
        got = check_fleet(d, b)
        log("fleet payloads: %d series, e.g. %s" % (len(got), ", ".join(sorted(got)[:4])))
        # a string the section does not drop: a dead letter with its detail
        pub(b, "zigbee2mqtt/hall", '{"temperature":20.5,"power_on_behavior":"previous"}')
        wait_until(lambda: d.query1("SELECT count(*) FROM dead_letters") == 1, 30 * SLOW, "the dead letter")
        reason, detail = d.db().execute("SELECT reason, detail FROM dead_letters").fetchone()
        check(reason == "non_numeric" and detail == 'field "power_on_behavior" is a string',
              "dead letter %s (%s)" % (reason, detail))
        r = subprocess.run(CLI_ARGS + ["--uri", b.uri, "deadletters", "--reason", "non_numeric"],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and 'field "power_on_behavior" is a string' in r.stdout,
              "edgelambda deadletters does not show the detail: %s %s" % (r.stdout, r.stderr))
        check('field "power_on_behavior" is a string' in d.log_text(), "the log does not say why")
        check("zigbee2mqtt/hall/temperature" not in stored(d), "half a message stored")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_names_built_by_decoders_survive_a_crash():
    """Records whose series names a decoder built (flattened paths, line
    protocol) are replayed from the journal after kill -9."""
    td = TempDir("decode-crash")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, storage__flush_interval_ms=10000)  # nothing committed before the kill
    d.config_text = CONFIG
    d.start()
    try:
        for topic, payload, _ in FLEET:
            pub(b, topic, payload)
        wait_until(lambda: d.status()["ingest"]["received"] >= len(FLEET), 30 * SLOW, "the fleet received")
        check(d.event_count() == 0, "committed before the kill: the test proves nothing")
        d.kill()
        d.sets["storage.flush_interval_ms"] = "10"
        d.start()
        check_fleet(d, b)
        check("replayed" in d.log_text(), "no journal replay logged")
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


# ---- Sparkplug B: protobuf written here from the specification's field numbers ----

def _varint(n):
    out = b""
    while True:
        b7 = n & 0x7F
        n >>= 7
        out += bytes([b7 | (0x80 if n else 0)])
        if not n:
            return out


def _field(num, wire, body):
    return _varint(num << 3 | wire) + body


def sp_metric(name=None, alias=None, ts=None, double=None, boolean=None):
    m = b""
    if name is not None:
        m += _field(1, 2, _varint(len(name)) + name.encode())
    if alias is not None:
        m += _field(2, 0, _varint(alias))
    if ts is not None:
        m += _field(3, 0, _varint(ts))
    m += _field(4, 0, _varint(10 if double is not None else 11))  # datatype Double / Boolean
    if double is not None:
        m += _field(13, 1, struct.pack("<d", double))
    if boolean is not None:
        m += _field(14, 0, _varint(1 if boolean else 0))
    return m


def sp_payload(ts, seq, metrics):
    body = _field(1, 0, _varint(ts))
    for m in metrics:
        body += _field(2, 2, _varint(len(m)) + m)
    return body + _field(3, 0, _varint(seq))


def pub_bytes(b, td, topic, payload):
    path = os.path.join(td.path, "payload.bin")
    with open(path, "wb") as f:
        f.write(payload)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-q", "1", "-t", topic,
                    "-f", path], check=True, timeout=30)


def test_sparkplug_b_births_aliases_and_gaps():
    """NBIRTH names metrics and their aliases, NDATA sends aliases only; a
    skipped seq is counted; an unknown alias is a dead letter saying so."""
    td = TempDir("decode-spb")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="spBv1.0/#")
    d.config_text = '[decode "spBv1.0/#"]\nformat = sparkplug_b\n'
    d.start()
    try:
        birth = sp_payload(T0, 0, [sp_metric("Node Control/Rebirth", 0, boolean=False),
                                   sp_metric("temp", 1, double=20.5), sp_metric("on", 2, boolean=True)])
        pub_bytes(b, td, "spBv1.0/plant/NBIRTH/edge1", birth)
        pub_bytes(b, td, "spBv1.0/plant/NDATA/edge1", sp_payload(T0 + 1000, 1, [sp_metric(alias=1, double=21.25)]))
        pub_bytes(b, td, "spBv1.0/plant/NDATA/edge1", sp_payload(T0 + 2000, 3, [sp_metric(alias=2, boolean=False)]))
        pub_bytes(b, td, "spBv1.0/plant/NDATA/edge1", sp_payload(T0 + 3000, 4, [sp_metric(alias=17, double=1)]))
        wait_until(lambda: d.query1("SELECT count(*) FROM dead_letters") == 1, 30 * SLOW, "the unknown alias")
        got = stored(d)
        check(got.get("plant/edge1/temp") == (2, 21.25) and got.get("plant/edge1/on") == (2, 0.0),
              "sparkplug series: %s" % got)
        detail = d.query1("SELECT detail FROM dead_letters")
        check("unknown alias 17" in (detail or ""), "dead letter detail %r" % detail)
        st = d.status(pred=lambda s: s["ingest"].get("sparkplug_seq_gaps") == 1)
        check(st["ingest"]["sparkplug_births"] == 1 and st["ingest"]["sparkplug_unknown_alias"] == 1,
              "sparkplug counters: %s" % st["ingest"])
        log("sparkplug b: %d series from a birth and aliases, 1 seq gap, 1 unknown alias dead-lettered"
            % len(got))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def cbor(v):
    """A minimal CBOR encoder (RFC 8949) for the test's maps, texts and numbers."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
        raise ValueError(n)
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, str):
        return head(3, len(v.encode())) + v.encode()
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor(x) for x in v)
    return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())


def test_cbor_maps_and_batches():
    """CBOR payloads read like their JSON: a Zigbee2MQTT-like map with
    fields = all, a nested map flattened, a batch of readings with times."""
    td = TempDir("decode-cbor")
    b = Broker(td.path).start()
    d = Daemon(td.path, b, ingest__subscribe="cbor/#")
    d.config_text = ('[decode "cbor/+/state"]\nformat = cbor\nfields = all\ndrop_fields = mode\n\n'
                     '[decode "cbor/#"]\nformat = cbor\n')
    d.start()
    try:
        pub_bytes(b, td, "cbor/kitchen/state", cbor({"temperature": 21.5, "battery": 97, "occupancy": True,
                                                      "power": {"total": 1234.5}, "mode": "auto"}))
        pub_bytes(b, td, "cbor/meter", cbor([{"ts": T0 + i * 1000, "value": i * 1.5} for i in range(4)]))
        want = {"cbor/kitchen/state/temperature": (1, 21.5), "cbor/kitchen/state/battery": (1, 97),
                "cbor/kitchen/state/occupancy": (1, 1), "cbor/kitchen/state/power/total": (1, 1234.5),
                "cbor/meter": (4, 4.5)}
        wait_until(lambda: set(want) <= set(stored(d)), 30 * SLOW, "the CBOR series")
        got = stored(d)
        check({k: got[k] for k in want} == want and len(got) == len(want), "CBOR series: %s" % got)
        # a string member the section does not drop: a dead letter saying which (strict strings)
        pub_bytes(b, td, "cbor/hall/state", cbor({"temperature": 19.0, "power": {"unit": "W"}}))
        wait_until(lambda: d.query1("SELECT count(*) FROM dead_letters") == 1, 30 * SLOW, "the CBOR dead letter")
        reason, detail = d.db().execute("SELECT reason, detail FROM dead_letters").fetchone()
        check(reason == "non_numeric" and detail == 'field "power.unit" is a string', "%s %s" % (reason, detail))
        log("cbor: %d series, a batch of 4 readings in one message, a dropped and a refused string"
            % len(got))
        d.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


if __name__ == "__main__":
    run([test_fleet_payloads_land_in_their_series, test_names_built_by_decoders_survive_a_crash,
         test_sparkplug_b_births_aliases_and_gaps, test_cbor_maps_and_batches])
