"""Debian packages for amd64, arm64 and armhf (CPack): contents and binaries.

Must show (issue: packages, systemd, footprint): `cpack -G DEB` in a native
build and in the two cross builds gives edgelambda_<version>_<arch>.deb, each
with stripped binaries of its architecture that run (under qemu-user for
ARM) with Debian's libraries, the systemd unit, the default configuration in
/etc/edgelambda as a conffile (edgelambda.conf.example: every key at its
default, accepted by the packaged daemon), the state directory, the README
and a copyright file naming the Apache-2.0 license and LICENSE's holder
(Debian's machine-readable format) in /usr/share/doc, maintainer scripts that
parse, and a Depends line that covers every shared library the binaries need; the
manual pages edgelambda(1), edgelambda.conf(5) (what the packaged daemon's
--help-config=man prints) and edgelambdad(8), gzip -9n, a Debian changelog and
the bash completion; the live page in /usr/share/edgelambda/web with the
mosquitto snippet that serves it in the doc directory; and lintian reports no error (E:) on any of the three
(its warnings are listed in docs/DEPLOY.md). The unit passes
`systemd-analyze verify` and rates <= 2.0 in `systemd-analyze security`;
edgelambdad stays <= 1 MiB stripped on aarch64. Prints the binary sizes.
And the daemon speaks the protocol the unit relies on (Type=notify,
WatchdogSec=): READY=1 with STATUS=, WATCHDOG=1 at half the interval,
STOPPING=1 on SIGTERM, over a NOTIFY_SOCKET like systemd's.

Builds are cached under $EL_XC_CACHE (default build/xc): build-amd64 (native,
RelWithDebInfo), build-aarch64 and build-armhf (tools/sysroot ARCH --build).
"""
import fcntl
import gzip
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import harness
from harness import Broker, Daemon, TempDir, check, log, run

XC_CACHE = os.environ.get("EL_XC_CACHE") or os.path.join(harness.SOURCE, "build", "xc")
VERSION_RE = re.compile(r"project\(edgelambda VERSION ([0-9.]+)")
ARCHES = {  # Debian arch: (ELF class, machine as readelf names it, interpreter, emulator)
    "amd64": ("ELF64", "Advanced Micro Devices X86-64", "/lib64/ld-linux-x86-64.so.2", None),
    "arm64": ("ELF64", "AArch64", "/lib/ld-linux-aarch64.so.1", "qemu-aarch64-static"),
    "armhf": ("ELF32", "ARM", "/lib/ld-linux-armhf.so.3", "qemu-arm-static"),
}
MAX_DAEMON_BYTES_AARCH64 = 1024 * 1024
# The live page (web/) and the libraries it loads, as its index.html names them.
WEB_FILES = tuple("usr/share/edgelambda/web/" + f for f in ("index.html", "app.js", "vendor/paho-mqtt-min.js",
                                                           "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"))
MAN_PAGES = ("usr/share/man/man1/edgelambda.1.gz", "usr/share/man/man5/edgelambda.conf.5.gz",
             "usr/share/man/man8/edgelambdad.8.gz")


