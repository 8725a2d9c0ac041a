/* ONNX export: a model's layers as an ONNX graph, encoded by the protobuf-c code that CMake
 * generates from Debian's onnx.proto (libonnx-dev), so that onnxruntime, OpenCV's DNN module and
 * other runtimes can run a model fnn trained. The graph is built whole in memory first: a layer
 * that cannot be expressed fails the export before any file is touched. */
#include "model/model.h"
#include "util/atomic.h"
#include "util/error.h"

#include "onnx.pb-c.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Opset 13 (ONNX 1.8, 2020): every operator the export uses has had its present form since then,
 * and it is what onnxruntime (1.6 and later), OpenCV's importer (4.5 and later) and Debian's
 * python3-onnx all read; later opsets change nothing the export needs. IR version 7 is the one
 * that opset came with. */
#define ONNX_IR_VERSION 7

#define NAME_CAP 64
#define MAX_DEPTH 256 /* open residual blocks; the spec's layer limit bounds it */

/* The message tree under construction. Every allocation is recorded in `allocs` and freed at the
 * end; after the first failed allocation `oom` is set and every helper returns NULL. */
typedef struct {
    void **allocs;
    size_t nallocs, cap_allocs;
    Onnx__NodeProto **nodes;
    size_t nnodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t ninits, cap_inits;
    int oom;
} graph;

/* The tensor a layer reads: its name, rank (4: (batch, c, h, w); 2: (batch, features)) and
 * fnn's per-sample shape of it. */
typedef struct {
    const char *name;
    int rank;
    fnn_shape shape;
} value;

static int push(graph *g, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (g->oom || !item)
        return g->oom = 1, 0;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 32;
        void **a = realloc(*arr, c * sizeof *a);
        if (!a)
            return g->oom = 1, 0;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = item;
    return 1;
}

static void *g_alloc(graph *g, size_t size)
{
    if (g->oom)
        return NULL;
    void *p = calloc(1, size);
    if (!p || !push(g, &g->allocs, &g->nallocs, &g->cap_allocs, p)) {
        free(p);
        g->oom = 1;
        return NULL;
    }
    return p;
}

