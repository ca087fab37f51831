"""tools/demo's screen: one frame from the daemon's status and one query answer.

python3 demo_view.py STATUS_JSON ANSWER_JSON TTY [STALE]

STATUS_JSON is `edgelambda status --json` (the retained <prefix>/status),
ANSWER_JSON is the answer to the demo's one merged range query
(`edgelambda query 'sensors/#' --match --from -1m --to now --step 10000w`,
one bucket per series). Either file may be empty or hold a document of an
older or newer daemon: every field is read with .get(), so a missing field
shows as "-" and new fields are ignored (or shown where they are known, such
as the "provisional" counts of answers over a board clock that is not
synchronised). TTY=1 redraws the terminal in place; otherwise each frame is
appended, followed by an empty line. STALE holds "s" when the status and
"q" when the answer did not come this time (the files then hold the previous
ones, if any).

Frame: the status line (state, uptime, ingest rate and counters, dead
letters, sequence, log size, series, clock state), a plain explanation when
the clock is not synchronised, then the busiest series (top 10 by events in
the last minute). tests/integration/test_demo.py reads this screen.
"""
import json
import sys

TOP = 10


def load(path):
    try:
        with open(path) as f:
            doc = json.loads(f.read() or "{}")
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "-"
    if v == int(v) and abs(v) < 1e15:
        return "%d" % v
    return "%.6g" % v


def count(v):
    """A count that may be a number, a bool or absent."""
    if isinstance(v, bool):
        return int(v)
    return v if isinstance(v, (int, float)) else 0


def provisional_of(doc):
    """The "provisional" count of a status or answer document, if it has one
    (top level, or inside its "clock" object); None when it has none."""
    for d in (doc, doc.get("clock") if isinstance(doc.get("clock"), dict) else {}):
        for k in ("provisional", "provisional_events"):
            if k in d:
                v = d[k]
                if isinstance(v, dict):  # e.g. {"events": N, ...}
                    v = v.get("events", v.get("count"))
                return count(v)
    return None


def clock_part(s):
    synced = s.get("clock_synced")
    clock = s.get("clock") if isinstance(s.get("clock"), dict) else {}
    if synced is None:
        return "clock -", None
    if synced:
        return "clock synchronised", None
    waiting = clock.get("unanchored_events")
    part = "clock NOT synchronised"
    extra = []
    if isinstance(waiting, (int, float)):
        extra.append("%s waiting for it" % num(waiting))
    prov = provisional_of(s)
    if prov:
        extra.append("%s provisional" % num(prov))
    if extra:
        part += " (%s)" % ", ".join(extra)
    note = ("The board's clock is not synchronised: readings without their own timestamp are "
            "shown provisionally at the board's clock; batch views and sync wait until the clock "
            "is synchronised (timedatectl / NTP) or until it is declared good with "
            "clock.synced = yes (--set clock.synced=yes).")
    return part, note


def status_lines(s, stale=False):
    i = s.get("ingest") if isinstance(s.get("ingest"), dict) else None
    if not i and stale:
        return ["no status from edgelambdad within 2 s; waiting for it ..."]
    if not i:
        if s.get("state") == "offline":
            return ["edgelambdad is offline (its last will); waiting for it ..."]
        return ["waiting for the status of edgelambdad ..."]
    log = s.get("log") or {}
    speed = s.get("speed") or {}
    rejected = i.get("rejected") or {}
    rej = ", ".join("%s %s" % (k, num(v)) for k, v in rejected.items() if v) or "none"
    clock, note = clock_part(s)
    rate = i.get("rate_per_s")
    rate = num(round(rate)) if isinstance(rate, (int, float)) else "-"
    mb = log.get("bytes")
    mb = "%.1f" % (mb / 1e6) if isinstance(mb, (int, float)) else "-"
    line = ("%s, up %ss | %s events/s | accepted %s | dead letters %s (rejected: %s) | "
            "seq %s | log %s MB | series %s | %s" % (
                s.get("state", "-"), num(s.get("uptime_s")), rate, num(i.get("accepted")),
                num(i.get("dead_letters")), rej, num(log.get("seq")), mb, num(speed.get("series")),
                clock))
    if stale:
        line += " | (no new status within 2 s: the last one)"
    return [line] + ([note] if note else [])


def table_lines(q, stale=False):
    if not q.get("ok"):
        if isinstance(q.get("error"), dict) and not stale:
            return ["query failed: %s" % q["error"].get("message")]
        if stale:
            return ["no query answer within 2 s; waiting for one ..."]
        return ["waiting for the first query answer ..."]
    rows = []
    for e in q.get("series") or []:
        buckets = e.get("buckets") or []
        if isinstance(e, dict) and buckets and isinstance(buckets[0], dict):
            # The bucket's own provisional count, else the series entry's.
            p = provisional_of(buckets[0])
            rows.append((str(e.get("series", "?")), buckets[0], p if p is not None else provisional_of(e)))
    rows.sort(key=lambda r: (-count(r[1].get("count")), r[0]))
    shown = rows[:TOP]
    prov = [p for _, _, p in shown]
    cols = ["series", "last", "events/min", "mean", "min", "max", "p95"]
    has_prov = any(p is not None for p in prov)
    if has_prov:
        cols.append("provisional")
    cells = [cols]
    for name, b, p in shown:
        c = [name] + [num(b.get(k)) for k in ("last", "count", "mean", "min", "max", "p95")]
        if has_prov:
            c.append(num(p) if p is not None else "-")
        cells.append(c)
    width = [max(len(c[k]) for c in cells) for k in range(len(cols))]
    out = ["busiest series, last minute (%d of %d; merged answer exact up to seq %s)%s:" % (
        len(shown), len(rows), num(q.get("seq")),
        " (no new answer within 2 s: the last one)" if stale else "")]
    for c in cells:
        out.append("  " + "  ".join(c[k].ljust(width[k]) if k == 0 else c[k].rjust(width[k])
                                    for k in range(len(cols))))
    if not shown:
        out.append("  (no events in the last minute yet)")
    prov_total = provisional_of(q)
    if prov_total:
        out.append("  %s readings of this answer are provisional: placed at the board's clock, which is "
                   "not synchronised" % num(prov_total))
    return out


def main(argv):
    status, answer, tty = load(argv[1]), load(argv[2]), argv[3] == "1"
    stale = argv[4] if len(argv) > 4 else ""
    text = "\n".join(status_lines(status, "s" in stale) + [""] + table_lines(answer, "q" in stale)) + "\n"
    sys.stdout.write("\033[H\033[2J" + text if tty else text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:  # Ctrl-C while drawing: tools/demo stops everything
        sys.exit(130)
