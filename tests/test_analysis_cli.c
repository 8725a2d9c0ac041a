/* fnn explain and fnn robustness as a user runs them (posix_spawn): on a data set where one
 * region of the image decides the class, the JSON maps point at that region, the files of
 * --out-dir hold the same maps, robustness at level 0 is fnn_evaluate's accuracy and falls with
 * noise; the same for a colour model on a folder of PNG files of mixed sizes, read as the model
 * takes them; bad options and files give the documented exit status and a message. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "fnn.h"
#include "util/rng.h"

#define PATH_CAP 1024
#define RUN_TIMEOUT_S 60

static char g_base[PATH_CAP / 2]; /* $FNN_TMP/test_analysis_cli.work: everything this program writes */
static char g_data[PATH_CAP]; /* t10k IDX files of the region task */
static char g_model[PATH_CAP];
static double g_accuracy;     /* fnn_evaluate's accuracy of the model on g_data */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

/* ---------------------------------------------------------------- the region task */

/* Class 1: a bright SQ x SQ square at the top left. NTEST: more than one chunk of fnn explain. */
enum { SIDE = 28, SQ = 6, NTEST = 700 };

static int in_square(int r, int c) { return r < SQ && c < SQ; }

static void make_region_set(fnn_dataset *d, int n, uint64_t seed)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, seed);
    *d = (fnn_dataset){.n = n, .c = 1, .h = SIDE, .w = SIDE, .nclasses = 2, .owns = 1};
    d->images = malloc((size_t)n * SIDE * SIDE);
    d->labels = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *img = d->images + (size_t)i * SIDE * SIDE;
        d->labels[i] = (uint8_t)(fnn_rng_uniform(&rng) < 0.5f);
        for (int p = 0; p < SIDE * SIDE; p++)
            img[p] = (uint8_t)fnn_rng_below(&rng, 120);
        for (int y = 0; d->labels[i] && y < SQ; y++)
            for (int x = 0; x < SQ; x++)
                img[y * SIDE + x] = (uint8_t)(140 + fnn_rng_below(&rng, 116));
    }
}

/* The set as plain t10k IDX files in dir. */
static void write_idx_set(const char *dir, const fnn_dataset *d)
{
    char path[PATH_CAP];
    size_t size = (size_t)d->n * SIDE * SIDE;
    uint8_t *buf = malloc(16 + size);
    put_be32(buf, 0x803);
    put_be32(buf + 4, (uint32_t)d->n);
    put_be32(buf + 8, SIDE);
    put_be32(buf + 12, SIDE);
    memcpy(buf + 16, d->images, size);
    write_file(pathf(path, "%s/t10k-images-idx3-ubyte", dir), buf, 16 + size);
    put_be32(buf, 0x801);
    memcpy(buf + 8, d->labels, (size_t)d->n);
    write_file(pathf(path, "%s/t10k-labels-idx1-ubyte", dir), buf, 8 + (size_t)d->n);
    free(buf);
}

static int setup(void **state)
{
    if (work_dir(g_base, sizeof g_base, "test_analysis_cli") != 0)
        return -1;
    snprintf(g_data, sizeof g_data, "%s/data", g_base);
    if (mkdir(g_data, 0777) != 0)
        return -1;
    fnn_dataset train, test;
    make_region_set(&train, 2000, 1);
    make_region_set(&test, NTEST, 2);
    write_idx_set(g_data, &test);
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:16:relu dense:2:softmax", 1, SIDE, SIDE, &err);
    fnn_model_init(m, 3);
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 8;
    cfg.threads = 1;
    cfg.optim.weight_decay = 1e-3f;
    fnn_dataset none = {0};
    fnn_metrics mt = {0};
    fnn_model_meta meta = {.class_names_json = "[\"noise\", \"square\"]"};
    snprintf(g_model, sizeof g_model, "%s/region.safetensors", g_base);
    int ok = fnn_train(m, &train, &none, &cfg, NULL, &err) == FNN_OK &&
             fnn_model_save(m, &meta, g_model, &err) == FNN_OK &&
             fnn_evaluate(m, &test, 1, NULL, NULL, &mt, &err) == FNN_OK;
    g_accuracy = mt.accuracy;
    fnn_metrics_free(&mt);
    fnn_model_free(m);
    fnn_dataset_free(&train);
    fnn_dataset_free(&test);
    return ok && g_accuracy > 0.95 ? 0 : -1;
}

