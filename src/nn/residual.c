/* Residual blocks: "residual" opens one and "end" closes it, so that the block's output is its
 * layers' output plus the block's input (He et al.). The opening layer passes its input on and
 * keeps it; the closing layer adds it back, and in the backward pass hands the gradient to the
 * shortcut, which the opening layer adds to the gradient coming back through the block. The
 * shortcut is the identity when the block keeps its input's shape, else a 1x1 convolution with
 * the stride that matches the sizes (ResNet's projection), whose weights belong to "end".
 * Threads share rows; the projection's gradients are per-thread partials summed by reduce. */
#include "nn/layer.h"
#include "util/error.h"
#include "util/gemm.h"
#include "util/team.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static fnn_status begin_setup(fnn_layer *l, fnn_error *err)
{
    l->out = l->in;
    return FNN_OK;
}

static void begin_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    size_t lo, hi;
    fnn_layer_row_elements(l, n, &lo, &hi);
    memcpy(y + lo, x + lo, (hi - lo) * sizeof *y);
}

/* dx = dy (through the block) + the shortcut's gradient, kept by the closing layer. */
static void begin_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                           float *dy, float *dx, int n)
{
    if (!dx)
        return;
    size_t lo, hi, size = fnn_shape_size(l->in);
    fnn_team_range((size_t)n, 1, &lo, &hi);
    const fnn_layer *end = l->partner; /* its scratch rows start with the shortcut's gradient */
    for (size_t r = lo; r < hi; r++) {
        const float *shortcut = end->scratch + r * end->scratch_per_sample;
#pragma omp simd
        for (size_t i = 0; i < size; i++)
            dx[r * size + i] = dy[r * size + i] + shortcut[i];
    }
}

/* The projection's sizes: input (ci, hi, wi) to output (co, ho, wo) with stride s. */
typedef struct {
    int ci, co, s;
    size_t in_size, hw; /* hi * wi * ci, ho * wo */
} projection;

static projection proj_of(const fnn_layer *l)
{
    const fnn_layer *b = l->partner;
    return (projection){b->in.c, l->in.c, b->in.h / l->in.h, fnn_shape_size(b->in),
                        (size_t)l->in.h * l->in.w};
}

static int projects(const fnn_layer *l)
{
    const fnn_layer *b = l->partner;
    return b->in.c != l->in.c || b->in.h != l->in.h || b->in.w != l->in.w;
}

static fnn_status end_setup(fnn_layer *l, fnn_error *err)
{
    const fnn_layer *b = l->partner;
    l->out = l->in;
    l->scratch_per_sample = fnn_shape_size(b->in); /* the shortcut's gradient */
    if (!projects(l))
        return FNN_OK;
    int s = b->in.h / l->in.h;
    if (s < 1 || b->in.h != s * l->in.h || b->in.w != s * l->in.w)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "residual block ending at layer %d: its layers turn (%d, %d, %d) into "
                        "(%d, %d, %d); a projection needs the sizes to shrink by a whole stride",
                        l->index, b->in.c, b->in.h, b->in.w, l->in.c, l->in.h, l->in.w);
    projection p = proj_of(l);
    l->nparams = (size_t)p.co * p.ci + (size_t)p.co;
    l->ntensors = 2;
    l->scratch_per_sample += (size_t)p.ci * p.hw;                 /* strided input */
    return FNN_OK;
}

/* The projection's partial gradients, one per thread past the first. */
static size_t end_team_floats(const fnn_layer *l, int team)
{
    return projects(l) ? (size_t)(team - 1) * l->nparams : 0;
}

static void end_init(fnn_layer *l, fnn_rng *rng)
{
    if (!projects(l))
        return;
    projection p = proj_of(l);
    float limit = sqrtf(6.0f / (float)p.ci); /* He uniform */
    for (size_t i = 0; i < (size_t)p.co * p.ci; i++)
        l->params[i] = (2.0f * fnn_rng_uniform(rng) - 1.0f) * limit;
    memset(l->params + (size_t)p.co * p.ci, 0, (size_t)p.co * sizeof *l->params);
}

/* This thread's images for the projection: its rows, as fnn_team_range(n, 1) gives them. */
static int proj_rows(int n, size_t *lo, size_t *hi)
{
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    *lo = (size_t)n * t / nt;
    *hi = (size_t)n * (t + 1) / nt;
    return t;
}

static void end_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    const float *input = l->partner->output; /* (n, partner in) kept by "residual" */
    size_t lo, hi;
    if (!projects(l)) {
        fnn_layer_row_elements(l, n, &lo, &hi);
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            y[i] = x[i] + input[i];
        return;
    }
    projection pr = proj_of(l);
    const float *w = l->params, *bias = l->params + (size_t)pr.co * pr.ci; /* (co, ci), (co) */
    size_t out = fnn_shape_size(l->out), wi = (size_t)l->partner->in.w, wo = (size_t)l->in.w;
    proj_rows(n, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        /* sub (ci, ho * wo): every s-th pixel of the block's input. */
        float *sub = l->scratch + r * l->scratch_per_sample + pr.in_size;
        const float *img = input + r * pr.in_size;
        for (int c = 0; c < pr.ci; c++)
            for (size_t j = 0; j < pr.hw; j++)
                sub[c * pr.hw + j] =
                    img[c * (pr.in_size / pr.ci) + (j / wo) * pr.s * wi + (j % wo) * pr.s];
        float *yr = y + r * out;
        for (int c = 0; c < pr.co; c++)
            for (size_t j = 0; j < pr.hw; j++)
                yr[c * pr.hw + j] = x[r * out + c * pr.hw + j] + bias[c];
        fnn_sgemm(0, 0, pr.co, (int)pr.hw, pr.ci, 1.0f, w, pr.ci, sub, (int)pr.hw, 1.0f, yr,
                  (int)pr.hw);
    }
}

