"""Headless Chromium driven over the DevTools protocol, stdlib only.

Why not puppeteer-core: it would be an npm install at test time (network,
a cache to keep, a Node toolchain) whose protocol version must match the
Debian chromium of the day. The DevTools protocol itself is stable for the
few methods used here (Runtime.evaluate, Page.navigate,
Page.captureScreenshot, Emulation.setDeviceMetricsOverride), and the only
missing stdlib piece is a WebSocket client: the RFC 6455 client side below
(handshake, masked text frames out; text, continuation, ping and close
frames in) is all the protocol needs.

Chromium gets a fresh profile in the caller's directory, --remote-debugging-
port=0 (it picks a free loopback port and writes it to DevToolsActivePort),
and --no-sandbox: the tests run as root on CI, where Chromium refuses its
sandbox, and the page it loads is ours, from 127.0.0.1.
"""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import harness
from harness import read_text, terminate


class Unavailable(Exception):
    """Chromium is not installed or cannot start on this machine."""


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class WebSocket:
    """The client side of RFC 6455, enough for the DevTools protocol."""

    def __init__(self, url, timeout=30):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           % (path, hostport, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the WebSocket handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError("DevTools refused the WebSocket: %r" % head[:200])

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("DevTools closed the WebSocket")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, data):
        head = bytes([0x80 | opcode])
        n = len(data)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """The next whole text message (continuation frames joined)."""
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, data)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (0x0, 0x1, 0x2):
                message += data
                if b0 & 0x80:
                    return message.decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Browser:
    """One headless Chromium and one page target."""

    def __init__(self, workdir, width=412, height=915):
        exe = find_chromium()
        if not exe:
            raise Unavailable("no chromium on PATH (Debian package chromium)")
        self.profile = os.path.join(workdir, "chromium-profile")
        os.makedirs(self.profile, exist_ok=True)
        self.logfile = os.path.join(workdir, "chromium.log")
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height), "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(self.logfile, "w"), start_new_session=True)
        self.events = []
        self.next_id = 0
        self.ws = None
        try:
            port = self._devtools_port(timeout=30)
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            self.ws = WebSocket(page["webSocketDebuggerUrl"])
        except Unavailable:
            self.close()
            raise
        for domain in ("Page", "Runtime"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=True)

    def _devtools_port(self, timeout):
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable("chromium exited %s at start:\n%s" % (self.proc.returncode, self.log()[-2000:]))
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        raise Unavailable("chromium did not open its DevTools port within %ds:\n%s" % (timeout, self.log()[-2000:]))

    def log(self):
        return read_text(self.logfile)

    def call(self, method, timeout=30, **params):
        """One DevTools command; returns its result, keeps the events seen meanwhile."""
        self.next_id += 1
        my = self.next_id
        self.ws.sock.settimeout(timeout)
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expr):
        """The value of a JavaScript expression (JSON-able; promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("%s: %s" % (expr[:200], json.dumps(r["exceptionDetails"])[:1000]))
        return r["result"].get("value")

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def exceptions(self):
        """The page's uncaught JavaScript exceptions and console errors so far."""
        out = []
        for e in self.events:
            if e["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(e["params"]["exceptionDetails"])[:500])
            elif e["method"] == "Runtime.consoleAPICalled" and e["params"].get("type") == "error":
                out.append(json.dumps(e["params"]["args"])[:500])
        return out

    def check_no_errors(self):
        errs = self.exceptions()
        harness.check(not errs, "JavaScript errors on the page:\n%s" % "\n".join(errs))

    def close(self):
        if self.ws:
            self.ws.close()
            self.ws = None
        # Chromium's helpers (zygote, renderer, GPU) are in the session it
        # was started in: stop that process group, not only the browser.
        terminate(self.proc)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def page_test_main(setup, tests, cleanup):
    """A page test's __main__: exit 77 (skipped) under an emulated build or
    without Chromium, else setup(), the tests in order, cleanup() always."""
    if harness.EMULATOR:
        harness.log("SKIP: emulated build (EL_EMULATOR): the page test runs native binaries")
        sys.exit(77)
    if not find_chromium():
        harness.log("SKIP: chromium is not installed (Debian package chromium, in EL_TEST_PACKAGES)")
        sys.exit(77)
    try:
        setup()
        harness.run(tests)
    finally:
        cleanup()


def page_test_cleanup(env):
    """Stops what a page test's env holds (browser, daemon, broker) and removes
    the bulky parts of its temp dir, keeping the screenshot and the logs."""
    br = env.pop("browser", None)
    if br:
        br.close()
    for k in ("daemon", "broker"):
        if k in env:
            env.pop(k).stop()
    td = env.get("td")
    if td:
        for sub in ("data", "web", "chromium-profile"):
            shutil.rmtree(os.path.join(td.path, sub), ignore_errors=True)
