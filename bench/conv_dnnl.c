/* fnn's conv2d layer (its own Winograd F(4x4, 3x3) over 4+ channels, im2col otherwise) against
 * oneDNN's convolution primitives (issue 18), on the conv layers of the `cnn` preset, the
 * reference CNN (bench/cnn.sh) and the CIFAR CNN (bench/cifar.sh), with the same NCHW float
 * tensors in and out. Batch 1 times inference (forward only); larger batches a training step's
 * forward and backward (the input gradient only where the layer is not a model's first).
 *
 * oneDNN picks its own blocked layouts (format "any"): its time "with reorders" counts the
 * reorders from and to NCHW (and the kernels' to and from its layout in training, where they
 * change every step), "prims" only the convolution primitives, which is what a model that kept
 * its activations blocked would pay. oneDNN runs from outside any parallel region with the
 * thread count set (it follows OpenMP); fnn inside its own team, as in training. Each sample
 * runs the configurations one after the other (interleaved), each for the same number of passes
 * (about 20 ms of fnn's), and keeps the median pass: the machine is shared, and a pass during
 * which another process took a core says nothing about either library. The table gives the
 * median of R samples and their [lowest, highest]; the last line is one JSON document with the
 * same.
 *
 * Usage: conv_dnnl [R] [THREADS,...] [BATCH,...]     (defaults: 5  1,2  1,32,64,256) */
#include "model/exec.h"
#include "model/model.h"
#include "util/gemm.h"
#include "util/rng.h"
#include "util/team.h"

#include "timing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#ifndef FNN_GEMM_DNNL
#error "conv_dnnl needs fnn built with FNN_GEMM=dnnl"
#endif

#define MAX_R 64
#define MAX_LIST 8
/* A sample is as many passes as fnn runs in about this long (at most MAX_ITERS), the same
 * number for every configuration of a row: enough that a median pass of a small layer means
 * something on a shared machine. */
#define SAMPLE_US 20000.0
#define MAX_ITERS 2000

typedef struct {
    const char *model, *spec; /* the model's conv token */
    int c, h, w, f;
    int first; /* a model's first layer: training computes no input gradient */
} layer_shape;

static const layer_shape shapes[] = {
    {"cnn", "conv2d:32:3:same:nobias:he", 1, 28, 28, 32, 1},
    {"cnn", "conv2d:32:3:same:nobias:he", 32, 28, 28, 32, 0},
    {"cnn", "conv2d:64:3:same:nobias:he", 32, 14, 14, 64, 0},
    {"cnn", "conv2d:64:3:same:nobias:he", 64, 14, 14, 64, 0},
    {"ref", "conv2d:32:3:same:relu", 1, 28, 28, 32, 1},
    {"ref", "conv2d:64:3:same:relu", 32, 14, 14, 64, 0},
    {"cifar", "conv2d:32:3:same:relu", 3, 32, 32, 32, 1},
    {"cifar", "conv2d:64:3:same:relu", 32, 16, 16, 64, 0},
    {"cifar", "conv2d:64:3:same:relu", 64, 8, 8, 64, 0},
};

static const struct {
    const char *name;
    dnnl_alg_kind_t alg;
} algs[] = {
    {"direct", dnnl_convolution_direct},
    {"winograd", dnnl_convolution_winograd},
    {"auto", dnnl_convolution_auto},
};
#define NALG 3

static void die(const char *what, dnnl_status_t s)
{
    fprintf(stderr, "conv_dnnl: %s: oneDNN status %d\n", what, (int)s);
    exit(1);
}

#define CHECK(call)                                                                               \
    do {                                                                                          \
        dnnl_status_t s_ = (call);                                                                \
        if (s_ != dnnl_success)                                                                   \
            die(#call, s_);                                                                       \
    } while (0)

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "conv_dnnl: out of memory\n");
        exit(1);
    }
    return p;
}

