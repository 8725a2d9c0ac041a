/* Pooling layers: forward against hand-computed windows, input gradients against central
 * differences of a double reference (overlapping windows included), max-pool ties and NaNs,
 * one thread against teams (also on a single image), and setup errors. */
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

/* Central-difference step on the double reference. Pooling is piecewise linear, so away from
 * max-pool ties the difference is exact up to rounding (~1e-16 / FD_STEP). */
#define FD_STEP 1e-3
/* Max-pool inputs of one plane are drawn at least this far apart, so that no step of FD_STEP
 * changes which element of a window is largest. */
#define TIE_MARGIN (2 * FD_STEP)
/* max|analytic - reference| / max|reference| for a float gradient against the double one. */
#define GRAD_TOL 1e-5
/* A gradient whose largest entry is below this is treated as missing: the check fails. */
#define NONTRIVIAL 1e-3

/* ---------------------------------------------------------------- harness */

typedef struct {
    fnn_layer l;
    int n;      /* batch rows the buffers hold */
    float *x;   /* (n, in) */
    float *y;   /* (n, out) */
    float *dy;  /* (n, out) */
    float *dx;  /* (n, in) */
} pool_case;

static size_t in_size(const pool_case *pc) { return (size_t)pc->n * fnn_shape_size(pc->l.in); }
static size_t out_size(const pool_case *pc) { return (size_t)pc->n * fnn_shape_size(pc->l.out); }

/* Sets up layer `ops` on (c, h, w) and allocates its buffers for n rows. */
static void case_make(pool_case *pc, const fnn_layer_ops *ops, int c, int h, int w, int size,
                      int stride, int n)
{
    memset(pc, 0, sizeof *pc);
    pc->l = (fnn_layer){.ops = ops, .index = 1, .in = {c, h, w}};
    pc->l.cfg.pool.size = size;
    pc->l.cfg.pool.stride = stride;
    fnn_error err = {0};
    fnn_status s = ops->setup(&pc->l, &err);
    if (s != FNN_OK)
        print_message("setup: %s\n", err.msg);
    assert_int_equal(s, FNN_OK);
    pc->n = n;
    if (pc->l.scratch_per_sample) {
        pc->l.scratch = malloc((size_t)n * pc->l.scratch_per_sample * sizeof(float));
        assert_non_null(pc->l.scratch);
    }
    pc->x = calloc(in_size(pc), sizeof(float));
    pc->dx = calloc(in_size(pc), sizeof(float));
    pc->y = calloc(out_size(pc), sizeof(float));
    pc->dy = calloc(out_size(pc), sizeof(float));
    assert_true(pc->x && pc->dx && pc->y && pc->dy);
}

static void case_free(pool_case *pc)
{
    free(pc->l.scratch);
    free(pc->x);
    free(pc->dx);
    free(pc->y);
    free(pc->dy);
}

/* Forward then backward (dy -> dx) with `threads` threads (1: outside a parallel region). dx
 * starts as NaN, so that a backward that accumulates without zeroing first fails. */
static void case_run(pool_case *pc, int train, int threads)
{
    fnn_pass p = {.train = train};
    for (size_t i = 0; i < in_size(pc); i++)
        pc->dx[i] = NAN;
    if (pc->l.scratch)
        for (size_t i = 0; i < (size_t)pc->n * pc->l.scratch_per_sample; i++)
            pc->l.scratch[i] = -1.0f;
    float *dy = malloc(out_size(pc) * sizeof *dy); /* backward may overwrite its dy */
    assert_non_null(dy);
    memcpy(dy, pc->dy, out_size(pc) * sizeof *dy);
    if (threads == 1) {
        pc->l.ops->forward(&pc->l, &p, pc->x, pc->y, pc->n);
        pc->l.ops->backward(&pc->l, &p, pc->x, pc->y, dy, pc->dx, pc->n);
    } else {
#pragma omp parallel num_threads(threads)
        {
            pc->l.ops->forward(&pc->l, &p, pc->x, pc->y, pc->n);
#pragma omp barrier
            pc->l.ops->backward(&pc->l, &p, pc->x, pc->y, dy, pc->dx, pc->n);
        }
    }
    free(dy);
}

