/* Winograd's minimal filtering F(4x4, 3x3) for 3x3, stride-1 convolutions (Lavin and Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016): every 4x4 block of outputs comes
 * from a 6x6 patch of the input, and the 144 multiplications per block and channel pair of a
 * direct convolution become 36, done as 36 matrix products over the channels. The transforms
 * of inputs, kernels and outputs are here; conv2d.c shares the images among threads.
 *
 * In the transformed ("tile") domain, with xi = 0..35 the position in a 6x6 tile:
 *   V[xi] (tiles, c)  input patches      B^T d B
 *   U[xi] (c, f)      kernels            G g G^T
 *   M[xi] (tiles, f)  = V[xi] . U[xi];   outputs Y = A^T M A (4x4 per tile)
 * with the interpolation points 0, 1, -1, 2, -2 and infinity (B^T 6x6, G 6x3, A^T 4x6), and
 * backward, by the chain rule through the same linear maps:
 *   dM = A dY A^T,   dU[xi] = V[xi]^T . dM[xi] -> dg = G^T dU G,
 *   dV[xi] = dM[xi] . U[xi]^T -> dd = B dV B^T, added over overlapping patches.
 *
 * Channels and filters are the inner dimension everywhere: each transform works on vectors of
 * FNN_WINO_LANES channels (or filters) of one tile at once, whatever the image's size, and the
 * images go in and out of that blocked layout, (c / lanes, h, w, lanes), through transposes
 * of 8x8 blocks. c and f are rounded up to whole vectors with zeros. */
#ifndef FNN_NN_WINOGRAD_H
#define FNN_NN_WINOGRAD_H

#include <stddef.h>

/* Positions in a 6x6 tile; channels or filters per vector. */
#define FNN_WINO_XI 36
#define FNN_WINO_LANES 8

typedef struct {
    int c, h, w;   /* input */
    int f, oh, ow; /* output */
    int pt, pl;    /* padding on top and left */
    int cv, fv;    /* c and f rounded up to whole vectors */
    int th, tw;    /* tiles down and across: ceil(oh / 4), ceil(ow / 4) */
    int ph, pw;    /* padded plane the tiles read: 4 th + 2 by 4 tw + 2 */
    int chunk;     /* images transformed and multiplied together */
    size_t tiles;  /* th * tw per image */
} fnn_wino;

/* What filter fi's outputs get after the product: the bias b[fi] (b NULL: none), then
 * y scale[fi] + shift[fi] (scale NULL: none; a batchnorm folded in), then the ReLU. */
typedef struct {
    const float *b;     /* (f) or NULL */
    const float *scale; /* (f) or NULL */
    const float *shift; /* (f), read only with scale */
    int relu;
} fnn_wino_epilogue;

void fnn_wino_plan(fnn_wino *g, int c, int h, int w, int f, int oh, int ow, int pt, int pl);

/* Floats of one thread's buffers (a cache-line multiple): its own copy of U, so that no
 * thread waits for another's transform, and the work space of a chunk of images. They also
 * carry the kernels' gradient from fnn_wino_backward to fnn_wino_kernel_grads. */
size_t fnn_wino_thread_floats(const fnn_wino *g);

/* Floats of one U (36, cv, fv), a cache-line multiple: the size of a cache of it elsewhere. */
size_t fnn_wino_kernel_floats(const fnn_wino *g);

/* The thread's own U (36, cv, fv) and V (36, chunk's tiles, cv) in its buffers `work`. */
float *fnn_wino_thread_kernels(const fnn_wino *g, float *work);
float *fnn_wino_thread_input(const fnn_wino *g, float *work);

/* Filters [f0, f1) of U (36, cv, fv) from the kernels w (f, c, 3, 3), f0 a multiple of
 * FNN_WINO_LANES and f1 one or f (the filters past f get zeros); before any pass that uses U. */
void fnn_wino_kernels(const fnn_wino *g, const float *w, int f0, int f1, float *u);

/* y (nb, f, oh, ow) of the images x (nb, c, h, w), nb <= g->chunk, with the kernels' U and
 * the epilogue ep. */
void fnn_wino_forward(const fnn_wino *g, const float *u, const float *x,
                      const fnn_wino_epilogue *ep, int nb, float *y, float *work);

/* fnn_wino_forward in two halves, for a team that shares one chunk of images: channels
 * [c0, c1) of their V into v, which may be another thread's ... */
void fnn_wino_input(const fnn_wino *g, const float *x, int nb, int c0, int c1, float *v,
                    float *work);
/* ... then, once the whole of v is written, filters [f0, f1) of y from U and v. c0, c1, f0
 * and f1 as in fnn_wino_kernels. */
void fnn_wino_output(const fnn_wino *g, const float *u, const float *v,
                     const fnn_wino_epilogue *ep, int nb, int f0, int f1, float *y, float *work);

/* Or a team that shares one image by rows of tiles: tile rows [ty0, ty1) of x (c, h, w),
 * which write y's rows [4 ty0, 4 ty1) (those of the oh there are). */
void fnn_wino_forward_rows(const fnn_wino *g, const float *u, const float *x,
                           const fnn_wino_epilogue *ep, int ty0, int ty1, float *y, float *work);

/* The same nb images x backward, with their outputs y (nb, f, oh, ow): dy (same shape) is the
 * gradient of y, taken through the ReLU when relu. V is made again from x: that measured as
 * fast as keeping every image's V from forward, without the memory. Adds the kernels'
 * gradient, in the tile domain, to the thread's sum (restarted when `first`), the bias's to
 * db (f) when it is not NULL, and writes dx (nb, c, h, w), through U, when it is not NULL. */
void fnn_wino_backward(const fnn_wino *g, const float *u, const float *x, const float *y,
                       int relu, const float *dy, int nb, int first, float *db, float *dx,
                       float *work);

/* The kernels' gradient dw (f, c, 3, 3) from the thread's sum: G^T dU G. */
void fnn_wino_kernel_grads(const fnn_wino *g, const float *work, float *dw);

#endif
