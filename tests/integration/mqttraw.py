"""A minimal MQTT v5 client over a plain socket, for tests that must send what
well-behaved clients refuse to: response topics with wildcards or invalid
UTF-8, floods of pipelined requests. Stdlib only; QoS 0 and 1; no TLS.
With websocket=True it speaks MQTT over WebSockets (RFC 6455, subprotocol
"mqtt"), as the live page does, where mosquitto_sub cannot.

Not a general client: one thread, blocking reads with timeouts, packets read
whole. Only talks to 127.0.0.1 (the test's own broker).
"""
import base64
import hashlib
import os
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    1, 2, 3, 4, 8, 9, 12, 13, 14)
PROP_CORRELATION = 0x09
PROP_RESPONSE_TOPIC = 0x08
PROP_SESSION_EXPIRY = 0x11
PROP_RECEIVE_MAX = 0x21


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    """A length-prefixed string; bytes are sent as they are (maybe invalid)."""
    b = s if isinstance(s, (bytes, bytearray)) else s.encode()
    return struct.pack(">H", len(b)) + b


def packet(kind, flags, body):
    return bytes([(kind << 4) | flags]) + varint(len(body)) + body


class WebSocket:
    """The socket calls Client makes, over one WebSocket to 127.0.0.1:port:
    sendall() sends one masked binary frame, recv() returns frame payload
    bytes. A timeout in the middle of a frame loses that connection's
    framing (tests give up on the connection then anyway)."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, port, timeout, path="/"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: mqtt\r\n\r\n" % (path, port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the WebSocket handshake: %r" % head)
            head += chunk
        head, self.raw = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise AssertionError("WebSocket upgrade refused: %r" % head)
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest())
        if accept not in head:
            raise AssertionError("bad Sec-WebSocket-Accept: %r" % head)
        self.data = b""  # payload bytes received and not yet returned

    def settimeout(self, t):
        self.sock.settimeout(t)

    def sendall(self, data):
        n, mask = len(data), os.urandom(4)
        if n < 126:
            head = bytes([0x82, 0x80 | n])
        elif n < 65536:
            head = bytes([0x82, 0x80 | 126]) + struct.pack(">H", n)
        else:
            head = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _take(self, n):
        while len(self.raw) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("WebSocket closed by the server")
            self.raw += chunk
        out, self.raw = self.raw[:n], self.raw[n:]
        return out

    def recv(self, n):
        while not self.data:
            b0, b1 = self._take(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._take(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._take(8))[0]
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if b0 & 0x0F == 8:  # close
                return b""
            if b0 & 0x0F in (0, 1, 2):  # continuation, text, binary; pings ignored
                self.data += payload
        out, self.data = self.data[:n], self.data[n:]
        return out

    def close(self):
        self.sock.close()


class Client:
    KEEPALIVE = 60  # s; the broker closes a client silent for 1.5 times this

    def __init__(self, port, client_id="", receive_max=None, timeout=10, websocket=False):
        if websocket:
            self.sock = WebSocket(port, timeout)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.next_id = 1
        self.last_ping = time.monotonic()
        props = b""
        if receive_max:
            props += bytes([PROP_RECEIVE_MAX]) + struct.pack(">H", receive_max)
        body = (utf8("MQTT") + bytes([5, 0x02]) + struct.pack(">H", self.KEEPALIVE) + varint(len(props))
                + props)
        body += utf8(client_id)
        self.sock.sendall(packet(CONNECT, 0, body))
        kind, _, payload = self.read_packet()
        if kind != CONNACK or payload[1] != 0:
            raise AssertionError("CONNACK refused: %r" % payload)

    def close(self):
        try:
            self.sock.sendall(packet(DISCONNECT, 0, b"\x00\x00"))
        except OSError:
            pass
        self.sock.close()

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the broker")
            self.buf += chunk

    def read_packet(self, timeout=10):
        """(kind, flags, body) of the next packet."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        mult, length, i = 1, 0, 1
        while True:
            self._fill(i + 1, deadline)
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        self._fill(i + length, deadline)
        head, body = self.buf[0], self.buf[i:i + length]
        self.buf = self.buf[i + length:]
        return head >> 4, head & 0x0F, body

    def publish(self, topic, payload, qos=0, response_topic=None, correlation=None, wait_ack=True):
        props = b""
        if response_topic is not None:
            props += bytes([PROP_RESPONSE_TOPIC]) + utf8(response_topic)
        if correlation is not None:
            props += bytes([PROP_CORRELATION]) + struct.pack(">H", len(correlation)) + correlation
        body = utf8(topic)
        pid = None
        if qos:
            pid = self.next_id
            self.next_id = self.next_id % 65535 + 1
            body += struct.pack(">H", pid)
        body += varint(len(props)) + props
        body += payload if isinstance(payload, bytes) else payload.encode()
        self.sock.sendall(packet(PUBLISH, qos << 1, body))
        if qos and wait_ack:
            self.wait_for(PUBACK)
        return pid

    def subscribe(self, topic_filter, qos=1):
        pid = self.next_id
        self.next_id = self.next_id % 65535 + 1
        body = struct.pack(">H", pid) + varint(0) + utf8(topic_filter) + bytes([qos])
        self.sock.sendall(packet(SUBSCRIBE, 0x2, body))
        self.wait_for(SUBACK)

    def wait_for(self, kind, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            k, flags, body = self.read_packet(max(0.01, deadline - time.monotonic()))
            if k == kind:
                return body
            if k == PUBLISH:
                self._ack(flags, body)

    def _ack(self, flags, body):
        qos = (flags >> 1) & 3
        if qos:
            tlen = struct.unpack(">H", body[:2])[0]
            pid = body[2 + tlen:4 + tlen]
            self.sock.sendall(packet(PUBACK, 0, pid))

    def messages(self, timeout):
        """Yields (topic, payload, properties) of PUBLISH packets until timeout
        passes with nothing new. A client that only listens still pings, so a
        slow machine's long wait does not get it disconnected."""
        while True:
            if time.monotonic() - self.last_ping > self.KEEPALIVE / 3:
                self.last_ping = time.monotonic()
                self.sock.sendall(packet(PINGREQ, 0, b""))
            try:
                k, flags, body = self.read_packet(timeout)
            except TimeoutError:
                return
            if k != PUBLISH:
                continue
            self._ack(flags, body)
            yield parse_publish(flags, body)


def parse_publish(flags, body):
    """(topic, payload, properties) of a PUBLISH packet's flags and body."""
    tlen = struct.unpack(">H", body[:2])[0]
    topic = body[2:2 + tlen].decode(errors="replace")
    pos = 2 + tlen + (2 if (flags >> 1) & 3 else 0)
    plen, shift, i = 0, 1, pos
    while True:
        b = body[i]
        plen += (b & 0x7F) * shift
        shift *= 128
        i += 1
        if not b & 0x80:
            break
    return topic, body[i + plen:], parse_props(body[i:i + plen])


def parse_props(data):
    out, i = {}, 0
    while i < len(data):
        pid = data[i]
        i += 1
        if pid in (PROP_CORRELATION, PROP_RESPONSE_TOPIC, 0x03, 0x1A, 0x1F):
            n = struct.unpack(">H", data[i:i + 2])[0]
            out[pid] = data[i + 2:i + 2 + n]
            i += 2 + n
        elif pid in (0x01,):
            out[pid] = data[i]
            i += 1
        elif pid in (0x02, 0x11, 0x18, 0x27):
            out[pid] = struct.unpack(">I", data[i:i + 4])[0]
            i += 4
        elif pid in (0x23, 0x21, 0x22):
            out[pid] = struct.unpack(">H", data[i:i + 2])[0]
            i += 2
        elif pid == 0x0B:
            v, shift = 0, 1
            while True:
                b = data[i]
                i += 1
                v += (b & 0x7F) * shift
                shift *= 128
                if not b & 0x80:
                    break
            out[pid] = v
        elif pid == 0x26:
            for _ in range(2):
                n = struct.unpack(">H", data[i:i + 2])[0]
                i += 2 + n
        else:
            break
    return out
