/* Gradient checks: every layer and the fused loss against central differences of an independent
 * double-precision re-implementation of the forward pass, with one and two threads, on flat and
 * on 3-channel image inputs (convolutions on both paths, pooling, batch norm, residual blocks,
 * the model's input normalisation); the dropout mask's statistics and determinism; one Adam and
 * SGD step against hand-computed values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <omp.h>

#include "fnn.h"
#include "model/exec.h"
#include "model/model.h"
#include "nn/layer.h"
#include "optim/optim.h"
#include "util/rng.h"
#include "util/team.h"
#include "check.h"

/* Central-difference step on the double reference: its truncation error (~H^2) and rounding
 * error (~1e-16 / H) are both far below the float analytic gradient's own error. */
#define FD_STEP 1e-5
/* max|analytic - reference| / max|reference| for a float gradient against the double one. */
#define GRAD_TOL 1e-4
/* Kinks are avoided on purpose: every ReLU pre-activation is at least this far from 0 (samples
 * that come closer are re-drawn). A step of FD_STEP moves a pre-activation by at most
 * FD_STEP * (largest |input| or |weight| times fan-in), far less than this, so no finite
 * difference straddles a kink, and float rounding (~1e-7) cannot put the model's ReLU on the
 * other side from the reference's. */
#define KINK_MARGIN 1e-3
/* A gradient whose largest entry is below this is treated as missing: the check fails. */
#define NONTRIVIAL 1e-5
/* Two threads against one: the products are split differently, so allow rounding only. */
#define THREAD_TOL 1e-6

/* ---------------------------------------------------------------- comparisons */

/* 1 when analytic gradient a matches reference b: both non-trivial and close. */
static int grad_ok(const float *a, const double *b, size_t n, double tol, double *err)
{
    *err = rel_err(a, b, n);
    return max_abs_d(b, n) > NONTRIVIAL && max_abs_f(a, n) > NONTRIVIAL && *err < tol;
}

static void expect_grad(const char *what, const float *a, const double *b, size_t n,
                        double tol, double *worst)
{
    double err;
    int ok = grad_ok(a, b, n, tol, &err);
    if (!ok)
        print_message("%s: analytic max %.3g, reference max %.3g, relative error %.3g "
                      "(tolerance %.3g)\n", what, max_abs_f(a, n), max_abs_d(b, n), err, tol);
    assert_true(ok);
    if (worst)
        *worst = fmax(*worst, err);
}

/* ---------------------------------------------------------------- the double reference */

/* The model's forward pass and mean cross-entropy re-done in double, written for clarity. It
 * reads the layer stack (types, sizes, where each layer's parameters sit in the arena) but
 * none of the library's arithmetic; dropout reuses the masks the model drew. */
typedef struct {
    const fnn_model *m;
    int n;                 /* batch rows */
    int train;             /* 1: apply the dropout masks */
    const uint8_t *labels; /* (n) */
    double *params;        /* (arena_size) the model's parameters, same layout as m->params */
    double *x;             /* (n, input) */
    float **masks;         /* (nlayers) copy of a dropout layer's mask (n, size); else NULL */
    double *a, *b;         /* (n, widest) activations, ping-pong */
    double *saved;         /* (n, widest) a residual block's input, kept for its end */
    double *logits;        /* (n, classes) written by ref_loss */
    double *margin;        /* (n) smallest |pre-activation| of any ReLU unit of each sample */
    long relu_on, relu_off; /* ReLU pre-activations above and below 0 */
} ref_net;

static int is_kind(const fnn_layer *l, const char *kind) { return !strcmp(l->ops->kind, kind); }

static size_t widest(const fnn_model *m)
{
    size_t w = fnn_shape_size(m->input);
    for (int i = 0; i < m->nlayers; i++)
        if (fnn_shape_size(m->layers[i].out) > w)
            w = fnn_shape_size(m->layers[i].out);
    return w;
}

/* TensorFlow's 'same' padding before the first row (or column) of an axis of length in. */
static int same_pad_before(int in, int out, int k, int s)
{
    int total = (out - 1) * s + k - in;
    return total > 0 ? total / 2 : 0;
}

/* Direct convolution of one layer, in double, with its fused activation. */
static void ref_conv(ref_net *r, const fnn_layer *l, const double *cur, double *next)
{
    const fnn_model *m = r->m;
    int f = l->cfg.conv.filters, k = l->cfg.conv.kernel, st = l->cfg.conv.stride;
    int c = l->in.c, h = l->in.h, w = l->in.w, oh = l->out.h, ow = l->out.w;
    int pt = l->cfg.conv.same ? same_pad_before(h, oh, k, st) : 0;
    int pl = l->cfg.conv.same ? same_pad_before(w, ow, k, st) : 0;
    const double *wt = r->params + (l->params - m->params); /* (f, c, k, k) */
    const double *bias = wt + (size_t)f * c * k * k;        /* (f) when the layer has one */
    size_t in = fnn_shape_size(l->in), out = fnn_shape_size(l->out);
    for (int s = 0; s < r->n; s++)
        for (int o = 0; o < f; o++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    double z = l->cfg.conv.bias ? bias[o] : 0.0;
                    for (int ch = 0; ch < c; ch++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = y * st - pt + ky, ix = x * st - pl + kx;
                                if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                    z += cur[s * in + ((size_t)ch * h + iy) * w + ix] *
                                         wt[(((size_t)o * c + ch) * k + ky) * k + kx];
                            }
                    if (l->cfg.conv.act == FNN_ACT_RELU) {
                        r->margin[s] = fmin(r->margin[s], fabs(z));
                        if (z > 0)
                            r->relu_on++;
                        else
                            r->relu_off++;
                        z = z > 0 ? z : 0;
                    }
                    next[s * out + ((size_t)o * oh + y) * ow + x] = z;
                }
}

/* Max, average or global average pooling; a max window's two largest entries closer than the
 * kink margin count against the sample's margin, as a ReLU input near 0 does. */
