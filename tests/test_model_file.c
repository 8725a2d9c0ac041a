/* Tests for src/io/model_file.c: save and load round trips (weights bit for bit, spec, metadata),
 * the metadata written, and files that must not load: each rebuilt from a valid one with one
 * thing changed. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <math.h>
#include <unistd.h>

#include "fnn.h"
#include "io/safetensors.h"
#include "check.h"

/* ---------------------------------------------------------------- helpers */

/* "$FNN_TMP/test_model_file_<name>", so files never collide with other test programs'. */
static const char *tmp_path(const char *name)
{
    static char buf[8][1024];
    static int next;
    const char *dir = getenv("FNN_TMP");
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/test_model_file_%s", dir && *dir ? dir : "/tmp", name);
    return p;
}

static fnn_model *make_model(const char *spec, int c, int h, int w, uint64_t seed)
{
    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_create(spec, c, h, w, &err);
    if (!m)
        fail_msg("fnn_model_create: %s", err.msg);
    fnn_model_init(m, seed);
    return m;
}

/* Same spec, input shape and every tensor identical bit for bit. */
static void assert_same_model(const fnn_model *a, const fnn_model *b)
{
    assert_string_equal(fnn_model_spec(a), fnn_model_spec(b));
    int ca, ha, wa, cb, hb, wb;
    fnn_model_input_shape(a, &ca, &ha, &wa);
    fnn_model_input_shape(b, &cb, &hb, &wb);
    assert_int_equal(ca, cb);
    assert_int_equal(ha, hb);
    assert_int_equal(wa, wb);
    assert_int_equal(fnn_model_num_classes(a), fnn_model_num_classes(b));
    int n = fnn_model_num_tensors(a);
    assert_int_equal(n, fnn_model_num_tensors(b));
    for (int i = 0; i < n; i++) {
        fnn_tensor ta, tb;
        fnn_model_tensor(a, i, &ta);
        fnn_model_tensor(b, i, &tb);
        assert_string_equal(ta.name, tb.name);
        assert_int_equal(ta.size, tb.size);
        assert_ptr_not_equal(ta.data, tb.data);
        assert_memory_equal(ta.data, tb.data, ta.size * sizeof(float));
    }
}

/* A file as tensors and metadata that a test may change before writing it back. */
typedef struct {
    fnn_st_file st;
    fnn_st_tensor tensors[64];
    int ntensors;
    const char *keys[32];
    const char *values[32];
    int nmeta;
} editable;

static void edit_open(editable *e, const char *path)
{
    fnn_error err = {FNN_OK, ""};
    if (fnn_st_read(path, &e->st, &err) != FNN_OK)
        fail_msg("fnn_st_read: %s", err.msg);
    assert_true(e->st.ntensors < 64 && e->st.nmeta < 32);
    e->ntensors = e->st.ntensors;
    memcpy(e->tensors, e->st.tensors, (size_t)e->ntensors * sizeof *e->tensors);
    e->nmeta = e->st.nmeta;
    for (int i = 0; i < e->nmeta; i++) {
        e->keys[i] = e->st.meta_keys[i];
        e->values[i] = e->st.meta_values[i];
    }
}

static void edit_set_meta(editable *e, const char *key, const char *value)
{
    for (int i = 0; i < e->nmeta; i++)
        if (strcmp(e->keys[i], key) == 0) {
            e->values[i] = value;
            return;
        }
    e->keys[e->nmeta] = key;
    e->values[e->nmeta++] = value;
}

static void edit_drop_meta(editable *e, const char *key)
{
    for (int i = 0; i < e->nmeta; i++)
        if (strcmp(e->keys[i], key) == 0) {
            e->keys[i] = e->keys[e->nmeta - 1];
            e->values[i] = e->values[e->nmeta - 1];
            e->nmeta--;
            return;
        }
    fail_msg("no metadata key %s", key);
}

static fnn_st_tensor *edit_tensor(editable *e, const char *name)
{
    for (int i = 0; i < e->ntensors; i++)
        if (strcmp(e->tensors[i].name, name) == 0)
            return &e->tensors[i];
    fail_msg("no tensor %s", name);
    return NULL;
}

static void edit_write(editable *e, const char *path)
{
    fnn_error err = {FNN_OK, ""};
    if (fnn_st_write(path, e->tensors, e->ntensors, e->keys, e->values, e->nmeta, &err) != FNN_OK)
        fail_msg("fnn_st_write: %s", err.msg);
    fnn_st_free(&e->st);
}

/* Loading path must fail with FNN_ERR_FORMAT, a message naming the file and containing part,
 * and leave meta empty. */
