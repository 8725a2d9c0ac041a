/* Batch normalisation: normalised outputs, a double reference with random gamma and beta, the
 * moving statistics after one and two steps, eval mode, gradients of gamma, beta and the input
 * against central differences (training and eval), one thread against two, the sums'
 * order, tensors, format and setup errors. */
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
#include "check.h"

/* Central-difference step on the double reference; its truncation error is O(FD_STEP^2). */
#define FD_STEP 1e-5
/* max|analytic - reference| / max|reference| for float results against the double ones. */
#define GRAD_TOL 1e-3
#define FWD_TOL 1e-5
/* A gradient whose largest entry is below this is treated as missing: the check fails. */
#define NONTRIVIAL 1e-3

/* ---------------------------------------------------------------- harness */

typedef struct {
    fnn_layer l;
    int n;         /* batch rows the buffers hold */
    size_t hw;     /* h * w */
    float *x;      /* (n, c, h, w) */
    float *y;      /* (n, c, h, w) */
    float *dy;     /* (n, c, h, w) */
    float *dx;     /* (n, c, h, w) */
} bn_case;

static size_t sz(const bn_case *bc) { return (size_t)bc->n * fnn_shape_size(bc->l.in); }

/* Sets up a batch-norm layer on (c, h, w) and allocates its buffers for n rows; the
 * parameters are initialised as the model would. */
static void case_make(bn_case *bc, int c, int h, int w, int n, float momentum, float eps)
{
    memset(bc, 0, sizeof *bc);
    bc->l = (fnn_layer){.ops = &fnn_batchnorm_ops, .index = 3, .in = {c, h, w}};
    bc->l.cfg.bn.momentum = momentum;
    bc->l.cfg.bn.eps = eps;
    fnn_error err = {0};
    fnn_status s = fnn_batchnorm_ops.setup(&bc->l, &err);
    if (s != FNN_OK)
        print_message("setup: %s\n", err.msg);
    assert_int_equal(s, FNN_OK);
    bc->n = n;
    bc->hw = (size_t)h * w;
    bc->l.params = malloc(bc->l.nparams * sizeof(float));
    bc->l.grads = malloc(bc->l.nparams * sizeof(float));
    assert_true(bc->l.params && bc->l.grads);
    if (bc->l.scratch_per_sample) {
        bc->l.scratch = malloc((size_t)n * bc->l.scratch_per_sample * sizeof(float));
        assert_non_null(bc->l.scratch);
    }
    if (bc->l.team_scratch_size) {
        bc->l.team_scratch = malloc(bc->l.team_scratch_size * sizeof(float));
        assert_non_null(bc->l.team_scratch);
    }
    fnn_rng rng;
    fnn_rng_seed(&rng, 1);
    fnn_batchnorm_ops.init(&bc->l, &rng);
    bc->x = calloc(sz(bc), sizeof(float));
    bc->dx = calloc(sz(bc), sizeof(float));
    bc->y = calloc(sz(bc), sizeof(float));
    bc->dy = calloc(sz(bc), sizeof(float));
    assert_true(bc->x && bc->dx && bc->y && bc->dy);
}

static void case_free(bn_case *bc)
{
    free(bc->l.params);
    free(bc->l.grads);
    free(bc->l.scratch);
    free(bc->l.team_scratch);
    free(bc->x);
    free(bc->dx);
    free(bc->y);
    free(bc->dy);
}

/* Forward then backward (dy -> dx) with `threads` threads (1: outside a parallel region). dx,
 * the gradients and the scratch start as NaN, so that anything read before it is written, or
 * accumulated without zeroing, fails. */
