/* ONNX export: the file decodes back (protobuf-c, from the same onnx.proto) into the graph each
 * layer should give, with fnn's weights bit for bit; bad inputs (a layer without an ONNX form, a
 * missing folder, a full disk, a file that is not fnn's) fail with a message naming what was
 * wrong and leave no file. The numbers are checked by three runtimes in test_onnx_runtimes.sh. */
#define _XOPEN_SOURCE 700

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "fnn.h"
#include "model/model.h"
#include "onnx.pb-c.h"

#define PATH_CAP 1024
#define RUN_TIMEOUT_S 60

static char g_base[PATH_CAP / 2]; /* $FNN_TMP/test_onnx.work: everything this program writes */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

static const char names_json[] = "[\"T-shirt/top\",\"Trouser\",\"Pullover\",\"Dress\",\"Coat\","
                                 "\"Sandal\",\"Shirt\",\"Sneaker\",\"Bag\",\"Ankle boot\"]";

static fnn_model *model(const char *spec)
{
    fnn_error err = {0};
    fnn_model *m = fnn_model_create(spec, 1, 28, 28, &err);
    if (!m)
        fail_msg("%s: %s", spec, err.msg);
    fnn_model_init(m, 7);
    /* Batch norm's moving statistics away from (0, 1), so that a swapped tensor shows. */
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        if (t.frozen)
            for (size_t j = 0; j < t.size; j++)
                t.data[j] = 0.5f + 0.01f * (float)(j % 7);
    }
    return m;
}

/* Exports m to base/name and decodes the file. */
static Onnx__ModelProto *export_decode(const fnn_model *m, const char *name, int batch)
{
    char path[PATH_CAP];
    pathf(path, "%s/%s", g_base, name);
    fnn_error err = {0};
    fnn_onnx_options opt = {.batch = batch, .class_names_json = names_json};
    if (fnn_export_onnx(m, path, &opt, &err) != FNN_OK)
        fail_msg("export %s: %s", name, err.msg);
    size_t len;
    char *bytes = read_all(path, &len);
    assert_non_null(bytes);
    Onnx__ModelProto *p = onnx__model_proto__unpack(NULL, len, (const uint8_t *)bytes);
    free(bytes);
    if (!p)
        fail_msg("%s: protobuf-c cannot decode it as an onnx.ModelProto", path);
    return p;
}

static const Onnx__NodeProto *find_node(const Onnx__ModelProto *p, const char *name)
{
    for (size_t i = 0; i < p->graph->n_node; i++)
        if (!strcmp(p->graph->node[i]->name, name))
            return p->graph->node[i];
    fail_msg("no node named %s", name);
    return NULL;
}

static const Onnx__TensorProto *find_init(const Onnx__ModelProto *p, const char *name)
{
    for (size_t i = 0; i < p->graph->n_initializer; i++)
        if (!strcmp(p->graph->initializer[i]->name, name))
            return p->graph->initializer[i];
    fail_msg("no initializer named %s", name);
    return NULL;
}

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (!strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    fail_msg("node %s has no attribute %s", n->name, name);
    return NULL;
}

static void expect_ints(const Onnx__NodeProto *n, const char *attr, const int64_t *want,
                        size_t count)
{
    const Onnx__AttributeProto *a = find_attr(n, attr);
    assert_int_equal(a->n_ints, count);
    for (size_t i = 0; i < count; i++)
        if (a->ints[i] != want[i])
            fail_msg("node %s: %s[%zu] = %lld, expected %lld", n->name, attr, i,
                     (long long)a->ints[i], (long long)want[i]);
}

/* The node types in order, e.g. "Div Flatten Gemm ...". */
static void expect_ops(const Onnx__ModelProto *p, const char *want)
{
    char got[2048] = "";
    for (size_t i = 0; i < p->graph->n_node; i++) {
        if (i)
            strcat(got, " ");
        strncat(got, p->graph->node[i]->op_type, sizeof got - strlen(got) - 2);
    }
    if (strcmp(got, want))
        fail_msg("nodes:\n  %s\nexpected:\n  %s", got, want);
}

