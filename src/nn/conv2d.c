/* 2-D convolution over NCHW images, with an optional bias and a fused ReLU: 3x3 stride-1
 * kernels over several channels by Winograd's F(4x4, 3x3) (winograd.c), which needs 36
 * multiplications per 4x4 outputs where im2col needs 144; small stride-1 kernels over 2 or 3
 * channels (a colour model's first layer) directly, in registers; any other by im2col and one
 * matrix product per image. The kernel is stored as PyTorch stores it, (filters, c, k, k):
 * each filter is then one row of the (filters, c*k*k) matrix that multiplies the columns.
 *
 * Spec token grammar (format() prints it; the parser must accept the same):
 *   conv2d:FILTERS:KERNEL[:sSTRIDE][:same|:valid][:nobias][:he][:relu|:linear]
 * format() prints the optional fields in exactly this order and only when not the default:
 *   sSTRIDE  stride, e.g. "s2"            (default 1: printed only when stride != 1)
 *   same     Keras 'same' padding          (default 'valid'; "valid" is never printed)
 *   nobias   no bias per filter            (default: with bias)
 *   he       He-uniform kernel init        (default: Glorot-uniform)
 *   relu     fused ReLU                    (default: linear; "linear" is never printed)
 * e.g. "conv2d:32:3:same:relu", "conv2d:64:3:s2:same:nobias:he:relu", "conv2d:8:5". */
