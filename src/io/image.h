/* Internal to the library: decoding image files (stb_image) and area-averaging resizes, shared
 * by fnn_image_load (model input) and the image folder data source. */
#ifndef FNN_IO_IMAGE_H
#define FNN_IO_IMAGE_H

#include "fnn.h"

#include <stdint.h>

/* Decodes the PNG, JPEG, BMP, PGM or PPM file at path into *pix (ih, iw, c + 1): c = 1 grey
 * (stb_image's luma) or 3 red, green, blue, each followed by alpha; free it with free().
 * *stored (may be NULL): the file's own colour channels, 1 (grey) or 3. Thread-safe. */
fnn_status fnn_image_decode(const char *path, int c, uint8_t **pix, int *ih, int *iw,
                            int *stored, fnn_error *err);

/* Resizes planes (c, ih, iw) to (c, h, w) by area averaging (a box filter). */
fnn_status fnn_image_resize(const float *in, int c, int ih, int iw, float *out, int h, int w,
                            const char *path, fnn_error *err);

#endif
