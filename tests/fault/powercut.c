/*
 * powercut — an LD_PRELOAD library that lets a test "cut the power" of the
 * daemon: after a SIGKILL, the data directory can be put back to exactly
 * what a machine that lost power at that moment would find on flash.
 *
 * MODEL (strict POSIX, stricter than ext4):
 *   - a file's content and size are durable only as of its last fsync or
 *     fdatasync, or, for a range written through a shared mapping, its last
 *     msync(MS_SYNC) of that range (which also makes the size durable);
 *   - a directory entry (create, unlink, rename, mkdir) is durable only once
 *     that directory has been fsync'ed;
 *   - every write that was not made durable is lost (the strictest case;
 *     nothing is kept "by luck"). SQLite's "-shm" files are not data: they
 *     are dropped (SQLite rebuilds them from the WAL).
 *
 * DESIGN: with EL_POWERCUT_DIR=<data dir> and EL_POWERCUT_SHADOW=<dir> set,
 * the library interposes the libc calls SQLite and the daemon use on files
 * under the data dir. It keeps, in the shadow dir, a copy of the durable
 * state: f/<fid> is the durable content of each file identity ("fid"; inode
 * numbers are reused, fids are not), and "ns" lists the durable directory
 * entries ("d|f <TAB> fid <TAB> path relative to the data dir"), rewritten
 * by rename at each directory fsync. Writes only record dirty ranges; a sync
 * copies those ranges (read back from the file, or from the mapping) into
 * the shadow. tests/integration/powercut.py applies a cut: it rebuilds the
 * data dir from "ns" and f/ after the process is dead. At start-up the
 * library takes the data dir as it finds it as durable (a cut was applied,
 * or it is a fresh dir).
 *
 * Fault injection (optional): EL_IOFAULT="<call>:<what>:<every>" makes every
 * <every>-th call of fdatasync, fsync, msync, pwrite or write on a file under
 * the data dir fail with EIO or ENOSPC before doing anything, or (what =
 * SHORT, pwrite/write only) write only half of the bytes and return that,
 * e.g. "fdatasync:EIO:7"; EL_IOFAULT_FILE names a file whose existence
 * switches the faults on (so a test can turn them off again).
 *
 * THREADING: one mutex around the bookkeeping; the real I/O runs outside it
 * except for the shadow copy made at a sync. Test-only code: never linked
 * into the daemon.
 */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 4096
#define MAX_RANGES 64
#define MAX_MAPS 256
#define COPY_CHUNK 65536
#define ENSURE()                                                                                   \
    do {                                                                                           \
        if (!real_rmdir)                                                                           \
            load_all();                                                                            \
    } while (0)

struct range {
    int64_t off, end;
};

struct file {
    int64_t live_size;
    int nranges;
    struct range r[MAX_RANGES];
};

struct entry {  /* a name in the live or the durable namespace */
    char *path; /* relative to the data dir */
    int fid;    /* -1 for a directory */
};

struct map {
    char *base;
    size_t len;
    int64_t off;
    int fid;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool active;
static char data_dir[PATH_MAX];
static size_t data_dir_len;
static char shadow_dir[PATH_MAX];

static struct file *files; /* by fid */
static int nfiles, cap_files;
static struct entry *live, *durable;
static int nlive, cap_live, ndurable, cap_durable;
static int fd_fid[MAX_FDS];       /* fid + 1 (0: not ours); -1 - 1 = dir */
static char *fd_dirpath[MAX_FDS]; /* for directory fds: relative path */
static struct map maps[MAX_MAPS];

static char fault_call[32];
static int fault_errno, fault_every, fault_count;
static char fault_file[PATH_MAX];

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_posix_fallocate)(int, off_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_msync)(void *, size_t, int);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_rename)(const char *, const char *);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_rmdir)(const char *);

static void load_all(void);

static void die(const char *what)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "powercut: %s: %s\n", what, strerror(errno));
    if (n > 0)
        (void)!write(2, msg, (size_t)n);
    abort();
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- paths ---- */

/* Relative path under the data dir into rel (no leading '/'; "" is the data
 * dir itself), or false if path is not under it. */
