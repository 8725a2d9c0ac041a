/* Pooling layers over NCHW images: max and average pooling with square 'valid' windows (Keras's
 * default padding), and global average pooling. No parameters; threads share the batch by rows
 * (images), as dropout does, and a forward pass over fewer images than threads (a single
 * image's prediction) by (image, channel) planes, so that no thread idles. */
#include "nn/layer.h"
#include "util/error.h"
#include "util/team.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static fnn_status window_setup(fnn_layer *l, fnn_error *err)
{
    int size = l->cfg.pool.size, stride = l->cfg.pool.stride;
    const char *kind = l->ops->kind;
    if (size < 1 || stride < 1)
        return fnn_fail(err, FNN_ERR_ARG, "%s layer %d: size %d and stride %d must be at least 1",
                        kind, l->index, size, stride);
    if (l->in.c < 1 || l->in.h < size || l->in.w < size)
        return fnn_fail(err, FNN_ERR_ARG,
                        "%s layer %d: a %dx%d window does not fit a %dx%dx%d input", kind,
                        l->index, size, size, l->in.c, l->in.h, l->in.w);
    /* Arg-max indices are stored as int32 offsets into a sample. */
    if (fnn_shape_size(l->in) > INT32_MAX)
        return fnn_fail(err, FNN_ERR_ARG, "%s layer %d: input of %zu values is too large", kind,
                        l->index, fnn_shape_size(l->in));
    l->out = (fnn_shape){l->in.c, (l->in.h - size) / stride + 1, (l->in.w - size) / stride + 1};
    l->scratch_per_sample = 0;
    return FNN_OK;
}

/* This thread's (image, channel) planes [*lo, *hi) of a forward pass over n images. The
 * windows do not depend on which thread takes a plane, so the results do not either. */
static void forward_planes(const fnn_layer *l, int n, size_t *lo, size_t *hi)
{
    size_t c = (size_t)l->in.c;
    if (n < omp_get_num_threads()) {
        fnn_team_range((size_t)n * c, 1, lo, hi);
        return;
    }
    fnn_team_range((size_t)n, 1, lo, hi);
    *lo *= c;
    *hi *= c;
}

/* 2x2 windows at stride 2, the common case, take a branch-free path (max2x2_*). Its windows do
 * not overlap, so it keeps the arg-max as the window position 0..3 and its backward pass writes
 * dx directly instead of zeroing it and scattering into it. */
static int is_2x2_stride2(const fnn_layer *l)
{
    return l->cfg.pool.size == 2 && l->cfg.pool.stride == 2;
}

static fnn_status maxpool_setup(fnn_layer *l, fnn_error *err)
{
    fnn_status s = window_setup(l, err);
    if (s == FNN_OK)
        l->scratch_per_sample = fnn_shape_size(l->out); /* one arg-max per output */
    return s;
}

/* Offset in the (h, w) plane of the window at (oy, ox) whose value is largest. Ties go to the
 * FIRST maximal element in row-major window order, as in PyTorch, so that it alone receives
 * the gradient. */
static int window_argmax(const float *plane, int w, int size, int stride, int oy, int ox)
{
    int best = oy * stride * w + ox * stride;
    float bv = plane[best];
    for (int ky = 0; ky < size; ky++) {
        const float *row = plane + (size_t)(oy * stride + ky) * w + (size_t)ox * stride;
        for (int kx = 0; kx < size; kx++)
            if (row[kx] > bv) {
                bv = row[kx];
                best = (oy * stride + ky) * w + ox * stride + kx;
            }
    }
    return best;
}

/* The largest of the window (r0[0], r0[1], r1[0], r1[1]) and in *k its position 0..3. As in
 * window_argmax, it starts from r0[0] and a later element replaces the best only when strictly
 * greater: ties go to the first, and a NaN counts only in the first place. Selects instead of
 * branches, so that the loops over windows vectorise; the position is a float because GCC 12
 * does not if-convert an int select on a float compare, and leaves such a loop scalar. */
static inline float max2x2(const float *r0, const float *r1, float *k)
{
    float m = r0[0], km = 0.0f;
    km = r0[1] > m ? 1.0f : km;
    m = r0[1] > m ? r0[1] : m;
    km = r1[0] > m ? 2.0f : km;
    m = r1[0] > m ? r1[0] : m;
    km = r1[1] > m ? 3.0f : km;
    m = r1[1] > m ? r1[1] : m;
    *k = km;
    return m;
}

/* Writes a window's gradient (d0[0], d0[1], d1[0], d1[1]): g at position k, 0 elsewhere. The
 * generic path adds g to a zeroed dx; 0 + g keeps its result bit for bit (a -0 becomes +0). */
