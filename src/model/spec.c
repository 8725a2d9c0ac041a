/* The architecture spec: whitespace-separated tokens such as "dense:128:relu dropout:0.5".
 * Errors name the token, its position and what was expected. */
#include "model/model.h"
#include "util/error.h"

#include <ctype.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_MAX_LAYERS 256
#define SPEC_MAX_UNITS (1 << 20)
#define SPEC_MAX_FIELDS 8
#define SPEC_MAX_KERNEL 64

/* The layers of the `fast` and `best` recipes. */
#define RECIPE_LAYERS                                                                          \
    "conv2d:32:3:same:nobias:he batchnorm relu conv2d:32:3:same:nobias:he batchnorm relu "    \
    "maxpool:2 "                                                                               \
    "conv2d:64:3:same:nobias:he batchnorm relu conv2d:64:3:same:nobias:he batchnorm relu "    \
    "maxpool:2 "                                                                               \
    "flatten dense:128 batchnorm relu dropout:0.3 dense:10:softmax"

static const struct {
    const char *name;
    const char *spec;
} presets[] = {
    {"mlp", FNN_DEFAULT_ARCH},
    /* Two convolution blocks with batch norm, then a dense head with dropout. */
    {"cnn", "conv2d:32:3:same:nobias:he batchnorm relu conv2d:32:3:same:nobias:he batchnorm relu "
            "maxpool:2 dropout:0.25 "
            "conv2d:64:3:same:nobias:he batchnorm relu conv2d:64:3:same:nobias:he batchnorm relu "
            "maxpool:2 dropout:0.25 "
            "flatten dense:128 batchnorm relu dropout:0.5 dense:10:softmax"},
    /* Two stages of a stem convolution and one identity residual block each, then global
     * average pooling: ResNet's shape at Fashion-MNIST's size. */
    {"resnet", "conv2d:32:3:same:nobias:he batchnorm relu "
               "residual conv2d:32:3:same:nobias:he batchnorm relu "
               "conv2d:32:3:same:nobias:he batchnorm end relu maxpool:2 "
               "conv2d:64:3:same:nobias:he batchnorm relu "
               "residual conv2d:64:3:same:nobias:he batchnorm relu "
               "conv2d:64:3:same:nobias:he batchnorm end relu maxpool:2 "
               "globalavgpool dense:10:softmax"},
    /* The cnn's layers without its two spatial dropouts and with a lighter dense dropout:
     * the architecture of the `fast` recipe (fnn train --arch fast also sets its training
     * options; docs/experiments.md has the ablation that chose it). */
    {"fast", RECIPE_LAYERS},
    /* The same layers, for the `best` recipe: fast's training, longer, with random erasing. */
    {"best", RECIPE_LAYERS},
};

/* A token's fields split at ':'; the pointers index into a copy of the token. */
typedef struct {
    char text[128];
    char *field[SPEC_MAX_FIELDS];
    int nfields;
    int index;   /* 1-based token number */
    int column;  /* 1-based column in the spec */
} token;

static fnn_status bad(fnn_error *err, const token *t, const char *expected)
{
    return fnn_fail(err, FNN_ERR_FORMAT,
                    "architecture spec: token %d \"%s\" (column %d): expected %s", t->index,
                    t->text, t->column, expected);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int parse_float(const char *s, double lo, double hi_excl, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v < hi_excl))
        return 0;
    *out = v;
    return 1;
}

/* conv2d:FILTERS:KERNEL then, in any order and each at most once: sN (stride N), same or
 * valid (padding, valid by default as in Keras), nobias, he (He-uniform kernels instead of
 * Glorot), and an activation, relu or linear. */
static fnn_status parse_conv(const token *t, fnn_layer *l, fnn_error *err)
{
    const char *usage = "conv2d:FILTERS:KERNEL[:sSTRIDE][:same|valid][:nobias][:he][:relu|linear]";
    long filters, kernel, stride;
    if (t->nfields < 3 || !parse_int(t->field[1], 1, SPEC_MAX_UNITS, &filters) ||
        !parse_int(t->field[2], 1, SPEC_MAX_KERNEL, &kernel))
        return bad(err, t, usage);
    l->ops = &fnn_conv2d_ops;
    l->cfg.conv.filters = (int)filters;
    l->cfg.conv.kernel = (int)kernel;
    l->cfg.conv.stride = 1;
    l->cfg.conv.same = 0;
    l->cfg.conv.bias = 1;
    l->cfg.conv.he = 0;
    l->cfg.conv.act = FNN_ACT_LINEAR;
    unsigned seen = 0; /* one bit per option kind */
    for (int i = 3; i < t->nfields; i++) {
        const char *f = t->field[i];
        unsigned bit;
        if (f[0] == 's' && f[1] >= '0' && f[1] <= '9') {
            if (!parse_int(f + 1, 1, SPEC_MAX_KERNEL, &stride))
                return bad(err, t, usage);
            l->cfg.conv.stride = (int)stride;
            bit = 1;
        } else if (!strcmp(f, "same") || !strcmp(f, "valid")) {
            l->cfg.conv.same = !strcmp(f, "same");
            bit = 2;
        } else if (!strcmp(f, "nobias")) {
            l->cfg.conv.bias = 0;
            bit = 4;
        } else if (!strcmp(f, "he")) {
            l->cfg.conv.he = 1;
            bit = 8;
        } else if (!strcmp(f, "relu") || !strcmp(f, "linear")) {
            l->cfg.conv.act = strcmp(f, "relu") ? FNN_ACT_LINEAR : FNN_ACT_RELU;
            bit = 16;
        } else {
            return bad(err, t, usage);
        }
        if (seen & bit)
            return bad(err, t, "each conv2d option at most once");
        seen |= bit;
    }
    return FNN_OK;
}

