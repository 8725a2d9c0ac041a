/* fnn predict and image input: test images written out as PNG get the classes fnn_evaluate
 * gives them; JPEG, PGM and BMP decode; --invert; odd sizes are resized by area averaging; a
 * colour model reads image files in colour and IDX files as three equal planes; a folder's
 * image files are read in name order; bad or missing files fail with their name. The CLI runs as a user would run it (posix_spawn). */
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
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stb/stb_image_write.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fnn.h"

#define PATH_CAP 1024
#define RUN_TIMEOUT_S 60
#define NIMG 12 /* test images written out */

static char g_base[PATH_CAP / 2]; /* $FNN_TMP/test_predict.work: everything this program writes */
static char g_model[PATH_CAP];
static fnn_dataset g_test;    /* the first NIMG Fashion-MNIST test images */
static int g_pred[NIMG];      /* fnn_evaluate's classes for them */
static float g_probs[NIMG * 10];

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

/* ---------------------------------------------------------------- files */

/* Binary PGM (P5), written by hand: stb writes no PGM. */
static void write_pgm(const char *path, const uint8_t *pix, int w, int h)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    fprintf(f, "P5\n%d %d\n255\n", w, h);
    assert_int_equal(fwrite(pix, 1, (size_t)w * h, f), (size_t)w * h);
    assert_int_equal(fclose(f), 0);
}

/* ---------------------------------------------------------------- the model and the images */

#define NEED_MODEL()                                                                             \
    do {                                                                                         \
        if (!g_model[0]) {                                                                       \
            print_message("skipped: %s is absent (Debian package dataset-fashion-mnist)\n",      \
                          FNN_DEFAULT_DATA_DIR);                                                 \
            skip();                                                                              \
        }                                                                                        \
    } while (0)

/* A short training on real images, so that the classes mean something; the class names go
 * into the file as fnn train writes them. */
static int setup(void **state)
{
    if (work_dir(g_base, sizeof g_base, "test_predict") != 0)
        return -1;
    fnn_error err;
    fnn_dataset train, test;
    if (fnn_dataset_load(FNN_DEFAULT_DATA_DIR, "train", &train, &err) != FNN_OK)
        return 0; /* the tests that need the model skip */
    if (fnn_dataset_load(FNN_DEFAULT_DATA_DIR, "t10k", &test, &err) != FNN_OK)
        return -1;
    fnn_model *m = fnn_model_create(FNN_DEFAULT_ARCH, 1, 28, 28, &err);
    fnn_model_init(m, 1);
    fnn_dataset part = fnn_dataset_view(&train, 0, 3000), none = {0};
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 1;
    cfg.threads = 1;
    if (fnn_train(m, &part, &none, &cfg, NULL, &err) != FNN_OK)
        return -1;
    cJSON *names = cJSON_CreateStringArray(fnn_fashion_class_names(), 10);
    char *names_json = cJSON_PrintUnformatted(names);
    fnn_model_meta meta = {.class_names_json = names_json};
    snprintf(g_model, sizeof g_model, "%s/model.safetensors", g_base);
    int ok = fnn_model_save(m, &meta, g_model, &err) == FNN_OK;
    /* Own copies of the images: the view must outlive the set it came from. */
    g_test = (fnn_dataset){.n = NIMG, .c = 1, .h = 28, .w = 28, .nclasses = 10, .owns = 1};
    g_test.images = malloc(NIMG * 28 * 28);
    g_test.labels = malloc(NIMG);
    memcpy(g_test.images, test.images, NIMG * 28 * 28);
    memcpy(g_test.labels, test.labels, NIMG);
    ok = ok && fnn_evaluate(m, &g_test, 1, g_pred, g_probs, NULL, &err) == FNN_OK;
    free(names_json);
    cJSON_Delete(names);
    fnn_model_free(m);
    fnn_dataset_free(&train);
    fnn_dataset_free(&test);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    fnn_dataset_free(&g_test);
    return 0;
}