static float max_diff(const float *a, const float *b, size_t n)
{
    float d = 0.0f;
    for (size_t i = 0; i < n; i++)
        d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* ------------------------------------------------------------------------------ oneDNN side */

/* A reorder from one layout to another, or none where they are the same. */
typedef struct {
    dnnl_primitive_t prim; /* NULL: no reorder, `to` is `from` */
    dnnl_memory_t from, to;
    int owns_to;           /* `to` was made for this reorder */
} reorder;

static dnnl_engine_t engine;
static dnnl_stream_t stream;

/* A memory object of md in oneDNN's own allocation. */
static dnnl_memory_t mem(const dnnl_memory_desc_t *md)
{
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE));
    return m;
}

static float *data(dnnl_memory_t m)
{
    void *p;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    return p;
}

/* A reorder from `from` into a new memory of md, or `from` itself where md is its layout. */
static reorder reorder_to(dnnl_memory_t from, const dnnl_memory_desc_t *md)
{
    const dnnl_memory_desc_t *fmd;
    CHECK(dnnl_memory_get_memory_desc(from, &fmd));
    reorder r = {.from = from, .to = from};
    if (dnnl_memory_desc_equal(fmd, md))
        return r;
    r.to = mem(md);
    r.owns_to = 1;
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, fmd, engine, md, engine, NULL));
    CHECK(dnnl_primitive_create(&r.prim, pd));
    CHECK(dnnl_primitive_desc_destroy(pd));
    return r;
}

/* The same into an existing memory `to`. */
static reorder reorder_into(dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *fmd, *tmd;
    CHECK(dnnl_memory_get_memory_desc(from, &fmd));
    CHECK(dnnl_memory_get_memory_desc(to, &tmd));
    reorder r = {.from = from, .to = to};
    if (dnnl_memory_desc_equal(fmd, tmd)) {
        r.to = from; /* the caller reads `from` */
        return r;
    }
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, fmd, engine, tmd, engine, NULL));
    CHECK(dnnl_primitive_create(&r.prim, pd));
    CHECK(dnnl_primitive_desc_destroy(pd));
    return r;
}

/* Runs r, and returns its microseconds. */
static double run_reorder(const reorder *r)
{
    if (!r->prim)
        return 0.0;
    double t0 = now_us();
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, r->from}, {DNNL_ARG_TO, r->to}};
    CHECK(dnnl_primitive_execute(r->prim, stream, 2, args));
    CHECK(dnnl_stream_wait(stream));
    return now_us() - t0;
}

static void free_reorder(reorder *r)
{
    if (r->prim)
        dnnl_primitive_destroy(r->prim);
    if (r->owns_to)
        dnnl_memory_destroy(r->to);
}

static double run_prim(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args)
{
    double t0 = now_us();
    CHECK(dnnl_primitive_execute(p, stream, nargs, args));
    CHECK(dnnl_stream_wait(stream));
    return now_us() - t0;
}

static const char *impl(const_dnnl_primitive_desc_t pd)
{
    const char *s = "?";
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success)
        return "?";
    return s;
}

/* One algorithm's primitives for a layer and batch, with its NCHW ("user") tensors. */
typedef struct {
    int ok;             /* 0: oneDNN has no implementation of the algorithm for this layer */
    int train, dx;      /* training (forward and backward); with the input gradient */
    int relu, bias;
    size_t ydim;        /* floats of y */
    char impl_fwd[64], impl_bwd_d[64], impl_bwd_w[64];
    /* user memories, NCHW (oihw for the kernels) */
    dnnl_memory_t x, w, b, y, dy, dx_u, dw, db;
    dnnl_primitive_t fwd, bwd_d, bwd_w;
    /* forward: x -> src, w -> weights, dst -> y */
    reorder r_x, r_w, r_y;
    dnnl_memory_t dst;
    /* backward data: dy -> diff_dst, w -> weights, diff_src -> dx */
    reorder r_dy_d, r_w_d, r_dx;
    dnnl_memory_t diff_src;
    /* backward weights: x -> src (fwd's src when the same layout), dy -> diff_dst,
     * diff_weights -> dw */
    reorder r_x_w, r_dy_w, r_dw;
    dnnl_memory_t diff_w;
} dnnl_conv;