static void fill_uniform(float *a, size_t n, fnn_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        a[i] = 2.0f * fnn_rng_uniform(rng) - 1.0f;
}

/* Uniform inputs in [-1, 1) whose elements within each (h, w) plane are at least TIE_MARGIN
 * apart: every window of the plane then has a clear maximum. */
static void fill_without_ties(pool_case *pc, fnn_rng *rng)
{
    size_t plane = (size_t)pc->l.in.h * pc->l.in.w;
    for (size_t p0 = 0; p0 < in_size(pc); p0 += plane)
        for (size_t j = p0; j < p0 + plane; j++) {
            int close;
            do {
                pc->x[j] = 2.0f * fnn_rng_uniform(rng) - 1.0f;
                close = 0;
                for (size_t k = p0; k < j; k++)
                    close |= fabs((double)pc->x[j] - pc->x[k]) < TIE_MARGIN;
            } while (close);
        }
}

/* ---------------------------------------------------------------- the double reference */

typedef enum { REF_MAX, REF_AVG } ref_op;

/* Pooling of x (n, c, h, w) over kh x kw windows at `stride` into y (n, c, oh, ow); global
 * average pooling is the kh = h, kw = w case. */
static void ref_pool(ref_op op, const double *x, int n, int c, int h, int w, int kh, int kw,
                     int stride, double *y)
{
    int oh = (h - kh) / stride + 1, ow = (w - kw) / stride + 1;
    for (int i = 0; i < n * c; i++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double acc = op == REF_MAX ? -INFINITY : 0.0;
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++) {
                        double v = x[((size_t)i * h + oy * stride + ky) * w + ox * stride + kx];
                        acc = op == REF_MAX ? fmax(acc, v) : acc + v;
                    }
                y[((size_t)i * oh + oy) * ow + ox] = op == REF_MAX ? acc : acc / (kh * kw);
            }
}

/* d/dx of sum(pool(x) * r) by central differences, into g (n, c, h, w). */
static void ref_grad(ref_op op, const float *xf, const float *r, int n, int c, int h, int w,
                     int kh, int kw, int stride, double *g)
{
    size_t nin = (size_t)n * c * h * w;
    size_t nout = (size_t)n * c * ((h - kh) / stride + 1) * ((w - kw) / stride + 1);
    double *x = malloc(nin * sizeof *x), *y = malloc(nout * sizeof *y);
    assert_true(x && y);
    for (size_t i = 0; i < nin; i++)
        x[i] = xf[i];
    for (size_t j = 0; j < nin; j++) {
        double keep = x[j], loss[2];
        for (int side = 0; side < 2; side++) {
            x[j] = keep + (side ? -FD_STEP : FD_STEP);
            ref_pool(op, x, n, c, h, w, kh, kw, stride, y);
            loss[side] = 0.0;
            for (size_t o = 0; o < nout; o++)
                loss[side] += y[o] * r[o];
        }
        x[j] = keep;
        g[j] = (loss[0] - loss[1]) / (2 * FD_STEP);
    }
    free(x);
    free(y);
}

/* ---------------------------------------------------------------- forward by hand */

#define N_HAND 3
#define C_HAND 2

/* Sample i's channel 0 is base + 10 i and channel 1 is -base + 10 i, so channel 1's max pool
 * is minus the min of base's windows. */
static void fill_hand(pool_case *pc, const float *base)
{
    size_t plane = (size_t)pc->l.in.h * pc->l.in.w;
    for (int i = 0; i < N_HAND; i++)
        for (int c = 0; c < C_HAND; c++)
            for (size_t j = 0; j < plane; j++)
                pc->x[(i * C_HAND + c) * plane + j] = (c ? -base[j] : base[j]) + 10.0f * i;
}

