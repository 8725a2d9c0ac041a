/* Tests for the data sources (src/data/source.c and its adapters): each format on fixtures
 * written here, the same images read as IDX, as a PNG folder tree and as CSV giving the same
 * data set, colour and size conversion, the stratified split, and every kind of bad input. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <stb_image_write.h>

#include "fnn.h"

#define PATH_CAP 1024

/* ---------------------------------------------------------------- helpers */

/* A fresh, empty "$FNN_TMP/test_sources_<name>". */
static const char *fresh_dir(const char *name)
{
    static char buf[8][PATH_CAP];
    static int next;
    const char *tmp = getenv("FNN_TMP");
    char *p = buf[next++ % 8];
    snprintf(p, PATH_CAP, "%s/test_sources_%s", tmp && *tmp ? tmp : "/tmp", name);
    char cmd[PATH_CAP + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

/* "a/b" (and c) in a static buffer of a ring. */
static const char *join(const char *a, const char *b)
{
    static char buf[16][PATH_CAP];
    static int next;
    char *p = buf[next++ % 16], tmp[PATH_CAP];
    snprintf(tmp, PATH_CAP, "%s/%s", a, b); /* a may be an earlier result */
    memcpy(p, tmp, PATH_CAP);
    return p;
}

static const char *mkdir_in(const char *a, const char *b)
{
    const char *p = join(a, b);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

static void write_bytes(const char *path, const void *bytes, size_t len, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (len)
            assert_int_equal(gzwrite(f, bytes, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
        return;
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text), 0);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void write_idx(const char *path, int ndims, const uint32_t *dims, const uint8_t *data,
                      int gz)
{
    size_t len = dims[0] * (ndims == 3 ? (size_t)dims[1] * dims[2] : 1);
    uint8_t *buf = malloc(4 + 4 * ndims + len);
    assert_non_null(buf);
    put_be32(buf, 0x0800u | (uint32_t)ndims);
    for (int i = 0; i < ndims; i++)
        put_be32(buf + 4 + 4 * i, dims[i]);
    memcpy(buf + 4 + 4 * ndims, data, len);
    write_bytes(path, buf, 4 + 4 * ndims + len, gz);
    free(buf);
}

/* A grey (c = 1, planes) or colour image (c = 3, planes) as a PNG. */
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

/* A Fashion-MNIST-like set: n images of h x w, labels class-sorted (n / k of each), pixels
 * from a fixed hash so every image differs. */
typedef struct {
    int n, h, w, k;
    uint8_t *images; // (n, h, w)
    uint8_t *labels; // (n)
} fixture;

static fixture make_fixture(int n, int k, int h, int w)
{
    fixture f = {n, h, w, k, malloc((size_t)n * h * w), malloc((size_t)n)};
    assert_non_null(f.images);
    assert_non_null(f.labels);
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)n * h * w; i++) {
        x = x * 1664525u + 1013904223u;
        f.images[i] = (uint8_t)(x >> 24);
    }
    for (int i = 0; i < n; i++)
        f.labels[i] = (uint8_t)(i * k / n);
    return f;
}

static void fixture_free(fixture *f)
{
    free(f->images);
    free(f->labels);
}

static void fixture_idx(const fixture *f, const char *dir, const char *prefix, const char *word,
                        int gz)
{
    char name[256];
    uint32_t idims[3] = {(uint32_t)f->n, (uint32_t)f->h, (uint32_t)f->w}, ldims[1] = {(uint32_t)f->n};
    snprintf(name, sizeof name, "%s%s-images-idx3-ubyte%s", prefix, word, gz ? ".gz" : "");
    write_idx(join(dir, name), 3, idims, f->images, gz);
    snprintf(name, sizeof name, "%s%s-labels-idx1-ubyte%s", prefix, word, gz ? ".gz" : "");
    write_idx(join(dir, name), 1, ldims, f->labels, gz);
}

static const char *const class_dirs[] = {"a_shirt", "b_shoe", "c_bag", "d", "e", "f"};

/* The fixture as a folder tree under root: class folders in label order, files numbered. */
static void fixture_tree(const fixture *f, const char *root)
{
    for (int k = 0; k < f->k; k++)
        mkdir_in(root, class_dirs[k]);
    for (int i = 0; i < f->n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s/%05d.png", class_dirs[f->labels[i]], i);
        write_png(join(root, name), f->images + (size_t)i * f->h * f->w, 1, f->h, f->w);
    }
}

static void fixture_csv(const fixture *f, const char *path, int gz)
{
    size_t cap = (size_t)f->n * (f->h * f->w * 4 + 8) + 65536, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)sprintf(text, "label");
    for (int j = 0; j < f->h * f->w; j++)
        len += (size_t)sprintf(text + len, ",pixel%d", j + 1);
    text[len++] = '\n';
    for (int i = 0; i < f->n; i++) {
        len += (size_t)sprintf(text + len, "%d", f->labels[i]);
        for (int j = 0; j < f->h * f->w; j++)
            len += (size_t)sprintf(text + len, ",%d", f->images[(size_t)i * f->h * f->w + j]);
        text[len++] = '\n';
    }
    write_bytes(path, text, len, gz);
    free(text);
}

static void assert_same(const fixture *f, const fnn_dataset *d)
{
    assert_int_equal(d->n, f->n);
    assert_int_equal(d->c, 1);
    assert_int_equal(d->h, f->h);
    assert_int_equal(d->w, f->w);
    assert_int_equal(d->nclasses, f->k);
    assert_memory_equal(d->images, f->images, (size_t)f->n * f->h * f->w);
    assert_memory_equal(d->labels, f->labels, (size_t)f->n);
}

/* Loading path fails with status s and a message holding each of the NULL-ended strings. */
static void expect_fail(const char *path, const char *split, const fnn_data_options *o,
                        fnn_status s, ...)
{
    fnn_dataset d;
    fnn_error err = {0};
    fnn_status got = fnn_data_load(path, split, o, &d, &err);
    if (got != s)
        fail_msg("%s: status %s, expected %s (%s)", path, fnn_status_name(got),
                 fnn_status_name(s), err.msg);
    assert_null(d.images);
    va_list ap;
    va_start(ap, s);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(err.msg, want))
            fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    va_end(ap);
}