static char *g_str(graph *g, const char *fmt, ...) FNN_PRINTF(2, 3);
static char *g_str(graph *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : g_alloc(g, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void g_free(graph *g)
{
    for (size_t i = 0; i < g->nallocs; i++)
        free(g->allocs[i]);
    free(g->allocs);
    free(g->nodes);
    free(g->inits);
}

/* ---------------------------------------------------------------- attributes, tensors, nodes */

static Onnx__AttributeProto *attr_new(graph *g, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = g_alloc(g, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *attr_int(graph *g, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(g, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_float(graph *g, const char *name, float v)
{
    Onnx__AttributeProto *a = attr_new(g, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_ints(graph *g, const char *name, const int64_t *v, size_t n)
{
    Onnx__AttributeProto *a = attr_new(g, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = g_alloc(g, n * sizeof *copy);
    if (!a || !copy)
        return NULL;
    memcpy(copy, v, n * sizeof *copy);
    a->n_ints = n;
    a->ints = copy;
    return a;
}

/* An initializer of fnn's floats. data is copied when `copy` is set (a tensor the export
 * rearranged), else referenced: the model outlives the export. */
static const char *init_floats(graph *g, const char *name, const int64_t *dims, size_t ndims,
                               const float *data, int copy, const char *doc)
{
    Onnx__TensorProto *t = g_alloc(g, sizeof *t);
    int64_t *d = g_alloc(g, (ndims ? ndims : 1) * sizeof *d);
    size_t size = 1;
    for (size_t i = 0; i < ndims; i++)
        size *= (size_t)dims[i];
    float *values = copy ? g_alloc(g, size * sizeof *values) : (float *)data;
    if (!t || !d || !values)
        return NULL;
    if (copy)
        memcpy(values, data, size * sizeof *values);
    onnx__tensor_proto__init(t);
    if (ndims) /* a scalar has no dims, and dims may then be NULL */
        memcpy(d, dims, ndims * sizeof *d);
    t->n_dims = ndims;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_float_data = size;
    t->float_data = values;
    t->name = (char *)name;
    t->doc_string = (char *)doc;
    push(g, (void ***)&g->inits, &g->ninits, &g->cap_inits, t);
    return g->oom ? NULL : name;
}

static const char *init_int64(graph *g, const char *name, const int64_t *v, size_t n)
{
    Onnx__TensorProto *t = g_alloc(g, sizeof *t);
    int64_t *d = g_alloc(g, sizeof *d), *values = g_alloc(g, n * sizeof *values);
    if (!t || !d || !values)
        return NULL;
    onnx__tensor_proto__init(t);
    *d = (int64_t)n;
    memcpy(values, v, n * sizeof *values);
    t->n_dims = 1;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_int64_data = n;
    t->int64_data = values;
    t->name = (char *)name;
    push(g, (void ***)&g->inits, &g->ninits, &g->cap_inits, t);
    return g->oom ? NULL : name;
}

/* Appends a node of one output, named after that output; inputs and attributes end at NULL.
 * Returns the output's name. */
static const char *node(graph *g, const char *op, const char *out, const char *const *inputs,
                        Onnx__AttributeProto *const *attrs)
{
    size_t nin = 0, nattr = 0;
    while (inputs[nin])
        nin++;
    while (attrs && attrs[nattr])
        nattr++;
    Onnx__NodeProto *nd = g_alloc(g, sizeof *nd);
    char **in = g_alloc(g, nin * sizeof *in), **o = g_alloc(g, sizeof *o);
    Onnx__AttributeProto **a = g_alloc(g, (nattr ? nattr : 1) * sizeof *a);
    if (!nd || !in || !o || !a || !out)
        return g->oom = 1, NULL;
    for (size_t i = 0; i < nin; i++)
        in[i] = (char *)inputs[i];
    for (size_t i = 0; i < nattr; i++)
        a[i] = attrs[i];
    onnx__node_proto__init(nd);
    *o = (char *)out;
    nd->n_input = nin;
    nd->input = in;
    nd->n_output = 1;
    nd->output = o;
    nd->name = (char *)out;
    nd->op_type = (char *)op;
    nd->n_attribute = nattr;
    nd->attribute = a;
    push(g, (void ***)&g->nodes, &g->nnodes, &g->cap_nodes, nd);
    return g->oom ? NULL : out;
}

/* Makes v a (batch, c, h, w) tensor: a flat one (the output of flatten or dense) is reshaped
 * to fnn's shape of it, which is (features, 1, 1) for a flat layer. */
static void to_rank4(graph *g, value *v, const char *tag)
{
    if (v->rank == 4)
        return;
    int64_t shape[4] = {-1, v->shape.c, v->shape.h, v->shape.w};
    const char *s = init_int64(g, g_str(g, "%s.shape", tag), shape, 4);
    v->name = node(g, "Reshape", g_str(g, "%s.reshaped", tag), (const char *[]){v->name, s, NULL},
                   NULL);
    v->rank = 4;
}

/* Makes v a (batch, features) tensor, in fnn's (c, h, w) order as ONNX's Flatten keeps it. */
static void to_rank2(graph *g, value *v, const char *tag)
{
    if (v->rank == 2)
        return;
    v->name = node(g, "Flatten", g_str(g, "%s.flat", tag), (const char *[]){v->name, NULL},
                   (Onnx__AttributeProto *[]){attr_int(g, "axis", 1), NULL});
    v->rank = 2;
}

/* ---------------------------------------------------------------- layers */

static const char *layer_out(graph *g, const fnn_layer *l, const char *what)
{
    return g_str(g, "layers.%d.%s", l->index, what);
}

static void fused_relu(graph *g, const fnn_layer *l, value *v, fnn_activation act)
{
    if (act == FNN_ACT_RELU)
        v->name = node(g, "Relu", layer_out(g, l, "relu"), (const char *[]){v->name, NULL}, NULL);
}

/* Gemm with B stored (out, in) and transB = 1, which every importer takes (OpenCV 4.6 refuses
 * B as (in, out) without transB): fnn's kernel (in, out) is transposed into the file. */
static fnn_status dense(graph *g, const fnn_layer *l, value *v, fnn_error *err)
{
    char tag[NAME_CAP];
    snprintf(tag, sizeof tag, "layers.%d", l->index);
    to_rank2(g, v, tag);
    fnn_tensor k, b;
    l->ops->tensor(l, 0, &k); /* (in, out) */
    l->ops->tensor(l, 1, &b); /* (out) */
    int in = k.shape[0], out = k.shape[1];
    float *kt = malloc((size_t)in * out * sizeof *kt); /* (out, in) */
    if (!kt)
        return fnn_fail(err, FNN_ERR_NOMEM, "ONNX export: out of memory for layer %d's kernel",
                        l->index);
    for (int i = 0; i < in; i++)
        for (int o = 0; o < out; o++)
            kt[(size_t)o * in + i] = k.data[(size_t)i * out + o];
    const char *w = init_floats(g, g_str(g, "%s", k.name), (int64_t[]){out, in}, 2, kt, 1,
                                "fnn's kernel (in, out), transposed for Gemm's transB");
    free(kt);
    const char *bias = init_floats(g, g_str(g, "%s", b.name), (int64_t[]){out}, 1, b.data, 0, NULL);
    v->name = node(g, "Gemm", layer_out(g, l, "gemm"), (const char *[]){v->name, w, bias, NULL},
                   (Onnx__AttributeProto *[]){attr_int(g, "transB", 1), NULL});
    v->shape = l->out;
    /* Softmax, on the last layer only, is the graph's final node. */
    fused_relu(g, l, v, l->cfg.dense.act);
    return FNN_OK;
}

/* 'same' padding as TensorFlow splits it (the smaller half on top and left), so written as
 * explicit pads, which may differ between the two sides: auto_pad SAME_UPPER would say the same,
 * but not every importer reads it. */
static fnn_status conv(graph *g, const fnn_layer *l, value *v, fnn_error *err)
{
    char tag[NAME_CAP];
    snprintf(tag, sizeof tag, "layers.%d", l->index);
    to_rank4(g, v, tag);
    int k = l->cfg.conv.kernel, s = l->cfg.conv.stride;
    int64_t pads[4] = {0, 0, 0, 0}; /* top, left, bottom, right */
    if (l->cfg.conv.same) {
        int ph = (l->out.h - 1) * s + k - l->in.h, pw = (l->out.w - 1) * s + k - l->in.w;
        ph = ph > 0 ? ph : 0;
        pw = pw > 0 ? pw : 0;
        pads[0] = ph / 2;
        pads[1] = pw / 2;
        pads[2] = ph - ph / 2;
        pads[3] = pw - pw / 2;
    }
    fnn_tensor w, b;
    l->ops->tensor(l, 0, &w); /* (filters, c, k, k) */
    const char *inputs[4] = {v->name,
                             init_floats(g, g_str(g, "%s", w.name),
                                         (int64_t[]){w.shape[0], w.shape[1], k, k}, 4, w.data, 0,
                                         NULL),
                             NULL, NULL};
    if (l->cfg.conv.bias) {
        l->ops->tensor(l, 1, &b);
        inputs[2] = init_floats(g, g_str(g, "%s", b.name), (int64_t[]){b.shape[0]}, 1, b.data, 0,
                                NULL);
    }
    v->name = node(g, "Conv", layer_out(g, l, "conv"), inputs,
                   (Onnx__AttributeProto *[]){attr_ints(g, "kernel_shape", (int64_t[]){k, k}, 2),
                                              attr_ints(g, "strides", (int64_t[]){s, s}, 2),
                                              attr_ints(g, "pads", pads, 4), NULL});
    v->shape = l->out;
    fused_relu(g, l, v, l->cfg.conv.act);
    return FNN_OK;
}

static fnn_status pool(graph *g, const fnn_layer *l, value *v, const char *op, fnn_error *err)
{
    char tag[NAME_CAP];
    snprintf(tag, sizeof tag, "layers.%d", l->index);
    to_rank4(g, v, tag);
    int64_t k = l->cfg.pool.size, s = l->cfg.pool.stride;
    /* 'valid' windows: no pads, and the floor of the output size, as fnn computes it. */
    v->name = node(g, op, layer_out(g, l, "pool"), (const char *[]){v->name, NULL},
                   (Onnx__AttributeProto *[]){attr_ints(g, "kernel_shape", (int64_t[]){k, k}, 2),
                                              attr_ints(g, "strides", (int64_t[]){s, s}, 2),
                                              NULL});
    v->shape = l->out;
    return FNN_OK;
}

/* Inference mode: the moving statistics, as fnn_model_predict uses them. */
static fnn_status batchnorm(graph *g, const fnn_layer *l, value *v, fnn_error *err)
{
    const char *in[6] = {v->name};
    for (int i = 0; i < 4; i++) { /* gamma, beta, moving mean, moving variance: ONNX's order */
        fnn_tensor t;
        l->ops->tensor(l, i, &t);
        in[i + 1] = init_floats(g, g_str(g, "%s", t.name), (int64_t[]){t.shape[0]}, 1, t.data, 0,
                                NULL);
    }
    v->name = node(g, "BatchNormalization", layer_out(g, l, "bn"), in,
                   (Onnx__AttributeProto *[]){attr_float(g, "epsilon", l->cfg.bn.eps), NULL});
    return FNN_OK;
}

static fnn_status activation(graph *g, const fnn_layer *l, value *v, fnn_error *err)
{
    const char *out = layer_out(g, l, "act"), *const in[] = {v->name, NULL};
    switch (l->cfg.act.kind) {
    case FNN_ACT_LINEAR: return FNN_OK;
    case FNN_ACT_RELU: v->name = node(g, "Relu", out, in, NULL); return FNN_OK;
    case FNN_ACT_TANH: v->name = node(g, "Tanh", out, in, NULL); return FNN_OK;
    case FNN_ACT_SIGMOID: v->name = node(g, "Sigmoid", out, in, NULL); return FNN_OK;
    case FNN_ACT_LEAKY_RELU:
        v->name = node(g, "LeakyRelu", out, in,
                       (Onnx__AttributeProto *[]){attr_float(g, "alpha", l->cfg.act.alpha), NULL});
        return FNN_OK;
    case FNN_ACT_ELU:
        v->name = node(g, "Elu", out, in,
                       (Onnx__AttributeProto *[]){attr_float(g, "alpha", l->cfg.act.alpha), NULL});
        return FNN_OK;
    case FNN_ACT_SOFTMAX: break;
    }
    return fnn_fail(err, FNN_ERR_ARG,
                    "ONNX export: layer %d (%s): activation %d cannot be exported", l->index,
                    l->ops->kind, (int)l->cfg.act.kind);
}

/* The block's output plus its input, through ResNet's projection (a 1x1 convolution with the
 * stride that matches the sizes, taking every s-th pixel from the first) when the block changes
 * the shape. */
static void residual_end(graph *g, const fnn_layer *l, value *v, value shortcut)
{
    const fnn_layer *b = l->partner;
    char tag[NAME_CAP];
    snprintf(tag, sizeof tag, "layers.%d", l->index);
    int projects = b->in.c != l->in.c || b->in.h != l->in.h || b->in.w != l->in.w;
    if (projects || shortcut.rank != v->rank) {
        char stag[NAME_CAP];
        snprintf(stag, sizeof stag, "layers.%d.shortcut", l->index);
        to_rank4(g, &shortcut, stag);
        to_rank4(g, v, tag);
    }
    if (projects) {
        fnn_tensor w, bias;
        l->ops->tensor(l, 0, &w); /* (co, ci, 1, 1) */
        l->ops->tensor(l, 1, &bias);
        int64_t s = b->in.h / l->in.h;
        const char *in[] = {
            shortcut.name,
            init_floats(g, g_str(g, "%s", w.name), (int64_t[]){w.shape[0], w.shape[1], 1, 1}, 4,
                        w.data, 0, NULL),
            init_floats(g, g_str(g, "%s", bias.name), (int64_t[]){bias.shape[0]}, 1, bias.data, 0,
                        NULL),
            NULL};
        shortcut.name = node(
            g, "Conv", layer_out(g, l, "projection"), in,
            (Onnx__AttributeProto *[]){attr_ints(g, "kernel_shape", (int64_t[]){1, 1}, 2),
                                       attr_ints(g, "strides", (int64_t[]){s, s}, 2), NULL});
    }
    v->name = node(g, "Add", layer_out(g, l, "add"), (const char *[]){v->name, shortcut.name, NULL},
                   NULL);
    v->shape = l->out;
}

/* Appends the nodes of every layer, from the scaled input `v` to the probabilities. */
static fnn_status layers(graph *g, const fnn_model *m, value *v, fnn_error *err)
{
    value open[MAX_DEPTH];
    int depth = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const fnn_layer *l = &m->layers[i];
        const fnn_layer_ops *ops = l->ops;
        fnn_status s = FNN_OK;
        char tag[NAME_CAP];
        snprintf(tag, sizeof tag, "layers.%d", l->index);
        if (ops == &fnn_dense_ops) {
            s = dense(g, l, v, err);
        } else if (ops == &fnn_conv2d_ops) {
            s = conv(g, l, v, err);
        } else if (ops == &fnn_maxpool_ops) {
            s = pool(g, l, v, "MaxPool", err);
        } else if (ops == &fnn_avgpool_ops) {
            s = pool(g, l, v, "AveragePool", err);
        } else if (ops == &fnn_globalavgpool_ops) {
            to_rank4(g, v, tag);
            v->name = node(g, "GlobalAveragePool", layer_out(g, l, "pool"),
                           (const char *[]){v->name, NULL}, NULL);
        } else if (ops == &fnn_batchnorm_ops) {
            s = batchnorm(g, l, v, err);
        } else if (ops == &fnn_activation_ops) {
            s = activation(g, l, v, err);
        } else if (ops == &fnn_flatten_ops) {
            to_rank2(g, v, tag);
        } else if (ops == &fnn_dropout_ops) {
            /* The identity at inference. */
        } else if (ops == &fnn_residual_begin_ops) {
            if (depth == MAX_DEPTH)
                return fnn_fail(err, FNN_ERR_ARG,
                                "ONNX export: layer %d: more than %d nested residual blocks",
                                l->index, MAX_DEPTH);
            open[depth++] = *v;
        } else if (ops == &fnn_residual_end_ops && depth > 0) {
            residual_end(g, l, v, open[--depth]);
        } else {
            return fnn_fail(err, FNN_ERR_ARG,
                            "ONNX export: layer %d (%s, \"%s\") has no ONNX form in this version of "
                            "fnn; nothing was written",
                            l->index, ops->type ? ops->type : "?", ops->kind ? ops->kind : "?");
        }
        if (s != FNN_OK)
            return s;
        v->shape = l->out;
        if (g->oom)
            return fnn_fail(err, FNN_ERR_NOMEM, "ONNX export: out of memory at layer %d",
                            l->index);
    }
    /* fnn_model_predict's softmax over the last layer's logits, whatever that layer's
     * activation says. */
    v->name = node(g, "Softmax", "probabilities", (const char *[]){v->name, NULL},
                   (Onnx__AttributeProto *[]){attr_int(g, "axis", 1), NULL});
    return FNN_OK;
}

/* ---------------------------------------------------------------- the model */

static Onnx__ValueInfoProto *tensor_info(graph *g, const char *name, const int64_t *dims,
                                         size_t ndims, int batch, const char *doc)
{
    Onnx__ValueInfoProto *vi = g_alloc(g, sizeof *vi);
    Onnx__TypeProto *tp = g_alloc(g, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = g_alloc(g, sizeof *tt);
    Onnx__TensorShapeProto *sh = g_alloc(g, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **d = g_alloc(g, (ndims + 1) * sizeof *d);
    if (!vi || !tp || !tt || !sh || !d)
        return NULL;
    for (size_t i = 0; i <= ndims; i++) {
        if (!(d[i] = g_alloc(g, sizeof *d[i])))
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d[i]);
        if (i == 0 && batch == 0) {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d[i]->dim_param = "batch";
        } else {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d[i]->dim_value = i == 0 ? batch : dims[i - 1];
        }
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = ndims + 1;
    sh->dim = d;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    onnx__value_info_proto__init(vi);
    vi->name = (char *)name;
    vi->type = tp;
    vi->doc_string = (char *)doc;
    return vi;
}

static Onnx__StringStringEntryProto *entry(graph *g, const char *key, const char *text)
{
    Onnx__StringStringEntryProto *e = g_alloc(g, sizeof *e);
    if (!e || !text)
        return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = (char *)key;
    e->value = (char *)text;
    return e;
}

/* The class names to store: opt's list when it holds k strings, else "0", "1", ... Returns a
 * string owned by g. */
static const char *class_names(graph *g, const char *json, int k, fnn_error *err,
                               fnn_status *st)
{
    *st = FNN_OK;
    cJSON *root = json ? cJSON_Parse(json) : cJSON_CreateArray();
    if (root && !json)
        for (int i = 0; i < k; i++) {
            char num[16];
            snprintf(num, sizeof num, "%d", i);
            cJSON_AddItemToArray(root, cJSON_CreateString(num));
        }
    if (json) {
        int ok = cJSON_IsArray(root) && cJSON_GetArraySize(root) == k;
        for (const cJSON *c = ok ? root->child : NULL; c; c = c->next)
            ok &= cJSON_IsString(c);
        if (!ok) {
            cJSON_Delete(root);
            *st = fnn_fail(err, FNN_ERR_ARG,
                           "ONNX export: class names must be a JSON list of %d strings, not %.80s",
                           k, json);
            return NULL;
        }
    }
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    const char *out = text ? g_str(g, "%s", text) : NULL;
    free(text);
    if (!out)
        *st = fnn_fail(err, FNN_ERR_NOMEM, "ONNX export: out of memory for the class names");
    return out;
}

static const char model_doc[] =
    "An fnn model (%s). Input \"pixels\" (batch, %d, %d, %d) float: pixels from 0 to 255, C "
    "channels: grey or R, G, B planes (this model: %s), resized to %dx%d as fnn predict prepares "
    "an image before scaling; the graph divides by 255 itself%s. Output \"probabilities\" "
    "(batch, %d): the softmax over the classes named, in order, by metadata_props "
    "\"class_names\".";

/* The model's input normalisation after the scaling: Sub mean, then Div std, each (c, 1, 1)
 * broadcast over the batch and the pixels; a division as fnn does it, for the same bits. Not
 * (1, c, 1, 1), which ONNX broadcasts the same way: OpenCV 4.6's importer fails on those
 * (an assertion in shape_utils.hpp's total() when the net runs). */
static void normalization(graph *g, const fnn_model *m, value *v)
{
    int c = m->input.c;
    float *mean = g_alloc(g, (size_t)c * sizeof *mean), *std = g_alloc(g, (size_t)c * sizeof *std);
    if (!mean || !std)
        return;
    fnn_model_normalization(m, mean, std);
    const int64_t dims[3] = {c, 1, 1};
    const char *mu = init_floats(g, "input_mean", dims, 3, mean, 0,
                                 "fnn's per-channel input mean, subtracted after the scaling");
    const char *sd = init_floats(g, "input_std", dims, 3, std, 0,
                                 "fnn's per-channel input standard deviation, divided by last");
    const char *centred = node(g, "Sub", "centred", (const char *[]){v->name, mu, NULL}, NULL);
    v->name = node(g, "Div", "normalized", (const char *[]){centred, sd, NULL}, NULL);
}

fnn_status fnn_export_onnx(const fnn_model *m, const char *path, const fnn_onnx_options *opt,
                           fnn_error *err)
{
    if (!m || !path || !*path)
        return fnn_fail(err, FNN_ERR_ARG, "ONNX export: %s", !m ? "no model" : "empty output path");
    fnn_onnx_options o = opt ? *opt : (fnn_onnx_options){0};
    if (o.batch < 0)
        return fnn_fail(err, FNN_ERR_ARG, "ONNX export: batch %d is negative (0: dynamic)",
                        o.batch);
    graph g = {0};
    fnn_status st;
    fnn_shape in = m->input;
    int k = m->nclasses;
    const char *names = class_names(&g, o.class_names_json, k, err, &st);
    if (st != FNN_OK) {
        g_free(&g);
        return st;
    }

    /* fnn predict's scaling, x / 255 in float as src/data/batch.c does it: a division, not a
     * product with 1/255, so that the scaled pixels are the same bits. */
    static const float scale = 255.0f;
    const char *s = init_floats(&g, "pixel_scale", NULL, 0, &scale, 1,
                                "fnn scales pixels to [0, 1] by dividing by 255");
    value v = {node(&g, "Div", "scaled", (const char *[]){"pixels", s, NULL}, NULL), 4, in};
    int normalized = fnn_model_normalization(m, NULL, NULL);
    if (normalized)
        normalization(&g, m, &v);
    if ((st = layers(&g, m, &v, err)) != FNN_OK) {
        g_free(&g);
        return st;
    }

    Onnx__GraphProto graph_msg = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    char planes[32];
    snprintf(planes, sizeof planes, in.c == 1 ? "grey" : in.c == 3 ? "R, G, B" : "%d channels",
             in.c);
    char *doc = g_str(&g, model_doc, fnn_model_spec(m), in.c, in.h, in.w, planes, in.h, in.w,
                      normalized ? ", then normalises each channel, (x - input_mean) / input_std"
                                 : "",
                      k);
    Onnx__ValueInfoProto *input = tensor_info(&g, "pixels", (int64_t[]){in.c, in.h, in.w}, 3,
                                              o.batch,
                                              "pixels from 0 to 255, C channels: grey or R, G, B "
                                              "planes");
    Onnx__ValueInfoProto *output = tensor_info(&g, "probabilities", (int64_t[]){k}, 1, o.batch,
                                               "class probabilities, rows summing to 1");
    Onnx__StringStringEntryProto *meta[3] = {
        entry(&g, "class_names", names), entry(&g, "fnn_spec", fnn_model_spec(m)),
        entry(&g, "fnn_version", FNN_VERSION)};
    if (g.oom || !doc || !input || !output || !meta[0] || !meta[1] || !meta[2]) {
        g_free(&g);
        return fnn_fail(err, FNN_ERR_NOMEM, "ONNX export: out of memory building the graph");
    }
    graph_msg.name = "fnn";
    graph_msg.n_node = g.nnodes;
    graph_msg.node = g.nodes;
    graph_msg.n_initializer = g.ninits;
    graph_msg.initializer = g.inits;
    graph_msg.n_input = 1;
    graph_msg.input = &input;
    graph_msg.n_output = 1;
    graph_msg.output = &output;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = FNN_ONNX_OPSET;
    Onnx__OperatorSetIdProto *opsets = &opset;
    model.has_ir_version = 1;
    model.ir_version = ONNX_IR_VERSION;
    model.n_opset_import = 1;
    model.opset_import = &opsets;
    model.producer_name = "fnn";
    model.producer_version = FNN_VERSION;
    model.has_model_version = 1;
    model.model_version = 1;
    model.doc_string = doc;
    model.graph = &graph_msg;
    model.n_metadata_props = 3;
    model.metadata_props = meta;

    size_t size = onnx__model_proto__get_packed_size(&model);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        g_free(&g);
        return fnn_fail(err, FNN_ERR_NOMEM, "ONNX export: out of memory for a %zu-byte file",
                        size);
    }
    size_t packed = onnx__model_proto__pack(&model, buf);
    g_free(&g);
    st = packed == size ? fnn_write_atomic(path, buf, size, err)
                        : fnn_fail(err, FNN_ERR_FORMAT,
                                   "ONNX export: protobuf-c packed %zu bytes of %zu", packed, size);
    free(buf);
    return st;
}