#include "nn/layer.h"
#include "nn/winograd.h"
#include "util/error.h"
#include "util/gemm.h"
#include "util/team.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Threads share the batch by images, each with its own column buffer and, past thread 0, its
 * own partial gradient in team_scratch, which the executor sizes for its team (conv_team_floats).
 * An evaluation pass over fewer images than threads (a single image's prediction) shares each
 * image instead, by output rows (im2col; Winograd when the image is large enough) or filters
 * (Winograd): by images, the other threads would wait. */

/* A Winograd pass shared within images goes by rows of tiles, each thread on its own, when
 * every thread gets at least this many; otherwise the team shares each chunk's products by
 * vectors of filters, which needs the whole of V on every thread and a barrier. (The
 * reference CNN's 28x28 layer has 7 rows of tiles, its 14x14 layers 4: two threads take 3
 * and 4, or 2 each.) */
#define WINO_MIN_TILE_ROWS 2

/* Winograd from this many input channels on. Its 36 products have the channels as their inner
 * dimension: a first layer's 1 or 3 would leave OpenBLAS nothing to work with. */
#define WINO_MIN_CHANNELS 4

/* Direct convolution (no im2col, no product library) for stride-1 layers of 2 or 3 channels
 * whose windows hold at most DIRECT_MAX_CKK values: a colour model's first layer, whose
 * products (f, ohw) x (ckk) are too thin for a matrix library to run near its peak. The
 * CIFAR CNN's (3 channels, 27 values) ran 1.7x as fast so (2 threads, batch 32: forward 0.53
 * ms against 0.90-1.03, backward 0.58 against 0.83-0.86). Over one channel (9 values for a
 * 3x3 kernel) oneDNN's products were the faster: the `cnn` preset's first layer forward took
 * 0.86 ms against 0.29 (one thread). */
#define DIRECT_MIN_CHANNELS 2
#define DIRECT_MAX_CKK 32

/* Output pixels per vector; filters per block of accumulators. */
#define DLANES 8
#define DFILTERS 8
typedef float dvec __attribute__((vector_size(DLANES * sizeof(float))));
typedef int dmask __attribute__((vector_size(DLANES * sizeof(int))));

/* Keeps a loaded vector in a register. GCC 12 folds such a load into every multiply-add that
 * uses it, loading it again for each filter: the direct loops ran 1.6-1.75x slower so. */
#if defined(__GNUC__) && defined(__AVX__) && (defined(__x86_64__) || defined(__i386__))
#define IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define IN_REGISTER(v) ((void)0)
#endif

/* Where a layer's windows fall on its input. */
typedef struct {
    int c, h, w;       /* input */
    int f, oh, ow;     /* output */
    int k, s;          /* kernel side, stride */
    int pt, pl;        /* padding on top and left */
    size_t ckk, ohw;   /* c*k*k rows and oh*ow columns of the column matrix */
} geometry;

static geometry geom(const fnn_layer *l)
{
    geometry g = {.c = l->in.c, .h = l->in.h, .w = l->in.w, .f = l->cfg.conv.filters,
                  .oh = l->out.h, .ow = l->out.w, .k = l->cfg.conv.kernel,
                  .s = l->cfg.conv.stride};
    if (l->cfg.conv.same) {
        /* TensorFlow's split: the smaller half of the padding goes on top and left. */
        int ph = (g.oh - 1) * g.s + g.k - g.h, pw = (g.ow - 1) * g.s + g.k - g.w;
        g.pt = ph > 0 ? ph / 2 : 0;
        g.pl = pw > 0 ? pw / 2 : 0;
    }
    g.ckk = (size_t)g.c * g.k * g.k;
    g.ohw = (size_t)g.oh * g.ow;
    return g;
}

/* 1: the layer runs by Winograd's F(4x4, 3x3). */
static int winograd(const geometry *g)
{
    return g->k == 3 && g->s == 1 && g->c >= WINO_MIN_CHANNELS;
}

/* 1: the layer runs by direct convolution (see DIRECT_MIN_CHANNELS). */
static int direct_conv(const geometry *g)
{
    return g->s == 1 && g->k > 1 && g->c >= DIRECT_MIN_CHANNELS && g->ckk <= DIRECT_MAX_CKK &&
           !winograd(g);
}

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* The padded image of a direct convolution: c planes of ph rows of pw, the output's rows and
 * columns rounded up to whole vectors plus the kernel's overhang, zeros around the image. */
static size_t direct_ph(const geometry *g) { return (size_t)g->oh + g->k - 1; }
static size_t direct_pw(const geometry *g) { return round_up((size_t)g->ow, DLANES) + g->k - 1; }
static size_t direct_pad_floats(const geometry *g)
{
    return round_up((size_t)g->c * direct_ph(g) * direct_pw(g), 16);
}

/* Its output gradient with each row padded with zeros to whole vectors, (f, oh, owv), in
 * backward; the kernels transposed, (ckk, f), in forward. */
static size_t direct_dy_floats(const geometry *g)
{
    size_t dy = (size_t)g->f * g->oh * round_up((size_t)g->ow, DLANES), wt = g->ckk * g->f;
    return round_up(dy > wt ? dy : wt, 16);
}

static fnn_wino wino_plan(const geometry *g)
{
    fnn_wino w;
    fnn_wino_plan(&w, g->c, g->h, g->w, g->f, g->oh, g->ow, g->pt, g->pl);
    return w;
}

/* Floats of one thread's buffers: Winograd's, or a column matrix rounded up to a cache line. */
static size_t thread_floats(const geometry *g)
{
    if (winograd(g)) {
        fnn_wino w = wino_plan(g);
        return fnn_wino_thread_floats(&w);
    }
    size_t col = (g->ckk * g->ohw + 15) & ~(size_t)15;
    if (direct_conv(g)) { /* the column matrix stays for an input gradient */
        size_t d = direct_pad_floats(g) + direct_dy_floats(g);
        return d > col ? d : col;
    }
    return col;
}

static size_t cache_floats(const geometry *g);

/* Buffers of thread t: Winograd's, or the column matrix (ckk, ohw), after the cache. */
static float *thread_buffer(const fnn_layer *l, const geometry *g, int t)
{
    return l->team_scratch + cache_floats(g) + (size_t)t * thread_floats(g);
}

/* Partial gradient of thread t >= 1, laid out as l->grads, after the threads' buffers. */
static float *partial(const fnn_layer *l, const geometry *g, int t)
{
    return l->team_scratch + cache_floats(g) + (size_t)l->team * thread_floats(g) +
           (size_t)(t - 1) * l->nparams;
}

/* Evaluation keeps the kernels' Winograd transform from one pass to the next: transforming
 * them took a quarter of a single image's prediction by the reference CNN. The cache holds
 * U (36, cv, fv), then the kernels (f, c, 3, 3) it was made from, which each pass compares with
 * the layer's own: nothing else tells it that the weights changed (an optimizer step, a model
 * file loaded, a caller writing through fnn_model_tensor). The model's buffers start zeroed,
 * and zero kernels transform to a zero U, so a fresh cache is already consistent. Training
 * changes the kernels every step; it transforms them on every thread and leaves this alone.
 * After them, a folded batchnorm's scale (f) and shift (f), made again on every pass (2 f
 * floats from 4 f: cheaper than checking them), by the threads that check the kernels. */
static size_t cache_floats(const geometry *g)
{
    if (!winograd(g))
        return 0;
    fnn_wino w = wino_plan(g);
    return fnn_wino_kernel_floats(&w) + ((g->f * g->ckk + 2 * (size_t)g->f + 15) & ~(size_t)15);
}

/* The cache, first: where it lies does not depend on the team. */
static float *cache(const fnn_layer *l, const geometry *g)
{
    (void)g;
    return l->team_scratch;
}

/* The threads that take part in a pass: the whole team (the executor sized it, l->team). */
static int parts(void)
{
    return omp_get_num_threads();
}

/* Part t's share [*lo, *hi) of [0, n) among np parts; empty for t >= np. */
static void share(size_t n, int t, int np, size_t *lo, size_t *hi)
{
    if (t >= np) {
        *lo = *hi = 0;
        return;
    }
    *lo = n * t / np;
    *hi = n * (t + 1) / np;
}

/* Part t's share [*lo, *hi) of [0, n) by whole vectors of Winograd's lanes: both ends are
 * multiples of FNN_WINO_LANES, or n. */
static void share_lanes(size_t n, int t, int np, size_t *lo, size_t *hi)
{
    share((n + FNN_WINO_LANES - 1) / FNN_WINO_LANES, t, np, lo, hi);
    *lo = *lo * FNN_WINO_LANES < n ? *lo * FNN_WINO_LANES : n;
    *hi = *hi * FNN_WINO_LANES < n ? *hi * FNN_WINO_LANES : n;
}

/* 1: an evaluation pass over n images shares each image among the team. */
static int within_images(const fnn_pass *p, int n)
{
    return !p->train && n < parts();
}

/* This thread's images [*lo, *hi) of n. */
static void image_range(int n, size_t *lo, size_t *hi)
{
    fnn_team_range((size_t)n, 1, lo, hi);
}

/* Output pixels [*lo, *hi) of a row of `out` whose input index o*s - pad + kk is inside [0, in). */
static void valid_span(int out, int in, int s, int pad, int kk, int *lo, int *hi)
{
    int off = kk - pad; /* input index of output 0 */
    int a = off >= 0 ? 0 : (-off + s - 1) / s;
    int b = in - off <= 0 ? 0 : (in - off + s - 1) / s;
    *lo = a < out ? a : out;
    *hi = b < out ? b : out;
    if (*hi < *lo)
        *hi = *lo;
}

/* Output rows [oy0, oy1) of col (ckk, ohw) from one image x (c, h, w); zeros where a window
 * hangs over the border. */
static void im2col(const geometry *g, const float *x, int oy0, int oy1, float *col)
{
    for (int ci = 0; ci < g->c; ci++)
        for (int ki = 0; ki < g->k; ki++)
            for (int kj = 0; kj < g->k; kj++) {
                float *row = col + ((size_t)(ci * g->k + ki) * g->k + kj) * g->ohw;
                int x0, x1;
                valid_span(g->ow, g->w, g->s, g->pl, kj, &x0, &x1);
                for (int oy = oy0; oy < oy1; oy++) {
                    float *dst = row + (size_t)oy * g->ow;
                    int iy = oy * g->s - g->pt + ki;
                    if (iy < 0 || iy >= g->h) {
                        memset(dst, 0, (size_t)g->ow * sizeof *dst);
                        continue;
                    }
                    const float *src = x + ((size_t)ci * g->h + iy) * g->w; /* (w) */
                    int off = kj - g->pl;
                    for (int ox = 0; ox < x0; ox++)
                        dst[ox] = 0.0f;
                    if (g->s == 1 && x1 > x0)
                        memcpy(dst + x0, src + x0 + off, (size_t)(x1 - x0) * sizeof *dst);
                    else
                        for (int ox = x0; ox < x1; ox++)
                            dst[ox] = src[ox * g->s + off];
                    for (int ox = x1; ox < g->ow; ox++)
                        dst[ox] = 0.0f;
                }
            }
}

/* dx (c, h, w) = the sum of col (ckk, ohw) over the windows each pixel falls in. */
static void col2im(const geometry *g, const float *col, float *dx)
{
    memset(dx, 0, (size_t)g->c * g->h * g->w * sizeof *dx);
    for (int ci = 0; ci < g->c; ci++)
        for (int ki = 0; ki < g->k; ki++)
            for (int kj = 0; kj < g->k; kj++) {
                const float *row = col + ((size_t)(ci * g->k + ki) * g->k + kj) * g->ohw;
                int x0, x1;
                valid_span(g->ow, g->w, g->s, g->pl, kj, &x0, &x1);
                for (int oy = 0; oy < g->oh; oy++) {
                    int iy = oy * g->s - g->pt + ki;
                    if (iy < 0 || iy >= g->h)
                        continue;
                    const float *src = row + (size_t)oy * g->ow;
                    float *dst = dx + ((size_t)ci * g->h + iy) * g->w; /* (w) */
                    int off = kj - g->pl;
                    for (int ox = x0; ox < x1; ox++)
                        dst[ox * g->s + off] += src[ox];
                }
            }
}

/* A 1x1 stride-1 kernel reads each image as it is: its column matrix is the image itself. */
static int image_is_columns(const geometry *g) { return g->k == 1 && g->s == 1; }

static fnn_status conv_setup(fnn_layer *l, fnn_error *err)
{
    int f = l->cfg.conv.filters, k = l->cfg.conv.kernel, s = l->cfg.conv.stride;
    fnn_shape in = l->in;
    if (f < 1 || k < 1 || s < 1)
        return fnn_fail(err, FNN_ERR_ARG,
                        "conv2d layer %d: filters %d, kernel %d and stride %d must be positive",
                        l->index, f, k, s);
    if (l->cfg.conv.act != FNN_ACT_LINEAR && l->cfg.conv.act != FNN_ACT_RELU)
        return fnn_fail(err, FNN_ERR_ARG,
                        "conv2d layer %d: only linear and relu activations are supported",
                        l->index);
    if (in.c < 1 || in.h < 1 || in.w < 1)
        return fnn_fail(err, FNN_ERR_ARG, "conv2d layer %d: input (%d, %d, %d) is empty",
                        l->index, in.c, in.h, in.w);
    int oh, ow;
    if (l->cfg.conv.same) {
        oh = (in.h + s - 1) / s;
        ow = (in.w + s - 1) / s;
    } else {
        if (k > in.h || k > in.w)
            return fnn_fail(err, FNN_ERR_ARG,
                            "conv2d layer %d: %dx%d kernel does not fit the (%d, %d, %d) input "
                            "with 'valid' padding",
                            l->index, k, k, in.c, in.h, in.w);
        oh = (in.h - k) / s + 1;
        ow = (in.w - k) / s + 1;
    }
    size_t ckk = (size_t)in.c * k * k, ohw = (size_t)oh * ow, limit = (size_t)1 << 28;
    if (ckk > limit / f || ckk > limit / ohw || (size_t)f > limit / ohw)
        return fnn_fail(err, FNN_ERR_ARG,
                        "conv2d layer %d: %d filters of (%d, %d, %d) over %dx%d is too large",
                        l->index, f, in.c, k, k, oh, ow);
    l->out = (fnn_shape){f, oh, ow};
    l->nparams = (size_t)f * ckk + (l->cfg.conv.bias ? (size_t)f : 0);
    l->ntensors = l->cfg.conv.bias ? 2 : 1;
    l->scratch_per_sample = 0;
    return FNN_OK;
}

static size_t conv_team_floats(const fnn_layer *l, int team)
{
    geometry g = geom(l);
    /* Thread 0 writes l->grads directly, so only the others need a partial. */
    return cache_floats(&g) + (size_t)team * thread_floats(&g) + (size_t)(team - 1) * l->nparams;
}

static void conv_init(fnn_layer *l, fnn_rng *rng)
{
    size_t f = (size_t)l->cfg.conv.filters, kk = (size_t)l->cfg.conv.kernel * l->cfg.conv.kernel;
    size_t fan_in = (size_t)l->in.c * kk, fan_out = f * kk;
    float limit = l->cfg.conv.he ? sqrtf(6.0f / (float)fan_in)
                                 : sqrtf(6.0f / (float)(fan_in + fan_out));
    for (size_t i = 0; i < f * fan_in; i++)
        l->params[i] = (2.0f * fnn_rng_uniform(rng) - 1.0f) * limit;
    if (l->cfg.conv.bias)
        memset(l->params + f * fan_in, 0, f * sizeof *l->params);
}

/* Applies the fused ReLU's gradient to dy_i (f, oh, ow) of image i, and adds its sums per
 * filter to db (f) when there is a bias. */
static void relu_and_bias_grad(const fnn_layer *l, const geometry *g, const float *yi, float *dyi,
                               float *db)
{
    size_t out_size = g->f * g->ohw;
    if (l->cfg.conv.act == FNN_ACT_RELU) {
#pragma omp simd
        for (size_t j = 0; j < out_size; j++)
            dyi[j] = yi[j] > 0.0f ? dyi[j] : 0.0f;
    }
    if (!db)
        return;
    for (int fi = 0; fi < g->f; fi++) {
        const float *row = dyi + fi * g->ohw;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t j = 0; j < g->ohw; j++)
            s += row[j];
        db[fi] += s;
    }
}