static inline void scatter2x2(float *d0, float *d1, float k, float g)
{
    g = 0.0f + g;
    d0[0] = k == 0.0f ? g : 0.0f;
    d0[1] = k == 1.0f ? g : 0.0f;
    d1[0] = k == 2.0f ? g : 0.0f;
    d1[1] = k == 3.0f ? g : 0.0f;
}

/* A row of windows goes in blocks of a fixed width b (8 or 4: a loop of known length, which
 * vectorises whole), the last block starting at ow - b: it may overlap the one before it,
 * which writes the same values again. A plain loop over a row would leave most windows of the
 * short rows of small images (14 and 7 in the reference CNN) to its scalar remainder. */
static inline int block_start(int ox, int ow, int b) { return ox < ow - b ? ox : ow - b; }

/* Windows [s, s + b) of a row: top input row r0 and bottom r1 (w), outputs y and, when code is
 * not NULL, positions code (ow). */
static inline void max2x2_forward_block(const float *r0, const float *r1, float *y, float *code,
                                        int s, int b)
{
    if (code) {
#pragma omp simd
        for (int ox = s; ox < s + b; ox++)
            y[ox] = max2x2(r0 + 2 * ox, r1 + 2 * ox, &code[ox]);
    } else {
#pragma omp simd
        for (int ox = s; ox < s + b; ox++) {
            float k;
            y[ox] = max2x2(r0 + 2 * ox, r1 + 2 * ox, &k);
        }
    }
}

/* Gradients d0, d1 (w) of windows [s, s + b) from dy's row g (ow), with the positions kept in
 * code (ow) or, when code is NULL, found again in r0 and r1 (w). */
static inline void max2x2_backward_block(const float *r0, const float *r1, const float *code,
                                         const float *g, float *d0, float *d1, int s, int b)
{
    if (code) {
#pragma omp simd
        for (int ox = s; ox < s + b; ox++)
            scatter2x2(d0 + 2 * ox, d1 + 2 * ox, code[ox], g[ox]);
    } else {
#pragma omp simd
        for (int ox = s; ox < s + b; ox++) {
            float k;
            max2x2(r0 + 2 * ox, r1 + 2 * ox, &k);
            scatter2x2(d0 + 2 * ox, d1 + 2 * ox, k, g[ox]);
        }
    }
}

/* One plane: xp (h, w) into yp and, when not NULL, code (oh, ow), in blocks of b windows. */
static inline void max2x2_forward_plane(const float *xp, float *yp, float *code, int oh, int ow,
                                        int w, int b)
{
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = xp + (size_t)2 * oy * w;
        float *kr = code ? code + (size_t)oy * ow : NULL;
        for (int ox = 0; ox < ow; ox += b)
            max2x2_forward_block(r0, r0 + w, yp + (size_t)oy * ow, kr, block_start(ox, ow, b),
                                 b);
    }
}

/* One plane: dy's gp and code (oh, ow), or xp (h, w) when code is NULL, into dxp (h, w), in
 * blocks of b windows. Every input element lies in at most one window, so dx is written once,
 * without zeroing it first; an odd last row or column fits no window and gets 0. */
static inline void max2x2_backward_plane(const float *xp, const float *code, const float *gp,
                                         float *dxp, int oh, int ow, int h, int w, int b)
{
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = xp + (size_t)2 * oy * w;
        const float *kr = code ? code + (size_t)oy * ow : NULL;
        float *d0 = dxp + (size_t)2 * oy * w;
        for (int ox = 0; ox < ow; ox += b)
            max2x2_backward_block(r0, r0 + w, kr, gp + (size_t)oy * ow, d0, d0 + w,
                                  block_start(ox, ow, b), b);
        if (w & 1)
            d0[w - 1] = d0[2 * w - 1] = 0.0f;
    }
    if (h & 1)
        memset(dxp + (size_t)(h - 1) * w, 0, (size_t)w * sizeof *dxp);
}

static void max2x2_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    fnn_shape in = l->in, out = l->out;
    size_t lo, hi, plane = (size_t)in.h * in.w, oplane = (size_t)out.h * out.w;
    forward_planes(l, n, &lo, &hi);
    float *code = p->train ? l->scratch : NULL; /* (n, c, oh, ow); only training keeps it */
    for (size_t r = lo; r < hi; r++) { /* r: one (sample, channel) plane */
        const float *xp = x + r * plane;
        float *yp = y + r * oplane, *kp = code ? code + r * oplane : NULL;
        /* Each call inlines the plane's loops with a constant block width. */
        if (out.w >= 8)
            max2x2_forward_plane(xp, yp, kp, out.h, out.w, in.w, 8);
        else if (out.w >= 4)
            max2x2_forward_plane(xp, yp, kp, out.h, out.w, in.w, 4);
        else
            max2x2_forward_plane(xp, yp, kp, out.h, out.w, in.w, out.w);
    }
}