static bool rel_of(int dirfd, const char *path, char *rel, size_t cap)
{
    char abs[PATH_MAX * 2];
    if (path[0] == '/') {
        snprintf(abs, sizeof abs, "%s", path);
    } else if (dirfd == AT_FDCWD) {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return false;
        snprintf(abs, sizeof abs, "%s/%s", cwd, path);
    } else if (dirfd >= 0 && dirfd < MAX_FDS && fd_dirpath[dirfd]) {
        snprintf(abs, sizeof abs, "%s/%s/%s", data_dir, fd_dirpath[dirfd], path);
    } else {
        return false;
    }
    /* collapse "//" and "/./" */
    char *w = abs;
    for (const char *r = abs; *r; r++) {
        if (*r == '/' && (r[1] == '/' || (r[1] == '.' && (r[2] == '/' || r[2] == '\0')))) {
            if (r[1] == '.')
                r++;
            continue;
        }
        *w++ = *r;
    }
    *w = '\0';
    if (w > abs + 1 && w[-1] == '/')
        w[-1] = '\0';
    if (strncmp(abs, data_dir, data_dir_len) != 0)
        return false;
    const char *tail = abs + data_dir_len;
    if (*tail != '\0' && *tail != '/')
        return false;
    if (*tail == '/')
        tail++;
    snprintf(rel, cap, "%s", tail);
    return true;
}

static bool excluded(const char *rel)
{
    size_t n = strlen(rel);
    return n >= 4 && strcmp(rel + n - 4, "-shm") == 0;
}

static void parent_of(const char *rel, char *out, size_t cap)
{
    const char *slash = strrchr(rel, '/');
    snprintf(out, cap, "%.*s", slash ? (int)(slash - rel) : 0, rel);
}

/* ---- namespaces ---- */

static int ns_find(struct entry *ns, int n, const char *path)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ns[i].path, path) == 0)
            return i;
    return -1;
}

static void ns_set(struct entry **ns, int *n, int *cap, const char *path, int fid)
{
    int i = ns_find(*ns, *n, path);
    if (i >= 0) {
        (*ns)[i].fid = fid;
        return;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *ns = xrealloc(*ns, (size_t)*cap * sizeof **ns);
    }
    (*ns)[*n].path = strdup(path);
    if (!(*ns)[*n].path)
        die("out of memory");
    (*ns)[*n].fid = fid;
    (*n)++;
}

static void ns_del(struct entry *ns, int *n, const char *path)
{
    int i = ns_find(ns, *n, path);
    if (i < 0)
        return;
    free(ns[i].path);
    ns[i] = ns[--(*n)];
}

static void ns_write(void)
{
    char tmp[PATH_MAX + 16], dst[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s/ns.tmp", shadow_dir);
    snprintf(dst, sizeof dst, "%s/ns", shadow_dir);
    FILE *f = fopen(tmp, "w");
    if (!f)
        die("ns.tmp");
    for (int i = 0; i < ndurable; i++)
        fprintf(f, "%c\t%d\t%s\n", durable[i].fid < 0 ? 'd' : 'f', durable[i].fid, durable[i].path);
    if (fclose(f) != 0 || real_rename(tmp, dst) != 0)
        die("ns");
}

/* fsync of directory rel: its live entries become its durable entries. */
static void dir_synced(const char *rel)
{
    char parent[PATH_MAX];
    for (int i = 0; i < ndurable;) {
        parent_of(durable[i].path, parent, sizeof parent);
        if (strcmp(parent, rel) == 0 && durable[i].path[0] != '\0') {
            free(durable[i].path);
            durable[i] = durable[--ndurable];
        } else {
            i++;
        }
    }
    for (int i = 0; i < nlive; i++) {
        parent_of(live[i].path, parent, sizeof parent);
        if (strcmp(parent, rel) == 0 && live[i].path[0] != '\0')
            ns_set(&durable, &ndurable, &cap_durable, live[i].path, live[i].fid);
    }
    ns_write();
}

/* ---- files and their shadows ---- */

static int new_fid(int64_t size)
{
    if (nfiles == cap_files) {
        cap_files = cap_files ? cap_files * 2 : 64;
        files = xrealloc(files, (size_t)cap_files * sizeof *files);
    }
    memset(&files[nfiles], 0, sizeof files[nfiles]);
    files[nfiles].live_size = size;
    return nfiles++;
}

static int shadow_open(int fid)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/f/%d", shadow_dir, fid);
    int fd = real_open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        die(p);
    return fd;
}

