/* Random shifts, flips, rotations and erasing of a training batch (after fnn_batch_fill), in
 * that order: rotate, shift, flip, erase; one draw per image, the same transform on each of its
 * channel planes. Labels and shapes never change. */
#include "data/augment.h"
#include "data/transform.h"
#include "util/rng.h"
#include "util/team.h"

#include <math.h>
#include <string.h>

int fnn_augment_active(const fnn_augment_config *c)
{
    return c->shift > 0 || c->flip || c->rotate > 0.0f || c->erase > 0.0f;
}

/* The next draw of one image's stream, uniform in [0, 1). */
static float draw(uint64_t *state)
{
    *state = fnn_hash64(*state);
    return (float)(*state >> 40) * 0x1p-24f;
}

/* Uniform integer in [-k, k]. */
static int draw_offset(uint64_t *state, int k)
{
    int v = (int)(draw(state) * (float)(2 * k + 1)) - k;
    return v > k ? k : v;
}

/* One image's transform, drawn once and applied to each of its channel planes alike. */
typedef struct {
    float degrees;      /* 0: no rotation */
    int dx, dy;         /* shift */
    int flip;
    int ey, ex, eh, ew; /* erased rectangle; eh = 0: none */
} transform;

/* The draws come in the order rotate, shift, flip, erase, each only when that transform is on. */
static transform draw_transform(const fnn_augment_config *c, uint64_t *rs, int h, int w)
{
    transform t = {0};
    size_t size = (size_t)h * w;
    if (c->rotate > 0.0f)
        t.degrees = (2.0f * draw(rs) - 1.0f) * c->rotate;
    if (c->shift > 0) {
        t.dx = draw_offset(rs, c->shift);
        t.dy = draw_offset(rs, c->shift);
    }
    t.flip = c->flip && draw(rs) < 0.5f;
    if (c->erase > 0.0f && draw(rs) < c->erase) {
        /* Random erasing (Zhong et al. 2017): area 2%..25% of the image, aspect ratio
         * log-uniform in [0.3, 3.3], placed wholly inside. */
        float area = (0.02f + 0.23f * draw(rs)) * (float)size;
        float aspect = expf(logf(0.3f) + (logf(3.3f) - logf(0.3f)) * draw(rs));
        int eh = (int)lroundf(sqrtf(area * aspect)), ew = (int)lroundf(sqrtf(area / aspect));
        eh = eh < 1 ? 1 : eh > h ? h : eh;
        ew = ew < 1 ? 1 : ew > w ? w : ew;
        int y0 = (int)(draw(rs) * (float)(h - eh + 1)), x0 = (int)(draw(rs) * (float)(w - ew + 1));
        t.ey = y0 > h - eh ? h - eh : y0;
        t.ex = x0 > w - ew ? w - ew : x0;
        t.eh = eh;
        t.ew = ew;
    }
    return t;
}

/* Applies t to one plane img (h, w) in place. c->rotate > 0 rotates even by a draw of 0
 * degrees, as the bilinear resampling has always done. */
static void apply_transform(const fnn_augment_config *c, const transform *t, float *img, int h,
                            int w, float *tmp)
{
    size_t size = (size_t)h * w;
    if (c->rotate > 0.0f) {
        fnn_img_rotate(img, tmp, h, w, t->degrees);
        memcpy(img, tmp, size * sizeof *img);
    }
    if (t->dx || t->dy) {
        fnn_img_shift(img, tmp, h, w, t->dx, t->dy);
        memcpy(img, tmp, size * sizeof *img);
    }
    if (t->flip) {
        fnn_img_hflip(img, tmp, h, w);
        memcpy(img, tmp, size * sizeof *img);
    }
    if (t->eh)
        fnn_img_erase(img, h, w, t->ey, t->ex, t->eh, t->ew, 0.0f);
}

void fnn_augment_batch(const fnn_augment_config *c, uint64_t seed, uint64_t step, size_t row0,
                       float *x, int n, int channels, int h, int w, float *scratch)
{
    size_t lo, hi, plane = (size_t)h * w;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    uint64_t key = fnn_hash64(seed ^ fnn_hash64(step));
    for (size_t r = lo; r < hi; r++) {
        uint64_t rs = fnn_hash64(key + row0 + r);
        transform t = draw_transform(c, &rs, h, w);
        for (int ch = 0; ch < channels; ch++)
            apply_transform(c, &t, x + (r * channels + ch) * plane, h, w, scratch);
    }
}