/* Every node reads only the input, initializers and outputs of nodes before it; the graph's
 * output is the last node's. */
static void expect_topological(const Onnx__ModelProto *p)
{
    const Onnx__GraphProto *g = p->graph;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t j = 0; j < g->node[i]->n_input; j++) {
            const char *in = g->node[i]->input[j];
            int known = !strcmp(in, "pixels");
            for (size_t k = 0; k < g->n_initializer && !known; k++)
                known = !strcmp(in, g->initializer[k]->name);
            for (size_t k = 0; k < i && !known; k++)
                known = !strcmp(in, g->node[k]->output[0]);
            if (!known)
                fail_msg("node %s reads %s, which nothing before it defines", g->node[i]->name,
                         in);
        }
    assert_string_equal(g->node[g->n_node - 1]->output[0], "probabilities");
}

static void expect_dims(const Onnx__ValueInfoProto *v, const char *name, int batch,
                        const int64_t *rest, size_t nrest)
{
    assert_string_equal(v->name, name);
    const Onnx__TensorShapeProto *s = v->type->tensor_type->shape;
    assert_int_equal(v->type->tensor_type->elem_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    assert_int_equal(s->n_dim, nrest + 1);
    if (batch == 0) {
        assert_int_equal(s->dim[0]->value_case,
                         ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
        assert_string_equal(s->dim[0]->dim_param, "batch");
    } else {
        assert_int_equal(s->dim[0]->value_case,
                         ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE);
        assert_int_equal(s->dim[0]->dim_value, batch);
    }
    for (size_t i = 0; i < nrest; i++)
        assert_int_equal(s->dim[i + 1]->dim_value, rest[i]);
}

static const char *meta(const Onnx__ModelProto *p, const char *key)
{
    for (size_t i = 0; i < p->n_metadata_props; i++)
        if (!strcmp(p->metadata_props[i]->key, key))
            return p->metadata_props[i]->value;
    fail_msg("metadata_props has no %s", key);
    return NULL;
}

/* Initializer `name` holds fnn's tensor `index` of m, bit for bit (transposed when asked). */
static void expect_weights(const Onnx__ModelProto *p, const fnn_model *m, int index,
                           int transposed)
{
    fnn_tensor t;
    fnn_model_tensor(m, index, &t);
    const Onnx__TensorProto *o = find_init(p, t.name);
    assert_int_equal(o->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    assert_int_equal(o->n_float_data, t.size);
    assert_int_equal(o->n_dims, t.rank);
    for (int d = 0; d < t.rank; d++)
        assert_int_equal(o->dims[d], t.shape[transposed ? t.rank - 1 - d : d]);
    for (size_t j = 0; j < t.size; j++) {
        size_t at = j;
        if (transposed) /* fnn (in, out) at j = i * out + o; ONNX (out, in) */
            at = (j % (size_t)t.shape[1]) * (size_t)t.shape[0] + j / (size_t)t.shape[1];
        if (memcmp(&o->float_data[at], &t.data[j], sizeof(float)))
            fail_msg("%s[%zu]: %g in the file, %g in the model", t.name, j,
                     (double)o->float_data[at], (double)t.data[j]);
    }
}

/* ---------------------------------------------------------------- graphs */

static void test_mlp_graph(void **state)
{
    fnn_model *m = model("mlp");
    Onnx__ModelProto *p = export_decode(m, "mlp.onnx", 0);
    assert_int_equal(p->ir_version, 7);
    assert_int_equal(p->n_opset_import, 1);
    assert_string_equal(p->opset_import[0]->domain, "");
    assert_int_equal(p->opset_import[0]->version, FNN_ONNX_OPSET);
    assert_string_equal(p->producer_name, "fnn");
    expect_contains(p->doc_string, "doc_string", "0 to 255");
    expect_dims(p->graph->input[0], "pixels", 0, (int64_t[]){1, 28, 28}, 3);
    expect_dims(p->graph->output[0], "probabilities", 0, (int64_t[]){10}, 1);
    /* Dropout is the identity at inference: no node. */
    expect_ops(p, "Div Flatten Gemm Relu Gemm Relu Gemm Softmax");
    expect_topological(p);
    const Onnx__NodeProto *div = p->graph->node[0];
    assert_string_equal(div->input[0], "pixels");
    const Onnx__TensorProto *scale = find_init(p, div->input[1]);
    assert_int_equal(scale->n_dims, 0);
    assert_true(scale->n_float_data == 1 && scale->float_data[0] == 255.0f);
    for (size_t i = 0; i < p->graph->n_node; i++)
        if (!strcmp(p->graph->node[i]->op_type, "Gemm"))
            assert_int_equal(find_attr(p->graph->node[i], "transB")->i, 1);
    assert_int_equal(find_attr(find_node(p, "probabilities"), "axis")->i, 1);
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        expect_weights(p, m, i, t.rank == 2);
    }
    assert_string_equal(meta(p, "class_names"), names_json);
    assert_string_equal(meta(p, "fnn_spec"), fnn_model_spec(m));
    onnx__model_proto__free_unpacked(p, NULL);

    p = export_decode(m, "mlp-batch4.onnx", 4);
    expect_dims(p->graph->input[0], "pixels", 4, (int64_t[]){1, 28, 28}, 3);
    expect_dims(p->graph->output[0], "probabilities", 4, (int64_t[]){10}, 1);
    onnx__model_proto__free_unpacked(p, NULL);

    /* No class names: their indices. */
    char path[PATH_CAP];
    fnn_error err = {0};
    assert_int_equal(fnn_export_onnx(m, pathf(path, "%s/noname.onnx", g_base), NULL, &err), FNN_OK);
    size_t len;
    char *bytes = read_all(path, &len);
    p = onnx__model_proto__unpack(NULL, len, (const uint8_t *)bytes);
    assert_non_null(p);
    assert_string_equal(meta(p, "class_names"), "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]");
    onnx__model_proto__free_unpacked(p, NULL);
    free(bytes);
    fnn_model_free(m);
}

/* 'same' padding as explicit pads, asymmetric where TensorFlow puts the extra row and column
 * at the bottom and right; bias only where the layer has one; fused ReLU. */
static void test_conv_pads(void **state)
{
    fnn_model *m = model("conv2d:4:4:same conv2d:6:3:s2:same:nobias:relu conv2d:2:5 "
                         "flatten dense:10:softmax");
    Onnx__ModelProto *p = export_decode(m, "conv.onnx", 0);
    expect_ops(p, "Div Conv Conv Relu Conv Flatten Gemm Softmax");
    expect_topological(p);
    const Onnx__NodeProto *c0 = find_node(p, "layers.0.conv"), *c1 = find_node(p, "layers.1.conv"),
                          *c2 = find_node(p, "layers.2.conv");
    expect_ints(c0, "pads", (int64_t[]){1, 1, 2, 2}, 4); /* 28 + 3 = 31 = 28 - 1 + 4 */
    expect_ints(c0, "strides", (int64_t[]){1, 1}, 2);
    expect_ints(c0, "kernel_shape", (int64_t[]){4, 4}, 2);
    assert_int_equal(c0->n_input, 3);
    expect_ints(c1, "pads", (int64_t[]){0, 0, 1, 1}, 4); /* 14 outputs: 13 * 2 + 3 = 29 */
    expect_ints(c1, "strides", (int64_t[]){2, 2}, 2);
    assert_int_equal(c1->n_input, 2);
    expect_ints(c2, "pads", (int64_t[]){0, 0, 0, 0}, 4); /* valid */
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        expect_weights(p, m, i, t.rank == 2);
    }
    onnx__model_proto__free_unpacked(p, NULL);
    fnn_model_free(m);
}

/* A residual block that halves the size and doubles the channels: the shortcut is ResNet's
 * strided 1x1 projection of the block's input, added to the block's output. */
static void test_residual_projection(void **state)
{
    fnn_model *m = model("conv2d:8:3:same residual conv2d:16:3:s2:same batchnorm relu "
                         "conv2d:16:3:same end globalavgpool dense:10:softmax");
    Onnx__ModelProto *p = export_decode(m, "residual.onnx", 0);
    expect_ops(p, "Div Conv Conv BatchNormalization Relu Conv Conv Add GlobalAveragePool Flatten "
                  "Gemm Softmax");
    expect_topological(p);
    const Onnx__NodeProto *proj = find_node(p, "layers.6.projection");
    assert_string_equal(proj->op_type, "Conv");
    assert_string_equal(proj->input[0], "layers.0.conv"); /* the block's input */
    expect_ints(proj, "kernel_shape", (int64_t[]){1, 1}, 2);
    expect_ints(proj, "strides", (int64_t[]){2, 2}, 2);
    const Onnx__NodeProto *add = find_node(p, "layers.6.add");
    assert_string_equal(add->input[0], "layers.5.conv");
    assert_string_equal(add->input[1], "layers.6.projection");
    const Onnx__NodeProto *bn = find_node(p, "layers.3.bn");
    assert_int_equal(bn->n_input, 5);
    assert_string_equal(bn->input[3], "layers.3.moving_mean");
    assert_string_equal(bn->input[4], "layers.3.moving_variance");
    assert_true(find_attr(bn, "epsilon")->f == 1e-3f);
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        expect_weights(p, m, i, t.rank == 2);
    }
    onnx__model_proto__free_unpacked(p, NULL);
    fnn_model_free(m);
}

