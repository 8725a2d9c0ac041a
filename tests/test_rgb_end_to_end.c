/* An RGB model end to end through every command, as a user runs them (posix_spawn): a folder
 * tree of colour PNG and JPEG files of mixed sizes, three classes that only colour tells apart
 * (their colours have the same grey level), trained with --image-size 16x16 and --normalize
 * standardize, then summary, eval, predict, explain, robustness, report, export --onnx and a
 * tiny search, each output checked: accuracy above chance, class names from the folders, shape
 * 3x16x16, files that exist and parse. Then transfer learning across data sets: --init-from a
 * model trained on grey 28x28 IDX data refused on the colour folder (its first layer does not
 * fit), and a grey fine-tune on 20x20 images that loads the conv kernels. */
#define _GNU_SOURCE /* memmem */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fnn.h"

#define PATH_CAP 1024
#define RUN_TIMEOUT_S 300
#define PYTHON "/usr/bin/python3"

static char g_base[PATH_CAP / 2]; /* $FNN_TMP/test_rgb_end_to_end.work: all this program writes */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

/* ---------------------------------------------------------------- the colour folder tree */

enum { K = 3, NTRAIN = 40, NTEST = 12, NPREDICT = 3, SIDE = 16 };
#define ARCH "conv2d:8:3:relu maxpool:2 flatten dense:3:softmax"

/* In the folders' byte order, which is the class order. The colours' grey levels (stb's luma,
 * (77 R + 150 G + 29 B) >> 8) are 114, 112 and 110: read grey, the classes look alike. */
static const char *const classes[K] = {"blue", "green", "red"};
static const uint8_t colours[K][3] = {{110, 90, 255}, {60, 150, 60}, {205, 70, 70}};

static struct {
    char data[PATH_CAP];  /* the folder tree: train/CLASS/..., test/CLASS/... */
    char model[PATH_CAP]; /* trained on it */
    char predict[K * NPREDICT][PATH_CAP]; /* image files outside the tree, class i / NPREDICT */
    double accuracy;      /* fnn eval's on the test split */
    int trained;
} g;

static uint32_t g_rng = 12345u;

static int below(int n)
{
    g_rng = g_rng * 1664525u + 1013904223u;
    return (int)((g_rng >> 8) % (uint32_t)n);
}

/* An image of class k, h x w, (h, w, 3) as image files store it: a disc or a rectangle of the
 * class's colour (with noise) somewhere near the middle, on dark noise. */