/* The (row, column) of the largest value of a JSON map (rows of numbers), which must also be
 * well above the rest on average inside the square: a uniform map peaks at (0, 0) too. */
static void json_peak(const cJSON *map, int *row, int *col)
{
    double best = -INFINITY, inside = 0, outside = 0;
    assert_int_equal(cJSON_GetArraySize(map), SIDE);
    for (int r = 0; r < SIDE; r++) {
        const cJSON *line = cJSON_GetArrayItem(map, r);
        assert_int_equal(cJSON_GetArraySize(line), SIDE);
        for (int c = 0; c < SIDE; c++) {
            double v = cJSON_GetArrayItem(line, c)->valuedouble;
            *(in_square(r, c) ? &inside : &outside) += v;
            if (v > best) {
                best = v;
                *row = r;
                *col = c;
            }
        }
    }
    inside /= SQ * SQ;
    outside /= SIDE * SIDE - SQ * SQ;
    if (!(inside > 1.5 * outside))
        fail_msg("map mean %g in the square, %g outside", inside, outside);
}

/* ---------------------------------------------------------------- tests */

static void test_explain_json_points_at_the_square(void **state)
{
    char dir[PATH_CAP], path[PATH_CAP];
    pathf(dir, "%s/maps", g_base);
    run_t r = FNN("explain", g_model, "--data", g_data, "--limit", "0", "--json", "--out-dir",
                  dir, "--threads", "2");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    assert_int_equal((int)get(doc, "images")->valuedouble, NTEST);
    cJSON *classes = get(get(doc, "saliency"), "classes");
    assert_int_equal(cJSON_GetArraySize(classes), 2);
    cJSON *square = cJSON_GetArrayItem(classes, 1);
    assert_string_equal(get(square, "label")->valuestring, "square");
    int row = -1, col = -1;
    json_peak(get(square, "map"), &row, &col);
    if (!in_square(row, col))
        fail_msg("saliency of class 1 peaks at (%d, %d), outside the square", row, col);
    const cJSON *peak = get(square, "peak");
    assert_int_equal(cJSON_GetArrayItem(peak, 0)->valueint, row);
    assert_int_equal(cJSON_GetArrayItem(peak, 1)->valueint, col);
    cJSON *occ = get(doc, "occlusion");
    assert_true(get(occ, "base_accuracy")->valuedouble == g_accuracy);
    json_peak(get(occ, "drop"), &row, &col);
    if (!in_square(row, col))
        fail_msg("occlusion drop peaks at (%d, %d), outside the square", row, col);

    /* The CSV holds the JSON map's values; the PGM is a P5 image of the map's size. */
    char *csv = read_all(pathf(path, "%s/saliency_1.csv", dir), NULL);
    assert_non_null(csv);
    const cJSON *map = get(square, "map");
    char *s = csv;
    for (int rr = 0; rr < SIDE; rr++)
        for (int c = 0; c < SIDE; c++) {
            char *end;
            double v = strtod(s, &end);
            assert_true(end != s);
            double want = cJSON_GetArrayItem(cJSON_GetArrayItem(map, rr), c)->valuedouble;
            assert_float_equal(v, want, 1e-5 * fabs(want) + 1e-12);
            assert_int_equal(*end, c + 1 < SIDE ? ',' : '\n');
            s = end + 1;
        }
    assert_int_equal(*s, '\0');
    free(csv);
    char *pgm = read_all(pathf(path, "%s/occlusion.pgm", dir), NULL);
    assert_non_null(pgm);
    assert_int_equal(strncmp(pgm, "P5\n28 28\n255\n", 13), 0);
    free(pgm);
    cJSON_Delete(doc);
    run_free(&r);
}

