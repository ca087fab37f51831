"""Security (issue 7): MQTT over TLS with a CA generated at test time, a
username and password file, and ACLs on the broker; secrets files readable
by others are refused; SQL-looking series names and payloads are stored as
data (SQL only through prepared statements)."""
import json
import os
import subprocess

from harness import Broker, Daemon, TempDir, check, rr, run, wait_until, DAEMON


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A test CA and a server certificate for 127.0.0.1/localhost."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=edgelambda test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    # mosquitto drops root privileges to its own user: let it read its test key.
    for f in ("server.key", "server.crt", "ca.crt"):
        os.chmod(os.path.join(d, f), 0o644)


def test_tls_password_acl_and_secret_files():
    td = TempDir("sec")
    p = td.path
    make_pki(p)
    subprocess.run(["mosquitto_passwd", "-b", "-c", os.path.join(p, "passwd"), "edge", "s3cret pass"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", os.path.join(p, "passwd"), "sensor", "sensorpw"], check=True)
    os.chmod(os.path.join(p, "passwd"), 0o644)
    with open(os.path.join(p, "acl"), "w") as f:
        f.write("user edge\ntopic read sensors/#\ntopic readwrite edgelambda/#\ntopic read $SYS/#\n"
                "user sensor\ntopic write sensors/#\ntopic write edgelambda/query\n"
                # each client reads only its own replies (docs/RELIABILITY.md)
                "pattern read edgelambda/reply/%u/#\n")
    os.chmod(os.path.join(p, "acl"), 0o644)
    extra = ("allow_anonymous false\npassword_file %s/passwd\nacl_file %s/acl\n"
             "cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n" % (p, p, p, p, p))
    b = Broker(p, extra=extra)
    b.start()
    pw = os.path.join(p, "edge.pw")
    with open(pw, "w") as f:
        f.write("s3cret pass\n")
    os.chmod(pw, 0o644)
    d = Daemon(p, b, mqtt__uri="ssl://127.0.0.1:%d" % b.port, mqtt__ca_file=os.path.join(p, "ca.crt"),
               mqtt__username="edge", mqtt__password_file=pw)
    try:
        # A password file others can read is refused, naming the file.
        r = subprocess.run(d.args(), capture_output=True, text=True, timeout=20)
        check(r.returncode != 0 and "edge.pw" in r.stdout + r.stderr,
              "world-readable password file accepted: %s %s" % (r.stdout, r.stderr))
        os.chmod(pw, 0o600)
        d.start()
        tls = ["--cafile", os.path.join(p, "ca.crt"), "-u", "sensor", "-P", "sensorpw"]
        names = ["sensors/x'; DROP TABLE events; --", 'sensors/"quoted"/t', "sensors/a;b/temp"]
        for n in names:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-q", "1", "-t", n,
                            "-m", '{"value": 1.5, "note": "\'); DELETE FROM series; --"}'] + tls, check=True)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-q", "1", "-t", "sensors/b",
                        "-m", "'; DROP TABLE events; --"] + tls, check=True)
        wait_until(lambda: d.event_count() == 3 and d.query1("SELECT count(*) FROM dead_letters") == 1, 30,
                   "events and the dead letter over TLS")
        con = d.db()
        got = sorted(r[0] for r in con.execute("SELECT name FROM series"))
        dl = con.execute("SELECT reason, payload FROM dead_letters").fetchall()
        con.close()
        check(got == sorted(names), "series names not stored verbatim: %s" % got)
        check(dl == [("malformed", b"'; DROP TABLE events; --")], "dead letter: %s" % dl)
        # A query over TLS as the sensor user, through the real mosquitto_rr.
        r = subprocess.run(["mosquitto_rr", "-h", "127.0.0.1", "-p", str(b.port), "-t", "edgelambda/query",
                            "-e", "edgelambda/reply/sensor/1", "-W", "10", "-m",
                            json.dumps({"series": names[0], "from": "-1h", "step": "1h", "agg": ["count"]})] + tls,
                           capture_output=True, text=True, timeout=30)
        ans = json.loads(r.stdout)
        check(ans["ok"] and sum(x["count"] for x in ans["buckets"]) == 1, "query over TLS: %s" % ans)
        d.stop()
        # Without the CA the daemon cannot connect (verification is on).
        os.makedirs(os.path.join(p, "d2"))
        d2 = Daemon(os.path.join(p, "d2"), b, client_id="el-test-2", mqtt__uri="ssl://127.0.0.1:%d" % b.port,
                    mqtt__username="edge", mqtt__password_file=pw)
        d2.start(wait_subscribed=False)
        wait_until(lambda: "cannot connect" in d2.log_text(), 30, "TLS verification failure")
        check("subscribed to" not in d2.log_text(), "connected without trusting the CA")
        d2.stop()
    finally:
        d.kill()
        b.stop()
        td.cleanup()


def test_example_config_and_defaults_stay_on_loopback():
    from harness import SOURCE
    text = open(os.path.join(SOURCE, "edgelambda.conf.example")).read()
    check("# uri = tcp://127.0.0.1:1883" in text, "example config does not default to loopback")
    r = subprocess.run([DAEMON, "--help-config"], capture_output=True, text=True)
    check("127.0.0.1" in r.stdout and "0.0.0.0" not in r.stdout, "defaults leave loopback")


if __name__ == "__main__":
    run([test_tls_password_acl_and_secret_files, test_example_config_and_defaults_stay_on_loopback])