static void ref_pool(ref_net *r, const fnn_layer *l, const double *cur, double *next)
{
    int global = is_kind(l, "globalavgpool"), max = is_kind(l, "maxpool");
    int c = l->in.c, h = l->in.h, w = l->in.w, oh = l->out.h, ow = l->out.w;
    int size = global ? h : l->cfg.pool.size, st = global ? 1 : l->cfg.pool.stride;
    int sw = global ? w : size;
    size_t in = fnn_shape_size(l->in), out = fnn_shape_size(l->out);
    for (int s = 0; s < r->n; s++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    double best = -INFINITY, second = -INFINITY, sum = 0.0;
                    for (int ky = 0; ky < size; ky++)
                        for (int kx = 0; kx < sw; kx++) {
                            double v = cur[s * in + ((size_t)ch * h + y * st + ky) * w +
                                           x * st + kx];
                            sum += v;
                            if (v > best) {
                                second = best;
                                best = v;
                            } else if (v > second) {
                                second = v;
                            }
                        }
                    if (max && size * sw > 1)
                        r->margin[s] = fmin(r->margin[s], best - second);
                    next[s * out + ((size_t)ch * oh + y) * ow + x] =
                        max ? best : sum / (double)(size * sw);
                }
}

/* Keras batch normalisation: the batch's biased statistics in training, the moving ones in
 * eval mode. */
static void ref_batchnorm(ref_net *r, const fnn_layer *l, const double *cur, double *next)
{
    const fnn_model *m = r->m;
    int c = l->in.c;
    size_t plane = (size_t)l->in.h * l->in.w, in = fnn_shape_size(l->in);
    const double *gamma = r->params + (l->params - m->params), *beta = gamma + c;
    const double *mmean = beta + c, *mvar = mmean + c;
    for (int ch = 0; ch < c; ch++) {
        double mean = mmean[ch], var = mvar[ch];
        if (r->train) {
            double sum = 0.0, sq = 0.0, count = (double)r->n * plane;
            for (int s = 0; s < r->n; s++)
                for (size_t i = 0; i < plane; i++)
                    sum += cur[s * in + ch * plane + i];
            mean = sum / count;
            for (int s = 0; s < r->n; s++)
                for (size_t i = 0; i < plane; i++) {
                    double d = cur[s * in + ch * plane + i] - mean;
                    sq += d * d;
                }
            var = sq / count;
        }
        double scale = gamma[ch] / sqrt(var + (double)l->cfg.bn.eps);
        for (int s = 0; s < r->n; s++)
            for (size_t i = 0; i < plane; i++)
                next[s * in + ch * plane + i] =
                    (cur[s * in + ch * plane + i] - mean) * scale + beta[ch];
    }
}

/* A residual block's end: the block's output plus its input, through the strided 1x1
 * projection (co, ci) and its bias when the shapes differ. */
static void ref_end(ref_net *r, const fnn_layer *l, const double *cur, double *next)
{
    const fnn_model *m = r->m;
    const fnn_layer *b = l->partner;
    size_t out = fnn_shape_size(l->out), in = fnn_shape_size(b->in);
    int proj = l->nparams > 0, co = l->in.c, ci = b->in.c, oh = l->in.h, ow = l->in.w;
    int st = b->in.h / l->in.h;
    const double *wt = r->params + (l->params - m->params), *bias = wt + (size_t)co * ci;
    for (int s = 0; s < r->n; s++)
        for (size_t i = 0; i < out; i++) {
            double z = cur[s * out + i];
            if (!proj) {
                z += r->saved[s * in + i];
            } else {
                int o = (int)(i / ((size_t)oh * ow)), y = (int)(i / ow % oh), x = (int)(i % ow);
                z += bias[o];
                for (int ch = 0; ch < ci; ch++)
                    z += wt[(size_t)o * ci + ch] *
                         r->saved[s * in + ((size_t)ch * b->in.h + y * st) * b->in.w + x * st];
            }
            next[s * out + i] = z;
        }
}

static double ref_loss(ref_net *r)
{
    const fnn_model *m = r->m;
    int n = r->n;
    size_t width = fnn_shape_size(m->input);
    double *cur = r->a, *next = r->b;
    memcpy(cur, r->x, (size_t)n * width * sizeof *cur);
    /* The model's input normalisation, (x - mean) / std per channel, before the first layer. */
    if (m->normalized) {
        size_t plane = (size_t)m->input.h * m->input.w;
        for (size_t e = 0; e < (size_t)n * width; e++) {
            int ch = (int)(e % width / plane);
            cur[e] = (cur[e] - m->norm_mean[ch]) / m->norm_std[ch];
        }
    }
    for (int s = 0; s < n; s++)
        r->margin[s] = INFINITY;
    r->relu_on = r->relu_off = 0;

    for (int i = 0; i < m->nlayers; i++) {
        const fnn_layer *l = &m->layers[i];
        int swap = 1;
        if (is_kind(l, "dense")) {
            size_t in = width, out = (size_t)l->cfg.dense.units;
            const double *w = r->params + (l->params - m->params); /* (in, out) */
            const double *bias = w + in * out;                     /* (out) */
            int relu = l->cfg.dense.act == FNN_ACT_RELU;
            for (int s = 0; s < n; s++) {
                for (size_t j = 0; j < out; j++) {
                    double z = bias[j];
                    for (size_t k = 0; k < in; k++)
                        z += cur[s * in + k] * w[k * out + j];
                    if (relu) {
                        r->margin[s] = fmin(r->margin[s], fabs(z));
                        if (z > 0)
                            r->relu_on++;
                        else
                            r->relu_off++;
                        z = z > 0 ? z : 0;
                    }
                    next[s * out + j] = z;
                }
            }
        } else if (is_kind(l, "conv2d")) {
            ref_conv(r, l, cur, next);
        } else if (is_kind(l, "maxpool") || is_kind(l, "avgpool") ||
                   is_kind(l, "globalavgpool")) {
            ref_pool(r, l, cur, next);
        } else if (is_kind(l, "batchnorm")) {
            ref_batchnorm(r, l, cur, next);
        } else if (is_kind(l, "activation") && l->cfg.act.kind == FNN_ACT_RELU) {
            for (size_t e = 0; e < (size_t)n * width; e++) {
                double z = cur[e];
                r->margin[e / width] = fmin(r->margin[e / width], fabs(z));
                if (z > 0)
                    r->relu_on++;
                else
                    r->relu_off++;
                next[e] = z > 0 ? z : 0;
            }
        } else if (is_kind(l, "residual")) {
            memcpy(r->saved, cur, (size_t)n * width * sizeof *cur);
            swap = 0;
        } else if (is_kind(l, "end")) {
            ref_end(r, l, cur, next);
        } else if (is_kind(l, "dropout")) {
            if (r->train && l->cfg.dropout.rate > 0.0f) {
                assert_non_null(r->masks[i]);
                for (size_t e = 0; e < (size_t)n * width; e++)
                    cur[e] *= r->masks[i][e];
            }
            swap = 0;
        } else if (is_kind(l, "flatten")) {
            swap = 0;
        } else {
            fail_msg("the reference knows no layer \"%s\": add it here", l->ops->kind);
        }
        if (swap) {
            double *t = cur;
            cur = next;
            next = t;
        }
        width = fnn_shape_size(l->out);
    }

    int k = m->nclasses;
    assert_int_equal(width, k);
    memcpy(r->logits, cur, (size_t)n * k * sizeof *cur);
    double loss = 0.0;
    for (int s = 0; s < n; s++) {
        const double *z = cur + (size_t)s * k;
        double mx = z[0], sum = 0.0;
        for (int j = 1; j < k; j++)
            mx = fmax(mx, z[j]);
        for (int j = 0; j < k; j++)
            sum += exp(z[j] - mx);
        loss += mx + log(sum) - z[r->labels[s]];
    }
    return loss / n;
}