/* A colour model with an input normalisation: "pixels" (batch, 3, 32, 32), then Div by 255,
 * Sub input_mean and Div input_std, each (3, 1, 1) with the model's floats bit for bit. */
static void test_colour_normalized(void **state)
{
    fnn_error err = {0};
    fnn_model *m = fnn_model_create("conv2d:4:3:same:relu maxpool:2 flatten dense:10:softmax", 3,
                                    32, 32, &err);
    assert_non_null(m);
    fnn_model_init(m, 7);
    const float mean[3] = {0.49f, 0.48f, 0.45f}, std[3] = {0.25f, 0.24f, 0.26f};
    assert_int_equal(fnn_model_set_normalization(m, mean, std, &err), FNN_OK);
    Onnx__ModelProto *p = export_decode(m, "colour.onnx", 0);
    expect_dims(p->graph->input[0], "pixels", 0, (int64_t[]){3, 32, 32}, 3);
    expect_ops(p, "Div Sub Div Conv Relu MaxPool Flatten Gemm Softmax");
    expect_topological(p);
    expect_contains(p->doc_string, "doc_string", "R, G, B");
    expect_contains(p->doc_string, "doc_string", "input_std");
    const Onnx__NodeProto *sub = p->graph->node[1], *div = p->graph->node[2];
    assert_string_equal(sub->input[0], p->graph->node[0]->output[0]);
    assert_string_equal(div->input[0], sub->output[0]);
    assert_string_equal(find_node(p, "layers.0.conv")->input[0], div->output[0]);
    const float *want[2] = {mean, std};
    const Onnx__TensorProto *got[2] = {find_init(p, sub->input[1]), find_init(p, div->input[1])};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(got[i]->n_dims, 3);
        assert_true(got[i]->dims[0] == 3 && got[i]->dims[1] == 1 && got[i]->dims[2] == 1);
        assert_int_equal(got[i]->n_float_data, 3);
        assert_memory_equal(got[i]->float_data, want[i], 3 * sizeof(float));
    }
    onnx__model_proto__free_unpacked(p, NULL);
    /* Without one, the scaled pixels go straight into the first layer. */
    assert_int_equal(fnn_model_set_normalization(m, NULL, NULL, &err), FNN_OK);
    p = export_decode(m, "colour-plain.onnx", 0);
    expect_ops(p, "Div Conv Relu MaxPool Flatten Gemm Softmax");
    onnx__model_proto__free_unpacked(p, NULL);
    fnn_model_free(m);
}

