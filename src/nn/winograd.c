/* Winograd F(2x2, 3x3) transforms and products for conv2d; the algebra is in winograd.h.
 * Tiles of a chunk of images are multiplied together, (16, c|f, nb tiles), so that each of
 * the 16 products is large enough for OpenBLAS to run near its peak. */
#include "nn/winograd.h"
#include "util/gemm.h"

#include <string.h>

/* Tiles per chunk: the products' width. More amortises OpenBLAS's packing; fewer keeps a
 * chunk's M and dV in the core's L2 cache. */
#define CHUNK_TILES 196

/* Tiles per vector block. The transforms' inner loops run over exactly LANES tiles of a row of
 * tiles, which the compiler turns into vector code (shuffles do the stride-2 reads). A row's
 * last block may run past its tiles: it reads padding or the next row's tiles, and writes
 * lanes that the next row, the next image or the products' padding (LANES columns past the
 * chunk's tiles) take over; the transforms go through rows and images in order for that. */
#define LANES 8

static size_t line(size_t n) { return (n + 15) & ~(size_t)15; }

void fnn_wino_plan(fnn_wino *g, int c, int h, int w, int f, int oh, int ow, int pt, int pl)
{
    *g = (fnn_wino){.c = c, .h = h, .w = w, .f = f, .oh = oh, .ow = ow, .pt = pt, .pl = pl,
                    .th = (oh + 1) / 2, .tw = (ow + 1) / 2};
    g->ph = 2 * g->th + 2;
    /* Tile columns rounded up past the last one, whose right half the gradient spreads to. */
    g->twv = (g->tw + LANES) / LANES * LANES;
    g->pw = 2 * g->twv + 2;
    g->tiles = (size_t)g->th * g->tw;
    g->chunk = g->tiles >= CHUNK_TILES ? 1 : (int)(CHUNK_TILES / g->tiles);
}

/* Columns of a tile-domain row of nb images: their tiles and the blocks' spill-over. */
static size_t stride(const fnn_wino *g, int nb) { return (size_t)nb * g->tiles + LANES; }

/* The thread's buffers, each starting on a cache line. */
typedef struct {
    float *u;   /* (16, f, c) transformed kernels */
    float *du;  /* (16, f, c) their gradient, summed over the thread's chunks */
    float *m;   /* (16, f, ld) products, or their gradient dM */
    float *dv;  /* (16, c, ld) V, then in backward its gradient */
    float *pad; /* (ph, pw) one plane padded, or an output gradient plane (2 th, 2 twv) */
    float *row; /* (2, 2 twv) the two output rows of a row of tiles */
    float *plane; /* (oh, ow) an output gradient through the ReLU */
} buffers;

static size_t sizes(const fnn_wino *g, size_t *s)
{
    size_t ld = stride(g, g->chunk), xi = FNN_WINO_XI;
    s[0] = line(xi * g->f * g->c);
    s[1] = s[0];
    s[2] = line(xi * g->f * ld);
    s[3] = line(xi * g->c * ld);
    s[4] = line((size_t)g->ph * g->pw);
    s[5] = line(4 * (size_t)g->twv);
    s[6] = line((size_t)g->oh * g->ow);
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6];
}

size_t fnn_wino_thread_floats(const fnn_wino *g)
{
    size_t s[7];
    return sizes(g, s);
}

static buffers carve(const fnn_wino *g, float *work)
{
    size_t s[7];
    sizes(g, s);
    buffers b;
    b.u = work;
    b.du = b.u + s[0];
    b.m = b.du + s[1];
    b.dv = b.m + s[2];
    b.pad = b.dv + s[3];
    b.row = b.pad + s[4];
    b.plane = b.row + s[5];
    return b;
}

/* Kernels per block of the kernel transforms. U (16, f, c) is 16 rows fc apart, and fc is
 * often a multiple of 1024 floats: writing or reading one kernel's 16 values at a time then
 * hits 16 lines in the same L1 set, which measured 5x slower than going by blocks of
 * whole lines through a small transposed buffer. */