/* Team function: the evaluation cache's U, brought up to date with the kernels, and a folded
 * batchnorm's map into ep; each thread checks and transforms its share of the filters.
 * Complete after the team's next barrier. */
static const float *eval_kernels(const fnn_layer *l, const geometry *g, const fnn_wino *w,
                                 fnn_wino_epilogue *ep)
{
    float *u = cache(l, g);                              /* (36, cv, fv) */
    float *kept = u + fnn_wino_kernel_floats(w);         /* (f, c, 3, 3) */
    float *scale = kept + g->f * g->ckk, *shift = scale + g->f; /* (f) each */
    size_t lo, hi;
    fnn_team_range((size_t)g->f, FNN_WINO_LANES, &lo, &hi);
    size_t k0 = lo * g->ckk, nk = (hi - lo) * g->ckk;
    if (nk && memcmp(kept + k0, l->params + k0, nk * sizeof *kept) != 0) {
        fnn_wino_kernels(w, l->params, (int)lo, (int)hi, u);
        memcpy(kept + k0, l->params + k0, nk * sizeof *kept);
    }
    if (l->fold) {
        fnn_batchnorm_affine(l->fold, (int)lo, (int)hi, scale + lo, shift + lo);
        ep->scale = scale;
        ep->shift = shift;
    }
    return u;
}