/* Every other layer: pooling, each activation with its alpha, flat batch norm, identity blocks,
 * and a convolution after a dense layer (reshaped back to an image). */
static void test_every_layer(void **state)
{
    fnn_model *m = model("avgpool:2 maxpool:3:2 residual leakyrelu:0.2 elu:0.5 end tanh sigmoid "
                         "dropout:0.1 flatten dense:36 batchnorm relu conv2d:2:1 "
                         "dense:10:softmax");
    Onnx__ModelProto *p = export_decode(m, "every.onnx", 0);
    expect_ops(p, "Div AveragePool MaxPool LeakyRelu Elu Add Tanh Sigmoid Flatten Gemm "
                  "BatchNormalization Relu Reshape Conv Flatten Gemm Softmax");
    expect_topological(p);
    expect_ints(find_node(p, "layers.0.pool"), "kernel_shape", (int64_t[]){2, 2}, 2);
    expect_ints(find_node(p, "layers.1.pool"), "strides", (int64_t[]){2, 2}, 2);
    assert_true(find_attr(find_node(p, "layers.3.act"), "alpha")->f == 0.2f);
    assert_true(find_attr(find_node(p, "layers.4.act"), "alpha")->f == 0.5f);
    assert_string_equal(find_node(p, "layers.5.add")->input[1], "layers.1.pool");
    const Onnx__TensorProto *shape = find_init(p, find_node(p, "layers.13.reshaped")->input[1]);
    assert_int_equal(shape->n_int64_data, 4);
    assert_true(shape->int64_data[0] == -1 && shape->int64_data[1] == 36 &&
                shape->int64_data[2] == 1 && shape->int64_data[3] == 1);
    onnx__model_proto__free_unpacked(p, NULL);
    fnn_model_free(m);
}

