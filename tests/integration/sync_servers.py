"""Upstream servers for the sync integration tests: a test PKI made with the
openssl CLI, a scriptable fault-injecting HTTPS endpoint, nginx terminating
TLS, VictoriaMetrics and ClickHouse — all real, all on free 127.0.0.1 ports,
all with generated configs and data under the test's temp dir.

Every server is a subprocess (or a thread) that the test stops in a finally:
block; waiting is a bounded poll (harness.wait_until), never a bare sleep.
"""
import gzip
import http.server
import json
import os
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from harness import SLOW, check, free_port, log, terminate, wait_until


class _Zstd:
    """zstd decompression through ctypes and the system libzstd (libzstd-dev is a
    build dependency anyway): no Python package needed, whichever python3 runs."""

    def __init__(self):
        import ctypes
        import ctypes.util
        name = ctypes.util.find_library("zstd") or "libzstd.so.1"
        self.lib = ctypes.CDLL(name)
        self.lib.ZSTD_getFrameContentSize.restype = ctypes.c_ulonglong
        self.lib.ZSTD_getFrameContentSize.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self.lib.ZSTD_decompress.restype = ctypes.c_size_t
        self.lib.ZSTD_decompress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                                             ctypes.c_size_t]
        self.lib.ZSTD_isError.restype = ctypes.c_uint
        self.lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
        self.ctypes = ctypes

    def decompress(self, data):
        size = self.lib.ZSTD_getFrameContentSize(data, len(data))
        check(size < (1 << 32), "zstd frame without a usable content size (%d)" % size)
        out = self.ctypes.create_string_buffer(max(int(size), 1))
        n = self.lib.ZSTD_decompress(out, len(out), data, len(data))
        check(not self.lib.ZSTD_isError(n), "bad zstd frame")
        return out.raw[:n]


_zstd = None


# ---------------------------------------------------------------- PKI

class PKI:
    """A test PKI generated with the openssl CLI (EC P-256, SHA-256):
    ca            the trusted CA
    server        127.0.0.1 + localhost, signed by ca
    expired       127.0.0.1 + localhost, signed by ca, valid only in 2020
    wronghost     wrong.example.invalid only, signed by ca
    otherca_server 127.0.0.1 + localhost, signed by a different CA (otherca)
    client        a client certificate (clientAuth) signed by ca
    Files: <name>.crt and <name>.key under dir.
    """

    CA_CNF = """[ ca ]
default_ca = CA_default
[ CA_default ]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
copy_extensions = copy
unique_subject = no
[ policy_any ]
commonName = supplied
"""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "pki")
        os.makedirs(self.dir, exist_ok=True)
        self._ca("ca")
        self._ca("otherca")
        self._leaf("server", "ca", "IP:127.0.0.1,DNS:localhost", "serverAuth")
        self._leaf("expired", "ca", "IP:127.0.0.1,DNS:localhost", "serverAuth",
                   dates=("20200101000000Z", "20200102000000Z"))
        self._leaf("wronghost", "ca", "DNS:wrong.example.invalid", "serverAuth")
        self._leaf("otherca_server", "otherca", "IP:127.0.0.1,DNS:localhost", "serverAuth")
        self._leaf("client", "ca", "DNS:edgelambda-test-client", "clientAuth")

    def path(self, name, ext):
        return os.path.join(self.dir, "%s.%s" % (name, ext))

    def crt(self, name):
        return self.path(name, "crt")

    def key(self, name):
        return self.path(name, "key")

    def _run(self, *args):
        r = subprocess.run(["openssl"] + list(args), cwd=self.dir, capture_output=True, text=True)
        check(r.returncode == 0, "openssl %s failed: %s" % (args[0], r.stderr))

    def _ca(self, name):
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", name + ".key", "-out", name + ".crt", "-subj", "/CN=edgelambda test " + name,
                  "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        cadir = os.path.join(self.dir, name + ".db")
        os.makedirs(cadir, exist_ok=True)
        with open(os.path.join(cadir, "ca.cnf"), "w") as f:
            f.write(self.CA_CNF)
        open(os.path.join(cadir, "index.txt"), "w").close()
        with open(os.path.join(cadir, "serial"), "w") as f:
            f.write("1000\n")

    def _leaf(self, name, ca, san, eku, dates=None):
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n" % (san, eku))
        cadir = os.path.join(self.dir, ca + ".db")
        args = ["openssl", "ca", "-batch", "-notext", "-config", "ca.cnf",
                "-cert", self.crt(ca), "-keyfile", self.key(ca),
                "-in", self.path(name, "csr"), "-out", self.crt(name), "-extfile", ext]
        if dates:  # openssl x509 cannot date a certificate in the past; openssl ca can
            args += ["-startdate", dates[0], "-enddate", dates[1]]
        else:
            args += ["-days", "30"]
        # the CA database (index.txt, serial) is relative to the CA's own dir
        r = subprocess.run(args, cwd=cadir, capture_output=True, text=True)
        check(r.returncode == 0, "openssl ca for %s failed: %s" % (name, r.stderr))
        os.chmod(self.key(name), 0o600)