/* Images [lo, hi) by Winograd, in chunks. In training every thread transforms the kernels into
 * its own buffers, which costs less than waiting for the others to share the work (and its
 * backward pass uses them again); evaluation takes them from the cache. */
static void wino_forward(fnn_layer *l, const fnn_pass *p, const geometry *g, const float *x,
                         float *y, int n)
{
    fnn_wino w = wino_plan(g);
    fnn_wino_epilogue ep = {.b = l->cfg.conv.bias ? l->params + g->f * g->ckk : NULL,
                            .relu = l->cfg.conv.act == FNN_ACT_RELU};
    int t = omp_get_thread_num();
    size_t in_size = (size_t)g->c * g->h * g->w, out_size = g->f * g->ohw, lo, hi;
    const float *u = p->train ? NULL : eval_kernels(l, g, &w, &ep);
    if (within_images(p, n) && w.th >= WINO_MIN_TILE_ROWS * parts()) {
        fnn_team_sync(p->sync); /* U is complete */
        size_t ty0, ty1;
        share((size_t)w.th, t, parts(), &ty0, &ty1);
        for (int i = 0; i < n && ty0 < ty1; i++)
            fnn_wino_forward_rows(&w, u, x + i * in_size, &ep, (int)ty0, (int)ty1,
                                  y + i * out_size, thread_buffer(l, g, t));
        return;
    }
    if (within_images(p, n)) {
        /* Each chunk: the team's channels into thread 0's V, a barrier (which also completes
         * U), its filters out. */
        float *v = fnn_wino_thread_input(&w, thread_buffer(l, g, 0)); /* (36, tiles, cv) */
        float *work = t < parts() ? thread_buffer(l, g, t) : NULL;
        size_t c0, c1, f0, f1;
        share_lanes((size_t)g->c, t, parts(), &c0, &c1);
        share_lanes((size_t)g->f, t, parts(), &f0, &f1);
        for (int i = 0; i < n; i += w.chunk) {
            int nb = n - i < w.chunk ? n - i : w.chunk;
            if (i) /* the last chunk's V is read until the whole team is past it */
                fnn_team_sync(p->sync);
            if (work)
                fnn_wino_input(&w, x + i * in_size, nb, (int)c0, (int)c1, v, work);
            fnn_team_sync(p->sync);
            if (work)
                fnn_wino_output(&w, u, v, &ep, nb, (int)f0, (int)f1, y + i * out_size,
                                work);
        }
        return;
    }
    if (!p->train)
        fnn_team_sync(p->sync); /* U is complete */
    image_range(n, &lo, &hi);
    if (lo >= hi)
        return;
    float *work = thread_buffer(l, g, t);
    if (p->train) {
        float *own = fnn_wino_thread_kernels(&w, work); /* (36, cv, fv) */
        fnn_wino_kernels(&w, l->params, 0, g->f, own);
        u = own;
    }
    for (size_t i = lo; i < hi; i += (size_t)w.chunk) {
        int nb = hi - i < (size_t)w.chunk ? (int)(hi - i) : w.chunk;
        fnn_wino_forward(&w, u, x + i * in_size, &ep, nb, y + i * out_size, work);
    }
}