/* Central differences of ref_loss with respect to v[0..count), which lies inside r. */
static void ref_fd(ref_net *r, double *v, size_t count, double *g)
{
    for (size_t i = 0; i < count; i++) {
        double save = v[i];
        v[i] = save + FD_STEP;
        double lp = ref_loss(r);
        v[i] = save - FD_STEP;
        double lm = ref_loss(r);
        v[i] = save;
        g[i] = (lp - lm) / (2.0 * FD_STEP);
    }
}

/* ---------------------------------------------------------------- running the model */

/* Forward, loss and backward, outside a parallel region (threads == 1: the team functions'
 * one-thread path) or in a team of `threads`, where each thread takes a share of the loss rows
 * as the training loop would. Returns the mean loss. */
static double model_step(fnn_exec *e, const fnn_pass *pass, const float *x,
                         const uint8_t *labels, int n, float *dx, int threads)
{
    float *dlogits = fnn_exec_logit_grad(e);
    int k = e->m->nclasses;
    double loss = 0.0;
    if (threads == 1) {
        const float *logits = fnn_exec_forward(e, pass, x, n);
        int hits;
        fnn_softmax_xent(logits, labels, n, k, 0.0f, 0, (size_t)n, dlogits, &loss, &hits);
        fnn_exec_backward(e, pass, x, n, dx);
        return loss / n;
    }
    int team = 0;
    fnn_blas_single_threaded();
#pragma omp parallel num_threads(threads)
    {
#pragma omp master
        team = omp_get_num_threads();
        const float *logits = fnn_exec_forward(e, pass, x, n);
        size_t lo, hi;
        fnn_team_range((size_t)n, 1, &lo, &hi);
        double part;
        int hits;
        fnn_softmax_xent(logits, labels, n, k, 0.0f, lo, hi, dlogits, &part, &hits);
#pragma omp atomic
        loss += part;
#pragma omp barrier
        fnn_exec_backward(e, pass, x, n, dx);
    }
    assert_int_equal(team, threads); /* else the test would not test threads */
    return loss / n;
}

/* ---------------------------------------------------------------- the gradient check */

typedef struct {
    const char *spec;
    int c, h, w;  /* input shape */
    int n;        /* batch */
    int train;    /* 1: dropout active, batch norm on the batch's statistics */
    uint64_t seed;
    int normalize; /* 1: the model's input normalisation is on (per-channel mean and std) */
} gc_case;

typedef struct {
    float *grads;   /* (arena_size) the model's analytic parameter gradients */
    float *dx;      /* (n, input) analytic input gradient */
    float *logits;  /* (n, classes) */
    double loss;
    double worst;   /* largest relative error of any checked tensor */
} gc_result;

static void gc_result_free(gc_result *res)
{
    free(res->grads);
    free(res->dx);
    free(res->logits);
}

static void draw_sample(fnn_rng *rng, float *xf, double *xd, size_t in)
{
    for (size_t i = 0; i < in; i++) {
        xf[i] = 2.0f * fnn_rng_uniform(rng) - 1.0f;
        xd[i] = xf[i];
    }
}

/* Builds the case's model and batch, runs the model with `threads`, and checks the loss, the
 * logits, every parameter gradient and the input gradient against the double reference. */