/* ---------------------------------------------------------------- one data set, three formats */

/* The same images as IDX, a PNG folder tree and CSV: identical data sets, byte for byte. */
static void test_three_formats_agree(void **state)
{
    (void)state;
    fixture f = make_fixture(60, 3, 7, 5); /* not square: the CSV needs the size */
    const char *idx = fresh_dir("agree_idx"), *tree = fresh_dir("agree_tree");
    char csv[PATH_CAP]; /* kept: join's buffers are reused */
    snprintf(csv, sizeof csv, "%s", join(fresh_dir("agree_csv"), "my_train.csv"));
    fixture_idx(&f, idx, "", "train", 1);
    fixture_tree(&f, tree);
    fixture_csv(&f, csv, 0);
    fnn_data_options o = {.h = 7, .w = 5};
    const char *paths[3] = {idx, tree, csv};
    const fnn_data_format formats[3] = {FNN_FORMAT_IDX, FNN_FORMAT_FOLDER, FNN_FORMAT_CSV};
    for (int i = 0; i < 3; i++) {
        fnn_source *s;
        fnn_error err = {0};
        if (fnn_source_open(paths[i], "train", &o, &s, &err) != FNN_OK)
            fail_msg("%s: %s", paths[i], err.msg);
        assert_int_equal(fnn_source_format(s), formats[i]);
        fnn_source_close(s);
        fnn_dataset d;
        assert_int_equal(fnn_data_load(paths[i], "train", &o, &d, &err), FNN_OK);
        assert_same(&f, &d);
        if (formats[i] == FNN_FORMAT_FOLDER) {
            assert_non_null(d.class_names);
            assert_string_equal(d.class_names[1], "b_shoe");
        } else {
            assert_null(d.class_names);
        }
        fnn_dataset_free(&d);
    }
    fixture_free(&f);
}

/* ---------------------------------------------------------------- each adapter */

/* The installed Fashion-MNIST, detected as IDX: the same set as fnn_dataset_load's. */
static void test_default_data(void **state)
{
    (void)state;
    if (access(FNN_DEFAULT_DATA_DIR, R_OK) != 0)
        skip();
    fnn_source *s;
    fnn_dataset a, b;
    fnn_error err = {0};
    assert_int_equal(fnn_source_open(FNN_DEFAULT_DATA_DIR, "test", NULL, &s, &err), FNN_OK);
    assert_int_equal(fnn_source_format(s), FNN_FORMAT_IDX);
    assert_int_equal(fnn_source_count(s), 10000);
    assert_int_equal(fnn_source_num_classes(s), 10);
    assert_null(fnn_source_class_name(s, 0));
    fnn_source_close(s);
    assert_int_equal(fnn_data_load(FNN_DEFAULT_DATA_DIR, "test", NULL, &a, &err), FNN_OK);
    assert_int_equal(fnn_dataset_load(FNN_DEFAULT_DATA_DIR, "t10k", &b, &err), FNN_OK);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.images, b.images, (size_t)a.n * 784);
    assert_memory_equal(a.labels, b.labels, (size_t)a.n);
    fnn_dataset_free(&a);
    fnn_dataset_free(&b);
}

