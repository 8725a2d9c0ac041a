/* The conv2d layer against a naive double-precision direct convolution: forward outputs, gradients
 * by central differences of that reference, one thread against teams of 2 and 5, setup errors,
 * shapes, parameter tensors, initialisation and the spec token. Cases with 3x3 stride-1 kernels
 * over 4 or more channels take the Winograd path, the others im2col. */
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
#include "nn/layer.h"
#include "util/rng.h"
#include "util/team.h"
#include "check.h"

/* Central-difference step on the double reference. The loss is linear in every parameter and
 * input between ReLU kinks, so the step only has to stay clear of the kinks (KINK_MARGIN). */
#define FD_STEP 1e-3
/* max|analytic - reference| / max|reference| for a float result against the double one. */
#define GRAD_TOL 1e-3
#define FWD_TOL 1e-5
/* Every ReLU pre-activation of a finite-difference check is at least this far from 0 (inputs
 * and kernels are re-drawn until it is). A step moves a pre-activation by at most FD_STEP times
 * max(|x|, |w|, 1) < 2 FD_STEP (|x| < 1, and the largest Glorot limit here, for one channel
 * 1x1 with 4 filters, is sqrt(6/5) < 2), so no difference straddles a kink; float rounding
 * (~1e-7) cannot put the layer's ReLU on the other side from the reference's. */
#define KINK_MARGIN (2 * FD_STEP)
/* A gradient whose largest entry is below this is treated as missing: the check fails. */
#define NONTRIVIAL 1e-5
/* One thread against a team: per-image products are the same, partial sums are not. */
#define THREAD_TOL 1e-5

typedef struct {
    int c, h, w;          /* input */
    int f, k, s, same;    /* filters, kernel side, stride, 'same' padding */
    int bias;
    fnn_activation act;
} conv_case;

/* A layer with its own buffers, as the model would give it. */
typedef struct {
    fnn_layer l;
    float *params, *grads, *scratch, *team;
} harness;

static const conv_case CASES[] = {
    {1, 8, 8, 4, 3, 1, 1, 1, FNN_ACT_RELU},   /* 3x3 same */
    {3, 8, 8, 4, 3, 1, 1, 0, FNN_ACT_LINEAR}, /* 3x3 same, no bias */
    {3, 7, 7, 4, 3, 1, 0, 1, FNN_ACT_LINEAR}, /* 3x3 valid */
    {1, 7, 7, 4, 3, 1, 0, 0, FNN_ACT_RELU},   /* 3x3 valid, no bias */
    {3, 7, 7, 4, 3, 2, 1, 1, FNN_ACT_RELU},   /* stride 2 same, odd input */
    {1, 8, 8, 4, 3, 2, 1, 0, FNN_ACT_LINEAR}, /* stride 2 same, even input */
    {3, 8, 8, 4, 3, 2, 1, 1, FNN_ACT_LINEAR}, /* stride 2 same, even input */
    {1, 7, 7, 4, 3, 2, 0, 1, FNN_ACT_LINEAR}, /* stride 2 valid */
    {3, 6, 6, 4, 1, 1, 0, 1, FNN_ACT_LINEAR}, /* 1x1: the image is its own column matrix */
    {1, 6, 6, 4, 1, 1, 1, 0, FNN_ACT_RELU},   /* 1x1 */
    {3, 7, 7, 4, 1, 2, 1, 1, FNN_ACT_LINEAR}, /* 1x1 stride 2 */
    {1, 9, 9, 4, 5, 1, 1, 1, FNN_ACT_RELU},   /* 5x5 same */
    {3, 9, 9, 4, 5, 1, 0, 1, FNN_ACT_LINEAR}, /* 5x5 valid */
    {3, 7, 6, 4, 4, 1, 1, 1, FNN_ACT_LINEAR}, /* even kernel: more padding bottom/right */
    {1, 8, 8, 4, 2, 2, 0, 1, FNN_ACT_RELU},   /* 2x2 stride 2, windows do not overlap */
    {2, 5, 5, 4, 5, 1, 0, 1, FNN_ACT_LINEAR}, /* kernel as large as the input */
    /* Stride 1, 2 or 3 channels, at most 32 window values: direct, in blocks of 4 or 8 filters
     * and 8 pixels a vector */
    {3, 9, 16, 10, 3, 1, 1, 1, FNN_ACT_LINEAR}, /* 8 filters and 2 more; whole vectors */
    {2, 7, 11, 9, 3, 1, 0, 0, FNN_ACT_RELU},     /* valid, 9 columns: a vector and a part */
    {2, 10, 10, 8, 4, 1, 1, 0, FNN_ACT_LINEAR},  /* 4x4 (32 values), padding bottom/right */
    {3, 5, 21, 5, 3, 1, 1, 1, FNN_ACT_RELU},     /* 21 columns: two vectors and a part */
    /* 3x3 stride 1 over 4 or more channels: Winograd F(4x4, 3x3), by vectors of 8 channels or
     * filters */
    {4, 8, 8, 5, 3, 1, 1, 1, FNN_ACT_RELU},      /* same, whole tiles; short vectors */
    {5, 7, 7, 3, 3, 1, 1, 0, FNN_ACT_LINEAR},    /* same, odd: the last tiles partly outside */
    {4, 7, 9, 4, 3, 1, 0, 1, FNN_ACT_LINEAR},    /* valid, odd rows, odd columns */
    {6, 6, 5, 4, 3, 1, 0, 0, FNN_ACT_RELU},      /* valid, even rows, odd columns */
    {4, 3, 3, 2, 3, 1, 0, 1, FNN_ACT_LINEAR},    /* valid, one output pixel */
    {4, 33, 5, 2, 3, 1, 1, 1, FNN_ACT_LINEAR},   /* 9 rows of tiles */
    {9, 4, 4, 25, 3, 1, 1, 1, FNN_ACT_LINEAR},   /* 4 vectors of filters, 2 of channels */
    {8, 4, 13, 10, 3, 1, 1, 1, FNN_ACT_RELU},    /* 13 columns: a transposed block and 5 */
    {4, 26, 26, 1, 3, 1, 1, 1, FNN_ACT_LINEAR},  /* 49 tiles: chunks of 2 images */
};
#define NCASES (int)(sizeof CASES / sizeof CASES[0])