static void test_explain_text_and_methods(void **state)
{
    run_t r = FNN("explain", g_model, "--data", g_data, "--method", "smoothgrad", "--samples",
                  "4", "--no-occlusion");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "smoothgrad");
    expect_contains(r.out, "stdout", "square");
    assert_null(strstr(r.out, "occlusion ("));
    run_free(&r);
    r = FNN("explain", g_model, "--data", g_data, "--method", "sideways");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "sideways");
    run_free(&r);
    r = FNN("explain", g_model, "--data", g_data, "--patch", "29");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--patch");
    run_free(&r);
    r = FNN("explain", "--help");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "--out-dir");
    run_free(&r);
}

static void test_robustness_json(void **state)
{
    run_t r = FNN("robustness", g_model, "--data", g_data, "--json", "--threads", "1");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *list = get(doc, "perturbations");
    assert_int_equal(cJSON_GetArraySize(list), FNN_PERTURB_COUNT);
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        cJSON *o = cJSON_GetArrayItem(list, p);
        assert_string_equal(get(o, "name")->valuestring, fnn_perturbation_name(p));
        cJSON *acc = get(o, "accuracy");
        const double *levels;
        assert_int_equal(cJSON_GetArraySize(acc), fnn_perturbation_levels(p, &levels));
        if (cJSON_GetArrayItem(acc, 0)->valuedouble != g_accuracy)
            fail_msg("%s: %.17g at the first level, fnn_evaluate %.17g", fnn_perturbation_name(p),
                     cJSON_GetArrayItem(acc, 0)->valuedouble, g_accuracy);
    }
    cJSON *noise = get(cJSON_GetArrayItem(list, FNN_PERTURB_NOISE), "accuracy");
    double last = cJSON_GetArrayItem(noise, cJSON_GetArraySize(noise) - 1)->valuedouble;
    assert_true(last < g_accuracy - 0.15);
    cJSON_Delete(doc);
    run_free(&r);
}

static void test_robustness_text_and_errors(void **state)
{
    run_t r = FNN("robustness", g_model, "--data", g_data, "--perturbation", "shift,noise");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "shift");
    expect_contains(r.out, "stdout", "weakest: ");
    assert_null(strstr(r.out, "rotate"));
    run_free(&r);
    r = FNN("robustness", g_model, "--data", g_data, "--perturbation", "blur");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "'blur'");
    run_free(&r);
    char missing[PATH_CAP];
    r = FNN("robustness", pathf(missing, "%s/none.safetensors", g_base), "--data", g_data);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", missing);
    run_free(&r);
    r = FNN("robustness", g_model, "--data", pathf(missing, "%s/no-data", g_base));
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "no-data");
    run_free(&r);
}

/* ---------------------------------------------------------------- colour, any size */

/* Class "square": a red CSQ x CSQ square at the top left of images of CR rows and CC
 * columns, on noise of every colour; its grey level matches the noise's, so only colour tells. */
enum { CR = 12, CC = 10, CSQ = 4, CN = 120 };

static int in_red_square(int r, int c) { return r < CSQ && c < CSQ; }

static void make_colour_set(fnn_dataset *d, int n, uint64_t seed)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, seed);
    size_t hw = CR * CC;
    *d = (fnn_dataset){.n = n, .c = 3, .h = CR, .w = CC, .nclasses = 2, .owns = 1};
    d->images = malloc((size_t)n * 3 * hw);
    d->labels = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *img = d->images + (size_t)i * 3 * hw; // (3, CR, CC)
        d->labels[i] = (uint8_t)(i % 2);
        for (size_t p = 0; p < 3 * hw; p++)
            img[p] = (uint8_t)(40 + fnn_rng_below(&rng, 120));
        for (int y = 0; d->labels[i] && y < CSQ; y++)
            for (int x = 0; x < CSQ; x++) {
                img[y * CC + x] = (uint8_t)(200 + fnn_rng_below(&rng, 56));
                img[hw + y * CC + x] = (uint8_t)fnn_rng_below(&rng, 60);
                img[2 * hw + y * CC + x] = (uint8_t)fnn_rng_below(&rng, 60);
            }
    }
}