static void run_gradcheck(const gc_case *gc, int threads, gc_result *res)
{
    fnn_error err;
    fnn_model *m = fnn_model_create(gc->spec, gc->c, gc->h, gc->w, &err);
    if (!m)
        fail_msg("%s: %s", gc->spec, err.msg);
    int n = gc->n, k = m->nclasses;
    size_t in = fnn_shape_size(m->input), arena = m->arena_size;
    if (gc->normalize) {
        /* Away from (0, 1), so that a step that left out the mean or the 1 / std shows. */
        float mean[8], std[8];
        assert_true(gc->c <= 8);
        for (int ch = 0; ch < gc->c; ch++) {
            mean[ch] = 0.1f + 0.2f * (float)ch;
            std[ch] = 0.3f + 0.25f * (float)ch;
        }
        assert_int_equal(fnn_model_set_normalization(m, mean, std, &err), FNN_OK);
    }
    fnn_exec *ex;
    assert_int_equal(fnn_exec_create(m, n, threads, m->grads, &ex, &err), FNN_OK);

    /* Glorot kernels; biases are made non-zero so that their gradients carry information. */
    fnn_rng rng;
    fnn_rng_seed(&rng, gc->seed);
    fnn_model_init(m, gc->seed);
    size_t covered = 0;
    for (int t = 0; t < fnn_model_num_tensors(m); t++) {
        fnn_tensor tt;
        fnn_model_tensor(m, t, &tt);
        covered += tt.size;
        /* Batch norm's gamma and moving variance stay positive, away from 0. */
        int positive = strstr(tt.name, "gamma") || strstr(tt.name, "moving_variance");
        if (tt.rank == 1)
            for (size_t i = 0; i < tt.size; i++)
                tt.data[i] = positive ? 0.6f + 0.8f * fnn_rng_uniform(&rng)
                                      : 0.4f * fnn_rng_uniform(&rng) - 0.2f;
    }
    assert_int_equal(covered, fnn_model_num_params(m)); /* the tensors cover every parameter */

    float *x = malloc((size_t)n * in * sizeof *x);          /* (n, input) */
    float *dx = malloc((size_t)n * in * sizeof *dx);        /* (n, input) */
    uint8_t *labels = malloc((size_t)n);                    /* (n) */
    ref_net r = {.m = m, .n = n, .train = gc->train, .labels = labels};
    size_t wide = widest(m);
    r.params = malloc(arena * sizeof *r.params);
    r.x = malloc((size_t)n * in * sizeof *r.x);
    r.masks = calloc((size_t)m->nlayers, sizeof *r.masks);
    r.a = malloc((size_t)n * wide * sizeof *r.a);
    r.b = malloc((size_t)n * wide * sizeof *r.b);
    r.saved = malloc((size_t)n * wide * sizeof *r.saved);
    r.logits = malloc((size_t)n * k * sizeof *r.logits);
    r.margin = malloc((size_t)n * sizeof *r.margin);
    double *gref = calloc(arena, sizeof *gref);             /* (arena_size) */
    double *gxref = malloc((size_t)n * in * sizeof *gxref); /* (n, input) */
    assert_true(x && dx && labels && r.params && r.x && r.masks && r.a && r.b && r.saved && r.logits &&
                r.margin && gref && gxref);
    for (size_t i = 0; i < arena; i++)
        r.params[i] = m->params[i];
    for (int s = 0; s < n; s++) {
        draw_sample(&rng, x + (size_t)s * in, r.x + (size_t)s * in, in);
        labels[s] = (uint8_t)fnn_rng_below(&rng, (uint32_t)k);
    }

    /* The dropout masks depend on the key, the layer and the batch size, not on the data:
     * one forward pass draws them for the reference. */
    fnn_pass pass = {.train = gc->train, .key = fnn_hash64(gc->seed ^ 0xD0u)};
    fnn_exec_forward(ex, &pass, x, n);
    for (int i = 0; i < m->nlayers; i++) {
        const fnn_layer *l = &ex->layers[i];
        if (is_kind(l, "dropout") && gc->train) {
            size_t size = (size_t)n * fnn_shape_size(l->in);
            r.masks[i] = malloc(size * sizeof *r.masks[i]);
            assert_non_null(r.masks[i]);
            memcpy(r.masks[i], l->scratch, size * sizeof *r.masks[i]);
        }
    }

    /* Re-draw the samples that come within KINK_MARGIN of a ReLU kink. */
    for (int round = 0;; round++) {
        assert_true(round < 100);
        ref_loss(&r);
        int redrawn = 0;
        for (int s = 0; s < n; s++) {
            if (r.margin[s] < KINK_MARGIN) {
                draw_sample(&rng, x + (size_t)s * in, r.x + (size_t)s * in, in);
                redrawn++;
            }
        }
        if (!redrawn)
            break;
    }
    double loss_ref = ref_loss(&r);
    if (strstr(gc->spec, "relu"))
        assert_true(r.relu_on > 0 && r.relu_off > 0); /* both sides of the kink are exercised */

    /* Backward must overwrite the gradients, not add to what was there. */
    for (size_t i = 0; i < arena; i++)
        m->grads[i] = 7.0f;
    for (size_t i = 0; i < (size_t)n * in; i++)
        dx[i] = 7.0f;
    double loss = model_step(ex, &pass, x, labels, n, dx, threads);

    /* Same key, same mask, whatever the thread count. */
    for (int i = 0; i < m->nlayers; i++)
        if (r.masks[i])
            assert_memory_equal(r.masks[i], ex->layers[i].scratch,
                                (size_t)n * fnn_shape_size(m->layers[i].in) * sizeof(float));

    const float *logits = ex->act[m->src[m->nlayers]];
    double worst = 0.0;
    expect_grad("logits", logits, r.logits, (size_t)n * k, 1e-5, NULL);
    if (!(fabs(loss - loss_ref) < 1e-5 * fmax(1.0, loss_ref)))
        fail_msg("%s: loss %.9g, reference %.9g", gc->spec, loss, loss_ref);

    for (int t = 0; t < fnn_model_num_tensors(m); t++) {
        fnn_tensor tt;
        fnn_model_tensor(m, t, &tt);
        if (tt.frozen) /* moving statistics: the optimizer never reads a gradient of them */
            continue;
        size_t off = (size_t)(tt.data - m->params);
        ref_fd(&r, r.params + off, tt.size, gref + off);
        char what[128];
        snprintf(what, sizeof what, "%s: d loss / d %s (%d threads)", gc->spec, tt.name,
                 threads);
        expect_grad(what, m->grads + off, gref + off, tt.size, GRAD_TOL, &worst);
    }
    ref_fd(&r, r.x, (size_t)n * in, gxref);
    char what[128];
    snprintf(what, sizeof what, "%s: d loss / d x (%d threads)", gc->spec, threads);
    expect_grad(what, dx, gxref, (size_t)n * in, GRAD_TOL, &worst);
    print_message("%-58s n=%-3d train=%d threads=%d: worst relative gradient error %.2e\n",
                  gc->spec, n, gc->train, threads, worst);

    /* The check itself can fail: one wrong entry, or no gradient at all, is caught. */
    {
        double e;
        const fnn_layer *last = &m->layers[m->nlayers - 1];
        size_t off = (size_t)(last->grads - m->grads);
        float save = m->grads[off];
        m->grads[off] += (float)(10 * GRAD_TOL * max_abs_d(gref + off, last->nparams));
        assert_false(grad_ok(m->grads + off, gref + off, last->nparams, GRAD_TOL, &e));
        m->grads[off] = save;
        float *zeros = calloc((size_t)n * in, sizeof *zeros);
        assert_non_null(zeros);
        assert_false(grad_ok(zeros, gxref, (size_t)n * in, GRAD_TOL, &e));
        free(zeros);
    }

    if (res) {
        res->grads = malloc(arena * sizeof *res->grads);
        res->dx = malloc((size_t)n * in * sizeof *res->dx);
        res->logits = malloc((size_t)n * k * sizeof *res->logits);
        assert_true(res->grads && res->dx && res->logits);
        memcpy(res->grads, m->grads, arena * sizeof *res->grads);
        memcpy(res->dx, dx, (size_t)n * in * sizeof *res->dx);
        memcpy(res->logits, logits, (size_t)n * k * sizeof *res->logits);
        res->loss = loss;
        res->worst = worst;
    }

    for (int i = 0; i < m->nlayers; i++)
        free(r.masks[i]);
    free(r.masks);
    free(r.params);
    free(r.x);
    free(r.a);
    free(r.b);
    free(r.saved);
    free(r.logits);
    free(r.margin);
    free(gref);
    free(gxref);
    free(x);
    free(dx);
    free(labels);
    fnn_exec_free(ex);
    fnn_model_free(m);
}