/* ---------------------------------------------------------------- the layer and a reference */

static fnn_status setup_layer(fnn_layer *l, const conv_case *cc, int index, fnn_error *err)
{
    memset(l, 0, sizeof *l);
    l->ops = &fnn_conv2d_ops;
    l->index = index;
    l->in = (fnn_shape){cc->c, cc->h, cc->w};
    l->cfg.conv.filters = cc->f;
    l->cfg.conv.kernel = cc->k;
    l->cfg.conv.stride = cc->s;
    l->cfg.conv.same = cc->same;
    l->cfg.conv.bias = cc->bias;
    l->cfg.conv.he = 0;
    l->cfg.conv.act = cc->act;
    return l->ops->setup(l, err);
}

/* Sets up and initialises a layer for batches of up to `capacity`; the bias, zero after init,
 * is drawn at random so that its path is exercised. */
static void make(harness *hs, const conv_case *cc, int capacity, fnn_rng *rng)
{
    fnn_error err = {0};
    assert_int_equal(setup_layer(&hs->l, cc, 1, &err), FNN_OK);
    fnn_layer *l = &hs->l;
    hs->params = calloc(l->nparams, sizeof(float));
    hs->grads = calloc(l->nparams, sizeof(float));
    hs->scratch = calloc((size_t)capacity * l->scratch_per_sample + 1, sizeof(float));
    /* Sized as an executor sizes it for a team of 5, the most threads a test here runs. */
    l->team = 5;
    l->team_scratch_size = l->ops->team_floats(l, l->team);
    hs->team = calloc(l->team_scratch_size + 1, sizeof(float));
    assert_non_null(hs->params);
    assert_non_null(hs->grads);
    assert_non_null(hs->scratch);
    assert_non_null(hs->team);
    l->params = hs->params;
    l->grads = hs->grads;
    l->scratch = l->scratch_per_sample ? hs->scratch : NULL;
    l->team_scratch = l->team_scratch_size ? hs->team : NULL;
    l->ops->init(l, rng);
    size_t nk = (size_t)cc->f * cc->c * cc->k * cc->k;
    for (size_t i = nk; i < l->nparams; i++)
        l->params[i] = fnn_rng_uniform(rng) - 0.5f;
}

static void unmake(harness *hs)
{
    free(hs->params);
    free(hs->grads);
    free(hs->scratch);
    free(hs->team);
}

static void uniform(fnn_rng *rng, float *a, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (2.0f * fnn_rng_uniform(rng) - 1.0f) * scale;
}

/* Output side and leading padding as Keras computes them, written out independently. */
static int out_side(const conv_case *cc, int in)
{
    return cc->same ? (in + cc->s - 1) / cc->s : (in - cc->k) / cc->s + 1;
}

static int pad_before(const conv_case *cc, int in)
{
    int total = (out_side(cc, in) - 1) * cc->s + cc->k - in;
    return cc->same && total > 0 ? total / 2 : 0;
}

/* Direct convolution of n images x (n, c, h, w) with w (f, c, k, k) and b (f) or NULL:
 * z (n, f, oh, ow) before the activation and y after it. */
static void ref_forward(const conv_case *cc, const double *w, const double *b, const double *x,
                        int n, double *z, double *y)
{
    int oh = out_side(cc, cc->h), ow = out_side(cc, cc->w);
    int pt = pad_before(cc, cc->h), pl = pad_before(cc, cc->w);
    for (int i = 0; i < n; i++)
        for (int f = 0; f < cc->f; f++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = b ? b[f] : 0.0;
                    for (int c = 0; c < cc->c; c++)
                        for (int ky = 0; ky < cc->k; ky++)
                            for (int kx = 0; kx < cc->k; kx++) {
                                int iy = oy * cc->s - pt + ky, ix = ox * cc->s - pl + kx;
                                if (iy < 0 || iy >= cc->h || ix < 0 || ix >= cc->w)
                                    continue;
                                s += w[((f * cc->c + c) * cc->k + ky) * cc->k + kx] *
                                     x[((i * cc->c + c) * cc->h + iy) * cc->w + ix];
                            }
                    size_t o = (((size_t)i * cc->f + f) * oh + oy) * ow + ox;
                    if (z)
                        z[o] = s;
                    y[o] = cc->act == FNN_ACT_RELU && s < 0.0 ? 0.0 : s;
                }
}