static void case_run(bn_case *bc, int train, int threads)
{
    fnn_pass p = {.train = train, .sync = NULL};
    for (size_t i = 0; i < sz(bc); i++)
        bc->dx[i] = NAN;
    for (size_t i = 0; i < bc->l.nparams; i++)
        bc->l.grads[i] = NAN;
    for (size_t i = 0; i < bc->l.team_scratch_size; i++)
        bc->l.team_scratch[i] = NAN;
    float *dy = malloc(sz(bc) * sizeof *dy); /* backward may overwrite its dy */
    assert_non_null(dy);
    memcpy(dy, bc->dy, sz(bc) * sizeof *dy);
    if (threads == 1) {
        bc->l.ops->forward(&bc->l, &p, bc->x, bc->y, bc->n);
        bc->l.ops->backward(&bc->l, &p, bc->x, bc->y, dy, bc->dx, bc->n);
    } else {
#pragma omp parallel num_threads(threads)
        {
            bc->l.ops->forward(&bc->l, &p, bc->x, bc->y, bc->n);
#pragma omp barrier
            bc->l.ops->backward(&bc->l, &p, bc->x, bc->y, dy, bc->dx, bc->n);
        }
    }
    free(dy);
}

/* Uniform in [lo, hi). */
static void fill_uniform(float *a, size_t n, float lo, float hi, fnn_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        a[i] = lo + (hi - lo) * fnn_rng_uniform(rng);
}

static float *gamma_of(bn_case *bc) { return bc->l.params; }
static float *beta_of(bn_case *bc) { return bc->l.params + bc->l.in.c; }
static float *mmean_of(bn_case *bc) { return bc->l.params + 2 * bc->l.in.c; }
static float *mvar_of(bn_case *bc) { return bc->l.params + 3 * bc->l.in.c; }

/* Random input away from zero mean and unit scale, random gamma, beta and dy; moving
 * statistics that differ from the batch's. */
static void fill_random(bn_case *bc, fnn_rng *rng)
{
    int c = bc->l.in.c;
    fill_uniform(bc->x, sz(bc), -1.0f, 3.0f, rng);
    fill_uniform(bc->dy, sz(bc), -1.0f, 1.0f, rng);
    fill_uniform(gamma_of(bc), (size_t)c, 0.5f, 2.0f, rng);
    fill_uniform(beta_of(bc), (size_t)c, -1.0f, 1.0f, rng);
    fill_uniform(mmean_of(bc), (size_t)c, 0.0f, 2.0f, rng);
    fill_uniform(mvar_of(bc), (size_t)c, 0.5f, 2.0f, rng);
}

/* ---------------------------------------------------------------- the double reference */

typedef struct {
    int n, c;
    size_t hw;
    double eps;
    int train;
    double *x;     /* (n, c, hw) */
    double *gamma, *beta, *mm, *mv; /* (c) each */
    double *r;     /* (n, c, hw): the loss is sum(y * r) */
} ref;

/* Batch mean and biased variance of channel ch. */
static void ref_moments(const double *x, int n, int c, size_t hw, int ch, double *mean,
                        double *var)
{
    double s = 0.0, ss = 0.0, m = (double)n * hw;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < hw; k++)
            s += x[((size_t)i * c + ch) * hw + k];
    *mean = s / m;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < hw; k++) {
            double d = x[((size_t)i * c + ch) * hw + k] - *mean;
            ss += d * d;
        }
    *var = ss / m;
}

/* The output into y (may be NULL); returns sum(y * r). Training mode recomputes the batch
 * statistics from x, so that differences through them count. */
static double ref_forward(const ref *R, double *y)
{
    double loss = 0.0;
    for (int ch = 0; ch < R->c; ch++) {
        double mean = R->mm[ch], var = R->mv[ch];
        if (R->train)
            ref_moments(R->x, R->n, R->c, R->hw, ch, &mean, &var);
        double inv = 1.0 / sqrt(var + R->eps);
        for (int i = 0; i < R->n; i++)
            for (size_t k = 0; k < R->hw; k++) {
                size_t o = ((size_t)i * R->c + ch) * R->hw + k;
                double v = R->gamma[ch] * (R->x[o] - mean) * inv + R->beta[ch];
                if (y)
                    y[o] = v;
                loss += v * R->r[o];
            }
    }
    return loss;
}