/* ---------------------------------------------------------------- layer tests */

/* Dense with relu, linear and softmax (= linear logits) activations, dropout in training mode,
 * flatten, and the fused loss, all in one stack. */
static void test_dense_relu_dropout_softmax(void **state)
{
    gc_case gc = {"flatten dense:7:relu dropout:0.3 dense:5:relu dense:4:softmax", 1, 3, 3, 5,
                  1, 11, 0};
    run_gradcheck(&gc, 1, NULL);
    gc.seed = 12;
    gc.n = 8;
    run_gradcheck(&gc, 1, NULL);
}

/* In evaluation mode dropout is the identity, in both directions. */
static void test_eval_mode(void **state)
{
    gc_case gc = {"flatten dense:7:relu dropout:0.3 dense:5:relu dense:4:softmax", 1, 3, 3, 5,
                  0, 21, 0};
    run_gradcheck(&gc, 1, NULL);
}

static void test_dense_linear(void **state)
{
    gc_case gc = {"flatten dense:6 dense:5:linear dense:3", 2, 2, 2, 4, 1, 31, 0};
    run_gradcheck(&gc, 1, NULL);
}

/* Dropout on the input itself: its backward is the only way to the input gradient. A dense
 * layer reading a (c, h, w) input flattens it implicitly; a flatten in the middle is an alias. */
static void test_dropout_first_and_flatten_between(void **state)
{
    gc_case first = {"dropout:0.5 flatten dense:6:relu dense:3", 1, 2, 3, 6, 1, 41, 0};
    run_gradcheck(&first, 1, NULL);
    gc_case middle = {"dense:6:relu flatten dense:5:relu dropout:0.2 flatten dense:3", 2, 2, 2,
                      5, 1, 42, 0};
    run_gradcheck(&middle, 1, NULL);
}

/* Two threads must give the one-thread gradients up to rounding, and both must pass the check.
 * Layers wider than 16 units are split between the threads; batches of at least 128 rows take
 * dense's row-split path. */
static void check_threads(int n, uint64_t seed)
{
    gc_case gc = {"flatten dense:20:relu dropout:0.25 dense:18:relu dense:6", 1, 6, 6, n, 1,
                  seed, 0};
    gc_result one, two;
    run_gradcheck(&gc, 1, &one);
    run_gradcheck(&gc, 2, &two);

    fnn_error err;
    fnn_model *m = fnn_model_create(gc.spec, gc.c, gc.h, gc.w, &err);
    assert_non_null(m);
    size_t in = fnn_shape_size(m->input);
    double d_grad = 0.0, d_dx = 0.0, d_logit = 0.0;
    for (int t = 0; t < fnn_model_num_tensors(m); t++) {
        fnn_tensor tt;
        fnn_model_tensor(m, t, &tt);
        size_t off = (size_t)(tt.data - m->params);
        double scale = fmax(1.0, max_abs_f(one.grads + off, tt.size));
        for (size_t i = 0; i < tt.size; i++)
            d_grad = fmax(d_grad, fabs(one.grads[off + i] - two.grads[off + i]) / scale);
    }
    for (size_t i = 0; i < (size_t)n * in; i++)
        d_dx = fmax(d_dx, fabs(one.dx[i] - two.dx[i]));
    size_t nk = (size_t)n * m->nclasses;
    double lscale = fmax(1.0, max_abs_f(one.logits, nk));
    for (size_t i = 0; i < nk; i++)
        d_logit = fmax(d_logit, fabs(one.logits[i] - two.logits[i]) / lscale);
    print_message("n=%d: 2 threads vs 1, relative to scale: logits %.2e, parameter gradients "
                  "%.2e, dx %.2e, loss %.2e\n", n, d_logit, d_grad, d_dx, fabs(one.loss - two.loss));
    assert_true(d_logit < THREAD_TOL);
    assert_true(d_grad < THREAD_TOL);
    assert_true(d_dx < THREAD_TOL);
    assert_true(fabs(one.loss - two.loss) < THREAD_TOL);
    fnn_model_free(m);
    gc_result_free(&one);
    gc_result_free(&two);
}

static void test_two_threads_column_split(void **state) { check_threads(9, 51); }
static void test_two_threads_row_split(void **state) { check_threads(130, 52); }

/* ---------------------------------------------------------------- 3-channel inputs */

/* Colour images through every layer type, with one thread and two. */
static void colour_case(const char *spec, int h, int n, int train, uint64_t seed, int normalize)
{
    gc_case gc = {spec, 3, h, h, n, train, seed, normalize};
    run_gradcheck(&gc, 1, NULL);
    run_gradcheck(&gc, 2, NULL);
}

/* 3x3 'same' (im2col on 3 channels), then Winograd (3x3 stride 1 over 4 channels), max
 * pooling, a stride-2 'same' convolution (asymmetric pads) and dense after flatten. */
static void test_colour_convolutions(void **state)
{
    colour_case("conv2d:4:3:same:relu conv2d:5:3:same maxpool:2 conv2d:4:3:s2:same:relu "
                "flatten dense:3", 8, 4, 1, 61, 0);
}

/* 'valid' convolution, average pooling, batch norm (training: the batch's statistics; eval:
 * the moving ones), a separate ReLU and global average pooling. */
static void test_colour_pools_batchnorm(void **state)
{
    /* No bias before batch norm in training, which subtracts the batch mean and with it any
     * bias: its gradient would be rounding noise. */
    const char *spec = "conv2d:4:3:nobias avgpool:2 batchnorm relu conv2d:4:1 globalavgpool "
                       "dense:3";
    colour_case(spec, 9, 5, 1, 62, 0);
    colour_case(spec, 9, 5, 0, 63, 0);
}

/* A residual block that halves the size and changes the channels: the strided 1x1 projection;
 * and one that keeps them: the identity shortcut. */
static void test_colour_residual(void **state)
{
    colour_case("conv2d:4:3:same residual conv2d:6:3:s2:same:relu conv2d:6:3:same end "
                "flatten dense:3", 6, 3, 1, 64, 0);
    colour_case("residual conv2d:3:3:same:relu conv2d:3:3:same end flatten dense:8:relu "
                "dense:3", 5, 4, 1, 65, 0);
}