static void copy_impl(char *dst, const_dnnl_primitive_desc_t pd)
{
    snprintf(dst, 64, "%s", impl(pd));
}

static int dnnl_conv_make(dnnl_conv *d, const layer_shape *s, int n, int train, dnnl_alg_kind_t alg,
                          const float *x, const float *w, const float *b)
{
    memset(d, 0, sizeof *d);
    d->train = train;
    d->dx = train && !s->first;
    d->relu = d->bias = strstr(s->spec, ":relu") != NULL;
    dnnl_memory_desc_t x_md, w_md, b_md, y_md, any_x, any_w, any_y;
    dnnl_dims_t xd = {n, s->c, s->h, s->w}, wd = {s->f, s->c, 3, 3}, bd = {s->f},
                yd = {n, s->f, s->h, s->w};
    dnnl_dims_t strides = {1, 1}, pad = {1, 1};
    CHECK(dnnl_memory_desc_init_by_tag(&x_md, 4, xd, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, dnnl_oihw));
    CHECK(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_a));
    CHECK(dnnl_memory_desc_init_by_tag(&y_md, 4, yd, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&any_x, 4, xd, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&any_w, 4, wd, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&any_y, 4, yd, dnnl_f32, dnnl_format_tag_any));

    dnnl_convolution_desc_t cd;
    CHECK(dnnl_convolution_forward_desc_init(
        &cd, train ? dnnl_forward_training : dnnl_forward_inference, alg, &any_x, &any_w,
        d->bias ? &b_md : NULL, &any_y, strides, pad, pad));
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    if (d->relu) {
        dnnl_post_ops_t po;
        CHECK(dnnl_post_ops_create(&po));
        CHECK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
        CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t fpd;
    dnnl_status_t st = dnnl_primitive_desc_create(&fpd, &cd, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_unimplemented)
        return 0;
    CHECK(st);
    copy_impl(d->impl_fwd, fpd);
    d->ydim = (size_t)n * s->f * s->h * s->w;
    d->x = mem(&x_md);
    d->w = mem(&w_md);
    d->y = mem(&y_md);
    memcpy(data(d->x), x, (size_t)n * s->c * s->h * s->w * sizeof *x);
    memcpy(data(d->w), w, (size_t)s->f * s->c * 9 * sizeof *w);
    if (d->bias) {
        d->b = mem(&b_md);
        memcpy(data(d->b), b, (size_t)s->f * sizeof *b);
    }
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *wts = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    d->r_x = reorder_to(d->x, src);
    d->r_w = reorder_to(d->w, wts);
    run_reorder(&d->r_w); /* inference reorders the kernels once, here */
    d->dst = mem(dst);
    d->r_y = reorder_into(d->dst, d->y);
    CHECK(dnnl_primitive_create(&d->fwd, fpd));
    d->ok = 1;
    if (!train) {
        dnnl_primitive_desc_destroy(fpd);
        return 1;
    }

    d->dy = mem(&y_md);
    if (d->dx) {
        dnnl_convolution_desc_t bd_desc;
        CHECK(dnnl_convolution_backward_data_desc_init(&bd_desc, alg, &any_x, &any_w, &any_y,
                                                       strides, pad, pad));
        dnnl_primitive_desc_t bpd;
        st = dnnl_primitive_desc_create(&bpd, &bd_desc, NULL, engine, fpd);
        if (st == dnnl_unimplemented) {
            d->ok = 0;
            dnnl_primitive_desc_destroy(fpd);
            return 0;
        }
        CHECK(st);
        copy_impl(d->impl_bwd_d, bpd);
        d->dx_u = mem(&x_md);
        d->r_dy_d = reorder_to(d->dy, dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_dst_md, 0));
        d->r_w_d = reorder_to(d->w, dnnl_primitive_desc_query_md(bpd, dnnl_query_weights_md, 0));
        d->diff_src = mem(dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_src_md, 0));
        d->r_dx = reorder_into(d->diff_src, d->dx_u);
        CHECK(dnnl_primitive_create(&d->bwd_d, bpd));
        dnnl_primitive_desc_destroy(bpd);
    }
    dnnl_convolution_desc_t bw_desc;
    CHECK(dnnl_convolution_backward_weights_desc_init(&bw_desc, alg, &any_x, &any_w,
                                                      d->bias ? &b_md : NULL, &any_y, strides,
                                                      pad, pad));
    dnnl_primitive_desc_t wpd;
    st = dnnl_primitive_desc_create(&wpd, &bw_desc, NULL, engine, fpd);
    dnnl_primitive_desc_destroy(fpd);
    if (st == dnnl_unimplemented) {
        d->ok = 0;
        return 0;
    }
    CHECK(st);
    copy_impl(d->impl_bwd_w, wpd);
    const dnnl_memory_desc_t *wsrc = dnnl_primitive_desc_query_md(wpd, dnnl_query_src_md, 0);
    /* The backward pass can read forward's reordered input when the layouts agree. */
    const dnnl_memory_desc_t *fsrc;
    CHECK(dnnl_memory_get_memory_desc(d->r_x.to, &fsrc));
    d->r_x_w = dnnl_memory_desc_equal(fsrc, wsrc) ? (reorder){.from = d->r_x.to, .to = d->r_x.to}
                                                   : reorder_to(d->x, wsrc);
    const dnnl_memory_desc_t *wdd = dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_dst_md, 0);
    const dnnl_memory_desc_t *ddmd = NULL;
    if (d->dx)
        CHECK(dnnl_memory_get_memory_desc(d->r_dy_d.to, &ddmd));
    d->r_dy_w = ddmd && dnnl_memory_desc_equal(ddmd, wdd)
                    ? (reorder){.from = d->r_dy_d.to, .to = d->r_dy_d.to}
                    : reorder_to(d->dy, wdd);
    d->dw = mem(&w_md);
    d->diff_w = mem(dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 0));
    d->r_dw = reorder_into(d->diff_w, d->dw);
    if (d->bias)
        d->db = mem(&b_md);
    CHECK(dnnl_primitive_create(&d->bwd_w, wpd));
    dnnl_primitive_desc_destroy(wpd);
    return 1;
}