static uint8_t *draw(int k, int h, int w)
{
    uint8_t *px = malloc((size_t)h * w * 3);
    assert_non_null(px);
    int small = h < w ? h : w, disc = below(2);
    int r = small / 4 + below(small / 6 + 1);
    int cy = h / 2 + below(h / 4 + 1) - h / 8, cx = w / 2 + below(w / 4 + 1) - w / 8;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int in = disc ? (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r
                          : abs(y - cy) <= r && abs(x - cx) <= r;
            for (int c = 0; c < 3; c++) {
                int v = in ? colours[k][c] + below(31) - 15 : 20 + below(40);
                px[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    return px;
}

/* An image of class k of a random size from 14 to 41 pixels a side, as PNG (every fifth as
 * JPEG) at path (without extension); the path written goes to out. */
static void write_image(const char *path, int k, int i, char *out)
{
    int h = 14 + below(28), w = 14 + below(28);
    uint8_t *px = draw(k, h, w);
    int ok;
    if (i % 5 == 4)
        ok = stbi_write_jpg(pathf(out, "%s.jpg", path), w, h, 3, px, 95);
    else
        ok = stbi_write_png(pathf(out, "%s.png", path), w, h, 3, px, w * 3);
    if (!ok)
        fail_msg("cannot write %s", out);
    free(px);
}

static void make_tree(void)
{
    char dir[PATH_CAP], path[PATH_CAP], out[PATH_CAP];
    fresh_dir(pathf(g.data, "%s/my_images", g_base));
    static const char *const splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        fresh_dir(pathf(dir, "%s/%s", g.data, splits[s]));
        for (int k = 0; k < K; k++) {
            fresh_dir(pathf(dir, "%s/%s/%s", g.data, splits[s], classes[k]));
            for (int i = 0; i < (s ? NTEST : NTRAIN); i++)
                write_image(pathf(path, "%s/img%03d", dir, i), k, i, out);
        }
    }
    for (int k = 0; k < K; k++)
        for (int i = 0; i < NPREDICT; i++)
            write_image(pathf(path, "%s/photo_%s_%d", g_base, classes[k], i), k, 0,
                        g.predict[k * NPREDICT + i]);
}

/* ---------------------------------------------------------------- checks */

/* The JSON array of strings arr holds exactly the class names, in order. */
static void expect_class_names(const cJSON *arr, const char *what)
{
    if (cJSON_GetArraySize(arr) != K)
        fail_msg("%s: %d class names, expected %d", what, cJSON_GetArraySize(arr), K);
    for (int k = 0; k < K; k++) {
        const cJSON *v = cJSON_GetArrayItem(arr, k);
        if (!cJSON_IsString(v) || strcmp(v->valuestring, classes[k]))
            fail_msg("%s: class %d is %s, expected %s", what, k,
                     cJSON_IsString(v) ? v->valuestring : "not a string", classes[k]);
    }
}

/* A JSON array of numbers holding exactly want[0..n). */
static void expect_ints(const cJSON *arr, const int *want, int n, const char *what)
{
    if (cJSON_GetArraySize(arr) != n)
        fail_msg("%s: %d values, expected %d", what, cJSON_GetArraySize(arr), n);
    for (int i = 0; i < n; i++)
        if (cJSON_GetArrayItem(arr, i)->valuedouble != want[i])
            fail_msg("%s: value %d is %g, expected %d", what, i,
                     cJSON_GetArrayItem(arr, i)->valuedouble, want[i]);
}

/* Whether the PNG at path holds a pixel that only a colour image can give: green well above
 * red and blue (no grey, and no colour of the heat maps, which run from black through purple,
 * red and orange to yellow). */
static int png_has_green(const char *path)
{
    int w, h, n;
    uint8_t *px = stbi_load(path, &w, &h, &n, 3);
    if (!px)
        fail_msg("%s is not a readable PNG: %s", path, stbi_failure_reason());
    int found = 0;
    for (size_t i = 0; i < (size_t)w * h && !found; i++) {
        int r = px[3 * i], gr = px[3 * i + 1], b = px[3 * i + 2];
        found = gr > r + 50 && gr > b + 50;
    }
    stbi_image_free(px);
    return found;
}

/* ---------------------------------------------------------------- the commands */

static void need_model(void)
{
    if (!g.trained)
        fail_msg("the model was not trained (see test_train)");
}

static void test_train(void **state)
{
    (void)state;
    make_tree();
    pathf(g.model, "%s/colour.safetensors", g_base);
    run_t r = FNN("train", "--data", g.data, "--image-size", "16x16", "--normalize", "standardize",
                  "--arch", ARCH, "--epochs", "12", "--batch-size", "16", "--seed", "1",
                  "--threads", "2", "--out", g.model);
    expect_code(&r, 0);
    /* The header says what was read: an image folder of 3 classes made 3x16x16. */
    expect_contains(r.out, "stdout", "image folder");
    expect_contains(r.out, "stdout", "3x16x16");
    run_free(&r);
    assert_true(file_exists(g.model));
    g.trained = 1;
}

static void test_summary(void **state)
{
    (void)state;
    need_model();
    run_t r = FNN("summary", g.model, "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    static const int shape[3] = {3, SIDE, SIDE};
    expect_ints(get(doc, "input_shape"), shape, 3, "summary input_shape");
    expect_class_names(get(doc, "class_names"), "summary class_names");
    cJSON_Delete(doc);
    run_free(&r);
    r = FNN("summary", g.model);
    expect_code(&r, 0);
    expect_contains(r.out, "summary", "green");
    run_free(&r);
}

static void test_eval(void **state)
{
    (void)state;
    need_model();
    /* No --image-size: the images, of mixed sizes, are read as the model takes its input. */
    run_t r = FNN("eval", g.model, "--data", g.data, "--json", "--threads", "2");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *test = get(doc, "test");
    g.accuracy = get_number(test, "accuracy");
    assert_int_equal((int)get_number(test, "images"), K * NTEST);
    if (g.accuracy < 0.8)
        fail_msg("test accuracy %g: chance is %g", g.accuracy, 1.0 / K);
    const cJSON *c = get(test, "classes");
    for (int k = 0; k < K; k++)
        assert_string_equal(get(cJSON_GetArrayItem(c, k), "label")->valuestring, classes[k]);
    cJSON_Delete(doc);
    run_free(&r);
}

/* Image files of other sizes than the tree's, in colour: each gets its class. Read grey, the
 * three colours would look alike and most of these would be wrong. */
static void test_predict(void **state)
{
    (void)state;
    need_model();
    const char *args[K * NPREDICT + 8];
    int a = 0;
    args[a++] = "predict";
    args[a++] = g.model;
    for (int i = 0; i < K * NPREDICT; i++)
        args[a++] = g.predict[i];
    args[a++] = "--json";
    args[a] = NULL;
    run_t r = run_argv(args);
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *images = get(doc, "images");
    assert_int_equal(cJSON_GetArraySize(images), K * NPREDICT);
    for (int i = 0; i < K * NPREDICT; i++) {
        cJSON *o = cJSON_GetArrayItem(images, i);
        assert_string_equal(get(o, "path")->valuestring, g.predict[i]);
        const char *label = get(cJSON_GetArrayItem(get(o, "top"), 0), "label")->valuestring;
        if (strcmp(label, classes[i / NPREDICT]))
            fail_msg("%s: predicted %s", g.predict[i], label);
    }
    cJSON_Delete(doc);
    run_free(&r);
}

/* No --image-size here: explain reads the data as the model takes it. */
static void test_explain(void **state)
{
    (void)state;
    need_model();
    char dir[PATH_CAP], path[PATH_CAP];
    pathf(dir, "%s/maps", g_base);
    run_t r = FNN("explain", g.model, "--data", g.data, "--json", "--out-dir", dir, "--threads",
                  "2");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    assert_int_equal((int)get_number(doc, "images"), K * NTEST);
    cJSON *list = get(get(doc, "saliency"), "classes");
    assert_int_equal(cJSON_GetArraySize(list), K);
    for (int k = 0; k < K; k++) {
        cJSON *e = cJSON_GetArrayItem(list, k), *map = get(e, "map");
        assert_string_equal(get(e, "label")->valuestring, classes[k]);
        assert_int_equal(cJSON_GetArraySize(map), SIDE);
        double sum = 0;
        for (int y = 0; y < SIDE; y++) {
            cJSON *row = cJSON_GetArrayItem(map, y);
            assert_int_equal(cJSON_GetArraySize(row), SIDE);
            for (int x = 0; x < SIDE; x++) {
                double v = cJSON_GetArrayItem(row, x)->valuedouble;
                assert_true(v >= 0 && isfinite(v));
                sum += v;
            }
        }
        assert_true(sum > 0);
    }
    cJSON *occ = get(doc, "occlusion");
    assert_true(get_number(occ, "base_accuracy") == g.accuracy);
    assert_int_equal(cJSON_GetArraySize(get(occ, "drop")), SIDE);
    for (int i = 0; i <= K; i++) {
        char name[32];
        size_t len;
        if (i < K)
            snprintf(name, sizeof name, "saliency_%d", i);
        else
            snprintf(name, sizeof name, "occlusion");
        char *pgm = read_all(pathf(path, "%s/%s.pgm", dir, name), &len);
        if (!pgm)
            fail_msg("%s is missing", path);
        assert_int_equal(strncmp(pgm, "P5\n16 16\n255\n", 13), 0);
        assert_int_equal(len, 13 + SIDE * SIDE);
        free(pgm);
        assert_true(file_exists(pathf(path, "%s/%s.csv", dir, name)));
    }
    cJSON_Delete(doc);
    run_free(&r);
}

static void test_robustness(void **state)
{
    (void)state;
    need_model();
    run_t r = FNN("robustness", g.model, "--data", g.data, "--json", "--threads", "2");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *list = get(doc, "perturbations");
    assert_int_equal(cJSON_GetArraySize(list), FNN_PERTURB_COUNT);
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        cJSON *acc = get(cJSON_GetArrayItem(list, p), "accuracy");
        if (cJSON_GetArrayItem(acc, 0)->valuedouble != g.accuracy)
            fail_msg("%s: %.17g unperturbed, fnn eval %.17g", fnn_perturbation_name(p),
                     cJSON_GetArrayItem(acc, 0)->valuedouble, g.accuracy);
    }
    cJSON_Delete(doc);
    run_free(&r);
}

/* The report's galleries show the images in colour: green appears in the mistakes (if any)
 * and the saliency figure (the class means, under the maps). */
static void test_report(void **state)
{
    (void)state;
    need_model();
    char html[PATH_CAP];
    pathf(html, "%s/report.html", g_base);
    run_t r = FNN("report", g.model, "--data", g.data, "--out", html, "--json", "--threads", "2",
                  "--saliency-images", "6", "--occlusion-images", "20");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    const cJSON *m = get(doc, "models")->child;
    assert_non_null(m);
    assert_true(get_number(get(m, "test"), "accuracy") == g.accuracy);
    const cJSON *c = get(get(m, "test"), "classes");
    for (int k = 0; k < K; k++)
        assert_string_equal(get(cJSON_GetArrayItem(c, k), "label")->valuestring, classes[k]);
    int saliency = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, get(m, "figures"))
    {
        const char *png = get(f, "png")->valuestring, *name = get(f, "name")->valuestring;
        assert_true(file_exists(png) && file_exists(get(f, "svg")->valuestring));
        if (strstr(name, "saliency")) {
            saliency = 1;
            if (!png_has_green(png))
                fail_msg("%s: no green in the saliency figure: the images are not in colour",
                         png);
        }
    }
    assert_true(saliency);
    char *page = read_all(html, NULL);
    assert_non_null(page);
    expect_contains(page, "report.html", "green");
    free(page);
    cJSON_Delete(doc);
    run_free(&r);
}

/* The ONNX file: (batch, 3, 16, 16) pixels in, three probabilities out, the normalisation
 * nodes and the class names inside; ONNX's own checker accepts it where python3-onnx is. */
static void test_export_onnx(void **state)
{
    (void)state;
    need_model();
    char onnx[PATH_CAP];
    pathf(onnx, "%s/colour.onnx", g_base);
    run_t r = FNN("export", g.model, "--onnx", onnx);
    expect_code(&r, 0);
    run_free(&r);
    size_t len;
    char *bytes = read_all(onnx, &len);
    assert_non_null(bytes);
    assert_true(len > 1000);
    assert_non_null(memmem(bytes, len, "input_mean", 10));
    assert_non_null(memmem(bytes, len, "green", 5));
    free(bytes);
    char *check[] = {PYTHON, "-c", NULL, onnx, NULL};
    char *probe[] = {PYTHON, "-c", "import onnx", NULL};
    int have_onnx = 0;
    if (file_exists(PYTHON)) {
        r = run_prog(PYTHON, probe, 60);
        have_onnx = r.code == 0;
        run_free(&r);
    }
    if (!have_onnx) {
        print_message("note: no python3-onnx: the ONNX checker was not run\n");
        return;
    }
    check[2] = "import sys, onnx\n"
               "m = onnx.load(sys.argv[1])\n"
               "onnx.checker.check_model(m)\n"
               "def dims(v): return [x.dim_value or x.dim_param for x in\n"
               "                     v.type.tensor_type.shape.dim][1:]\n"
               "print(dims(m.graph.input[0]), dims(m.graph.output[0]))\n";
    r = run_prog(PYTHON, check, 120);
    if (r.code)
        fail_msg("ONNX checker: %s", r.err);
    expect_contains(r.out, "checker", "[3, 16, 16] [3]");
    run_free(&r);
}

/* Two trials of a tiny grid on the colour folder: each builds the architecture for 3x16x16
 * images and 3 classes. */
static void test_search(void **state)
{
    (void)state;
    need_model();
    char dir[PATH_CAP];
    pathf(dir, "%s/search", g_base);
    run_t r = FNN("search", "--data", g.data, "--image-size", "16x16", "--grid",
                  "lr=0.001,0.003", "--arch", ARCH, "--epochs", "2", "--workers", "2", "--out",
                  dir, "--json");
    if (r.code)
        fail_msg("fnn search: exit %d\n%.3000s", r.code, r.err);
    cJSON *doc = parse_json(r.out);
    assert_int_equal((int)get_number(doc, "trials_run"), 2);
    const cJSON *t;
    cJSON_ArrayForEach(t, get(doc, "trials"))
        assert_string_equal(get(t, "status")->valuestring, "ok");
    const cJSON *test = get(get(doc, "final_test"), "test");
    assert_int_equal((int)get_number(test, "images"), K * NTEST);
    const cJSON *c = get(test, "classes");
    for (int k = 0; k < K; k++)
        assert_string_equal(get(cJSON_GetArrayItem(c, k), "label")->valuestring, classes[k]);
    cJSON_Delete(doc);
    run_free(&r);
}

/* ---------------------------------------------------------------- transfer across data sets */

/* A conv model trained on grey 28x28 IDX data (10 classes): refused on the colour folder, whose
 * images its first layer does not fit, naming both shapes; fine-tuned on grey 20x20 images, its
 * conv kernels load (and, frozen, stay as they were) while the dense head, which sees another
 * number of features, starts afresh. */
static void test_transfer_across_data_sets(void **state)
{
    (void)state;
    need_model();
    char grey[PATH_CAP], small[PATH_CAP], pre[PATH_CAP], ft[PATH_CAP], refused[PATH_CAP];
    char p[PATH_CAP];
    pathf(grey, "%s/grey28", g_base);
    make_data_dir(grey);
    pathf(pre, "%s/grey28.safetensors", g_base);
    const char *arch = "conv2d:4:3:relu maxpool:2 flatten dense:10:softmax";
    run_t r = FNN("train", "--data", grey, "--arch", arch, "--epochs", "1", "--threads", "2",
                  "--quiet", "--out", pre);
    expect_code(&r, 0);
    run_free(&r);

    pathf(refused, "%s/refused.safetensors", g_base);
    r = FNN("train", "--data", g.data, "--image-size", "16x16", "--arch", ARCH, "--epochs", "1",
            "--threads", "2", "--init-from", pre, "--out", refused);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", pre);
    expect_contains(r.err, "stderr", "1x28x28");
    expect_contains(r.err, "stderr", "3x16x16");
    assert_false(file_exists(refused));
    run_free(&r);

    fresh_dir(pathf(small, "%s/grey20", g_base));
    write_images(pathf(p, "%s/train-images-idx3-ubyte", small), SYN_TRAIN, 20, 0);
    write_labels(pathf(p, "%s/train-labels-idx1-ubyte", small), SYN_TRAIN, SYN_TRAIN, -1);
    write_images(pathf(p, "%s/t10k-images-idx3-ubyte", small), SYN_TEST, 20, 0);
    write_labels(pathf(p, "%s/t10k-labels-idx1-ubyte", small), SYN_TEST, SYN_TEST, -1);
    pathf(ft, "%s/grey20.safetensors", g_base);
    r = FNN("train", "--data", small, "--arch", arch, "--epochs", "1", "--threads", "2",
            "--init-from", pre, "--freeze", "1", "--json", "--out", ft);
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *transfer = get(doc, "transfer");
    /* The conv kernel and bias, and the head's bias (10 classes both); not the head's kernel,
     * which sees 4x9x9 features instead of 4x13x13. */
    assert_int_equal((int)get_number(transfer, "loaded"), 3);
    const cJSON *t = get(transfer, "tensors");
    assert_int_equal(cJSON_GetArraySize(t), 4);
    const cJSON *head = cJSON_GetArrayItem(t, 2);
    assert_string_equal(get(head, "name")->valuestring, "layers.3.kernel");
    assert_true(cJSON_IsFalse(get(head, "loaded")));
    expect_contains(get(head, "reason")->valuestring, "reason", "(676, 10)");
    cJSON_Delete(doc);
    run_free(&r);
    st_file a, b;
    st_read(pre, &a);
    st_read(ft, &b);
    size_t la, lb;
    const char *ka = st_tensor(&a, get(a.header, "layers.0.kernel"), &la);
    const char *kb = st_tensor(&b, get(b.header, "layers.0.kernel"), &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ka, kb, la);
    st_free(&a);
    st_free(&b);
}

static int setup(void **state)
{
    (void)state;
    return work_dir(g_base, sizeof g_base, "test_rgb_end_to_end");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_predict),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_robustness),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_export_onnx),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_transfer_across_data_sets),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
