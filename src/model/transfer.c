/* Transfer learning: copies the tensors of a trained model that fit a new one, by layer
 * position and shape, and says for each tensor what happened. */
#include "fnn.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

static void shape_text(const fnn_tensor *t, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < t->rank && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, "%s%d", d ? ", " : "", t->shape[d]);
    if (len < n)
        snprintf(buf + len, n - len, ")");
}

fnn_status fnn_model_transfer(fnn_model *m, const fnn_model *src, int layers,
                              fnn_transfer_entry *report, int *nloaded, fnn_error *err)
{
    int c, h, w, sc, sh, sw;
    fnn_model_input_shape(m, &c, &h, &w);
    fnn_model_input_shape(src, &sc, &sh, &sw);
    int nt = fnn_model_num_tensors(m), ns = fnn_model_num_tensors(src), loaded = 0;
    /* Inputs of another shape (another data set) are fine when the first layer fits them:
     * convolution kernels fit any image size. When it does not (other channels, or a dense
     * layer over the flattened image), what follows it was learned on features it no longer
     * gets, so nothing is copied. */
    if ((c != sc || h != sh || w != sw) && layers > 0 && nt > 0) {
        fnn_tensor t, s = {0};
        fnn_model_tensor(m, 0, &t);
        int found = 0;
        for (int j = 0; j < ns && !found; j++) {
            fnn_model_tensor(src, j, &s);
            found = strcmp(s.name, t.name) == 0;
        }
        if (!found || s.rank != t.rank ||
            memcmp(s.shape, t.shape, (size_t)t.rank * sizeof *t.shape) != 0) {
            char a[40] = "absent", b[40];
            if (found)
                shape_text(&s, a, sizeof a);
            shape_text(&t, b, sizeof b);
            return fnn_fail(err, FNN_ERR_ARG,
                            "transfer: the first layer does not fit: the source model takes "
                            "%dx%dx%d images and its %s is %s; this one takes %dx%dx%d images "
                            "and needs %s",
                            sc, sh, sw, t.name, a, c, h, w, b);
        }
    }
    for (int i = 0; i < nt; i++) {
        fnn_tensor t, s = {0};
        fnn_model_tensor(m, i, &t);
        /* Names carry the layer position ("layers.3.kernel"), so equal names mean the same
         * place in the stack. */
        int found = 0, layer = -1;
        if (sscanf(t.name, "layers.%d.", &layer) == 1 && layer >= layers) {
            fnn_transfer_entry e = {.loaded = 0};
            snprintf(e.name, sizeof e.name, "%s", t.name);
            snprintf(e.reason, sizeof e.reason, "not among the first %d layers to load: initialised",
                     layers);
            if (report)
                report[i] = e;
            continue;
        }
        for (int j = 0; j < ns && !found; j++) {
            fnn_model_tensor(src, j, &s);
            found = strcmp(s.name, t.name) == 0;
        }
        int same = found && s.rank == t.rank &&
                   memcmp(s.shape, t.shape, (size_t)t.rank * sizeof *t.shape) == 0;
        fnn_transfer_entry e = {.loaded = same};
        snprintf(e.name, sizeof e.name, "%s", t.name);
        if (same) {
            memcpy(t.data, s.data, t.size * sizeof *t.data);
            loaded++;
        } else if (!found) {
            snprintf(e.reason, sizeof e.reason, "not in the source model: initialised");
        } else {
            char a[40], b[40];
            shape_text(&s, a, sizeof a);
            shape_text(&t, b, sizeof b);
            snprintf(e.reason, sizeof e.reason, "source shape %s, needed %s: initialised", a, b);
        }
        if (report)
            report[i] = e;
    }
    if (nloaded)
        *nloaded = loaded;
    return FNN_OK;
}