/* Forward: *prims gets the primitive's share of the returned microseconds. Inference leaves
 * out the kernels' reorder: a predictor would keep them reordered. */
static double dnnl_conv_forward(dnnl_conv *d, double *prims)
{
    double t = run_reorder(&d->r_x);
    if (d->train)
        t += run_reorder(&d->r_w);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, d->r_x.to},
                               {DNNL_ARG_WEIGHTS, d->r_w.to},
                               {DNNL_ARG_DST, d->dst},
                               {DNNL_ARG_BIAS, d->b}};
    double p = run_prim(d->fwd, d->bias ? 4 : 3, args);
    t += p + run_reorder(&d->r_y);
    *prims = p;
    return t;
}

/* Backward from the NCHW dy, through the ReLU (by y, on NCHW, as fnn does), to dw, db and
 * dx. */
static double dnnl_conv_backward(dnnl_conv *d, const float *dy0, double *prims)
{
    double t0 = now_us();
    float *dy = data(d->dy);
    if (d->relu) {
        const float *y = data(d->r_y.to);
#pragma omp parallel for simd
        for (size_t i = 0; i < d->ydim; i++)
            dy[i] = y[i] > 0.0f ? dy0[i] : 0.0f;
    } else {
        memcpy(dy, dy0, d->ydim * sizeof *dy);
    }
    double t = now_us() - t0, p = 0.0;
    if (d->dx) {
        t += run_reorder(&d->r_dy_d) + run_reorder(&d->r_w_d);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, d->r_dy_d.to},
                                   {DNNL_ARG_WEIGHTS, d->r_w_d.to},
                                   {DNNL_ARG_DIFF_SRC, d->diff_src}};
        p += run_prim(d->bwd_d, 3, args);
        t += run_reorder(&d->r_dx);
    }
    /* Each none where it reads what forward or backward data already reordered. */
    t += run_reorder(&d->r_x_w) + run_reorder(&d->r_dy_w);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, d->r_x_w.to},
                               {DNNL_ARG_DIFF_DST, d->r_dy_w.to},
                               {DNNL_ARG_DIFF_WEIGHTS, d->diff_w},
                               {DNNL_ARG_DIFF_BIAS, d->db}};
    p += run_prim(d->bwd_w, d->bias ? 4 : 3, args);
    t += p + run_reorder(&d->r_dw);
    *prims = p;
    return t;
}

