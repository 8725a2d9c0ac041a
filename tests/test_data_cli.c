/* The data sources through the commands, run as a user would run them: train and eval on an
 * image folder tree (grey, colour, mixed sizes), a Kaggle-layout CSV and a CIFAR-10-layout
 * directory, all written here; the header line; class names from the data; --normalize
 * standardize; the same images read as IDX, PNG tree and CSV giving the same model bit for
 * bit; and each bad input of issue 16 through train: a message naming the file (and line),
 * a non-zero exit and no output file. */
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
#include <ftw.h>
#include <math.h>
#include <stb/stb_image_write.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fnn.h"

#define PATH_CAP 1024
#define RUN_TIMEOUT_S 60
#define CLI_RUN_DIR g_base
static char g_base[PATH_CAP - 64];

#include "cli_harness.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---------------------------------------------------------------- fixtures */

static const char *mkdir_in(char *buf, const char *parent, const char *name)
{
    pathf(buf, "%s/%s", parent, name);
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        fail_msg("cannot create %s: %s", buf, strerror(errno));
    return buf;
}

/* A grey (c = 1) or colour (c = 3) image given as planes, written as a PNG. */
static void write_png(const char *path, const uint8_t *planes, int c, int h, int w)
{
    uint8_t *px = malloc((size_t)c * h * w); // (h, w, c)
    assert_non_null(px);
    for (int k = 0; k < c; k++)
        for (int i = 0; i < h * w; i++)
            px[i * c + k] = planes[k * h * w + i];
    assert_true(stbi_write_png(path, w, h, c, px, w * c) != 0);
    free(px);
}

/* Pixel i of image `img` of class `label`: a class pattern plus a hash, so that every image
 * differs and training has something to learn. */
static uint8_t pixel(int img, int label, int i)
{
    uint32_t s = (uint32_t)img * 2654435761u ^ (uint32_t)i * 40503u;
    s ^= s >> 13;
    s *= 0x5bd1e995u;
    return (uint8_t)((i % 3 == label % 3 ? 150 : 0) + (s >> 27));
}

/* One set of images, class-sorted: n images of c x h x w, n / k of each class. */
typedef struct {
    int n, k, c, h, w;
    uint8_t *images; // (n, c, h, w)
    uint8_t *labels; // (n)
} images_t;

static images_t make_images(int n, int k, int c, int h, int w, int seed)
{
    images_t s = {n, k, c, h, w, malloc((size_t)n * c * h * w), malloc((size_t)n)};
    assert_non_null(s.images);
    assert_non_null(s.labels);
    for (int i = 0; i < n; i++) {
        s.labels[i] = (uint8_t)(i * k / n);
        for (int j = 0; j < c * h * w; j++)
            s.images[(size_t)i * c * h * w + j] = pixel(i + seed, s.labels[i], j);
    }
    return s;
}

static void free_images(images_t *s)
{
    free(s->images);
    free(s->labels);
}

/* dir/NAME/00000.png ...: one subfolder per class, named by names[label]. */
static void write_tree(const char *dir, const images_t *s, const char *const *names)
{
    char sub[PATH_CAP], p[PATH_CAP];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        fail_msg("cannot create %s", dir);
    for (int i = 0; i < s->n; i++) {
        mkdir_in(sub, dir, names[s->labels[i]]);
        size_t size = (size_t)s->c * s->h * s->w;
        write_png(pathf(p, "%s/%05d.png", sub, i), s->images + (size_t)i * size, s->c, s->h,
                  s->w);
    }
}

/* Kaggle's layout: a header, then label,pixel1,...,pixelN. */
static void write_csv(const char *path, const images_t *s)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    size_t size = (size_t)s->h * s->w;
    fprintf(f, "label");
    for (size_t j = 0; j < size; j++)
        fprintf(f, ",pixel%zu", j + 1);
    fprintf(f, "\n");
    for (int i = 0; i < s->n; i++) {
        fprintf(f, "%d", s->labels[i]);
        for (size_t j = 0; j < size; j++)
            fprintf(f, ",%d", s->images[(size_t)i * size + j]);
        fprintf(f, "\n");
    }
    assert_int_equal(fclose(f), 0);
}