def sh(args, timeout=1200, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    check(r.returncode == 0, "%s failed (%s):\n%s%s" % (" ".join(args), r.returncode, r.stdout[-3000:],
                                                      r.stderr[-3000:]))
    return r.stdout


class Lock:
    """The lock tools/sysroot takes for an architecture's cache (ctest runs
    tests in parallel; cpack must not race a rebuild of the same tree)."""

    def __init__(self, name):
        os.makedirs(XC_CACHE, exist_ok=True)
        self.f = open(os.path.join(XC_CACHE, ".lock-" + name), "w")

    def __enter__(self):
        fcntl.flock(self.f, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def build_dir(arch):
    env = dict(os.environ, EL_XC_CACHE=XC_CACHE)
    if arch == "amd64":
        d = os.path.join(XC_CACHE, "build-amd64")
        with Lock("amd64"):
            sh(["cmake", "-S", harness.SOURCE, "-B", d, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DEL_WERROR=ON"])
            sh(["cmake", "--build", d, "-j%d" % (os.cpu_count() or 2), "--target", "edgelambdad", "edgelambda"])
        return d
    out = sh([os.path.join(harness.SOURCE, "tools", "sysroot"), arch, "--build", "--print"], env=env)
    return out.strip().splitlines()[-1]


def make_deb(arch):
    d = build_dir(arch)
    with Lock(arch):
        for old in os.listdir(d):
            if old.endswith(".deb"):
                os.remove(os.path.join(d, old))
        sh(["cpack", "-G", "DEB"], cwd=d)
    debs = [f for f in os.listdir(d) if f.endswith(".deb")]
    check(len(debs) == 1, "cpack made %s" % debs)
    return os.path.join(d, debs[0])


def readelf(*args):
    return sh(["readelf"] + list(args), timeout=60)


def check_binary(path, arch):
    cls, machine, interp, _ = ARCHES[arch]
    h = readelf("-h", path)
    check(re.search(r"Class:\s+%s" % cls, h), "%s: not %s:\n%s" % (path, cls, h))
    check(re.search(r"Machine:\s+%s" % re.escape(machine), h), "%s: not %s:\n%s" % (path, machine, h))
    check("[Requesting program interpreter: %s]" % interp in readelf("-l", path),
          "%s: interpreter is not %s" % (path, interp))
    sections = readelf("-S", "-W", path)
    check(".symtab" not in sections and ".debug_info" not in sections, "%s is not stripped" % path)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", path))


def run_binary(root, arch, args):
    emulator = ARCHES[arch][3]
    sysroot = os.path.join(XC_CACHE, "sysroot-" + arch)
    prefix = [emulator, "-L", sysroot] if emulator else []
    return sh(prefix + [os.path.join(root, "usr/bin/edgelambdad")] + args, timeout=120)


def check_deb(deb, arch, version):
    fields = sh(["dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends"])
    info = dict(line.split(": ", 1) for line in fields.strip().splitlines())
    check(info["Package"] == "edgelambda", "Package %s" % info["Package"])
    check(info["Version"] == version, "Version %s, project says %s" % (info["Version"], version))
    check(info["Architecture"] == arch, "Architecture %s, expected %s" % (info["Architecture"], arch))
    check(os.path.basename(deb) == "edgelambda_%s_%s.deb" % (version, arch), "file name %s" % deb)
    depends = [d.strip().split(" ")[0] for d in info["Depends"].split(",")]

    tmp = tempfile.mkdtemp(prefix="el-deb-%s-" % arch)
    try:
        root, ctl = os.path.join(tmp, "root"), os.path.join(tmp, "DEBIAN")
        sh(["dpkg-deb", "-x", deb, root])
        sh(["dpkg-deb", "-e", deb, ctl])
        for f in ("usr/bin/edgelambdad", "usr/bin/edgelambda", "lib/systemd/system/edgelambdad.service",
                  "etc/edgelambda/edgelambda.conf", "usr/share/doc/edgelambda/README.md",
                  "usr/share/doc/edgelambda/changelog.gz", "usr/share/bash-completion/completions/edgelambda",
                  "usr/share/doc/edgelambda/mosquitto-live-page.conf"
                  ) + MAN_PAGES + WEB_FILES:
            check(os.path.isfile(os.path.join(root, f)), "%s: no /%s" % (deb, f))
        for page in MAN_PAGES:
            with open(os.path.join(root, page), "rb") as f:
                head = f.read(10)
            # gzip header: no flags (no file name) and MTIME 0, as gzip -n writes it.
            check(head[:3] == b"\x1f\x8b\x08" and head[3] == 0 and head[4:8] == b"\0\0\0\0"
                  and head[8] == 2,
                  "%s: /%s is not gzip -n output: %r" % (deb, page, head))
        check(os.path.isdir(os.path.join(root, "var/lib/edgelambda")), "%s: no state directory" % deb)
        with open(os.path.join(root, "etc/edgelambda/edgelambda.conf"), "rb") as a, \
                open(os.path.join(harness.SOURCE, "edgelambda.conf.example"), "rb") as b:
            check(a.read() == b.read(), "/etc/edgelambda/edgelambda.conf is not edgelambda.conf.example")
        check_copyright(os.path.join(root, "usr/share/doc/edgelambda/copyright"), deb)
        with open(os.path.join(ctl, "conffiles")) as f:
            check(f.read().split() == ["/etc/edgelambda/edgelambda.conf"], "conffiles wrong")
        for script in ("postinst", "prerm", "postrm"):
            p = os.path.join(ctl, script)
            check(os.access(p, os.X_OK), "%s not executable" % script)
            sh(["sh", "-n", p])

        needed = []
        sizes = {}
        for b in ("edgelambdad", "edgelambda"):
            p = os.path.join(root, "usr/bin", b)
            needed += check_binary(p, arch)
            sizes[b] = os.path.getsize(p)
        sonames = soname_map()
        for so in sorted(set(needed)):
            check(so in sonames, "%s needs %s, which the package table does not know" % (arch, so))
            check(sonames[so] in depends, "%s: Depends lacks %s (for %s): %s" % (arch, sonames[so], so, depends))
        check("adduser" in depends, "Depends lacks adduser (postinst)")

        # The packaged, stripped binary runs with Debian's libraries of its
        # architecture and accepts the packaged default configuration.
        out = run_binary(root, arch, ["--version"])
        check(out.strip() == "edgelambdad %s" % version, "--version says %r" % out)
        run_binary(root, arch, ["--check-config", "-c", os.path.join(root, "etc/edgelambda/edgelambda.conf")])
        with gzip.open(os.path.join(root, "usr/share/man/man5/edgelambda.conf.5.gz"), "rt") as f:
            check(f.read() == run_binary(root, arch, ["--help-config=man"]),
                  "%s: edgelambda.conf.5 is not what its edgelambdad --help-config=man prints" % deb)
        check_lintian(deb)
        return sizes, root if arch == "amd64" else None, tmp
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_lintian(deb):
    """No lintian error; the warnings and their reasons are in docs/DEPLOY.md."""
    if not shutil.which("lintian"):
        raise AssertionError("lintian missing (EL_TEST_PACKAGES in tools/lib/common.sh installs it)")
    r = subprocess.run(["lintian", "--tag-display-limit", "0", deb], capture_output=True,
                       text=True, timeout=600)
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    errors = [t for t in tags if t.startswith("E: ")]
    check(r.returncode in (0, 1) and "internal error" not in r.stderr.lower(),
          "lintian failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    check(not errors, "lintian errors on %s:\n%s" % (os.path.basename(deb), "\n".join(errors)))
    log("lintian %s: %s" % (os.path.basename(deb), "; ".join(tags) or "clean"))


def check_copyright(path, deb):
    """/usr/share/doc/edgelambda/copyright: DEP-5, Apache-2.0, the LICENSE's holder."""
    check(os.path.isfile(path), "%s: no /usr/share/doc/edgelambda/copyright" % deb)
    check(oct(os.stat(path).st_mode & 0o777) == oct(0o644), "%s: copyright is not 0644" % deb)
    with open(path) as f:
        text = f.read()
    with open(os.path.join(harness.SOURCE, "LICENSE")) as f:
        license_text = f.read()
    check("Apache License" in license_text and "Version 2.0, January 2004" in license_text,
          "LICENSE is not the Apache License 2.0")
    holder = re.search(r"^\s*Copyright (\d{4} .+)$", license_text, re.M).group(1).strip()
    check(text.startswith("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"),
          "%s: copyright is not in Debian's machine-readable format:\n%s" % (deb, text[:300]))
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    files = [p for p in paragraphs if p.startswith("Files: *\n")]
    check(len(files) == 1, "%s: copyright has no 'Files: *' paragraph:\n%s" % (deb, text))
    check(re.search(r"^License: Apache-2\.0$", files[0], re.M),
          "%s: copyright does not license the files under Apache-2.0:\n%s" % (deb, text))
    check(re.search(r"^Copyright: %s$" % re.escape(holder), files[0], re.M),
          "%s: copyright lacks 'Copyright: %s' (LICENSE):\n%s" % (deb, holder, text))
    check(any(p.startswith("License: Apache-2.0\n") for p in paragraphs),
          "%s: copyright has no stand-alone Apache-2.0 license paragraph" % deb)
    check("/usr/share/common-licenses/Apache-2.0" in text, "%s: copyright does not point at the license text" % deb)


def soname_map():
    """CPACK_EL_SONAME_MAP from packaging/CPackConfig.cmake: soname -> package."""
    with open(os.path.join(harness.SOURCE, "packaging", "CPackConfig.cmake")) as f:
        text = f.read()
    return {m.group(1): m.group(2) for m in re.finditer(r'"([^"=]+)=([^" ]+)[^"]*"', text)}


def check_unit(root):
    unit = os.path.join(root, "lib/systemd/system/edgelambdad.service")
    with open(unit) as f:
        text = f.read()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "StateDirectory=edgelambda", "PrivateTmp=yes",
                 "RestrictAddressFamilies=", "SystemCallFilter=", "User=edgelambda"):
        check(re.search(r"^%s" % re.escape(line), text, re.M), "unit lacks %s" % line)
    if not shutil.which("systemd-analyze"):
        raise AssertionError("systemd-analyze missing (package systemd; tools/lib/common.sh installs it)")
    # verify: the unit file as installed, ExecStart pointing at the unpacked binary.
    tmp = tempfile.mkdtemp(prefix="el-unit-")
    try:
        copy = os.path.join(tmp, "edgelambdad.service")
        with open(copy, "w") as f:
            f.write(text.replace("/usr/bin/edgelambdad", os.path.join(root, "usr/bin/edgelambdad")))
        r = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and not r.stderr.strip(), "systemd-analyze verify: %s" % r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    check(m, "no exposure level from systemd-analyze security:\n%s%s" % (r.stdout[-2000:], r.stderr))
    score = float(m.group(1))
    log("systemd-analyze security --offline=true edgelambdad.service: %.1f" % score)
    check(score <= 2.0, "exposure %.1f > 2.0:\n%s" % (score, r.stdout))


def test_debs_for_amd64_arm64_armhf():
    with open(os.path.join(harness.SOURCE, "CMakeLists.txt")) as f:
        version = VERSION_RE.search(f.read()).group(1)
    tmps = []
    try:
        table = []
        amd64_root = None
        for arch in ("amd64", "arm64", "armhf"):
            deb = make_deb(arch)
            sizes, root, tmp = check_deb(deb, arch, version)
            tmps.append(tmp)
            amd64_root = amd64_root or root
            table.append("  %-6s edgelambdad %8d B   edgelambda %8d B   (%s, %d B)"
                         % (arch, sizes["edgelambdad"], sizes["edgelambda"], os.path.basename(deb),
                            os.path.getsize(deb)))
            if arch == "arm64":
                check(sizes["edgelambdad"] <= MAX_DAEMON_BYTES_AARCH64,
                      "edgelambdad is %d bytes stripped on aarch64 (> 1 MiB)" % sizes["edgelambdad"])
        log("stripped binary sizes:\n" + "\n".join(table))
        check_unit(amd64_root)
    finally:
        for t in tmps:
            shutil.rmtree(t, ignore_errors=True)


def test_sd_notify_ready_watchdog_stopping():
    """What systemd would see: a datagram socket as NOTIFY_SOCKET and
    WATCHDOG_USEC as set by WatchdogSec=, around a real daemon and broker."""
    td = TempDir("notify")
    sock_path = os.path.join(td.path, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    msgs = []

    def drain():
        while True:
            try:
                msgs.append((time.monotonic(), sock.recv(4096).decode()))
            except socket.timeout:
                return

    def seen(word):
        drain()
        return [t for t, m in msgs if word in m.split("\n")]

    b = Broker(td.path).start()
    d = Daemon(td.path, b, client_id="el-notify")
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    os.environ.update(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="1000000")  # WatchdogSec=1s
    os.environ.pop("WATCHDOG_PID", None)
    try:
        d.start()
        harness.wait_until(lambda: seen("READY=1"), 20, "READY=1")
        ready = [m for _, m in msgs if "READY=1" in m.split("\n")][0]
        check(re.search(r"^STATUS=.+", ready, re.M), "READY=1 without a STATUS= line: %r" % ready)
        harness.wait_until(lambda: len(seen("WATCHDOG=1")) >= 4, 10, "four WATCHDOG=1 pings")
        pings = seen("WATCHDOG=1")
        gaps = [b2 - a for a, b2 in zip(pings, pings[1:])]
        check(max(gaps) < 1.0 * harness.SLOW, "watchdog pings %s s apart: WatchdogSec=1s would kill it" % gaps)
        d.stop()
        drain()
        check(seen("STOPPING=1"), "no STOPPING=1 on SIGTERM: %s" % [m for _, m in msgs][-5:])
        log("notify: READY (%r), %d watchdog pings (max gap %.2f s), STOPPING" %
            (ready.replace("\n", " "), len(pings), max(gaps)))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        d.kill()
        b.stop()
        sock.close()
        td.cleanup()


if __name__ == "__main__":
    run([test_debs_for_amd64_arm64_armhf, test_sd_notify_ready_watchdog_stopping])
