/*
 * replay_main — a plain driver that feeds files to a libFuzzer target, so that
 * gcc builds (and ctest) replay the committed seed corpus without libFuzzer.
 * Generic: any tests/fuzz/<target>_fuzz.c links with it.
 *
 * Usage: <target>_replay PATH...
 *   A file is replayed; a directory has each of its regular files replayed
 *   (one level deep, in name order; subdirectories are skipped).
 * Each input sits in a malloc'd buffer of exactly its size, so ASan reports
 * any read past the end. Prints "replayed N inputs"; exit status 0, or 1 if a
 * path cannot be read or a directory holds no file. A crash in the target
 * (abort, sanitizer report) ends the run with the target's signal/status.
 *
 * Threading: single-threaded.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads path fully and runs the target on it; -1 if it cannot be read. */
static int replay_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    /* malloc(0) may return NULL; an empty input still needs a valid pointer */
    uint8_t *data = malloc(size > 0 ? size : 1);
    if (data == NULL) {
        fprintf(stderr, "replay: %s: out of memory (%zu bytes)\n", path, size);
        fclose(f);
        return -1;
    }
    size_t got = size > 0 ? fread(data, 1, size, f) : 0;
    int failed = ferror(f) || got != size;
    fclose(f);
    if (failed) {
        fprintf(stderr, "replay: %s: short read (%zu of %zu bytes)\n", path, got, size);
        free(data);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    (*count)++;
    return 0;
}

static int replay_dir(const char *dir, size_t *count)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    size_t files = 0;
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct stat st;
        int len = snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (len < 0 || (size_t)len >= sizeof path) {
            fprintf(stderr, "replay: %s/%s: path too long\n", dir, names[i]->d_name);
            rc = -1;
        } else if (stat(path, &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
            rc = -1;
        } else if (S_ISREG(st.st_mode)) {
            if (replay_file(path, count) != 0)
                rc = -1;
            files++;
        }
        free(names[i]);
    }
    free(names);
    if (files == 0) {
        fprintf(stderr, "replay: %s: no files\n", dir);
        rc = -1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 1;
    }
    size_t count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0)
                rc = 1;
        } else if (replay_file(argv[i], &count) != 0) {
            rc = 1;
        }
    }
    printf("replayed %zu inputs\n", count);
    return rc;
}