/* Image i of d as a PNG in dir/SPLIT/CLASS/: the odd ones at twice the size, each pixel a 2x2
 * block, which area averaging brings back exactly. */
static void write_colour_png(const char *dir, const char *split, const fnn_dataset *d, int i)
{
    static const char *const names[2] = {"noise", "square"};
    char path[PATH_CAP];
    int z = 1 + i % 2, h = CR * z, w = CC * z;
    uint8_t *px = malloc((size_t)h * w * 3); // (h, w, 3) as PNG stores it
    const uint8_t *img = d->images + (size_t)i * 3 * CR * CC;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++)
                px[(y * w + x) * 3 + ch] = img[ch * CR * CC + (y / z) * CC + x / z];
    pathf(path, "%s/%s/%s", dir, split, names[d->labels[i]]);
    mkdir(path, 0777);
    pathf(path, "%s/%s/%s/%03d.png", dir, split, names[d->labels[i]], i);
    if (!stbi_write_png(path, w, h, 3, px, w * 3))
        fail_msg("cannot write %s", path);
    free(px);
}

static struct {
    char data[PATH_CAP], model[PATH_CAP];
    double accuracy; /* fnn_evaluate's on the test split as fnn_data_load reads it */
} gc;

static void setup_colour(void)
{
    if (gc.model[0])
        return;
    char dir[PATH_CAP];
    fresh_dir(pathf(gc.data, "%s/colour", g_base));
    fresh_dir(pathf(dir, "%s/train", gc.data));
    fresh_dir(pathf(dir, "%s/test", gc.data));
    fnn_dataset train, test;
    make_colour_set(&train, 1200, 5);
    make_colour_set(&test, CN, 6);
    for (int i = 0; i < 4; i++)
        write_colour_png(gc.data, "train", &test, i);
    for (int i = 0; i < CN; i++)
        write_colour_png(gc.data, "test", &test, i);
    fnn_error err;
    fnn_model *m = fnn_model_create("conv2d:4:3:relu flatten dense:2:softmax", 3, CR, CC, &err);
    assert_non_null(m);
    fnn_model_init(m, 3);
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 6;
    cfg.threads = 1;
    fnn_dataset none = {0}, read;
    fnn_metrics mt = {0};
    fnn_model_meta meta = {.class_names_json = "[\"noise\", \"square\"]"};
    pathf(gc.model, "%s/colour.safetensors", g_base);
    fnn_data_options o = {.channels = 3, .h = CR, .w = CC};
    if (fnn_train(m, &train, &none, &cfg, NULL, &err) != FNN_OK ||
        fnn_model_save(m, &meta, gc.model, &err) != FNN_OK ||
        fnn_data_load(gc.data, "test", &o, &read, &err) != FNN_OK)
        fail_msg("%s", err.msg);
    /* The files hold the set exactly: the twice-sized ones come back by area averaging. */
    assert_int_equal(read.n, CN);
    if (fnn_evaluate(m, &read, 1, NULL, NULL, &mt, &err) != FNN_OK)
        fail_msg("%s", err.msg);
    gc.accuracy = mt.accuracy;
    if (gc.accuracy < 0.9)
        fail_msg("the colour model reaches only %g", gc.accuracy);
    fnn_metrics_free(&mt);
    fnn_model_free(m);
    fnn_dataset_free(&read);
    fnn_dataset_free(&train);
    fnn_dataset_free(&test);
}

/* A map of CR rows of CC numbers whose mean inside the red square is well above the rest. */
static void check_colour_map(const cJSON *map, const char *what)
{
    double inside = 0, outside = 0;
    if (cJSON_GetArraySize(map) != CR)
        fail_msg("%s: %d rows, expected %d", what, cJSON_GetArraySize(map), CR);
    for (int r = 0; r < CR; r++) {
        const cJSON *line = cJSON_GetArrayItem(map, r);
        if (cJSON_GetArraySize(line) != CC)
            fail_msg("%s: row %d has %d values, expected %d", what, r, cJSON_GetArraySize(line),
                     CC);
        for (int c = 0; c < CC; c++)
            *(in_red_square(r, c) ? &inside : &outside) += cJSON_GetArrayItem(line, c)->valuedouble;
    }
    inside /= CSQ * CSQ;
    outside /= CR * CC - CSQ * CSQ;
    if (!(inside > 1.5 * outside))
        fail_msg("%s: mean %g in the square, %g outside", what, inside, outside);
}