#define KERNEL_BLOCK 16

size_t fnn_wino_kernel_floats(const fnn_wino *g) { return line(FNN_WINO_XI * g->f * g->c); }

float *fnn_wino_thread_kernels(const fnn_wino *g, float *work) { return carve(g, work).u; }

float *fnn_wino_thread_input(const fnn_wino *g, float *work) { return carve(g, work).dv; }

void fnn_wino_kernels(const fnn_wino *g, const float *w, int f0, int f1, float *u)
{
    size_t fc = (size_t)g->f * g->c, end = (size_t)f1 * g->c; /* kernels [f0 c, f1 c) */
    for (size_t k0 = (size_t)f0 * g->c; k0 < end; k0 += KERNEL_BLOCK) {
        size_t nk = end - k0 < KERNEL_BLOCK ? end - k0 : KERNEL_BLOCK;
        float t[FNN_WINO_XI][KERNEL_BLOCK]; /* this block's U, position by position */
        for (size_t kb = 0; kb < nk; kb++) {
            const float *k3 = w + 9 * (k0 + kb); /* (3, 3) */
            float a[4][3];                       /* G g */
            for (int j = 0; j < 3; j++) {
                a[0][j] = k3[j];
                a[1][j] = 0.5f * (k3[j] + k3[3 + j] + k3[6 + j]);
                a[2][j] = 0.5f * (k3[j] - k3[3 + j] + k3[6 + j]);
                a[3][j] = k3[6 + j];
            }
            for (int i = 0; i < 4; i++) { /* (G g) G^T */
                t[4 * i][kb] = a[i][0];
                t[4 * i + 1][kb] = 0.5f * (a[i][0] + a[i][1] + a[i][2]);
                t[4 * i + 2][kb] = 0.5f * (a[i][0] - a[i][1] + a[i][2]);
                t[4 * i + 3][kb] = a[i][2];
            }
        }
        for (int xi = 0; xi < FNN_WINO_XI; xi++)
            memcpy(u + xi * fc + k0, t[xi], nk * sizeof *u);
    }
}

/* Rows [r0, r1) of the plane x (h, w) padded into pad (ph, pw), zeros around it. */
static void pad_rows(const fnn_wino *g, const float *x, int r0, int r1, float *pad)
{
    memset(pad + (size_t)r0 * g->pw, 0, (size_t)(r1 - r0) * g->pw * sizeof *pad);
    int y0 = r0 - g->pt > 0 ? r0 - g->pt : 0, y1 = r1 - g->pt < g->h ? r1 - g->pt : g->h;
    int cols = g->w < g->pw - g->pl ? g->w : g->pw - g->pl;
    for (int y = y0; y < y1; y++)
        memcpy(pad + (size_t)(y + g->pt) * g->pw + g->pl, x + (size_t)y * g->w,
               (size_t)cols * sizeof *pad);
}

/* B^T d B of LANES tiles: r is the top row of their patches (pw apart, 2 LANES + 2 wide) ->
 * d (16 rows xs apart). */
static inline void input_block(const float *restrict r, int pw, size_t xs, float *restrict d)
{
#pragma omp simd
    for (int k = 0; k < LANES; k++) {
        float a[4][4]; /* B^T d, column q of the patch */
        for (int q = 0; q < 4; q++) {
            const float *p = r + 2 * k + q;
            float p0 = p[0], p1 = p[pw], p2 = p[2 * pw], p3 = p[3 * pw];
            a[0][q] = p0 - p2;
            a[1][q] = p1 + p2;
            a[2][q] = p2 - p1;
            a[3][q] = p1 - p3;
        }
        for (int i = 0; i < 4; i++) { /* (B^T d) B */
            float *o = d + (size_t)(4 * i) * xs + k;
            o[0] = a[i][0] - a[i][2];
            o[xs] = a[i][1] + a[i][2];
            o[2 * xs] = a[i][2] - a[i][1];
            o[3 * xs] = a[i][1] - a[i][3];
        }
    }
}

