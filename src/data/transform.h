/* Geometric image transforms, pure functions on one float image of shape (h, w), shared by
 * training-time augmentation and robustness checks. */
#ifndef FNN_DATA_TRANSFORM_H
#define FNN_DATA_TRANSFORM_H

/* One float image (h, w) at a time; dst and src never overlap. */

/* dst(y, x) = src(y - dy, x - dx): the content moves dx pixels right and dy down; pixels that
 * come from outside the image are 0. */
void fnn_img_shift(const float *src, float *dst, int h, int w, int dx, int dy);

/* Rotates the content by `degrees` counter-clockwise (as seen with row 0 at the top) about the
 * image centre ((h - 1) / 2, (w - 1) / 2), sampling src bilinearly; outside pixels are 0. */
void fnn_img_rotate(const float *src, float *dst, int h, int w, float degrees);

/* Mirrors left to right: dst(y, x) = src(y, w - 1 - x). */
void fnn_img_hflip(const float *src, float *dst, int h, int w);

/* In place: sets the rectangle of eh rows and ew columns from (y0, x0), clipped to the image,
 * to value. */
void fnn_img_erase(float *img, int h, int w, int y0, int x0, int eh, int ew, float value);

#endif
