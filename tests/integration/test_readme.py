"""README.md, edgelambda.conf.example and LICENSE against the code, so they cannot drift.

Must show:
- Every row of every configuration key table in README.md (a Markdown table
  whose header starts with "key" and has a "default" column; keys written
  `[section] key` or `section.key`) names a key that `edgelambdad
  --help-config` prints, with the same default: the default cell's first
  `code span`, or the word "empty" for an empty default. Keys the README does
  not list are fine (the tables show the keys used most).
- Every key in README's ```ini blocks and in its `--set section.key=value`
  examples exists.
- Every key in edgelambda.conf.example exists, in its section, and the value
  shown is the default (the file says it shows the defaults).
- LICENSE is the Apache License 2.0 (the standard text, compared with
  Debian's /usr/share/common-licenses/Apache-2.0 where present) with the
  copyright line "Copyright 2026 The edgelambda authors", and README names it.
"""
import os
import re
import subprocess
import sys

import harness
from harness import check, log, run

README = os.path.join(harness.SOURCE, "README.md")
EXAMPLE = os.path.join(harness.SOURCE, "edgelambda.conf.example")
LICENSE = os.path.join(harness.SOURCE, "LICENSE")
KEY_LINE = re.compile(r"^# ([a-z0-9_]+) =(?: (.*))?$")
SECTION_LINE = re.compile(r"^\[([a-z0-9_]+)\]\s*$")
NAMED_SECTION_LINE = re.compile(r'^\[(decode|continuous)\s+"[^"]+"\]\s*$')
NAMED_HELP_LINE = re.compile(r'^# \[(decode|continuous) "<[a-z ]+>"\] sections')
NAMED_KEY_LINE = re.compile(r"^#   ([a-z0-9_]+) = ")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def parse_key_listing(text, live=None):
    """{(section, key): default} of --help-config output or the example file:
    blank-line separated blocks, each key's block ending in "# key = value".
    live: a set that gets the keys whose block says "# Live:"."""
    keys = {}
    section = None
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line.rstrip() for line in block.strip().splitlines()]
        for line in lines:
            m = SECTION_LINE.match(line)
            if m:
                section = m.group(1)
        if not lines or section is None:
            continue
        m = KEY_LINE.match(lines[-1])
        if m:
            check((section, m.group(1)) not in keys, "key %s.%s listed twice" % (section, m.group(1)))
            keys[(section, m.group(1))] = (m.group(2) or "").strip()
            if live is not None and any(line.startswith("# Live:") for line in lines):
                live.add((section, m.group(1)))
    return keys


def help_config(with_live=False):
    r = subprocess.run(harness.EMULATOR + [harness.DAEMON, "--help-config"], capture_output=True, text=True,
                       timeout=60 * harness.SLOW)
    check(r.returncode == 0, "edgelambdad --help-config exited %s: %s" % (r.returncode, r.stderr))
    live = set()
    keys = parse_key_listing(r.stdout, live)
    named = None
    for line in r.stdout.splitlines():  # [decode|continuous "<name>"] sections: a block of keys each
        m = NAMED_HELP_LINE.match(line)
        if m:
            named = m.group(1)
        m = NAMED_KEY_LINE.match(line)
        if m and named:
            keys[(named, m.group(1))] = None
    check(len(keys) >= 40 and ("mqtt", "uri") in keys and ("storage", "dir") in keys,
          "could not read --help-config (%d keys):\n%s" % (len(keys), r.stdout[:2000]))
    return (keys, live) if with_live else keys


def split_row(line):
    """Cells of a Markdown table row; '|' inside `code` or escaped does not split."""
    line = line.strip()
    if not line.startswith("|"):
        return None
    cells, cur, code, i = [], "", False, 1
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] == "|":
            cur += "|"
            i += 2
            continue
        if c == "`":
            code = not code
        if c == "|" and not code:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    if cur.strip():
        cells.append(cur.strip())
    return cells


def readme_key_rows(text):
    """[(line number, section, key, default, live)] of README's key tables
    (live: the "live" column's yes/no as a bool, None without that column)."""
    rows = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        header = split_row(lines[i])
        low = [c.lower() for c in header] if header else []
        if low and low[0] == "key" and "default" in low and i + 1 < len(lines) \
                and re.match(r"^\s*\|[\s:|-]+\|?\s*$", lines[i + 1]):
            dcol = low.index("default")
            lcol = low.index("live") if "live" in low else None
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = split_row(lines[i])
                where = "README.md:%d" % (i + 1)
                check(len(cells) > dcol, "%s: a key table row with too few cells: %r" % (where, lines[i]))
                m = re.match(r"^`(?:\[([a-z0-9_]+)\] ([a-z0-9_]+)|([a-z0-9_]+)\.([a-z0-9_]+))`$", cells[0])
                check(m, "%s: cannot read the key %r (write `[section] key`)" % (where, cells[0]))
                section, key = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                code = re.search(r"`([^`]*)`", cells[dcol])
                if code:
                    default = code.group(1)
                elif re.sub(r"[*_]", "", cells[dcol]).strip().lower().startswith("empty"):
                    default = ""
                else:
                    raise AssertionError("%s: the default of %s.%s is neither a `code span` nor 'empty': %r"
                                         % (where, section, key, cells[dcol]))
                live = None
                if lcol is not None:
                    check(len(cells) > lcol and cells[lcol] in ("yes", "no"),
                          "%s: the live cell of %s.%s is neither yes nor no" % (where, section, key))
                    live = cells[lcol] == "yes"
                rows.append((i + 1, section, key, default, live))
                i += 1
        i += 1
    return rows