static void dnnl_conv_free(dnnl_conv *d)
{
    if (!d->ok && !d->fwd)
        return;
    reorder *rs[] = {&d->r_x,   &d->r_w, &d->r_y,   &d->r_dy_d, &d->r_w_d,
                     &d->r_dx,  &d->r_x_w, &d->r_dy_w, &d->r_dw};
    for (size_t i = 0; i < sizeof rs / sizeof *rs; i++)
        free_reorder(rs[i]);
    dnnl_primitive_t ps[] = {d->fwd, d->bwd_d, d->bwd_w};
    for (int i = 0; i < 3; i++)
        if (ps[i])
            dnnl_primitive_destroy(ps[i]);
    dnnl_memory_t ms[] = {d->x, d->w, d->b, d->y, d->dy, d->dx_u, d->dw, d->db, d->dst,
                          d->diff_src, d->diff_w};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        if (ms[i])
            dnnl_memory_destroy(ms[i]);
}

/* --------------------------------------------------------------------------------- fnn side */

typedef struct {
    fnn_model *m;
    fnn_exec *e;
    fnn_layer *l;
    int n, threads, train;
    const float *x; /* (n, c, h, w) */
    float *y, *dy;  /* (n, f, h, w) */
    float *dx;      /* (n, c, h, w) or NULL */
    unsigned flags;
} fnn_conv;

static void fnn_conv_make(fnn_conv *c, const layer_shape *s, int n, int threads, int train,
                          const float *x)
{
    char spec[128];
    snprintf(spec, sizeof spec, "%s flatten dense:10:softmax", s->spec);
    fnn_error err = {0};
    memset(c, 0, sizeof *c);
    c->m = fnn_model_create(spec, s->c, s->h, s->w, &err);
    if (!c->m || fnn_exec_create(c->m, n, threads, train ? c->m->grads : NULL, &c->e, &err)) {
        fprintf(stderr, "conv_dnnl: %s\n", err.msg);
        exit(1);
    }
    fnn_model_init(c->m, 1);
    c->l = &c->e->layers[0];
    c->n = n;
    c->threads = threads;
    c->train = train;
    c->x = x;
    c->y = c->e->act[0];
    c->dy = train ? c->e->dact[0] : NULL;
    c->dx = train && !s->first ? xmalloc((size_t)n * s->c * s->h * s->w * sizeof(float)) : NULL;
    c->flags = c->l->ops->sharing ? c->l->ops->sharing(c->l, n, threads) : 0;
}

/* `iters` forward passes, or backward passes from dy0, by fnn's team: the median
 * microseconds of one, which leaves out the passes during which another process took a core. */
