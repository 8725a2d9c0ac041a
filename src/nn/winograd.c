/* Winograd F(4x4, 3x3) transforms and products for conv2d; the algebra is in winograd.h.
 * Tiles of a chunk of images are multiplied together, (36, chunk's tiles, c|f), so that each
 * of the 36 products is large enough for the matrix library to run near its peak. */
#include "nn/winograd.h"
#include "util/gemm.h"

#include <string.h>

/* Tiles per chunk: the products' rows. More amortises the library's packing; fewer keeps a
 * chunk's V and M nearer the core (at 16x16, 32 -> 64 channels, they take 1.8 MB at 128 tiles
 * against a 1 MB L2). A CIFAR CNN step measured level from 64 to 256 (5.2-5.6 ms, 2026-12-05). */
#define CHUNK_TILES 128

#define L FNN_WINO_LANES
_Static_assert(L == 8, "splat() and transpose() are written for vectors of 8");

/* Vectors of 8 floats go in and out of this file's static functions, which the compiler
 * inlines; built without AVX (the fuzzers' build), Clang warns for every such signature that
 * its ABI would differ, which no caller outside this file could notice. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* A vector of L channels or filters. Loads and stores go through load() and store(), which
 * assume no alignment. */
typedef float vec __attribute__((vector_size(L * sizeof(float))));
typedef int ivec __attribute__((vector_size(L * sizeof(int))));

static inline vec load(const float *p)
{
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float *p, vec v) { memcpy(p, &v, sizeof v); }

static inline vec splat(float x) { return (vec){x, x, x, x, x, x, x, x}; }

static size_t line(size_t n) { return (n + 15) & ~(size_t)15; }
static int whole(int n) { return (n + L - 1) / L * L; }

/* From one of the 36 positions to the next in U, V or M, whose rows hold n floats: a cache
 * line more than whole lines. Those rows are often a multiple of 4 KiB apart otherwise, and a
 * transform's 36 loads or stores of one tile then fall in the same set of the L1 cache. */
static size_t skew(size_t n) { return line(n) + 16; }
static size_t u_step(const fnn_wino *g) { return skew((size_t)g->cv * g->fv); }
static size_t v_step(const fnn_wino *g, size_t nt) { return skew(nt * g->cv); }
static size_t m_step(const fnn_wino *g, size_t nt) { return skew(nt * g->fv); }

void fnn_wino_plan(fnn_wino *g, int c, int h, int w, int f, int oh, int ow, int pt, int pl)
{
    *g = (fnn_wino){.c = c, .h = h, .w = w, .f = f, .oh = oh, .ow = ow, .pt = pt, .pl = pl,
                    .cv = whole(c), .fv = whole(f), .th = (oh + 3) / 4, .tw = (ow + 3) / 4};
    g->ph = 4 * g->th + 2;
    g->pw = 4 * g->tw + 2;
    g->tiles = (size_t)g->th * g->tw;
    g->chunk = g->tiles >= CHUNK_TILES ? 1 : (int)(CHUNK_TILES / g->tiles);
}

/* The thread's buffers, each starting on a cache line. */
typedef struct {
    float *u;      /* (36, cv, fv) transformed kernels */
    float *du;     /* (36, cv, fv) their gradient, summed over the thread's chunks */
    float *m;      /* (36, tiles, fv) products, or their gradient dM */
    float *v;      /* (36, tiles, cv) V, then in backward its gradient */
    float *in;     /* (ph, pw, L) a group of channels padded, or their gradient */
    float *out;    /* (4 th, 4 tw, L) a group of filters' outputs, or their gradient */
} buffers;

static size_t sizes(const fnn_wino *g, size_t *s)
{
    size_t rows = (size_t)g->chunk * g->tiles, xi = FNN_WINO_XI;
    s[0] = xi * u_step(g);
    s[1] = s[0];
    s[2] = xi * m_step(g, rows);
    s[3] = xi * v_step(g, rows);
    s[4] = line((size_t)g->ph * g->pw * L);
    s[5] = line(16 * g->tiles * L);
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5];
}

size_t fnn_wino_thread_floats(const fnn_wino *g)
{
    size_t s[6];
    return sizes(g, s);
}