static void dirty(int fid, int64_t off, int64_t end)
{
    struct file *f = &files[fid];
    if (end > f->live_size)
        f->live_size = end;
    for (int i = 0; i < f->nranges; i++) {
        if (off <= f->r[i].end && end >= f->r[i].off) {
            f->r[i].off = off < f->r[i].off ? off : f->r[i].off;
            f->r[i].end = end > f->r[i].end ? end : f->r[i].end;
            return;
        }
    }
    if (f->nranges == MAX_RANGES) { /* merge everything into one range */
        for (int i = 1; i < f->nranges; i++) {
            f->r[0].off = f->r[i].off < f->r[0].off ? f->r[i].off : f->r[0].off;
            f->r[0].end = f->r[i].end > f->r[0].end ? f->r[i].end : f->r[0].end;
        }
        f->nranges = 1;
        dirty(fid, off, end);
        return;
    }
    f->r[f->nranges++] = (struct range){off, end};
}

static void copy_from_fd(int src, int dst, int64_t off, int64_t end)
{
    static char buf[COPY_CHUNK];
    while (off < end) {
        size_t want = (size_t)(end - off < COPY_CHUNK ? end - off : COPY_CHUNK);
        ssize_t n = pread(src, buf, want, off);
        if (n < 0)
            die("pread");
        if (n == 0)
            break;
        if (real_pwrite(dst, buf, (size_t)n, off) != n)
            die("shadow write");
        off += n;
    }
}

/* The file behind fd (or only its mapping when fd < 0) was synced. */
static void file_synced(int fid, int fd)
{
    struct file *f = &files[fid];
    int sfd = shadow_open(fid);
    if (real_ftruncate(sfd, f->live_size) != 0)
        die("shadow truncate");
    for (int i = 0; i < f->nranges && fd >= 0; i++) {
        int64_t end = f->r[i].end < f->live_size ? f->r[i].end : f->live_size;
        copy_from_fd(fd, sfd, f->r[i].off, end);
    }
    if (fd >= 0)
        f->nranges = 0;
    for (int m = 0; m < MAX_MAPS; m++) { /* pages written through a mapping */
        if (maps[m].base && maps[m].fid == fid &&
            real_pwrite(sfd, maps[m].base, maps[m].len, maps[m].off) != (ssize_t)maps[m].len)
            die("shadow write (map)");
    }
    real_close(sfd);
}

/* ---- set-up ---- */