static double *to_double(const float *a, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = a[i];
    return d;
}

static double rel_err_ff(const float *a, const float *b, size_t n)
{
    double *bd = to_double(b, n);
    double e = rel_err(a, bd, n);
    free(bd);
    return e;
}

/* ---------------------------------------------------------------- running a team */

/* Runs forward with nt threads (1: outside any parallel region), in training or evaluation
 * mode. */
static void run_forward_mode(harness *hs, int train, const float *x, float *y, int n, int nt)
{
    fnn_pass p = {.train = train, .sync = NULL};
    fnn_layer *l = &hs->l;
    if (nt == 1) {
        l->ops->forward(l, &p, x, y, n);
        return;
    }
    int got = 0;
#pragma omp parallel num_threads(nt)
    {
        l->ops->forward(l, &p, x, y, n);
#pragma omp master
        got = omp_get_num_threads();
    }
    assert_int_equal(got, nt);
}

static void run_forward(harness *hs, const float *x, float *y, int n, int nt)
{
    run_forward_mode(hs, 1, x, y, n, nt);
}

/* Runs backward then reduce with nt threads, as the model does, in training or evaluation mode;
 * dy is copied first, since the layer may overwrite it. */
static void run_backward_mode(harness *hs, int train, const float *x, const float *y,
                              const float *dy, float *dx, int n, int nt)
{
    fnn_pass p = {.train = train, .sync = NULL};
    fnn_layer *l = &hs->l;
    size_t out = fnn_shape_size(l->out) * n;
    float *d = malloc(out * sizeof *d);
    assert_non_null(d);
    memcpy(d, dy, out * sizeof *d);
    memset(l->grads, 0xff, l->nparams * sizeof *l->grads); /* NaN: must be overwritten */
    unsigned flags = l->ops->sharing(l, n, nt);
    assert_true(flags & FNN_BWD_PARTIAL);
    if (nt == 1) {
        l->ops->backward(l, &p, x, y, d, dx, n);
        l->ops->reduce(l, &p, n);
    } else {
        int got = 0;
#pragma omp parallel num_threads(nt)
        {
            l->ops->backward(l, &p, x, y, d, dx, n);
#pragma omp barrier
            l->ops->reduce(l, &p, n);
#pragma omp barrier
#pragma omp master
            got = omp_get_num_threads();
        }
        assert_int_equal(got, nt);
    }
    free(d);
}

static void run_backward(harness *hs, const float *x, const float *y, const float *dy, float *dx,
                         int n, int nt)
{
    run_backward_mode(hs, 1, x, y, dy, dx, n, nt);
}

/* ---------------------------------------------------------------- forward */

static void test_forward(void **state)
{
    (void)state;
    const int n = 3;
    for (int ci = 0; ci < NCASES; ci++) {
        const conv_case *cc = &CASES[ci];
        fnn_rng rng;
        fnn_rng_seed(&rng, 100 + ci);
        harness hs;
        make(&hs, cc, n, &rng);
        size_t in = fnn_shape_size(hs.l.in) * n, out = fnn_shape_size(hs.l.out) * n;
        size_t nk = (size_t)cc->f * cc->c * cc->k * cc->k;
        float *x = malloc(in * sizeof *x), *y = malloc(out * sizeof *y);
        double *ref = malloc(out * sizeof *ref);
        assert_non_null(x);
        assert_non_null(y);
        assert_non_null(ref);
        uniform(&rng, x, in, 1.0f);
        run_forward(&hs, x, y, n, 1);
        double *wd = to_double(hs.params, hs.l.nparams), *xd = to_double(x, in);
        ref_forward(cc, wd, cc->bias ? wd + nk : NULL, xd, n, NULL, ref);
        double e = rel_err(y, ref, out);
        if (!(e < FWD_TOL))
            fail_msg("case %d: forward error %g against the direct convolution", ci, e);
        assert_true(max_abs_d(ref, out) > 0.1);
        free(wd);
        free(xd);
        free(x);
        free(y);
        free(ref);
        unmake(&hs);
    }
}

/* ---------------------------------------------------------------- gradients */

/* L = sum(y * r) of the reference. */
static double ref_loss(const conv_case *cc, const double *w, const double *x, const double *r,
                       int n, double *y)
{
    size_t nk = (size_t)cc->f * cc->c * cc->k * cc->k;
    size_t out = (size_t)n * cc->f * out_side(cc, cc->h) * out_side(cc, cc->w);
    ref_forward(cc, w, cc->bias ? w + nk : NULL, x, n, NULL, y);
    double s = 0.0;
    for (size_t i = 0; i < out; i++)
        s += y[i] * r[i];
    return s;
}

/* Central differences of ref_loss with respect to each entry of v (one of w or x). */
static void fd_grad(const conv_case *cc, double *w, double *x, const double *r, int n,
                    double *v, size_t len, double *y, double *g)
{
    for (size_t i = 0; i < len; i++) {
        double keep = v[i];
        v[i] = keep + FD_STEP;
        double lp = ref_loss(cc, w, x, r, n, y);
        v[i] = keep - FD_STEP;
        double lm = ref_loss(cc, w, x, r, n, y);
        v[i] = keep;
        g[i] = (lp - lm) / (2.0 * FD_STEP);
    }
}