/* dir/PREFIX-images-idx3-ubyte and its labels. */
static void write_idx_pair(const char *dir, const char *prefix, const images_t *s)
{
    char p[PATH_CAP];
    uint32_t dims[3] = {(uint32_t)s->n, (uint32_t)s->h, (uint32_t)s->w}, n = (uint32_t)s->n;
    write_idx(pathf(p, "%s/%s-images-idx3-ubyte", dir, prefix), MAGIC_IMAGES, dims, 3, s->images,
              (size_t)s->n * s->h * s->w, 0);
    write_idx(pathf(p, "%s/%s-labels-idx1-ubyte", dir, prefix), MAGIC_LABELS, &n, 1, s->labels,
              (size_t)s->n, 0);
}

/* A CIFAR-10 batch: records of a label byte and 3 x 32 x 32 planes. */
static void write_cifar_batch(const char *path, const images_t *s)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < s->n; i++) {
        assert_int_equal(fputc(s->labels[i], f), s->labels[i]);
        assert_int_equal(fwrite(s->images + (size_t)i * 3072, 1, 3072, f), 3072);
    }
    assert_int_equal(fclose(f), 0);
}

static const char *const animals[] = {"cat", "dog", "emu"};
static const char *const digits[] = {"0", "1", "2"};

/* ---------------------------------------------------------------- running train */

/* Trains with --out in a fresh directory dir/LABEL: the run's result (the caller frees it),
 * and the model's path in model. */
