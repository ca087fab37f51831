"""The live page's login form, against a broker that asks for a password.

Must show (issue #14, a technician at a board whose broker has passwords):
mosquitto with allow_anonymous false and a password file serves the page on
its WebSockets listener; the daemon logs in with its own user. Then, in a
real headless Chromium:
- the page does not retry blindly: it shows the login form and says why
  (the broker refused the anonymous connection, CONNACK 5);
- a wrong password keeps the form up and says the broker refused it;
- the right one connects, and the retained status (published by the daemon)
  is rendered with the same log.seq as `edgelambda status --json`;
- a reload in the same tab connects without the form (the login is kept for
  the tab), and "log out" forgets it: the form is back after the reload;
- no uncaught JavaScript exception.
"""
import json
import os
import shutil
import subprocess
import sys

import cdp
import harness
from harness import CLI, EMULATOR, Broker, Daemon, TempDir, check, log, wait_until

USER, PASSWORD = "tech", "field pass 7"
ENV = {}


def page(expr):
    return ENV["browser"].eval(expr)


def state():
    return page("document.getElementById('conn')?.dataset.state")


def form_shown():
    return page("!document.getElementById('login').hidden && document.querySelector('main').hidden")


def submit(user, password):
    page("""(() => {
      document.getElementById('login-user').value = %s;
      document.getElementById('login-pass').value = %s;
      document.getElementById('login').requestSubmit();
      return true; })()""" % (json.dumps(user), json.dumps(password)))


def setup():
    td = ENV["td"] = TempDir("weblogin")
    www = os.path.join(td.path, "web")
    shutil.copytree(os.path.join(harness.SOURCE, "web"), www)
    pw = os.path.join(td.path, "passwd")
    subprocess.run(["mosquitto_passwd", "-b", "-c", pw, USER, PASSWORD], check=True)
    subprocess.run(["mosquitto_passwd", "-b", pw, "daemon", "daemon pass"], check=True)
    os.chmod(pw, 0o644)  # the broker may drop to its own user
    secret = os.path.join(td.path, "daemon.secret")
    with open(secret, "w") as f:
        f.write("daemon pass\n")
    os.chmod(secret, 0o600)
    b = ENV["broker"] = Broker(td.path, extra="allow_anonymous false\npassword_file %s\n" % pw,
                               http_dir=www).start()
    d = ENV["daemon"] = Daemon(td.path, b, mqtt__username="daemon", mqtt__password_file=secret).start()
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-q", "1", "-u", USER, "-P",
                        PASSWORD, "-t", "sensors/login/t", "-l"],
                       input="".join(json.dumps({"value": k}) + "\n" for k in range(20)).encode(),
                       capture_output=True, timeout=60)
    check(r.returncode == 0, "mosquitto_pub: %s" % r.stderr)
    wait_until(lambda: d.event_count() == 20, 30, "the 20 readings in the master log")
    try:
        br = ENV["browser"] = cdp.Browser(td.path)
    except cdp.Unavailable as e:
        log("SKIP: chromium cannot run here: %s" % e)
        cleanup()
        sys.exit(77)
    ENV["url"] = "http://127.0.0.1:%d/" % b.ws_port
    br.navigate(ENV["url"])


def cleanup():
    cdp.page_test_cleanup(ENV)


def test_form_instead_of_retrying():
    wait_until(lambda: state() == "login", 20, "the page to ask for a login", interval=0.1)
    check(form_shown(), "login form not shown (or the main panels not hidden)")
    why = page("document.getElementById('login-why').textContent")
    check("asks for a user name and password" in why, "reason shown: %r" % why)


def test_wrong_password_refused():
    submit(USER, "not the password")
    wait_until(lambda: state() == "login" and "refused" in page("document.getElementById('login-why').textContent"),
               20, "the refusal of a wrong password", interval=0.1)
    check(form_shown(), "form hidden after a wrong password")


def test_right_password_connects_and_shows_status():
    submit(USER, PASSWORD)
    wait_until(lambda: state() == "connected", 20, "the page to connect with the password", interval=0.1)
    check(not form_shown(), "form still shown once connected")
    r = subprocess.run(EMULATOR + [CLI, "--uri", ENV["broker"].uri, "--username", "daemon", "--password-file",
                                   os.path.join(ENV["td"].path, "daemon.secret"), "status", "--json",
                                   "--timeout", "5"], capture_output=True, text=True, timeout=30)
    # ... and without a password the CLI says the broker refused it.
    anon = subprocess.run(EMULATOR + [CLI, "--uri", ENV["broker"].uri, "status", "--json", "--timeout", "5"],
                          capture_output=True, text=True, timeout=30)
    check(anon.returncode != 0 and "author" in anon.stderr.lower(), "anonymous CLI: %s %s" % (anon.returncode,
                                                                                          anon.stderr))
    check(r.returncode == 0, "edgelambda status: %s %s" % (r.stdout, r.stderr))
    seq = json.loads(r.stdout)["log"]["seq"]
    wait_until(lambda: page("document.querySelector('[data-field=\"log.seq\"]')?.dataset.value") == json.dumps(seq),
               20, "the page to show log.seq %d" % seq, interval=0.1)
    check(not page("document.getElementById('logout').hidden"), "no log out button once logged in")


def test_reload_keeps_login_logout_forgets():
    ENV["browser"].navigate(ENV["url"])
    wait_until(lambda: state() == "connected", 20, "the page to reconnect after a reload", interval=0.1)
    check(not form_shown(), "form shown after a reload in the same tab")
    page("document.getElementById('logout').click(), true")
    wait_until(lambda: state() == "login", 20, "the form after log out", interval=0.1)
    check(form_shown(), "form not shown after log out")


def test_no_errors():
    ENV["browser"].check_no_errors()


if __name__ == "__main__":
    cdp.page_test_main(setup, [
        test_form_instead_of_retrying,
        test_wrong_password_refused,
        test_right_password_connects_and_shows_status,
        test_reload_keeps_login_logout_forgets,
        test_no_errors,
    ], cleanup)
