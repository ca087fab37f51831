"""./tools/demo as a newcomer runs it, with the binaries of this build.

Must show (issue 11, "works in the field, first time"):
- `./tools/demo --seconds 15 --dir DIR` (EL_DEMO_BUILD_DIR = this build, so
  nothing is installed or built) exits 0 within 15 s plus a bounded margin,
  its screen shows the busiest-series table with a row whose events/min is
  above 0, the master log in DIR holds the events, and afterwards no process
  it started remains: the pids it reports are gone, no process names DIR on
  its command line, nothing is left in its process group and the broker's
  port is closed.
- Ctrl-C (SIGINT to its process group, as a terminal sends it) and SIGTERM
  end it with 130 and 143, the daemon stopping cleanly, nothing left behind.
- A daemon that cannot start (a bad configuration value) makes it print the
  daemon's last log lines and exit 1, nothing left behind.
- Usage errors (--seconds without a value, --seconds abc, --rate abc,
  --series 0, ...) exit 2 with a message on stderr, before anything starts.
- The screen code (tools/lib/demo_view.py) shows the clock state, explains an
  unsynchronised clock in one plain line, and takes documents with fields
  missing or added (e.g. "provisional" counts) without failing.

The live runs keep the daemon's clock setting (clock.synced = auto), as a
newcomer's board does: on a host whose clock is not synchronised (a container
reports TIME_ERROR, a board without RTC before NTP) the table must show the
readings provisionally, and the screen must say so in one plain line.
EL_DEMO_DAEMON_ARGS (the demo's test hook for extra daemon arguments) makes
the daemon fail at start, and gives a sanitizer build's queries the harness's
longer deadline.
"""
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import harness
from harness import TempDir, check, log, run, wait_until

DEMO = os.path.join(harness.SOURCE, "tools", "demo")
VIEW = os.path.join(harness.SOURCE, "tools", "lib", "demo_view.py")
SECONDS = 15
# Start-up (a sanitizer build is slower) plus the ordered stop.
MARGIN = 30 * harness.SLOW
LIVE_ARGS = ""  # e.g. "--set clock.synced=yes" to take the host clock out of the picture


def skip_if_unable():
    why = None
    if harness.EMULATOR:
        why = "emulated build (EL_EMULATOR): the demo runs native binaries"
    elif not all(os.access(p, os.X_OK) for p in (harness.DAEMON, harness.CLI)):
        why = "no edgelambdad/edgelambda in %s" % harness.BUILD
    elif not (shutil.which("mosquitto") or os.access("/usr/sbin/mosquitto", os.X_OK)):
        why = "no mosquitto"
    elif not shutil.which("bash") or not shutil.which("setsid"):
        why = "no bash or setsid"
    if why:
        print("skipped: %s" % why)
        sys.exit(77)


def slow_build_args():
    """A sanitizer build on a loaded CI machine is several times slower than a
    board's release build: give its queries the harness's deadline (when the
    daemon has query.deadline_ms), or the table may never fill."""
    if harness.SLOW <= 1:
        return ""
    r = subprocess.run([harness.DAEMON, "--help-config"], capture_output=True, text=True, timeout=60)
    if re.search(r"^\[query\]$", r.stdout, re.M) and re.search(r"^# deadline_ms =", r.stdout, re.M):
        return " --set query.deadline_ms=%d" % int(10000 * harness.SLOW)
    return ""


def demo_env(daemon_args=LIVE_ARGS):
    env = dict(os.environ, EL_DEMO_BUILD_DIR=os.path.abspath(harness.BUILD))
    env["EL_DEMO_DAEMON_ARGS"] = daemon_args + (slow_build_args() if daemon_args == LIVE_ARGS else "")
    return env


