/*
 * metrics — the status document in the Prometheus text exposition format
 * (version 0.0.4): for node_exporter's textfile collector (metrics.textfile)
 * and for {"op":"metrics"} (`edgelambda metrics`).
 *
 * Design: ONE conversion, metrics_format(), from the status document's JSON
 * to the exposition, driven by the status schema (status.h: each field's row
 * names its metric, type, unit scale and help). So the numbers are by
 * construction those of a status document, and a status field cannot be
 * added without deciding its metric (tests/unit/metrics_test.c). It reads the
 * JSON, not the snapshot, because the JSON is what both of its users hold:
 * the core writes the textfile from the document it is about to publish,
 * and the serving thread answers {"op":"metrics"} from the document on the
 * status board (as fresh as {"op":"status"}; the serving layer cannot see
 * the core's snapshot). The CLI does not convert anything: it asks the
 * daemon, so the exposition always follows the running daemon's schema (a
 * CLI of another version cannot drop or misname a metric), the CLI does not
 * link the daemon's layers, and any MQTT client (mosquitto_rr) gets the same
 * text.
 *
 * Naming: edgelambda_<section>_<what> in base units (seconds, bytes; the
 * status document's *_ms become *_seconds), counters end in _total, a
 * counter object becomes one family with a label
 * (edgelambda_ingest_rejected_total{reason="malformed"},
 * edgelambda_query_errors_total{code="timeout"}). Booleans are 0/1 gauges,
 * times are epoch seconds, null values (not known, not yet) are left out,
 * error texts are 0/1 gauges, the version and the clock's source are info
 * gauges (value 1, the text in a label); prose has no metric.
 *
 * The textfile: rewritten at every status publish (on change, at most once
 * a second, and at the heartbeat), as <path>.tmp renamed over path
 * (plat_file_replace: node_exporter reads only *.prom, never a torn file),
 * mode 0644 so node_exporter's user can read it, without fsync: the core
 * thread never waits for the device, and after a power cut the next publish
 * rewrites it. A failed write is logged at most once a minute and never
 * stops the daemon.
 *
 * Threading: metrics_format is pure (any thread); a struct metrics belongs
 * to the core thread.
 */
#ifndef EL_METRICS_H
#define EL_METRICS_H

#include <stddef.h>

#include "el_status.h"

/* Room for the exposition of any status document. */
#define METRICS_TEXT_MAX (64 * 1024)

/* Writes the exposition of the status document json[0..len) into out;
 * returns its length, or 0 if json is not a status document or out (cap
 * bytes, NUL-terminated on success) is too small. */
size_t metrics_format(const char *json, size_t len, char *out, size_t cap);

struct metrics;

/* textfile "" (metrics off): *out = NULL and EL_OK; every call below takes
 * NULL. The path is copied. */
EL_MUST_CHECK el_status metrics_new(const char *textfile, struct metrics **out);
void metrics_free(struct metrics *m);
/* The status document json[0..len) was formatted for publishing: rewrite
 * the textfile. */
void metrics_publish(struct metrics *m, const char *json, size_t len);

#endif