/* maxpool:SIZE[:STRIDE] and avgpool:SIZE[:STRIDE], the stride defaulting to the size. */
static fnn_status parse_pool(const token *t, fnn_layer *l, const fnn_layer_ops *ops,
                             fnn_error *err)
{
    long size, stride;
    if (t->nfields < 2 || t->nfields > 3 || !parse_int(t->field[1], 1, SPEC_MAX_KERNEL, &size))
        return bad(err, t, "maxpool:SIZE[:STRIDE] or avgpool:SIZE[:STRIDE]");
    stride = size;
    if (t->nfields == 3 && !parse_int(t->field[2], 1, SPEC_MAX_KERNEL, &stride))
        return bad(err, t, "maxpool:SIZE[:STRIDE] or avgpool:SIZE[:STRIDE]");
    l->ops = ops;
    l->cfg.pool.size = (int)size;
    l->cfg.pool.stride = (int)stride;
    return FNN_OK;
}

static fnn_status parse_token(const token *t, fnn_layer *l, fnn_error *err)
{
    const char *kind = t->field[0];
    if (!strcmp(kind, "flatten")) {
        if (t->nfields != 1)
            return bad(err, t, "\"flatten\" with no arguments");
        l->ops = &fnn_flatten_ops;
    } else if (!strcmp(kind, "dense")) {
        const char *usage = "dense:UNITS or dense:UNITS:ACTIVATION with UNITS a positive "
                            "integer and ACTIVATION one of linear, relu, softmax";
        long units;
        if (t->nfields < 2 || t->nfields > 3 || !parse_int(t->field[1], 1, SPEC_MAX_UNITS, &units))
            return bad(err, t, usage);
        l->ops = &fnn_dense_ops;
        l->cfg.dense.units = (int)units;
        l->cfg.dense.act = FNN_ACT_LINEAR;
        if (t->nfields == 3) {
            if (!strcmp(t->field[2], "relu"))
                l->cfg.dense.act = FNN_ACT_RELU;
            else if (!strcmp(t->field[2], "softmax"))
                l->cfg.dense.act = FNN_ACT_SOFTMAX;
            else if (strcmp(t->field[2], "linear"))
                return bad(err, t, usage);
        }
    } else if (!strcmp(kind, "dropout")) {
        double rate;
        if (t->nfields != 2 || !parse_float(t->field[1], 0.0, 1.0, &rate))
            return bad(err, t, "dropout:RATE with 0 <= RATE < 1");
        l->ops = &fnn_dropout_ops;
        l->cfg.dropout.rate = (float)rate;
    } else if (!strcmp(kind, "conv2d")) {
        return parse_conv(t, l, err);
    } else if (!strcmp(kind, "maxpool")) {
        return parse_pool(t, l, &fnn_maxpool_ops, err);
    } else if (!strcmp(kind, "avgpool")) {
        return parse_pool(t, l, &fnn_avgpool_ops, err);
    } else if (!strcmp(kind, "relu") || !strcmp(kind, "tanh") || !strcmp(kind, "sigmoid")) {
        if (t->nfields != 1)
            return bad(err, t, "relu, tanh and sigmoid take no arguments");
        l->ops = &fnn_activation_ops;
        l->cfg.act.kind = !strcmp(kind, "relu")   ? FNN_ACT_RELU
                          : !strcmp(kind, "tanh") ? FNN_ACT_TANH
                                                  : FNN_ACT_SIGMOID;
        l->cfg.act.alpha = 0.0f;
    } else if (!strcmp(kind, "leakyrelu") || !strcmp(kind, "elu")) {
        /* Keras's defaults: LeakyReLU's slope 0.3, ELU's scale 1. */
        int leaky = !strcmp(kind, "leakyrelu");
        double alpha = leaky ? 0.3 : 1.0;
        if (t->nfields > 2 || (t->nfields == 2 && !parse_float(t->field[1], 0.0, 1e6, &alpha)))
            return bad(err, t, "leakyrelu[:ALPHA] or elu[:ALPHA] with ALPHA >= 0");
        l->ops = &fnn_activation_ops;
        l->cfg.act.kind = leaky ? FNN_ACT_LEAKY_RELU : FNN_ACT_ELU;
        l->cfg.act.alpha = (float)alpha;
    } else if (!strcmp(kind, "batchnorm")) {
        /* Keras's defaults: momentum 0.99, epsilon 1e-3. */
        double momentum = 0.99, eps = 1e-3;
        if (t->nfields > 3 ||
            (t->nfields >= 2 && !parse_float(t->field[1], 0.0, 1.0, &momentum)) ||
            (t->nfields == 3 && !parse_float(t->field[2], 1e-12, 1.0, &eps)))
            return bad(err, t, "batchnorm[:MOMENTUM[:EPSILON]] with 0 <= MOMENTUM < 1 and "
                               "0 < EPSILON < 1");
        l->ops = &fnn_batchnorm_ops;
        l->cfg.bn.momentum = (float)momentum;
        l->cfg.bn.eps = (float)eps;
    } else if (!strcmp(kind, "residual") || !strcmp(kind, "end")) {
        if (t->nfields != 1)
            return bad(err, t, "\"residual\" or \"end\" with no arguments");
        l->ops = !strcmp(kind, "end") ? &fnn_residual_end_ops : &fnn_residual_begin_ops;
    } else if (!strcmp(kind, "globalavgpool")) {
        if (t->nfields != 1)
            return bad(err, t, "\"globalavgpool\" with no arguments");
        l->ops = &fnn_globalavgpool_ops;
    } else {
        return bad(err, t, "a layer: flatten, dense:UNITS[:ACTIVATION], dropout:RATE, "
                           "conv2d:FILTERS:KERNEL[:OPTIONS], maxpool:SIZE[:STRIDE], "
                           "avgpool:SIZE[:STRIDE], globalavgpool, batchnorm[:MOMENTUM[:EPS]], "
                           "relu, leakyrelu[:ALPHA], elu[:ALPHA], tanh, sigmoid, or residual ... end "
                           "around a block (or a preset name: mlp, cnn, resnet, fast, best)");
    }
    return FNN_OK;
}

