/* Search grids for `fnn search`: keys with lists of values, from --grid arguments or a grid file,
 * and the configurations they span. Nothing here prints or exits, so a fuzzer can drive it. */
#ifndef FNN_CLI_GRID_H
#define FNN_CLI_GRID_H

#include "fnn.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;      /* an fnn train long option without dashes, or a {placeholder} name */
    char **values;   /* (nvalues) trimmed, non-empty, distinct */
    int nvalues;
    char origin[256]; /* where it was given, for messages: "--grid lr=..." or "FILE line 3" */
} grid_key;

typedef struct {
    grid_key *keys; /* (nkeys) in the order given; the last varies fastest */
    int nkeys;
} grid;

/* Adds one "key=v1,v2,..." (spaces around '=' and ',' allowed). origin names it in messages. */
fnn_status grid_add(grid *g, const char *text, const char *origin, fnn_error *err);

/* Adds the keys of a grid file held in buf (len bytes, NUL bytes rejected): one
 * "key = v1, v2, ..." per line, '#' to the end of a line is a comment, blank lines are skipped.
 * Messages name the file, the line and the offending token. On failure g keeps the keys added
 * before the bad line; grid_free releases them either way. */
fnn_status grid_parse(grid *g, const char *buf, size_t len, const char *file, fnn_error *err);

void grid_free(grid *g);

/* The key called name, or NULL. */
const grid_key *grid_find(const grid *g, const char *name);

/* The number of configurations (the product of the value counts), or 0 when it exceeds limit. */
uint64_t grid_size(const grid *g, uint64_t limit);

/* choice (nkeys) receives the value indices of configuration index (0-based, last key fastest). */
void grid_config(const grid *g, uint64_t index, int *choice);

/* text with each "{name}" replaced by the chosen value of key name, malloc'd; NULL when a
 * placeholder names no key, names self_key, or is not closed (err says which). */
char *grid_fill(const grid *g, const int *choice, const char *text, const char *self_key,
                fnn_error *err);

#endif