/* ---------------------------------------------------------------- bad inputs */

/* No file called name.tmp.* is left in the work folder. */
static void expect_no_temp_files(void)
{
    DIR *d = opendir(g_base);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp."))
            fail_msg("temporary file %s left behind", e->d_name);
    closedir(d);
}

/* A layer the export has no form for fails naming it, and leaves what was at the path. */
static void test_unsupported_layer(void **state)
{
    static const fnn_layer_ops fancy = {.kind = "fancy", .type = "Fancy"};
    fnn_model *m = model("mlp");
    char path[PATH_CAP];
    pathf(path, "%s/unsupported.onnx", g_base);
    write_file(path, "old", 3);
    const fnn_layer_ops *real = m->layers[2].ops;
    m->layers[2].ops = &fancy;
    fnn_error err = {0};
    fnn_status s = fnn_export_onnx(m, path, NULL, &err);
    m->layers[2].ops = real;
    assert_int_equal(s, FNN_ERR_ARG);
    expect_contains(err.msg, "message", "layer 2");
    expect_contains(err.msg, "message", "fancy");
    size_t len;
    char *kept = read_all(path, &len);
    assert_true(kept && len == 3 && !memcmp(kept, "old", 3));
    free(kept);
    expect_no_temp_files();

    fnn_onnx_options bad = {.class_names_json = "[\"just one\"]"};
    assert_int_equal(fnn_export_onnx(m, path, &bad, &err), FNN_ERR_ARG);
    expect_contains(err.msg, "message", "10 strings");
    bad = (fnn_onnx_options){.batch = -1};
    assert_int_equal(fnn_export_onnx(m, path, &bad, &err), FNN_ERR_ARG);
    fnn_model_free(m);
}

static void test_missing_folder(void **state)
{
    fnn_model *m = model("mlp");
    char path[PATH_CAP];
    pathf(path, "%s/no/such/folder/m.onnx", g_base);
    fnn_error err = {0};
    assert_int_equal(fnn_export_onnx(m, path, NULL, &err), FNN_ERR_IO);
    expect_contains(err.msg, "message", path);
    expect_contains(err.msg, "message", strerror(ENOENT));
    assert_false(file_exists(path));
    fnn_model_free(m);
}