/* Images [lo, hi) backward by Winograd, in the chunks of forward; dw (f, c, 3, 3) and its bias
 * are this thread's gradient, zeroed. In evaluation mode (saliency) the kernels are transformed
 * again: only training promises a forward pass with the same weights on this thread. */
static void wino_backward(fnn_layer *l, const fnn_pass *p, const geometry *g, const float *x,
                          const float *y, float *dy, float *dx, size_t lo, size_t hi, float *dw)
{
    fnn_wino w = wino_plan(g);
    float *work = thread_buffer(l, g, omp_get_thread_num());
    float *db = l->cfg.conv.bias ? dw + g->f * g->ckk : NULL; /* (f) */
    float *u = fnn_wino_thread_kernels(&w, work);              /* (36, cv, fv) */
    size_t in_size = (size_t)g->c * g->h * g->w, out_size = g->f * g->ohw;
    if (lo >= hi)
        return;
    if (!p->train)
        fnn_wino_kernels(&w, l->params, 0, g->f, u);
    for (size_t i = lo; i < hi; i += (size_t)w.chunk) {
        int nb = hi - i < (size_t)w.chunk ? (int)(hi - i) : w.chunk;
        fnn_wino_backward(&w, u, x + i * in_size, y + i * out_size,
                          l->cfg.conv.act == FNN_ACT_RELU, dy + i * out_size, nb, i == lo, db,
                          dx ? dx + i * in_size : NULL, work);
    }
    fnn_wino_kernel_grads(&w, work, dw);
}

/* Columns [j0, j1) of one image's output yi (f, ohw): the bias, a folded batchnorm's map
 * (l->fold) and the fused ReLU. */
static void bias_relu(const fnn_layer *l, const geometry *g, const float *b, int relu,
                      size_t j0, size_t j1, float *yi)
{
    for (int fi = 0; fi < g->f; fi++) {
        float *row = yi + fi * g->ohw;
        float bf = b ? b[fi] : 0.0f;
        if (l->fold) {
            float scale, shift;
            fnn_batchnorm_affine(l->fold, fi, fi + 1, &scale, &shift);
#pragma omp simd
            for (size_t j = j0; j < j1; j++) {
                float v = (row[j] + bf) * scale + shift;
                row[j] = !relu || v > 0.0f ? v : 0.0f;
            }
        } else if (relu) {
#pragma omp simd
            for (size_t j = j0; j < j1; j++) {
                float v = row[j] + bf;
                row[j] = v > 0.0f ? v : 0.0f;
            }
        } else if (b) {
#pragma omp simd
            for (size_t j = j0; j < j1; j++)
                row[j] += bf;
        }
    }
}