/* Central difference of the loss in *v. */
static double ref_diff(const ref *R, double *v)
{
    double keep = *v;
    *v = keep + FD_STEP;
    double up = ref_forward(R, NULL);
    *v = keep - FD_STEP;
    double down = ref_forward(R, NULL);
    *v = keep;
    return (up - down) / (2 * FD_STEP);
}

static double *to_double(const float *a, size_t n)
{
    double *d = malloc(n * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = a[i];
    return d;
}

/* A reference on the case's current buffers and parameters (before any forward pass changed
 * the moving statistics). */
static ref ref_make(bn_case *bc, int train)
{
    int c = bc->l.in.c;
    ref R = {.n = bc->n, .c = c, .hw = bc->hw, .eps = bc->l.cfg.bn.eps, .train = train};
    R.x = to_double(bc->x, sz(bc));
    R.r = to_double(bc->dy, sz(bc));
    R.gamma = to_double(gamma_of(bc), (size_t)c);
    R.beta = to_double(beta_of(bc), (size_t)c);
    R.mm = to_double(mmean_of(bc), (size_t)c);
    R.mv = to_double(mvar_of(bc), (size_t)c);
    return R;
}

static void ref_free(ref *R)
{
    free(R->x);
    free(R->r);
    free(R->gamma);
    free(R->beta);
    free(R->mm);
    free(R->mv);
}

/* Fails when got is not within tol of want (or, with nontrivial, is all but zero); BN_VERBOSE
 * in the environment prints every error, to see the margin. */
static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double tol, int nontrivial)
{
    double err = rel_err(got, want, n);
    if (getenv("BN_VERBOSE") || !(err < tol) || (nontrivial && max_abs_f(got, n) < NONTRIVIAL))
        print_message("%s: max |got| %g, relative error %g\n", what, max_abs_f(got, n), err);
    assert_true(err < tol);
    if (nontrivial)
        assert_true(max_abs_f(got, n) > NONTRIVIAL);
}

/* ---------------------------------------------------------------- forward */

/* With gamma 1 and beta 0, every channel of the output has mean 0 and variance
 * var / (var + eps), within 1e-3 of 1 for these inputs. */
static void normalise_case(int c, int h, int w, int n)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, 7u + (uint64_t)c);
    bn_case bc;
    case_make(&bc, c, h, w, n, 0.99f, 1e-3f);
    fill_uniform(bc.x, sz(&bc), 2.0f, 6.0f, &rng); /* mean 4, variance 4/3 */
    case_run(&bc, 1, 1);
    double *yd = to_double(bc.y, sz(&bc)), *xd = to_double(bc.x, sz(&bc));
    for (int ch = 0; ch < c; ch++) {
        double mean, var, xm, xv;
        ref_moments(yd, n, c, bc.hw, ch, &mean, &var);
        ref_moments(xd, n, c, bc.hw, ch, &xm, &xv);
        if (!(fabs(mean) < 1e-5 && fabs(var - xv / (xv + 1e-3)) < 1e-5))
            print_message("channel %d: output mean %g, variance %g\n", ch, mean, var);
        assert_true(fabs(mean) < 1e-5);
        assert_true(fabs(var - xv / (xv + 1e-3)) < 1e-5);
        assert_true(fabs(var - 1.0) < 2e-3);
    }
    free(yd);
    free(xd);
    case_free(&bc);
}

static void test_normalises_per_channel(void **state)
{
    (void)state;
    normalise_case(3, 4, 4, 5);
    normalise_case(6, 1, 1, 7);
}