/* Channel ci of one image: the B^T d B of its tiles in rows [ty0, ty1) into v (16, c, ld)
 * from column t0 on. */
static void input_plane(const fnn_wino *g, const float *x, int ci, size_t ld, size_t t0,
                        int ty0, int ty1, const buffers *b, float *v)
{
    int pw = g->pw, tw = g->tw;
    size_t xs = (size_t)g->c * ld; /* from one tile position to the next */
    pad_rows(g, x, 2 * ty0, 2 * ty1 + 2, b->pad);
    for (int ty = ty0; ty < ty1; ty++) {
        const float *r = b->pad + (size_t)2 * ty * pw;
        float *d = v + (size_t)ci * ld + t0 + (size_t)(ty - ty0) * tw;
        for (int tx = 0; tx < tw; tx += LANES)
            input_block(r + 2 * tx, pw, xs, d + tx);
    }
}

/* Channels [c0, c1) of V (16, c, ld) of the images x (nb, c, h, w). */
static void input(const fnn_wino *g, const float *x, int nb, int c0, int c1, const buffers *b,
                  float *v)
{
    size_t ld = stride(g, nb), plane = (size_t)g->h * g->w;
    for (int i = 0; i < nb; i++)
        for (int ci = c0; ci < c1; ci++)
            input_plane(g, x + ((size_t)i * g->c + ci) * plane, ci, ld, i * g->tiles, 0, g->th,
                        b, v);
}

void fnn_wino_input(const fnn_wino *g, const float *x, int nb, int c0, int c1, float *v,
                    float *work)
{
    buffers b = carve(g, work);
    input(g, x, nb, c0, c1, &b, v);
}

/* A^T M A of LANES tiles: m (16 rows xs apart) -> the two rows of their 2x2 outputs, even
 * and odd (2 LANES each, interleaved by column). */
static inline void output_block(const float *restrict m, size_t xs, float *restrict even,
                                float *restrict odd)
{
#pragma omp simd
    for (int k = 0; k < LANES; k++) {
        float s[4][2]; /* M A: per row of M, the two output columns */
        for (int i = 0; i < 4; i++) {
            const float *mi = m + (size_t)(4 * i) * xs + k;
            float m0 = mi[0], m1 = mi[xs], m2 = mi[2 * xs], m3 = mi[3 * xs];
            s[i][0] = m0 + m1 + m2;
            s[i][1] = m1 - m2 - m3;
        }
        even[2 * k] = s[0][0] + s[1][0] + s[2][0];
        even[2 * k + 1] = s[0][1] + s[1][1] + s[2][1];
        odd[2 * k] = s[1][0] - s[2][0] - s[3][0];
        odd[2 * k + 1] = s[1][1] - s[2][1] - s[3][1];
    }
}

/* dst (n) = src + filter fi's bias, its affine map and its ReLU (fnn_wino_epilogue). */
static inline void epilogue(const float *restrict src, const fnn_wino_epilogue *ep, int fi,
                            int n, float *restrict dst)
{
    float bias = ep->b ? ep->b[fi] : 0.0f;
    if (ep->scale) {
        float scale = ep->scale[fi], shift = ep->shift[fi];
        if (ep->relu) {
#pragma omp simd
            for (int j = 0; j < n; j++) {
                float val = (src[j] + bias) * scale + shift;
                dst[j] = val > 0.0f ? val : 0.0f;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < n; j++)
                dst[j] = (src[j] + bias) * scale + shift;
        }
    } else if (ep->relu) {
#pragma omp simd
        for (int j = 0; j < n; j++) {
            float val = src[j] + bias;
            dst[j] = val > 0.0f ? val : 0.0f;
        }
    } else {
#pragma omp simd
        for (int j = 0; j < n; j++)
            dst[j] = src[j] + bias;
    }
}