/* A colour model over a folder of mixed-size PNG files, without --image-size or --channels:
 * the maps are one value per pixel of the model's 12x10 input and find the red square; the PGM
 * files are 10 wide and 12 high. */
static void test_explain_colour_folder(void **state)
{
    setup_colour();
    char dir[PATH_CAP], path[PATH_CAP];
    pathf(dir, "%s/colour_maps", g_base);
    run_t r = FNN("explain", gc.model, "--data", gc.data, "--json", "--out-dir", dir, "--patch",
                  "3", "--stride", "1", "--threads", "2");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    assert_int_equal((int)get_number(doc, "images"), CN);
    cJSON *classes = get(get(doc, "saliency"), "classes");
    assert_int_equal(cJSON_GetArraySize(classes), 2);
    cJSON *square = cJSON_GetArrayItem(classes, 1);
    assert_string_equal(get(square, "label")->valuestring, "square");
    check_colour_map(get(square, "map"), "saliency of class square");
    cJSON *occ = get(doc, "occlusion");
    assert_true(get_number(occ, "base_accuracy") == gc.accuracy);
    check_colour_map(get(occ, "drop"), "occlusion drop");
    static const char *const names[] = {"saliency_0", "saliency_1", "occlusion"};
    for (int i = 0; i < 3; i++) {
        size_t len;
        char *pgm = read_all(pathf(path, "%s/%s.pgm", dir, names[i]), &len);
        assert_non_null(pgm);
        assert_int_equal(strncmp(pgm, "P5\n10 12\n255\n", 13), 0);
        assert_int_equal(len, 13 + CR * CC);
        free(pgm);
    }
    cJSON_Delete(doc);
    run_free(&r);
    /* IDX files of another size, which are not resized: the error names both shapes. */
    r = FNN("explain", gc.model, "--data", g_data);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "1x28x28");
    expect_contains(r.err, "stderr", "3x12x10");
    run_free(&r);
    /* Read grey, the data no longer fits the model: a clear error, no maps. */
    r = FNN("explain", gc.model, "--data", gc.data, "--channels", "1");
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "1x12x10");
    expect_contains(r.err, "stderr", "3x12x10");
    run_free(&r);
}

/* Robustness of the colour model on the same folder: level 0 is fnn_evaluate's accuracy; the
 * shifts and squares go up to the image's 12 pixels, not the default 16. */
static void test_robustness_colour_folder(void **state)
{
    setup_colour();
    run_t r = FNN("robustness", gc.model, "--data", gc.data, "--json", "--threads", "2");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *list = get(doc, "perturbations");
    assert_int_equal((int)get_number(doc, "images"), CN);
    assert_int_equal(cJSON_GetArraySize(list), FNN_PERTURB_COUNT);
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        cJSON *o = cJSON_GetArrayItem(list, p), *levels = get(o, "levels");
        assert_true(cJSON_GetArrayItem(get(o, "accuracy"), 0)->valuedouble == gc.accuracy);
        int n = cJSON_GetArraySize(levels);
        assert_int_equal(cJSON_GetArraySize(get(o, "accuracy")), n);
        double top = cJSON_GetArrayItem(levels, n - 1)->valuedouble;
        if (p == FNN_PERTURB_OCCLUDE)
            assert_true(top == CR);
        if (p == FNN_PERTURB_SHIFT || p == FNN_PERTURB_OCCLUDE)
            assert_true(top <= CR);
    }
    cJSON_Delete(doc);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explain_json_points_at_the_square),
        cmocka_unit_test(test_explain_text_and_methods),
        cmocka_unit_test(test_robustness_json),
        cmocka_unit_test(test_robustness_text_and_errors),
        cmocka_unit_test(test_explain_colour_folder),
        cmocka_unit_test(test_robustness_colour_folder),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