/* The model's input normalisation: d loss / d x goes through 1 / std of each channel. */
static void test_colour_normalization(void **state)
{
    colour_case("conv2d:4:3:same:relu conv2d:5:3:same maxpool:2 flatten dense:3", 6, 4, 1, 66,
                1);
    colour_case("flatten dense:8:relu dense:3", 4, 5, 1, 67, 1);
}

/* ---------------------------------------------------------------- the fused loss */

static double ref_xent(const double *z, const uint8_t *labels, int n, int k)
{
    double loss = 0.0;
    for (int s = 0; s < n; s++) {
        const double *row = z + (size_t)s * k;
        double mx = row[0], sum = 0.0;
        for (int j = 1; j < k; j++)
            mx = fmax(mx, row[j]);
        for (int j = 0; j < k; j++)
            sum += exp(row[j] - mx);
        loss += mx + log(sum) - row[labels[s]];
    }
    return loss / n;
}

/* fnn_softmax_xent's gradient is d(mean loss)/d(logits); its loss is the row sum; row ranges
 * compose; the correct count is the argmax's. Logits are shifted by a large constant in the
 * second round: softmax is shift-invariant and must not overflow. */
static void test_softmax_xent_gradient(void **state)
{
    enum { N = 6, K = 5 };
    fnn_rng rng;
    fnn_rng_seed(&rng, 61);
    for (int round = 0; round < 2; round++) {
        float z[N * K], d[N * K], d2[N * K], p[N * K];
        double zd[N * K], gref[N * K];
        uint8_t labels[N];
        for (int i = 0; i < N * K; i++) {
            z[i] = 4.0f * fnn_rng_uniform(&rng) - 2.0f + (round ? 200.0f : 0.0f);
            zd[i] = z[i];
        }
        int correct_ref = 0;
        for (int s = 0; s < N; s++) {
            labels[s] = (uint8_t)fnn_rng_below(&rng, K);
            int best = 0;
            for (int j = 1; j < K; j++)
                if (z[s * K + j] > z[s * K + best])
                    best = j;
            correct_ref += best == labels[s];
        }
        double sum;
        int correct;
        fnn_softmax_xent(z, labels, N, K, 0.0f, 0, N, d, &sum, &correct);
        double loss_ref = ref_xent(zd, labels, N, K);
        for (int i = 0; i < N * K; i++) {
            double save = zd[i];
            zd[i] = save + FD_STEP;
            double lp = ref_xent(zd, labels, N, K);
            zd[i] = save - FD_STEP;
            double lm = ref_xent(zd, labels, N, K);
            zd[i] = save;
            gref[i] = (lp - lm) / (2.0 * FD_STEP);
        }
        double e;
        int ok = grad_ok(d, gref, N * K, GRAD_TOL, &e);
        print_message("softmax_xent (logits + %d): loss %.9g vs %.9g, gradient relative error "
                      "%.2e\n", round ? 200 : 0, sum / N, loss_ref, e);
        assert_true(ok);
        assert_true(fabs(sum / N - loss_ref) < 1e-6 * fmax(1.0, loss_ref));
        assert_int_equal(correct, correct_ref);

        /* Rows [0, 2) and [2, N) separately: same gradient, losses and hits add up. */
        double s1, s2;
        int c1, c2;
        fnn_softmax_xent(z, labels, N, K, 0.0f, 0, 2, d2, &s1, &c1);
        fnn_softmax_xent(z, labels, N, K, 0.0f, 2, N, d2, &s2, &c2);
        assert_memory_equal(d, d2, sizeof d);
        assert_true(fabs(s1 + s2 - sum) < 1e-12 * fmax(1.0, sum));
        assert_int_equal(c1 + c2, correct);

        /* Each gradient row is (softmax - onehot) / n, so softmax_rows must agree with it. */
        fnn_softmax_rows(z, K, 0, N, p);
        for (int s = 0; s < N; s++)
            for (int j = 0; j < K; j++)
                assert_true(fabsf(p[s * K + j] - (j == labels[s]) - N * d[s * K + j]) < 1e-6f);
    }
}

/* A confident mistake: the probability underflows, and the loss is bounded as Keras bounds it
 * (-log 1e-7), while the gradient is still exactly (p - onehot) / n. */
static void test_softmax_xent_confident_mistake(void **state)
{
    float z[4] = {100.0f, -100.0f, -100.0f, 100.0f};
    uint8_t labels[2] = {1, 1};
    float d[4];
    double sum;
    int correct;
    fnn_softmax_xent(z, labels, 2, 2, 0.0f, 0, 2, d, &sum, &correct);
    assert_true(fabs(sum - (-log(1e-7) + 0.0)) < 1e-6);
    assert_int_equal(correct, 1);
    assert_true(fabsf(d[0] - 0.5f) < 1e-7f && fabsf(d[1] + 0.5f) < 1e-7f);
    assert_true(fabsf(d[2]) < 1e-7f && fabsf(d[3]) < 1e-7f);
}

/* ---------------------------------------------------------------- dropout */

/* A dropout layer by itself, as the model would set it up. */
static fnn_layer make_dropout(float rate, int size, int n, int index)
{
    fnn_layer l = {.ops = &fnn_dropout_ops, .index = index, .in = {size, 1, 1}};
    l.cfg.dropout.rate = rate;
    fnn_error err;
    assert_int_equal(l.ops->setup(&l, &err), FNN_OK);
    assert_int_equal(l.scratch_per_sample, size);
    l.scratch = malloc((size_t)n * size * sizeof *l.scratch);
    assert_non_null(l.scratch);
    return l;
}

/* About `rate` of the units are dropped, independently of their neighbours, and the kept ones
 * are scaled by 1 / (1 - rate), so the expected output is the input. */