/* For every sample and channel: channel 0 is up + 10 i, channel 1 is down + 10 i. */
static void expect_hand(const pool_case *pc, const float *up, const float *down)
{
    size_t oplane = (size_t)pc->l.out.h * pc->l.out.w;
    for (int i = 0; i < N_HAND; i++)
        for (int c = 0; c < C_HAND; c++)
            for (size_t j = 0; j < oplane; j++) {
                float want = (c ? down[j] : up[j]) + 10.0f * i;
                float got = pc->y[(i * C_HAND + c) * oplane + j];
                if (fabsf(got - want) > 1e-5f)
                    print_message("%s: sample %d channel %d output %zu: %g, want %g\n",
                                  pc->l.ops->kind, i, c, j, (double)got, (double)want);
                assert_true(fabsf(got - want) <= 1e-5f);
            }
}

static const float base4[16] = {
    1, 5, 2, 0,
    3, -1, 7, 4,
    0, 6, 8, 2,
    9, 3, 1, 5,
};

/* The last row and column are large, so that pooling them by mistake shows. */
static const float base5[25] = {
    1, 2, 3, 4, 90,
    5, 6, 7, 8, 91,
    9, 1, 2, 3, 92,
    4, 5, 6, 7, 93,
    94, 95, 96, 97, 98,
};

/* One hand case for max and avg pooling with 1 and 2 threads. mx, mn, av: the windows' max,
 * min and mean over base. */
static void hand_case(const float *base, int h, int size, int stride, int oh, const float *mx,
                      const float *mn, const float *av)
{
    float neg_mn[16], neg_av[16];
    for (int j = 0; j < oh * oh; j++) {
        neg_mn[j] = -mn[j];
        neg_av[j] = -av[j];
    }
    for (int threads = 1; threads <= 2; threads++) {
        pool_case pc;
        case_make(&pc, &fnn_maxpool_ops, C_HAND, h, h, size, stride, N_HAND);
        assert_int_equal(pc.l.out.c, C_HAND);
        assert_int_equal(pc.l.out.h, oh);
        assert_int_equal(pc.l.out.w, oh);
        fill_hand(&pc, base);
        case_run(&pc, 1, threads);
        expect_hand(&pc, mx, neg_mn);
        case_free(&pc);

        case_make(&pc, &fnn_avgpool_ops, C_HAND, h, h, size, stride, N_HAND);
        assert_int_equal(pc.l.out.h, oh);
        fill_hand(&pc, base);
        case_run(&pc, 1, threads);
        expect_hand(&pc, av, neg_av);
        case_free(&pc);
    }
}

static void test_forward_4x4_size2(void **state)
{
    /* Windows {1 5 3 -1}, {2 0 7 4}, {0 6 9 3}, {8 2 1 5}. */
    const float mx[4] = {5, 7, 9, 8}, mn[4] = {-1, 0, 0, 1}, av[4] = {2, 3.25f, 4.5f, 4};
    hand_case(base4, 4, 2, 2, 2, mx, mn, av);
}

static void test_forward_5x5_drops_last_row_and_column(void **state)
{
    /* Windows {1 2 5 6}, {3 4 7 8}, {9 1 4 5}, {2 3 6 7}; row 4 and column 4 fit no window. */
    const float mx[4] = {6, 8, 9, 7}, mn[4] = {1, 3, 1, 2}, av[4] = {3.5f, 5.5f, 4.75f, 4.5f};
    hand_case(base5, 5, 2, 2, 2, mx, mn, av);
}

static void test_forward_3x3_stride1_overlapping(void **state)
{
    /* 3x3 windows of base4 at (0,0), (0,1), (1,0), (1,1); sums 31, 33, 36, 35. */
    const float mx[4] = {8, 8, 9, 8}, mn[4] = {-1, -1, -1, -1};
    const float av[4] = {31.0f / 9, 33.0f / 9, 4, 35.0f / 9};
    hand_case(base4, 4, 3, 1, 2, mx, mn, av);
}