/* Test image i written as FORMAT ("png", "bmp", "pgm", "jpg"), inverted when asked. */
static const char *write_test_image(char *path, int i, const char *format, int invert)
{
    uint8_t pix[28 * 28];
    for (int p = 0; p < 28 * 28; p++)
        pix[p] = (uint8_t)(invert ? 255 - g_test.images[i * 28 * 28 + p]
                                  : g_test.images[i * 28 * 28 + p]);
    pathf(path, "%s/test%d%s.%s", g_base, i, invert ? "_inv" : "", format);
    int ok = 1;
    if (!strcmp(format, "png"))
        ok = stbi_write_png(path, 28, 28, 1, pix, 28);
    else if (!strcmp(format, "bmp"))
        ok = stbi_write_bmp(path, 28, 28, 1, pix);
    else if (!strcmp(format, "jpg"))
        ok = stbi_write_jpg(path, 28, 28, 1, pix, 100);
    else
        write_pgm(path, pix, 28, 28);
    if (!ok)
        fail_msg("cannot write %s", path);
    return path;
}

/* Runs fnn predict --json on the NIMG test images in `format` and checks each image's top
 * class against fnn_evaluate's, with the probability within tol. */
static void check_predict_matches_eval(const char *format, int invert, double tol)
{
    static char paths[NIMG][PATH_CAP];
    const char *args[NIMG + 8];
    int a = 0;
    args[a++] = "predict";
    args[a++] = g_model;
    args[a++] = "--json";
    if (invert)
        args[a++] = "--invert";
    for (int i = 0; i < NIMG; i++)
        args[a++] = write_test_image(paths[i], i, format, invert);
    args[a] = NULL;
    run_t r = run_argv(args);
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *images = get(doc, "images");
    assert_int_equal(cJSON_GetArraySize(images), NIMG);
    for (int i = 0; i < NIMG; i++) {
        cJSON *o = cJSON_GetArrayItem(images, i);
        assert_string_equal(get(o, "path")->valuestring, paths[i]);
        cJSON *top = get(o, "top");
        assert_int_equal(cJSON_GetArraySize(top), 3);
        cJSON *first = cJSON_GetArrayItem(top, 0);
        int idx = (int)get(first, "index")->valuedouble;
        double p = get(first, "probability")->valuedouble;
        if (idx != g_pred[i] || fabs(p - g_probs[i * 10 + idx]) > tol)
            fail_msg("%s: predict says class %d (%g), fnn_evaluate %d (%g)", paths[i], idx, p,
                     g_pred[i], (double)g_probs[i * 10 + g_pred[i]]);
        assert_string_equal(get(first, "label")->valuestring, fnn_fashion_class_names()[idx]);
        /* Largest first. */
        double p2 = get(cJSON_GetArrayItem(top, 1), "probability")->valuedouble;
        assert_true(p >= p2);
    }
    cJSON_Delete(doc);
    run_free(&r);
}

/* ---------------------------------------------------------------- tests */

static void test_png_matches_evaluate(void **state)
{
    NEED_MODEL();
    check_predict_matches_eval("png", 0, 1e-5);
}

static void test_lossless_formats_and_invert(void **state)
{
    NEED_MODEL();
    check_predict_matches_eval("bmp", 0, 1e-5);
    check_predict_matches_eval("pgm", 0, 1e-5);
    /* Dark on light, inverted back by --invert. */
    check_predict_matches_eval("png", 1, 1e-5);
}

/* JPEG is lossy: the decoded pixels stay close to the originals. */
static void test_jpeg_decodes(void **state)
{
    NEED_MODEL();
    char path[PATH_CAP];
    float x[28 * 28];
    fnn_error err;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fnn_image_load(write_test_image(path, i, "jpg", 0), 1, 28, 28, 0, x, &err),
                         FNN_OK);
        double worst = 0;
        for (int p = 0; p < 28 * 28; p++) {
            double d = fabs(x[p] - g_test.images[i * 28 * 28 + p] / 255.0);
            worst = d > worst ? d : worst;
        }
        if (worst > 0.1)
            fail_msg("%s: a pixel differs by %g from the original", path, worst);
    }
}