static double fnn_conv_run(fnn_conv *c, int backward, const float *dy0, int iters, double *t)
{
    fnn_barrier team;
    size_t ysize = (size_t)c->n * fnn_shape_size(c->l->out);
    if (backward)
        memcpy(c->dy, dy0, ysize * sizeof *c->dy);
#pragma omp parallel num_threads(c->threads)
    {
        fnn_team_begin(&team);
        fnn_pass pass = {.train = c->train, .sync = &team};
        fnn_team_sync(&team);
        double t0 = now_us();
        for (int i = 0; i < iters; i++) {
            if (!backward) {
                c->l->ops->forward(c->l, &pass, c->x, c->y, c->n);
            } else {
                /* The ReLU's gradient masks dy in place: the same mask every time. */
                c->l->ops->backward(c->l, &pass, c->x, c->y, c->dy, c->dx, c->n);
                if (c->flags & FNN_BWD_PARTIAL) {
                    fnn_team_sync(&team);
                    c->l->ops->reduce(c->l, &pass, c->n);
                }
            }
            fnn_team_sync(&team);
#pragma omp master
            {
                double t1 = now_us();
                t[i] = t1 - t0;
                t0 = t1;
            }
        }
        fnn_team_end(&team);
    }
    return median(t, iters);
}

static void fnn_conv_free(fnn_conv *c)
{
    free(c->dx);
    fnn_exec_free(c->e);
    fnn_model_free(c->m);
}

/* ------------------------------------------------------------------------------ measurement */

typedef struct {
    double fwd[MAX_R], bwd[MAX_R];
    double fwd_p[MAX_R], bwd_p[MAX_R]; /* oneDNN: primitives only */
} samples;

static void parse_list(const char *s, int *v, int *n)
{
    *n = 0;
    while (*s && *n < MAX_LIST) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 1 || x > 4096) {
            fprintf(stderr, "conv_dnnl: a list is positive integers split by commas, not '%s'\n",
                    s);
            exit(2);
        }
        v[(*n)++] = (int)x;
        s = *end == ',' ? end + 1 : end;
    }
}

static double med(const double *v, int r)
{
    double t[MAX_R];
    memcpy(t, v, (size_t)r * sizeof *t);
    return median(t, r);
}

static void range(const double *v, int r, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < r; i++) {
        *lo = fmin(*lo, v[i]);
        *hi = fmax(*hi, v[i]);
    }
}

static FILE *json;     /* the JSON records, gathered for the last line */
static int json_first = 1;

static void json_times(const char *key, const double *v, int r)
{
    double lo, hi;
    range(v, r, &lo, &hi);
    fprintf(json, ", \"%s\": [%.1f, %.1f, %.1f]", key, med(v, r), lo, hi);
}

static void cell(const double *v, int r)
{
    double lo, hi;
    range(v, r, &lo, &hi);
    printf(" %8.0f [%6.0f-%6.0f]", med(v, r), lo, hi);
}