def as_from_a_terminal():
    # A terminal's shell starts the demo with SIGINT at its default action
    # (ctest or a CI runner may have it ignored, and bash cannot trap a
    # signal that was ignored when it started), in a process group of its own.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Demo:
    """./tools/demo in a process group of its own; screen and errors to files."""

    def __init__(self, td, args, daemon_args=LIVE_ARGS):
        self.td = td
        self.data = os.path.join(td.path, "var")
        self.out_path = os.path.join(td.path, "screen.txt")
        self.err_path = os.path.join(td.path, "stderr.txt")
        self.t0 = time.monotonic()
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([DEMO] + args + ["--dir", self.data], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, env=demo_env(daemon_args),
                                         start_new_session=True, preexec_fn=as_from_a_terminal)
        self.pgid = self.proc.pid

    def screen(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("the demo did not exit within %.0f s; screen:\n%s\nstderr:\n%s"
                                 % (timeout, self.screen()[-3000:], self.stderr()[-3000:]))

    def pids(self):
        m = re.search(r"^== pids: mosquitto (\d+) edgelambdad (\d+) loadgen (\d+)$", self.screen(), re.M)
        return {name: int(pid) for name, pid in zip(("mosquitto", "edgelambdad", "loadgen"), m.groups())} \
            if m else {}

    def port(self):
        m = re.search(r"^== broker tcp://127\.0\.0\.1:(\d+)", self.screen(), re.M)
        return int(m.group(1)) if m else None

    def kill_all(self):
        """Last resort after a failure: nothing of a failed test stays."""
        for pid in self.pids().values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.wait()


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def check_nothing_left(d):
    """No process the demo started outlives it."""
    pids = d.pids()
    left = []
    for name, pid in pids.items():
        c = cmdline(pid)
        # The pid may have been reused by then: only ours count.
        if c is not None and (d.td.path in c or "127.0.0.1:%s" % d.port() in c):
            left.append("%s (pid %d): %s" % (name, pid, c))
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            c = cmdline(int(entry))
            if c and d.td.path in c:
                left.append("pid %s: %s" % (entry, c))
    try:
        os.killpg(d.pgid, 0)
        left.append("processes in the demo's process group %d" % d.pgid)
    except ProcessLookupError:
        pass
    port = d.port()
    if port:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            left.append("something still listens on the broker's port %d" % port)
        except OSError:
            pass
    check(not left, "left behind by the demo:\n  " + "\n  ".join(left))
    return pids


def busiest_rows(screen):
    """(series, events/min) of every row of every busiest-series table."""
    rows = []
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("busiest series, last minute") or i + 1 >= len(lines):
            continue
        header = lines[i + 1].split()
        if not header or header[0] != "series" or "events/min" not in header:
            continue
        col = header.index("events/min")
        for row in lines[i + 2:]:
            cells = row.split()
            if not row.startswith("  ") or len(cells) != len(header):
                break
            rows.append((cells[0], int(cells[col]) if cells[col].isdigit() else 0))
    return rows


def test_bounded_run_shows_busiest_series():
    td = TempDir("demo")
    d = None
    try:
        d = Demo(td, ["--seconds", str(SECONDS)])
        rc = d.wait(SECONDS + MARGIN)
        took = time.monotonic() - d.t0
        screen, err = d.screen(), d.stderr()
        log("demo exited %s after %.1f s; last frame:\n%s" % (rc, took, screen.strip()[-1500:]))
        check(rc == 0, "the demo exited %s:\nstderr:\n%s\nscreen:\n%s" % (rc, err[-3000:], screen[-3000:]))
        check(took <= SECONDS + MARGIN, "took %.1f s" % took)
        check(d.pids(), "the demo did not report its pids:\n%s" % screen[:2000])
        states = re.findall(r"^\S+, up \d+s \| \S+ events/s \| accepted \d+ .*\| clock (synchronised|NOT synchronised)",
                            screen, re.M)
        check(states, "no status line with the clock state:\n%s" % screen[-2000:])
        notes = len(re.findall(r"^The board's clock is not synchronised: ", screen, re.M))
        check(notes == states.count("NOT synchronised"),
              "%d frames with an unsynchronised clock, %d explanations" % (states.count("NOT synchronised"), notes))
        rows = busiest_rows(screen)
        busy = [r for r in rows if r[1] > 0]
        check(busy, "no busiest-series row with events/min > 0 (rows: %s):\n%s" % (rows[-12:], screen[-3000:]))
        check(all(name.startswith("sensors/dev") for name, _ in rows), "odd series names: %s" % rows[-12:])
        check("edgelambdad exited" not in err and "did not stop" not in err, "stderr:\n%s" % err)
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.data, "master.db"), uri=True)
        try:
            # Readings without a timestamp wait in "unanchored" for a synchronised clock.
            tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            events = sum(con.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                         for t in ("events", "unanchored") if t in tables)
        finally:
            con.close()
        check(events > 0, "the master log in --dir holds no readings")
        check(os.path.exists(os.path.join(d.data, "demo", "mosquitto.log")), "no broker log in DIR/demo")
        pids = check_nothing_left(d)
        log("%d rows, busiest %s %d/min; %d readings in the master log; clock %s; pids %s all gone"
            % (len(rows), busy[0][0], busy[0][1], events, states[-1], pids))
    finally:
        if d:
            d.kill_all()
        td.cleanup()


