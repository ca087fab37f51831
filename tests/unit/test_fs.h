/*
 * test_fs.h — the unit tests' scratch directories: one fresh directory per
 * test under $TMPDIR (or /tmp when unset or empty), removed with everything
 * in it by the teardown.
 *
 * Header-only (static inline) so that every test binary keeps linking only
 * its own layer's library (tests/CMakeLists.txt). Not for production code.
 */
#ifndef EL_TEST_FS_H
#define EL_TEST_FS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Creates $TMPDIR/el-<name>-test-XXXXXX (mkdtemp) and writes its path into
 * dir (len bytes, the caller's). Returns 0, or -1 when the path does not fit
 * or mkdtemp failed (errno set). */
static inline int test_mkdtemp(char *dir, size_t len, const char *name)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    int n = snprintf(dir, len, "%s/el-%s-test-XXXXXX", base, name);
    if (n < 0 || (size_t)n >= len)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

static inline int test_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it, not following links. Returns 0, or
 * nonzero when an entry could not be removed. */
static inline int test_rmtree(const char *dir)
{
    return nftw(dir, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