/* Filter fi of one image: A^T M A of its tiles in rows [ty0, ty1), from column t0 of m
 * (16, f, ld), through the epilogue, into their rows of y (oh, ow). */
static void output_plane(const fnn_wino *g, const float *m, int fi, size_t ld, size_t t0,
                         int ty0, int ty1, const fnn_wino_epilogue *ep, const buffers *b,
                         float *y)
{
    int tw = g->tw, ow = g->ow;
    size_t xs = (size_t)g->f * ld;
    float *even = b->row, *odd = even + 2 * g->twv; /* (2 twv) each: a row of tiles' outputs */
    for (int ty = ty0; ty < ty1; ty++) {
        const float *mm = m + (size_t)fi * ld + t0 + (size_t)(ty - ty0) * tw;
        for (int tx = 0; tx < tw; tx += LANES)
            output_block(mm + tx, xs, even + 2 * tx, odd + 2 * tx);
        float *y0 = y + (size_t)2 * ty * ow;
        epilogue(even, ep, fi, ow, y0);
        if (2 * ty + 1 < g->oh)
            epilogue(odd, ep, fi, ow, y0 + ow);
    }
}

void fnn_wino_output(const fnn_wino *g, const float *u, const float *v,
                     const fnn_wino_epilogue *ep, int nb, int f0, int f1, float *y, float *work)
{
    buffers b = carve(g, work);
    int c = g->c, nt = nb * (int)g->tiles, ld = (int)stride(g, nb);
    size_t fc = (size_t)g->f * c, f0c = (size_t)f0 * c, f0ld = (size_t)f0 * ld;
    for (int xi = 0; xi < FNN_WINO_XI; xi++) /* M = U . V, rows [f0, f1) */
        fnn_sgemm(0, 0, f1 - f0, nt, c, 1.0f, u + xi * fc + f0c, c, v + (size_t)xi * c * ld, ld,
                  0.0f, b.m + (size_t)xi * g->f * ld + f0ld, ld);
    size_t oplane = (size_t)g->oh * g->ow;
    for (int i = 0; i < nb; i++)
        for (int fi = f0; fi < f1; fi++)
            output_plane(g, b.m, fi, (size_t)ld, i * g->tiles, 0, g->th, ep, &b,
                         y + ((size_t)i * g->f + fi) * oplane);
}

void fnn_wino_forward_rows(const fnn_wino *g, const float *u, const float *x,
                           const fnn_wino_epilogue *ep, int ty0, int ty1, float *y, float *work)
{
    buffers b = carve(g, work);
    int f = g->f, c = g->c, nt = (ty1 - ty0) * g->tw, ld = nt + LANES;
    size_t fc = (size_t)f * c, plane = (size_t)g->h * g->w, oplane = (size_t)g->oh * g->ow;
    for (int ci = 0; ci < c; ci++)
        input_plane(g, x + ci * plane, ci, (size_t)ld, 0, ty0, ty1, &b, b.dv);
    for (int xi = 0; xi < FNN_WINO_XI; xi++) /* M = U . V */
        fnn_sgemm(0, 0, f, nt, c, 1.0f, u + xi * fc, c, b.dv + (size_t)xi * c * ld, ld, 0.0f,
                  b.m + (size_t)xi * f * ld, ld);
    for (int fi = 0; fi < f; fi++)
        output_plane(g, b.m, fi, (size_t)ld, 0, ty0, ty1, ep, &b, y + fi * oplane);
}

void fnn_wino_forward(const fnn_wino *g, const float *u, const float *x,
                      const fnn_wino_epilogue *ep, int nb, float *y, float *work)
{
    buffers b = carve(g, work);
    input(g, x, nb, 0, g->c, &b, b.dv);
    fnn_wino_output(g, u, b.dv, ep, nb, 0, g->f, y, work);
}

/* dM = A dY A^T of LANES tiles: the rows top and bottom (2 LANES each) of their output
 * gradients -> dm (16 rows xs apart). */