static void test_forward_global_avg(void **state)
{
    pool_case pc;
    case_make(&pc, &fnn_globalavgpool_ops, C_HAND, 4, 4, 0, 0, N_HAND);
    assert_int_equal(pc.l.out.c, C_HAND);
    assert_int_equal(pc.l.out.h, 1);
    assert_int_equal(pc.l.out.w, 1);
    fill_hand(&pc, base4);
    const float up[1] = {55.0f / 16}, down[1] = {-55.0f / 16};
    for (int threads = 1; threads <= 2; threads++) {
        case_run(&pc, 0, threads);
        expect_hand(&pc, up, down);
    }
    case_free(&pc);
}

/* ---------------------------------------------------------------- gradients */

/* Input gradient of sum(y * r) against central differences, with 1 and 2 threads giving
 * bit-identical outputs and gradients. */
static void grad_case(const fnn_layer_ops *ops, int c, int h, int w, int size, int stride)
{
    int global = ops == &fnn_globalavgpool_ops;
    ref_op op = ops == &fnn_maxpool_ops ? REF_MAX : REF_AVG;
    int kh = global ? h : size, kw = global ? w : size, rs = global ? 1 : stride;
    fnn_rng rng;
    fnn_rng_seed(&rng, 1234u + (uint64_t)(size * 100 + stride * 10 + h));
    pool_case pc;
    case_make(&pc, ops, c, h, w, size, stride, 3);
    if (op == REF_MAX)
        fill_without_ties(&pc, &rng);
    else
        fill_uniform(pc.x, in_size(&pc), &rng);
    fill_uniform(pc.dy, out_size(&pc), &rng);

    double *g = malloc(in_size(&pc) * sizeof *g);
    float *y1 = malloc(out_size(&pc) * sizeof *y1), *dx1 = malloc(in_size(&pc) * sizeof *dx1);
    assert_true(g && y1 && dx1);
    ref_grad(op, pc.x, pc.dy, pc.n, c, h, w, kh, kw, rs, g);

    for (int threads = 1; threads <= 2; threads++) {
        case_run(&pc, 1, threads);
        double err = rel_err(pc.dx, g, in_size(&pc));
        if (!(err < GRAD_TOL) || max_abs_f(pc.dx, in_size(&pc)) < NONTRIVIAL)
            print_message("%s %dx%dx%d size %d stride %d, %d threads: max |dx| %g, "
                          "relative error %g\n", ops->kind, c, h, w, size, stride, threads,
                          max_abs_f(pc.dx, in_size(&pc)), err);
        assert_true(err < GRAD_TOL);
        assert_true(max_abs_f(pc.dx, in_size(&pc)) > NONTRIVIAL);
        if (threads == 1) {
            memcpy(y1, pc.y, out_size(&pc) * sizeof *y1);
            memcpy(dx1, pc.dx, in_size(&pc) * sizeof *dx1);
        } else {
            assert_memory_equal(y1, pc.y, out_size(&pc) * sizeof *y1);
            assert_memory_equal(dx1, pc.dx, in_size(&pc) * sizeof *dx1);
        }
    }
    /* Evaluation mode keeps no arg-max; its backward (saliency) finds the same one in x. */
    if (op == REF_MAX) {
        case_run(&pc, 0, 2);
        assert_memory_equal(y1, pc.y, out_size(&pc) * sizeof *y1);
        assert_memory_equal(dx1, pc.dx, in_size(&pc) * sizeof *dx1);
    }
    free(g);
    free(y1);
    free(dx1);
    case_free(&pc);
}

