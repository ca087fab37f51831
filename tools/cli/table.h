/*
 * table — aligned, human-readable text tables for the `edgelambda` client.
 *
 * Not for: machine-readable output (commands print raw JSON for --json).
 *
 * Design: a table has a fixed number of columns and is filled row-major,
 * cell by cell (the first row is the header). Cell texts are kept
 * NUL-separated in one growable byte buffer with one offset per cell; both
 * grow by doubling up to TABLE_MAX_BYTES / TABLE_MAX_CELLS (beyond them
 * table_add fails with EL_NOMEM and the table is unchanged). table_print
 * measures every column (display width = UTF-8 code points) and writes each
 * row with columns separated by two spaces, text left-aligned or
 * right-aligned per column (TABLE_RIGHT suits numbers); the last column is
 * not padded on the right. A short last row is printed as far as it goes.
 *
 * Threading: a table belongs to one thread.
 */
#ifndef EL_TABLE_H
#define EL_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "el_status.h"

#define TABLE_MAX_COLS 32
#define TABLE_MAX_CELLS (1u << 22)
#define TABLE_MAX_BYTES (64u << 20)

enum table_align { TABLE_LEFT = 0, TABLE_RIGHT };

struct table;

/* Allocates a table of ncols (1..TABLE_MAX_COLS) left-aligned columns.
 * EL_INVAL for a bad ncols, EL_NOMEM; *out is NULL on failure. */
EL_MUST_CHECK el_status table_new(size_t ncols, struct table **out);
/* NULL is a no-op. */
void table_free(struct table *t);

/* Sets column col's alignment (ignored when col >= ncols). */
void table_align(struct table *t, size_t col, enum table_align align);

/* Appends the next cell (text copied; NULL is printed as ""). */
EL_MUST_CHECK el_status table_add(struct table *t, const char *text);
/* printf-style table_add; cells longer than 1023 bytes are cut. */
EL_MUST_CHECK el_status table_addf(struct table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rows so far, including the header and a partly filled last row. */
size_t table_rows(const struct table *t);

/* Writes the table to out; EL_IO if a write failed. */
EL_MUST_CHECK el_status table_print(const struct table *t, FILE *out);

#endif
