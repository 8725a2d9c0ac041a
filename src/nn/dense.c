/* Dense (fully connected) layer with an optional fused activation: y = act(x W + b).
 * The kernel W is stored as Keras stores it, (in, out) row-major. */
#include "nn/layer.h"
#include "util/error.h"
#include "util/gemm.h"
#include "util/team.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* How a team shares a product (util/team.h):
 * - by rows of the batch: for evaluation batches of at least DENSE_ROW_SPLIT rows, and for
 *   small layers (at most DENSE_SMALL weights) in training too, each thread then summing the
 *   gradients of its own rows into a partial that `reduce` adds up. Rows need no barrier
 *   between consecutive layers that share them the same way.
 * - by the input dimension, for large layers on training batches: each thread reads and
 *   updates the same rows of W in the forward pass, the backward pass and the optimizer, which
 *   keeps them in its cache; the forward pass adds the threads' partial sums.
 * - by output columns, for teams larger than DENSE_MAX_SPLIT, which would need too many
 *   partial buffers. */
#define DENSE_ROW_SPLIT 128
#define DENSE_SMALL 16384
#define DENSE_MAX_SPLIT 4

typedef enum { BY_ROWS, BY_INPUT, BY_COLUMNS } split;

static int small(const fnn_layer *l)
{
    return fnn_shape_size(l->in) * (size_t)l->cfg.dense.units <= DENSE_SMALL;
}

static split forward_split(const fnn_layer *l, int n, int nt)
{
    if (nt == 1 || n >= DENSE_ROW_SPLIT || (small(l) && nt <= DENSE_MAX_SPLIT))
        return BY_ROWS;
    return nt <= DENSE_MAX_SPLIT ? BY_INPUT : BY_COLUMNS;
}

static split backward_split(const fnn_layer *l, int nt)
{
    return nt > 1 && small(l) && nt <= DENSE_MAX_SPLIT ? BY_ROWS : BY_INPUT;
}

static fnn_status dense_setup(fnn_layer *l, fnn_error *err)
{
    size_t in = fnn_shape_size(l->in), out = (size_t)l->cfg.dense.units;
    if (out == 0 || in > ((size_t)1 << 28) / out)
        return fnn_fail(err, FNN_ERR_ARG, "dense layer %d: %zu x %zu weights is too large",
                        l->index, in, out);
    l->out = (fnn_shape){(int)out, 1, 1};
    l->nparams = in * out + out;
    l->scratch_per_sample = (DENSE_MAX_SPLIT - 1) * out; /* partial sums, see dense_forward */
    if (small(l))
        l->team_scratch_size = (DENSE_MAX_SPLIT - 1) * l->nparams; /* partial gradients */
    l->ntensors = 2;
    return FNN_OK;
}

static void dense_init(fnn_layer *l, fnn_rng *rng)
{
    size_t in = fnn_shape_size(l->in), out = (size_t)l->cfg.dense.units;
    float limit = sqrtf(6.0f / (float)(in + out)); /* Glorot uniform */
    for (size_t i = 0; i < in * out; i++)
        l->params[i] = (2.0f * fnn_rng_uniform(rng) - 1.0f) * limit;
    for (size_t j = 0; j < out; j++)
        l->params[in * out + j] = 0.0f;
}

/* Columns of a folded batchnorm's map made at once, on the stack. */
#define FOLD_BLOCK 64

/* Rows [r0, r1), columns [c0, c1) of y: the bias, a folded batchnorm's map and the ReLU. */
static void bias_fold_act(const fnn_layer *l, float *y, int r0, int r1, int c0, int c1)
{
    int out = l->cfg.dense.units;
    const float *b = l->params + fnn_shape_size(l->in) * out; /* (out) */
    int relu = l->cfg.dense.act == FNN_ACT_RELU;
    for (int cb = c0; cb < c1; cb += FOLD_BLOCK) {
        int ce = c1 - cb < FOLD_BLOCK ? c1 : cb + FOLD_BLOCK;
        float scale[FOLD_BLOCK], shift[FOLD_BLOCK];
        fnn_batchnorm_affine(l->fold, cb, ce, scale, shift);
        for (int r = r0; r < r1; r++) {
            float *row = y + (size_t)r * out;
#pragma omp simd
            for (int c = cb; c < ce; c++) {
                float v = (row[c] + b[c]) * scale[c - cb] + shift[c - cb];
                row[c] = !relu || v > 0.0f ? v : 0.0f;
            }
        }
    }
}