static void test_idx_file_batch(void **state)
{
    NEED_MODEL();
    char idx[PATH_CAP], lim[16];
    pathf(idx, "%s/t10k-images-idx3-ubyte.gz", FNN_DEFAULT_DATA_DIR);
    if (!file_exists(idx))
        pathf(idx, "%s/t10k-images-idx3-ubyte", FNN_DEFAULT_DATA_DIR);
    snprintf(lim, sizeof lim, "%d", NIMG);
    run_t r = FNN("predict", g_model, idx, "--limit", lim, "--top", "1", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *images = get(doc, "images");
    assert_int_equal(cJSON_GetArraySize(images), NIMG);
    for (int i = 0; i < NIMG; i++) {
        cJSON *o = cJSON_GetArrayItem(images, i);
        char want[PATH_CAP + 16];
        snprintf(want, sizeof want, "%s[%d]", idx, i);
        assert_string_equal(get(o, "path")->valuestring, want);
        cJSON *top = get(o, "top");
        assert_int_equal(cJSON_GetArraySize(top), 1);
        assert_int_equal((int)get(cJSON_GetArrayItem(top, 0), "index")->valuedouble, g_pred[i]);
    }
    cJSON_Delete(doc);
    run_free(&r);
}

static void test_text_output(void **state)
{
    NEED_MODEL();
    char path[PATH_CAP], want[PATH_CAP + 64];
    write_test_image(path, 0, "png", 0);
    run_t r = FNN("predict", g_model, path, "--top", "2");
    expect_code(&r, 0);
    snprintf(want, sizeof want, "%s: %s (", path, fnn_fashion_class_names()[g_pred[0]]);
    expect_contains(r.out, "stdout", want);
    run_free(&r);
}

/* --tta in predict and eval: none prints what no option prints, byte for byte; flip prints the
 * library's mirrored-and-averaged probabilities and metrics, and says so. */
static void test_tta(void **state)
{
    NEED_MODEL();
    char idx[PATH_CAP], lim[16];
    pathf(idx, "%s/t10k-images-idx3-ubyte.gz", FNN_DEFAULT_DATA_DIR);
    if (!file_exists(idx))
        pathf(idx, "%s/t10k-images-idx3-ubyte", FNN_DEFAULT_DATA_DIR);
    snprintf(lim, sizeof lim, "%d", NIMG);
    fnn_error err;
    fnn_model *m = fnn_model_load(g_model, NULL, &err);
    assert_non_null(m);
    float x[NIMG * 28 * 28], flip[NIMG * 10];
    for (int i = 0; i < NIMG * 28 * 28; i++)
        x[i] = g_test.images[i] / 255.0f;
    fnn_eval_options o = {.threads = 1, .tta = FNN_TTA_FLIP};
    assert_int_equal(fnn_model_predict_with(m, x, NIMG, &o, flip, &err), FNN_OK);
    fnn_metrics mt = {0};
    assert_int_equal(fnn_evaluate_with(m, &g_test, &o, NULL, NULL, &mt, &err), FNN_OK);

    run_t plain = FNN("predict", g_model, idx, "--limit", lim, "--top", "10", "--json");
    run_t none = FNN("predict", g_model, idx, "--limit", lim, "--top", "10", "--json", "--tta",
                     "none");
    run_t r = FNN("predict", g_model, idx, "--limit", lim, "--top", "10", "--json", "--tta",
                  "flip", "--threads", "1");
    expect_code(&plain, 0);
    expect_code(&none, 0);
    expect_code(&r, 0);
    assert_string_equal(plain.out, none.out);
    cJSON *doc = parse_json(r.out);
    assert_string_equal(get(doc, "tta")->valuestring, "flip");
    cJSON *images = get(doc, "images");
    double moved = 0.0;
    for (int i = 0; i < NIMG; i++) {
        cJSON *t;
        cJSON_ArrayForEach(t, get(cJSON_GetArrayItem(images, i), "top"))
        {
            int c = (int)get_number(t, "index");
            double p = get_number(t, "probability");
            assert_true(fabs(p - flip[i * 10 + c]) < 1e-6);
            moved = fmax(moved, fabs(p - g_probs[i * 10 + c]));
        }
    }
    assert_true(moved > 1e-4); /* the mirror changed something */
    cJSON_Delete(doc);
    run_free(&plain);
    run_free(&none);
    run_free(&r);

    plain = FNN("eval", g_model, "--limit", lim, "--json");
    none = FNN("eval", g_model, "--limit", lim, "--json", "--tta", "none");
    r = FNN("eval", g_model, "--limit", lim, "--json", "--tta", "flip", "--threads", "1");
    expect_code(&plain, 0);
    expect_code(&none, 0);
    expect_code(&r, 0);
    /* Only the tta field differs between the two. */
    cJSON *a = parse_json(plain.out), *b = parse_json(none.out);
    assert_string_equal(get(b, "tta")->valuestring, "none");
    assert_true(cJSON_Compare(a, b, 1));
    cJSON_Delete(a);
    cJSON_Delete(b);
    doc = parse_json(r.out);
    assert_string_equal(get(doc, "tta")->valuestring, "flip");
    assert_true(fabs(get_number(get(doc, "test"), "loss") - mt.loss) < 1e-9);
    assert_true(get_number(get(doc, "test"), "accuracy") == mt.accuracy);
    cJSON_Delete(doc);
    run_free(&plain);
    run_free(&none);
    run_free(&r);
    fnn_metrics_free(&mt);
    fnn_model_free(m);
}

/* 100 wide, 60 high: the left half bright, the right half black. Area averaging keeps the
 * halves; a 56x56 checkerboard of single pixels averages to grey, where sampling would not. */
static void test_resize(void **state)
{
    static uint8_t wide[60 * 100], board[56 * 56];
    for (int y = 0; y < 60; y++)
        for (int x = 0; x < 100; x++)
            wide[y * 100 + x] = x < 50 ? 200 : 0;
    for (int y = 0; y < 56; y++)
        for (int x = 0; x < 56; x++)
            board[y * 56 + x] = (x + y) % 2 ? 255 : 0;
    char a[PATH_CAP], b[PATH_CAP];
    assert_true(stbi_write_png(pathf(a, "%s/wide.png", g_base), 100, 60, 1, wide, 100));
    assert_true(stbi_write_png(pathf(b, "%s/board.png", g_base), 56, 56, 1, board, 56));
    float x[28 * 28];
    fnn_error err;
    assert_int_equal(fnn_image_load(a, 1, 28, 28, 0, x, &err), FNN_OK);
    for (int r = 0; r < 28; r++) {
        assert_float_equal(x[r * 28 + 0], 200 / 255.0, 1e-4);
        assert_float_equal(x[r * 28 + 13], 200 / 255.0, 1e-4);
        assert_float_equal(x[r * 28 + 14], 0.0, 1e-4);
        assert_float_equal(x[r * 28 + 27], 0.0, 1e-4);
    }
    assert_int_equal(fnn_image_load(b, 1, 28, 28, 1, x, &err), FNN_OK);
    for (int p = 0; p < 28 * 28; p++)
        assert_float_equal(x[p], 0.5, 1e-3);
    if (g_model[0]) {
        run_t r = FNN("predict", g_model, a, "--json");
        expect_code(&r, 0);
        cJSON *doc = parse_json(r.out);
        assert_int_equal(cJSON_GetArraySize(get(doc, "images")), 1);
        cJSON_Delete(doc);
        run_free(&r);
    }
}

/* Test image i written at path: a BMP when the name ends in .BMP, else a PNG. */
static void write_image_at(const char *path, int i)
{
    const uint8_t *pix = g_test.images + i * 28 * 28;
    size_t len = strlen(path);
    int bmp = len > 4 && strcmp(path + len - 4, ".BMP") == 0;
    int ok = bmp ? stbi_write_bmp(path, 28, 28, 1, pix) : stbi_write_png(path, 28, 28, 1, pix, 28);
    if (!ok)
        fail_msg("cannot write %s", path);
}

/* A folder is read as a class folder is: image files by extension in any case, subfolders in
 * their place in name order, hidden and other files skipped; --limit takes the first N. An
 * empty folder and a symbolic link loop fail, naming the folder, with nothing printed. */
static void test_folder_input(void **state)
{
    NEED_MODEL();
    char dir[PATH_CAP], sub[PATH_CAP], path[PATH_CAP], want[3][PATH_CAP];
    fresh_dir(pathf(dir, "%s/folder", g_base));
    fresh_dir(pathf(sub, "%s/2sub", dir));
    write_image_at(pathf(want[0], "%s/0.png", dir), 0);
    write_image_at(pathf(want[1], "%s/3.png", sub), 1);
    write_image_at(pathf(want[2], "%s/4.BMP", dir), 2);
    write_image_at(pathf(path, "%s/.hidden.png", sub), 3);
    write_file(pathf(path, "%s/notes.txt", dir), "not an image\n", 13);
    run_t r = FNN("predict", g_model, dir, "--json", "--top", "1");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *images = get(doc, "images");
    assert_int_equal(cJSON_GetArraySize(images), 3);
    for (int i = 0; i < 3; i++) {
        cJSON *o = cJSON_GetArrayItem(images, i);
        assert_string_equal(get(o, "path")->valuestring, want[i]);
        cJSON *first = cJSON_GetArrayItem(get(o, "top"), 0);
        assert_int_equal((int)get_number(first, "index"), g_pred[i]);
    }
    cJSON_Delete(doc);
    run_free(&r);

    r = FNN("predict", g_model, dir, "--limit", "2", "--top", "1");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", want[1]);
    if (strstr(r.out, want[2]))
        fail_msg("--limit 2 printed the third image:\n%s", r.out);
    run_free(&r);

    char empty[PATH_CAP];
    fresh_dir(pathf(empty, "%s/empty-folder", g_base));
    r = FNN("predict", g_model, empty);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", empty);
    expect_contains(r.err, "stderr", "no image files");
    assert_string_equal(r.out, "");
    run_free(&r);

    char loop[PATH_CAP];
    if (symlink("..", pathf(loop, "%s/up", sub)) != 0)
        fail_msg("symlink %s: %s", loop, strerror(errno));
    r = FNN("predict", g_model, dir);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "symbolic link loop");
    assert_string_equal(r.out, "");
    run_free(&r);
}