/* Output against the double reference with random gamma and beta, training and eval. */
static void forward_case(int c, int h, int w, int n, int train)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, 100u + (uint64_t)(c * 10 + train));
    bn_case bc;
    case_make(&bc, c, h, w, n, 0.9f, 1e-3f);
    fill_random(&bc, &rng);
    ref R = ref_make(&bc, train);
    double *y = malloc(sz(&bc) * sizeof *y);
    assert_non_null(y);
    ref_forward(&R, y);
    case_run(&bc, train, 1);
    expect_close(train ? "training forward" : "eval forward", bc.y, y, sz(&bc), FWD_TOL, 1);
    free(y);
    ref_free(&R);
    case_free(&bc);
}

static void test_forward_reference(void **state)
{
    (void)state;
    for (int train = 0; train <= 1; train++) {
        forward_case(3, 4, 4, 5, train);
        forward_case(6, 1, 1, 7, train);
        forward_case(2, 3, 5, 1, train); /* one sample: statistics over the plane alone */
    }
}

/* moving = momentum moving + (1 - momentum) batch, with the biased batch variance, after one
 * and after two steps on different batches. */
static void test_moving_statistics(void **state)
{
    (void)state;
    const float momentum = 0.9f;
    fnn_rng rng;
    fnn_rng_seed(&rng, 42);
    for (int threads = 1; threads <= 2; threads++) {
        bn_case bc;
        case_make(&bc, 3, 4, 4, 5, momentum, 1e-3f);
        int c = bc.l.in.c;
        double mm[3] = {0, 0, 0}, mv[3] = {1, 1, 1};
        for (int step = 0; step < 2; step++) {
            fill_uniform(bc.x, sz(&bc), -2.0f + step, 4.0f + 3.0f * step, &rng);
            double *xd = to_double(bc.x, sz(&bc));
            for (int ch = 0; ch < c; ch++) {
                double mean, var;
                ref_moments(xd, bc.n, c, bc.hw, ch, &mean, &var);
                mm[ch] = momentum * mm[ch] + (1.0 - momentum) * mean;
                mv[ch] = momentum * mv[ch] + (1.0 - momentum) * var;
            }
            free(xd);
            case_run(&bc, 1, threads);
            for (int ch = 0; ch < c; ch++) {
                if (fabs(mmean_of(&bc)[ch] - mm[ch]) > 1e-6 ||
                    fabs(mvar_of(&bc)[ch] - mv[ch]) > 1e-6)
                    print_message("step %d channel %d: moving mean %g (want %g), variance %g "
                                  "(want %g)\n", step + 1, ch, (double)mmean_of(&bc)[ch], mm[ch],
                                  (double)mvar_of(&bc)[ch], mv[ch]);
                assert_true(fabs(mmean_of(&bc)[ch] - mm[ch]) <= 1e-6);
                assert_true(fabs(mvar_of(&bc)[ch] - mv[ch]) <= 1e-6);
            }
            /* Gamma and beta are the optimizer's: the forward pass leaves them alone. */
            for (int ch = 0; ch < c; ch++) {
                assert_true(gamma_of(&bc)[ch] == 1.0f);
                assert_true(beta_of(&bc)[ch] == 0.0f);
            }
        }
        case_free(&bc);
    }
}

/* Eval mode normalises with the moving statistics, changes no parameter, and gives each sample
 * the same output alone as within a batch. */
static void test_eval_uses_moving_statistics(void **state)
{
    (void)state;
    fnn_rng rng;
    fnn_rng_seed(&rng, 5);
    bn_case bc;
    case_make(&bc, 3, 2, 2, 4, 0.99f, 1e-3f);
    fill_random(&bc, &rng);
    int c = bc.l.in.c;
    float *before = malloc(bc.l.nparams * sizeof *before);
    assert_non_null(before);
    memcpy(before, bc.l.params, bc.l.nparams * sizeof *before);
    case_run(&bc, 0, 1);
    assert_memory_equal(before, bc.l.params, bc.l.nparams * sizeof *before);
    for (int i = 0; i < bc.n; i++)
        for (int ch = 0; ch < c; ch++)
            for (size_t k = 0; k < bc.hw; k++) {
                size_t o = ((size_t)i * c + ch) * bc.hw + k;
                double want = gamma_of(&bc)[ch] * (bc.x[o] - mmean_of(&bc)[ch]) /
                                  sqrt(mvar_of(&bc)[ch] + 1e-3) + beta_of(&bc)[ch];
                assert_true(fabs(bc.y[o] - want) < 1e-5);
            }

    bn_case one;
    case_make(&one, 3, 2, 2, 1, 0.99f, 1e-3f);
    memcpy(one.l.params, bc.l.params, bc.l.nparams * sizeof(float));
    size_t row = fnn_shape_size(bc.l.in);
    memcpy(one.x, bc.x + 2 * row, row * sizeof(float));
    case_run(&one, 0, 1);
    assert_memory_equal(one.y, bc.y + 2 * row, row * sizeof(float));
    free(before);
    case_free(&one);
    case_free(&bc);
}