static void copy_file(const char *src_path, int fid)
{
    int src = real_open(src_path, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        die(src_path);
    struct stat sb;
    if (fstat(src, &sb) != 0)
        die("fstat");
    int dst = shadow_open(fid);
    if (real_ftruncate(dst, 0) != 0)
        die("shadow truncate");
    copy_from_fd(src, dst, 0, sb.st_size);
    real_close(dst);
    real_close(src);
}

static void walk(const char *rel)
{
    char abs[PATH_MAX * 2];
    snprintf(abs, sizeof abs, "%s%s%s", data_dir, rel[0] ? "/" : "", rel);
    DIR *d = opendir(abs);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[PATH_MAX], child_abs[PATH_MAX * 3];
        snprintf(child, sizeof child, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (excluded(child))
            continue;
        snprintf(child_abs, sizeof child_abs, "%s/%s", data_dir, child);
        struct stat sb;
        if (lstat(child_abs, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            ns_set(&live, &nlive, &cap_live, child, -1);
            walk(child);
        } else if (S_ISREG(sb.st_mode)) {
            int fid = new_fid(sb.st_size);
            copy_file(child_abs, fid);
            ns_set(&live, &nlive, &cap_live, child, fid);
        }
    }
    closedir(d);
}

#define LOAD(name) (*(void **)&real_##name = dlsym(RTLD_NEXT, #name))

/* Another library's constructor may do I/O before ours runs: every
 * interposed call first makes sure the real functions are known. */
static void load_all(void)
{
    LOAD(open), LOAD(openat), LOAD(close), LOAD(write), LOAD(pwrite), LOAD(writev);
    LOAD(ftruncate), LOAD(fallocate), LOAD(posix_fallocate), LOAD(fsync), LOAD(fdatasync);
    LOAD(msync), LOAD(mmap), LOAD(munmap), LOAD(unlink), LOAD(unlinkat), LOAD(rename);
    LOAD(mkdir), LOAD(rmdir);
}

__attribute__((constructor)) static void powercut_init(void)
{
    load_all();
    const char *dd = getenv("EL_POWERCUT_DIR"), *sd = getenv("EL_POWERCUT_SHADOW");
    const char *fault = getenv("EL_IOFAULT"), *ff = getenv("EL_IOFAULT_FILE");
    if (!dd || !sd)
        return;
    if (!realpath(dd, data_dir))
        die(dd);
    data_dir_len = strlen(data_dir);
    snprintf(shadow_dir, sizeof shadow_dir, "%s", sd);
    char f_dir[PATH_MAX + 8];
    snprintf(f_dir, sizeof f_dir, "%s/f", shadow_dir);
    if (real_mkdir(shadow_dir, 0700) != 0 && errno != EEXIST)
        die(shadow_dir);
    if (real_mkdir(f_dir, 0700) != 0 && errno != EEXIST)
        die(f_dir);
    walk("");
    for (int i = 0; i < nlive; i++) /* what is there now is durable */
        ns_set(&durable, &ndurable, &cap_durable, live[i].path, live[i].fid);
    ns_write();
    if (fault && sscanf(fault, "%31[^:]:%*[^:]:%d", fault_call, &fault_every) == 2 &&
        fault_every > 0) {
        fault_errno = strstr(fault, ":ENOSPC:") ? ENOSPC : strstr(fault, ":SHORT:") ? 0 : EIO;
        if (ff)
            snprintf(fault_file, sizeof fault_file, "%s", ff);
    }
    active = true;
}

/* ---- fault injection ---- */

static bool inject(const char *call)
{
    if (!fault_every || strcmp(call, fault_call) != 0)
        return false;
    if (fault_file[0] && access(fault_file, F_OK) != 0)
        return false;
    if (++fault_count % fault_every != 0)
        return false;
    errno = fault_errno;
    return true;
}

/* A write that a SHORT fault cuts to half (at least one byte). */
static size_t short_len(const char *call, int fid, size_t n)
{
    return fid >= 0 && n > 1 && fault_errno == 0 && inject(call) ? n / 2 : n;
}

/* ---- interposed calls ---- */

static int tracked_fid(int fd)
{
    return fd >= 0 && fd < MAX_FDS ? fd_fid[fd] - 1 : -1;
}

static void opened(int dirfd, const char *path, int flags, int fd)
{
    char rel[PATH_MAX];
    if (!active || fd < 0 || fd >= MAX_FDS || !rel_of(dirfd, path, rel, sizeof rel) ||
        excluded(rel))
        return;
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return;
    pthread_mutex_lock(&mu);
    free(fd_dirpath[fd]);
    fd_dirpath[fd] = NULL;
    fd_fid[fd] = 0;
    if (S_ISDIR(sb.st_mode)) {
        fd_dirpath[fd] = strdup(rel);
    } else if (S_ISREG(sb.st_mode)) {
        int i = ns_find(live, nlive, rel);
        int fid = i >= 0 ? live[i].fid : new_fid(sb.st_size);
        if (i < 0)
            ns_set(&live, &nlive, &cap_live, rel, fid);
        if (flags & O_TRUNC) {
            files[fid].live_size = 0;
            files[fid].nranges = 0;
        }
        fd_fid[fd] = fid + 1;
    }
    pthread_mutex_unlock(&mu);
}

static int mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = real_open(path, flags, mode);
    opened(AT_FDCWD, path, flags, fd);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = real_open(path, flags, mode);
    opened(AT_FDCWD, path, flags, fd);
    return fd;
}

int __open_2(const char *path, int flags);
int __open_2(const char *path, int flags)
{
    return open(path, flags);
}

int __open64_2(const char *path, int flags);
int __open64_2(const char *path, int flags)
{
    return open(path, flags);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = real_openat(dirfd, path, flags, mode);
    opened(dirfd, path, flags, fd);
    return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = real_openat(dirfd, path, flags, mode);
    opened(dirfd, path, flags, fd);
    return fd;
}

int close(int fd)
{
    ENSURE();
    if (active && fd >= 0 && fd < MAX_FDS) {
        pthread_mutex_lock(&mu);
        fd_fid[fd] = 0;
        free(fd_dirpath[fd]);
        fd_dirpath[fd] = NULL;
        pthread_mutex_unlock(&mu);
    }
    return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    ENSURE();
    int fid = active ? tracked_fid(fd) : -1;
    if (fid >= 0 && fault_errno != 0 && inject("write"))
        return -1;
    ssize_t r = real_write(fd, buf, short_len("write", fid, n));
    if (fid >= 0 && r > 0) {
        off_t end = lseek(fd, 0, SEEK_CUR);
        pthread_mutex_lock(&mu);
        dirty(fid, end - r, end);
        pthread_mutex_unlock(&mu);
    }
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    ENSURE();
    int fid = active ? tracked_fid(fd) : -1;
    ssize_t r = real_writev(fd, iov, cnt);
    if (fid >= 0 && r > 0) {
        off_t end = lseek(fd, 0, SEEK_CUR);
        pthread_mutex_lock(&mu);
        dirty(fid, end - r, end);
        pthread_mutex_unlock(&mu);
    }
    return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ENSURE();
    int fid = active ? tracked_fid(fd) : -1;
    if (fid >= 0 && fault_errno != 0 && inject("pwrite"))
        return -1;
    ssize_t r = real_pwrite(fd, buf, short_len("pwrite", fid, n), off);
    if (fid >= 0 && r > 0) {
        pthread_mutex_lock(&mu);
        dirty(fid, off, off + r);
        pthread_mutex_unlock(&mu);
    }
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

int ftruncate(int fd, off_t len)
{
    ENSURE();
    int r = real_ftruncate(fd, len);
    int fid = active ? tracked_fid(fd) : -1;
    if (fid >= 0 && r == 0) {
        pthread_mutex_lock(&mu);
        struct file *f = &files[fid];
        f->live_size = len;
        for (int i = 0; i < f->nranges; i++)
            if (f->r[i].end > len)
                f->r[i].end = len > f->r[i].off ? len : f->r[i].off;
        pthread_mutex_unlock(&mu);
    }
    return r;
}

int ftruncate64(int fd, off_t len)
{
    return ftruncate(fd, len);
}

static void grown(int fd, int64_t end)
{
    int fid = active ? tracked_fid(fd) : -1;
    if (fid < 0)
        return;
    pthread_mutex_lock(&mu);
    if (end > files[fid].live_size)
        files[fid].live_size = end;
    pthread_mutex_unlock(&mu);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    ENSURE();
    int r = real_fallocate(fd, mode, off, len);
    if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE))
        grown(fd, off + len);
    return r;
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
    return fallocate(fd, mode, off, len);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
    ENSURE();
    int r = real_posix_fallocate(fd, off, len);
    if (r == 0)
        grown(fd, off + len);
    return r;
}