static void test_bad_files(void **state)
{
    char text[PATH_CAP], missing[PATH_CAP];
    const char junk[] = "this is not an image\n";
    write_file(pathf(text, "%s/notes.png", g_base), junk, sizeof junk - 1);
    pathf(missing, "%s/no-such-image.png", g_base);
    float x[28 * 28];
    fnn_error err;
    assert_int_equal(fnn_image_load(text, 1, 28, 28, 0, x, &err), FNN_ERR_FORMAT);
    expect_contains(err.msg, "message", text);
    assert_int_equal(fnn_image_load(missing, 1, 28, 28, 0, x, &err), FNN_ERR_IO);
    expect_contains(err.msg, "message", missing);
    NEED_MODEL();
    char good[PATH_CAP];
    write_test_image(good, 0, "png", 0);
    run_t r = FNN("predict", g_model, good, text);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "fnn predict: ");
    expect_contains(r.err, "stderr", text);
    assert_string_equal(r.out, ""); /* nothing printed for the good image either */
    run_free(&r);
    r = FNN("predict", g_model, missing);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", missing);
    expect_contains(r.err, "stderr", "No such file");
    run_free(&r);
    r = FNN("predict", g_model);
    expect_code(&r, 2);
    run_free(&r);
    r = FNN("predict", g_model, good, "--top", "0");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--top");
    run_free(&r);
    r = FNN("predict", "--help");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "--invert");
    run_free(&r);
}