static inline dvec dload(const float *p)
{
    dvec v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Image x (c, h, w) into pad (c, ph, pw), zeros around it. */
static void direct_pad(const geometry *g, const float *x, float *pad)
{
    size_t ph = direct_ph(g), pw = direct_pw(g);
    memset(pad, 0, (size_t)g->c * ph * pw * sizeof *pad);
    for (int ci = 0; ci < g->c; ci++)
        for (int iy = 0; iy < g->h; iy++)
            memcpy(pad + ((size_t)ci * ph + (size_t)(iy + g->pt)) * pw + g->pl,
                   x + ((size_t)ci * g->h + iy) * g->w, (size_t)g->w * sizeof *x);
}

/* The kernels w (f, ckk) transposed into wt (ckk, f): the filters' weights for one window
 * value side by side, so that a block of filters reads them at fixed offsets. */
static void direct_transpose(const geometry *g, const float *w, float *wt)
{
    for (int fi = 0; fi < g->f; fi++)
        for (size_t t = 0; t < g->ckk; t++)
            wt[t * g->f + fi] = w[(size_t)fi * g->ckk + t];
}

/* The first nx < DLANES lanes of r into o, by stores of constant size: a loop of variable
 * length compiled to a `rep movs`, as slow as the window's sums. Not inlined: inside
 * direct_vectors it took registers from the sums, which then spilled (forward 2.3x slower). */
static __attribute__((noinline)) void store_part(float *o, dvec r, size_t nx)
{
    float lanes[DLANES];
    memcpy(lanes, &r, sizeof lanes);
    size_t q = 0;
    if (nx >= 4) {
        memcpy(o, lanes, 4 * sizeof *o);
        q = 4;
    }
    if (nx - q >= 2) {
        memcpy(o + q, lanes + q, 2 * sizeof *o);
        q += 2;
    }
    if (q < nx)
        o[q] = lanes[q];
}

/* The bias b (f, or NULL) and the ReLU (relu) of filter fi on a vector of its outputs, as
 * bias_relu does them. */
static inline dvec direct_epilogue(dvec r, const float *b, int relu, int fi)
{
    if (b)
        r += b[fi];
    if (relu) {
        dvec zero = {0};
        r = (dvec)((dmask)r & (r > zero));
    }
    return r;
}

/* nf filters from f0 over nv output vectors of row oy from column x0, the last vector's
 * first nx pixels stored: the window's values in the kernel's (c, k, k) order, the nv x nf
 * sums in registers, then the bias b (or NULL) and the ReLU (relu). Called with constant nf
 * and nv (nf * nv <= 8). */
static inline __attribute__((always_inline)) void
direct_vectors(const geometry *g, const float *wt, const float *pad, const float *b, int relu,
               int f0, int nf, int oy, int x0, int nv, size_t nx, float *y)
{
    size_t ph = direct_ph(g), pw = direct_pw(g), plane = g->ohw;
    dvec acc[2][DFILTERS];
    memset(acc, 0, sizeof acc);
    const float *wk = wt + f0;
    for (int ci = 0; ci < g->c; ci++)
        for (int ky = 0; ky < g->k; ky++) {
            const float *row = pad + ((size_t)ci * ph + (size_t)(oy + ky)) * pw + x0;
            for (int kx = 0; kx < g->k; kx++, wk += g->f) {
                dvec in[2];
                for (int v = 0; v < nv; v++) {
                    in[v] = dload(row + kx + v * DLANES);
                    IN_REGISTER(in[v]);
                }
                for (int j = 0; j < nf; j++)
                    for (int v = 0; v < nv; v++)
                        acc[v][j] += in[v] * wk[j];
            }
        }
    float *out = y + (size_t)f0 * plane + (size_t)oy * g->ow + x0;
    for (int j = 0; j < nf; j++)
        for (int v = 0; v < nv; v++) {
            float *o = out + j * plane + v * DLANES;
            dvec r = direct_epilogue(acc[v][j], b, relu, f0 + j);
            if (v < nv - 1 || nx == DLANES)
                memcpy(o, &r, sizeof r);
            else
                store_part(o, r, nx);
        }
}

/* Output rows [oy0, oy1) of one image, y (f, oh, ow) with the bias b (or NULL) and the ReLU
 * (relu), from its padded copy and the transposed kernels: two vectors of 4 filters at a
 * time, a row's last odd vector with 8. */
static void direct_forward_rows(const geometry *g, const float *wt, const float *pad,
                                const float *b, int relu, int oy0, int oy1, float *y)
{
    for (int oy = oy0; oy < oy1; oy++)
        for (int x0 = 0; x0 < g->ow; x0 += 2 * DLANES) {
            int left = g->ow - x0, nv = left > DLANES ? 2 : 1;
            size_t nx = (size_t)(left - (nv - 1) * DLANES);
            if (nx > DLANES)
                nx = DLANES;
            int f0 = 0;
            if (nv == 2) {
                for (; f0 + DFILTERS / 2 <= g->f; f0 += DFILTERS / 2)
                    direct_vectors(g, wt, pad, b, relu, f0, DFILTERS / 2, oy, x0, 2, nx, y);
                for (; f0 < g->f; f0++)
                    direct_vectors(g, wt, pad, b, relu, f0, 1, oy, x0, 2, nx, y);
            } else {
                for (; f0 + DFILTERS <= g->f; f0 += DFILTERS)
                    direct_vectors(g, wt, pad, b, relu, f0, DFILTERS, oy, x0, 1, nx, y);
                for (; f0 < g->f; f0++)
                    direct_vectors(g, wt, pad, b, relu, f0, 1, oy, x0, 1, nx, y);
            }
        }
}

/* The sum of v's lanes, in lane order. */
static inline float dsum(dvec v)
{
    float s = 0.0f;
    for (int k = 0; k < DLANES; k++)
        s += v[k];
    return s;
}

/* Filters per block of the kernel gradient, and window columns at a time: 4 x 3 sums. */
#define DGRAD_FILTERS 4
#define DGRAD_COLUMNS 3

/* dw += nf (DGRAD_FILTERS or 1) filters' gradient from f0 for window row ky of channel ci,
 * columns [kx0, kx0 + nk) (nk DGRAD_COLUMNS or 1): each sum over the image in a register. */
static inline __attribute__((always_inline)) void
direct_grad_block(const geometry *g, const float *pad, const float *dyp, int f0, int nf, int ci,
                  int ky, int kx0, int nk, float *dw)
{
    size_t ph = direct_ph(g), pw = direct_pw(g);
    size_t owv = round_up((size_t)g->ow, DLANES), plane = (size_t)g->oh * owv;
    dvec acc[DGRAD_COLUMNS][DGRAD_FILTERS];
    memset(acc, 0, sizeof acc);
    const float *d[DGRAD_FILTERS];
    for (int j = 0; j < nf; j++)
        d[j] = dyp + (size_t)(f0 + j) * plane;
    for (int oy = 0; oy < g->oh; oy++) {
        const float *row = pad + ((size_t)ci * ph + (size_t)(oy + ky)) * pw + kx0;
        for (size_t x0 = 0; x0 < owv; x0 += DLANES) {
            dvec in[DGRAD_COLUMNS];
            for (int q = 0; q < nk; q++) {
                in[q] = dload(row + x0 + q);
                IN_REGISTER(in[q]);
            }
            for (int j = 0; j < nf; j++) {
                dvec dj = dload(d[j] + x0);
                IN_REGISTER(dj);
                for (int q = 0; q < nk; q++)
                    acc[q][j] += in[q] * dj;
            }
        }
        for (int j = 0; j < nf; j++)
            d[j] += owv;
    }
    for (int j = 0; j < nf; j++)
        for (int q = 0; q < nk; q++)
            dw[(size_t)(f0 + j) * g->ckk + ((size_t)ci * g->k + ky) * g->k + kx0 + q] +=
                dsum(acc[q][j]);
}

/* Window columns of row ky from kx0 on, for nf filters from f0, DGRAD_COLUMNS at a time. */
static inline __attribute__((always_inline)) void
direct_grad_row(const geometry *g, const float *pad, const float *dyp, int f0, int nf, int ci,
                int ky, float *dw)
{
    int kx = 0;
    for (; kx + DGRAD_COLUMNS <= g->k; kx += DGRAD_COLUMNS)
        direct_grad_block(g, pad, dyp, f0, nf, ci, ky, kx, DGRAD_COLUMNS, dw);
    for (; kx < g->k; kx++)
        direct_grad_block(g, pad, dyp, f0, nf, ci, ky, kx, 1, dw);
}

/* dw (f, ckk) += one image's kernel gradient: its output gradient dyp (f, oh, owv), zero past
 * ow in every row, against its padded copy. */
static void direct_kernel_grad(const geometry *g, const float *pad, const float *dyp, float *dw)
{
    for (int ci = 0; ci < g->c; ci++)
        for (int ky = 0; ky < g->k; ky++) {
            int f0 = 0;
            for (; f0 + DGRAD_FILTERS <= g->f; f0 += DGRAD_FILTERS)
                direct_grad_row(g, pad, dyp, f0, DGRAD_FILTERS, ci, ky, dw);
            for (; f0 < g->f; f0++)
                direct_grad_row(g, pad, dyp, f0, 1, ci, ky, dw);
        }
}

/* One image's output gradient dyi (f, oh, ow) with its rows padded to whole vectors: dyi
 * itself when they are, else a copy in buf. */
static const float *direct_dy(const geometry *g, const float *dyi, float *buf)
{
    size_t owv = round_up((size_t)g->ow, DLANES);
    if (owv == (size_t)g->ow)
        return dyi;
    for (size_t r = 0; r < (size_t)g->f * g->oh; r++) {
        memcpy(buf + r * owv, dyi + r * g->ow, (size_t)g->ow * sizeof *buf);
        memset(buf + r * owv + g->ow, 0, (owv - (size_t)g->ow) * sizeof *buf);
    }
    return buf;
}

static void conv_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    geometry g = geom(l);
    if (winograd(&g)) {
        wino_forward(l, p, &g, x, y, n);
        return;
    }
    const float *w = l->params;                                  /* (f, ckk) */
    const float *b = l->cfg.conv.bias ? w + g.f * g.ckk : NULL; /* (f) */
    int relu = l->cfg.conv.act == FNN_ACT_RELU, t = omp_get_thread_num();
    size_t in_size = (size_t)g.c * g.h * g.w, out_size = g.f * g.ohw, lo, hi, oy0 = 0,
           oy1 = (size_t)g.oh;
    if (within_images(p, n)) { /* every image, this thread's output rows */
        lo = 0;
        hi = t < parts() ? (size_t)n : 0;
        share((size_t)g.oh, t, parts(), &oy0, &oy1);
    } else {
        image_range(n, &lo, &hi);
    }
    size_t j0 = oy0 * g.ow, j1 = oy1 * g.ow; /* this thread's columns of each image */
    float *col = lo < hi ? thread_buffer(l, &g, t) : NULL; /* (ckk, ohw) */
    for (size_t i = lo; i < hi && j0 < j1; i++) {
        const float *xi = x + i * in_size; /* (c, h, w) */
        float *yi = y + i * out_size;       /* (f, oh, ow) */
        if (direct_conv(&g)) {
            float *wt = col + direct_pad_floats(&g); /* (ckk, f) */
            if (i == lo)
                direct_transpose(&g, w, wt);
            direct_pad(&g, xi, col);
            /* The bias and ReLU on the sums in registers; a folded batchnorm's map after. */
            direct_forward_rows(&g, wt, col, l->fold ? NULL : b, !l->fold && relu, (int)oy0,
                                (int)oy1, yi);
            if (l->fold)
                bias_relu(l, &g, b, relu, j0, j1, yi);
            continue;
        }
        const float *ci = xi;
        if (!image_is_columns(&g)) {
            im2col(&g, xi, (int)oy0, (int)oy1, col);
            ci = col;
        }
        fnn_sgemm(0, 0, g.f, (int)(j1 - j0), (int)g.ckk, 1.0f, w, (int)g.ckk, ci + j0,
                  (int)g.ohw, 0.0f, yi + j0, (int)g.ohw);
        bias_relu(l, &g, b, relu, j0, j1, yi);
    }
}