static void expect_load_failure(const char *path, const char *part)
{
    fnn_error err = {FNN_OK, ""};
    fnn_model_meta meta = {(char *)"sentinel", (char *)"sentinel"};
    fnn_model *m = fnn_model_load(path, &meta, &err);
    if (m)
        fail_msg("%s loaded, but should fail with \"%s\"", path, part);
    assert_int_equal(err.status, FNN_ERR_FORMAT);
    assert_msg_has(&err, path);
    assert_msg_has(&err, part);
    assert_null(meta.class_names_json);
    assert_null(meta.history_json);
}

/* A saved default model, written once per test that needs one. */
static const char *saved_default(uint64_t seed)
{
    const char *path = tmp_path("valid.safetensors");
    fnn_model *m = make_model(FNN_DEFAULT_ARCH, 1, 28, 28, seed);
    fnn_error err = {FNN_OK, ""};
    if (fnn_model_save(m, NULL, path, &err) != FNN_OK)
        fail_msg("fnn_model_save: %s", err.msg);
    fnn_model_free(m);
    return path;
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip_default(void **state)
{
    (void)state;
    fnn_model *m = make_model(FNN_DEFAULT_ARCH, 1, 28, 28, 42);
    const char *path = tmp_path("default.safetensors");
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_model_save(m, NULL, path, &err), FNN_OK);

    fnn_model_meta meta;
    fnn_model *back = fnn_model_load(path, &meta, &err);
    if (!back)
        fail_msg("fnn_model_load: %s", err.msg);
    assert_same_model(m, back);
    /* Without meta, the Fashion-MNIST names are stored. */
    cJSON *names = cJSON_Parse(meta.class_names_json);
    assert_true(cJSON_IsArray(names));
    assert_int_equal(cJSON_GetArraySize(names), 10);
    const char *const *fashion = fnn_fashion_class_names();
    for (int i = 0; i < 10; i++)
        assert_string_equal(cJSON_GetArrayItem(names, i)->valuestring, fashion[i]);
    cJSON_Delete(names);
    assert_null(meta.history_json);
    fnn_model_meta_free(&meta);
    assert_null(meta.class_names_json);
    fnn_model_meta_free(&meta); /* harmless twice */
    fnn_model_free(back);

    /* meta may be NULL when loading too. */
    back = fnn_model_load(path, NULL, &err);
    assert_non_null(back);
    assert_same_model(m, back);
    fnn_model_free(back);
    fnn_model_free(m);
}

static void test_round_trip_meta(void **state)
{
    (void)state;
    fnn_model *m = make_model("flatten dense:7:relu dropout:0.25 dense:3:softmax", 2, 5, 3, 7);
    const char *names = "[\"cat\", \"dog\", \"\\\"odd\\\" \\u00e9\"]";
    const char *history = "{\"loss\": [0.9, 0.5], \"val_accuracy\": [0.5, 0.75]}";
    fnn_model_meta meta = {(char *)names, (char *)history};
    const char *path = tmp_path("meta.safetensors");
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_model_save(m, &meta, path, &err), FNN_OK);

    fnn_model_meta back_meta;
    fnn_model *back = fnn_model_load(path, &back_meta, &err);
    if (!back)
        fail_msg("fnn_model_load: %s", err.msg);
    assert_same_model(m, back);
    assert_string_equal(back_meta.class_names_json, names);
    assert_string_equal(back_meta.history_json, history);
    fnn_model_meta_free(&back_meta);
    fnn_model_free(back);

    /* A meta with NULL fields behaves like no meta; 3 classes get index names. */
    fnn_model_meta empty = {NULL, NULL};
    assert_int_equal(fnn_model_save(m, &empty, path, &err), FNN_OK);
    back = fnn_model_load(path, &back_meta, &err);
    assert_non_null(back);
    assert_string_equal(back_meta.class_names_json, "[\"0\",\"1\",\"2\"]");
    assert_null(back_meta.history_json);
    fnn_model_meta_free(&back_meta);
    fnn_model_free(back);
    fnn_model_free(m);
}