static void max2x2_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *dy,
                            float *dx, int n)
{
    fnn_shape in = l->in, out = l->out;
    size_t lo, hi, plane = (size_t)in.h * in.w, oplane = (size_t)out.h * out.w;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    const float *code = p->train ? l->scratch : NULL; /* (n, c, oh, ow) */
    for (size_t r = lo * in.c; r < hi * in.c; r++) {
        const float *xp = x + r * plane, *gp = dy + r * oplane;
        const float *kp = code ? code + r * oplane : NULL;
        float *dxp = dx + r * plane;
        if (out.w >= 8)
            max2x2_backward_plane(xp, kp, gp, dxp, out.h, out.w, in.h, in.w, 8);
        else if (out.w >= 4)
            max2x2_backward_plane(xp, kp, gp, dxp, out.h, out.w, in.h, in.w, 4);
        else
            max2x2_backward_plane(xp, kp, gp, dxp, out.h, out.w, in.h, in.w, out.w);
    }
}

static void maxpool_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    if (is_2x2_stride2(l)) {
        max2x2_forward(l, p, x, y, n);
        return;
    }
    fnn_shape in = l->in, out = l->out;
    int size = l->cfg.pool.size, stride = l->cfg.pool.stride;
    size_t lo, hi, plane = (size_t)in.h * in.w, oplane = (size_t)out.h * out.w;
    forward_planes(l, n, &lo, &hi);
    /* (n, c, oh, ow) offsets into the sample, of each output's arg-max; only training keeps
     * them. The scratch holds no floats of its own, so an int32 view of it is well defined. */
    int32_t *arg = p->train ? (int32_t *)l->scratch : NULL;
    for (size_t r = lo; r < hi; r++) { /* r: one (sample, channel) plane */
        const float *xp = x + r * plane; /* (h, w) */
        size_t c = r % (size_t)in.c, o = r * oplane;
        for (int oy = 0; oy < out.h; oy++)
            for (int ox = 0; ox < out.w; ox++, o++) {
                int k = window_argmax(xp, in.w, size, stride, oy, ox);
                y[o] = xp[k];
                if (arg)
                    arg[o] = (int32_t)(c * plane + (size_t)k);
            }
    }
}

/* In training the arg-max comes from the forward pass's scratch; an evaluation-mode backward
 * (gradients with respect to the input, for saliency) finds it again in x. */
static void maxpool_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                             float *dy, float *dx, int n)
{
    if (!dx)
        return;
    if (is_2x2_stride2(l)) {
        max2x2_backward(l, p, x, dy, dx, n);
        return;
    }
    fnn_shape in = l->in, out = l->out;
    int size = l->cfg.pool.size, stride = l->cfg.pool.stride;
    size_t lo, hi, isize = fnn_shape_size(in), osize = fnn_shape_size(out);
    size_t plane = (size_t)in.h * in.w;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    memset(dx + lo * isize, 0, (hi - lo) * isize * sizeof *dx);
    const int32_t *arg = (const int32_t *)l->scratch;
    for (size_t i = lo; i < hi; i++) {
        float *dxi = dx + i * isize;        /* (c, h, w) */
        const float *dyi = dy + i * osize;  /* (c, oh, ow) */
        if (p->train) {
            for (size_t o = 0; o < osize; o++)
                dxi[arg[i * osize + o]] += dyi[o];
            continue;
        }
        size_t o = 0;
        for (int c = 0; c < in.c; c++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++, o++)
                    dxi[c * plane + window_argmax(x + i * isize + c * plane, in.w, size, stride,
                                                  oy, ox)] += dyi[o];
    }
}

static void avgpool_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    fnn_shape in = l->in, out = l->out;
    int size = l->cfg.pool.size, stride = l->cfg.pool.stride;
    float scale = 1.0f / (float)(size * size);
    size_t lo, hi, plane = (size_t)in.h * in.w, oplane = (size_t)out.h * out.w;
    forward_planes(l, n, &lo, &hi);
    for (size_t r = lo; r < hi; r++) { /* r: one (sample, channel) plane */
        const float *xp = x + r * plane; /* (h, w) */
        float *yp = y + r * oplane;      /* (oh, ow) */
        for (int oy = 0; oy < out.h; oy++)
            for (int ox = 0; ox < out.w; ox++) {
                float s = 0.0f;
                for (int ky = 0; ky < size; ky++) {
                    const float *row = xp + (size_t)(oy * stride + ky) * in.w + ox * stride;
                    for (int kx = 0; kx < size; kx++)
                        s += row[kx];
                }
                yp[oy * out.w + ox] = s * scale;
            }
    }
}