/* ---------------------------------------------------------------- gradients */

/* Gradients of sum(y * r) with respect to gamma, beta and every input element against
 * central differences of the reference; the moving statistics' gradients are zero. */
static void grad_case(int c, int h, int w, int n, int train)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, 900u + (uint64_t)(c * 10 + train));
    bn_case bc;
    case_make(&bc, c, h, w, n, 0.99f, 1e-3f);
    fill_random(&bc, &rng);
    ref R = ref_make(&bc, train);
    double *gx = malloc(sz(&bc) * sizeof *gx), *gg = malloc((size_t)c * sizeof *gg);
    double *gb = malloc((size_t)c * sizeof *gb);
    assert_true(gx && gg && gb);
    for (size_t i = 0; i < sz(&bc); i++)
        gx[i] = ref_diff(&R, &R.x[i]);
    for (int ch = 0; ch < c; ch++) {
        gg[ch] = ref_diff(&R, &R.gamma[ch]);
        gb[ch] = ref_diff(&R, &R.beta[ch]);
    }
    case_run(&bc, train, 1);
    char what[64];
    snprintf(what, sizeof what, "%s %dx%dx%d n %d: dx", train ? "train" : "eval", c, h, w, n);
    expect_close(what, bc.dx, gx, sz(&bc), GRAD_TOL, 1);
    snprintf(what, sizeof what, "%s %dx%dx%d n %d: dgamma", train ? "train" : "eval", c, h, w,
             n);
    expect_close(what, bc.l.grads, gg, (size_t)c, GRAD_TOL, 1);
    snprintf(what, sizeof what, "%s %dx%dx%d n %d: dbeta", train ? "train" : "eval", c, h, w, n);
    expect_close(what, bc.l.grads + c, gb, (size_t)c, GRAD_TOL, 1);
    for (size_t i = 2 * (size_t)c; i < bc.l.nparams; i++)
        assert_true(bc.l.grads[i] == 0.0f); /* not assert_float_equal, which lets NaN pass */
    free(gx);
    free(gg);
    free(gb);
    ref_free(&R);
    case_free(&bc);
}

static void test_grad_training(void **state)
{
    (void)state;
    grad_case(3, 4, 4, 5, 1);
    grad_case(6, 1, 1, 7, 1);
}

static void test_grad_eval(void **state)
{
    (void)state;
    grad_case(3, 4, 4, 5, 0);
    grad_case(6, 1, 1, 7, 0);
}

/* A training-mode input gradient sums to zero per channel: the mean is subtracted. */
static void test_grad_training_sums_to_zero(void **state)
{
    (void)state;
    fnn_rng rng;
    fnn_rng_seed(&rng, 77);
    bn_case bc;
    case_make(&bc, 3, 4, 4, 5, 0.99f, 1e-3f);
    fill_random(&bc, &rng);
    case_run(&bc, 1, 1);
    for (int ch = 0; ch < 3; ch++) {
        double s = 0.0;
        for (int i = 0; i < bc.n; i++)
            for (size_t k = 0; k < bc.hw; k++)
                s += bc.dx[((size_t)i * 3 + ch) * bc.hw + k];
        assert_true(fabs(s) < 1e-4);
    }
    case_free(&bc);
}

