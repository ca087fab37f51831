/*
 * table — aligned text tables (design in table.h).
 *
 * Ownership: struct table owns its text buffer and its offset array.
 */
#include "table.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_CELL_MAX 1024

struct table {
    size_t ncols;
    unsigned char align[TABLE_MAX_COLS];
    char *text; /* NUL-terminated cell texts, back to back */
    size_t text_len, text_cap;
    size_t *cells; /* offset of each cell's text */
    size_t n_cells, cells_cap;
};

el_status table_new(size_t ncols, struct table **out)
{
    struct table *t;

    *out = NULL;
    if (ncols == 0 || ncols > TABLE_MAX_COLS)
        return EL_INVAL;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return EL_NOMEM;
    t->ncols = ncols;
    *out = t;
    return EL_OK;
}

void table_free(struct table *t)
{
    if (t == NULL)
        return;
    free(t->cells);
    free(t->text);
    free(t);
}

void table_align(struct table *t, size_t col, enum table_align align)
{
    if (col < t->ncols)
        t->align[col] = (unsigned char)align;
}

/* Grows a buffer of *cap elements of size elem to hold need, doubling up to
 * max elements; false (buffer untouched) beyond max or without memory. */
static bool grow(void **buf, size_t *cap, size_t need, size_t elem, size_t max)
{
    size_t cap_new = *cap ? *cap : 64;
    void *p;

    if (need <= *cap)
        return true;
    if (need > max)
        return false;
    while (cap_new < need)
        cap_new *= 2;
    if (cap_new > max)
        cap_new = max;
    p = realloc(*buf, cap_new * elem);
    if (p == NULL)
        return false;
    *buf = p;
    *cap = cap_new;
    return true;
}

el_status table_add(struct table *t, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    void *text_buf = t->text;
    void *cells_buf = t->cells;

    if (!grow(&text_buf, &t->text_cap, t->text_len + len + 1, 1, TABLE_MAX_BYTES))
        return EL_NOMEM;
    t->text = text_buf;
    if (!grow(&cells_buf, &t->cells_cap, t->n_cells + 1, sizeof t->cells[0], TABLE_MAX_CELLS))
        return EL_NOMEM;
    t->cells = cells_buf;
    if (len > 0)
        memcpy(t->text + t->text_len, text, len);
    t->text[t->text_len + len] = '\0';
    t->cells[t->n_cells++] = t->text_len;
    t->text_len += len + 1;
    return EL_OK;
}

el_status table_addf(struct table *t, const char *fmt, ...)
{
    char cell[TABLE_CELL_MAX];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(cell, sizeof cell, fmt, ap) < 0)
        cell[0] = '\0';
    va_end(ap);
    return table_add(t, cell);
}

size_t table_rows(const struct table *t)
{
    return (t->n_cells + t->ncols - 1) / t->ncols;
}

/* Display width: UTF-8 code points (continuation bytes do not count). */
static size_t display_width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static int pad(FILE *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fputc(' ', out) == EOF)
            return EOF;
    }
    return 0;
}

el_status table_print(const struct table *t, FILE *out)
{
    size_t width[TABLE_MAX_COLS] = {0};
    int bad = 0;

    for (size_t i = 0; i < t->n_cells; i++) {
        size_t w = display_width(t->text + t->cells[i]);
        if (w > width[i % t->ncols])
            width[i % t->ncols] = w;
    }
    for (size_t i = 0; i < t->n_cells && bad == 0; i++) {
        size_t col = i % t->ncols;
        const char *s = t->text + t->cells[i];
        size_t fill = width[col] - display_width(s);
        bool last = col + 1 == t->ncols || i + 1 == t->n_cells;

        if (col > 0)
            bad |= fputs("  ", out) == EOF;
        if (t->align[col] == TABLE_RIGHT)
            bad |= pad(out, fill);
        bad |= fputs(s, out) == EOF;
        if (t->align[col] != TABLE_RIGHT && !last)
            bad |= pad(out, fill);
        if (last)
            bad |= fputc('\n', out) == EOF;
    }
    return bad ? EL_IO : EL_OK;
}