/* The source interface: shape, names, a range read, and its bounds. */
static void test_source_interface(void **state)
{
    (void)state;
    fixture f = make_fixture(12, 3, 4, 4);
    const char *tree = fresh_dir("iface");
    fixture_tree(&f, tree);
    write_text(join(tree, "README.txt"), "not an image, beside the classes");
    write_text(join(join(tree, "a_shirt"), "notes.txt"), "skipped: not an image extension");
    write_text(join(join(tree, "a_shirt"), ".hidden.png"), "skipped: hidden");
    fnn_source *s;
    fnn_error err = {0};
    assert_int_equal(fnn_source_open(tree, "train", NULL, &s, &err), FNN_OK);
    int c, h, w;
    fnn_source_shape(s, &c, &h, &w);
    assert_int_equal(c, 1);
    assert_int_equal(h, 4);
    assert_int_equal(w, 4);
    assert_int_equal(fnn_source_count(s), 12);
    assert_int_equal(fnn_source_num_classes(s), 3);
    assert_string_equal(fnn_source_class_name(s, 2), "c_bag");
    assert_null(fnn_source_class_name(s, 3));
    assert_int_equal(fnn_source_skipped(s), 0);
    uint8_t im[3 * 16], lb[3];
    assert_int_equal(fnn_source_read(s, 5, 3, im, lb, &err), FNN_OK);
    assert_memory_equal(im, f.images + 5 * 16, sizeof im);
    assert_memory_equal(lb, f.labels + 5, 3);
    assert_int_equal(fnn_source_read(s, 10, 3, im, lb, &err), FNN_ERR_ARG);
    fnn_source_close(s);
    /* Without train/ and test/ the tree is one split. */
    expect_fail(tree, "test", NULL, FNN_ERR_IO, "no test split", NULL);
    expect_fail(tree, "validation", NULL, FNN_ERR_ARG, "validation", NULL);
    fixture_free(&f);
}

static void on_progress(void *user, long done, long total)
{
    long *last = user;
    assert_true(done <= total);
    assert_true(done >= last[0]);
    last[0] = done;
    last[1] = total;
}

/* train/ and test/ at the top: two splits with the training split's class list. */
static void test_folder_splits(void **state)
{
    (void)state;
    fixture tr = make_fixture(9, 3, 3, 3), te = make_fixture(4, 2, 3, 3);
    const char *root = fresh_dir("splits");
    fixture_tree(&tr, mkdir_in(root, "train"));
    fixture_tree(&te, mkdir_in(root, "test")); /* no c_bag folder in test */
    long progress[2] = {0, 0};
    fnn_data_options o = {.threads = 2, .on_progress = on_progress, .user = progress};
    fnn_dataset d;
    fnn_error err = {0};
    assert_int_equal(fnn_data_load(root, "test", &o, &d, &err), FNN_OK);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.nclasses, 3);
    assert_string_equal(d.class_names[2], "c_bag");
    assert_memory_equal(d.labels, te.labels, 4);
    assert_int_equal(progress[0], 4);
    assert_int_equal(progress[1], 4);
    fnn_dataset_free(&d);
    progress[0] = 0;
    assert_int_equal(fnn_data_load(root, "train", &o, &d, &err), FNN_OK);
    assert_int_equal(d.n, 9);
    assert_int_equal(progress[0], 9);
    fnn_dataset_free(&d);
    /* Every file of the split is the user's: listed for the commands' output checks. */
    write_text(join(join(root, "test"), "b_shoe/notes.txt"), "x");
    char **files;
    int n;
    assert_int_equal(fnn_data_files(root, "test", NULL, &files, &n, &err), FNN_OK);
    assert_int_equal(n, 5);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        seen += strstr(files[i], "notes.txt") != NULL;
        free(files[i]);
    }
    free(files);
    assert_int_equal(seen, 1);
    /* A test class the training split lacks cannot be labelled. */
    mkdir_in(join(root, "test"), "zebra");
    expect_fail(root, "test", NULL, FNN_ERR_FORMAT, "zebra", "a class that", NULL);
    fixture_free(&tr);
    fixture_free(&te);
}