static inline void grad_output_block(const float *restrict top, const float *restrict bottom,
                                     size_t xs, float *restrict dm)
{
#pragma omp simd
    for (int k = 0; k < LANES; k++) {
        float z[4][2]; /* A dY */
        for (int j = 0; j < 2; j++) {
            float t = top[2 * k + j], u = bottom[2 * k + j];
            z[0][j] = t;
            z[1][j] = t + u;
            z[2][j] = t - u;
            z[3][j] = -u;
        }
        for (int i = 0; i < 4; i++) { /* (A dY) A^T */
            float *o = dm + (size_t)(4 * i) * xs + k;
            o[0] = z[i][0];
            o[xs] = z[i][0] + z[i][1];
            o[2 * xs] = z[i][0] - z[i][1];
            o[3 * xs] = -z[i][1];
        }
    }
}

/* Filter fi of one image: dM = A dY A^T of its tiles, from dy (oh, ow), taken through the ReLU
 * that gave y (oh, ow) when relu, into column t0 of dm (16, f, ld). Returns the sum of that
 * gradient, the bias's, when `bias` (else 0). */
static float grad_output_plane(const fnn_wino *g, const float *dy, const float *y, int relu,
                               int bias, int fi, size_t ld, size_t t0, const buffers *b,
                               float *dm)
{
    int tw = g->tw, oh = g->oh, ow = g->ow, n = oh * ow, w2 = 2 * g->twv;
    size_t xs = (size_t)g->f * ld;
    const float *grad = dy; /* (oh, ow) the gradient through the ReLU */
    if (relu) {
        float *masked = b->plane;
#pragma omp simd
        for (int j = 0; j < n; j++)
            masked[j] = y[j] > 0.0f ? dy[j] : 0.0f;
        grad = masked;
    }
    float sum = 0.0f;
    if (bias) { /* a loop of its own: fused with the mask's, GCC left both scalar */
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++)
            sum += grad[j];
    }
    float *pd = b->pad; /* (2 th, 2 twv): the gradient, zero past (oh, ow) */
    for (int r = 0; r < oh; r++) {
        memcpy(pd + (size_t)r * w2, grad + (size_t)r * ow, (size_t)ow * sizeof *pd);
        memset(pd + (size_t)r * w2 + ow, 0, (size_t)(w2 - ow) * sizeof *pd);
    }
    memset(pd + (size_t)oh * w2, 0, (size_t)(2 * g->th - oh) * w2 * sizeof *pd);
    for (int ty = 0; ty < g->th; ty++) {
        const float *top = pd + (size_t)2 * ty * w2;
        float *out = dm + (size_t)fi * ld + t0 + (size_t)ty * tw;
        for (int tx = 0; tx < tw; tx += LANES)
            grad_output_block(top + 2 * tx, top + w2 + 2 * tx, xs, out + tx);
    }
    return sum;
}

/* B dV of one tile: the 16 values at dv (xs apart) -> z, rows of B dV. */
#define B_DV(dv, xs, z)                                                                        \
    for (int j_ = 0; j_ < 4; j_++) {                                                           \
        const float *col_ = (dv) + (size_t)j_ * (xs);                                          \
        float x0_ = col_[0], x1_ = col_[4 * (xs)], x2_ = col_[8 * (xs)],                      \
              x3_ = col_[12 * (xs)];                                                           \
        z[0][j_] = x0_;                                                                        \
        z[1][j_] = x1_ - x2_ + x3_;                                                            \
        z[2][j_] = x1_ + x2_ - x0_;                                                            \
        z[3][j_] = -x3_;                                                                       \
    }

/* B dV B^T of LANES tiles, added to the four plane rows from p (pw apart): tile k's patch
 * covers columns 2k..2k + 3, so columns 2k and 2k + 1 take columns 0 and 1 of tile k, then 2
 * and 3 of tile k - 1, each lane adding to its own columns only. dv is tile 0's gradient
 * (16 rows xs apart); tiles before `lo` or from `hi` on count as zero, whatever the memory
 * there holds. The halves are worked out, masked and added in separate loops: GCC 12 left
 * the loop that did all three scalar ("control flow in loop"), 14 % of a CIFAR CNN's step. */
