/*
 * cmd_verify — `edgelambda verify`: checks a master log and its batch views
 * (storage/mlog_verify.h) read-only, beside a running daemon, and reports in
 * plain words: what holds, then every problem found.
 *
 * Threading: main thread only.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mlog_verify.h"

enum { OPT_DIR = CLI_OPT_FIRST_COMMAND, OPT_SAMPLE };

static void verify_usage(FILE *out)
{
    fprintf(out, "usage: edgelambda verify [--dir DIR] [--sample N]\n"
                 "\n"
                 "Checks the master log and the batch views in DIR (read-only): SQLite's\n"
                 "integrity, that every sequence number is stored once, that the block\n"
                 "summaries cover their events, and N sampled view rows (default 200)\n"
                 "against a recompute from the raw events.\n"
                 "\n"
                 "  --dir DIR     storage.dir of the daemon (default /var/lib/edgelambda)\n"
                 "  --sample N    view rows to recompute (0..100000)\n"
                 "  -h, --help    this help\n"
                 "\n"
                 "Exit status: 0 all good, 1 a problem found or the log unreadable, 2 usage.\n");
}

int cli_verify(struct cli_global *global, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, OPT_DIR},
        {"sample", required_argument, NULL, OPT_SAMPLE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = "/var/lib/edgelambda";
    long sample = 200;
    char *end;
    int c;
    struct mlog_verify_report r;
    (void)global;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DIR: dir = optarg; break;
        case OPT_SAMPLE:
            sample = strtol(optarg, &end, 10);
            if (*end || end == optarg || sample < 0 || sample > 100000) {
                fprintf(stderr, "edgelambda verify: --sample is 0..100000\n");
                return CLI_EXIT_USAGE;
            }
            break;
        case 'h': verify_usage(stdout); return CLI_EXIT_OK;
        default: verify_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        verify_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    el_status st = mlog_verify(dir, (int)sample, &r);
    if (st == EL_OK) {
        printf("master log %s/master.db: %s\n", dir, r.master_ok ? "intact" : "DAMAGED");
        printf("  sequences %lld..%lld: %lld events, %lld dead letters, %lld waiting for the "
               "clock, %lld missing\n",
               (long long)r.first_seq, (long long)r.last_seq, (long long)r.events,
               (long long)r.dead_letters, (long long)r.waiting,
               (long long)(r.missing_seqs > 0 ? r.missing_seqs : 0));
        printf("  block summaries: %lld, %lld not covering their events\n", (long long)r.blocks,
               (long long)r.bad_blocks);
        printf("batch views: %s, up to seq %lld; %lld sampled rows recomputed, %lld differ, %lld "
               "not recomputable (raw events removed)\n",
               r.views_ok ? "intact" : "DAMAGED", (long long)r.watermark_seq,
               (long long)r.views_checked, (long long)r.views_wrong,
               (long long)r.views_uncheckable);
    }
    for (int i = 0; i < r.n_notes; i++)
        printf("%s %s\n",
               st == EL_OK && strstr(r.notes[i], "not recomputable") ? "note:" : "PROBLEM:",
               r.notes[i]);
    bool good = st == EL_OK && r.master_ok && r.views_ok && r.missing_seqs == 0 &&
                (r.counted_events < 0 || r.counted_events == r.events) && r.bad_blocks == 0 &&
                r.views_wrong == 0;
    printf("%s\n", good ? "verify: all good" : "verify: problems found (above)");
    return good ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
