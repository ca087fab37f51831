/*
 * config_fuzz — libFuzzer target for the config parser (firmware/config.c).
 *
 * Each input is parsed as an INI file over the defaults and, when that
 * succeeds, finished (derived values and cross-key checks); the same bytes,
 * cut at the first NUL or newline, are also tried as one command-line
 * override. Invariants checked (abort on violation): the error buffer is
 * always NUL-terminated, non-empty exactly when a call fails, and the
 * parsed filters are valid strings. The sanitizers catch the rest.
 * Built as a libFuzzer binary with clang -DEL_FUZZ=ON, and always with the
 * replay driver (tests/fuzz/replay_main.c) that ctest runs over the corpus.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(el_status st, const char *err, size_t errlen)
{
    if (memchr(err, '\0', errlen) == NULL)
        abort(); /* not NUL-terminated */
    if (st != EL_OK && err[0] == '\0')
        abort(); /* failure without a message */
    if (st == EL_OK && err[0] != '\0')
        abort(); /* message without a failure */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct el_config cfg;
    char err[256], line[1024];
    el_status st;

    config_defaults(&cfg);
    memset(err, 'X', sizeof err);
    st = config_load_string(&cfg, (const char *)data, size, "fuzz.conf", err, sizeof err);
    check_err(st, err, sizeof err);
    if (st == EL_OK) {
        memset(err, 'X', sizeof err);
        st = config_finish(&cfg, err, sizeof err);
        check_err(st, err, sizeof err);
        if (st == EL_OK) {
            if (cfg.ingest.n_filters < 1 || cfg.ingest.n_filters > EL_CFG_MAX_SUBS)
                abort();
            for (int i = 0; i < cfg.ingest.n_filters; i++)
                if (memchr(cfg.ingest.filters[i], '\0', EL_CFG_STR) == NULL ||
                    cfg.ingest.filters[i][0] == '\0')
                    abort();
        }
    }

    size_t n = 0;
    while (n < size && n < sizeof line - 1 && data[n] != '\0' && data[n] != '\n')
        n++;
    memcpy(line, data, n);
    line[n] = '\0';
    config_defaults(&cfg);
    memset(err, 'X', sizeof err);
    st = config_set(&cfg, line, err, sizeof err);
    check_err(st, err, sizeof err);
    return 0;
}