static void test_grad_maxpool(void **state)
{
    grad_case(&fnn_maxpool_ops, 2, 6, 6, 2, 2);
    grad_case(&fnn_maxpool_ops, 2, 7, 5, 2, 2); /* odd sides: the last row is dropped */
    /* Rows of 17, 8 and 6 windows: 2x2 windows at stride 2 go in blocks of 8 or 4, the last
     * one overlapping the one before it when the row is not a multiple. */
    grad_case(&fnn_maxpool_ops, 2, 4, 35, 2, 2);
    grad_case(&fnn_maxpool_ops, 2, 5, 16, 2, 2);
    grad_case(&fnn_maxpool_ops, 1, 6, 12, 2, 2);
    grad_case(&fnn_maxpool_ops, 2, 6, 6, 3, 1); /* overlapping windows */
    grad_case(&fnn_maxpool_ops, 3, 7, 7, 3, 2);
}

static void test_grad_avgpool(void **state)
{
    grad_case(&fnn_avgpool_ops, 2, 6, 6, 2, 2);
    grad_case(&fnn_avgpool_ops, 2, 7, 5, 2, 2);
    grad_case(&fnn_avgpool_ops, 2, 6, 6, 3, 1);
    grad_case(&fnn_avgpool_ops, 3, 7, 7, 3, 2);
}

static void test_grad_globalavgpool(void **state)
{
    grad_case(&fnn_globalavgpool_ops, 3, 5, 6, 0, 0);
    grad_case(&fnn_globalavgpool_ops, 2, 1, 1, 0, 0);
}

/* ---------------------------------------------------------------- one image, many threads */

/* A forward pass over fewer images than threads (a single image's prediction) shares their
 * (image, channel) planes: with each thread writing its own copy of y, thread t writes exactly
 * planes fnn_team_range(n c) of it, with the values one thread gives; then a backward pass on
 * the team (which reads training's arg-max codes across threads) gives one thread's dx. */
static void planes_case(const fnn_layer_ops *ops, int size, int stride, int train)
{
    enum { MAXT = 3, C = 5 };
    pool_case pc;
    case_make(&pc, ops, C, 6, 7, size, stride, 1);
    fnn_rng rng;
    fnn_rng_seed(&rng, 41);
    fill_uniform(pc.x, in_size(&pc), &rng);
    fill_uniform(pc.dy, out_size(&pc), &rng);
    case_run(&pc, train, 1);
    size_t out = out_size(&pc), oplane = out / C;
    float *ref = malloc(out * sizeof *ref), *dx1 = malloc(in_size(&pc) * sizeof *dx1);
    float *y = malloc(MAXT * out * sizeof *y);
    assert_true(ref && dx1 && y);
    memcpy(ref, pc.y, out * sizeof *ref);
    memcpy(dx1, pc.dx, in_size(&pc) * sizeof *dx1);
    for (int nt = 2; nt <= MAXT; nt++) {
        memset(y, 0xff, MAXT * out * sizeof *y); /* NaN */
        size_t lo[MAXT], hi[MAXT];
        fnn_pass p = {.train = train};
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num();
            fnn_team_range(C, 1, &lo[t], &hi[t]);
            ops->forward(&pc.l, &p, pc.x, y + t * out, 1);
        }
        for (int t = 0; t < nt; t++)
            for (size_t j = 0; j < out; j++) {
                int mine = j / oplane >= lo[t] && j / oplane < hi[t];
                if (isnan(y[t * out + j]) == mine)
                    fail_msg("%s, %d threads: thread %d %s y[%zu]", ops->kind, nt, t,
                             mine ? "did not write" : "wrote", j);
                if (mine && y[t * out + j] != ref[j])
                    fail_msg("%s, %d threads: y[%zu] = %g, one thread %g", ops->kind, nt, j,
                             y[t * out + j], ref[j]);
            }
        case_run(&pc, train, nt);
        if (memcmp(pc.y, ref, out * sizeof *ref) != 0 ||
            memcmp(pc.dx, dx1, in_size(&pc) * sizeof *dx1) != 0)
            fail_msg("%s, %d threads: forward or backward differs from one thread", ops->kind,
                     nt);
    }
    /* The model then holds a barrier before the next layer reads the output. */
    assert_int_equal(ops->sharing(&pc.l, 1, 2), FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT);
    free(ref);
    free(dx1);
    free(y);
    case_free(&pc);
}

