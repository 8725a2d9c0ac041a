/* Geometric image transforms on one float image (h, w). Destination-driven: every output pixel
 * is computed from the source, so there are no holes and no overlaps to handle. */
#include "data/transform.h"

#include <math.h>
#include <string.h>

void fnn_img_shift(const float *src, float *dst, int h, int w, int dx, int dy)
{
    for (int y = 0; y < h; y++) {
        float *out = dst + (size_t)y * w;
        int sy = y - dy;
        if (sy < 0 || sy >= h) {
            memset(out, 0, (size_t)w * sizeof *out);
            continue;
        }
        /* Columns x in [x0, x1) read source columns x - dx inside the image. */
        int x0 = dx > 0 ? dx : 0, x1 = dx < 0 ? w + dx : w;
        if (x0 > w)
            x0 = w;
        if (x1 < x0)
            x1 = x0;
        memset(out, 0, (size_t)x0 * sizeof *out);
        if (x1 > x0)
            memcpy(out + x0, src + (size_t)sy * w + (x0 - dx), (size_t)(x1 - x0) * sizeof *out);
        memset(out + x1, 0, (size_t)(w - x1) * sizeof *out);
    }
}

/* src(y, x), or 0 outside the image. */
static float pixel(const float *src, int h, int w, int y, int x)
{
    return y >= 0 && y < h && x >= 0 && x < w ? src[(size_t)y * w + x] : 0.0f;
}

void fnn_img_rotate(const float *src, float *dst, int h, int w, float degrees)
{
    double a = (double)degrees * M_PI / 180.0, c = cos(a), s = sin(a);
    double cy = 0.5 * (h - 1), cx = 0.5 * (w - 1);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            /* The inverse rotation maps the output pixel back into the source. With y pointing
             * down, a counter-clockwise turn by a takes (u, v) = (x - cx, cy - y) to
             * (u c - v s, u s + v c); its inverse is the turn by -a. */
            double u = x - cx, v = cy - y;
            double su = u * c + v * s, sv = -u * s + v * c;
            double sx = su + cx, sy = cy - sv;
            double fx = floor(sx), fy = floor(sy);
            int ix = (int)fx, iy = (int)fy;
            float tx = (float)(sx - fx), ty = (float)(sy - fy);
            /* Snap coordinates that are integers up to rounding (90-degree turns), so exact
             * turns copy pixels instead of blending in a neighbour at weight 1e-16. */
            if (tx < 1e-6f)
                tx = 0.0f;
            else if (tx > 1.0f - 1e-6f) {
                tx = 0.0f;
                ix++;
            }
            if (ty < 1e-6f)
                ty = 0.0f;
            else if (ty > 1.0f - 1e-6f) {
                ty = 0.0f;
                iy++;
            }
            float top = (1.0f - tx) * pixel(src, h, w, iy, ix) + tx * pixel(src, h, w, iy, ix + 1);
            float bot = (1.0f - tx) * pixel(src, h, w, iy + 1, ix) +
                        tx * pixel(src, h, w, iy + 1, ix + 1);
            dst[(size_t)y * w + x] = (1.0f - ty) * top + ty * bot;
        }
    }
}

void fnn_img_hflip(const float *src, float *dst, int h, int w)
{
    for (int y = 0; y < h; y++) {
        const float *in = src + (size_t)y * w;
        float *out = dst + (size_t)y * w;
        for (int x = 0; x < w; x++)
            out[x] = in[w - 1 - x];
    }
}

void fnn_img_erase(float *img, int h, int w, int y0, int x0, int eh, int ew, float value)
{
    long long y1 = (long long)y0 + eh, x1 = (long long)x0 + ew;
    if (y0 < 0)
        y0 = 0;
    if (x0 < 0)
        x0 = 0;
    if (y1 > h)
        y1 = h;
    if (x1 > w)
        x1 = w;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            img[(size_t)y * w + x] = value;
}