static buffers carve(const fnn_wino *g, float *work)
{
    size_t s[6];
    sizes(g, s);
    buffers b;
    b.u = work;
    b.du = b.u + s[0];
    b.m = b.du + s[1];
    b.v = b.m + s[2];
    b.in = b.v + s[3];
    b.out = b.in + s[4];
    return b;
}

size_t fnn_wino_kernel_floats(const fnn_wino *g) { return FNN_WINO_XI * u_step(g); }

float *fnn_wino_thread_kernels(const fnn_wino *g, float *work) { return carve(g, work).u; }

float *fnn_wino_thread_input(const fnn_wino *g, float *work) { return carve(g, work).v; }

/* Lanes of a and b (0-7 from a, 8-15 from b) picked into one vector: a shuffle that GCC (from
 * 12) and Clang both know. */
#define PICK(a, b, i0, i1, i2, i3, i4, i5, i6, i7)                                              \
    __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)

/* The 8x8 block r[i][j] -> r[j][i]: unpacks, then pairs, then halves. */
static inline void transpose(vec r[L])
{
    vec t[L], s[L];
    for (int i = 0; i < L; i += 2) {
        t[i] = PICK(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = PICK(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < L; i += 4) {
        s[i] = PICK(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        s[i + 1] = PICK(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        s[i + 2] = PICK(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        s[i + 3] = PICK(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = PICK(s[i], s[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[i + 4] = PICK(s[i], s[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* Columns [0, n) of the L rows r[l] into t (n, L): t[j L + l] = r[l][j], zero where r[l] is
 * NULL; through the mask rows m[l] when m is not NULL (m[l][j] > 0 ? r[l][j] : 0). When sum is
 * not NULL, the vectors written are added to it. */
static void gather_rows(const float *const r[L], const float *const m[L], int n, float *t,
                        vec *sum)
{
    vec acc = splat(0.0f);
    int j = 0;
    for (; j + L <= n; j += L) {
        vec v[L];
        for (int l = 0; l < L; l++) {
            v[l] = r[l] ? load(r[l] + j) : splat(0.0f);
            if (m && r[l])
                v[l] = (vec)((ivec)v[l] & (load(m[l] + j) > splat(0.0f)));
        }
        transpose(v);
        for (int k = 0; k < L; k++) {
            store(t + (size_t)(j + k) * L, v[k]);
            acc += v[k];
        }
    }
    for (; j < n; j++) {
        vec v;
        for (int l = 0; l < L; l++)
            v[l] = r[l] && (!m || m[l][j] > 0.0f) ? r[l][j] : 0.0f;
        store(t + (size_t)j * L, v);
        acc += v;
    }
    if (sum)
        *sum += acc;
}

/* The converse: t (n, L) into the rows r[l] that are not NULL. */
static void scatter_rows(const float *t, int n, float *const r[L])
{
    int j = 0;
    for (; j + L <= n; j += L) {
        vec v[L];
        for (int k = 0; k < L; k++)
            v[k] = load(t + (size_t)(j + k) * L);
        transpose(v);
        for (int l = 0; l < L; l++)
            if (r[l])
                store(r[l] + j, v[l]);
    }
    for (; j < n; j++)
        for (int l = 0; l < L; l++)
            if (r[l])
                r[l][j] = t[(size_t)j * L + l];
}

/* Rows [0, rows) and columns [0, cols) of n planes (plane apart, rows sw wide) into the
 * blocked dst (rows dw * L apart): pixel (y, x) of plane l at dst[(y dw + x) L + l], zeros in
 * the lanes from n on; through the mask planes (same layout) and summed into sum as
 * gather_rows does. */
static void to_blocked(const float *src, const float *mask, size_t plane, int sw, int n,
                       int rows, int cols, float *dst, int dw, vec *sum)
{
    const float *r[L], *m[L];
    for (int y = 0; y < rows; y++) {
        for (int l = 0; l < L; l++) {
            r[l] = l < n ? src + l * plane + (size_t)y * sw : NULL;
            m[l] = l < n && mask ? mask + l * plane + (size_t)y * sw : NULL;
        }
        gather_rows(r, mask ? m : NULL, cols, dst + (size_t)y * dw * L, sum);
    }
}

/* The converse: rows [0, rows) and columns [0, cols) of the blocked src (rows sw * L apart),
 * lanes [0, n), into n planes (plane apart, rows dw wide). */
static void from_blocked(const float *src, int sw, int n, int rows, int cols, float *dst,
                         size_t plane, int dw)
{
    float *r[L];
    for (int y = 0; y < rows; y++) {
        for (int l = 0; l < L; l++)
            r[l] = l < n ? dst + l * plane + (size_t)y * dw : NULL;
        scatter_rows(src + (size_t)y * sw * L, cols, r);
    }
}

/* Zeros in the blocked plane p (rows w * L apart) outside rows [y0, y1) and columns [x0, x1)
 * of its rows [r0, r1) and columns [0, w). */
static void zero_around(float *p, int w, int r0, int r1, int y0, int y1, int x0, int x1)
{
    size_t rs = (size_t)w * L;
    for (int y = r0; y < r1; y++) {
        float *row = p + y * rs;
        if (y < y0 || y >= y1 || x0 >= x1) {
            memset(row, 0, rs * sizeof *row);
            continue;
        }
        memset(row, 0, (size_t)x0 * L * sizeof *row);
        memset(row + (size_t)x1 * L, 0, (size_t)(w - x1) * L * sizeof *row);
    }
}

/* Padded rows [r0, r1) of channels [cg L, cg L + L) of the image x (c, h, w), blocked into
 * in (ph, pw, L): zeros around the image and in the channels past c. */
static void block_input(const fnn_wino *g, const float *x, int cg, int r0, int r1, float *in)
{
    size_t plane = (size_t)g->h * g->w;
    int n = g->c - cg * L < L ? g->c - cg * L : L;
    int y0 = r0 - g->pt > 0 ? r0 - g->pt : 0, y1 = r1 - g->pt < g->h ? r1 - g->pt : g->h;
    int cols = g->w < g->pw - g->pl ? g->w : g->pw - g->pl;
    zero_around(in, g->pw, r0, r1, y0 + g->pt, y1 + g->pt, g->pl, g->pl + cols);
    if (y0 < y1)
        to_blocked(x + (size_t)cg * L * plane + (size_t)y0 * g->w, NULL, plane, g->w, n,
                   y1 - y0, cols, in + ((size_t)(y0 + g->pt) * g->pw + g->pl) * L, g->pw, NULL);
}

/* B^T of six vectors d0 .. d5 into o[0] .. o[5]. */
#define BT6(d0, d1, d2, d3, d4, d5, o)                                                         \
    do {                                                                                       \
        (o)[0] = 4.0f * (d0) - 5.0f * (d2) + (d4);                                             \
        (o)[1] = -4.0f * ((d1) + (d2)) + (d3) + (d4);                                          \
        (o)[2] = 4.0f * ((d1) - (d2)) - (d3) + (d4);                                           \
        (o)[3] = 2.0f * ((d3) - (d1)) - (d2) + (d4);                                           \
        (o)[4] = 2.0f * ((d1) - (d3)) - (d2) + (d4);                                           \
        (o)[5] = 4.0f * (d1) - 5.0f * (d3) + (d5);                                             \
    } while (0)

/* B^T d B of one tile of a group of channels: p is the patch's top left in a blocked plane
 * (rows rs floats apart) -> v (36 vectors xs apart). */
static inline void input_tile(const float *restrict p, size_t rs, size_t xs, float *restrict v)
{
    vec a[6][6]; /* B^T d: row i, column q */
    for (int q = 0; q < 6; q++) {
        const float *c = p + q * L;
        vec o[6];
        BT6(load(c), load(c + rs), load(c + 2 * rs), load(c + 3 * rs), load(c + 4 * rs),
            load(c + 5 * rs), o);
        for (int i = 0; i < 6; i++)
            a[i][q] = o[i];
    }
    for (int i = 0; i < 6; i++) {
        vec o[6];
        BT6(a[i][0], a[i][1], a[i][2], a[i][3], a[i][4], a[i][5], o);
        for (int j = 0; j < 6; j++)
            store(v + (size_t)(6 * i + j) * xs, o[j]);
    }
}

/* Channel groups [cg0, cg1) of one image x (c, h, w): the B^T d B of its tiles in rows
 * [ty0, ty1) into v (36, nt, cv) from row t0. */
static void input_image(const fnn_wino *g, const float *x, int cg0, int cg1, int ty0, int ty1,
                        size_t nt, size_t t0, const buffers *b, float *v)
{
    size_t xs = v_step(g, nt), rs = (size_t)g->pw * L;
    for (int cg = cg0; cg < cg1; cg++) {
        block_input(g, x, cg, 4 * ty0, 4 * ty1 + 2, b->in);
        for (int ty = ty0; ty < ty1; ty++) {
            size_t t = t0 + (size_t)(ty - ty0) * g->tw;
            for (int tx = 0; tx < g->tw; tx++)
                input_tile(b->in + ((size_t)4 * ty * g->pw + 4 * tx) * L, rs, xs,
                           v + (t + tx) * g->cv + cg * L);
        }
    }
}

/* Channels [c0, c1) of V (36, nb tiles, cv) of the images x (nb, c, h, w). */
static void input(const fnn_wino *g, const float *x, int nb, int c0, int c1, const buffers *b,
                  float *v)
{
    size_t plane = (size_t)g->c * g->h * g->w, nt = (size_t)nb * g->tiles;
    for (int i = 0; i < nb; i++)
        input_image(g, x + i * plane, c0 / L, (c1 + L - 1) / L, 0, g->th, nt, i * g->tiles, b,
                    v);
}

void fnn_wino_input(const fnn_wino *g, const float *x, int nb, int c0, int c1, float *v,
                    float *work)
{
    if (c0 >= c1)
        return;
    buffers b = carve(g, work);
    input(g, x, nb, c0, c1, &b, v);
}

/* A^T of six vectors m0 .. m5 into o[0] .. o[3]. */
#define AT6(m0, m1, m2, m3, m4, m5, o)                                                         \
    do {                                                                                       \
        vec p_ = (m1) + (m2), q_ = (m1) - (m2), r_ = (m3) + (m4), s_ = (m3) - (m4);            \
        (o)[0] = (m0) + p_ + r_;                                                               \
        (o)[1] = q_ + 2.0f * s_;                                                               \
        (o)[2] = p_ + 4.0f * r_;                                                               \
        (o)[3] = q_ + 8.0f * s_ + (m5);                                                        \
    } while (0)

/* The epilogue of a group of filters, by lanes. */
typedef struct {
    vec bias, scale, shift;
    int affine, relu;
} lanes_epilogue;

static lanes_epilogue group_epilogue(const fnn_wino *g, const fnn_wino_epilogue *ep, int fg)
{
    lanes_epilogue e = {.affine = ep->scale != NULL, .relu = ep->relu};
    for (int l = 0; l < L; l++) {
        int fi = fg * L + l;
        int in = fi < g->f;
        e.bias[l] = in && ep->b ? ep->b[fi] : 0.0f;
        e.scale[l] = in && ep->scale ? ep->scale[fi] : 0.0f;
        e.shift[l] = in && ep->scale ? ep->shift[fi] : 0.0f;
    }
    return e;
}

static inline vec relu(vec v) { return (vec)((ivec)v & (v > splat(0.0f))); }

/* A^T M A of one tile of a group of filters: m (36 vectors xs apart) through the epilogue ->
 * the tile's 4x4 outputs in a blocked plane from o (rows rs floats apart). */
static inline void output_tile(const float *restrict m, size_t xs, const lanes_epilogue *e,
                               float *restrict o, size_t rs)
{
    vec s[6][4]; /* M A: per row of M, the four output columns */
    for (int i = 0; i < 6; i++) {
        const float *mi = m + (size_t)(6 * i) * xs;
        AT6(load(mi), load(mi + xs), load(mi + 2 * xs), load(mi + 3 * xs), load(mi + 4 * xs),
            load(mi + 5 * xs), s[i]);
    }
    for (int c = 0; c < 4; c++) {
        vec r[4];
        AT6(s[0][c], s[1][c], s[2][c], s[3][c], s[4][c], s[5][c], r);
        for (int k = 0; k < 4; k++) {
            vec val = r[k] + e->bias;
            if (e->affine)
                val = val * e->scale + e->shift;
            if (e->relu)
                val = relu(val);
            store(o + k * rs + (size_t)c * L, val);
        }
    }
}

/* Filter groups [fg0, fg1) of one image: A^T M A of its tiles in rows [ty0, ty1), from row t0
 * of m (36, nt, fv), through the epilogue, into their rows of y (f, oh, ow). */
static void output_image(const fnn_wino *g, const float *m, int fg0, int fg1, int ty0, int ty1,
                         size_t nt, size_t t0, const fnn_wino_epilogue *ep, const buffers *b,
                         float *y)
{
    size_t xs = m_step(g, nt), rs = (size_t)4 * g->tw * L, oplane = (size_t)g->oh * g->ow;
    int y0 = 4 * ty0, y1 = 4 * ty1 < g->oh ? 4 * ty1 : g->oh;
    for (int fg = fg0; fg < fg1; fg++) {
        lanes_epilogue e = group_epilogue(g, ep, fg);
        for (int ty = ty0; ty < ty1; ty++) {
            size_t t = t0 + (size_t)(ty - ty0) * g->tw;
            for (int tx = 0; tx < g->tw; tx++)
                output_tile(m + (t + tx) * g->fv + fg * L, xs, &e,
                            b->out + ((size_t)4 * (ty - ty0) * 4 * g->tw + 4 * tx) * L, rs);
        }
        int n = g->f - fg * L < L ? g->f - fg * L : L;
        from_blocked(b->out, 4 * g->tw, n, y1 - y0, g->ow, y + fg * L * oplane + (size_t)y0 * g->ow,
                     oplane, g->ow);
    }
}

/* M = V . U for filters [f0, f1): nt rows of v (36, nt, cv) into m (36, nt, fv). */
static void products(const fnn_wino *g, const float *u, const float *v, size_t nt, int f0,
                     int f1, float *m)
{
    size_t us = u_step(g), vs = v_step(g, nt), ms = m_step(g, nt);
    for (int xi = 0; xi < FNN_WINO_XI; xi++)
        fnn_sgemm(0, 0, (int)nt, f1 - f0, g->cv, 1.0f, v + xi * vs, g->cv, u + xi * us + f0,
                  g->fv, 0.0f, m + xi * ms + f0, g->fv);
}

void fnn_wino_output(const fnn_wino *g, const float *u, const float *v,
                     const fnn_wino_epilogue *ep, int nb, int f0, int f1, float *y, float *work)
{
    if (f0 >= f1)
        return;
    buffers b = carve(g, work);
    size_t nt = (size_t)nb * g->tiles, oplane = (size_t)g->oh * g->ow;
    int fv1 = f1 < g->f ? f1 : g->fv;
    products(g, u, v, nt, f0, fv1, b.m);
    for (int i = 0; i < nb; i++)
        output_image(g, b.m, f0 / L, fv1 / L, 0, g->th, nt, i * g->tiles, ep, &b,
                     y + (size_t)i * g->f * oplane);
}

void fnn_wino_forward_rows(const fnn_wino *g, const float *u, const float *x,
                           const fnn_wino_epilogue *ep, int ty0, int ty1, float *y, float *work)
{
    buffers b = carve(g, work);
    size_t nt = (size_t)(ty1 - ty0) * g->tw;
    input_image(g, x, 0, g->cv / L, ty0, ty1, nt, 0, &b, b.v);
    products(g, u, b.v, nt, 0, g->fv, b.m);
    output_image(g, b.m, 0, g->fv / L, ty0, ty1, nt, 0, ep, &b, y);
}

void fnn_wino_forward(const fnn_wino *g, const float *u, const float *x,
                      const fnn_wino_epilogue *ep, int nb, float *y, float *work)
{
    buffers b = carve(g, work);
    input(g, x, nb, 0, g->c, &b, b.v);
    fnn_wino_output(g, u, b.v, ep, nb, 0, g->f, y, work);
}

/* A of four vectors y0 .. y3 into o[0] .. o[5] (A = (A^T)^T, 6x4). */
#define A4(y0, y1, y2, y3, o)                                                                  \
    do {                                                                                       \
        vec e_ = (y0) + (y2), f_ = (y1) + (y3), g_ = 4.0f * (y2);                              \
        vec h_ = 2.0f * (y1) + 8.0f * (y3);                                                    \
        (o)[0] = (y0);                                                                         \
        (o)[1] = e_ + f_;                                                                      \
        (o)[2] = e_ - f_;                                                                      \
        (o)[3] = (y0) + g_ + h_;                                                               \
        (o)[4] = (y0) + g_ - h_;                                                               \
        (o)[5] = (y3);                                                                         \
    } while (0)

/* dM = A dY A^T of one tile of a group of filters: its 4x4 output gradients in a blocked
 * plane from p (rows rs floats apart) -> dm (36 vectors xs apart). */
static inline void grad_output_tile(const float *restrict p, size_t rs, size_t xs,
                                    float *restrict dm)
{
    vec z[6][4]; /* A dY: row i, column c */
    for (int c = 0; c < 4; c++) {
        const float *col = p + (size_t)c * L;
        vec o[6];
        A4(load(col), load(col + rs), load(col + 2 * rs), load(col + 3 * rs), o);
        for (int i = 0; i < 6; i++)
            z[i][c] = o[i];
    }
    for (int i = 0; i < 6; i++) {
        vec o[6];
        A4(z[i][0], z[i][1], z[i][2], z[i][3], o);
        for (int j = 0; j < 6; j++)
            store(dm + (size_t)(6 * i + j) * xs, o[j]);
    }
}

/* Filter group fg of one image: dy (f, oh, ow) through the ReLU that gave y when relu, its
 * sums into db (f) when not NULL, and dM = A dY A^T of its tiles into row t0 of
 * dm (36, nt, fv). */
static void grad_output_image(const fnn_wino *g, const float *dy, const float *y, int relu,
                              float *db, int fg, size_t nt, size_t t0, const buffers *b,
                              float *dm)
{
    size_t oplane = (size_t)g->oh * g->ow, n0 = (size_t)fg * L;
    int n = g->f - fg * L < L ? g->f - fg * L : L, w4 = 4 * g->tw, h4 = 4 * g->th;
    float *pd = b->out; /* (4 th, 4 tw, L): the gradient, zero past (oh, ow) and n */
    vec sum = splat(0.0f);
    zero_around(pd, w4, 0, h4, 0, g->oh, 0, g->ow);
    to_blocked(dy + n0 * oplane, relu ? y + n0 * oplane : NULL, oplane, g->ow, n, g->oh, g->ow,
               pd, w4, db ? &sum : NULL);
    for (int l = 0; l < n && db; l++)
        db[n0 + l] += sum[l];
    size_t xs = m_step(g, nt), rs = (size_t)w4 * L;
    for (int ty = 0; ty < g->th; ty++)
        for (int tx = 0; tx < g->tw; tx++)
            grad_output_tile(pd + ((size_t)4 * ty * w4 + 4 * tx) * L, rs, xs,
                             dm + (t0 + (size_t)ty * g->tw + tx) * g->fv + fg * L);
}

/* B of six vectors x0 .. x5 into o[0] .. o[5] (B = (B^T)^T). */
#define B6(x0, x1, x2, x3, x4, x5, o)                                                          \
    do {                                                                                       \
        (o)[0] = 4.0f * (x0);                                                                  \
        (o)[1] = 4.0f * ((x2) - (x1)) + 2.0f * ((x4) - (x3)) + 4.0f * (x5);                    \
        (o)[2] = -5.0f * (x0) - 4.0f * ((x1) + (x2)) - (x3) - (x4);                            \
        (o)[3] = (x1) - (x2) + 2.0f * ((x3) - (x4)) - 5.0f * (x5);                             \
        (o)[4] = (x0) + (x1) + (x2) + (x3) + (x4);                                             \
        (o)[5] = (x5);                                                                         \
    } while (0)

/* B dV B^T of one tile of a group of channels: dv (36 vectors xs apart), added to its patch in
 * a blocked plane from p (rows rs floats apart). */
static inline void grad_input_tile(const float *restrict dv, size_t xs, float *restrict p,
                                   size_t rs)
{
    vec z[6][6]; /* B dV: row r, column j */
    for (int j = 0; j < 6; j++) {
        const float *c = dv + (size_t)j * xs;
        vec o[6];
        B6(load(c), load(c + 6 * xs), load(c + 12 * xs), load(c + 18 * xs), load(c + 24 * xs),
           load(c + 30 * xs), o);
        for (int r = 0; r < 6; r++)
            z[r][j] = o[r];
    }
    for (int r = 0; r < 6; r++) {
        vec o[6];
        B6(z[r][0], z[r][1], z[r][2], z[r][3], z[r][4], z[r][5], o);
        float *row = p + r * rs;
        for (int q = 0; q < 6; q++)
            store(row + (size_t)q * L, load(row + (size_t)q * L) + o[q]);
    }
}

/* Channel group cg of one image: B dV B^T of its tiles, from row t0 of dv (36, nt, cv), added
 * up over the overlapping patches and cropped to dx (c, h, w). The padded plane covers the
 * image: ph >= pt + h and pw >= pl + w for a 3x3 kernel, 'same' or 'valid'. */
static void grad_input_image(const fnn_wino *g, const float *dv, int cg, size_t nt, size_t t0,
                             const buffers *b, float *dx)
{
    size_t xs = v_step(g, nt), rs = (size_t)g->pw * L, plane = (size_t)g->h * g->w;
    float *pad = b->in; /* (ph, pw, L) */
    memset(pad, 0, (size_t)g->ph * rs * sizeof *pad);
    for (int ty = 0; ty < g->th; ty++)
        for (int tx = 0; tx < g->tw; tx++)
            grad_input_tile(dv + (t0 + (size_t)ty * g->tw + tx) * g->cv + cg * L, xs,
                            pad + ((size_t)4 * ty * g->pw + 4 * tx) * L, rs);
    int n = g->c - cg * L < L ? g->c - cg * L : L;
    from_blocked(pad + ((size_t)g->pt * g->pw + g->pl) * L, g->pw, n, g->h, g->w,
                 dx + (size_t)cg * L * plane, plane, g->w);
}

void fnn_wino_backward(const fnn_wino *g, const float *u, const float *x, const float *y,
                       int relu, const float *dy, int nb, int first, float *db, float *dx,
                       float *work)
{
    buffers b = carve(g, work);
    int cv = g->cv, fv = g->fv;
    size_t nt = (size_t)nb * g->tiles, us = u_step(g), vs = v_step(g, nt), ms = m_step(g, nt);
    size_t oplane = (size_t)g->f * g->oh * g->ow, plane = (size_t)g->c * g->h * g->w;
    input(g, x, nb, 0, g->c, &b, b.v);
    for (int i = 0; i < nb; i++)
        for (int fg = 0; fg < fv / L; fg++)
            grad_output_image(g, dy + i * oplane, y + i * oplane, relu, db, fg, nt,
                              i * g->tiles, &b, b.m);
    for (int xi = 0; xi < FNN_WINO_XI; xi++) /* dU += V^T . dM */
        fnn_sgemm(1, 0, cv, fv, (int)nt, 1.0f, b.v + xi * vs, cv, b.m + xi * ms, fv,
                  first ? 0.0f : 1.0f, b.du + xi * us, fv);
    if (!dx)
        return;
    for (int xi = 0; xi < FNN_WINO_XI; xi++) /* dV = dM . U^T */
        fnn_sgemm(0, 1, (int)nt, cv, fv, 1.0f, b.m + xi * ms, fv, u + xi * us, fv, 0.0f,
                  b.v + xi * vs, cv);
    for (int i = 0; i < nb; i++)
        for (int cg = 0; cg < cv / L; cg++)
            grad_input_image(g, b.v, cg, nt, i * g->tiles, &b, dx + i * plane);
}

/* G of three vectors g0 .. g2 into o[0] .. o[5] (G 6x3). */
#define G3(g0, g1, g2, o)                                                                      \
    do {                                                                                       \
        const float sixth_ = 1.0f / 6.0f, twelfth_ = 1.0f / 12.0f, tw4_ = 1.0f / 24.0f;        \
        (o)[0] = 0.25f * (g0);                                                                 \
        (o)[1] = -sixth_ * ((g0) + (g1) + (g2));                                               \
        (o)[2] = -sixth_ * ((g0) - (g1) + (g2));                                               \
        (o)[3] = tw4_ * (g0) + twelfth_ * (g1) + sixth_ * (g2);                                \
        (o)[4] = tw4_ * (g0) - twelfth_ * (g1) + sixth_ * (g2);                                \
        (o)[5] = (g2);                                                                         \
    } while (0)

/* Where the kernels of filters [fg L, fg L + L) from channel ci0 on start in (f, c, 3, 3),
 * those of them that are there; returns how many are. */
static int filter_rows(const fnn_wino *g, int fg, int ci0, size_t at[L])
{
    int n = g->f - fg * L < L ? g->f - fg * L : L;
    for (int l = 0; l < n; l++)
        at[l] = ((size_t)(fg * L + l) * g->c + ci0) * 9;
    return n;
}

void fnn_wino_kernels(const fnn_wino *g, const float *w, int f0, int f1, float *u)
{
    size_t us = u_step(g);
    int fg1 = f1 < g->f ? f1 / L : g->fv / L;
    for (int fg = f0 / L; fg < fg1; fg++)
        for (int ci0 = 0; ci0 < g->cv; ci0 += L) {
            int nc = g->c - ci0 < L ? g->c - ci0 : L; /* channels there are, then zeros */
            float t[9 * L * L]; /* (channel, 9 values, L filters) */
            size_t at[L];
            const float *r[L];
            int n = filter_rows(g, fg, ci0, at);
            for (int l = 0; l < L; l++)
                r[l] = l < n ? w + at[l] : NULL;
            gather_rows(r, NULL, 9 * nc, t, NULL);
            memset(t + 9 * nc * L, 0, (size_t)9 * (L - nc) * L * sizeof *t);
            for (int cl = 0; cl < L; cl++) {
                const float *k = t + 9 * cl * L; /* the group's kernels for channel ci0 + cl */
                vec a[6][3];                      /* G g: row i, column j */
                for (int j = 0; j < 3; j++) {
                    vec o[6];
                    G3(load(k + j * L), load(k + (3 + j) * L), load(k + (6 + j) * L), o);
                    for (int i = 0; i < 6; i++)
                        a[i][j] = o[i];
                }
                float *dst = u + (size_t)(ci0 + cl) * g->fv + fg * L;
                for (int i = 0; i < 6; i++) { /* (G g) G^T */
                    vec o[6];
                    G3(a[i][0], a[i][1], a[i][2], o);
                    for (int j = 0; j < 6; j++)
                        store(dst + (6 * i + j) * us, o[j]);
                }
            }
        }
}

/* G^T of six vectors u0 .. u5 into o[0] .. o[2]. */
#define GT6(u0, u1, u2, u3, u4, u5, o)                                                         \
    do {                                                                                       \
        const float sixth_ = 1.0f / 6.0f, twelfth_ = 1.0f / 12.0f, tw4_ = 1.0f / 24.0f;        \
        (o)[0] = 0.25f * (u0) - sixth_ * ((u1) + (u2)) + tw4_ * ((u3) + (u4));                 \
        (o)[1] = sixth_ * ((u2) - (u1)) + twelfth_ * ((u3) - (u4));                            \
        (o)[2] = sixth_ * ((u3) + (u4) - (u1) - (u2)) + (u5);                                  \
    } while (0)

void fnn_wino_kernel_grads(const fnn_wino *g, const float *work, float *dw)
{
    const float *du = carve(g, (float *)work).du; /* (36, cv, fv) */
    size_t us = u_step(g);
    for (int fg = 0; fg < g->fv / L; fg++)
        for (int ci0 = 0; ci0 < g->c; ci0 += L) {
            int nc = g->c - ci0 < L ? g->c - ci0 : L;
            float t[9 * L * L]; /* (channel, 9 values, L filters), as in fnn_wino_kernels */
            for (int cl = 0; cl < nc; cl++) {
                const float *src = du + (size_t)(ci0 + cl) * g->fv + fg * L;
                vec a[3][6]; /* G^T dU: row i, column j */
                for (int j = 0; j < 6; j++) {
                    vec o[3];
                    GT6(load(src + j * us), load(src + (6 + j) * us),
                        load(src + (12 + j) * us), load(src + (18 + j) * us),
                        load(src + (24 + j) * us), load(src + (30 + j) * us), o);
                    for (int i = 0; i < 3; i++)
                        a[i][j] = o[i];
                }
                for (int i = 0; i < 3; i++) { /* (G^T dU) G */
                    vec o[3];
                    GT6(a[i][0], a[i][1], a[i][2], a[i][3], a[i][4], a[i][5], o);
                    for (int j = 0; j < 3; j++)
                        store(t + (9 * cl + 3 * i + j) * L, o[j]);
                }
            }
            size_t at[L];
            float *r[L];
            int n = filter_rows(g, fg, ci0, at);
            for (int l = 0; l < L; l++)
                r[l] = l < n ? dw + at[l] : NULL;
            scatter_rows(t, 9 * nc, r);
        }
}