def test_readme_key_tables_match_help_config():
    keys, live = help_config(with_live=True)
    rows = readme_key_rows(read(README))
    check(len(rows) >= 10, "found only %d rows in README's key tables" % len(rows))
    check(len(live) >= 10 and ("log", "level") in live and ("mqtt", "uri") not in live,
          "could not read the live keys of --help-config: %s" % sorted(live))
    wrong = []
    n_live = 0
    for line, section, key, default, is_live in rows:
        if (section, key) not in keys:
            wrong.append("README.md:%d: [%s] %s is no key of edgelambdad" % (line, section, key))
        elif keys[(section, key)] != default:
            wrong.append("README.md:%d: [%s] %s: README says default %r, edgelambdad --help-config says %r"
                         % (line, section, key, default, keys[(section, key)]))
        if is_live is not None:
            n_live += 1
            if is_live != ((section, key) in live):
                wrong.append("README.md:%d: [%s] %s: README says live %s, edgelambdad --help-config %s"
                             % (line, section, key, "yes" if is_live else "no",
                                "marks it live" if (section, key) in live else "does not"))
    check(not wrong, "\n".join(wrong))
    log("README: %d keys in its tables, each with edgelambdad's default (of %d keys); %d with a live "
        "column matching --help-config (%d live keys)" % (len(rows), len(keys), n_live, len(live)))


def test_readme_ini_blocks_and_set_examples_name_real_keys():
    keys = help_config()
    text = read(README)
    named = []
    for block in re.findall(r"```ini\n(.*?)```", text, re.S):
        section = None
        for line in block.splitlines():
            line = line.split(";")[0].strip()
            m = NAMED_SECTION_LINE.match(line)
            if m:  # keys from the help's decode or continuous block
                section = m.group(1)
                continue
            m = SECTION_LINE.match(line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"^([a-z0-9_]+)\s*=", line)
            if m:
                named.append((section, m.group(1), "ini block"))
    for section, key in re.findall(r"--set ([a-z0-9_]+)\.([a-z0-9_]+)=", text):
        named.append((section, key, "--set example"))
    check(named, "README has no ini blocks or --set examples any more: update this test")
    bad = ["%s: %s.%s" % (what, s, k) for s, k, what in named if (s, k) not in keys]
    check(not bad, "README names keys edgelambdad does not have:\n" + "\n".join(bad))
    log("README: %d keys in ini blocks and --set examples exist" % len(named))


def test_example_config_keys_exist_with_defaults():
    keys = help_config()
    example = parse_key_listing(read(EXAMPLE))
    check(len(example) >= 40, "read only %d keys from edgelambda.conf.example" % len(example))
    bad = []
    for (section, key), value in sorted(example.items()):
        if (section, key) not in keys:
            bad.append("[%s] %s is no key of edgelambdad" % (section, key))
        elif keys[(section, key)] != value:
            bad.append("[%s] %s = %r, but the default is %r" % (section, key, value, keys[(section, key)]))
    # Uncommented settings would not be defaults: the file shows every key commented out.
    for n, line in enumerate(read(EXAMPLE).splitlines(), 1):
        if re.match(r"^\s*[a-z0-9_]+\s*[=:]", line):
            bad.append("line %d sets a key: %r" % (n, line))
    check(not bad, "edgelambda.conf.example:\n" + "\n".join(bad))
    log("edgelambda.conf.example: %d keys, all edgelambdad's, at their defaults" % len(example))


def test_license():
    text = read(LICENSE)
    check(re.search(r"^\s+Apache License\n\s+Version 2\.0, January 2004\n", text, re.M) and
          "END OF TERMS AND CONDITIONS" in text, "LICENSE is not the Apache License 2.0")
    check(re.search(r"^   Copyright 2026 The edgelambda authors$", text, re.M), "LICENSE has no copyright line")
    standard = "/usr/share/common-licenses/Apache-2.0"
    if os.path.exists(standard):
        ours = [line for line in text.splitlines() if not line.strip().startswith("Copyright ")]
        theirs = [line for line in read(standard).splitlines() if not line.strip().startswith("Copyright ")]
        check(ours == theirs, "LICENSE differs from the standard text (%s) beyond its copyright line" % standard)
    readme = read(README)
    check(re.search(r"Apache License 2\.0", readme) and "(LICENSE)" in readme, "README does not name the license")


if __name__ == "__main__":
    if not os.access(harness.DAEMON, os.X_OK):
        print("skipped: no edgelambdad in %s" % harness.BUILD)
        sys.exit(77)
    run([test_readme_key_tables_match_help_config, test_readme_ini_blocks_and_set_examples_name_real_keys,
         test_example_config_keys_exist_with_defaults, test_license])