/* ---------------------------------------------------------------- threads */

/* Two threads give the same outputs, gradients and moving statistics, bit for bit, as one.
 * 20 channels split 8 + 12 between two threads; 3 and 6 all go to the first. */
static void threads_case(int c, int h, int w, int n, int train)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, 300u + (uint64_t)c);
    bn_case bc;
    case_make(&bc, c, h, w, n, 0.9f, 1e-3f);
    fill_random(&bc, &rng);
    float *p0 = malloc(bc.l.nparams * sizeof *p0), *p1 = malloc(bc.l.nparams * sizeof *p1);
    float *g1 = malloc(bc.l.nparams * sizeof *g1);
    float *y1 = malloc(sz(&bc) * sizeof *y1), *dx1 = malloc(sz(&bc) * sizeof *dx1);
    assert_true(p0 && p1 && g1 && y1 && dx1);
    memcpy(p0, bc.l.params, bc.l.nparams * sizeof *p0);
    case_run(&bc, train, 1);
    memcpy(p1, bc.l.params, bc.l.nparams * sizeof *p1);
    memcpy(g1, bc.l.grads, bc.l.nparams * sizeof *g1);
    memcpy(y1, bc.y, sz(&bc) * sizeof *y1);
    memcpy(dx1, bc.dx, sz(&bc) * sizeof *dx1);

    memcpy(bc.l.params, p0, bc.l.nparams * sizeof *p0);
    case_run(&bc, train, 2);
    assert_memory_equal(p1, bc.l.params, bc.l.nparams * sizeof *p1);
    assert_memory_equal(g1, bc.l.grads, bc.l.nparams * sizeof *g1);
    assert_memory_equal(y1, bc.y, sz(&bc) * sizeof *y1);
    assert_memory_equal(dx1, bc.dx, sz(&bc) * sizeof *dx1);
    if (train) /* the step moved the statistics once, not once per thread */
        for (int ch = 0; ch < c; ch++)
            assert_true(p1[2 * c + ch] != p0[2 * c + ch]);
    free(p0);
    free(p1);
    free(g1);
    free(y1);
    free(dx1);
    case_free(&bc);
}

static void test_one_vs_two_threads(void **state)
{
    (void)state;
    for (int train = 0; train <= 1; train++) {
        threads_case(3, 4, 4, 5, train);
        threads_case(6, 1, 1, 7, train);
        threads_case(20, 2, 3, 3, train);
        threads_case(20, 1, 1, 9, train);
    }
}

/* ---------------------------------------------------------------- the sums' order */

/* The statistics and the gamma and beta gradients are sums in double, each channel's terms
 * added in order (image by image, then along the plane), each product rounded before it is
 * added. The layer sums 8 channels at a time, one per vector lane; its sums must be this
 * loop's bit for bit, so that results do not depend on how channels are grouped. `volatile`
 * keeps the compiler from fusing a product into its sum. */
static void sequential_sums(const float *x, const float *dy, int n, int c, size_t hw, int ch,
                            float mu, float is, double out[4])
{
    double m = (double)n * hw, s = 0.0, ss = 0.0, sg = 0.0, sb = 0.0;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < hw; k++)
            s += x[((size_t)i * c + ch) * hw + k];
    out[0] = s / m;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < hw; k++) {
            double d = x[((size_t)i * c + ch) * hw + k] - out[0];
            volatile double d2 = d * d;
            ss += d2;
        }
    out[1] = ss / m;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < hw; k++) {
            size_t at = ((size_t)i * c + ch) * hw + k;
            volatile double prod = (double)dy[at] * ((x[at] - mu) * is);
            sg += prod;
            sb += dy[at];
        }
    out[2] = sg;
    out[3] = sb;
}