static run_t train_in(const char *label, char *model, const char *const *args)
{
    char dir[PATH_CAP];
    fresh_dir(pathf(dir, "%s/run_%s", g_base, label));
    pathf(model, "%s/model.safetensors", dir);
    const char *argv[48] = {"train", "--out", model, "--threads", "2", "--epochs", "1",
                            "--batch-size", "8"};
    int n = 9;
    for (int i = 0; args[i]; i++) {
        assert_true(n < 46);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    return run_argv(argv);
}

/* A train run that must fail with `code`, every needle in its message and nothing written. */
static void expect_refused(const char *label, int code, const char *const *args,
                           const char *const *needles)
{
    char model[PATH_CAP], dir[PATH_CAP];
    run_t r = train_in(label, model, args);
    if (r.code != code)
        fail_msg("%s: exit status %d, expected %d\nstderr: %s", label, r.code, code, r.err);
    for (int i = 0; needles[i]; i++)
        expect_contains(r.err, label, needles[i]);
    pathf(dir, "%s/run_%s", g_base, label);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fail_msg("%s: a failed run left %s/%s", label, dir, e->d_name);
    closedir(d);
    run_free(&r);
}

static void expect_names(const cJSON *list, const char *const *names, int k)
{
    assert_int_equal(cJSON_GetArraySize(list), k);
    for (int i = 0; i < k; i++)
        assert_string_equal(cJSON_GetArrayItem(list, i)->valuestring, names[i]);
}

/* ---------------------------------------------------------------- formats through train, eval */

/* A colour folder tree with train/ and test/, images of two sizes resized by --image-size:
 * the header line, class names from the folders in train, eval and summary. */
static void test_png_tree_colour_mixed_sizes(void **state)
{
    (void)state;
    char root[PATH_CAP], p[PATH_CAP], model[PATH_CAP];
    pathf(root, "%s/colour", g_base);
    fresh_dir(root);
    images_t big = make_images(30, 3, 3, 8, 8, 0), small = make_images(30, 3, 3, 6, 10, 100),
             test = make_images(9, 3, 3, 8, 8, 200);
    write_tree(pathf(p, "%s/train", root), &big, animals);
    /* Other names sort after the first set's within each class folder. */
    char sub[PATH_CAP];
    for (int i = 0; i < small.n; i++)
        write_png(pathf(p, "%s/x%05d.png", mkdir_in(sub, pathf(p, "%s/train", root),
                                                     animals[small.labels[i]]),
                        i),
                  small.images + (size_t)i * 180, 3, 6, 10);
    write_tree(pathf(p, "%s/test", root), &test, animals);

    /* Mixed sizes without --image-size: refused, naming an image. */
    expect_refused("mixed", 1, ARGS("--data", root), ARGS(root, ".png"));

    run_t r = train_in("colour", model, ARGS("--data", root, "--image-size", "8x8", "--seed", "7"));
    expect_code(&r, 0);
    char line[2 * PATH_CAP];
    snprintf(line, sizeof line,
             "\ndata: image folder %s (3 classes, 60 images, 3x8x8 resized); validation: "
             "stratified 20%% (12 images), seed 7\n",
             root);
    expect_contains(r.out, "train stdout", line);
    snprintf(line, sizeof line, "\ntest data: image folder %s (9 images)\n", root);
    expect_contains(r.out, "train stdout", line);
    expect_contains(r.out, "train stdout", "\nclass names: cat, dog, emu\n");
    expect_contains(r.out, "train stdout", "\nimages: 48 train / 12 validation / 9 test");
    /* The test report under the folders' names. */
    expect_contains(r.out, "train stdout", "\n         cat ");
    run_free(&r);

    r = FNN("eval", model, "--data", root, "--image-size", "8x8", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *classes = get(get(doc, "test"), "classes");
    assert_int_equal(cJSON_GetArraySize(classes), 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(get(cJSON_GetArrayItem(classes, i), "label")->valuestring,
                            animals[i]);
    assert_int_equal((int)get_number(get(doc, "test"), "images"), 9);
    assert_string_equal(get(get(doc, "data"), "format")->valuestring, "image folder");
    cJSON_Delete(doc);
    run_free(&r);

    /* The test set read in grey does not fit the colour model: refused, naming both shapes. */
    r = FNN("eval", model, "--data", root, "--image-size", "8x8", "--channels", "1");
    expect_code(&r, 1);
    expect_contains(r.err, "eval stderr", "1x8x8");
    expect_contains(r.err, "eval stderr", "3x8x8");
    expect_contains(r.err, "eval stderr", root);
    assert_string_equal(r.out, "");
    run_free(&r);

    r = FNN("summary", model);
    expect_code(&r, 0);
    expect_contains(r.out, "summary", "\ninput: 3x8x8 (colour: red, green, blue, 8 rows, 8 columns)\n");
    expect_contains(r.out, "summary", "\nclass names (3): cat, dog, emu\n");
    run_free(&r);

    /* --channels 1 reads the same tree in grey. */
    r = train_in("grey", model, ARGS("--data", root, "--image-size", "8x8", "--channels", "1",
                                     "--json"));
    expect_code(&r, 0);
    doc = parse_json(r.out);
    cJSON *d = get(doc, "data");
    assert_int_equal(cJSON_GetArrayItem(get(d, "shape"), 0)->valueint, 1);
    cJSON_Delete(doc);
    run_free(&r);
    free_images(&big);
    free_images(&small);
    free_images(&test);
}

/* A grey tree without train/ and test/: no test set, said so; --test-data names one. */
static void test_png_tree_grey_test_data(void **state)
{
    (void)state;
    char root[PATH_CAP], other[PATH_CAP], model[PATH_CAP];
    pathf(root, "%s/grey", g_base);
    pathf(other, "%s/grey_test", g_base);
    fresh_dir(root);
    fresh_dir(other);
    images_t tr = make_images(40, 2, 1, 5, 5, 0), te = make_images(10, 2, 1, 5, 5, 50);
    write_tree(root, &tr, animals);
    write_tree(other, &te, animals);

    run_t r = train_in("notest", model, ARGS("--data", root, "--json"));
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    assert_true(cJSON_IsNull(get(doc, "test")));
    assert_true(cJSON_IsNull(get(get(doc, "data"), "test_data")));
    expect_contains(get(get(doc, "data"), "no_test")->valuestring, "no_test", "--test-data");
    expect_names(get(get(doc, "data"), "class_names"), animals, 2);
    cJSON *v = get(get(doc, "data"), "validation_split");
    assert_string_equal(get(v, "method")->valuestring, "stratified");
    assert_int_equal((int)get_number(v, "images"), 8);
    cJSON_Delete(doc);
    run_free(&r);

    r = train_in("testdata", model, ARGS("--data", root, "--test-data", other));
    expect_code(&r, 0);
    char line[2 * PATH_CAP];
    snprintf(line, sizeof line, "\ntest data: image folder %s (10 images)\n", other);
    expect_contains(r.out, "train stdout", line);
    expect_contains(r.out, "train stdout", "test: 10 images, loss ");
    run_free(&r);

    /* --split last overrides the folder's stratified split. */
    r = train_in("last", model, ARGS("--data", root, "--split", "last", "--json"));
    expect_code(&r, 0);
    doc = parse_json(r.out);
    v = get(get(doc, "data"), "validation_split");
    assert_string_equal(get(v, "method")->valuestring, "last");
    assert_true(cJSON_IsNull(get(v, "seed")));
    cJSON_Delete(doc);
    run_free(&r);
    free_images(&tr);
    free_images(&te);
}

/* Kaggle's CSV layout: the test file named for the training one, names 0..K-1. */
static void test_csv(void **state)
{
    (void)state;
    char dir[PATH_CAP], train[PATH_CAP], p[PATH_CAP], model[PATH_CAP];
    pathf(dir, "%s/csv", g_base);
    fresh_dir(dir);
    images_t tr = make_images(60, 3, 1, 4, 4, 0), te = make_images(12, 3, 1, 4, 4, 70);
    write_csv(pathf(train, "%s/mine_train.csv", dir), &tr);
    write_csv(pathf(p, "%s/mine_test.csv", dir), &te);
    run_t r = train_in("csv", model, ARGS("--data", train, "--seed", "3"));
    expect_code(&r, 0);
    char line[2 * PATH_CAP];
    snprintf(line, sizeof line,
             "\ndata: CSV %s (3 classes, 60 images, 1x4x4); validation: stratified 20%% "
             "(12 images), seed 3\n",
             train);
    expect_contains(r.out, "train stdout", line);
    snprintf(line, sizeof line, "\ntest data: CSV %s (12 images)\n", p);
    expect_contains(r.out, "train stdout", line);
    expect_contains(r.out, "train stdout", "\nclass names: 0, 1, 2\n");
    run_free(&r);
    r = FNN("eval", model, "--data", train);
    expect_code(&r, 0);
    expect_contains(r.out, "eval stdout", "test: 12 images");
    run_free(&r);
    free_images(&tr);
    free_images(&te);

    /* Ten classes under a path naming Fashion-MNIST (Kaggle's file name): its names; the same
     * file elsewhere: 0..9. */
    images_t ten = make_images(40, 10, 1, 4, 4, 0);
    write_csv(pathf(p, "%s/fashion-mnist_train.csv", dir), &ten);
    r = train_in("csv_fashion", model, ARGS("--data", p, "--no-test", "--json"));
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    expect_names(get(get(doc, "data"), "class_names"), fnn_fashion_class_names(), 10);
    cJSON_Delete(doc);
    run_free(&r);
    write_csv(pathf(p, "%s/digits_train.csv", dir), &ten);
    r = train_in("csv_digits", model, ARGS("--data", p, "--no-test"));
    expect_code(&r, 0);
    expect_contains(r.out, "train stdout", "\nclass names: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9\n");
    run_free(&r);
    free_images(&ten);
}

/* CIFAR-10's layout, tiny: five training batches, a test batch and the names. */
static void test_cifar(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP], model[PATH_CAP];
    pathf(dir, "%s/cifar", g_base);
    fresh_dir(dir);
    mkdir_in(p, dir, "cifar-10-batches-bin");
    char batches[PATH_CAP];
    snprintf(batches, sizeof batches, "%s", p);
    for (int b = 1; b <= 5; b++) {
        images_t s = make_images(6, 3, 3, 32, 32, 10 * b);
        write_cifar_batch(pathf(p, "%s/data_batch_%d.bin", batches, b), &s);
        free_images(&s);
    }
    images_t te = make_images(6, 3, 3, 32, 32, 99);
    write_cifar_batch(pathf(p, "%s/test_batch.bin", batches), &te);
    free_images(&te);
    write_file(pathf(p, "%s/batches.meta.txt", batches), "cat\ndog\nemu\n", 12);
    run_t r = train_in("cifar", model, ARGS("--data", dir, "--arch", "cnn", "--json"));
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *d = get(doc, "data");
    assert_string_equal(get(d, "format")->valuestring, "CIFAR-10");
    expect_names(get(d, "class_names"), animals, 3);
    assert_string_equal(get(get(d, "validation_split"), "method")->valuestring, "last");
    assert_int_equal((int)get_number(d, "validation"), 6);
    assert_int_equal((int)get_number(get(doc, "test"), "images"), 6);
    cJSON *shape = get(get(doc, "model"), "input_shape");
    assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, 3);
    assert_int_equal(cJSON_GetArrayItem(shape, 1)->valueint, 32);
    /* The preset's head follows the three classes. */
    cJSON *layers = get(get(doc, "model"), "layers");
    cJSON *last = cJSON_GetArrayItem(layers, cJSON_GetArraySize(layers) - 1);
    assert_int_equal(cJSON_GetArrayItem(get(last, "output_shape"), 0)->valueint, 3);
    cJSON_Delete(doc);
    run_free(&r);

    /* A batch whose size is not a whole number of records. */
    FILE *f = fopen(pathf(p, "%s/data_batch_3.bin", batches), "ab");
    assert_non_null(f);
    assert_int_equal(fputc(7, f), 7);
    assert_int_equal(fclose(f), 0);
    expect_refused("cifar_size", 1, ARGS("--data", dir), ARGS(p));
}

/* --normalize standardize: the training part's statistics, stored in the model and used by
 * eval (which then agrees with train's test result), shown by summary. */
static void test_standardize(void **state)
{
    (void)state;
    char dir[PATH_CAP], model[PATH_CAP];
    pathf(dir, "%s/std", g_base);
    fresh_dir(dir);
    images_t tr = make_images(50, 2, 1, 6, 6, 0), te = make_images(10, 2, 1, 6, 6, 80);
    write_idx_pair(dir, "train", &tr);
    write_idx_pair(dir, "t10k", &te);
    run_t r = train_in("std", model, ARGS("--data", dir, "--normalize", "standardize", "--json"));
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    /* The training part is the first 40 images (--split last for IDX). */
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < 40 * 36; i++) {
        double x = tr.images[i] / 255.0;
        sum += x;
        sq += x * x;
    }
    double mean = sum / (40 * 36), sd = sqrt(sq / (40 * 36) - mean * mean);
    cJSON *n = get(get(doc, "data"), "normalization");
    assert_string_equal(get(n, "kind")->valuestring, "standardize");
    assert_true(fabs(cJSON_GetArrayItem(get(n, "mean"), 0)->valuedouble - mean) < 1e-5);
    assert_true(fabs(cJSON_GetArrayItem(get(n, "std"), 0)->valuedouble - sd) < 1e-5);
    double acc = get_number(get(doc, "test"), "accuracy"),
           loss = get_number(get(doc, "test"), "loss");
    cJSON_Delete(doc);
    run_free(&r);

    r = FNN("eval", model, "--data", dir, "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    assert_true(get_number(get(doc, "test"), "accuracy") == acc);
    assert_true(get_number(get(doc, "test"), "loss") == loss);
    cJSON_Delete(doc);
    run_free(&r);

    r = FNN("summary", model, "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    n = get(doc, "normalization");
    assert_string_equal(get(n, "kind")->valuestring, "standardize");
    assert_true(fabs(cJSON_GetArrayItem(get(n, "mean"), 0)->valuedouble - mean) < 1e-5);
    cJSON_Delete(doc);
    run_free(&r);
    r = FNN("summary", model);
    expect_contains(r.out, "summary", "\nnormalization: standardize, per channel");
    run_free(&r);

    /* Without it the model holds no statistics: a different model. */
    char plain[PATH_CAP];
    r = train_in("scale", plain, ARGS("--data", dir));
    expect_code(&r, 0);
    expect_contains(r.out, "train stdout", "\nnormalization: scale, pixel / 255\n");
    run_free(&r);
    size_t la, lb;
    char *a = read_all(model, &la), *b = read_all(plain, &lb);
    assert_true(la != lb || memcmp(a, b, la) != 0);
    free(a);
    free(b);
    free_images(&tr);
    free_images(&te);
}

/* The same images as IDX files, a PNG tree and CSV files, class-sorted so that the orders
 * agree: with the same seed and split the trained models are the same file, byte for byte. */
static void test_same_images_same_model(void **state)
{
    (void)state;
    char idx[PATH_CAP], tree[PATH_CAP], csv_dir[PATH_CAP], csv[PATH_CAP], p[PATH_CAP];
    pathf(idx, "%s/same_idx", g_base);
    pathf(tree, "%s/same_png", g_base);
    pathf(csv_dir, "%s/same_csv", g_base);
    fresh_dir(idx);
    fresh_dir(tree);
    fresh_dir(csv_dir);
    images_t tr = make_images(60, 3, 1, 8, 8, 0), te = make_images(15, 3, 1, 8, 8, 60);
    write_idx_pair(idx, "train", &tr);
    write_idx_pair(idx, "t10k", &te);
    write_tree(pathf(p, "%s/train", tree), &tr, digits);
    write_tree(pathf(p, "%s/test", tree), &te, digits);
    write_csv(pathf(p, "%s/set_test.csv", csv_dir), &te);
    write_csv(pathf(csv, "%s/set_train.csv", csv_dir), &tr);
    static const char *const splits[] = {"stratified", "last"};
    char models[2][3][PATH_CAP];
    for (int s = 0; s < 2; s++) {
        const char *paths[3] = {idx, tree, csv};
        double acc[3];
        for (int i = 0; i < 3; i++) {
            char label[32];
            snprintf(label, sizeof label, "same_%s_%d", splits[s], i);
            run_t r = train_in(label, models[s][i],
                               ARGS("--data", paths[i], "--split", splits[s], "--seed", "11",
                                    "--epochs", "2", "--normalize", "standardize", "--json"));
            expect_code(&r, 0);
            cJSON *doc = parse_json(r.out);
            acc[i] = get_number(get(doc, "test"), "accuracy");
            cJSON_Delete(doc);
            run_free(&r);
        }
        assert_files_equal(models[s][0], models[s][1]);
        assert_files_equal(models[s][0], models[s][2]);
        assert_true(acc[0] == acc[1] && acc[0] == acc[2]);
    }
    /* The two splits hold out other images: other models (so --split is not ignored). */
    size_t la, lb;
    char *a = read_all(models[0][0], &la), *b = read_all(models[1][0], &lb);
    assert_true(la != lb || memcmp(a, b, la) != 0);
    free(a);
    free(b);
    free_images(&tr);
    free_images(&te);
}

/* --resume keeps the data options and refuses conflicting ones. */
static void test_resume_data_options(void **state)
{
    (void)state;
    char root[PATH_CAP], model[PATH_CAP], ckpt[PATH_CAP], p[PATH_CAP];
    pathf(root, "%s/resume", g_base);
    fresh_dir(root);
    images_t tr = make_images(40, 2, 3, 6, 6, 0);
    write_tree(root, &tr, animals);
    pathf(ckpt, "%s/run.ckpt", g_base);
    run_t r = train_in("resume1", model, ARGS("--data", root, "--channels", "1", "--normalize",
                                              "standardize", "--checkpoint", ckpt));
    expect_code(&r, 0);
    run_free(&r);
    r = FNN("train", "--resume", ckpt, "--epochs", "2", "--out",
            pathf(p, "%s/resumed.safetensors", g_base), "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    assert_int_equal(cJSON_GetArrayItem(get(get(doc, "data"), "shape"), 0)->valueint, 1);
    assert_string_equal(get(get(get(doc, "data"), "normalization"), "kind")->valuestring,
                        "standardize");
    cJSON_Delete(doc);
    run_free(&r);
    static const char *const conflicts[][2] = {{"--channels", "3"}, {"--normalize", "scale"},
                                               {"--image-size", "4x4"}, {"--split", "last"}};
    for (size_t i = 0; i < sizeof conflicts / sizeof conflicts[0]; i++) {
        r = FNN("train", "--resume", ckpt, "--epochs", "3", conflicts[i][0], conflicts[i][1],
                "--out", pathf(p, "%s/conflict.safetensors", g_base));
        expect_code(&r, 2);
        expect_contains(r.err, conflicts[i][0], conflicts[i][0]);
        expect_contains(r.err, conflicts[i][0], "differs from the checkpoint's");
        assert_false(file_exists(p));
        run_free(&r);
    }
    free_images(&tr);
}

/* ---------------------------------------------------------------- bad input through train */

static void test_bad_folders(void **state)
{
    (void)state;
    char root[PATH_CAP], p[PATH_CAP], sub[PATH_CAP];
    images_t s = make_images(20, 2, 1, 4, 4, 0);

    /* A corrupt image: named; skipped and counted with --skip-bad-images. */
    pathf(root, "%s/bad_corrupt", g_base);
    fresh_dir(root);
    write_tree(root, &s, animals);
    write_file(pathf(p, "%s/cat/broken.png", root), "\x89PNG\r\n\x1a\nnot really", 18);
    expect_refused("corrupt", 1, ARGS("--data", root), ARGS(p));
    char model[PATH_CAP];
    run_t r = train_in("skip", model, ARGS("--data", root, "--skip-bad-images"));
    expect_code(&r, 0);
    expect_contains(r.out, "train stdout", "(2 classes, 20 images, 1x4x4, 1 bad image skipped)");
    run_free(&r);

    /* An empty class folder. */
    pathf(root, "%s/bad_empty", g_base);
    fresh_dir(root);
    write_tree(root, &s, animals);
    mkdir_in(sub, root, "zebra");
    expect_refused("empty_class", 1, ARGS("--data", root), ARGS(sub));

    /* One class. */
    pathf(root, "%s/bad_one", g_base);
    fresh_dir(root);
    write_png(pathf(p, "%s/x.png", mkdir_in(sub, root, "only")), s.images, 1, 4, 4);
    expect_refused("one_class", 1, ARGS("--data", root), ARGS(root));

    /* A symlink loop. */
    pathf(root, "%s/bad_loop", g_base);
    fresh_dir(root);
    write_tree(root, &s, animals);
    assert_int_equal(symlink("..", pathf(p, "%s/cat/up", root)), 0);
    expect_refused("loop", 1, ARGS("--data", root), ARGS(root));

    /* A test folder whose classes are not the training set's. */
    pathf(root, "%s/bad_test_classes", g_base);
    fresh_dir(root);
    write_tree(pathf(p, "%s/train", root), &s, animals);
    static const char *const others[] = {"cat", "fox"};
    write_tree(pathf(p, "%s/test", root), &s, others);
    expect_refused("test_classes", 1, ARGS("--data", root), ARGS("fox"));

    /* A test set of another shape (--test-data). */
    pathf(root, "%s/bad_test_shape", g_base);
    fresh_dir(root);
    write_tree(root, &s, animals);
    images_t big = make_images(4, 2, 1, 5, 5, 0);
    char other[PATH_CAP];
    write_tree(pathf(other, "%s/bad_test_shape_other", g_base), &big, animals);
    expect_refused("test_shape", 1, ARGS("--data", root, "--test-data", other),
                   ARGS(other, "1x5x5", "1x4x4"));
    free_images(&big);
    free_images(&s);
}

static void test_bad_csv(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP];
    pathf(dir, "%s/bad_csv", g_base);
    fresh_dir(dir);
    static const struct {
        const char *label, *text, *needle;
    } cases[] = {
        {"fields", "label,a,b,c,d\n0,1,2,3,4\n1,1,2,3\n", "line 3"},
        {"range", "label,a,b,c,d\n0,1,2,3,4\n1,1,256,3,4\n", "line 3"},
        {"label", "label,a,b,c,d\n0,1,2,3,4\nx,1,2,3,4\n", "line 3"},
        {"classes", "label,a,b,c,d\n0,1,2,3,4\n300,1,2,3,4\n", "line 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pathf(p, "%s/%s.csv", dir, cases[i].label);
        write_file(p, cases[i].text, strlen(cases[i].text));
        expect_refused(cases[i].label, 1, ARGS("--data", p), ARGS(p, cases[i].needle));
    }
}

static int group_setup(void **state)
{
    (void)state;
    if (work_dir(g_base, sizeof g_base, "test_data_cli") != 0)
        return -1;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_tree_colour_mixed_sizes),
        cmocka_unit_test(test_png_tree_grey_test_data),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_standardize),
        cmocka_unit_test(test_same_images_same_model),
        cmocka_unit_test(test_resume_data_options),
        cmocka_unit_test(test_bad_folders),
        cmocka_unit_test(test_bad_csv),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