static void check_grad(const char *what, int ci, const float *a, const double *b, size_t n)
{
    double e = rel_err(a, b, n), mx = max_abs_d(b, n);
    if (!(mx > NONTRIVIAL))
        fail_msg("case %d: %s gradient is all zeros (max %g)", ci, what, mx);
    if (!(e < GRAD_TOL))
        fail_msg("case %d: %s gradient error %g (max %g)", ci, what, e, mx);
}

static void test_gradients(void **state)
{
    (void)state;
    const int n = 2;
    for (int ci = 0; ci < NCASES; ci++) {
        const conv_case *cc = &CASES[ci];
        fnn_rng rng;
        fnn_rng_seed(&rng, 200 + ci);
        harness hs;
        make(&hs, cc, n, &rng);
        size_t in = fnn_shape_size(hs.l.in) * n, out = fnn_shape_size(hs.l.out) * n;
        size_t nk = (size_t)cc->f * cc->c * cc->k * cc->k, np = hs.l.nparams;
        float *x = malloc(in * sizeof *x), *y = malloc(out * sizeof *y);
        float *r = malloc(out * sizeof *r), *dx = malloc(in * sizeof *dx);
        double *yd = malloc(out * sizeof *yd), *zd = malloc(out * sizeof *zd);
        double *gw = malloc(np * sizeof *gw), *gx = malloc(in * sizeof *gx);
        assert_true(x && y && r && dx && yd && zd && gw && gx);
        uniform(&rng, r, out, 1.0f);

        /* Re-draw inputs and kernels until no pre-activation sits near a ReLU kink. */
        double *wd = NULL, *xd = NULL;
        int tries = 0;
        for (;; tries++) {
            assert_true(tries < 1000);
            uniform(&rng, x, in, 1.0f);
            free(wd);
            free(xd);
            wd = to_double(hs.params, np);
            xd = to_double(x, in);
            ref_forward(cc, wd, cc->bias ? wd + nk : NULL, xd, n, zd, yd);
            if (cc->act != FNN_ACT_RELU)
                break;
            double closest = INFINITY;
            for (size_t i = 0; i < out; i++)
                closest = fmin(closest, fabs(zd[i]));
            if (closest > KINK_MARGIN)
                break;
            hs.l.ops->init(&hs.l, &rng);
            for (size_t i = nk; i < np; i++)
                hs.params[i] = fnn_rng_uniform(&rng) - 0.5f;
        }

        run_forward(&hs, x, y, n, 1);
        run_backward(&hs, x, y, r, dx, n, 1);

        double *rd = to_double(r, out);
        fd_grad(cc, wd, xd, rd, n, wd, np, yd, gw);
        fd_grad(cc, wd, xd, rd, n, xd, in, yd, gx);
        check_grad("kernel", ci, hs.grads, gw, nk);
        if (cc->bias)
            check_grad("bias", ci, hs.grads + nk, gw + nk, np - nk);
        check_grad("input", ci, dx, gx, in);

        free(rd);
        free(wd);
        free(xd);
        free(x);
        free(y);
        free(r);
        free(dx);
        free(yd);
        free(zd);
        free(gw);
        free(gx);
        unmake(&hs);
    }
}

/* ---------------------------------------------------------------- teams */

/* Buffers for running one case twice and comparing: random x and dy, two outputs, two input
 * gradients, and a copy of the first run's parameter gradient. */
typedef struct {
    size_t in, out, np; /* floats of x, y and the parameters */
    float *x, *dy, *y1, *y2, *dx1, *dx2, *g1;
} twice;

static void twice_make(twice *t, const harness *hs, int n, fnn_rng *rng)
{
    t->in = fnn_shape_size(hs->l.in) * n;
    t->out = fnn_shape_size(hs->l.out) * n;
    t->np = hs->l.nparams;
    t->x = malloc(t->in * sizeof *t->x);
    t->dy = malloc(t->out * sizeof *t->dy);
    t->y1 = malloc(t->out * sizeof *t->y1);
    t->y2 = malloc(t->out * sizeof *t->y2);
    t->dx1 = malloc(t->in * sizeof *t->dx1);
    t->dx2 = malloc(t->in * sizeof *t->dx2);
    t->g1 = malloc(t->np * sizeof *t->g1);
    assert_true(t->x && t->dy && t->y1 && t->y2 && t->dx1 && t->dx2 && t->g1);
    uniform(rng, t->x, t->in, 1.0f);
    uniform(rng, t->dy, t->out, 1.0f);
}

static void twice_free(twice *t)
{
    free(t->x);
    free(t->dy);
    free(t->y1);
    free(t->y2);
    free(t->dx1);
    free(t->dx2);
    free(t->g1);
}

/* 1: a team's forward pass of the case may round otherwise than one thread's. oneDNN's products
 * round by their shape; so do OpenBLAS's by their number of rows (cblas_sgemm with 8 columns
 * and 8 inner: 4 to 11, 16 or 17 rows round otherwise than 64), which for Winograd's
 * products (3x3 stride 1 over 4 or more channels) is the tiles of a thread's images. */
