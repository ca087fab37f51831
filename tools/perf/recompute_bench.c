/*
 * el_recompute_bench DIR full|incremental — runs one batch-view recompute
 * (storage/views.h) against DIR/master.db and prints its figures, for
 * tools/bench recompute. Single-threaded; owns nothing beyond the run.
 */
#include <stdio.h>
#include <string.h>

#include "views.h"

int main(int argc, char **argv)
{
    struct views *v = NULL;
    struct views_run run;
    if (argc != 3 || (strcmp(argv[2], "full") != 0 && strcmp(argv[2], "incremental") != 0)) {
        fprintf(stderr, "usage: el_recompute_bench DIR full|incremental\n");
        return 2;
    }
    if (views_open(argv[1], &v) != EL_OK) {
        fprintf(stderr, "el_recompute_bench: cannot open %s/views.db\n", argv[1]);
        return 1;
    }
    el_status st =
        views_recompute(v, argv[1], strcmp(argv[2], "full") == 0, NULL, NULL, NULL, &run);
    views_close(v);
    if (st != EL_OK) {
        fprintf(stderr, "el_recompute_bench: recompute failed: %s\n", el_status_str(st));
        return 1;
    }
    double secs = (double)run.wall_ms / 1000.0;
    printf("recompute: mode=%s events=%llu rows=%llu seconds=%.3f rate=%.0f cpu_s=%.3f\n", argv[2],
           (unsigned long long)run.events, (unsigned long long)run.groups, secs,
           secs > 0 ? (double)run.events / secs : 0.0, run.cpu_s);
    return 0;
}
