/*
 * plat_file — file-system helpers with power-loss reasoning.
 *
 * plat_file_write_atomic(): temp file, write, fdatasync, rename, fsync of the
 * directory — the Mosquitto persist_write pattern — so a reader sees either
 * the old or the new content after a power cut, never a torn file.
 * plat_file_replace(): the same without the syncs, for files that are
 * rewritten often and need no power-loss promise (metrics for other
 * programs): a running reader never sees a torn file; the device is not
 * forced to write (flash wear) and the caller never waits for it.
 *
 * Threading: any thread. errno is read here and turned into an el_status.
 */
#ifndef PLAT_FILE_H
#define PLAT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

/* Creates dir and its parents with mode 0750 where missing. */
EL_MUST_CHECK el_status plat_file_mkdirs(const char *dir);
/* fsyncs a directory so a create/rename/unlink in it is durable. */
EL_MUST_CHECK el_status plat_file_fsync_dir(const char *dir);
EL_MUST_CHECK el_status plat_file_write_atomic(const char *path, const void *data, size_t len);
/* Writes <path>.tmp with exactly mode (not reduced by the umask), renames it
 * over path; no sync. Errors are returned (errno set), not logged: the
 * caller knows how often it may complain. */
EL_MUST_CHECK el_status plat_file_replace(const char *path, const void *data, size_t len,
                                          unsigned mode);
/* Secrets files: EL_INVAL if others (not owner or group) can access it (message logged). */
EL_MUST_CHECK el_status plat_file_check_private(const char *path);
/* The first line of a private secrets file (plat_file_check_private),
 * without its line end, into buf[cap]. EL_IO when it cannot be read. */
EL_MUST_CHECK el_status plat_file_read_secret(const char *path, char *buf, size_t cap);
/* Bytes free for an unprivileged writer on the file system holding path; -1 on error. */
int64_t plat_file_free_bytes(const char *path);

#endif
