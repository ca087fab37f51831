"""QueryLoad: queries sent at a fixed rate beside a benchmark's ingest.

One thread, one MQTT v5 connection (tests/integration/mqttraw.py, stdlib
only) to the benchmark's private broker on 127.0.0.1. Every 1/rate seconds it
publishes the request (QoS 1, as mosquitto_rr sends it, with a response topic
and a correlation id), and between sends reads replies. A fixed schedule: a
late send is made at once, not skipped, so the offered rate holds unless the
Python thread itself cannot keep up (then `sent` says so).

Counts: sent, answered ok, answered busy (the daemon's bounded intake said
so), other errors, and reply latency (send to reply, per correlation id).
Nothing is allocated per request beyond Python's own objects; the in-flight
table is bounded by the replies that never came (reported as `lost`).
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "integration"))
import mqttraw  # noqa: E402

REPLY_TOPIC = "bench/qload/reply"


class QueryLoad:
    def __init__(self, port, rate, request, topic="edgelambda/query", client_id="bench-qload"):
        self.port, self.rate, self.request, self.topic = port, rate, request, topic
        self.client_id = client_id
        self.sent = self.ok = self.busy = self.errors = 0
        self.latencies_ms = []
        self.first_error = None
        self._pending = {}
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._cli = mqttraw.Client(self.port, client_id=self.client_id)
        self._cli.subscribe(REPLY_TOPIC, qos=1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self, drain_s=5.0):
        """Stops sending, waits up to drain_s for outstanding replies."""
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + drain_s
        while self._pending and time.monotonic() < deadline:
            self._read(0.05)
        self._cli.close()
        return self

    def summary(self):
        lat = sorted(self.latencies_ms)

        def q(p):
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
        return {"sent": self.sent, "ok": self.ok, "busy": self.busy, "errors": self.errors,
                "lost": len(self._pending), "p50_ms": q(0.50), "p95_ms": q(0.95),
                "max_ms": lat[-1] if lat else float("nan"), "first_error": self.first_error}

    def _run(self):
        period = 1.0 / self.rate
        next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_t:
                corr = b"%d" % self.sent
                self._pending[corr] = now
                self._cli.publish(self.topic, self.request, qos=1, response_topic=REPLY_TOPIC,
                                  correlation=corr, wait_ack=False)
                self.sent += 1
                next_t += period
                continue
            self._read(min(next_t - now, 0.05))

    def _read(self, timeout):
        try:
            kind, flags, body = self._cli.read_packet(max(timeout, 0.001))
        except TimeoutError:
            return
        if kind != mqttraw.PUBLISH:
            return  # PUBACKs of our requests
        self._cli._ack(flags, body)
        _, payload, props = mqttraw.parse_publish(flags, body)
        t0 = self._pending.pop(props.get(mqttraw.PROP_CORRELATION), None)
        if t0 is None:
            return
        self.latencies_ms.append((time.monotonic() - t0) * 1000.0)
        try:
            ans = json.loads(payload)
        except ValueError:
            ans = {"ok": False, "error": {"code": "unparsable reply"}}
        if ans.get("ok"):
            self.ok += 1
        elif (ans.get("error") or {}).get("code") == "busy":
            self.busy += 1
        else:
            self.errors += 1
            if self.first_error is None:
                self.first_error = ans
