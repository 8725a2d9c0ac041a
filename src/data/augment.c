/* Random shifts, flips, rotations and erasing of a training batch (after fnn_batch_fill), in
 * that order: rotate, shift, flip, erase. Labels and shapes never change. */
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

static void augment_image(const fnn_augment_config *c, uint64_t *rs, float *img, int h, int w,
                          float *tmp)
{
    size_t size = (size_t)h * w;
    if (c->rotate > 0.0f) {
        float deg = (2.0f * draw(rs) - 1.0f) * c->rotate;
        fnn_img_rotate(img, tmp, h, w, deg);
        memcpy(img, tmp, size * sizeof *img);
    }
    if (c->shift > 0) {
        int dx = draw_offset(rs, c->shift), dy = draw_offset(rs, c->shift);
        if (dx || dy) {
            fnn_img_shift(img, tmp, h, w, dx, dy);
            memcpy(img, tmp, size * sizeof *img);
        }
    }
    if (c->flip && draw(rs) < 0.5f) {
        fnn_img_hflip(img, tmp, h, w);
        memcpy(img, tmp, size * sizeof *img);
    }
    if (c->erase > 0.0f && draw(rs) < c->erase) {
        /* Random erasing (Zhong et al. 2017): area 2%..25% of the image, aspect ratio
         * log-uniform in [0.3, 3.3], placed wholly inside. */
        float area = (0.02f + 0.23f * draw(rs)) * (float)size;
        float aspect = expf(logf(0.3f) + (logf(3.3f) - logf(0.3f)) * draw(rs));
        int eh = (int)lroundf(sqrtf(area * aspect)), ew = (int)lroundf(sqrtf(area / aspect));
        eh = eh < 1 ? 1 : eh > h ? h : eh;
        ew = ew < 1 ? 1 : ew > w ? w : ew;
        int y0 = (int)(draw(rs) * (float)(h - eh + 1)), x0 = (int)(draw(rs) * (float)(w - ew + 1));
        fnn_img_erase(img, h, w, y0 > h - eh ? h - eh : y0, x0 > w - ew ? w - ew : x0, eh, ew,
                      0.0f);
    }
}

void fnn_augment_batch(const fnn_augment_config *c, uint64_t seed, uint64_t step, float *x,
                       int n, int h, int w, float *scratch)
{
    size_t lo, hi;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    uint64_t key = fnn_hash64(seed ^ fnn_hash64(step));
    for (size_t r = lo; r < hi; r++) {
        uint64_t rs = fnn_hash64(key + r);
        augment_image(c, &rs, x + r * (size_t)h * w, h, w, scratch);
    }
}