/* Channels [ch, ch + count) of a (n, c, h, w) batch, against the loop above. */
static void sums_case(int c, int h, int w, int n, int ch, int count)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, 400u + (uint64_t)(c * 100 + h * w));
    size_t hw = (size_t)h * w, size = (size_t)n * c * hw;
    float *x = malloc(size * sizeof *x), *dy = malloc(size * sizeof *dy);
    assert_true(x && dy);
    fill_uniform(x, size, -1.0f, 3.0f, &rng);
    fill_uniform(dy, size, -1.0f, 1.0f, &rng);
    float mu[8], is[8];
    double got[4][8], want[4];
    for (int j = 0; j < count; j++) {
        mu[j] = 0.9f + 0.01f * (float)j;
        is[j] = 1.3f - 0.02f * (float)j;
    }
    fnn_batchnorm_moments(x, n, c, hw, ch, count, got[0], got[1]);
    fnn_batchnorm_grad_sums(x, dy, n, c, hw, ch, count, mu, is, got[2], got[3]);
    static const char *const names[4] = {"mean", "variance", "sum(dy x_hat)", "sum(dy)"};
    for (int j = 0; j < count; j++) {
        sequential_sums(x, dy, n, c, hw, ch + j, mu[j], is[j], want);
        for (int q = 0; q < 4; q++)
            if (memcmp(&got[q][j], &want[q], sizeof want[q]))
                fail_msg("%dx%dx%d, batch %d, channel %d: %s %.17g, in order %.17g", c, h, w,
                         n, ch + j, names[q], got[q][j], want[q]);
    }
    free(x);
    free(dy);
}

/* Blocks of 8 channels and fewer, planes of whole groups of 4 elements (28x28) and with a
 * rest (3x3, 1x5), and flat inputs (1x1). Many terms far from zero make any other order show
 * in the sums' last bits. */
static void test_sums_in_sequential_order(void **state)
{
    (void)state;
    sums_case(8, 28, 28, 3, 0, 8);
    sums_case(16, 28, 28, 2, 8, 8);
    sums_case(13, 3, 3, 40, 8, 5);
    sums_case(13, 3, 3, 40, 0, 8);
    sums_case(16, 1, 5, 60, 8, 8);
    sums_case(24, 1, 1, 300, 16, 8);
}

/* ---------------------------------------------------------------- tensors, format, setup */

static void test_tensors_and_format(void **state)
{
    (void)state;
    static const char *const names[4] = {"layers.3.gamma", "layers.3.beta",
                                         "layers.3.moving_mean", "layers.3.moving_variance"};
    static const float init[4] = {1, 0, 0, 1};
    bn_case bc;
    case_make(&bc, 5, 3, 2, 1, 0.99f, 1e-3f);
    assert_int_equal(bc.l.out.c, 5);
    assert_int_equal(bc.l.out.h, 3);
    assert_int_equal(bc.l.out.w, 2);
    assert_int_equal(bc.l.nparams, 20);
    assert_int_equal(bc.l.ntensors, 4);
    assert_int_equal(bc.l.team_scratch_size, 10);
    for (int i = 0; i < 4; i++) {
        fnn_tensor t;
        memset(&t, 0x55, sizeof t);
        fnn_batchnorm_ops.tensor(&bc.l, i, &t);
        assert_string_equal(t.name, names[i]);
        assert_int_equal(t.rank, 1);
        assert_int_equal(t.shape[0], 5);
        assert_int_equal(t.size, 5);
        assert_ptr_equal(t.data, bc.l.params + 5 * i);
        assert_int_equal(t.frozen, i >= 2);
        for (int j = 0; j < 5; j++)
            assert_true(t.data[j] == init[i]);
    }
    char buf[64];
    fnn_batchnorm_ops.format(&bc.l, buf, sizeof buf);
    assert_string_equal(buf, "batchnorm");
    case_free(&bc);

    case_make(&bc, 4, 1, 1, 1, 0.9f, 1e-3f);
    assert_int_equal(bc.l.out.c, 4);
    assert_int_equal(bc.l.out.h, 1);
    fnn_batchnorm_ops.format(&bc.l, buf, sizeof buf);
    assert_string_equal(buf, "batchnorm:0.9:0.001");
    case_free(&bc);

    case_make(&bc, 4, 1, 1, 1, 0.99f, 1e-5f);
    fnn_batchnorm_ops.format(&bc.l, buf, sizeof buf);
    assert_string_equal(buf, "batchnorm:0.99:1e-05");
    case_free(&bc);

    case_make(&bc, 4, 1, 1, 1, 0.0f, 0.5f);
    fnn_batchnorm_ops.format(&bc.l, buf, sizeof buf);
    assert_string_equal(buf, "batchnorm:0:0.5");
    case_free(&bc);

    assert_string_equal(fnn_batchnorm_ops.kind, "batchnorm");
    assert_string_equal(fnn_batchnorm_ops.type, "BatchNormalization");
    assert_null(fnn_batchnorm_ops.sharing); /* the model synchronises around the layer */
    assert_null(fnn_batchnorm_ops.reduce);
    assert_int_equal(fnn_batchnorm_ops.alias, 0);
}