fnn_status fnn_spec_parse(const char *spec, fnn_layer **layers, int *nlayers, fnn_error *err)
{
    *layers = NULL;
    *nlayers = 0;
    if (!spec)
        return fnn_fail(err, FNN_ERR_ARG, "architecture spec: missing");
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(spec, presets[i].name))
            spec = presets[i].spec;

    fnn_layer *out = calloc(SPEC_MAX_LAYERS, sizeof *out);
    if (!out)
        return fnn_fail(err, FNN_ERR_NOMEM, "architecture spec: out of memory");
    int n = 0;
    const char *p = spec;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t len = 0;
        while (p[len] && !isspace((unsigned char)p[len]))
            len++;
        token t = {.index = n + 1, .column = (int)(p - spec) + 1};
        if (len >= sizeof t.text) {
            snprintf(t.text, sizeof t.text, "%.40s...", p);
            free(out);
            return bad(err, &t, "a token of at most 127 characters");
        }
        memcpy(t.text, p, len);
        t.text[len] = '\0';
        p += len;
        if (n == SPEC_MAX_LAYERS) {
            free(out);
            return bad(err, &t, "at most 256 layers");
        }
        char fields[128];
        memcpy(fields, t.text, len + 1);
        for (char *f = fields, *next; f; f = next) {
            next = strchr(f, ':');
            if (next)
                *next++ = '\0';
            if (t.nfields == SPEC_MAX_FIELDS) {
                free(out);
                return bad(err, &t, "at most eight ':'-separated fields");
            }
            t.field[t.nfields++] = f;
        }
        fnn_status s = parse_token(&t, &out[n], err);
        if (s != FNN_OK) {
            free(out);
            return s;
        }
        out[n].index = n;
        n++;
    }
    if (n == 0) {
        free(out);
        return fnn_fail(err, FNN_ERR_FORMAT, "architecture spec: no layers in \"%s\"", spec);
    }
    /* Pair each "end" with the innermost open "residual". */
    int open[SPEC_MAX_LAYERS], depth = 0;
    for (int i = 0; i < n; i++) {
        if (out[i].ops == &fnn_residual_begin_ops) {
            open[depth++] = i;
        } else if (out[i].ops == &fnn_residual_end_ops) {
            if (depth == 0) {
                free(out);
                return fnn_fail(err, FNN_ERR_FORMAT,
                                "architecture spec: token %d \"end\" closes no \"residual\"",
                                i + 1);
            }
            int b = open[--depth];
            if (b == i - 1) {
                free(out);
                return fnn_fail(err, FNN_ERR_FORMAT,
                                "architecture spec: the residual block of tokens %d-%d is empty",
                                b + 1, i + 1);
            }
            out[i].partner = &out[b];
            out[b].partner = &out[i];
        }
    }
    if (depth) {
        free(out);
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "architecture spec: token %d \"residual\" is never closed by \"end\"",
                        open[depth - 1] + 1);
    }
    *layers = out;
    *nlayers = n;
    return FNN_OK;
}