static void test_dropout_statistics(void **state)
{
    enum { N = 200, SIZE = 500, TOTAL = N * SIZE };
    const float rates[] = {0.1f, 0.3f, 0.5f, 0.8f};
    float *x = malloc(TOTAL * sizeof *x), *y = malloc(TOTAL * sizeof *y);
    assert_true(x && y);
    for (int i = 0; i < TOTAL; i++)
        x[i] = 0.5f + (float)(i % 7) * 0.25f; /* never zero */
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        double rate = rates[r];
        fnn_layer l = make_dropout(rates[r], SIZE, N, 2);
        fnn_pass pass = {.train = 1, .key = fnn_hash64(1000 + r)};
        l.ops->forward(&l, &pass, x, y, N);
        long dropped = 0, both_next = 0, both_four = 0;
        double sum_x = 0.0, sum_y = 0.0, scale = 1.0 / (1.0 - rate);
        for (int i = 0; i < TOTAL; i++) {
            int off = y[i] == 0.0f;
            dropped += off;
            if (i + 1 < TOTAL)
                both_next += off && y[i + 1] == 0.0f;
            if (i + 4 < TOTAL)
                both_four += off && y[i + 4] == 0.0f;
            if (!off && !(fabs(y[i] / x[i] - scale) < 1e-6 * scale))
                fail_msg("rate %g: kept unit %d scaled by %.9g, not %.9g", rate, i,
                         (double)(y[i] / x[i]), scale);
            assert_true(l.scratch[i] == (off ? 0.0f : 1.0f / (1.0f - rates[r])));
            assert_true(y[i] == x[i] * l.scratch[i]);
            sum_x += x[i];
            sum_y += y[i];
        }
        /* Five standard deviations of a binomial proportion, plus the 1/65536 resolution. */
        double frac = (double)dropped / TOTAL, sd = sqrt(rate * (1 - rate) / TOTAL);
        double pair = (double)both_next / (TOTAL - 1), pair4 = (double)both_four / (TOTAL - 4);
        double sd2 = sqrt(rate * rate * (1 - rate * rate) / TOTAL);
        print_message("dropout %.1f: dropped %.4f, adjacent pairs %.4f and %.4f (expect %.4f), "
                      "mean ratio %.4f\n", rate, frac, pair, pair4, rate * rate, sum_y / sum_x);
        assert_true(fabs(frac - rate) < 5 * sd + 1.0 / 65536);
        assert_true(fabs(pair - rate * rate) < 5 * sd2 + 1e-4);
        assert_true(fabs(pair4 - rate * rate) < 5 * sd2 + 1e-4);
        assert_true(fabs(sum_y / sum_x - 1.0) < 5 * sqrt(rate / (1 - rate) / TOTAL) * 1.5);
        free(l.scratch);
    }
    free(x);
    free(y);
}

/* The mask is a function of the key: the same key gives the same mask (with any number of
 * threads), another key another mask; backward applies the mask of the forward pass before
 * it; evaluation mode and rate 0 are the identity both ways. */
static void test_dropout_key_and_backward(void **state)
{
    enum { N = 37, SIZE = 29, TOTAL = N * SIZE };
    const float rate = 0.4f;
    float x[TOTAL], dy[TOTAL], ya[TOTAL], yb[TOTAL], y2[TOTAL], dx[TOTAL];
    fnn_rng rng;
    fnn_rng_seed(&rng, 71);
    for (int i = 0; i < TOTAL; i++) {
        x[i] = 1.0f + fnn_rng_uniform(&rng);
        dy[i] = 2.0f * fnn_rng_uniform(&rng) - 1.0f;
    }
    fnn_layer l = make_dropout(rate, SIZE, N, 3);
    fnn_pass a = {.train = 1, .key = 0x1234}, b = {.train = 1, .key = 0x1235};

    l.ops->forward(&l, &b, x, yb, N);
    l.ops->forward(&l, &a, x, ya, N);
    l.ops->backward(&l, &a, x, ya, dy, dx, N);
    float scale = 1.0f / (1.0f - rate);
    long differ = 0;
    for (int i = 0; i < TOTAL; i++) {
        int kept = ya[i] != 0.0f;
        assert_true(dx[i] == (kept ? dy[i] * scale : 0.0f));
        differ += kept != (yb[i] != 0.0f);
    }
    /* Two independent masks disagree on about 2 rate (1 - rate) of the units. */
    double frac = (double)differ / TOTAL, expect = 2 * rate * (1 - rate);
    assert_true(fabs(frac - expect) < 5 * sqrt(expect * (1 - expect) / TOTAL));

    /* The same key again, now in a team of two threads: the same output. */
    int team = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp master
        team = omp_get_num_threads();
        l.ops->forward(&l, &a, x, y2, N);
    }
    assert_int_equal(team, 2);
    assert_memory_equal(ya, y2, sizeof ya);

    /* A layer at another position draws a different mask from the same key. */
    fnn_layer other = make_dropout(rate, SIZE, N, 4);
    other.ops->forward(&other, &a, x, y2, N);
    assert_memory_not_equal(ya, y2, sizeof ya);
    free(other.scratch);

    fnn_pass eval = {.train = 0, .key = 0x1234};
    l.ops->forward(&l, &eval, x, y2, N);
    assert_memory_equal(x, y2, sizeof x);
    l.ops->backward(&l, &eval, x, y2, dy, dx, N);
    assert_memory_equal(dy, dx, sizeof dy);
    free(l.scratch);

    fnn_layer zero = make_dropout(0.0f, SIZE, N, 3);
    zero.ops->forward(&zero, &a, x, y2, N);
    assert_memory_equal(x, y2, sizeof x);
    zero.ops->backward(&zero, &a, x, y2, dy, dx, N);
    assert_memory_equal(dy, dx, sizeof dy);
    free(zero.scratch);
}

/* ---------------------------------------------------------------- optimizers */

/* Three parameters, three steps of gradients; expected values computed by hand in double
 * (Python, with the hyper-parameters rounded to float as the C code holds them). The third
 * gradient entry is tiny at first, where Keras's epsilon placement (added to sqrt(v), bias
 * correction in the step size) gives 0.226 after one step and torch's placement would give
 * 0.159. */
static const float hand_p0[3] = {1.0f, -0.5f, 0.25f};
static const float hand_g[3][3] = {{0.5f, -2.0f, 1e-6f}, {0.5f, 1.0f, 1e-6f}, {-0.25f, 0.0f, 3.0f}};

static void check_hand_steps(const fnn_optim_config *cfg, const double expect[3][3])
{
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, cfg, 3, &err), FNN_OK);
    assert_int_equal(o.t, 0);
    float p[3];
    memcpy(p, hand_p0, sizeof p);
    for (int t = 0; t < 3; t++) {
        fnn_optimizer_step(&o, p, hand_g[t], t + 1);
        assert_int_equal(o.t, t + 1);
        for (int i = 0; i < 3; i++)
            if (!(fabs(p[i] - expect[t][i]) < 1e-6))
                fail_msg("%s step %d, parameter %d: %.9g, expected %.9g",
                         cfg->kind == FNN_OPT_ADAM ? "Adam" : "SGD", t + 1, i, (double)p[i],
                         expect[t][i]);
    }
    fnn_optimizer_release(&o);
}

