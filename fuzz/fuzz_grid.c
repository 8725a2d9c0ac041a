/* libFuzzer harness for search grid files (needs: cli/grid.c): grid_parse on the file's bytes,
 * then every configuration of a small grid is enumerated and each value substituted into a
 * template. Input: the grid file. */
#include "fuzz_common.h"

#include <string.h>

#include "grid.h"

/* Configurations enumerated per input, at most: enough to cover grid_config's carries. */
#define CONFIG_CAP 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    grid g;
    memset(&g, 0, sizeof g);
    fnn_error err = {FNN_OK, ""};
    if (grid_parse(&g, (const char *)data, size, "fuzz.grid", &err) != FNN_OK) {
        FUZZ_CHECK(err.status != FNN_OK && err.msg[0] != '\0');
        grid_free(&g);
        return 0;
    }
    for (int k = 0; k < g.nkeys; k++) {
        FUZZ_CHECK(g.keys[k].name && g.keys[k].nvalues > 0);
        FUZZ_CHECK(grid_find(&g, g.keys[k].name) == &g.keys[k]);
        for (int v = 0; v < g.keys[k].nvalues; v++)
            FUZZ_CHECK(g.keys[k].values[v][0] != '\0');
    }
    uint64_t n = grid_size(&g, CONFIG_CAP);
    int *choice = malloc(((size_t)g.nkeys + 1) * sizeof *choice);
    for (uint64_t i = 0; choice && i < n; i++) {
        grid_config(&g, i, choice);
        for (int k = 0; k < g.nkeys; k++) {
            FUZZ_CHECK(choice[k] >= 0 && choice[k] < g.keys[k].nvalues);
            size_t tlen = strlen(g.keys[k].name) + 5;
            char *tmpl = malloc(tlen);
            if (!tmpl)
                break;
            snprintf(tmpl, tlen, "x{%s}y", g.keys[k].name);
            fnn_error ferr = {FNN_OK, ""};
            /* No key is called "": self_key excludes nothing here. */
            char *filled = grid_fill(&g, choice, tmpl, "", &ferr);
            free(tmpl);
            FUZZ_CHECK(filled || ferr.status == FNN_ERR_NOMEM);
            if (filled) {
                /* Values go in verbatim (not scanned again): "x" + value + "y". */
                const char *v = g.keys[k].values[choice[k]];
                FUZZ_CHECK(strlen(filled) == strlen(v) + 2 &&
                           strncmp(filled + 1, v, strlen(v)) == 0);
                free(filled);
            }
        }
    }
    free(choice);
    grid_free(&g);
    return 0;
}