static void avgpool_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                             float *dy, float *dx, int n)
{
    if (!dx)
        return;
    fnn_shape in = l->in, out = l->out;
    int size = l->cfg.pool.size, stride = l->cfg.pool.stride;
    float scale = 1.0f / (float)(size * size);
    size_t lo, hi, plane = (size_t)in.h * in.w, oplane = (size_t)out.h * out.w;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    memset(dx + lo * fnn_shape_size(in), 0, (hi - lo) * fnn_shape_size(in) * sizeof *dx);
    for (size_t i = lo; i < hi; i++)
        for (int c = 0; c < in.c; c++) {
            float *dxp = dx + (i * in.c + c) * plane;           /* (h, w) */
            const float *dyp = dy + (i * out.c + c) * oplane;   /* (oh, ow) */
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    float g = dyp[oy * out.w + ox] * scale;
                    for (int ky = 0; ky < size; ky++) {
                        float *row = dxp + (size_t)(oy * stride + ky) * in.w + ox * stride;
                        for (int kx = 0; kx < size; kx++)
                            row[kx] += g;
                    }
                }
        }
}

static fnn_status globalavgpool_setup(fnn_layer *l, fnn_error *err)
{
    if (l->in.c < 1 || l->in.h < 1 || l->in.w < 1)
        return fnn_fail(err, FNN_ERR_ARG, "globalavgpool layer %d: empty %dx%dx%d input",
                        l->index, l->in.c, l->in.h, l->in.w);
    l->out = (fnn_shape){l->in.c, 1, 1};
    l->scratch_per_sample = 0;
    return FNN_OK;
}

static void globalavgpool_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y,
                                  int n)
{
    size_t lo, hi, plane = (size_t)l->in.h * l->in.w;
    float scale = 1.0f / (float)plane;
    forward_planes(l, n, &lo, &hi);
    for (size_t r = lo; r < hi; r++) { /* r: one (sample, channel) plane */
        const float *xp = x + r * plane;
        float s = 0.0f;
        for (size_t j = 0; j < plane; j++)
            s += xp[j];
        y[r] = s * scale;
    }
}

static void globalavgpool_backward(fnn_layer *l, const fnn_pass *p, const float *x,
                                   const float *y, float *dy, float *dx, int n)
{
    if (!dx)
        return;
    size_t lo, hi, plane = (size_t)l->in.h * l->in.w;
    float scale = 1.0f / (float)plane;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    for (size_t r = lo * l->in.c; r < hi * l->in.c; r++) {
        float g = dy[r] * scale;
        float *dxp = dx + r * plane;
        for (size_t j = 0; j < plane; j++)
            dxp[j] = g;
    }
}

static unsigned pool_sharing(const fnn_layer *l, int n, int nt)
{
    unsigned backward = FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT;
    return n < nt ? backward : FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT | backward; /* forward_planes */
}

static void window_format(const fnn_layer *l, char *buf, size_t size)
{
    if (l->cfg.pool.stride == l->cfg.pool.size)
        snprintf(buf, size, "%s:%d", l->ops->kind, l->cfg.pool.size);
    else
        snprintf(buf, size, "%s:%d:%d", l->ops->kind, l->cfg.pool.size, l->cfg.pool.stride);
}

static void globalavgpool_format(const fnn_layer *l, char *buf, size_t size)
{
    snprintf(buf, size, "globalavgpool");
}

const fnn_layer_ops fnn_maxpool_ops = {
    .kind = "maxpool",
    .type = "MaxPooling2D",
    .setup = maxpool_setup,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .format = window_format,
    .sharing = pool_sharing,
};

const fnn_layer_ops fnn_avgpool_ops = {
    .kind = "avgpool",
    .type = "AveragePooling2D",
    .setup = window_setup,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .format = window_format,
    .sharing = pool_sharing,
};

const fnn_layer_ops fnn_globalavgpool_ops = {
    .kind = "globalavgpool",
    .type = "GlobalAveragePooling2D",
    .setup = globalavgpool_setup,
    .forward = globalavgpool_forward,
    .backward = globalavgpool_backward,
    .format = globalavgpool_format,
    .sharing = pool_sharing,
};