static void test_adam_hand_values(void **state)
{
    fnn_optim_config cfg = {.kind = FNN_OPT_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f,
                            .eps = 1e-7f};
    static const double expect[3][3] = {{0.900000631, -0.400000157, 0.22597481},
                                        {0.800001077, -0.373366491, 0.195078587},
                                        {0.748435955, -0.352778591, 0.131197255}};
    check_hand_steps(&cfg, expect);
}

static void test_sgd_hand_values(void **state)
{
    fnn_optim_config cfg = {.kind = FNN_OPT_SGD, .lr = 0.05f, .momentum = 0.9f};
    static const double expect[3][3] = {{0.975, -0.399999999, 0.24999995},
                                        {0.9275, -0.36, 0.249999855},
                                        {0.897250001, -0.324000003, 0.0999997673}};
    check_hand_steps(&cfg, expect);
}

/* Keras-form Adam and SGD in double, for a longer arena. */
static void ref_optim(const fnn_optim_config *c, double *p, double *m, double *v, const float *g,
                      size_t n, int t)
{
    double lr = c->lr, b1 = c->beta1, b2 = c->beta2, eps = c->eps, mu = c->momentum;
    double alpha = lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t));
    for (size_t i = 0; i < n; i++) {
        if (c->kind == FNN_OPT_ADAM) {
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
            p[i] -= alpha * m[i] / (sqrt(v[i]) + eps);
        } else {
            m[i] = mu * m[i] - lr * g[i];
            p[i] += m[i];
        }
    }
}

/* An arena that two threads split (align 16): several steps in a team of two match a double
 * re-implementation and, bit for bit, the one-thread run; the step counter advances once per
 * step, not once per thread. */
static void test_optimizer_two_threads(void **state)
{
    enum { N = 37, STEPS = 4 };
    fnn_optim_config cfgs[2] = {
        {.kind = FNN_OPT_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f},
        {.kind = FNN_OPT_SGD, .lr = 0.05f, .momentum = 0.9f}};
    fnn_rng rng;
    fnn_rng_seed(&rng, 81);
    float p0[N], g[STEPS][N];
    for (int i = 0; i < N; i++)
        p0[i] = 2.0f * fnn_rng_uniform(&rng) - 1.0f;
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < N; i++)
            g[t][i] = 2.0f * fnn_rng_uniform(&rng) - 1.0f;
    for (int c = 0; c < 2; c++) {
        fnn_optimizer o1, o2;
        fnn_error err;
        assert_int_equal(fnn_optimizer_init(&o1, &cfgs[c], N, &err), FNN_OK);
        assert_int_equal(fnn_optimizer_init(&o2, &cfgs[c], N, &err), FNN_OK);
        float p1[N], p2[N];
        double pd[N], md[N] = {0}, vd[N] = {0};
        memcpy(p1, p0, sizeof p1);
        memcpy(p2, p0, sizeof p2);
        for (int i = 0; i < N; i++)
            pd[i] = p0[i];
        for (int t = 0; t < STEPS; t++) {
            fnn_optimizer_step(&o1, p1, g[t], t + 1);
            ref_optim(&cfgs[c], pd, md, vd, g[t], N, t + 1);
        }
        int team = 0;
#pragma omp parallel num_threads(2)
        {
#pragma omp master
            team = omp_get_num_threads();
            for (int t = 0; t < STEPS; t++) {
                fnn_optimizer_step(&o2, p2, g[t], t + 1);
                /* The step ends without a barrier: the team meets before the next one. */
#pragma omp barrier
            }
        }
        assert_int_equal(team, 2);
        assert_int_equal(o1.t, STEPS);
        assert_int_equal(o2.t, STEPS);
        assert_memory_equal(p1, p2, sizeof p1);
        double d = 0.0;
        for (int i = 0; i < N; i++)
            d = fmax(d, fabs(p1[i] - pd[i]));
        print_message("%s, %d steps: max |float - double| %.2e\n", c ? "SGD" : "Adam", STEPS, d);
        assert_true(d < 1e-6);
        fnn_optimizer_release(&o1);
        fnn_optimizer_release(&o2);
    }
}

static void test_optimizer_rejects_bad_config(void **state)
{
    fnn_optimizer o;
    fnn_error err;
    fnn_optim_config bad[] = {
        {.kind = FNN_OPT_ADAM, .lr = 0.0f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f},
        {.kind = FNN_OPT_ADAM, .lr = NAN, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f},
        {.kind = FNN_OPT_ADAM, .lr = 0.1f, .beta1 = 1.0f, .beta2 = 0.999f, .eps = 1e-7f},
        {.kind = FNN_OPT_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = -0.1f, .eps = 1e-7f},
        {.kind = FNN_OPT_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 0.0f},
        {.kind = FNN_OPT_SGD, .lr = 0.1f, .momentum = 1.0f},
        {.kind = FNN_OPT_SGD, .lr = -0.1f, .momentum = 0.5f},
        {.kind = (fnn_optimizer_kind)7, .lr = 0.1f},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(fnn_optimizer_init(&o, &bad[i], 4, &err), FNN_ERR_ARG);
        assert_true(strstr(err.msg, "optimizer") != NULL);
        fnn_optimizer_release(&o); /* safe after a failed init */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_relu_dropout_softmax),
        cmocka_unit_test(test_eval_mode),
        cmocka_unit_test(test_dense_linear),
        cmocka_unit_test(test_dropout_first_and_flatten_between),
        cmocka_unit_test(test_two_threads_column_split),
        cmocka_unit_test(test_two_threads_row_split),
        cmocka_unit_test(test_colour_convolutions),
        cmocka_unit_test(test_colour_pools_batchnorm),
        cmocka_unit_test(test_colour_residual),
        cmocka_unit_test(test_colour_normalization),
        cmocka_unit_test(test_softmax_xent_gradient),
        cmocka_unit_test(test_softmax_xent_confident_mistake),
        cmocka_unit_test(test_dropout_statistics),
        cmocka_unit_test(test_dropout_key_and_backward),
        cmocka_unit_test(test_adam_hand_values),
        cmocka_unit_test(test_sgd_hand_values),
        cmocka_unit_test(test_optimizer_two_threads),
        cmocka_unit_test(test_optimizer_rejects_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