# ---------------------------------------------------------------- fault server

class _Conn:
    """Bookkeeping of one accepted TCP connection."""

    def __init__(self, cid):
        self.id = cid
        self.handshake_ok = None   # None: plain http; False: TLS handshake failed
        self.handshake_error = ""
        self.app_bytes = 0         # application bytes read (request lines, headers, bodies)


class _CountingReader:
    """Wraps a handler's rfile: counts every application byte handed to the HTTP parser."""

    def __init__(self, f, conn):
        self.f = f
        self.conn = conn

    def _count(self, data):
        self.conn.app_bytes += len(data)
        return data

    def read(self, *a):
        return self._count(self.f.read(*a))

    def readline(self, *a):
        return self._count(self.f.readline(*a))

    def readinto(self, b):
        n = self.f.readinto(b)
        self.conn.app_bytes += n or 0
        return n

    def close(self):
        self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)


class FaultServer:
    """A scriptable HTTP(S) upstream: Python's http.server + ssl in threads.

    script: a list of actions consumed one per request (then `default`):
      "ok"            200 (records the batch as accepted)
      ("status", N[, retry_after])   answers N (e.g. 500, 503, 429, 413, 400, 401)
      "hang"          reads the body, then answers nothing for hang_s seconds
      "reset_mid"     reads half of the body, then resets the connection (RST)
      "reset_after"   reads the whole body (recorded as received), then RST
    Every request is recorded: headers, the decoded body, the action and whether
    the server had the whole body (received=True). Per connection it records
    whether the TLS handshake succeeded and how many application bytes it read,
    so TLS failures can be shown to leak zero payload bytes.
    """

    def __init__(self, pki=None, cert="server", client_ca=False, script=(), default="ok", hang_s=10):
        self.pki = pki
        self.port = free_port()
        self.script = list(script)
        self.default = default
        self.hang_s = hang_s
        self.lock = threading.Lock()
        self.requests = []
        self.conns = []
        self.errors = []  # exceptions in handlers (a broken test server, not a scripted fault)
        self.ctx = None
        if pki:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(pki.crt(cert), pki.key(cert))
            if client_ca:
                self.ctx.verify_mode = ssl.CERT_REQUIRED
                self.ctx.load_verify_locations(pki.crt("ca"))
        self.stopping = threading.Event()
        self.server = None
        self.thread = None

    @property
    def url(self):
        return "%s://127.0.0.1:%d/ingest" % ("https" if self.ctx else "http", self.port)

    def set_script(self, script, default=None):
        with self.lock:
            self.script = list(script)
            if default is not None:
                self.default = default

    def next_action(self):
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                self.rfile = _CountingReader(self.rfile, self.conn)

            def do_POST(self):
                try:
                    outer._handle(self)
                except Exception as e:  # noqa: BLE001 - surfaced through outer.errors
                    import traceback
                    outer.errors.append(traceback.format_exc())
                    raise

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def finish_request(self, request, client_address):
                conn = _Conn(len(outer.conns))
                with outer.lock:
                    outer.conns.append(conn)
                if outer.ctx:
                    try:
                        request.settimeout(10)
                        request = outer.ctx.wrap_socket(request, server_side=True)
                        conn.handshake_ok = True
                    except (ssl.SSLError, OSError) as e:
                        conn.handshake_ok = False
                        conn.handshake_error = str(e)
                        try:
                            request.close()
                        except OSError:
                            pass
                        return
                request.settimeout(None)
                h = Handler.__new__(Handler)
                h.conn = conn
                Handler.__init__(h, request, client_address, self)

            def handle_error(self, request, client_address):
                pass  # resets and aborted clients are part of the script

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @staticmethod
    def _read(h, n):
        return h.rfile.read(n) if n > 0 else b""

    def _handle(self, h):
        length = int(h.headers.get("Content-Length", "0"))
        action = self.next_action()
        kind = action if isinstance(action, str) else action[0]
        rec = {"headers": {k.lower(): v for k, v in h.headers.items()}, "action": action, "path": h.path,
               "received": False, "events": None, "t": time.monotonic(), "conn": h.conn.id,
               "raw_len": length}
        if kind == "reset_mid":
            self._read(h, length // 2)
            self._record(rec)
            self._reset(h)
            return
        body = self._read(h, length)
        rec["received"] = len(body) == length
        rec["events"] = decode_body(body, rec["headers"].get("content-encoding"))
        self._record(rec)
        if kind == "reset_after":
            self._reset(h)
            return
        if kind == "hang":
            self.stopping.wait(self.hang_s)
            self._reset(h)
            return
        if kind == "ok":
            status, retry_after = 200, None
        else:
            status = action[1]
            retry_after = action[2] if len(action) > 2 else None
        payload = b"" if status < 300 else (b'{"error":"scripted %d"}' % status)
        h.send_response(status)
        if retry_after is not None:
            h.send_header("Retry-After", str(retry_after))
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)
        h.wfile.flush()

    def _record(self, rec):
        with self.lock:
            self.requests.append(rec)

    @staticmethod
    def _reset(h):
        sock = h.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        h.close_connection = True
        try:
            sock.close()  # SSLSocket.close sends no close_notify: an abrupt RST
        except OSError:
            pass

    # -- views for the tests --
    def snapshot(self):
        with self.lock:
            return list(self.requests), list(self.conns)

    def accepted_batches(self):
        """Requests whose body the server fully received (answered 2xx or reset after it)."""
        reqs, _ = self.snapshot()
        out = []
        for r in reqs:
            kind = r["action"] if isinstance(r["action"], str) else r["action"][0]
            if r["received"] and kind in ("ok", "reset_after", "hang"):
                out.append(r)
        return out


