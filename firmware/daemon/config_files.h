/*
 * config_files — checks that the files a configuration names are usable by
 * the daemon (edgelambdad --check-config; design in config_files.c).
 */
#ifndef EL_CONFIG_FILES_H
#define EL_CONFIG_FILES_H

#include <stddef.h>

#include "config.h"
#include "el_status.h"

/* EL_OK, or EL_INVAL with one line in err naming the key, the file and the
 * problem. As root with the service user present, checked as that user. */
EL_MUST_CHECK el_status config_check_files(const struct el_config *cfg, char *err, size_t errlen);

#endif