/* Colour: RGB PNGs read as 3 planes, as grey (stb_image's luma) and back to 3 repeated. */
static void test_colour(void **state)
{
    (void)state;
    fixture f = make_fixture(12, 2, 3 * 4, 5); /* 12 images of 3 planes of 4 x 5 */
    const char *tree = fresh_dir("colour");
    for (int k = 0; k < 2; k++)
        mkdir_in(tree, class_dirs[k]);
    for (int i = 0; i < 12; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s/%02d.png", class_dirs[i / 6], i);
        write_png(join(tree, name), f.images + (size_t)i * 60, 3, 4, 5);
    }
    fnn_dataset rgb, grey, back;
    fnn_error err = {0};
    assert_int_equal(fnn_data_load(tree, "train", NULL, &rgb, &err), FNN_OK);
    assert_int_equal(rgb.c, 3);
    assert_memory_equal(rgb.images, f.images, 12 * 60);
    fnn_data_options o1 = {.channels = 1}, o3 = {.channels = 3};
    assert_int_equal(fnn_data_load(tree, "train", &o1, &grey, &err), FNN_OK);
    assert_int_equal(grey.c, 1);
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 20; j++) {
            const uint8_t *p = f.images + i * 60;
            int y = (p[j] * 77 + p[20 + j] * 150 + p[40 + j] * 29) >> 8;
            assert_int_equal(grey.images[i * 20 + j], y);
        }
    /* Grey IDX to colour: the plane three times. */
    const char *idx = fresh_dir("colour_idx");
    uint32_t idims[3] = {12, 4, 5}, ldims[1] = {12};
    write_idx(join(idx, "train-images-idx3-ubyte"), 3, idims, grey.images, 0);
    write_idx(join(idx, "train-labels-idx1-ubyte"), 1, ldims, grey.labels, 0);
    assert_int_equal(fnn_data_load(idx, "train", &o3, &back, &err), FNN_OK);
    assert_int_equal(back.c, 3);
    for (int i = 0; i < 12; i++)
        for (int k = 0; k < 3; k++)
            assert_memory_equal(back.images + i * 60 + k * 20, grey.images + i * 20, 20);
    fnn_dataset_free(&rgb);
    fnn_dataset_free(&grey);
    fnn_dataset_free(&back);
    fixture_free(&f);
}

/* fnn_image_load in colour: the planes scaled to [0, 1]; grey: stb_image's luma. */
static void test_image_load_channels(void **state)
{
    (void)state;
    fixture f = make_fixture(1, 1, 3 * 4, 5); /* one image of 3 planes of 4 x 5 */
    const char *path = join(fresh_dir("image_load"), "rgb.png");
    write_png(path, f.images, 3, 4, 5);
    float x[60];
    fnn_error err = {0};
    assert_int_equal(fnn_image_load(path, 3, 4, 5, 0, x, &err), FNN_OK);
    for (int i = 0; i < 60; i++)
        assert_float_equal(x[i], f.images[i] / 255.0f, 1e-6);
    assert_int_equal(fnn_image_load(path, 1, 4, 5, 0, x, &err), FNN_OK);
    for (int j = 0; j < 20; j++) {
        int y = (f.images[j] * 77 + f.images[20 + j] * 150 + f.images[40 + j] * 29) >> 8;
        assert_float_equal(x[j], y / 255.0f, 1e-6);
    }
    assert_int_equal(fnn_image_load(path, 2, 4, 5, 0, x, &err), FNN_ERR_ARG);
    fixture_free(&f);
}

/* A size in the options resizes folder images by area averaging, mixed sizes included. */
static void test_folder_resize(void **state)
{
    (void)state;
    const char *tree = fresh_dir("resize");
    uint8_t big[8 * 8], small[4 * 6];
    for (int i = 0; i < 64; i++)
        big[i] = (uint8_t)((i / 8 / 2 * 4 + i % 8 / 2) * 10); /* 2x2 blocks of one value */
    memset(small, 77, sizeof small);
    write_png(join(mkdir_in(tree, "a"), "big.png"), big, 1, 8, 8);
    write_png(join(mkdir_in(tree, "b"), "small.png"), small, 1, 4, 6);
    expect_fail(tree, "train", NULL, FNN_ERR_FORMAT, "mixed sizes", "big.png is 8x8",
                "small.png is 4x6", NULL);
    fnn_data_options o = {.h = 4, .w = 4};
    fnn_dataset d;
    fnn_error err = {0};
    assert_int_equal(fnn_data_load(tree, "train", &o, &d, &err), FNN_OK);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(d.images[i], i * 10);
        assert_int_equal(d.images[16 + i], 77);
    }
    fnn_dataset_free(&d);
}