static inline void grad_input_block(const float *restrict dv, size_t xs, int lo, int hi,
                                    float *restrict p, int pw)
{
    float left[4][2][LANES], right[4][2][LANES]; /* tile k's columns 0, 1; tile k - 1's 2, 3 */
#pragma omp simd
    for (int k = 0; k < LANES; k++) {
        float z[4][4];
        B_DV(dv + k, xs, z)
        for (int i = 0; i < 4; i++) {
            left[i][0][k] = z[i][0];
            left[i][1][k] = z[i][1] - z[i][2] + z[i][3];
        }
    }
    const float *before = dv - 1;
#pragma omp simd
    for (int k = 0; k < LANES; k++) {
        float z[4][4];
        B_DV(before + k, xs, z)
        for (int i = 0; i < 4; i++) {
            right[i][0][k] = z[i][1] + z[i][2] - z[i][0];
            right[i][1][k] = -z[i][3];
        }
    }
    if (lo > -1 || hi < LANES) /* a row's first or last block: the tiles outside */
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 2; j++) {
#pragma omp simd
                for (int k = 0; k < LANES; k++) {
                    float l = left[i][j][k], r = right[i][j][k];
                    left[i][j][k] = (k >= lo) & (k < hi) ? l : 0.0f;
                    right[i][j][k] = (k - 1 >= lo) & (k - 1 < hi) ? r : 0.0f;
                }
            }
    for (int i = 0; i < 4; i++) {
        float *row = p + (size_t)i * pw;
#pragma omp simd
        for (int k = 0; k < LANES; k++) {
            row[2 * k] = row[2 * k] + left[i][0][k] + right[i][0][k];
            row[2 * k + 1] = row[2 * k + 1] + left[i][1][k] + right[i][1][k];
        }
    }
}

/* Columns 2 and 3 of one tile's B dV B^T, added to the four plane rows from p (pw apart) as
 * grad_input_block's lane 0 adds them in a block of tiles outside: after a zero for the tile
 * that is not there, which turns a -0 to +0 as that lane does. */
static void grad_input_spill(const float *dv, size_t xs, float *p, int pw)
{
    float z[4][4];
    B_DV(dv, xs, z)
    for (int i = 0; i < 4; i++) {
        float *row = p + (size_t)i * pw;
        row[0] = row[0] + 0.0f + (z[i][1] + z[i][2] - z[i][0]);
        row[1] = row[1] + 0.0f + -z[i][3];
    }
}

/* Channel ci of one image: B dV B^T of its tiles, from column t0 of dv (16, c, ld), added up
 * over the overlapping patches and cropped to dx (h, w). */
static void grad_input_plane(const fnn_wino *g, const float *dv, int ci, size_t ld, size_t t0,
                             const buffers *b, float *dx)
{
    int pw = g->pw, tw = g->tw;
    size_t xs = (size_t)g->c * ld;
    float *pad = b->pad; /* (ph, pw) */
    memset(pad, 0, (size_t)g->ph * pw * sizeof *pad);
    for (int ty = 0; ty < g->th; ty++) {
        const float *src = dv + (size_t)ci * ld + t0 + (size_t)ty * tw;
        float *p = pad + (size_t)2 * ty * pw;
        for (int tx = 0; tx < tw; tx += LANES)
            grad_input_block(src + tx, xs, -tx, tw - tx, p + 2 * tx, pw);
        /* The last block spreads tile tw - 1's right half in a lane past tw; a row of whole
         * blocks has no such lane. */
        if (tw % LANES == 0)
            grad_input_spill(src + tw - 1, xs, p + 2 * tw, pw);
    }
    int cols = g->w < pw - g->pl ? g->w : pw - g->pl;
    for (int y = 0; y < g->h; y++) {
        float *dst = dx + (size_t)y * g->w;
        int py = y + g->pt;
        if (py >= g->ph) {
            memset(dst, 0, (size_t)g->w * sizeof *dst);
            continue;
        }
        memcpy(dst, pad + (size_t)py * pw + g->pl, (size_t)cols * sizeof *dst);
        for (int x = cols; x < g->w; x++)
            dst[x] = 0.0f;
    }
}