static void expect_setup_fails(int c, int h, int w, float momentum, float eps, const char *word)
{
    fnn_layer l = {.ops = &fnn_batchnorm_ops, .index = 3, .in = {c, h, w}};
    l.cfg.bn.momentum = momentum;
    l.cfg.bn.eps = eps;
    fnn_error err = {0};
    assert_int_equal(fnn_batchnorm_ops.setup(&l, &err), FNN_ERR_ARG);
    assert_int_equal(err.status, FNN_ERR_ARG);
    if (!strstr(err.msg, "layer 3") || !strstr(err.msg, "batchnorm") || !strstr(err.msg, word))
        print_message("message: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "batchnorm"));
    assert_non_null(strstr(err.msg, "layer 3"));
    assert_non_null(strstr(err.msg, word));
}

static void test_setup_errors(void **state)
{
    (void)state;
    expect_setup_fails(4, 1, 1, 1.0f, 1e-3f, "momentum");
    expect_setup_fails(4, 1, 1, 1.5f, 1e-3f, "momentum");
    expect_setup_fails(4, 1, 1, -0.1f, 1e-3f, "momentum");
    expect_setup_fails(4, 1, 1, NAN, 1e-3f, "momentum");
    expect_setup_fails(4, 1, 1, 0.99f, 0.0f, "epsilon");
    expect_setup_fails(4, 1, 1, 0.99f, -1e-3f, "epsilon");
    expect_setup_fails(4, 1, 1, 0.99f, NAN, "epsilon");
    expect_setup_fails(0, 1, 1, 0.99f, 1e-3f, "input");
    expect_setup_fails(3, 0, 4, 0.99f, 1e-3f, "input");

    /* The edges of the accepted range. */
    fnn_layer l = {.ops = &fnn_batchnorm_ops, .index = 3, .in = {2, 1, 1}};
    l.cfg.bn.momentum = 0.0f;
    l.cfg.bn.eps = 1e-12f;
    assert_int_equal(fnn_batchnorm_ops.setup(&l, NULL), FNN_OK);
    l.cfg.bn.momentum = 0.999999f;
    assert_int_equal(fnn_batchnorm_ops.setup(&l, NULL), FNN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalises_per_channel),
        cmocka_unit_test(test_forward_reference),
        cmocka_unit_test(test_moving_statistics),
        cmocka_unit_test(test_eval_uses_moving_statistics),
        cmocka_unit_test(test_grad_training),
        cmocka_unit_test(test_grad_eval),
        cmocka_unit_test(test_grad_training_sums_to_zero),
        cmocka_unit_test(test_one_vs_two_threads),
        cmocka_unit_test(test_sums_in_sequential_order),
        cmocka_unit_test(test_tensors_and_format),
        cmocka_unit_test(test_setup_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
