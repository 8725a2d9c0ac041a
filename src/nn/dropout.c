/* Inverted dropout: in training each unit is kept with probability 1 - rate and scaled by
 * 1 / (1 - rate); in evaluation it is the identity. The mask comes from a counter-based hash
 * of (step key, element), so it does not depend on how threads share the work. Rates are
 * resolved to 1/65536. Threads share it by rows of the batch. */
#include "nn/layer.h"
#include "util/error.h"
#include "util/team.h"

#include <stdio.h>
#include <string.h>

static fnn_status dropout_setup(fnn_layer *l, fnn_error *err)
{
    l->out = l->in;
    l->scratch_per_sample = fnn_shape_size(l->in);
    return FNN_OK;
}

static void dropout_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    size_t lo, hi;
    fnn_layer_forward_elements(l, n, &lo, &hi);
    if (!p->train || l->cfg.dropout.rate == 0.0f) {
        memcpy(y + lo, x + lo, (hi - lo) * sizeof *y);
        return;
    }
    float rate = l->cfg.dropout.rate, scale = 1.0f / (1.0f - rate);
    uint64_t key = p->key ^ fnn_hash64((uint64_t)l->index);
    float *mask = l->scratch; /* (n, size) */
    /* Element i of the step's whole batch (a shard's rows start at p->row0) takes the 16-bit
     * chunk i % 4 of hash(key + i / 4) as its uniform, whichever thread or shard computes it.
     * Hashing groups of 64 at once lets both loops vectorise. */
    uint16_t threshold = (uint16_t)(rate * 65536.0f);
    size_t base = p->row0 * fnn_shape_size(l->in); /* g below counts from the whole batch's start */
    for (size_t g0 = (base + lo) / 64 * 64; g0 < base + hi; g0 += 64) {
        uint64_t bits[16];
        uint16_t u[64];
        for (int j = 0; j < 16; j++)
            bits[j] = fnn_hash64(key + g0 / 4 + (uint64_t)j);
        memcpy(u, bits, sizeof u); /* little-endian: u[j] is bits j/4, chunk j%4 */
        size_t a = g0 < base + lo ? base + lo - g0 : 0;
        size_t b = base + hi - g0 < 64 ? base + hi - g0 : 64;
        for (size_t j = a; j < b; j++)
            mask[g0 + j - base] = u[j] >= threshold ? scale : 0.0f;
    }
#pragma omp simd
    for (size_t i = lo; i < hi; i++)
        y[i] = x[i] * mask[i];
}

static void dropout_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                             float *dy, float *dx, int n)
{
    if (!dx)
        return;
    size_t lo, hi;
    fnn_layer_row_elements(l, n, &lo, &hi);
    if (!p->train || l->cfg.dropout.rate == 0.0f) {
        memcpy(dx + lo, dy + lo, (hi - lo) * sizeof *dx);
        return;
    }
    const float *mask = l->scratch;
#pragma omp simd
    for (size_t i = lo; i < hi; i++)
        dx[i] = dy[i] * mask[i];
}

static unsigned dropout_sharing(const fnn_layer *l, int n, int nt)
{
    unsigned fwd = fnn_layer_splits_elements(l, n, nt) ? 0 : FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT;
    return fwd | FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT;
}

static void dropout_format(const fnn_layer *l, char *buf, size_t size)
{
    snprintf(buf, size, "dropout:%g", (double)l->cfg.dropout.rate);
}

const fnn_layer_ops fnn_dropout_ops = {
    .kind = "dropout",
    .type = "Dropout",
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .format = dropout_format,
    .sharing = dropout_sharing,
};