void fnn_wino_backward(const fnn_wino *g, const float *u, const float *x, const float *y,
                       int relu, const float *dy, int nb, int first, float *db, float *dx,
                       float *work)
{
    buffers b = carve(g, work);
    int f = g->f, c = g->c, nt = nb * (int)g->tiles, ld = (int)stride(g, nb);
    size_t fc = (size_t)f * c, oplane = (size_t)g->oh * g->ow, plane = (size_t)g->h * g->w;
    const float *v = b.dv; /* (16, c, ld), until dV takes its place */
    input(g, x, nb, 0, c, &b, b.dv);
    for (int i = 0; i < nb; i++)
        for (int fi = 0; fi < f; fi++) {
            size_t o = ((size_t)i * f + fi) * oplane;
            float s = grad_output_plane(g, dy + o, y + o, relu, db != NULL, fi, (size_t)ld,
                                        i * g->tiles, &b, b.m);
            if (db)
                db[fi] += s;
        }
    for (int xi = 0; xi < FNN_WINO_XI; xi++) /* dU += dM . V^T */
        fnn_sgemm(0, 1, f, c, nt, 1.0f, b.m + (size_t)xi * f * ld, ld, v + (size_t)xi * c * ld,
                  ld, first ? 0.0f : 1.0f, b.du + xi * fc, c);
    if (!dx)
        return;
    for (int xi = 0; xi < FNN_WINO_XI; xi++) /* dV = U^T . dM */
        fnn_sgemm(1, 0, c, nt, f, 1.0f, u + xi * fc, c, b.m + (size_t)xi * f * ld, ld, 0.0f,
                  b.dv + (size_t)xi * c * ld, ld);
    for (int i = 0; i < nb; i++)
        for (int ci = 0; ci < c; ci++)
            grad_input_plane(g, b.dv, ci, (size_t)ld, i * g->tiles, &b,
                             dx + ((size_t)i * c + ci) * plane);
}

void fnn_wino_kernel_grads(const fnn_wino *g, const float *work, float *dw)
{
    const float *du = carve(g, (float *)work).du; /* (16, f, c) */
    size_t fc = (size_t)g->f * g->c;
    for (size_t k0 = 0; k0 < fc; k0 += KERNEL_BLOCK) {
        size_t nk = fc - k0 < KERNEL_BLOCK ? fc - k0 : KERNEL_BLOCK;
        float t[FNN_WINO_XI][KERNEL_BLOCK]; /* this block's dU, as in fnn_wino_kernels */
        for (int xi = 0; xi < FNN_WINO_XI; xi++)
            memcpy(t[xi], du + xi * fc + k0, nk * sizeof *du);
        for (size_t kb = 0; kb < nk; kb++) {
            float a[3][4]; /* G^T dU */
            for (int j = 0; j < 4; j++) {
                float x0 = t[j][kb], x1 = t[4 + j][kb], x2 = t[8 + j][kb], x3 = t[12 + j][kb];
                a[0][j] = x0 + 0.5f * (x1 + x2);
                a[1][j] = 0.5f * (x1 - x2);
                a[2][j] = 0.5f * (x1 + x2) + x3;
            }
            float *k3 = dw + 9 * (k0 + kb); /* (3, 3): (G^T dU) G */
            for (int i = 0; i < 3; i++) {
                k3[3 * i] = a[i][0] + 0.5f * (a[i][1] + a[i][2]);
                k3[3 * i + 1] = 0.5f * (a[i][1] - a[i][2]);
                k3[3 * i + 2] = 0.5f * (a[i][1] + a[i][2]) + a[i][3];
            }
        }
    }
}