static void test_one_image_by_planes(void **state)
{
    (void)state;
    for (int train = 0; train <= 1; train++) {
        planes_case(&fnn_maxpool_ops, 2, 2, train);
        planes_case(&fnn_maxpool_ops, 3, 1, train);
        planes_case(&fnn_avgpool_ops, 2, 2, train);
        planes_case(&fnn_globalavgpool_ops, 0, 0, train);
    }
}

/* ---------------------------------------------------------------- ties */

/* A constant input makes every window a tie: each window's whole gradient goes to its first
 * element in row-major order, which for window (oy, ox) is input (oy * stride, ox * stride). */
static void tie_case(int size, int stride, int train, int threads)
{
    pool_case pc;
    case_make(&pc, &fnn_maxpool_ops, 2, 4, 4, size, stride, 3);
    for (size_t i = 0; i < in_size(&pc); i++)
        pc.x[i] = 0.5f;
    for (size_t o = 0; o < out_size(&pc); o++)
        pc.dy[o] = (float)(o + 1);
    case_run(&pc, train, threads);

    fnn_shape in = pc.l.in, out = pc.l.out;
    double sum_dx = 0.0, sum_dy = 0.0;
    float *want = calloc(in_size(&pc), sizeof *want);
    assert_non_null(want);
    for (int p = 0; p < pc.n * in.c; p++)
        for (int oy = 0; oy < out.h; oy++)
            for (int ox = 0; ox < out.w; ox++)
                want[((size_t)p * in.h + oy * stride) * in.w + ox * stride] +=
                    pc.dy[((size_t)p * out.h + oy) * out.w + ox];
    for (size_t i = 0; i < in_size(&pc); i++) {
        assert_float_equal(pc.dx[i], want[i], 0.0f);
        sum_dx += pc.dx[i];
    }
    for (size_t o = 0; o < out_size(&pc); o++) {
        assert_float_equal(pc.y[o], 0.5f, 0.0f);
        sum_dy += pc.dy[o];
    }
    assert_float_equal(sum_dx, sum_dy, 1e-9);
    free(want);
    case_free(&pc);
}

static void test_maxpool_ties_go_to_first(void **state)
{
    for (int train = 0; train <= 1; train++)
        for (int threads = 1; threads <= 2; threads++) {
            tie_case(2, 2, train, threads);
            tie_case(3, 1, train, threads);
            tie_case(2, 1, train, threads);
        }
}

/* A tie that is not the whole window: the first of the two largest values wins. */
static void test_maxpool_partial_tie(void **state)
{
    pool_case pc;
    case_make(&pc, &fnn_maxpool_ops, 1, 2, 2, 2, 2, 1);
    const float x[4] = {-1, 3, 3, 2};
    memcpy(pc.x, x, sizeof x);
    pc.dy[0] = 7.0f;
    case_run(&pc, 1, 1);
    assert_float_equal(pc.y[0], 3.0f, 0.0f);
    const float want[4] = {0, 7, 0, 0};
    assert_memory_equal(pc.dx, want, sizeof want);
    case_free(&pc);
}

/* Every 2x2 window over the values below, ties between -0 and +0 and NaN included, checked
 * bit for bit against a sequential scan that replaces the best only on a strict ">", in the
 * order (0,0), (0,1), (1,0), (1,1): y is the element it stops at, which alone gets 0 + dy in
 * dx (the generic path's zeroed accumulation), and an odd last row or column gets 0. */
static const float window_values[5] = {-1.0f, -0.0f, 0.0f, 1.0f, NAN};
#define N_PATTERNS (5 * 5 * 5 * 5)

