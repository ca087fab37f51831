"""Power-cut simulation for the daemon (issue 7): drives tests/fault/powercut.c.

The daemon runs with libel_powercut.so preloaded; the library keeps, in a
shadow dir, exactly what a machine would find on flash after losing power
(only what fsync/fdatasync/msync made durable, only the directory entries a
directory fsync made durable; see the C file's header). A cut is: SIGKILL,
then rebuild the data dir from the shadow. Only for native, uninstrumented
builds: a sanitizer runtime must be the first preloaded library.
"""
import os
import shutil
import sqlite3
import struct
import zlib

from harness import BUILD

LIB = os.path.join(BUILD, "tests", "libel_powercut.so")


def available():
    return os.path.exists(LIB) and not os.environ.get("EL_EMULATOR")


class PowerCut:
    def __init__(self, daemon, workdir):
        self.d = daemon
        self.shadow = os.path.join(workdir, "shadow")
        os.makedirs(daemon.datadir, exist_ok=True)
        daemon.env.update({"LD_PRELOAD": LIB, "EL_POWERCUT_DIR": daemon.datadir,
                           "EL_POWERCUT_SHADOW": self.shadow})
        self.cuts = 0

    def cut(self):
        """Kills the daemon and leaves its data dir as a power cut would."""
        self.d.kill()
        self.cuts += 1
        ns = os.path.join(self.shadow, "ns")
        if not os.path.exists(ns):
            # The library had not finished starting: the daemon had not
            # touched its data dir yet, so what is there is durable.
            shutil.rmtree(self.shadow, ignore_errors=True)
            return
        entries = []
        with open(ns) as f:
            for line in f:
                kind, fid, path = line.rstrip("\n").split("\t", 2)
                entries.append((path.count("/"), kind, int(fid), path))
        shutil.rmtree(self.d.datadir)
        os.makedirs(self.d.datadir)
        made = {""}
        for _, kind, fid, path in sorted(entries):
            if os.path.dirname(path) not in made:
                continue  # its directory's own entry never became durable
            dst = os.path.join(self.d.datadir, path)
            if kind == "d":
                os.mkdir(dst)
                made.add(path)
            else:
                src = os.path.join(self.shadow, "f", str(fid))
                if os.path.exists(src):
                    shutil.copyfile(src, dst)
                else:
                    open(dst, "wb").close()  # created, never synced: empty
        shutil.rmtree(self.shadow)


def journal_records(datadir):
    """[(first_seq, last_seq, recv_ms)] of every intact record in the journal
    segments as they are now (the page cache's view; storage/journal.h)."""
    out = []
    jdir = os.path.join(datadir, "journal")
    if not os.path.isdir(jdir):
        return out
    for name in sorted(os.listdir(jdir)):
        if not name.endswith(".jnl"):
            continue
        with open(os.path.join(jdir, name), "rb") as f:
            data = f.read()
        off = 0
        while off + 48 <= len(data):
            length, crc = struct.unpack_from("<II", data, off)
            if length < 48 or off + length > len(data):
                break
            if zlib.crc32(data[off + 8:off + length]) != crc:
                break
            seq, recv_ms = struct.unpack_from("<Qq", data, off + 8)
            n_events = struct.unpack_from("<H", data, off + 42)[0]
            out.append((seq, seq + max(n_events, 1) - 1, recv_ms))
            off += length
    return out


def committed_seq(datadir):
    """The highest sequence number in the master log as it is on disk."""
    path = os.path.join(datadir, "master.db")
    if not os.path.exists(path):
        return 0
    con = sqlite3.connect(path)
    try:
        a = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        b = con.execute("SELECT coalesce(max(seq), 0) FROM dead_letters").fetchone()[0]
        return max(a, b)
    except sqlite3.Error:
        return 0
    finally:
        con.close()