int posix_fallocate64(int fd, off_t off, off_t len)
{
    return posix_fallocate(fd, off, len);
}

static int synced(int fd, int r)
{
    if (!active || r != 0 || fd < 0 || fd >= MAX_FDS)
        return r;
    pthread_mutex_lock(&mu);
    if (fd_dirpath[fd])
        dir_synced(fd_dirpath[fd]);
    else if (fd_fid[fd] > 0)
        file_synced(fd_fid[fd] - 1, fd);
    pthread_mutex_unlock(&mu);
    return r;
}

int fsync(int fd)
{
    ENSURE();
    if (active && (tracked_fid(fd) >= 0 || (fd >= 0 && fd < MAX_FDS && fd_dirpath[fd])) &&
        inject("fsync"))
        return -1;
    return synced(fd, real_fsync(fd));
}

int fdatasync(int fd)
{
    ENSURE();
    if (active && tracked_fid(fd) >= 0 && inject("fdatasync"))
        return -1;
    return synced(fd, real_fdatasync(fd));
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    ENSURE();
    void *p = real_mmap(addr, len, prot, flags, fd, off);
    int fid = active ? tracked_fid(fd) : -1;
    if (p != MAP_FAILED && fid >= 0 && (flags & MAP_SHARED) && (prot & PROT_WRITE)) {
        pthread_mutex_lock(&mu);
        for (int m = 0; m < MAX_MAPS; m++) {
            if (!maps[m].base) {
                maps[m] = (struct map){p, len, off, fid};
                break;
            }
        }
        pthread_mutex_unlock(&mu);
    }
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len)
{
    ENSURE();
    if (active) {
        pthread_mutex_lock(&mu);
        for (int m = 0; m < MAX_MAPS; m++)
            if (maps[m].base == addr)
                maps[m].base = NULL;
        pthread_mutex_unlock(&mu);
    }
    return real_munmap(addr, len);
}