static void measure(const layer_shape *s, int n, int threads, int r)
{
    int train = n > 1;
    size_t xs = (size_t)n * s->c * s->h * s->w, ys = (size_t)n * s->f * s->h * s->w;
    float *x = xmalloc(xs * sizeof *x), *dy0 = xmalloc(ys * sizeof *dy0);
    fnn_rng rng;
    fnn_rng_seed(&rng, 11);
    for (size_t i = 0; i < xs; i++)
        x[i] = 2.0f * fnn_rng_uniform(&rng) - 1.0f;
    for (size_t i = 0; i < ys; i++)
        dy0[i] = (2.0f * fnn_rng_uniform(&rng) - 1.0f) / (float)n;

    fnn_conv fc;
    fnn_conv_make(&fc, s, n, threads, train, x);
    const float *w = fc.l->params, *b = strstr(s->spec, ":relu") ? w + (size_t)s->f * s->c * 9 : NULL;
    dnnl_conv dc[NALG];
    for (int a = 0; a < NALG; a++)
        dnnl_conv_make(&dc[a], s, n, train, algs[a].alg, x, w, b);

    /* Warm up every configuration (first passes fault their pages in and oneDNN's create
     * kernels and scratch), check that they agree, and size a sample from fnn's pass. */
    double unused, *tf = xmalloc(MAX_ITERS * sizeof *tf), *tp = xmalloc(MAX_ITERS * sizeof *tp);
    double fnn_us = fnn_conv_run(&fc, 0, NULL, 3, tf);
    if (train)
        fnn_us += fnn_conv_run(&fc, 1, dy0, 3, tf);
    int iters = (int)fmin(MAX_ITERS, fmax(1.0, SAMPLE_US / fmax(fnn_us, 1.0)));
    float dfy[NALG] = {0}, dfx[NALG] = {0}, dfw[NALG] = {0};
    omp_set_num_threads(threads);
    for (int a = 0; a < NALG; a++) {
        if (!dc[a].ok)
            continue;
        for (int k = 0; k < 3; k++) {
            dnnl_conv_forward(&dc[a], &unused);
            if (train)
                dnnl_conv_backward(&dc[a], dy0, &unused);
        }
        dnnl_conv_forward(&dc[a], &unused);
        dfy[a] = max_diff(data(dc[a].r_y.to), fc.y, ys);
        if (!train)
            continue;
        dnnl_conv_backward(&dc[a], dy0, &unused);
        if (fc.dx)
            dfx[a] = max_diff(data(dc[a].r_dx.to), fc.dx, xs);
        dfw[a] = max_diff(data(dc[a].r_dw.to), fc.l->grads, (size_t)s->f * s->c * 9);
        if (b)
            dfw[a] = fmaxf(dfw[a], max_diff(data(dc[a].db), fc.l->grads + (size_t)s->f * s->c * 9,
                                            (size_t)s->f));
    }

    samples fs = {0}, ds[NALG] = {0};
    for (int k = 0; k < r; k++) {
        fs.fwd[k] = fnn_conv_run(&fc, 0, NULL, iters, tf);
        if (train)
            fs.bwd[k] = fnn_conv_run(&fc, 1, dy0, iters, tf);
        omp_set_num_threads(threads);
        for (int a = 0; a < NALG; a++) {
            if (!dc[a].ok)
                continue;
            for (int i = 0; i < iters; i++)
                tf[i] = dnnl_conv_forward(&dc[a], &tp[i]);
            ds[a].fwd[k] = median(tf, iters);
            ds[a].fwd_p[k] = median(tp, iters);
            if (!train)
                continue;
            for (int i = 0; i < iters; i++)
                tf[i] = dnnl_conv_backward(&dc[a], dy0, &tp[i]);
            ds[a].bwd[k] = median(tf, iters);
            ds[a].bwd_p[k] = median(tp, iters);
        }
    }
    free(tf);
    free(tp);

    /* The table: one line per configuration and pass. */
    char what[64];
    snprintf(what, sizeof what, "%s %d->%d %dx%d", s->model, s->c, s->f, s->h, s->w);
    const char *passes[2] = {"fwd", "bwd"};
    for (int ps = 0; ps < 1 + train; ps++) {
        const double *fv = ps ? fs.bwd : fs.fwd;
        printf("%-20s %4d %2d %s  fnn", what, n, threads, passes[ps]);
        cell(fv, r);
        printf("\n");
        for (int a = 0; a < NALG; a++) {
            if (!dc[a].ok) {
                printf("%-20s %4d %2d %s  %-8s unimplemented\n", what, n, threads, passes[ps],
                       algs[a].name);
                continue;
            }
            const double *tv = ps ? ds[a].bwd : ds[a].fwd, *pv = ps ? ds[a].bwd_p : ds[a].fwd_p;
            printf("%-20s %4d %2d %s  %-8s", what, n, threads, passes[ps], algs[a].name);
            cell(tv, r);
            printf("  prims");
            cell(pv, r);
            printf("  fnn/dnnl %.2fx (prims %.2fx)  maxdiff %.1e  %s\n", med(fv, r) / med(tv, r),
                   med(fv, r) / med(pv, r), ps ? fmaxf(dfx[a], dfw[a]) : dfy[a],
                   ps ? (fc.dx ? dc[a].impl_bwd_d : dc[a].impl_bwd_w) : dc[a].impl_fwd);
        }
    }
    fflush(stdout);

    fprintf(json, "%s{\"model\": \"%s\", \"c\": %d, \"f\": %d, \"h\": %d, \"w\": %d, "
                  "\"batch\": %d, \"threads\": %d, \"iters\": %d",
            json_first ? "" : ", ", s->model, s->c, s->f, s->h, s->w, n, threads, iters);
    json_first = 0;
    json_times("fnn_fwd_us", fs.fwd, r);
    if (train)
        json_times("fnn_bwd_us", fs.bwd, r);
    for (int a = 0; a < NALG; a++) {
        fprintf(json, ", \"%s\": ", algs[a].name);
        if (!dc[a].ok) {
            fprintf(json, "null");
            continue;
        }
        fprintf(json, "{\"impl\": \"%s\"", dc[a].impl_fwd);
        json_times("fwd_us", ds[a].fwd, r);
        json_times("fwd_prims_us", ds[a].fwd_p, r);
        fprintf(json, ", \"fwd_maxdiff\": %.3g", dfy[a]);
        if (train) {
            fprintf(json, ", \"impl_bwd_data\": \"%s\", \"impl_bwd_weights\": \"%s\"",
                    dc[a].impl_bwd_d, dc[a].impl_bwd_w);
            json_times("bwd_us", ds[a].bwd, r);
            json_times("bwd_prims_us", ds[a].bwd_p, r);
            fprintf(json, ", \"dx_maxdiff\": %.3g, \"dw_maxdiff\": %.3g", dfx[a], dfw[a]);
        }
        fprintf(json, "}");
    }
    fprintf(json, "}");

    for (int a = 0; a < NALG; a++)
        dnnl_conv_free(&dc[a]);
    fnn_conv_free(&fc);
    free(x);
    free(dy0);
}