static int team_rounds(const conv_case *cc)
{
#ifdef FNN_GEMM_DNNL
    (void)cc;
    return 1;
#else
    return cc->k == 3 && cc->s == 1 && cc->c >= 4;
#endif
}

/* A team of nt gives one thread's results: forward bitwise per image (to rounding where
 * team_rounds), gradients to rounding. */
static void check_team(int nt, int n)
{
    for (int ci = 0; ci < NCASES; ci++) {
        fnn_rng rng;
        fnn_rng_seed(&rng, 300 + ci);
        harness hs;
        make(&hs, &CASES[ci], n, &rng);
        twice t;
        twice_make(&t, &hs, n, &rng);

        run_forward(&hs, t.x, t.y1, n, 1);
        run_backward(&hs, t.x, t.y1, t.dy, t.dx1, n, 1);
        memcpy(t.g1, hs.grads, t.np * sizeof *t.g1);

        run_forward(&hs, t.x, t.y2, n, nt);
        if (team_rounds(&CASES[ci])) { /* a team cuts the images differently */
            double ey = rel_err_ff(t.y2, t.y1, t.out);
            if (!(ey < THREAD_TOL))
                fail_msg("case %d: %d threads change the forward pass by %g", ci, nt, ey);
        } else if (memcmp(t.y1, t.y2, t.out * sizeof *t.y1) != 0) {
            fail_msg("case %d: %d threads change the forward pass", ci, nt);
        }
        run_backward(&hs, t.x, t.y2, t.dy, t.dx2, n, nt);
        double eg = rel_err_ff(hs.grads, t.g1, t.np), ex = rel_err_ff(t.dx2, t.dx1, t.in);
        if (!(eg < THREAD_TOL) || !(ex < THREAD_TOL))
            fail_msg("case %d, %d threads, %d images: gradient error %g, input gradient %g",
                     ci, nt, n, eg, ex);

        /* Without an input gradient (the first layer) the parameter gradients are the same. */
        run_backward(&hs, t.x, t.y2, t.dy, NULL, n, nt);
        eg = rel_err_ff(hs.grads, t.g1, t.np);
        if (!(eg < THREAD_TOL))
            fail_msg("case %d, %d threads, no dx: gradient error %g", ci, nt, eg);

        twice_free(&t);
        unmake(&hs);
    }
}

/* Backward in evaluation mode (saliency) depends only on its arguments: not on what the last
 * forward pass left behind, here another batch's. */
static void test_eval_backward(void **state)
{
    (void)state;
    const int n = 3, nt = 2;
    for (int ci = 0; ci < NCASES; ci++) {
        fnn_rng rng;
        fnn_rng_seed(&rng, 500 + ci);
        harness hs;
        make(&hs, &CASES[ci], n, &rng);
        twice t;
        twice_make(&t, &hs, n, &rng);
        float *other = malloc(t.in * sizeof *other); /* (n, c, h, w) another batch */
        assert_non_null(other);
        uniform(&rng, other, t.in, 1.0f);

        run_forward(&hs, t.x, t.y1, n, nt);
        run_backward(&hs, t.x, t.y1, t.dy, t.dx1, n, nt);
        memcpy(t.g1, hs.grads, t.np * sizeof *t.g1);
        run_forward(&hs, other, t.y2, n, nt);
        run_backward_mode(&hs, 0, t.x, t.y1, t.dy, t.dx2, n, nt);
        double eg = rel_err_ff(hs.grads, t.g1, t.np), ex = rel_err_ff(t.dx2, t.dx1, t.in);
        if (!(eg < THREAD_TOL) || !(ex < THREAD_TOL))
            fail_msg("case %d: evaluation-mode backward after another batch: gradient error "
                     "%g, input gradient %g",
                     ci, eg, ex);
        free(other);
        twice_free(&t);
        unmake(&hs);
    }
}

static void test_two_threads(void **state)
{
    (void)state;
    check_team(2, 5);
    check_team(2, 1); /* thread 0 has no image: its gradients must still be written */
}

static void test_large_team(void **state)
{
    (void)state;
    check_team(5, 7); /* the executor sizes the buffers for its team: all five take part */
    fnn_layer l;
    assert_int_equal(setup_layer(&l, &CASES[0], 1, NULL), FNN_OK);
    for (int nt = 2; nt <= 5; nt++)
        assert_int_equal(l.ops->sharing(&l, 7, nt),
                         FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT | FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT |
                             FNN_BWD_PARTIAL);
}

/* The sharing flags' promise: in a team of nt, each thread's forward writes exactly its
 * rows fnn_team_range(n, 1) of y, and its backward exactly those rows of dx. Each thread gets
 * its own output buffers here, so a row written by another thread shows up as a hole. */