def test_ctrl_c_and_sigterm_stop_everything():
    for name, how, want in (("Ctrl-C", signal.SIGINT, 130), ("SIGTERM", signal.SIGTERM, 143)):
        td = TempDir("demo-sig")
        d = None
        try:
            d = Demo(td, [])  # no --seconds: until stopped
            wait_until(lambda: d.proc.poll() is not None or busiest_rows(d.screen()), 30 + MARGIN,
                       "the demo's first table (%s)" % name, interval=0.2)
            check(d.proc.poll() is None, "the demo exited %s:\n%s" % (d.proc.returncode, d.stderr()))
            if how == signal.SIGINT:
                os.killpg(d.pgid, signal.SIGINT)  # what a terminal does on Ctrl-C
            else:
                d.proc.send_signal(signal.SIGTERM)
            rc = d.wait(MARGIN + 10)
            err = d.stderr()
            check(rc == want, "%s: the demo exited %s, not %s:\n%s" % (name, rc, want, err[-3000:]))
            check("edgelambdad exited" not in err and "did not stop" not in err,
                  "%s: the daemon did not stop cleanly:\n%s" % (name, err))
            check("stopped; the master log stays in" in d.screen(), "%s: no closing line" % name)
            check_nothing_left(d)
            log("%s: exit %d, nothing left" % (name, rc))
        finally:
            if d:
                d.kill_all()
            td.cleanup()


def test_daemon_that_cannot_start():
    td = TempDir("demo-fail")
    d = None
    try:
        d = Demo(td, ["--seconds", "5"], daemon_args="--set storage.durability=fast")
        rc = d.wait(30 + MARGIN)
        err = d.stderr()
        check(rc == 1, "the demo exited %s:\n%s" % (rc, err))
        check("edgelambdad exited by itself" in err and "the last lines of the edgelambdad log" in err,
              "no log excerpt:\n%s" % err)
        check("durability" in err, "the daemon's own error is not shown:\n%s" % err)
        check_nothing_left(d)
    finally:
        if d:
            d.kill_all()
        td.cleanup()


def test_usage_errors():
    td = TempDir("demo-usage")
    try:
        data = os.path.join(td.path, "var")
        cases = [["--seconds"], ["--seconds", "abc"], ["--seconds", "-5"], ["--seconds", "1.5"],
                 ["--rate"], ["--rate", "abc"], ["--rate", "-1"], ["--series", "0"], ["--series", "x"],
                 ["--series"], ["--dir"], ["--dir", ""], ["--seconds=abc"], ["--frobnicate"]]
        for args in cases:
            r = subprocess.run([DEMO] + args, capture_output=True, text=True, timeout=30, env=demo_env(),
                               cwd=td.path, stdin=subprocess.DEVNULL)
            check(r.returncode == 2, "%s: exit %s (want 2)\nstdout:%s\nstderr:%s"
                  % (args, r.returncode, r.stdout[-1000:], r.stderr[-1000:]))
            check(r.stderr.startswith("demo: ") and "usage: ./tools/demo" in r.stderr,
                  "%s: no usage message on stderr: %r" % (args, r.stderr))
            check("unbound variable" not in r.stderr and "shift" not in r.stderr,
                  "%s: a shell error: %r" % (args, r.stderr))
            check(r.stdout == "", "%s: something ran: %r" % (args, r.stdout))
        check(not os.path.exists(data) and not os.path.exists(os.path.join(td.path, "demo")),
              "a usage error created files")
        env = demo_env()
        env["EL_DEMO_BUILD_DIR"] = td.path  # no binaries there
        r = subprocess.run([DEMO, "--seconds", "1", "--dir", data], capture_output=True, text=True,
                           timeout=30, env=env, stdin=subprocess.DEVNULL)
        check(r.returncode == 2 and "EL_DEMO_BUILD_DIR" in r.stderr, "bad EL_DEMO_BUILD_DIR: %s %r"
              % (r.returncode, r.stderr))
        r = subprocess.run([DEMO, "--help"], capture_output=True, text=True, timeout=30, env=demo_env())
        check(r.returncode == 0 and "--dir DIR" in r.stdout and "--seconds N" in r.stdout,
              "--help: %s %r" % (r.returncode, r.stdout))
        log("%d usage errors exit 2 with a message" % len(cases))
    finally:
        td.cleanup()