/* A colour model keeps colour: a model whose class 0 follows the red plane and class 1 the
 * blue one (a dense layer set by hand) tells a red PNG from a blue one, which it could not if
 * predict read them grey (equal planes score 0 for both classes). An IDX file's grey images
 * reach it as three equal planes. */
static void test_colour_model_keeps_colour(void **state)
{
    enum { S = 6, HW = S * S };
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:2:softmax", 3, S, S, &err);
    assert_non_null(m);
    fnn_model_init(m, 1);
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        memset(t.data, 0, t.size * sizeof *t.data);
        if (strstr(t.name, "kernel")) /* (3 * HW, 2): red for class 0, blue for class 1 */
            for (int p = 0; p < HW; p++) {
                t.data[p * 2 + 0] = t.data[(2 * HW + p) * 2 + 1] = 0.5f;
                t.data[p * 2 + 1] = t.data[(2 * HW + p) * 2 + 0] = -0.5f;
            }
    }
    char model[PATH_CAP], red[PATH_CAP], blue[PATH_CAP], idx[PATH_CAP];
    fnn_model_meta meta = {.class_names_json = "[\"reddish\", \"bluish\"]"};
    assert_int_equal(fnn_model_save(m, &meta, pathf(model, "%s/colour.safetensors", g_base), &err),
                     FNN_OK);
    fnn_model_free(m);
    /* 9x9 images: resized to the model's 6x6 on the way in. */
    uint8_t px[9 * 9 * 3];
    for (int p = 0; p < 81; p++)
        px[3 * p] = 230, px[3 * p + 1] = 40, px[3 * p + 2] = 30;
    assert_true(stbi_write_png(pathf(red, "%s/red.png", g_base), 9, 9, 3, px, 9 * 3));
    for (int p = 0; p < 81; p++)
        px[3 * p] = 30, px[3 * p + 1] = 40, px[3 * p + 2] = 230;
    assert_true(stbi_write_png(pathf(blue, "%s/blue.png", g_base), 9, 9, 3, px, 9 * 3));
    uint8_t grey[2 * HW];
    memset(grey, 200, sizeof grey);
    uint32_t dims[3] = {2, S, S};
    write_idx(pathf(idx, "%s/grey-images-idx3-ubyte", g_base), MAGIC_IMAGES, dims, 3, grey,
              sizeof grey, 1);
    run_t r = FNN("predict", model, red, blue, idx, "--json", "--top", "2");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *images = get(doc, "images");
    assert_int_equal(cJSON_GetArraySize(images), 4);
    static const char *const want[2] = {"reddish", "bluish"};
    for (int i = 0; i < 4; i++) {
        cJSON *first = cJSON_GetArrayItem(get(cJSON_GetArrayItem(images, i), "top"), 0);
        double p = get_number(first, "probability");
        if (i < 2 && (strcmp(get(first, "label")->valuestring, want[i]) || p < 0.99))
            fail_msg("image %d: %s (%g), expected %s: the colours were lost", i,
                     get(first, "label")->valuestring, p, want[i]);
        if (i >= 2 && fabs(p - 0.5) > 1e-6)
            fail_msg("IDX image %d: top probability %g; three equal planes give 0.5", i - 2, p);
    }
    cJSON_Delete(doc);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_matches_evaluate),
        cmocka_unit_test(test_lossless_formats_and_invert),
        cmocka_unit_test(test_jpeg_decodes),
        cmocka_unit_test(test_idx_file_batch),
        cmocka_unit_test(test_text_output),
        cmocka_unit_test(test_tta),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_folder_input),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_colour_model_keeps_colour),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