/* /dev/full takes nothing: the message says so, and the device is still a device (renaming a
 * temporary file over it would have replaced it). */
static void test_full_disk(void **state)
{
    struct stat st;
    if (stat("/dev/full", &st) != 0 || !S_ISCHR(st.st_mode))
        skip();
    fnn_model *m = model("mlp");
    fnn_error err = {0};
    assert_int_equal(fnn_export_onnx(m, "/dev/full", NULL, &err), FNN_ERR_IO);
    expect_contains(err.msg, "message", "/dev/full");
    expect_contains(err.msg, "message", strerror(ENOSPC));
    assert_int_equal(stat("/dev/full", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    fnn_model_free(m);
}

/* ---------------------------------------------------------------- the command */

static void test_cli(void **state)
{
    fnn_model *m = model("cnn");
    char model_path[PATH_CAP], out[PATH_CAP], bad[PATH_CAP], missing[PATH_CAP];
    pathf(model_path, "%s/cnn.safetensors", g_base);
    fnn_model_meta mm = {.class_names_json = (char *)names_json};
    fnn_error err = {0};
    assert_int_equal(fnn_model_save(m, &mm, model_path, &err), FNN_OK);
    pathf(out, "%s/cli.onnx", g_base);

    run_t r = FNN("export", model_path, "--onnx", out);
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", out);
    run_free(&r);
    Onnx__ModelProto *direct = export_decode(m, "direct.onnx", 0);
    size_t len;
    char *bytes = read_all(out, &len);
    Onnx__ModelProto *p = onnx__model_proto__unpack(NULL, len, (const uint8_t *)bytes);
    assert_non_null(p);
    assert_string_equal(meta(p, "class_names"), names_json);
    assert_int_equal(p->graph->n_node, direct->graph->n_node);
    onnx__model_proto__free_unpacked(p, NULL);
    onnx__model_proto__free_unpacked(direct, NULL);
    free(bytes);

    r = FNN("export", model_path, "--onnx", out, "--batch", "8", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    assert_int_equal(get_number(doc, "opset"), FNN_ONNX_OPSET);
    assert_int_equal(get_number(doc, "batch"), 8);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(get_number(doc, "bytes"), st.st_size);
    cJSON_Delete(doc);
    run_free(&r);

    /* Not fnn's file. */
    pathf(bad, "%s/not-fnn.safetensors", g_base);
    write_file(bad, "GIF89a, not a model", 19);
    pathf(missing, "%s/from-bad.onnx", g_base);
    r = FNN("export", bad, "--onnx", missing);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", bad);
    assert_false(file_exists(missing));
    run_free(&r);

    /* A missing folder and a full disk. */
    pathf(missing, "%s/nowhere/m.onnx", g_base);
    r = FNN("export", model_path, "--onnx", missing);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", missing);
    assert_false(file_exists(missing));
    run_free(&r);
    if (stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode)) {
        r = FNN("export", model_path, "--onnx", "/dev/full");
        expect_code(&r, 1);
        expect_contains(r.err, "stderr", strerror(ENOSPC));
        run_free(&r);
    }

    /* Usage. */
    r = FNN("export", model_path);
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--onnx");
    run_free(&r);
    r = FNN("export", model_path, "--onnx", out, "--batch", "0");
    expect_code(&r, 2);
    run_free(&r);
    r = FNN("export", "--help");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "0 to 255");
    run_free(&r);
    expect_no_temp_files();
    fnn_model_free(m);
}

static int setup(void **state)
{
    return work_dir(g_base, sizeof g_base, "test_onnx");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_graph),           cmocka_unit_test(test_conv_pads),
        cmocka_unit_test(test_residual_projection), cmocka_unit_test(test_every_layer),
        cmocka_unit_test(test_colour_normalized),
        cmocka_unit_test(test_unsupported_layer),   cmocka_unit_test(test_missing_folder),
        cmocka_unit_test(test_full_disk),           cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