def view(status, answer, stale=""):
    td = TempDir("demo-view")
    try:
        s, q = os.path.join(td.path, "s.json"), os.path.join(td.path, "q.json")
        with open(s, "w") as f:
            f.write(status)
        with open(q, "w") as f:
            f.write(answer)
        r = subprocess.run([sys.executable, VIEW, s, q, "0", stale], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and not r.stderr, "demo_view failed (%s): %s" % (r.returncode, r.stderr))
        return r.stdout
    finally:
        td.cleanup()


def test_screen_clock_line_and_tolerance():
    import json
    status = {"state": "online", "version": "0.1.0", "uptime_s": 42, "clock_synced": False,
              "clock": {"unanchored_events": 1234, "anchored_events": 0, "steps": 0},
              "ingest": {"received": 10, "accepted": 9, "rejected": {"malformed": 1}, "dead_letters": 1,
                         "rate_per_s": 2000.4},
              "log": {"seq": 9, "bytes": 1500000}, "speed": {"series": 2}}
    answer = {"ok": True, "seq": 9, "series": [
        {"series": "sensors/a/temp", "buckets": [{"t": 0, "count": 7, "mean": 1.5, "min": 1, "max": 2,
                                                  "p95": 2, "last": 2}]},
        {"series": "sensors/b/temp", "buckets": [{"t": 0, "count": 2}]},
        {"series": "sensors/c/temp", "buckets": []}]}
    out = view(json.dumps(status), json.dumps(answer))
    log(out)
    check("clock NOT synchronised (1234 waiting for it)" in out, "no clock state:\n%s" % out)
    note = [line for line in out.splitlines() if line.startswith("The board's clock is not synchronised")]
    check(len(note) == 1 and "provisionally" in note[0] and "timedatectl" in note[0]
          and "clock.synced = yes" in note[0] and "--set clock.synced=yes" in note[0],
          "no single explanatory line:\n%s" % out)
    check(busiest_rows(out) == [("sensors/a/temp", 7), ("sensors/b/temp", 2)], "rows %s" % busiest_rows(out))

    # Synchronised: no explanation. Fields added later ("provisional" counts)
    # and fields missing are both fine.
    status.update(clock_synced=True, provisional={"events": 5})
    answer["provisional"] = 3
    answer["series"][0]["buckets"][0]["provisional"] = 3
    out = view(json.dumps(status), json.dumps(answer))
    check("| clock synchronised" in out and "The board's clock" not in out, "synchronised:\n%s" % out)
    check(busiest_rows(out)[0] == ("sensors/a/temp", 7), "rows with a provisional column: %s" % out)
    check("3 readings of this answer are provisional" in out, "no provisional note:\n%s" % out)
    # The shape of answers with provisional data: counts per series entry.
    del answer["series"][0]["buckets"][0]["provisional"]
    answer["series"][0]["provisional"] = 7
    out = view(json.dumps(status), json.dumps(answer))
    header = [line.split() for line in out.splitlines() if line.strip().startswith("series ")][0]
    row = [line.split() for line in out.splitlines() if line.strip().startswith("sensors/a/temp ")][0]
    check(header[-1] == "provisional" and row[-1] == "7" and busiest_rows(out)[0] == ("sensors/a/temp", 7),
          "no per-series provisional count:\n%s" % out)
    for s_doc, q_doc in (("", ""), ("{}", "{}"), ('{"state":"offline"}', '{"ok":true}'),
                         ('{"ingest":{}}', '{"ok":true,"series":[{"buckets":[{}]}]}'), ("[1]", "null"),
                         ('{"ingest":{"rejected":null},"clock":7,"clock_synced":false}',
                          '{"ok":false,"error":{"code":"busy","message":"busy"}}')):
        view(s_doc, q_doc)
        view(s_doc, q_doc, "sq")


if __name__ == "__main__":
    skip_if_unable()
    run([test_usage_errors, test_screen_clock_line_and_tolerance, test_bounded_run_shows_busiest_series,
         test_ctrl_c_and_sigterm_stop_everything, test_daemon_that_cannot_start])
