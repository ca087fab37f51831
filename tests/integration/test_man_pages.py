"""Manual pages and bash completion cannot drift from the programs (issue #15).

Must show: every option `edgelambdad --help` lists appears in
docs/man/edgelambdad.8; every global option, command and command option of
`edgelambda --help` / `edgelambda COMMAND --help` appears in
docs/man/edgelambda.1; edgelambda.conf(5) is what `edgelambdad
--help-config=man` prints (the build's copy included) and documents every key
of --help-config with its default under its section; all three pages format
without a groff warning (`man --warnings`, as lintian runs it); and the bash
completion offers exactly the commands of --help, and for each command exactly
the options its --help lists, as bash would call it (COMP_WORDS/COMP_CWORD).
"""
import os
import re
import shutil
import subprocess

import harness
from harness import CLI, DAEMON, SOURCE, check, run

MAN_DIR = os.path.join(SOURCE, "docs", "man")
COMPLETION = os.path.join(SOURCE, "tools", "cli", "edgelambda-completion.bash")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def out(*args):
    r = subprocess.run(harness.EMULATOR + list(args), capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "%s: rc %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def help_option_groups(text):
    """Options of a --help text, a set per line (an option and its aliases):
    the option column of lines that start with '-' (up to the first run of
    two spaces: the description)."""
    groups = []
    for line in text.splitlines():
        if re.match(r"^\s+-", line):
            spec = re.split(r"\s{2,}", line.strip())[0]
            groups.append(set(OPTION.findall(spec)))
    return groups


def help_options(text):
    return set().union(*help_option_groups(text))


def check_offers(got, help_text, what):
    """The completion offers only options of help_text, and one of each line's
    aliases (--help for -h, --help)."""
    groups = help_option_groups(help_text)
    extra = sorted(set(got) - set().union(*groups))
    lacking = [sorted(g) for g in groups if not g & set(got)]
    check(not extra and not lacking, "%s: completion offers %s: unknown %s, lacks %s" % (what, got, extra, lacking))


def cli_commands():
    text = out(CLI, "--help")
    block = text.split("Commands:\n", 1)[1]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def roff_words(path):
    """The page's text as typed: minus signs and quotes plain, fonts dropped."""
    with open(path) as f:
        text = f.read()
    for a, b in ((r"\-", "-"), (r"\&", ""), (r"\(aq", "'"), (r"\e", "\\")):
        text = text.replace(a, b)
    return re.sub(r"\\f[BIRP]", "", text)


def roff_part(text, start):
    """From the line `start` (a regex) to the next .SH or .SS line."""
    m = re.search(r"^%s.*?(?=^\.S[HS] |\Z)" % start, text, re.M | re.S)
    check(m, "no %r in the page" % start)
    return m.group(0)


def check_formats(path):
    """No groff warnings, as lintian's manpage check runs man."""
    if not shutil.which("man"):
        raise AssertionError("man missing (package man-db; lintian in EL_TEST_PACKAGES pulls it in)")
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, MANROFFSEQ=""))
    check(r.returncode == 0 and not r.stderr.strip(), "%s: man --warnings: %s" % (path, r.stderr))


def test_daemon_page_lists_every_option():
    page = os.path.join(MAN_DIR, "edgelambdad.8")
    check_formats(page)
    text = roff_words(page)
    want = help_options(out(DAEMON, "--help"))
    check({"-c", "--config", "--set", "--check-config", "--help-config", "--version"} <= want,
          "--help parsing found only %s" % sorted(want))
    missing = sorted(want - set(OPTION.findall(roff_part(text, r"\.SH OPTIONS"))))
    check(not missing, "edgelambdad.8's OPTIONS lacks %s" % missing)
    check("--help-config[=man]" in text.replace(" ", ""), "edgelambdad.8 lacks --help-config=man")


def test_cli_page_lists_every_command_and_option():
    page = os.path.join(MAN_DIR, "edgelambda.1")
    check_formats(page)
    text = roff_words(page)
    words = set(OPTION.findall(roff_part(text, r"\.SH GLOBAL OPTIONS")))
    top = help_options(out(CLI, "--help"))
    check({"--uri", "--prefix", "--help", "--version"} <= top, "global options: %s" % sorted(top))
    check(not sorted(top - words), "edgelambda.1's GLOBAL OPTIONS lack %s" % sorted(top - words))
    # What every command takes is said once, at the head of COMMANDS.
    words |= set(OPTION.findall(roff_part(text, r"\.SH COMMANDS")))
    commands = cli_commands()
    check(len(commands) >= 9, "commands: %s" % commands)
    for cmd in commands:
        part = roff_part(text, r"\.SS %s\b" % re.escape(cmd))
        if cmd == "help":
            continue
        opts = help_options(out(CLI, cmd, "--help"))
        check(opts, "%s --help lists no options" % cmd)
        missing = sorted(opts - words - set(OPTION.findall(part)))
        check(not missing, "edgelambda.1's %s section lacks %s" % (cmd, missing))


