/* Residual blocks: "residual" opens one and "end" closes it, so that the block's output is its
 * layers' output plus the block's input (He et al.). The opening layer passes its input on and
 * keeps it; the closing layer adds it back, and in the backward pass hands the same gradient to
 * the shortcut, which the opening layer adds to the gradient coming back through the block.
 * The shortcut is the identity: the block must keep its input's shape. Threads share rows. */
#include "nn/layer.h"
#include "util/error.h"
#include "util/team.h"

#include <stdio.h>
#include <string.h>

static void my_elements(const fnn_layer *l, int n, size_t *lo, size_t *hi)
{
    size_t size = fnn_shape_size(l->in);
    fnn_team_range((size_t)n, 1, lo, hi);
    *lo *= size;
    *hi *= size;
}

static fnn_status begin_setup(fnn_layer *l, fnn_error *err)
{
    l->out = l->in;
    return FNN_OK;
}

static void begin_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    size_t lo, hi;
    my_elements(l, n, &lo, &hi);
    memcpy(y + lo, x + lo, (hi - lo) * sizeof *y);
}

/* dx = dy (through the block) + the shortcut's gradient, kept by the closing layer. */
static void begin_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                           float *dy, float *dx, int n)
{
    if (!dx)
        return;
    size_t lo, hi;
    my_elements(l, n, &lo, &hi);
    const float *shortcut = l->partner->scratch; /* (n, size) */
#pragma omp simd
    for (size_t i = lo; i < hi; i++)
        dx[i] = dy[i] + shortcut[i];
}

static fnn_status end_setup(fnn_layer *l, fnn_error *err)
{
    const fnn_layer *b = l->partner;
    if (b->in.c != l->in.c || b->in.h != l->in.h || b->in.w != l->in.w)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "residual block ending at layer %d: its layers change the shape (%d, %d, "
                        "%d) into (%d, %d, %d); a block must keep its input's shape", l->index,
                        b->in.c, b->in.h, b->in.w, l->in.c, l->in.h, l->in.w);
    l->out = l->in;
    l->scratch_per_sample = fnn_shape_size(l->in); /* the shortcut's gradient */
    return FNN_OK;
}

static void end_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    size_t lo, hi;
    my_elements(l, n, &lo, &hi);
    const float *input = l->partner->output; /* (n, size) the block's input, kept by "residual" */
#pragma omp simd
    for (size_t i = lo; i < hi; i++)
        y[i] = x[i] + input[i];
}

static void end_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                         float *dy, float *dx, int n)
{
    size_t lo, hi;
    my_elements(l, n, &lo, &hi);
    memcpy(l->scratch + lo, dy + lo, (hi - lo) * sizeof *dy);
    if (dx)
        memcpy(dx + lo, dy + lo, (hi - lo) * sizeof *dx);
}

static unsigned rows(const fnn_layer *l, int n, int nt)
{
    return FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT | FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT;
}

static void begin_format(const fnn_layer *l, char *buf, size_t size)
{
    snprintf(buf, size, "residual");
}

static void end_format(const fnn_layer *l, char *buf, size_t size)
{
    snprintf(buf, size, "end");
}

const fnn_layer_ops fnn_residual_begin_ops = {
    .kind = "residual",
    .type = "Residual",
    .setup = begin_setup,
    .forward = begin_forward,
    .backward = begin_backward,
    .format = begin_format,
    .sharing = rows,
};

const fnn_layer_ops fnn_residual_end_ops = {
    .kind = "end",
    .type = "Add",
    .setup = end_setup,
    .forward = end_forward,
    .backward = end_backward,
    .format = end_format,
    .sharing = rows,
};