static void test_rows_contract(void **state)
{
    (void)state;
    enum { N = 5, MAXT = 4 };
    const conv_case *cc = &CASES[4];
    fnn_rng rng;
    fnn_rng_seed(&rng, 400);
    harness hs;
    make(&hs, cc, N, &rng);
    fnn_layer *l = &hs.l;
    size_t in = fnn_shape_size(l->in), out = fnn_shape_size(l->out);
    float *x = malloc(N * in * sizeof *x), *dy = malloc(N * out * sizeof *dy);
    float *y = malloc(MAXT * N * out * sizeof *y), *dx = malloc(MAXT * N * in * sizeof *dx);
    float *d = malloc(MAXT * N * out * sizeof *d);
    assert_true(x && dy && y && dx && d);
    uniform(&rng, x, N * in, 1.0f);
    uniform(&rng, dy, N * out, 1.0f);
    for (int nt = 2; nt <= MAXT; nt++) {
        memset(y, 0xff, MAXT * N * out * sizeof *y); /* NaN */
        memset(dx, 0xff, MAXT * N * in * sizeof *dx);
        for (int t = 0; t < MAXT; t++)
            memcpy(d + t * N * out, dy, N * out * sizeof *dy);
        size_t lo[MAXT], hi[MAXT];
        fnn_pass p = {.train = 1};
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num();
            fnn_team_range(N, 1, &lo[t], &hi[t]);
            l->ops->forward(l, &p, x, y + t * N * out, N);
            l->ops->backward(l, &p, x, y + t * N * out, d + t * N * out, dx + t * N * in, N);
        }
        for (int t = 0; t < nt; t++)
            for (size_t i = 0; i < N; i++) {
                int mine = i >= lo[t] && i < hi[t];
                const float *yi = y + (t * N + i) * out, *dxi = dx + (t * N + i) * in;
                for (size_t j = 0; j < out; j++)
                    if (isnan(yi[j]) == mine)
                        fail_msg("%d threads: thread %d, image %zu, y[%zu] %s", nt, t, i, j,
                                 mine ? "not written" : "written");
                for (size_t j = 0; j < in; j++)
                    if (isnan(dxi[j]) == mine)
                        fail_msg("%d threads: thread %d, image %zu, dx[%zu] %s", nt, t, i, j,
                                 mine ? "not written" : "written");
            }
    }
    free(x);
    free(dy);
    free(y);
    free(dx);
    free(d);
    unmake(&hs);
}

/* ---------------------------------------------------------------- evaluation */

/* Evaluation gives training's forward pass: by images bit for bit on the same team (the same
 * products, with the kernels' transform from the cache), and when a team shares each of fewer
 * images than it has threads, by filters, to rounding. */
static void test_eval_forward(void **state)
{
    (void)state;
    static const int ns[] = {1, 2, 3, 5}, nts[] = {1, 2, 3, 4, 5};
    for (int ci = 0; ci < NCASES; ci++) {
        fnn_rng rng;
        fnn_rng_seed(&rng, 600 + ci);
        harness hs;
        make(&hs, &CASES[ci], 5, &rng);
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof nts / sizeof *nts; b++) {
                int n = ns[a], nt = nts[b];
                twice t;
                twice_make(&t, &hs, n, &rng);
                run_forward(&hs, t.x, t.y1, n, nt);
                memset(t.y2, 0xff, t.out * sizeof *t.y2); /* NaN: must be overwritten */
                run_forward_mode(&hs, 0, t.x, t.y2, n, nt);
                if (n >= nt) { /* shared by images, as training shares them */
                    if (memcmp(t.y1, t.y2, t.out * sizeof *t.y1) != 0)
                        fail_msg("case %d, %d images, %d threads: evaluation differs from "
                                 "training", ci, n, nt);
                } else {
                    double e = rel_err_ff(t.y2, t.y1, t.out);
                    if (!(e < THREAD_TOL))
                        fail_msg("case %d, %d images, %d threads: evaluation differs by %g",
                                 ci, n, nt, e);
                }
                twice_free(&t);
            }
        unmake(&hs);
    }
}

/* One image in evaluation mode is shared by the team: each of 2 to 4 threads writes a part of
 * it (here into its own copy of y), the parts disjoint and together the whole output, with
 * one thread's values to rounding; so none of the threads idles. Winograd shares an image by
 * rows of tiles (case 25: 9 rows) or by vectors of 8 filters (case 26: 4 vectors). */
static void test_eval_one_image_shared(void **state)
{
    (void)state;
    enum { MAXT = 4 };
    static const int cases[] = {0, 4, 8, 16, 25, 26}; /* im2col, 1x1, direct, Winograd */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const conv_case *cc = &CASES[cases[k]];
        fnn_rng rng;
        fnn_rng_seed(&rng, 700 + cases[k]);
        harness hs;
        make(&hs, cc, 1, &rng);
        fnn_layer *l = &hs.l;
        size_t in = fnn_shape_size(l->in), out = fnn_shape_size(l->out);
        float *x = malloc(in * sizeof *x), *ref = malloc(out * sizeof *ref);
        float *y = malloc(MAXT * out * sizeof *y);
        assert_true(x && ref && y);
        uniform(&rng, x, in, 1.0f);
        run_forward(&hs, x, ref, 1, 1);
        for (int nt = 2; nt <= MAXT; nt++) {
            memset(y, 0xff, MAXT * out * sizeof *y); /* NaN */
            fnn_pass p = {.train = 0};
#pragma omp parallel num_threads(nt)
            l->ops->forward(l, &p, x, y + omp_get_thread_num() * out, 1);
            size_t written[MAXT] = {0};
            for (size_t j = 0; j < out; j++) {
                int by = -1;
                for (int t = 0; t < nt; t++) {
                    float v = y[t * out + j];
                    if (isnan(v))
                        continue;
                    if (by >= 0)
                        fail_msg("case %d, %d threads: threads %d and %d both wrote y[%zu]",
                                 cases[k], nt, by, t, j);
                    by = t;
                    written[t]++;
                    if (fabsf(v - ref[j]) > THREAD_TOL * (1.0f + fabsf(ref[j])))
                        fail_msg("case %d, %d threads: y[%zu] = %g, one thread %g", cases[k],
                                 nt, j, v, ref[j]);
                }
                if (by < 0)
                    fail_msg("case %d, %d threads: nobody wrote y[%zu]", cases[k], nt, j);
            }
            for (int t = 0; t < nt && nt <= cc->f; t++) /* not fewer filters than threads */
                if (!written[t])
                    fail_msg("case %d, %d threads: thread %d idled", cases[k], nt, t);
        }
        free(x);
        free(ref);
        free(y);
        unmake(&hs);
    }
}