/* Adds the bias and applies the activation to rows [r0, r1), columns [c0, c1) of y. */
static void bias_act(const fnn_layer *l, float *y, int r0, int r1, int c0, int c1)
{
    int out = l->cfg.dense.units;
    const float *b = l->params + fnn_shape_size(l->in) * out; /* (out) */
    int relu = l->cfg.dense.act == FNN_ACT_RELU;
    if (l->fold) {
        bias_fold_act(l, y, r0, r1, c0, c1);
        return;
    }
    for (int r = r0; r < r1; r++) {
        float *row = y + (size_t)r * out;
        if (relu) {
#pragma omp simd
            for (int c = c0; c < c1; c++) {
                float v = row[c] + b[c];
                row[c] = v > 0.0f ? v : 0.0f;
            }
        } else {
#pragma omp simd
            for (int c = c0; c < c1; c++)
                row[c] += b[c];
        }
    }
}

static void dense_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    int in = (int)fnn_shape_size(l->in), out = l->cfg.dense.units;
    const float *w = l->params; /* (in, out) */
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t lo, hi;
    switch (forward_split(l, n, nt)) {
    case BY_ROWS:
        fnn_team_range((size_t)n, 1, &lo, &hi);
        fnn_sgemm(0, 0, (int)(hi - lo), out, in, 1.0f, x + lo * in, in, w, out, 0.0f,
                  y + lo * out, out);
        bias_act(l, y, (int)lo, (int)hi, 0, out);
        break;
    case BY_INPUT: {
        float *part = l->scratch; /* (nt - 1, n, out) */
        fnn_team_param_rows((size_t)in, &lo, &hi);
        float *dst = t ? part + (size_t)(t - 1) * n * out : y;
        if (hi > lo)
            fnn_sgemm(0, 0, n, out, (int)(hi - lo), 1.0f, x + lo, in, w + lo * out, out, 0.0f,
                      dst, out);
        else
            memset(dst, 0, (size_t)n * out * sizeof *dst);
        fnn_team_sync(p->sync);
        fnn_team_range((size_t)n, 1, &lo, &hi);
        for (int j = 0; j < nt - 1; j++) {
            const float *pj = part + (size_t)j * n * out;
#pragma omp simd
            for (size_t i = lo * out; i < hi * out; i++)
                y[i] += pj[i];
        }
        bias_act(l, y, (int)lo, (int)hi, 0, out);
        break;
    }
    case BY_COLUMNS:
        fnn_team_range((size_t)out, 16, &lo, &hi);
        fnn_sgemm(0, 0, n, (int)(hi - lo), in, 1.0f, x, in, w + lo, out, 0.0f, y + lo, out);
        bias_act(l, y, 0, n, (int)lo, (int)hi);
        break;
    }
}

/* dy becomes the gradient with respect to the pre-activation, on rows [lo, hi). */
static void relu_backward(const fnn_layer *l, const float *y, float *dy, size_t lo, size_t hi)
{
    if (l->cfg.dense.act != FNN_ACT_RELU)
        return;
    size_t out = (size_t)l->cfg.dense.units;
#pragma omp simd
    for (size_t i = lo * out; i < hi * out; i++)
        dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* db (out) = column sums of rows [lo, hi) of dy, columns [c0, c1). */
static void bias_grad(float *db, const float *dy, int out, size_t lo, size_t hi, size_t c0,
                      size_t c1)
{
    for (size_t c = c0; c < c1; c++)
        db[c] = 0.0f;
    for (size_t r = lo; r < hi; r++) {
        const float *row = dy + r * out;
#pragma omp simd
        for (size_t c = c0; c < c1; c++)
            db[c] += row[c];
    }
}

static void dense_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                           float *dy, float *dx, int n)
{
    int in = (int)fnn_shape_size(l->in), out = l->cfg.dense.units;
    const float *w = l->params; /* (in, out) */
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t lo, hi;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    relu_backward(l, y, dy, lo, hi);

    if (backward_split(l, nt) == BY_ROWS) {
        /* This thread's rows only: thread 0 writes the gradients, the others partials. */
        float *g = t ? l->team_scratch + (size_t)(t - 1) * l->nparams : l->grads;
        int rows = (int)(hi - lo);
        if (rows > 0)
            fnn_sgemm(1, 0, in, out, rows, 1.0f, x + lo * in, in, dy + lo * out, out, 0.0f, g,
                      out);
        else
            memset(g, 0, (size_t)in * out * sizeof *g);
        bias_grad(g + (size_t)in * out, dy, out, lo, hi, 0, (size_t)out);
        if (dx)
            fnn_sgemm(0, 1, rows, in, out, 1.0f, dy + lo * out, out, w, out, 0.0f, dx + lo * in,
                      in);
        return;
    }

    /* Splitting the input dimension lets each thread own rows of dW and columns of dx. */
    fnn_team_sync(p->sync);
    float *dw = l->grads;                    /* (in, out) */
    float *db = l->grads + (size_t)in * out; /* (out) */
    fnn_team_param_rows((size_t)in, &lo, &hi);
    int m = (int)(hi - lo);
    fnn_sgemm(1, 0, m, out, n, 1.0f, x + lo, in, dy, out, 0.0f, dw + lo * out, out);
    if (dx)
        fnn_sgemm(0, 1, n, m, out, 1.0f, dy, out, w + lo * out, out, 0.0f, dx + lo, in);
    fnn_team_param_rows((size_t)out, &lo, &hi);
    bias_grad(db, dy, out, 0, (size_t)n, lo, hi);
}

