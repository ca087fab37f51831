/* sync — placeholder until the sync worker lands: sync is reported disabled. */
#include "sync.h"

#include <string.h>

#include "plat_log.h"

el_status sync_new(const struct el_config *cfg, struct sync **out)
{
    *out = NULL;
    if (cfg->sync.url[0])
        log_warn("sync.url is set but this build does not ship upstream yet");
    return EL_OK;
}

el_status sync_start(struct sync *s)
{
    (void)s;
    return EL_OK;
}

void sync_notify_committed(struct sync *s, int64_t committed_seq)
{
    (void)s;
    (void)committed_seq;
}

void sync_kick(struct sync *s)
{
    (void)s;
}

void sync_retry_parked(struct sync *s)
{
    (void)s;
}

void sync_get_status(struct sync *s, struct sync_status *out)
{
    (void)s;
    memset(out, 0, sizeof *out);
    out->oldest_unsent_age_s = -1;
}

void sync_free(struct sync *s)
{
    (void)s;
}