/* Evaluation keeps the kernels' transform between passes; it must follow every change of
 * the weights, made here as a caller could through fnn_model_tensor's pointer: all of them,
 * then a single value in the last filter (another thread's share of the check). */
static void test_eval_follows_weights(void **state)
{
    (void)state;
    const int n = 3;
    for (int ci = 0; ci < NCASES; ci++) {
        const conv_case *cc = &CASES[ci];
        fnn_rng rng;
        fnn_rng_seed(&rng, 800 + ci);
        harness hs;
        make(&hs, cc, n, &rng);
        twice t;
        twice_make(&t, &hs, n, &rng);
        size_t nk = (size_t)cc->f * cc->c * cc->k * cc->k;
        for (int nt = 1; nt <= 2; nt++)
            for (int change = 0; change < 3; change++) {
                if (change == 1)
                    uniform(&rng, hs.params, nk, 0.5f);
                else if (change == 2)
                    hs.params[nk - 1] += 0.25f;
                run_forward_mode(&hs, 0, t.x, t.y2, n, nt);
                run_forward(&hs, t.x, t.y1, n, nt);
                if (memcmp(t.y1, t.y2, t.out * sizeof *t.y1) != 0)
                    fail_msg("case %d, %d threads, change %d: evaluation used stale kernels",
                             ci, nt, change);
            }
        twice_free(&t);
        unmake(&hs);
    }
}

/* ---------------------------------------------------------------- setup */

static void expect_setup_error(const conv_case *cc, const char *needle)
{
    fnn_layer l;
    fnn_error err = {0};
    assert_int_not_equal(setup_layer(&l, cc, 3, &err), FNN_OK);
    assert_int_equal(err.status, FNN_ERR_ARG);
    if (!strstr(err.msg, "layer 3") || (needle && !strstr(err.msg, needle)))
        fail_msg("unexpected message: %s", err.msg);
}

static void test_setup_errors(void **state)
{
    (void)state;
    expect_setup_error(&(conv_case){1, 4, 4, 4, 5, 1, 0, 1, FNN_ACT_LINEAR}, "(1, 4, 4)");
    expect_setup_error(&(conv_case){1, 8, 4, 4, 5, 1, 0, 1, FNN_ACT_LINEAR}, "(1, 8, 4)");
    expect_setup_error(&(conv_case){1, 8, 8, 4, 3, 0, 1, 1, FNN_ACT_LINEAR}, "stride 0");
    expect_setup_error(&(conv_case){1, 8, 8, 0, 3, 1, 1, 1, FNN_ACT_LINEAR}, "filters 0");
    expect_setup_error(&(conv_case){1, 8, 8, 4, 0, 1, 1, 1, FNN_ACT_LINEAR}, "kernel 0");
    expect_setup_error(&(conv_case){1, 8, 8, 4, 3, 1, 1, 1, FNN_ACT_SOFTMAX}, "activation");
    /* 'same' padding fits any kernel. */
    fnn_layer l;
    assert_int_equal(setup_layer(&l, &(conv_case){1, 4, 4, 4, 5, 1, 1, 1, FNN_ACT_LINEAR}, 3,
                                 NULL),
                     FNN_OK);
    assert_int_equal(l.out.h, 4);
}