/* Position 0..3 of the element a sequential scan of window (v0, v1, v2, v3) stops at. */
static int scan_argmax(const float *v)
{
    int best = 0;
    for (int k = 1; k < 4; k++)
        if (v[k] > v[best])
            best = k;
    return best;
}

static void pattern_case(int oh, int ow, int odd_h, int odd_w, int train, int threads)
{
    int n = 3, c = (N_PATTERNS + n * oh * ow - 1) / (n * oh * ow);
    int h = 2 * oh + odd_h, w = 2 * ow + odd_w;
    pool_case pc;
    case_make(&pc, &fnn_maxpool_ops, c, h, w, 2, 2, n);
    assert_int_equal(pc.l.out.h, oh);
    assert_int_equal(pc.l.out.w, ow);
    /* Outside any window: large, so that pooling it by mistake shows in y. */
    for (size_t i = 0; i < in_size(&pc); i++)
        pc.x[i] = 100.0f;
    float *want_y = malloc(out_size(&pc) * sizeof *want_y);
    float *want_dx = calloc(in_size(&pc), sizeof *want_dx);
    assert_true(want_y && want_dx);
    for (size_t o = 0; o < out_size(&pc); o++) {
        size_t plane = o / ((size_t)oh * ow);
        int oy = (int)(o / ow % oh), ox = (int)(o % ow);
        float *at[4];
        float v[4];
        size_t pattern = o % N_PATTERNS; /* its digits in base 5 pick v */
        for (int k = 0; k < 4; k++, pattern /= 5) {
            size_t i = (plane * h + 2 * oy + k / 2) * w + 2 * ox + k % 2;
            at[k] = want_dx + i;
            v[k] = window_values[pattern % 5];
            pc.x[i] = v[k];
        }
        pc.dy[o] = o % 7 == 3 ? -0.0f : (float)(o % 251) - 125.0f;
        int best = scan_argmax(v);
        want_y[o] = v[best];
        *at[best] = 0.0f + pc.dy[o];
    }
    case_run(&pc, train, threads);
    size_t o = 0, i = 0;
    while (o < out_size(&pc) && !memcmp(&pc.y[o], &want_y[o], sizeof want_y[o]))
        o++;
    while (i < in_size(&pc) && !memcmp(&pc.dx[i], &want_dx[i], sizeof want_dx[i]))
        i++;
    if (o < out_size(&pc))
        print_message("%dx%d windows, train %d, %d threads: first wrong y[%zu] %g, want %g\n",
                      oh, ow, train, threads, o, (double)pc.y[o], (double)want_y[o]);
    if (i < in_size(&pc))
        print_message("%dx%d input, train %d, %d threads: first wrong dx[%zu] %g, want %g\n", h,
                      w, train, threads, i, (double)pc.dx[i], (double)want_dx[i]);
    assert_memory_equal(pc.y, want_y, out_size(&pc) * sizeof *want_y);
    assert_memory_equal(pc.dx, want_dx, in_size(&pc) * sizeof *want_dx);
    free(want_y);
    free(want_dx);
    case_free(&pc);
}

static void test_maxpool_2x2_every_window(void **state)
{
    /* Rows of 1 to 3 windows, of 4 to 7 (blocks of 4), and of 8 or more (blocks of 8), each
     * a multiple of its block or not. */
    const int ows[] = {1, 2, 3, 4, 5, 7, 8, 14, 19};
    for (size_t j = 0; j < sizeof ows / sizeof *ows; j++)
        for (int odd = 0; odd < 4; odd++)
            for (int train = 0; train <= 1; train++)
                for (int threads = 1; threads <= 2; threads++)
                    pattern_case(3, ows[j], odd & 1, odd >> 1, train, threads);
}

/* ---------------------------------------------------------------- setup and format */