/* What other programs read: the metadata fields and the tensors in model order. */
static void test_file_contents(void **state)
{
    (void)state;
    fnn_model *m = make_model(FNN_DEFAULT_ARCH, 1, 28, 28, 42);
    const char *history = "{\"loss\": [1.0]}";
    fnn_model_meta meta = {NULL, (char *)history};
    const char *path = tmp_path("contents.safetensors");
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_model_save(m, &meta, path, &err), FNN_OK);

    fnn_st_file st;
    assert_int_equal(fnn_st_read(path, &st, &err), FNN_OK);
    assert_string_equal(fnn_st_meta(&st, "format"), "fnn");
    assert_string_equal(fnn_st_meta(&st, "fnn_version"), FNN_VERSION);
    assert_string_equal(fnn_st_meta(&st, "arch"), fnn_model_spec(m));
    assert_string_equal(fnn_st_meta(&st, "input_shape"), "[1, 28, 28]");
    assert_string_equal(fnn_st_meta(&st, "history"), history);
    assert_non_null(fnn_st_meta(&st, "class_names"));
    cJSON *norm = cJSON_Parse(fnn_st_meta(&st, "normalization"));
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(norm, "scale");
    assert_true(cJSON_IsNumber(scale));
    assert_true(scale->valuedouble == 1.0 / 255.0);
    cJSON_Delete(norm);

    static const struct {
        const char *name;
        int rank;
        size_t shape[2];
    } want[] = {
        {"layers.1.kernel", 2, {784, 128}}, {"layers.1.bias", 1, {128}},
        {"layers.3.kernel", 2, {128, 64}},  {"layers.3.bias", 1, {64}},
        {"layers.4.kernel", 2, {64, 10}},   {"layers.4.bias", 1, {10}},
    };
    assert_int_equal(st.ntensors, 6);
    assert_int_equal(fnn_model_num_tensors(m), 6);
    for (int i = 0; i < 6; i++) {
        const fnn_st_tensor *t = &st.tensors[i];
        assert_string_equal(t->name, want[i].name);
        assert_int_equal(t->rank, want[i].rank);
        for (int d = 0; d < t->rank; d++)
            assert_int_equal(t->shape[d], want[i].shape[d]);
        fnn_tensor mt;
        fnn_model_tensor(m, i, &mt);
        assert_memory_equal(t->data, mt.data, mt.size * sizeof(float));
    }
    fnn_st_free(&st);
    fnn_model_free(m);
}