/* Adds the partial gradients of a row-shared backward pass, each thread its rows of the kernel
 * and bias: the rows the optimizer gives it next. */
static void dense_reduce(fnn_layer *l, const fnn_pass *p, int n)
{
    int nt = omp_get_num_threads();
    size_t in = fnn_shape_size(l->in), out = (size_t)l->cfg.dense.units, lo, hi;
    size_t ranges[2][2];
    fnn_team_param_rows(in, &lo, &hi);
    ranges[0][0] = lo * out;
    ranges[0][1] = hi * out;
    fnn_team_param_rows(out, &lo, &hi);
    ranges[1][0] = in * out + lo;
    ranges[1][1] = in * out + hi;
    for (int r = 0; r < 2; r++) {
        for (int j = 0; j < nt - 1; j++) {
            const float *part = l->team_scratch + (size_t)j * l->nparams;
#pragma omp simd
            for (size_t i = ranges[r][0]; i < ranges[r][1]; i++)
                l->grads[i] += part[i];
        }
    }
}

static unsigned dense_sharing(const fnn_layer *l, int n, int nt)
{
    static const unsigned fwd[] = {FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT, FNN_FWD_ROWS_OUT, 0};
    /* The activation's gradient comes before the barrier of a split-input pass. */
    unsigned bwd = FNN_BWD_ROWS_IN;
    bwd |= backward_split(l, nt) == BY_ROWS ? FNN_BWD_ROWS_OUT | FNN_BWD_PARTIAL : FNN_BWD_SYNCS;
    return fwd[forward_split(l, n, nt)] | bwd;
}

static void dense_tensor(const fnn_layer *l, int i, fnn_tensor *t)
{
    int in = (int)fnn_shape_size(l->in), out = l->cfg.dense.units;
    if (i == 0) {
        *t = (fnn_tensor){.rank = 2, .shape = {in, out}, .size = (size_t)in * out,
                          .data = l->params};
        snprintf(t->name, sizeof t->name, "layers.%d.kernel", l->index);
    } else {
        *t = (fnn_tensor){.rank = 1, .shape = {out}, .size = (size_t)out,
                          .data = l->params + (size_t)in * out};
        snprintf(t->name, sizeof t->name, "layers.%d.bias", l->index);
    }
}

static void dense_format(const fnn_layer *l, char *buf, size_t size)
{
    static const char *const names[] = {"linear", "relu", "softmax"};
    if (l->cfg.dense.act == FNN_ACT_LINEAR)
        snprintf(buf, size, "dense:%d", l->cfg.dense.units);
    else
        snprintf(buf, size, "dense:%d:%s", l->cfg.dense.units, names[l->cfg.dense.act]);
}

/* A following batchnorm's map goes between the bias and the ReLU (bias_fold_act), the ReLU
 * being this layer's own fused one. */
static int dense_fold(fnn_layer *l, const fnn_layer *bn, int relu)
{
    if (l->cfg.dense.act != FNN_ACT_LINEAR)
        return 0;
    l->fold = bn;
    if (relu)
        l->cfg.dense.act = FNN_ACT_RELU;
    return 1;
}

const fnn_layer_ops fnn_dense_ops = {
    .kind = "dense",
    .type = "Dense",
    .setup = dense_setup,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
    .tensor = dense_tensor,
    .format = dense_format,
    .sharing = dense_sharing,
    .reduce = dense_reduce,
    .fold = dense_fold,
};