static void conv_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                          float *dy, float *dx, int n)
{
    geometry g = geom(l);
    const float *w = l->params; /* (f, ckk) */
    int t = omp_get_thread_num();
    size_t in_size = (size_t)g.c * g.h * g.w, out_size = g.f * g.ohw, lo, hi;
    image_range(n, &lo, &hi);
    /* Thread 0 writes the gradients, the others partials that `reduce` adds up. */
    float *dw = t ? partial(l, &g, t) : l->grads;                 /* (f, ckk) */
    float *db = l->cfg.conv.bias ? dw + g.f * g.ckk : NULL;        /* (f) */
    memset(dw, 0, l->nparams * sizeof *dw);
    if (winograd(&g)) {
        wino_backward(l, p, &g, x, y, dy, dx, lo, hi, dw);
        return;
    }
    float *col = thread_buffer(l, &g, t); /* (ckk, ohw) */
    if (direct_conv(&g) && !dx) { /* the kernel gradient alone: a model's first layer */
        float *dyp = col + direct_pad_floats(&g);
        for (size_t i = lo; i < hi; i++) {
            float *dyi = dy + i * out_size;
            relu_and_bias_grad(l, &g, y + i * out_size, dyi, db);
            direct_pad(&g, x + i * in_size, col);
            direct_kernel_grad(&g, col, direct_dy(&g, dyi, dyp), dw);
        }
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        const float *xi = x + i * in_size; /* (c, h, w) */
        float *dyi = dy + i * out_size;     /* (f, oh, ow) */
        relu_and_bias_grad(l, &g, y + i * out_size, dyi, db);
        const float *ci = xi;
        if (!image_is_columns(&g)) {
            im2col(&g, xi, 0, g.oh, col);
            ci = col;
        }
        /* dW += dy_i (f, ohw) . col^T (ohw, ckk) */
        fnn_sgemm(0, 1, g.f, (int)g.ckk, (int)g.ohw, 1.0f, dyi, (int)g.ohw, ci, (int)g.ohw, 1.0f,
                  dw, (int)g.ckk);
        if (!dx)
            continue;
        /* dcol (ckk, ohw) = W^T (ckk, f) . dy_i (f, ohw), then summed back onto the pixels. */
        float *dxi = dx + i * in_size; /* (c, h, w) */
        float *dcol = image_is_columns(&g) ? dxi : col;
        fnn_sgemm(1, 0, (int)g.ckk, (int)g.ohw, g.f, 1.0f, w, (int)g.ckk, dyi, (int)g.ohw, 0.0f,
                  dcol, (int)g.ohw);
        if (!image_is_columns(&g))
            col2im(&g, dcol, dxi);
    }
}