static void test_shapes(void **state)
{
    (void)state;
    static const struct {
        conv_case cc;
        int oh, ow;
    } want[] = {
        {{1, 28, 28, 32, 3, 1, 1, 1, FNN_ACT_RELU}, 28, 28},
        {{1, 28, 28, 32, 3, 1, 0, 1, FNN_ACT_RELU}, 26, 26},
        {{3, 7, 7, 4, 3, 2, 1, 1, FNN_ACT_LINEAR}, 4, 4},
        {{3, 8, 8, 4, 3, 2, 1, 0, FNN_ACT_LINEAR}, 4, 4},
        {{3, 7, 8, 4, 3, 2, 0, 0, FNN_ACT_LINEAR}, 3, 3},
        {{2, 28, 28, 16, 2, 2, 0, 1, FNN_ACT_LINEAR}, 14, 14},
        {{2, 9, 6, 16, 5, 1, 0, 1, FNN_ACT_LINEAR}, 5, 2},
        {{2, 5, 5, 16, 5, 3, 1, 1, FNN_ACT_LINEAR}, 2, 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const conv_case *cc = &want[i].cc;
        fnn_layer l;
        assert_int_equal(setup_layer(&l, cc, 1, NULL), FNN_OK);
        assert_int_equal(l.out.c, cc->f);
        assert_int_equal(l.out.h, want[i].oh);
        assert_int_equal(l.out.w, want[i].ow);
        size_t nk = (size_t)cc->f * cc->c * cc->k * cc->k;
        assert_int_equal(l.nparams, nk + (cc->bias ? (size_t)cc->f : 0));
        assert_int_equal(l.ntensors, cc->bias ? 2 : 1);
    }
}

static void test_tensors(void **state)
{
    (void)state;
    fnn_layer l;
    assert_int_equal(setup_layer(&l, &(conv_case){3, 8, 8, 5, 3, 1, 1, 1, FNN_ACT_RELU}, 4,
                                 NULL),
                     FNN_OK);
    float params[5 * 3 * 9 + 5];
    l.params = params;
    assert_int_equal(l.nparams, sizeof params / sizeof params[0]);
    fnn_tensor t;
    l.ops->tensor(&l, 0, &t);
    assert_string_equal(t.name, "layers.4.kernel");
    assert_int_equal(t.rank, 4);
    assert_int_equal(t.shape[0], 5);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.shape[2], 3);
    assert_int_equal(t.shape[3], 3);
    assert_int_equal(t.size, 5 * 3 * 9);
    assert_ptr_equal(t.data, params);
    l.ops->tensor(&l, 1, &t);
    assert_string_equal(t.name, "layers.4.bias");
    assert_int_equal(t.rank, 1);
    assert_int_equal(t.shape[0], 5);
    assert_int_equal(t.size, 5);
    assert_ptr_equal(t.data, params + 5 * 3 * 9);
}

/* Uniform kernels within the Glorot or He limit, reaching close to it; zero bias. */
static void test_init(void **state)
{
    (void)state;
    for (int he = 0; he <= 1; he++) {
        fnn_layer l;
        conv_case cc = {2, 8, 8, 32, 3, 1, 1, 1, FNN_ACT_RELU};
        assert_int_equal(setup_layer(&l, &cc, 1, NULL), FNN_OK);
        l.cfg.conv.he = he;
        float *p = malloc(l.nparams * sizeof *p);
        assert_non_null(p);
        for (size_t i = 0; i < l.nparams; i++)
            p[i] = 7.0f;
        l.params = p;
        fnn_rng rng;
        fnn_rng_seed(&rng, 9);
        l.ops->init(&l, &rng);
        double fan_in = 2 * 9, fan_out = 32 * 9;
        double limit = he ? sqrt(6.0 / fan_in) : sqrt(6.0 / (fan_in + fan_out));
        size_t nk = 32 * 2 * 9;
        double mx = 0.0, sum = 0.0;
        for (size_t i = 0; i < nk; i++) {
            mx = fmax(mx, fabs(p[i]));
            sum += p[i];
        }
        assert_true(mx <= limit);
        assert_true(mx > 0.95 * limit);
        assert_true(fabs(sum / nk) < 0.1 * limit);
        for (size_t i = nk; i < l.nparams; i++)
            assert_true(p[i] == 0.0f);
        free(p);
    }
}

static void test_format(void **state)
{
    (void)state;
    static const struct {
        conv_case cc;
        int he;
        const char *token;
    } want[] = {
        {{1, 28, 28, 32, 3, 1, 1, 1, FNN_ACT_RELU}, 0, "conv2d:32:3:same:relu"},
        {{1, 28, 28, 8, 5, 1, 0, 1, FNN_ACT_LINEAR}, 0, "conv2d:8:5"},
        {{1, 28, 28, 64, 3, 2, 1, 0, FNN_ACT_RELU}, 1, "conv2d:64:3:s2:same:nobias:he:relu"},
        {{1, 28, 28, 16, 2, 2, 0, 1, FNN_ACT_LINEAR}, 1, "conv2d:16:2:s2:he"},
        {{1, 28, 28, 16, 3, 3, 0, 0, FNN_ACT_LINEAR}, 0, "conv2d:16:3:s3:nobias"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        fnn_layer l;
        assert_int_equal(setup_layer(&l, &want[i].cc, 1, NULL), FNN_OK);
        l.cfg.conv.he = want[i].he;
        char buf[64];
        l.ops->format(&l, buf, sizeof buf);
        assert_string_equal(buf, want[i].token);
    }
    assert_string_equal(fnn_conv2d_ops.kind, "conv2d");
    assert_string_equal(fnn_conv2d_ops.type, "Conv2D");
}

int main(void)
{
    fnn_blas_single_threaded();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),     cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_two_threads), cmocka_unit_test(test_large_team),
        cmocka_unit_test(test_rows_contract), cmocka_unit_test(test_eval_backward),
        cmocka_unit_test(test_eval_forward), cmocka_unit_test(test_eval_one_image_shared),
        cmocka_unit_test(test_eval_follows_weights),
        cmocka_unit_test(test_setup_errors), cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_tensors),     cmocka_unit_test(test_init),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