def decode_body(body, encoding):
    """Decompresses and parses an ndjson body into a list of dicts."""
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "zstd":
        global _zstd
        if _zstd is None:
            _zstd = _Zstd()
        body = _zstd.decompress(body)
    return [json.loads(line) for line in body.decode().splitlines() if line]


# ---------------------------------------------------------------- nginx

class Nginx:
    """nginx terminating TLS on a free port (generated config under workdir).

    upstream_port: proxy_pass to http://127.0.0.1:<port>; None: answer 204 to
    every request after reading its whole body (a sink: the TLS server buffers
    the body, then proxies to a plain server block of the same nginx that
    answers 204 — a bare "return 204" may answer before the body is read).
    client_verify: require a
    client certificate signed by the test CA (mTLS). The access log records
    per request: $status $request_length (bytes of request line, headers and
    body) $bytes_sent $ssl_client_verify $msec (time the request ended)
    $content_length (the body's bytes).
    """

    def __init__(self, workdir, pki, upstream_port=None, client_verify=False, name="nginx"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        location = ("proxy_pass http://up; proxy_http_version 1.1;"
                    " proxy_set_header Connection \"\"; proxy_request_buffering on;"
                    " proxy_read_timeout 120s;")
        sink = ""
        if not upstream_port:
            upstream_port = free_port()
            sink = ("server { listen 127.0.0.1:%d; access_log off; location / { return 204; } }"
                    % upstream_port)
        verify = ""
        if client_verify:
            verify = "ssl_client_certificate %s; ssl_verify_client on;" % pki.crt("ca")
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "".join("%s_temp_path %s/%s;\n" % (k, self.dir, k) for k in
                       ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        with open(self.conf, "w") as f:
            f.write("""%sworker_processes 1;
pid %s/nginx.pid;
error_log %s warn;
events { worker_connections 256; }
http {
  log_format sizes '$status $request_length $bytes_sent $ssl_client_verify $msec $content_length';
  access_log %s sizes;
  %s
  client_max_body_size 512m;
  client_body_buffer_size 4m;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream up { server 127.0.0.1:%d; keepalive 4; }
  %s
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    %s
    location / { %s }
  }
}
""" % (user, self.dir, self.error_log, self.access_log, temp, upstream_port, sink, self.port,
       pki.crt("server"), pki.key("server"), verify, location))
        self.proc = None

    def url(self, path="/"):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-e", self.error_log, "-c", self.conf,
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited: %s" % open(self.error_log).read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, "nginx to listen")
        return self

    def access_lines(self):
        try:
            with open(self.access_log) as f:
                return [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        stop_proc(self.proc)


def stop_proc(proc, timeout=15):
    terminate(proc, timeout)


def http_get(url, data=None, timeout=30):
    req = urllib.request.Request(url, data=data)
    with urllib.request.urlopen(req, timeout=timeout * SLOW) as r:
        return r.read()


# ---------------------------------------------------------------- VictoriaMetrics

class VictoriaMetrics:
    """victoria-metrics single-node on a free port with its data under workdir."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "vm")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.logfile = os.path.join(self.dir, "vm.log")
        self.proc = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.logf = open(self.logfile, "w")
        self.proc = subprocess.Popen(["victoria-metrics", "-httpListenAddr", "127.0.0.1:%d" % self.port,
                                      "-storageDataPath", os.path.join(self.dir, "data"),
                                      "-retentionPeriod", "100y", "-loggerLevel", "WARN"],
                                     stdout=self.logf, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("victoria-metrics exited: %s" % open(self.logfile).read()[-2000:])
            try:
                return http_get(self.base + "/health", timeout=1).strip() == b"OK"
            except OSError:
                return False
        wait_until(up, 30, "victoria-metrics to answer /health")
        return self

    def export(self, match):
        """All raw samples of series matching `match`: {(name, labels...): [(ts_ms, value)]}."""
        http_get(self.base + "/internal/force_flush")
        q = urllib.parse.urlencode({"match[]": match})
        out = {}
        for line in http_get(self.base + "/api/v1/export?" + q, timeout=120).decode().splitlines():
            if not line:
                continue
            d = json.loads(line)
            m = d["metric"]
            out.setdefault((m["__name__"], m.get("device")), []).extend(zip(d["timestamps"], d["values"]))
        return out

    def stop(self):
        stop_proc(self.proc)


# ---------------------------------------------------------------- ClickHouse

class ClickHouse:
    """clickhouse-server (Debian's 18.16) with a generated minimal config on
    free ports under workdir, not the system service."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "ch")
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.http_port = free_port()
        self.tcp_port = free_port()
        self.conf = os.path.join(self.dir, "config.xml")
        users = os.path.join(self.dir, "users.xml")
        with open(self.conf, "w") as f:
            f.write("""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{users}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>16</max_concurrent_queries>
</yandex>
""".format(d=self.dir, http=self.http_port, tcp=self.tcp_port, users=users))
        with open(users, "w") as f:
            f.write("""<?xml version="1.0"?>
<yandex>
  <profiles><default><log_queries>0</log_queries></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
""")
        self.proc = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.http_port

    def start(self):
        self.logf = open(os.path.join(self.dir, "log", "stdout.log"), "w")
        self.proc = subprocess.Popen(["clickhouse-server", "--config-file=" + self.conf], cwd=self.dir,
                                     stdout=self.logf, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("clickhouse-server exited: %s" % self.errors())
            try:
                return http_get(self.base + "/ping", timeout=1).strip() == b"Ok."
            except OSError:
                return False
        wait_until(up, 60, "clickhouse-server to answer /ping")
        return self

    def errors(self):
        try:
            with open(os.path.join(self.dir, "log", "error.log")) as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def query(self, sql):
        return http_get(self.base + "/", data=sql.encode(), timeout=120).decode()

    def stop(self):
        stop_proc(self.proc, timeout=30)


# ---------------------------------------------------------------- daemon side

def master_events(d):
    """Every event of the daemon's master log: [(seq, series, ts, value)] in seq order."""
    con = d.db()
    try:
        return con.execute("SELECT e.seq, s.name, e.ts, e.value FROM events e"
                           " JOIN series s ON s.id = e.series ORDER BY e.seq").fetchall()
    finally:
        con.close()


def sync_cursor(d):
    """(acked_seq, parked batches) from the sync worker's own tables; (0, 0) before they exist."""
    import sqlite3
    try:
        con = d.db()
        try:
            acked = con.execute("SELECT acked_seq FROM sync_cursor").fetchone()[0]
            parked = con.execute("SELECT count(*) FROM sync_parked").fetchone()[0]
            return acked, parked
        finally:
            con.close()
    except sqlite3.Error:
        return 0, 0


def last_event_seq(d):
    try:
        return d.query1("SELECT coalesce(max(seq), 0) FROM events")
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def sync_status(d, broker):
    """The daemon's live status (the {"op":"status"} query), its "sync" member."""
    from harness import rr
    st = rr(broker, '{"op":"status"}', topic=d.prefix + "/query")
    check(st.get("ok") is True, "status query failed: %s" % st)
    return st["sync"]


def wait_synced(d, count, timeout, parked=None):
    """Waits until the master log holds count events and the cursor passed them all."""
    def done():
        last = last_event_seq(d)
        if d.event_count() < count or last == 0:
            return False
        acked, p = sync_cursor(d)
        return acked >= last and (parked is None or p == parked)
    wait_until(done, timeout, "sync of %d events (cursor %s, last seq %s)" % (
        count, sync_cursor(d), last_event_seq(d)), interval=0.1)


def dump_diagnostics(*things):
    """On a failure: the tails of the daemons', brokers' and servers' logs."""
    for t in things:
        if t is None:
            continue
        try:
            if hasattr(t, "log_text"):
                log("--- edgelambdad log (%s):\n%s" % (t.dir, t.log_text()[-4000:]))
            elif hasattr(t, "logfile") and os.path.exists(t.logfile):
                with open(t.logfile, errors="replace") as f:
                    log("--- %s log:\n%s" % (type(t).__name__, f.read()[-2000:]))
            if isinstance(t, FaultServer):
                reqs, conns = t.snapshot()
                log("--- fault server: %d requests (%s), %d connections, handler errors: %s" % (
                    len(reqs), [r["action"] for r in reqs], len(conns), t.errors[-3:]))
            if hasattr(t, "proc") and t.proc is not None and hasattr(t.proc, "poll"):
                log("--- %s process: %s" % (type(t).__name__, "running" if t.proc.poll() is None
                                            else "exited %s" % t.proc.returncode))
        except Exception as e:  # noqa: BLE001 - diagnostics must not hide the failure
            log("--- diagnostics of %s failed: %s" % (type(t).__name__, e))
