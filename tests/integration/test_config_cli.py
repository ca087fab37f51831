"""edgelambdad's command line and --check-config (issue 2)."""
import os
import subprocess

import re

from harness import DAEMON, SOURCE, Broker, Daemon, TempDir, check, run


def daemon(*args):
    return subprocess.run([DAEMON] + list(args), capture_output=True, text=True, timeout=30)


def test_log_lines_carry_a_time_unless_journald():
    """Outside journald (which stamps lines itself and reads the <N>
    priority prefix) every log line starts with an ISO 8601 UTC time."""
    td = TempDir("logtime")
    b = Broker(td.path).start()
    try:
        d = Daemon(td.path, b).start()
        d.stop()
        lines = [ln for ln in d.log_text().splitlines() if "edgelambda " in ln]
        stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z edgelambda (info|warn|error|debug): ")
        bad = [ln for ln in lines if not stamp.match(ln)]
        check(lines and not bad, "log lines without a time: %s" % bad[:3])
        os.makedirs(os.path.join(td.path, "j"))
        j = Daemon(os.path.join(td.path, "j"), b, client_id="el-test-j")
        j.env["JOURNAL_STREAM"] = "8:12345"
        j.start()
        j.stop()
        jl = [ln for ln in j.log_text().splitlines() if ln.strip()]
        check(jl and all(re.match(r"^<[3467]>", ln) for ln in jl), "journald lines: %s" % jl[:3])
    finally:
        b.stop()
        td.cleanup()


def test_check_config_checks_the_files_it_names():
    """--check-config fails, naming key and file, on what would otherwise make
    the service fail at start (and systemd restart it in a loop)."""
    td = TempDir("checkfiles")
    try:
        p = td.path
        secret = os.path.join(p, "token")
        with open(secret, "w") as f:
            f.write("t0ken\n")
        os.chmod(secret, 0o644)
        afile = os.path.join(p, "afile")
        open(afile, "w").close()
        cases = [
            (["sync.token_file=" + secret], "sync.token_file = %s: others can access it" % secret),
            (["mqtt.ca_file=" + os.path.join(p, "missing.pem")], "mqtt.ca_file = "),
            (["storage.dir=" + afile], "storage.dir = %s: not a directory" % afile),
            (["storage.dir=" + os.path.join(afile, "sub")], "a file stands in its path"),
            (["metrics.textfile=" + os.path.join(p, "nodir", "x.prom")], "metrics.textfile = "),
        ]
        for sets, want in cases:
            args = ["--check-config", "--set", "storage.dir=" + os.path.join(p, "data")]
            for kv in sets:
                args += ["--set", kv]
            r = daemon(*args)
            check(r.returncode != 0 and want in r.stderr, "%s: rc %d, %r" % (sets, r.returncode, r.stderr))
        os.chmod(secret, 0o600)
        r = daemon("--check-config", "--set", "storage.dir=" + os.path.join(p, "new", "data"),
                   "--set", "sync.token_file=" + secret)
        check(r.returncode == 0, "a private token and a creatable storage.dir refused: %s" % r.stderr)
    finally:
        td.cleanup()


def test_empty_file_is_valid():
    td = TempDir("cfg")
    try:
        p = os.path.join(td.path, "empty.conf")
        open(p, "w").close()
        r = daemon("-c", p, "--check-config")
        check(r.returncode == 0, "empty config rejected: %s" % r.stderr)
    finally:
        td.cleanup()


def test_bad_value_names_key_and_line():
    td = TempDir("cfg")
    try:
        p = os.path.join(td.path, "bad.conf")
        with open(p, "w") as f:
            f.write("# a comment\n\n[mqtt]\nuri = tcp://127.0.0.1:1883\n\n[storage]\ndurability = fast\n")
        r = daemon("-c", p, "--check-config")
        check(r.returncode == 1, "bad config accepted (rc %d)" % r.returncode)
        check(":7:" in r.stderr and "durability" in r.stderr and "[storage]" in r.stderr,
              "message does not name line 7, section and key: %r" % r.stderr)
        with open(p, "w") as f:
            f.write("[ingest]\nqos = 1\nno_such_key = 3\n")
        r = daemon("-c", p, "--check-config")
        check(r.returncode == 1 and ":3:" in r.stderr and "no_such_key" in r.stderr,
              "unknown key not reported with its line: %r" % r.stderr)
        r = daemon("-c", os.path.join(td.path, "missing.conf"), "--check-config")
        check(r.returncode == 1 and "missing.conf" in r.stderr, "missing file: %r" % r.stderr)
        r = daemon("--set", "speed.max_series=0", "--check-config")
        check(r.returncode == 1 and "max_series" in r.stderr, "bad override accepted: %r" % r.stderr)
    finally:
        td.cleanup()


def test_example_config_is_valid():
    r = daemon("-c", os.path.join(SOURCE, "edgelambda.conf.example"), "--check-config")
    check(r.returncode == 0, "example config invalid: %s" % r.stderr)


def test_help_and_version():
    r = daemon("--help")
    check(r.returncode == 0 and "--check-config" in r.stdout, "--help: %r" % r.stdout)
    r = daemon("--version")
    check(r.returncode == 0 and r.stdout.startswith("edgelambdad "), "--version: %r" % r.stdout)
    r = daemon("--no-such-option")
    check(r.returncode != 0, "unknown option accepted")


if __name__ == "__main__":
    run([test_log_lines_carry_a_time_unless_journald, test_check_config_checks_the_files_it_names, test_empty_file_is_valid, test_bad_value_names_key_and_line, test_example_config_is_valid,
         test_help_and_version])