def test_config_page_is_generated_from_the_table():
    page = out(DAEMON, "--help-config=man")
    built = os.path.join(harness.BUILD, "man", "edgelambda.conf.5")
    check(os.path.isfile(built), "the build made no %s" % built)
    with open(built) as f:
        check(f.read() == page, "%s differs from edgelambdad --help-config=man" % built)
    check_formats(built)
    check(page.startswith(".\\\" edgelambda.conf(5), generated"), "no generated-file header")
    check(re.search(r"^\.TH EDGELAMBDA\.CONF 5 ", page, re.M), "no .TH line")
    check(re.search(r"^edgelambda\.conf \\- ", page, re.M), "NAME is not 'edgelambda.conf \\- ...'")
    # Every key of the table, under its section, with its default.
    sections = re.split(r"^\.SS ", page, flags=re.M)[1:]
    doc = {s.split("\n", 1)[0]: s for s in sections}
    n = 0
    section = None
    for line in out(DAEMON, "--help-config").splitlines():
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            section = "[%s]" % m.group(1)
            check(section in doc, "edgelambda.conf.5 has no section %s" % section)
            continue
        m = re.match(r"^# (\w+) =(?: (.*))?$", line)
        if not m:
            continue
        key, default = m.group(1), m.group(2) or ""
        entry = re.search(r"^\.B %s\n(.*?)(?=^\.TP|\Z)" % re.escape(key), doc[section], re.M | re.S)
        check(entry, "[%s] %s missing from edgelambda.conf.5" % (section, key))
        shown = re.search(r"^Default: (.*)$", entry.group(1), re.M).group(1)
        want = "empty." if default == "" else "\\fB%s\\fR" % default.replace("\\", "\\e").replace("-", "\\-")
        check(shown == want, "%s %s: default %r, --help-config says %r" % (section, key, shown, default))
        n += 1
    check(n >= 50, "only %d keys in --help-config" % n)
    r = subprocess.run(harness.EMULATOR + [DAEMON, "--help-config=html"], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 1 and "--help-config" in r.stderr, "--help-config=html: %d %s" % (r.returncode, r.stderr))
    harness.log("edgelambda.conf.5: %d keys in %d sections" % (n, len(doc)))


def complete(*words):
    """What the completion offers for the command line `words` (the last is
    the word being completed), as bash calls it."""
    script = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _edgelambda; ' \
             'printf "%s\\n" "${COMPREPLY[@]}"'
    r = subprocess.run(["bash", "-c", script, "bash", COMPLETION, "edgelambda"] + list(words),
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and not r.stderr, "completion of %s: %s" % (words, r.stderr))
    return sorted(w for w in r.stdout.splitlines() if w)


def test_bash_completion_matches_help():
    commands = cli_commands()
    check(complete("") == sorted(commands), "commands: %s, --help: %s" % (complete(""), commands))
    check(complete("--uri", "tcp://h:1883", "rec") == ["recompute"], "command after --uri VALUE")
    check_offers(complete("-"), out(CLI, "--help"), "global options")
    for cmd in commands:
        if cmd == "help":
            check(complete("help", "") == sorted(commands), "help COMMAND")
            continue
        check_offers(complete(cmd, "-"), out(CLI, cmd, "--help"), cmd)
    check(complete("loadgen", "--style", "j") == ["json", "json-ts"], "--style values")
    check(complete("loadgen", "--qos", "") == ["0", "1", "2"], "--qos values")
    check(complete("query", "--from", "") == [], "a free-text value completes nothing")
    check(complete("query", "--match", "--f") == ["--from"], "query's --match is a flag")
    check(complete("last", "--match", "") == [], "last's --match takes a filter")
    check(complete("query", "sen") == [], "series names are not completed")


if __name__ == "__main__":
    run([test_daemon_page_lists_every_option, test_cli_page_lists_every_command_and_option,
         test_config_page_is_generated_from_the_table, test_bash_completion_matches_help])