static void expect_setup_fails(const fnn_layer_ops *ops, int h, int w, int size, int stride)
{
    fnn_layer l = {.ops = ops, .index = 4, .in = {2, h, w}};
    l.cfg.pool.size = size;
    l.cfg.pool.stride = stride;
    fnn_error err = {0};
    assert_int_equal(ops->setup(&l, &err), FNN_ERR_ARG);
    assert_int_equal(err.status, FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, ops->kind));
    assert_non_null(strstr(err.msg, "layer 4"));
}

static void test_setup_errors(void **state)
{
    const fnn_layer_ops *ops[2] = {&fnn_maxpool_ops, &fnn_avgpool_ops};
    for (int k = 0; k < 2; k++) {
        expect_setup_fails(ops[k], 4, 4, 5, 5);  /* window larger than the input */
        expect_setup_fails(ops[k], 4, 8, 5, 1);  /* too tall, though wide enough */
        expect_setup_fails(ops[k], 8, 4, 5, 1);  /* too wide */
        expect_setup_fails(ops[k], 4, 4, 0, 1);  /* size 0 */
        expect_setup_fails(ops[k], 4, 4, 2, 0);  /* stride 0 */
        expect_setup_fails(ops[k], 4, 4, -2, 2);
    }
    expect_setup_fails(&fnn_globalavgpool_ops, 0, 4, 0, 0);
}

static void test_shapes_and_format(void **state)
{
    char buf[64];
    pool_case pc;
    case_make(&pc, &fnn_maxpool_ops, 32, 28, 28, 2, 2, 1);
    assert_int_equal(pc.l.out.c, 32);
    assert_int_equal(pc.l.out.h, 14);
    assert_int_equal(pc.l.out.w, 14);
    assert_int_equal(pc.l.nparams, 0);
    assert_int_equal(pc.l.scratch_per_sample, 32 * 14 * 14);
    pc.l.ops->format(&pc.l, buf, sizeof buf);
    assert_string_equal(buf, "maxpool:2");
    assert_int_equal(pc.l.ops->sharing(&pc.l, 8, 2), FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT |
                                                         FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT);
    case_free(&pc);

    case_make(&pc, &fnn_avgpool_ops, 3, 7, 9, 3, 2, 1);
    assert_int_equal(pc.l.out.h, 3);
    assert_int_equal(pc.l.out.w, 4);
    assert_int_equal(pc.l.scratch_per_sample, 0);
    pc.l.ops->format(&pc.l, buf, sizeof buf);
    assert_string_equal(buf, "avgpool:3:2");
    case_free(&pc);

    case_make(&pc, &fnn_maxpool_ops, 1, 5, 5, 3, 1, 1);
    pc.l.ops->format(&pc.l, buf, sizeof buf);
    assert_string_equal(buf, "maxpool:3:1");
    case_free(&pc);

    case_make(&pc, &fnn_globalavgpool_ops, 64, 7, 7, 0, 0, 1);
    pc.l.ops->format(&pc.l, buf, sizeof buf);
    assert_string_equal(buf, "globalavgpool");
    case_free(&pc);

    assert_string_equal(fnn_maxpool_ops.type, "MaxPooling2D");
    assert_string_equal(fnn_avgpool_ops.type, "AveragePooling2D");
    assert_string_equal(fnn_globalavgpool_ops.type, "GlobalAveragePooling2D");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_4x4_size2),
        cmocka_unit_test(test_forward_5x5_drops_last_row_and_column),
        cmocka_unit_test(test_forward_3x3_stride1_overlapping),
        cmocka_unit_test(test_forward_global_avg),
        cmocka_unit_test(test_grad_maxpool),
        cmocka_unit_test(test_grad_avgpool),
        cmocka_unit_test(test_grad_globalavgpool),
        cmocka_unit_test(test_one_image_by_planes),
        cmocka_unit_test(test_maxpool_ties_go_to_first),
        cmocka_unit_test(test_maxpool_partial_tie),
        cmocka_unit_test(test_maxpool_2x2_every_window),
        cmocka_unit_test(test_setup_errors),
        cmocka_unit_test(test_shapes_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
