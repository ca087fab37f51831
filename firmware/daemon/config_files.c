/*
 * config_files — what `edgelambdad --check-config` checks beyond the syntax:
 * that the files the configuration names can be used by the daemon.
 *
 * Design: a list of (key, kind) over the configuration's path keys:
 * secrets (password and token files, private keys) must be regular, readable
 * files that others cannot read (plat_file_check_private's rule); certificate
 * and CA files regular and readable; storage.dir a writable directory, or
 * creatable under a writable parent; metrics.textfile's directory writable.
 * Run as root with the service user present (the .deb's "edgelambda", as the
 * unit file runs the daemon), the checks run in a child process that has
 * become that user, so that "readable" means readable by the daemon: a
 * restart loop under systemd because the token file is root's 0600 is what
 * this is for. The first problem is reported, naming the key and the file.
 *
 * Threading: main thread, before anything else starts (it forks).
 */
#include "config_files.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SERVICE_USER "edgelambda"

enum kind { SECRET, READABLE, WRITABLE_DIR, PARENT_WRITABLE };

struct path_key {
    const char *key;
    enum kind kind;
    const char *value;
};

static bool fail(char *err, size_t errlen, const char *key, const char *path, const char *why)
{
    snprintf(err, errlen, "%s = %s: %s", key, path, why);
    return false;
}

static bool check_file(const struct path_key *k, char *err, size_t errlen)
{
    struct stat sb;
    char why[160];
    if (stat(k->value, &sb) != 0) {
        snprintf(why, sizeof why, "%s", strerror(errno));
        return fail(err, errlen, k->key, k->value, why);
    }
    if (!S_ISREG(sb.st_mode))
        return fail(err, errlen, k->key, k->value, "not a regular file");
    if (access(k->value, R_OK) != 0) {
        snprintf(why, sizeof why, "cannot be read: %s", strerror(errno));
        return fail(err, errlen, k->key, k->value, why);
    }
    if (k->kind == SECRET && (sb.st_mode & S_IRWXO)) {
        snprintf(why, sizeof why, "others can access it (mode %04o): chmod o-rwx",
                 (unsigned)(sb.st_mode & 07777));
        return fail(err, errlen, k->key, k->value, why);
    }
    return true;
}

/* dir itself (WRITABLE_DIR) or, when it does not exist yet, the nearest
 * existing directory above it must let us create and write. */
static bool check_dir(const struct path_key *k, char *err, size_t errlen)
{
    char path[PATH_MAX], why[200];
    struct stat sb;
    snprintf(path, sizeof path, "%s", k->value);
    if (k->kind == PARENT_WRITABLE) { /* a file: its directory */
        char *slash = strrchr(path, '/');
        if (slash == NULL)
            snprintf(path, sizeof path, ".");
        else
            *(slash == path ? slash + 1 : slash) = '\0';
    }
    for (;;) {
        if (stat(path, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode))
                return fail(err, errlen, k->key, k->value,
                            strcmp(path, k->value) == 0 ? "not a directory"
                                                        : "a file stands where a directory must");
            if (access(path, W_OK | X_OK) != 0) {
                snprintf(why, sizeof why, "%.120s is not writable: %s", path, strerror(errno));
                return fail(err, errlen, k->key, k->value, why);
            }
            return true;
        }
        if (errno == ENOTDIR)
            return fail(err, errlen, k->key, k->value, "a file stands in its path");
        if (errno != ENOENT || k->kind == PARENT_WRITABLE) {
            snprintf(why, sizeof why, "%.120s: %s", path, strerror(errno));
            return fail(err, errlen, k->key, k->value, why);
        }
        char *slash = strrchr(path, '/'); /* missing: will be created under its parent */
        if (slash == NULL || slash == path)
            snprintf(path, sizeof path, "%s", slash == path ? "/" : ".");
        else
            *slash = '\0';
    }
}

static bool check_all(const struct el_config *cfg, char *err, size_t errlen)
{
    const struct path_key keys[] = {
        {"mqtt.password_file", SECRET, cfg->mqtt.password_file},
        {"mqtt.key_file", SECRET, cfg->mqtt.key_file},
        {"mqtt.ca_file", READABLE, cfg->mqtt.ca_file},
        {"mqtt.cert_file", READABLE, cfg->mqtt.cert_file},
        {"sync.token_file", SECRET, cfg->sync.token_file},
        {"sync.key_file", SECRET, cfg->sync.key_file},
        {"sync.ca_file", READABLE, cfg->sync.ca_file},
        {"sync.cert_file", READABLE, cfg->sync.cert_file},
        {"storage.dir", WRITABLE_DIR, cfg->storage.dir},
        {"metrics.textfile", PARENT_WRITABLE, cfg->metrics.textfile},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const struct path_key *k = &keys[i];
        if (k->value[0] == '\0')
            continue;
        bool ok = k->kind == SECRET || k->kind == READABLE ? check_file(k, err, errlen)
                                                           : check_dir(k, err, errlen);
        if (!ok)
            return false;
    }
    return true;
}

/* Root with the service user: the checks as that user, in a child. */
static el_status check_as(const struct passwd *pw, const struct el_config *cfg, char *err,
                          size_t errlen)
{
    int fds[2];
    if (pipe(fds) != 0)
        return check_all(cfg, err, errlen) ? EL_OK : EL_INVAL;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        char msg[512] = "";
        bool ok = initgroups(pw->pw_name, pw->pw_gid) == 0 && setgid(pw->pw_gid) == 0 &&
                  setuid(pw->pw_uid) == 0;
        if (!ok)
            snprintf(msg, sizeof msg, "cannot become user %s: %s", pw->pw_name, strerror(errno));
        else if (!check_all(cfg, msg, sizeof msg))
            ok = false;
        ssize_t w = write(fds[1], msg, strlen(msg));
        (void)w;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    ssize_t n = pid > 0 ? read(fds[0], err, errlen - 1) : -1;
    close(fds[0]);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return check_all(cfg, err, errlen) ? EL_OK : EL_INVAL;
    err[n > 0 ? n : 0] = '\0';
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return EL_OK;
    size_t len = strlen(err);
    snprintf(err + len, errlen - len, " (checked as user %s, who runs the service)", pw->pw_name);
    return EL_INVAL;
}

el_status config_check_files(const struct el_config *cfg, char *err, size_t errlen)
{
    struct passwd *pw = geteuid() == 0 ? getpwnam(SERVICE_USER) : NULL;
    if (pw != NULL)
        return check_as(pw, cfg, err, errlen);
    return check_all(cfg, err, errlen) ? EL_OK : EL_INVAL;
}