/* IDX: prefixed names (EMNIST), .gz, the test spelling, more than ten classes, a file path. */
static void test_idx_sets(void **state)
{
    (void)state;
    fixture tr = make_fixture(47, 47, 4, 4), te = make_fixture(5, 5, 4, 4);
    const char *dir = fresh_dir("emnist");
    fixture_idx(&tr, dir, "emnist-balanced-", "train", 1);
    fixture_idx(&te, dir, "emnist-balanced-", "test", 1);
    fnn_dataset d;
    fnn_error err = {0};
    assert_int_equal(fnn_data_load(dir, "train", NULL, &d, &err), FNN_OK);
    assert_same(&tr, &d);
    fnn_dataset_free(&d);
    assert_int_equal(fnn_data_load(dir, "test", NULL, &d, &err), FNN_OK);
    assert_same(&te, &d);
    fnn_dataset_free(&d);
    /* An images file itself; its test split is the t10k or test file beside it. */
    const char *file = join(dir, "emnist-balanced-train-images-idx3-ubyte.gz");
    assert_int_equal(fnn_data_load(file, "test", NULL, &d, &err), FNN_OK);
    assert_same(&te, &d);
    fnn_dataset_free(&d);
    char **files;
    int n;
    assert_int_equal(fnn_data_files(dir, "train", NULL, &files, &n, &err), FNN_OK);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        free(files[i]);
    free(files);
    /* Two sets side by side: which one is meant is the user's to say. */
    fixture_idx(&tr, dir, "emnist-letters-", "train", 1);
    expect_fail(dir, "train", NULL, FNN_ERR_FORMAT, "several IDX sets", NULL);
    /* IDX images are not resized. */
    fnn_data_options o = {.h = 8, .w = 8};
    expect_fail(file, "train", &o, FNN_ERR_ARG, "4x4", NULL);
    fixture_free(&tr);
    fixture_free(&te);
}

/* CSV: Kaggle's square layout, gzipped, and the test file named for the training one. */
static void test_csv(void **state)
{
    (void)state;
    fixture tr = make_fixture(30, 3, 4, 4), te = make_fixture(6, 3, 4, 4);
    const char *dir = fresh_dir("csv");
    fixture_csv(&tr, join(dir, "fashion-mnist_train.csv.gz"), 1);
    fixture_csv(&te, join(dir, "fashion-mnist_test.csv.gz"), 1);
    fnn_dataset d;
    fnn_error err = {0};
    const char *path = join(dir, "fashion-mnist_train.csv.gz");
    assert_int_equal(fnn_data_load(path, "train", NULL, &d, &err), FNN_OK);
    assert_same(&tr, &d);
    fnn_dataset_free(&d);
    assert_int_equal(fnn_data_load(path, "test", NULL, &d, &err), FNN_OK);
    assert_same(&te, &d);
    fnn_dataset_free(&d);
    /* Detected by content without the extension; CRLF line ends and blank lines taken. */
    const char *plain = join(dir, "data");
    write_text(plain, "label,a,b,c,d\r\n1,0,1,2,255\r\n\r\n0,9,8,7,6\r\n");
    assert_int_equal(fnn_data_load(plain, "train", NULL, &d, &err), FNN_OK);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.h, 2);
    assert_int_equal(d.images[3], 255);
    assert_int_equal(d.labels[1], 0);
    fnn_dataset_free(&d);
    expect_fail(plain, "test", NULL, FNN_ERR_IO, "no test split", NULL);
    fixture_free(&tr);
    fixture_free(&te);
}

/* Writes n CIFAR records into path, label i % 10 and pixels from i. */
static void write_cifar(const char *path, int n, int first)
{
    uint8_t *b = malloc((size_t)n * 3073);
    assert_non_null(b);
    for (int i = 0; i < n; i++) {
        b[i * 3073] = (uint8_t)((first + i) % 10);
        for (int j = 0; j < 3072; j++)
            b[i * 3073 + 1 + j] = (uint8_t)(first + i + j * 7);
    }
    write_bytes(path, b, (size_t)n * 3073, 0);
    free(b);
}