/* Saving refuses metadata that loading would refuse, and leaves no file behind. */
static void test_save_rejects_bad_meta(void **state)
{
    (void)state;
    fnn_model *m = make_model(FNN_DEFAULT_ARCH, 1, 28, 28, 1);
    const char *path = tmp_path("never_written.safetensors");
    unlink(path);
    fnn_error err = {FNN_OK, ""};
    fnn_model_meta nine = {(char *)"[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]", NULL};
    assert_int_equal(fnn_model_save(m, &nine, path, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "has 9 names but the model has 10 classes");
    fnn_model_meta not_json = {(char *)"[\"a\",", NULL};
    assert_int_equal(fnn_model_save(m, &not_json, path, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "class names is not valid JSON");
    fnn_model_meta bad_history = {NULL, (char *)"[1, 2]"};
    assert_int_equal(fnn_model_save(m, &bad_history, path, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "history is not a JSON object");
    assert_int_equal(access(path, F_OK), -1);
    fnn_model_free(m);
}

/* ---------------------------------------------------------------- files that must not load */

static void test_rejects_wrong_tensors(void **state)
{
    (void)state;
    const char *valid = saved_default(3);
    const char *path = tmp_path("bad_tensors.safetensors");
    editable e;
    float eleven[11] = {0};

    edit_open(&e, valid);
    fnn_st_tensor *bias = edit_tensor(&e, "layers.4.bias");
    bias->shape[0] = 11;
    bias->size = 11;
    bias->data = eleven;
    edit_write(&e, path);
    expect_load_failure(path, "tensor \"layers.4.bias\" has shape [11] but the model needs [10]");

    edit_open(&e, valid);
    fnn_st_tensor *kernel = edit_tensor(&e, "layers.3.kernel");
    kernel->shape[0] = 64; /* (64, 128): the right size, transposed */
    kernel->shape[1] = 128;
    edit_write(&e, path);
    expect_load_failure(path, "\"layers.3.kernel\" has shape [64, 128] but the model needs "
                              "[128, 64]");

    edit_open(&e, valid);
    kernel = edit_tensor(&e, "layers.1.kernel");
    kernel->rank = 3;
    kernel->shape[0] = 1;
    kernel->shape[1] = 784;
    kernel->shape[2] = 128;
    edit_write(&e, path);
    expect_load_failure(path, "has shape [1, 784, 128] but the model needs [784, 128]");

    edit_open(&e, valid);
    fnn_st_tensor *gone = edit_tensor(&e, "layers.3.kernel");
    e.ntensors--;
    *gone = e.tensors[e.ntensors];
    edit_write(&e, path);
    expect_load_failure(path, "tensor \"layers.3.kernel\" of the model is missing");

    edit_open(&e, valid);
    e.tensors[e.ntensors] = e.tensors[0];
    e.tensors[e.ntensors++].name = "layers.2.kernel";
    edit_write(&e, path);
    expect_load_failure(path, "tensor \"layers.2.kernel\" is not part of the model");

    float bad[10] = {0, 0, 0, NAN, 0, 0, 0, 0, 0, 0};
    edit_open(&e, valid);
    edit_tensor(&e, "layers.4.bias")->data = bad;
    edit_write(&e, path);
    expect_load_failure(path, "tensor \"layers.4.bias\": element 3 is nan");
}

static void test_rejects_bad_metadata(void **state)
{
    (void)state;
    const char *valid = saved_default(4);
    const char *path = tmp_path("bad_meta.safetensors");
    static const struct {
        const char *key, *value; /* value NULL: the key is removed */
        const char *message;
    } cases[] = {
        {"arch", "flatten dense:128:relu bogus:3 dense:10:softmax", "bogus"},
        {"arch", "flatten dense:128:relu dropout:0.5", "metadata arch"},
        /* A valid spec whose layers are numbered differently from the file's. */
        {"arch", "flatten dense:128:relu dense:64:relu dense:10:softmax",
         "tensor \"layers.2.kernel\" of the model is missing"},
        {"arch", "flatten dense:128:relu dropout:0.5 dense:32:relu dense:10:softmax",
         "tensor \"layers.3.kernel\" has shape [128, 64] but the model needs [128, 32]"},
        {"arch", NULL, "no \"arch\" field"},
        {"format", "pytorch", "format is \"pytorch\", not \"fnn\""},
        {"format", NULL, "not an fnn model file"},
        {"input_shape", "[1, 28]", "input_shape \"[1, 28]\" is not a list of three integers"},
        {"input_shape", "[0, 28, 28]", "input_shape \"[0, 28, 28]\""},
        {"input_shape", "[1, 28, 5000]", "input_shape \"[1, 28, 5000]\""},
        {"input_shape", "[1, 28, 28.5]", "input_shape"},
        {"input_shape", "1x28x28", "input_shape"},
        {"input_shape", "[1, 20, 20]", "\"layers.1.kernel\" has shape [784, 128] but the model "
                                       "needs [400, 128]"},
        {"input_shape", NULL, "no \"input_shape\" field"},
        {"normalization", "{\"scale\": 1}", "normalization"},
        {"normalization", "{\"mean\": 0.5}", "normalization"},
        {"class_names", "[\"a\"]", "class_names has 1 names but the model has 10 classes"},
        {"class_names", "[1,2,3,4,5,6,7,8,9,10]", "class_names entry 0 is not a string"},
        {"class_names", "{\"a\": 1}", "class_names is not a JSON list"},
        {"class_names", "T-shirt", "class_names is not valid JSON"},
        {"class_names", NULL, "no \"class_names\" field"},
        {"history", "[0.5]", "history is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        editable e;
        edit_open(&e, valid);
        if (cases[i].value)
            edit_set_meta(&e, cases[i].key, cases[i].value);
        else
            edit_drop_meta(&e, cases[i].key);
        edit_write(&e, path);
        print_message("case %zu: %s\n", i, cases[i].message);
        expect_load_failure(path, cases[i].message);
    }
}

/* Every prefix of a valid file fails to load with a message, whatever the cut. */
static void test_rejects_truncated_copies(void **state)
{
    (void)state;
    const char *valid = saved_default(5);
    FILE *f = fopen(valid, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len > 1000);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    unsigned char *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    assert_int_equal(fclose(f), 0);

    const char *path = tmp_path("truncated.safetensors");
    const long cuts[] = {0, 4, 8, 9, 100, len / 2, len - 4, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE *g = fopen(path, "wb");
        assert_non_null(g);
        assert_int_equal(fwrite(b, 1, (size_t)cuts[i], g), (size_t)cuts[i]);
        assert_int_equal(fclose(g), 0);
        expect_load_failure(path, "");
    }
    free(b);

    fnn_error err = {FNN_OK, ""};
    assert_null(fnn_model_load(tmp_path("no_such_file.safetensors"), NULL, &err));
    assert_int_equal(err.status, FNN_ERR_IO);
    assert_msg_has(&err, "no_such_file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_default),
        cmocka_unit_test(test_round_trip_meta),
        cmocka_unit_test(test_file_contents),
        cmocka_unit_test(test_save_rejects_bad_meta),
        cmocka_unit_test(test_rejects_wrong_tensors),
        cmocka_unit_test(test_rejects_bad_metadata),
        cmocka_unit_test(test_rejects_truncated_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