int msync(void *addr, size_t len, int flags)
{
    ENSURE();
    if (active && (flags & MS_SYNC) && inject("msync"))
        return -1;
    int r = real_msync(addr, len, flags);
    if (!active || r != 0 || !(flags & MS_SYNC))
        return r;
    pthread_mutex_lock(&mu);
    for (int m = 0; m < MAX_MAPS; m++) {
        char *b = maps[m].base;
        if (b && (char *)addr >= b && (char *)addr + len <= b + maps[m].len) {
            int sfd = shadow_open(maps[m].fid);
            int64_t off = maps[m].off + ((char *)addr - b);
            struct stat sb;
            if (fstat(sfd, &sb) != 0)
                die("fstat shadow");
            if (sb.st_size < files[maps[m].fid].live_size &&
                real_ftruncate(sfd, files[maps[m].fid].live_size) != 0)
                die("shadow truncate");
            if (real_pwrite(sfd, addr, len, off) != (ssize_t)len)
                die("shadow write (msync)");
            real_close(sfd);
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return r;
}

static void removed(int dirfd, const char *path)
{
    char rel[PATH_MAX];
    if (!active || !rel_of(dirfd, path, rel, sizeof rel))
        return;
    pthread_mutex_lock(&mu);
    ns_del(live, &nlive, rel);
    pthread_mutex_unlock(&mu);
}

int unlink(const char *path)
{
    ENSURE();
    int r = real_unlink(path);
    if (r == 0)
        removed(AT_FDCWD, path);
    return r;
}

int unlinkat(int dirfd, const char *path, int flags)
{
    ENSURE();
    int r = real_unlinkat(dirfd, path, flags);
    if (r == 0)
        removed(dirfd, path);
    return r;
}

int rmdir(const char *path)
{
    ENSURE();
    int r = real_rmdir(path);
    if (r == 0)
        removed(AT_FDCWD, path);
    return r;
}

int rename(const char *from, const char *to)
{
    ENSURE();
    int r = real_rename(from, to);
    char a[PATH_MAX], b[PATH_MAX];
    if (r != 0 || !active || !rel_of(AT_FDCWD, from, a, sizeof a) ||
        !rel_of(AT_FDCWD, to, b, sizeof b))
        return r;
    pthread_mutex_lock(&mu);
    int i = ns_find(live, nlive, a);
    if (i >= 0) {
        int fid = live[i].fid;
        ns_del(live, &nlive, a);
        ns_set(&live, &nlive, &cap_live, b, fid);
    }
    pthread_mutex_unlock(&mu);
    return r;
}

int mkdir(const char *path, mode_t mode)
{
    ENSURE();
    int r = real_mkdir(path, mode);
    char rel[PATH_MAX];
    if (r == 0 && active && rel_of(AT_FDCWD, path, rel, sizeof rel)) {
        pthread_mutex_lock(&mu);
        ns_set(&live, &nlive, &cap_live, rel, -1);
        pthread_mutex_unlock(&mu);
    }
    return r;
}