static void end_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                         float *dy, float *dx, int n)
{
    size_t lo, hi;
    size_t skip = l->scratch_per_sample; /* per sample: shortcut gradient, then strided input */
    if (!projects(l)) {
        fnn_layer_row_elements(l, n, &lo, &hi);
        memcpy(l->scratch + lo, dy + lo, (hi - lo) * sizeof *dy);
        if (dx)
            memcpy(dx + lo, dy + lo, (hi - lo) * sizeof *dx);
        return;
    }
    projection pr = proj_of(l);
    size_t out = fnn_shape_size(l->out), wi = (size_t)l->partner->in.w, wo = (size_t)l->in.w;
    const float *w = l->params;
    int t = proj_rows(n, &lo, &hi);
    float *g = t ? l->team_scratch + (size_t)(t - 1) * l->nparams : l->grads;
    memset(g, 0, l->nparams * sizeof *g);
    for (size_t r = lo; r < hi; r++) {
        const float *dyr = dy + r * out;
        const float *sub = l->scratch + r * skip + pr.in_size;
        float *dskip = l->scratch + r * skip; /* (ci, hi, wi) */
        if (dx)
            memcpy(dx + r * out, dyr, out * sizeof *dx);
        /* dW (co, ci) += dy (co, hw) sub^T; db += row sums of dy. */
        fnn_sgemm(0, 1, pr.co, pr.ci, (int)pr.hw, 1.0f, dyr, (int)pr.hw, sub, (int)pr.hw, 1.0f,
                  g, pr.ci);
        for (int c = 0; c < pr.co; c++)
            for (size_t j = 0; j < pr.hw; j++)
                g[(size_t)pr.co * pr.ci + c] += dyr[c * pr.hw + j];
        /* The shortcut's gradient: W^T dy at the strided pixels, zero elsewhere. */
        memset(dskip, 0, pr.in_size * sizeof *dskip);
        float *dsub = l->scratch + r * skip + pr.in_size; /* sub is no longer needed */
        fnn_sgemm(1, 0, pr.ci, (int)pr.hw, pr.co, 1.0f, w, pr.ci, dyr, (int)pr.hw, 0.0f, dsub,
                  (int)pr.hw);
        for (int c = 0; c < pr.ci; c++)
            for (size_t j = 0; j < pr.hw; j++)
                dskip[c * (pr.in_size / pr.ci) + (j / wo) * pr.s * wi + (j % wo) * pr.s] =
                    dsub[c * pr.hw + j];
    }
}

/* Adds the projection's per-thread partial gradients over this thread's rows (output
 * channels) of the kernel and bias, the rows the optimizer gives it. */
static void end_reduce(fnn_layer *l, const fnn_pass *p, int n)
{
    int nt = omp_get_num_threads();
    projection pr = proj_of(l);
    size_t lo, hi, ranges[2][2];
    fnn_team_param_rows((size_t)pr.co, &lo, &hi);
    ranges[0][0] = lo * pr.ci;
    ranges[0][1] = hi * pr.ci;
    ranges[1][0] = (size_t)pr.co * pr.ci + lo;
    ranges[1][1] = (size_t)pr.co * pr.ci + hi;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < nt - 1; j++) {
            const float *part = l->team_scratch + (size_t)j * l->nparams;
            for (size_t i = ranges[k][0]; i < ranges[k][1]; i++)
                l->grads[i] += part[i];
        }
}

static void end_tensor(const fnn_layer *l, int i, fnn_tensor *t)
{
    projection p = proj_of(l);
    if (i == 0) {
        *t = (fnn_tensor){.rank = 4, .shape = {p.co, p.ci, 1, 1}, .size = (size_t)p.co * p.ci,
                          .data = l->params};
        snprintf(t->name, sizeof t->name, "layers.%d.kernel", l->index);
    } else {
        *t = (fnn_tensor){.rank = 1, .shape = {p.co}, .size = (size_t)p.co,
                          .data = l->params + (size_t)p.co * p.ci};
        snprintf(t->name, sizeof t->name, "layers.%d.bias", l->index);
    }
}

static unsigned rows(const fnn_layer *l, int n, int nt)
{
    return FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT | FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT;
}

/* The projection shares images by rows too; its gradients are partials. */
static unsigned end_sharing(const fnn_layer *l, int n, int nt)
{
    return rows(l, n, nt) | (projects(l) ? FNN_BWD_PARTIAL : 0);
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
    .init = end_init,
    .forward = end_forward,
    .backward = end_backward,
    .tensor = end_tensor,
    .format = end_format,
    .sharing = end_sharing,
    .reduce = end_reduce,
    .team_floats = end_team_floats,
};