int main(int argc, char **argv)
{
    int r = argc > 1 ? atoi(argv[1]) : 5, threads[MAX_LIST] = {1, 2}, nt = 2,
        batches[MAX_LIST] = {1, 32, 64, 256}, nb = 4;
    if (r < 1 || r > MAX_R) {
        fprintf(stderr, "usage: conv_dnnl [R (1-%d)] [THREADS,...] [BATCH,...]\n", MAX_R);
        return 2;
    }
    if (argc > 2)
        parse_list(argv[2], threads, &nt);
    if (argc > 3)
        parse_list(argv[3], batches, &nb);
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    fnn_blas_single_threaded();
    char *jbuf = NULL;
    size_t jlen = 0;
    json = open_memstream(&jbuf, &jlen);
    if (!json) {
        fprintf(stderr, "conv_dnnl: out of memory\n");
        return 1;
    }
    const dnnl_version_t *v = dnnl_version();
    printf("fnn conv2d against oneDNN %d.%d.%d convolutions, NCHW in and out; microseconds per "
           "pass, median [lowest-highest] of %d samples.\n"
           "oneDNN with reorders counted (inference: not the kernels'), then 'prims': its "
           "primitives alone; fnn/dnnl above 1: oneDNN is faster.\n",
           v->major, v->minor, v->patch, r);
    printf("%-20s %4s %2s %-4s %-8s %s\n", "layer", "N", "T", "pass", "impl", "median [range]");
    for (int ti = 0; ti < nt; ti++)
        for (int bi = 0; bi < nb; bi++)
            for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
                measure(&shapes[si], batches[bi], threads[ti], r);
    fclose(json);
    printf("{\"onednn\": \"%d.%d.%d\", \"repetitions\": %d, \"results\": [%s]}\n", v->major,
           v->minor, v->patch, r, jbuf);
    free(jbuf);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}