/* Adds the threads' partial gradients, each thread its rows of the kernel and bias: the rows
 * the optimizer gives it next. */
static void conv_reduce(fnn_layer *l, const fnn_pass *p, int n)
{
    geometry g = geom(l);
    int parts = omp_get_num_threads() - 1;
    size_t lo, hi, ranges[2][2];
    fnn_team_param_rows((size_t)g.f, &lo, &hi);
    ranges[0][0] = lo * g.ckk;
    ranges[0][1] = hi * g.ckk;
    ranges[1][0] = g.f * g.ckk + lo;
    ranges[1][1] = g.f * g.ckk + (l->cfg.conv.bias ? hi : lo);
    for (int r = 0; r < 2; r++)
        for (int j = 1; j <= parts; j++) {
            const float *part = partial(l, &g, j);
#pragma omp simd
            for (size_t i = ranges[r][0]; i < ranges[r][1]; i++)
                l->grads[i] += part[i];
        }
}

static unsigned conv_sharing(const fnn_layer *l, int n, int nt)
{
    unsigned backward = FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT | FNN_BWD_PARTIAL;
    /* Fewer images than threads: an evaluation pass shares them by filters (the flags do not
     * know the mode; training only gets a barrier more). */
    if (n < nt)
        return backward;
    return FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT | backward;
}

static void conv_tensor(const fnn_layer *l, int i, fnn_tensor *t)
{
    int f = l->cfg.conv.filters, c = l->in.c, k = l->cfg.conv.kernel;
    size_t size = (size_t)f * c * k * k;
    if (i == 0) {
        *t = (fnn_tensor){.rank = 4, .shape = {f, c, k, k}, .size = size, .data = l->params};
        snprintf(t->name, sizeof t->name, "layers.%d.kernel", l->index);
    } else {
        *t = (fnn_tensor){.rank = 1, .shape = {f}, .size = (size_t)f,
                          .data = l->params + size};
        snprintf(t->name, sizeof t->name, "layers.%d.bias", l->index);
    }
}

static void conv_format(const fnn_layer *l, char *buf, size_t size)
{
    char stride[16] = "";
    if (l->cfg.conv.stride != 1)
        snprintf(stride, sizeof stride, ":s%d", l->cfg.conv.stride);
    snprintf(buf, size, "conv2d:%d:%d%s%s%s%s%s", l->cfg.conv.filters, l->cfg.conv.kernel,
             stride, l->cfg.conv.same ? ":same" : "", l->cfg.conv.bias ? "" : ":nobias",
             l->cfg.conv.he ? ":he" : "", l->cfg.conv.act == FNN_ACT_RELU ? ":relu" : "");
}

/* A following batchnorm's map goes between the bias and the ReLU (bias_relu, the Winograd
 * epilogue), the ReLU being this layer's own fused one. */
static int conv_fold(fnn_layer *l, const fnn_layer *bn, int relu)
{
    if (l->cfg.conv.act != FNN_ACT_LINEAR)
        return 0;
    l->fold = bn;
    if (relu)
        l->cfg.conv.act = FNN_ACT_RELU;
    return 1;
}

const fnn_layer_ops fnn_conv2d_ops = {
    .kind = "conv2d",
    .type = "Conv2D",
    .setup = conv_setup,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .tensor = conv_tensor,
    .format = conv_format,
    .sharing = conv_sharing,
    .reduce = conv_reduce,
    .team_floats = conv_team_floats,
    .fold = conv_fold,
};
