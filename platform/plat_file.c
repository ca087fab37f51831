/* plat_file — durable file-system helpers (see plat_file.h). */
#include "plat_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "plat_log.h"

el_status plat_file_mkdirs(const char *dir)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return EL_INVAL;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST) {
            log_error("cannot create directory %s: %s", path, strerror(errno));
            return EL_IO;
        }
        path[i] = saved;
    }
    return EL_OK;
}

el_status plat_file_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot open directory %s: %s", dir, strerror(errno));
        return EL_IO;
    }
    el_status st = EL_OK;
    if (fsync(fd) != 0) {
        log_error("fsync of directory %s failed: %s", dir, strerror(errno));
        st = EL_IO;
    }
    close(fd);
    return st;
}

/* Writes data into a new <path>.tmp (fchmod to mode when mode != 0) and,
 * with sync, fdatasyncs it; tmp gets the temp file's name. The temp
 * file is removed on failure (errno kept). */
static el_status write_tmp(const char *path, const void *data, size_t len, unsigned mode, bool sync,
                           char *tmp, size_t tmp_cap)
{
    if (snprintf(tmp, tmp_cap, "%s.tmp", path) >= (int)tmp_cap) {
        errno = ENAMETOOLONG;
        return EL_INVAL;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? (mode_t)mode : 0640);
    if (fd < 0)
        return EL_IO;
    const char *p = data;
    size_t left = len;
    bool ok = mode == 0 || fchmod(fd, (mode_t)mode) == 0;
    while (ok && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            ok = false;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (ok && sync && fdatasync(fd) != 0)
        ok = false;
    int saved = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        unlink(tmp);
        errno = saved;
        return EL_IO;
    }
    return EL_OK;
}

el_status plat_file_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    el_status st = write_tmp(path, data, len, 0, true, tmp, sizeof tmp);
    if (st == EL_INVAL)
        return st;
    if (st == EL_OK && rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        st = EL_IO;
    }
    if (st == EL_OK)
        st = plat_file_fsync_dir(dir);
    if (st != EL_OK)
        log_error("atomic write of %s failed: %s", path, strerror(errno));
    return st;
}

el_status plat_file_replace(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    el_status st = write_tmp(path, data, len, mode, false, tmp, sizeof tmp);
    if (st == EL_OK && rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        st = EL_IO;
    }
    return st;
}

el_status plat_file_check_private(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        log_error("cannot read %s: %s", path, strerror(errno));
        return EL_IO;
    }
    if (sb.st_mode & S_IRWXO) {
        log_error("%s is accessible by others (mode %04o); refusing it (chmod o-rwx)", path,
                  (unsigned)(sb.st_mode & 07777));
        return EL_INVAL;
    }
    return EL_OK;
}

el_status plat_file_read_secret(const char *path, char *buf, size_t cap)
{
    el_status st = plat_file_check_private(path);
    if (st != EL_OK)
        return st;
    FILE *f = fopen(path, "r");
    if (!f || cap > INT_MAX || !fgets(buf, (int)cap, f)) {
        log_error("cannot read %s", path);
        if (f)
            fclose(f);
        return EL_IO;
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return EL_OK;
}

int64_t plat_file_free_bytes(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        return -1;
    return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}