static void test_cifar(void **state)
{
    (void)state;
    const char *top = fresh_dir("cifar"), *dir = mkdir_in(top, "cifar-10-batches-bin");
    for (int b = 1; b <= 5; b++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", b);
        write_cifar(join(dir, name), 2, (b - 1) * 2);
    }
    write_cifar(join(dir, "test_batch.bin"), 3, 100);
    write_text(join(dir, "batches.meta.txt"),
               "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
    fnn_source *s;
    fnn_error err = {0};
    assert_int_equal(fnn_source_open(top, "train", NULL, &s, &err), FNN_OK);
    assert_int_equal(fnn_source_format(s), FNN_FORMAT_CIFAR10);
    assert_string_equal(fnn_data_format_name(fnn_source_format(s)), "CIFAR-10");
    assert_int_equal(fnn_source_count(s), 10);
    assert_int_equal(fnn_source_num_classes(s), 10);
    assert_string_equal(fnn_source_class_name(s, 9), "truck");
    uint8_t im[3072], lb;
    assert_int_equal(fnn_source_read(s, 7, 1, im, &lb, &err), FNN_OK);
    assert_int_equal(lb, 7);
    assert_int_equal(im[1024], (uint8_t)(7 + 1024 * 7)); /* the green plane's first pixel */
    fnn_source_close(s);
    fnn_data_options grey = {.channels = 1};
    fnn_dataset d;
    assert_int_equal(fnn_data_load(dir, "test", &grey, &d, &err), FNN_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.c, 1);
    for (int j = 0; j < 1024; j++) { /* stb_image's luma of record 0 (pixels 100 + 7 j) */
        int r = (uint8_t)(100 + j * 7), g = (uint8_t)(100 + (1024 + j) * 7),
            b = (uint8_t)(100 + (2048 + j) * 7);
        assert_int_equal(d.images[j], (r * 77 + g * 150 + b * 29) >> 8);
    }
    fnn_dataset_free(&d);
    char **files;
    int n;
    assert_int_equal(fnn_data_files(top, "train", NULL, &files, &n, &err), FNN_OK);
    assert_int_equal(n, 6); /* five batches and the names */
    for (int i = 0; i < n; i++)
        free(files[i]);
    free(files);
    /* A batch cut inside a record. */
    FILE *f = fopen(join(dir, "data_batch_3.bin"), "ab");
    assert_non_null(f);
    fputc(1, f);
    fclose(f);
    expect_fail(top, "train", NULL, FNN_ERR_FORMAT, "data_batch_3.bin", "6147 bytes",
                "not a whole number", NULL);
}

/* ---------------------------------------------------------------- the stratified split */

static void test_stratify(void **state)
{
    (void)state;
    int counts[3] = {50, 30, 23}, n = 103;
    fnn_dataset d = {.n = n, .c = 1, .h = 1, .w = 2, .nclasses = 3, .owns = 1};
    d.images = malloc(2 * (size_t)n);
    d.labels = malloc((size_t)n);
    assert_non_null(d.images);
    assert_non_null(d.labels);
    for (int i = 0, k = 0, left = counts[0]; i < n; i++, left--) {
        if (left == 0)
            left = counts[++k];
        d.labels[i] = (uint8_t)k;
        d.images[2 * i] = (uint8_t)i; /* each image names itself */
        d.images[2 * i + 1] = (uint8_t)k;
    }
    fnn_dataset a = d, b = d;
    a.images = malloc(2 * (size_t)n), a.labels = malloc((size_t)n);
    b.images = malloc(2 * (size_t)n), b.labels = malloc((size_t)n);
    memcpy(a.images, d.images, 2 * (size_t)n), memcpy(a.labels, d.labels, (size_t)n);
    memcpy(b.images, d.images, 2 * (size_t)n), memcpy(b.labels, d.labels, (size_t)n);
    fnn_error err = {0};
    assert_int_equal(fnn_dataset_stratify(&d, 0.2, 7, &err), FNN_OK);
    assert_int_equal(fnn_dataset_stratify(&a, 0.2, 7, &err), FNN_OK);
    assert_int_equal(fnn_dataset_stratify(&b, 0.2, 8, &err), FNN_OK);
    fnn_dataset tr, val;
    assert_int_equal(fnn_dataset_split(&d, 0.2, &tr, &val, &err), FNN_OK);
    assert_int_equal(val.n, 21); /* 103 - floor(103 * 0.8), Keras's size */
    /* Shares 50, 30, 23 of 21: 10.19, 6.12, 4.69; the largest remainder gets the 21st. */
    int per[3] = {0, 0, 0}, seen[103] = {0};
    for (int i = 0; i < val.n; i++)
        per[val.labels[i]]++;
    assert_int_equal(per[0], 10);
    assert_int_equal(per[1], 6);
    assert_int_equal(per[2], 5);
    for (int i = 0; i < n; i++) {
        assert_int_equal(d.images[2 * i + 1], d.labels[i]); /* labels moved with images */
        seen[d.images[2 * i]]++;
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    assert_memory_equal(a.images, d.images, 2 * (size_t)n);
    assert_true(memcmp(b.images, d.images, 2 * (size_t)n) != 0);
    /* A view cannot be reordered. */
    fnn_dataset view = fnn_dataset_view(&d, 0, 10);
    assert_int_equal(fnn_dataset_stratify(&view, 0.2, 7, &err), FNN_ERR_ARG);
    assert_int_equal(fnn_dataset_stratify(&d, 1.0, 7, &err), FNN_ERR_ARG);
    fnn_dataset_free(&d);
    fnn_dataset_free(&a);
    fnn_dataset_free(&b);
}

/* ---------------------------------------------------------------- bad input */

static void test_bad_images(void **state)
{
    (void)state;
    fixture f = make_fixture(6, 2, 4, 4);
    const char *tree = fresh_dir("bad");
    fixture_tree(&f, tree);
    /* A non-image with an image's name, then a truncated PNG. */
    write_text(join(tree, "a_shirt/00001.png"), "this is text, not a PNG");
    expect_fail(tree, "train", NULL, FNN_ERR_FORMAT, "a_shirt/00001.png", NULL);
    const char *cut = join(tree, "b_shoe/00004.png");
    FILE *in = fopen(cut, "rb");
    assert_non_null(in);
    uint8_t buf[4096];
    size_t len = fread(buf, 1, sizeof buf, in);
    fclose(in);
    write_bytes(cut, buf, len / 2, 0);
    fnn_data_options skip = {.skip_bad = 1};
    fnn_source *s;
    fnn_error err = {0};
    assert_int_equal(fnn_source_open(tree, "train", &skip, &s, &err), FNN_OK);
    assert_int_equal(fnn_source_count(s), 4);
    assert_int_equal(fnn_source_skipped(s), 2);
    uint8_t im[4 * 16], lb[4];
    assert_int_equal(fnn_source_read(s, 0, 4, im, lb, &err), FNN_OK);
    assert_memory_equal(im, f.images, 16);
    assert_memory_equal(im + 16, f.images + 2 * 16, 16); /* item 1 skipped */
    assert_memory_equal(im + 48, f.images + 5 * 16, 16); /* item 4 skipped */
    fnn_source_close(s);
    /* Without skipping, the first bad file in order is named, whatever the threads did. */
    write_text(join(tree, "a_shirt/00001.png"), "");
    fnn_data_options four = {.threads = 4};
    expect_fail(tree, "train", &four, FNN_ERR_FORMAT, "a_shirt/00001.png", NULL);
    fixture_free(&f);
}

/* A JPEG whose scan names a Huffman table no DHT segment defines: stb_image would decode it
 * with tables from uninitialised memory and read outside them (found by fuzz_image); the file
 * is refused by name. The same file with the table it defines loads. */
static void test_jpeg_undefined_huffman_table(void **state)
{
    (void)state;
    const char *tree = fresh_dir("jpeg_tables");
    uint8_t px[8 * 8];
    for (int i = 0; i < 64; i++)
        px[i] = (uint8_t)(i * 4);
    const char *bad = join(mkdir_in(tree, "a"), "x.jpg");
    assert_true(stbi_write_jpg(bad, 8, 8, 1, px, 90) != 0);
    assert_true(stbi_write_jpg(join(mkdir_in(tree, "b"), "y.jpg"), 8, 8, 1, px, 90) != 0);
    fnn_source *s;
    fnn_error err = {0};
    assert_int_equal(fnn_source_open(tree, "train", NULL, &s, &err), FNN_OK);
    fnn_source_close(s);
    FILE *in = fopen(bad, "rb");
    assert_non_null(in);
    uint8_t buf[4096];
    size_t len = fread(buf, 1, sizeof buf, in);
    fclose(in);
    size_t sos = 0;
    for (size_t i = 0; i + 1 < len && !sos; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xDA)
            sos = i;
    assert_true(sos > 0 && sos + 6 < len);
    assert_int_equal(buf[sos + 4], 3);    /* stb writes Y, Cb and Cr */
    assert_int_equal(buf[sos + 6], 0x00); /* Y's tables: DC 0, AC 0 */
    buf[sos + 6] = 0x03;                  /* AC table 3, never defined */
    write_bytes(bad, buf, len, 0);
    expect_fail(tree, "train", NULL, FNN_ERR_FORMAT, "a/x.jpg", "Huffman table AC 3", NULL);
}

static void test_bad_trees(void **state)
{
    (void)state;
    uint8_t px[4] = {1, 2, 3, 4};
    const char *one = fresh_dir("one_class");
    write_png(join(mkdir_in(one, "only"), "x.png"), px, 1, 2, 2);
    expect_fail(one, "train", NULL, FNN_ERR_FORMAT, "a single class folder", "only", NULL);

    const char *empty = fresh_dir("empty_class");
    write_png(join(mkdir_in(empty, "a"), "x.png"), px, 1, 2, 2);
    mkdir_in(empty, "b");
    write_text(join(join(empty, "b"), "notes.txt"), "no image here");
    expect_fail(empty, "train", NULL, FNN_ERR_FORMAT, "empty_class/b", "empty class folder", NULL);

    const char *none = fresh_dir("no_classes");
    write_text(join(none, "x.txt"), "x");
    expect_fail(none, "train", NULL, FNN_ERR_FORMAT, "IDX", "CIFAR-10", "image folder", NULL);

    const char *many = fresh_dir("many_classes");
    for (int k = 0; k <= FNN_MAX_CLASSES; k++) {
        char name[16];
        snprintf(name, sizeof name, "c%03d", k);
        mkdir_in(many, name);
    }
    expect_fail(many, "train", NULL, FNN_ERR_FORMAT, "257 class folders", NULL);

    const char *loop = fresh_dir("loop");
    write_png(join(mkdir_in(loop, "a"), "x.png"), px, 1, 2, 2);
    write_png(join(mkdir_in(loop, "b"), "y.png"), px, 1, 2, 2);
    assert_int_equal(symlink("..", join(join(loop, "b"), "again")), 0);
    expect_fail(loop, "train", NULL, FNN_ERR_FORMAT, "symbolic link loop", NULL);

    expect_fail(join(none, "absent"), "train", NULL, FNN_ERR_IO, "absent",
                "no such file or directory", NULL);
    /* A FIFO is refused, never opened for a read that would wait for a writer. */
    const char *fifo = join(none, "fifo.csv");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    expect_fail(fifo, "train", NULL, FNN_ERR_IO, "fifo.csv", NULL);
    fnn_data_options csv = {.format = FNN_FORMAT_CSV};
    expect_fail(fifo, "train", &csv, FNN_ERR_IO, "not a regular file", NULL);
}

static void test_bad_csv(void **state)
{
    (void)state;
    const char *dir = fresh_dir("bad_csv");
    static const struct {
        const char *text, *want1, *want2;
    } cases[] = {
        {"label,p1,p2,p3,p4\n1,0,0,0,0\n2,0,0,0\n", "line 3", "4 fields, expected 5"},
        {"label,p1,p2,p3,p4\n1,0,0,0,0,9\n", "line 2", "6 fields, expected 5"},
        {"label,p1,p2,p3,p4\n1,0,0,0,256\n", "line 2, column 5", "\"256\""},
        {"label,p1,p2,p3,p4\n1,0,-1,0,0\n", "line 2, column 3", "\"-1\""},
        {"label,p1,p2,p3,p4\n1,0,1.5,0,0\n", "line 2, column 3", "\"1.5\""},
        {"label,p1,p2,p3,p4\nshirt,0,0,0,0\n", "line 2, column 1", "\"shirt\" is not an integer"},
        {"label,p1,p2,p3,p4\n300,0,0,0,0\n", "line 2, column 1", "outside 0 to 255"},
        {"label,p1,p2,p3\n1,0,0,0\n", "3 pixel columns", "not a square"},
        {"label,p1,p2,p3,p4\n", "holds no images", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[32];
        snprintf(name, sizeof name, "case%zu.csv", i);
        const char *path = join(dir, name);
        write_text(path, cases[i].text);
        expect_fail(path, "train", NULL, FNN_ERR_FORMAT, name, cases[i].want1, cases[i].want2,
                    NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_formats_agree),
        cmocka_unit_test(test_source_interface),
        cmocka_unit_test(test_default_data),
        cmocka_unit_test(test_folder_splits),
        cmocka_unit_test(test_colour),
        cmocka_unit_test(test_image_load_channels),
        cmocka_unit_test(test_folder_resize),
        cmocka_unit_test(test_idx_sets),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_stratify),
        cmocka_unit_test(test_bad_images),
        cmocka_unit_test(test_jpeg_undefined_huffman_table),
        cmocka_unit_test(test_bad_trees),
        cmocka_unit_test(test_bad_csv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
