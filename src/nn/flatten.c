/* Flatten: (c, h, w) to (c*h*w). Row-major buffers are already flat, so it is an alias. */
#include "nn/layer.h"

#include <stdio.h>

static fnn_status flatten_setup(fnn_layer *l, fnn_error *err)
{
    l->out = (fnn_shape){(int)fnn_shape_size(l->in), 1, 1};
    return FNN_OK;
}

static void flatten_format(const fnn_layer *l, char *buf, size_t size)
{
    snprintf(buf, size, "flatten");
}

const fnn_layer_ops fnn_flatten_ops = {
    .kind = "flatten",
    .type = "Flatten",
    .setup = flatten_setup,
    .format = flatten_format,
    .alias = 1,
};
