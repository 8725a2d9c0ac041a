/* Tests for src/data: the IDX reader on the real data set and on generated valid and malformed
 * files, the directory finder, views, the Keras validation split, k-fold splits and the class
 * names. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "fnn.h"

#define MAGIC_IMAGES 0x00000803u
#define MAGIC_LABELS 0x00000801u

/* ---------------------------------------------------------------- helpers */

/* "$FNN_TMP/test_data_<name>", so files never collide with other test programs'. */
static const char *tmp_path(const char *name)
{
    static char buf[8][1024];
    static int next;
    const char *dir = getenv("FNN_TMP");
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/test_data_%s", dir && *dir ? dir : "/tmp", name);
    return p;
}

static void write_bytes(const char *path, const uint8_t *bytes, size_t len, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (len > 0)
            assert_int_equal(gzwrite(f, bytes, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes an IDX file: magic, ndims big-endian dims, then len payload bytes (which may
 * disagree with the dims on purpose). */
static void write_idx(const char *path, uint32_t magic, int ndims, const uint32_t *dims,
                      const uint8_t *payload, size_t len, int gz)
{
    size_t header = 4 + 4 * (size_t)ndims;
    uint8_t *buf = malloc(header + len + 1);
    assert_non_null(buf);
    put_be32(buf, magic);
    for (int i = 0; i < ndims; i++)
        put_be32(buf + 4 + 4 * i, dims[i]);
    if (len > 0)
        memcpy(buf + header, payload, len);
    write_bytes(path, buf, header + len, gz);
    free(buf);
}

/* Three 2x4 images (not square, so a swapped h and w shows) with pixel i*8 + j*3 + 1, and
 * their labels. */
#define SMALL_N 3
#define SMALL_H 2
#define SMALL_W 4
static const uint8_t small_labels[SMALL_N] = {0, 12, 3};

static void small_pixels(uint8_t *px)
{
    for (int i = 0; i < SMALL_N * SMALL_H * SMALL_W; i++)
        px[i] = (uint8_t)(i * 3 + 1);
}

static void write_small(const char *images, const char *labels, int gz)
{
    uint8_t px[SMALL_N * SMALL_H * SMALL_W];
    small_pixels(px);
    uint32_t idims[3] = {SMALL_N, SMALL_H, SMALL_W}, ldims[1] = {SMALL_N};
    write_idx(images, MAGIC_IMAGES, 3, idims, px, sizeof px, gz);
    write_idx(labels, MAGIC_LABELS, 1, ldims, small_labels, SMALL_N, gz);
}

/* Loads a pair that must fail with status s; the message must name bad_path and contain
 * each of the extra strings (NULL-terminated). */
static void expect_failure(const char *images, const char *labels, fnn_status s,
                           const char *bad_path, ...)
{
    fnn_dataset d;
    fnn_error err = {0};
    fnn_status st = fnn_idx_load(images, labels, &d, &err);
    if (st != s)
        print_error("status %s, expected %s; message: %s\n", fnn_status_name(st),
                    fnn_status_name(s), err.msg);
    assert_int_equal(st, s);
    assert_int_equal(err.status, s);
    assert_null(d.images);
    assert_null(d.labels);
    assert_int_equal(d.n, 0);
    if (!strstr(err.msg, bad_path))
        print_error("message does not name %s: %s\n", bad_path, err.msg);
    assert_non_null(strstr(err.msg, bad_path));
    va_list ap;
    va_start(ap, bad_path);
    for (const char *want = va_arg(ap, const char *); want; want = va_arg(ap, const char *)) {
        if (!strstr(err.msg, want))
            print_error("message lacks \"%s\": %s\n", want, err.msg);
        assert_non_null(strstr(err.msg, want));
    }
    va_end(ap);
}

static void check_class_counts(const fnn_dataset *d, int each)
{
    int counts[FNN_MAX_CLASSES] = {0};
    for (int i = 0; i < d->n; i++)
        counts[d->labels[i]]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(counts[c], each);
}

static long pixel_sum(const uint8_t *img, int size)
{
    long s = 0;
    for (int i = 0; i < size; i++)
        s += img[i];
    return s;
}

/* ---------------------------------------------------------------- the real data set */

static void test_real_t10k(void **state)
{
    (void)state;
    if (access(FNN_DEFAULT_DATA_DIR, R_OK) != 0)
        skip();
    fnn_dataset d;
    fnn_error err = {0};
    fnn_status st = fnn_dataset_load(FNN_DEFAULT_DATA_DIR, "t10k", &d, &err);
    if (st != FNN_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(st, FNN_OK);
    assert_int_equal(d.n, 10000);
    assert_int_equal(d.h, 28);
    assert_int_equal(d.w, 28);
    assert_int_equal(d.nclasses, 10);
    assert_int_equal(d.owns, 1);
    check_class_counts(&d, 1000);
    /* First labels and first image's pixel sum, read independently with Python's gzip. */
    static const uint8_t first[8] = {9, 2, 1, 1, 6, 1, 4, 6};
    assert_memory_equal(d.labels, first, 8);
    assert_int_equal(pixel_sum(d.images, 28 * 28), 33456);
    fnn_dataset_free(&d);
    assert_null(d.images);
}

static void test_real_train(void **state)
{
    (void)state;
    if (access(FNN_DEFAULT_DATA_DIR, R_OK) != 0)
        skip();
    fnn_dataset d;
    fnn_error err = {0};
    assert_int_equal(fnn_dataset_load(FNN_DEFAULT_DATA_DIR, "train", &d, &err), FNN_OK);
    assert_int_equal(d.n, 60000);
    check_class_counts(&d, 6000);
    assert_int_equal(d.labels[0], 9);
    assert_int_equal(pixel_sum(d.images, 28 * 28), 76247);
    /* The last image proves the whole 47 MB arrived, not just the first chunks. */
    assert_int_equal(d.labels[59999], 5);
    fnn_dataset_free(&d);
}

/* ---------------------------------------------------------------- valid generated files */

static void roundtrip(int gz)
{
    const char *images = tmp_path(gz ? "rt-images.gz" : "rt-images");
    const char *labels = tmp_path(gz ? "rt-labels.gz" : "rt-labels");
    write_small(images, labels, gz);
    fnn_dataset d;
    fnn_error err = {0};
    fnn_status st = fnn_idx_load(images, labels, &d, &err);
    if (st != FNN_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(st, FNN_OK);
    assert_int_equal(d.n, SMALL_N);
    assert_int_equal(d.h, SMALL_H);
    assert_int_equal(d.w, SMALL_W);
    assert_int_equal(d.nclasses, 13); /* largest label 12 */
    uint8_t px[SMALL_N * SMALL_H * SMALL_W];
    small_pixels(px);
    assert_memory_equal(d.images, px, sizeof px);
    assert_memory_equal(d.labels, small_labels, SMALL_N);
    fnn_dataset_free(&d);
}

static void test_roundtrip_plain(void **state)
{
    (void)state;
    roundtrip(0);
}

static void test_roundtrip_gz(void **state)
{
    (void)state;
    roundtrip(1);
}

/* Gzipped images with plain labels: detection is per file, by content. */
static void test_mixed_compression(void **state)
{
    (void)state;
    const char *images = tmp_path("mix-images");
    const char *labels = tmp_path("mix-labels");
    uint8_t px[2 * 3 * 3] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 255, 254, 253, 252, 251, 250, 249, 248, 247};
    uint8_t lab[2] = {1, 2};
    uint32_t idims[3] = {2, 3, 3}, ldims[1] = {2};
    write_idx(images, MAGIC_IMAGES, 3, idims, px, sizeof px, 1);
    write_idx(labels, MAGIC_LABELS, 1, ldims, lab, 2, 0);
    fnn_dataset d;
    fnn_error err = {0};
    assert_int_equal(fnn_idx_load(images, labels, &d, &err), FNN_OK);
    assert_int_equal(d.nclasses, 3); /* the data's own count: 1 + the largest label */
    assert_memory_equal(d.images, px, sizeof px);
    assert_memory_equal(d.labels, lab, 2);
    fnn_dataset_free(&d);
}

/* ---------------------------------------------------------------- malformed files */

static void test_wrong_magic(void **state)
{
    (void)state;
    const char *images = tmp_path("magic-images");
    const char *labels = tmp_path("magic-labels");
    write_small(images, labels, 0);
    write_bytes(images, (const uint8_t *)"GIF89a\0\0\0\0\0\0\0\0\0\0\0", 17, 0);
    expect_failure(images, labels, FNN_ERR_FORMAT, images, "0x47494638", "0x00000803", NULL);
    /* A labels file passed as images: right type, wrong number of dimensions. */
    write_small(images, labels, 0);
    expect_failure(labels, labels, FNN_ERR_FORMAT, labels, "0x00000801", "0x00000803",
                   "1 dimensions", NULL);
}

static void test_wrong_type_byte(void **state)
{
    (void)state;
    const char *images = tmp_path("type-images.gz");
    const char *labels = tmp_path("type-labels.gz");
    write_small(images, labels, 1);
    uint32_t ldims[1] = {SMALL_N};
    write_idx(labels, 0x00000D01u, 1, ldims, small_labels, SMALL_N, 1);
    expect_failure(images, labels, FNN_ERR_FORMAT, labels, "0x0d", "float", "offset 2", NULL);
}

static void test_truncated_images(void **state)
{
    (void)state;
    for (int gz = 0; gz < 2; gz++) {
        const char *images = tmp_path(gz ? "trunc-images.gz" : "trunc-images");
        const char *labels = tmp_path(gz ? "trunc-labels.gz" : "trunc-labels");
        write_small(images, labels, gz);
        uint8_t px[SMALL_N * SMALL_H * SMALL_W];
        small_pixels(px);
        uint32_t idims[3] = {SMALL_N, SMALL_H, SMALL_W};
        write_idx(images, MAGIC_IMAGES, 3, idims, px, sizeof px - 4, gz);
        expect_failure(images, labels, FNN_ERR_FORMAT, images, "truncated", "3 images",
                       "24 bytes", "only 20 bytes", NULL);
    }
}

static void test_truncated_labels(void **state)
{
    (void)state;
    const char *images = tmp_path("truncl-images");
    const char *labels = tmp_path("truncl-labels");
    write_small(images, labels, 0);
    uint32_t ldims[1] = {SMALL_N};
    write_idx(labels, MAGIC_LABELS, 1, ldims, small_labels, SMALL_N - 1, 0);
    expect_failure(images, labels, FNN_ERR_FORMAT, labels, "truncated", "3 labels",
                   "only 2 bytes", NULL);
}

static void test_truncated_header(void **state)
{
    (void)state;
    const char *images = tmp_path("trunch-images");
    const char *labels = tmp_path("trunch-labels");
    write_small(images, labels, 0);
    static const uint8_t head[10] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0};
    write_bytes(images, head, sizeof head, 0);
    expect_failure(images, labels, FNN_ERR_FORMAT, images, "10 bytes", "16 bytes", NULL);
    write_bytes(images, head, 2, 1);
    expect_failure(images, labels, FNN_ERR_FORMAT, images, "2 bytes", NULL);
    write_bytes(images, head, 0, 0);
    expect_failure(images, labels, FNN_ERR_FORMAT, images, "0 bytes", NULL);
}

/* A .gz file cut in the middle of its compressed stream, rather than a short IDX file
 * compressed whole. */
static void test_truncated_gzip_stream(void **state)
{
    (void)state;
    const char *images = tmp_path("cutgz-images.gz");
    const char *labels = tmp_path("cutgz-labels.gz");
    write_small(images, labels, 1); /* images rewritten below */
    enum { N = 50, SIDE = 28 };
    uint8_t *px = malloc(N * SIDE * SIDE);
    assert_non_null(px);
    /* Incompressible-ish bytes so the stream is long enough to cut. */
    uint32_t x = 12345;
    for (int i = 0; i < N * SIDE * SIDE; i++) {
        x = x * 1103515245u + 12345u;
        px[i] = (uint8_t)(x >> 24);
    }
    uint32_t idims[3] = {N, SIDE, SIDE};
    write_idx(images, MAGIC_IMAGES, 3, idims, px, N * SIDE * SIDE, 1);
    free(px);
    struct stat sb;
    assert_int_equal(stat(images, &sb), 0);
    assert_int_equal(truncate(images, sb.st_size / 2), 0);
    expect_failure(images, labels, FNN_ERR_FORMAT, images, "truncated", NULL);
}

static void test_corrupt_gzip_stream(void **state)
{
    (void)state;
    const char *images = tmp_path("badgz-images.gz");
    const char *labels = tmp_path("badgz-labels.gz");
    write_small(images, labels, 1);
    /* Flip the stored CRC-32 (the trailer's first four bytes). */
    FILE *f = fopen(images, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -8, SEEK_END), 0);
    int c = fgetc(f);
    assert_true(c != EOF);
    assert_int_equal(fseek(f, -8, SEEK_END), 0);
    assert_int_equal(fputc(c ^ 0xff, f), c ^ 0xff);
    assert_int_equal(fclose(f), 0);
    expect_failure(images, labels, FNN_ERR_FORMAT, images, "corrupt", NULL);
}

/* Run in a child whose address space is capped a little above its current size: a loader
 * that allocates what the header claims (7.8 GB here) fails with NOMEM instead of FORMAT. */
static void test_huge_claim(void **state)
{
    (void)state;
    const char *plain = tmp_path("huge-images");
    const char *gz = tmp_path("huge-images.gz");
    const char *labels = tmp_path("huge-labels");
    uint8_t junk[100] = {1, 2, 3};
    uint32_t dims[3] = {9999999, 28, 28};
    write_idx(plain, MAGIC_IMAGES, 3, dims, junk, sizeof junk, 0);
    write_idx(gz, MAGIC_IMAGES, 3, dims, junk, sizeof junk, 1);
    uint32_t ldims[1] = {9999999};
    write_idx(labels, MAGIC_LABELS, 1, ldims, junk, sizeof junk, 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves terabytes of shadow memory up front */
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f) {
            if (fscanf(f, "%ld", &pages) != 1)
                pages = 0;
            fclose(f);
        }
        if (pages > 0) {
            rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
            struct rlimit rl = {cap, cap};
            if (setrlimit(RLIMIT_AS, &rl) != 0)
                _exit(3);
        }
#endif
        const char *files[2] = {plain, gz};
        for (int i = 0; i < 2; i++) {
            fnn_dataset d;
            fnn_error err = {0};
            fnn_status st = fnn_idx_load(files[i], labels, &d, &err);
            if (st != FNN_ERR_FORMAT || !strstr(err.msg, "truncated") ||
                !strstr(err.msg, "9999999")) {
                fprintf(stderr, "%s: %s: %s\n", files[i], fnn_status_name(st), err.msg);
                _exit(1);
            }
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* The brief's extreme: 9,999,999 images of 4096x4096 (160 TB) in a 100-byte file. */
    uint32_t big[3] = {9999999, 4096, 4096};
    write_idx(plain, MAGIC_IMAGES, 3, big, junk, sizeof junk, 0);
    write_idx(gz, MAGIC_IMAGES, 3, big, junk, sizeof junk, 1);
    expect_failure(plain, labels, FNN_ERR_FORMAT, plain, "truncated", "9999999", NULL);
    expect_failure(gz, labels, FNN_ERR_FORMAT, gz, "truncated", "9999999", NULL);
}

static void test_labels_huge_claim(void **state)
{
    (void)state;
    for (int gz = 0; gz < 2; gz++) {
        const char *images = tmp_path("hugel-images");
        const char *labels = tmp_path(gz ? "hugel-labels.gz" : "hugel-labels");
        write_small(images, labels, 0);
        uint8_t junk[100] = {0};
        uint32_t ldims[1] = {9999999};
        write_idx(labels, MAGIC_LABELS, 1, ldims, junk, sizeof junk, gz);
        expect_failure(images, labels, FNN_ERR_FORMAT, labels, "truncated", "9999999 labels",
                       "only 100 bytes", NULL);
    }
}

static void test_dims_out_of_range(void **state)
{
    (void)state;
    const char *images = tmp_path("dims-images");
    const char *labels = tmp_path("dims-labels");
    write_small(images, labels, 0);
    uint8_t px[64] = {0};
    static const struct {
        uint32_t dims[3];
        const char *what;
        const char *offset;
    } cases[] = {
        {{0, 2, 2}, "item count 0", "offset 4"},
        {{3, 0, 2}, "row count 0", "offset 8"},
        {{3, 2, 0}, "column count 0", "offset 12"},
        {{3, 4097, 2}, "row count 4097", "offset 8"},
        {{3, 2, 4097}, "column count 4097", "offset 12"},
        {{10000001, 1, 1}, "item count 10000001", "offset 4"},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu}, "item count 4294967295", "offset 4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_idx(images, MAGIC_IMAGES, 3, cases[i].dims, px, sizeof px, 0);
        expect_failure(images, labels, FNN_ERR_FORMAT, images, cases[i].what, cases[i].offset,
                       NULL);
    }
    uint32_t ldims[1] = {0};
    write_small(images, labels, 0);
    write_idx(labels, MAGIC_LABELS, 1, ldims, px, 0, 0);
    expect_failure(images, labels, FNN_ERR_FORMAT, labels, "item count 0", NULL);
}

static void test_trailing_garbage(void **state)
{
    (void)state;
    for (int gz = 0; gz < 2; gz++) {
        const char *images = tmp_path(gz ? "trail-images.gz" : "trail-images");
        const char *labels = tmp_path(gz ? "trail-labels.gz" : "trail-labels");
        write_small(images, labels, gz);
        /* The header says 2 images but 3 are present. */
        uint8_t px[SMALL_N * SMALL_H * SMALL_W];
        small_pixels(px);
        uint32_t idims[3] = {SMALL_N - 1, SMALL_H, SMALL_W};
        write_idx(images, MAGIC_IMAGES, 3, idims, px, sizeof px, gz);
        expect_failure(images, labels, FNN_ERR_FORMAT, images, "trailing", "offset 32", NULL);
        /* One stray byte after the labels. */
        write_small(images, labels, gz);
        uint8_t lab[SMALL_N + 1] = {0, 12, 3, 7};
        uint32_t ldims[1] = {SMALL_N};
        write_idx(labels, MAGIC_LABELS, 1, ldims, lab, sizeof lab, gz);
        expect_failure(images, labels, FNN_ERR_FORMAT, labels, "trailing", "offset 11", NULL);
    }
}

static void test_count_mismatch(void **state)
{
    (void)state;
    const char *images = tmp_path("count-images");
    const char *labels = tmp_path("count-labels");
    write_small(images, labels, 0);
    uint32_t ldims[1] = {SMALL_N - 1};
    write_idx(labels, MAGIC_LABELS, 1, ldims, small_labels, SMALL_N - 1, 0);
    expect_failure(images, labels, FNN_ERR_FORMAT, images, labels, "3 images", "2 labels", NULL);
}

static void test_missing_file(void **state)
{
    (void)state;
    const char *images = tmp_path("miss-images");
    const char *labels = tmp_path("miss-labels");
    write_small(images, labels, 0);
    const char *absent = tmp_path("no-such-file.gz");
    unlink(absent);
    expect_failure(absent, labels, FNN_ERR_IO, absent, "dataset-fashion-mnist", "--data", NULL);
    expect_failure(images, absent, FNN_ERR_IO, absent, "apt-get install dataset-fashion-mnist",
                   NULL);
    /* A NULL error pointer is allowed. */
    fnn_dataset d;
    assert_int_equal(fnn_idx_load(absent, labels, &d, NULL), FNN_ERR_IO);
}

/* ---------------------------------------------------------------- finding files in a directory */

static void test_dataset_load_spellings(void **state)
{
    (void)state;
    const char *dir = tmp_path("dir");
    if (mkdir(dir, 0755) != 0)
        assert_int_equal(errno, EEXIST);
    char images[1200], labels[1200];
    /* The mirrors' spelling for images, gzipped; the original's for labels, plain. */
    snprintf(images, sizeof images, "%s/t10k-images.idx3-ubyte.gz", dir);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte", dir);
    uint8_t px[SMALL_N * SMALL_H * SMALL_W];
    small_pixels(px);
    uint32_t idims[3] = {SMALL_N, SMALL_H, SMALL_W}, ldims[1] = {SMALL_N};
    write_idx(images, MAGIC_IMAGES, 3, idims, px, sizeof px, 1);
    write_idx(labels, MAGIC_LABELS, 1, ldims, small_labels, SMALL_N, 0);
    fnn_dataset d;
    fnn_error err = {0};
    fnn_status st = fnn_dataset_load(dir, "t10k", &d, &err);
    if (st != FNN_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(st, FNN_OK);
    assert_int_equal(d.n, SMALL_N);
    assert_memory_equal(d.labels, small_labels, SMALL_N);
    fnn_dataset_free(&d);

    /* A trailing slash on the directory gives the same files. */
    char slash[1200];
    snprintf(slash, sizeof slash, "%s/", dir);
    assert_int_equal(fnn_dataset_load(slash, "t10k", &d, &err), FNN_OK);
    fnn_dataset_free(&d);

    /* No train files here: the error names the first spelling tried and the package. */
    char first[1200];
    snprintf(first, sizeof first, "%s/train-images-idx3-ubyte", dir);
    st = fnn_dataset_load(dir, "train", &d, &err);
    assert_int_equal(st, FNN_ERR_IO);
    assert_non_null(strstr(err.msg, first));
    assert_non_null(strstr(err.msg, "dataset-fashion-mnist"));

    /* Images present, labels absent: the error is about the labels. */
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte", dir);
    write_small(images, labels, 0);
    unlink(labels);
    st = fnn_dataset_load(dir, "train", &d, &err);
    assert_int_equal(st, FNN_ERR_IO);
    assert_non_null(strstr(err.msg, labels));
    unlink(images);

    assert_int_equal(fnn_dataset_load(dir, "test", &d, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "\"test\""));
}

/* ---------------------------------------------------------------- views and splits */

/* n images of 1x2 whose pixels and label are the image's index. */
static fnn_dataset indexed_set(int n, uint8_t *images, uint8_t *labels)
{
    for (int i = 0; i < n; i++) {
        images[2 * i] = images[2 * i + 1] = (uint8_t)i;
        labels[i] = (uint8_t)(i % 10);
    }
    fnn_dataset d = {.n = n, .c = 1, .h = 1, .w = 2, .images = images, .labels = labels,
                     .nclasses = 10, .owns = 0};
    return d;
}

static void test_view(void **state)
{
    (void)state;
    uint8_t images[20], labels[10];
    fnn_dataset d = indexed_set(10, images, labels);
    fnn_dataset v = fnn_dataset_view(&d, 3, 4);
    assert_int_equal(v.n, 4);
    assert_int_equal(v.h, 1);
    assert_int_equal(v.w, 2);
    assert_int_equal(v.nclasses, 10);
    assert_int_equal(v.owns, 0);
    assert_ptr_equal(v.images, images + 6);
    assert_ptr_equal(v.labels, labels + 3);
    fnn_dataset_free(&v); /* frees nothing: the stack arrays would crash free() */
    assert_int_equal(fnn_dataset_view(&d, 0, 10).n, 10);
    assert_int_equal(fnn_dataset_view(&d, 10, 0).n, 0);
    static const int bad[][2] = {{-1, 2}, {0, 11}, {9, 2}, {11, 0}, {2, -1}, {1, 0x7fffffff}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fnn_dataset e = fnn_dataset_view(&d, bad[i][0], bad[i][1]);
        assert_int_equal(e.n, 0);
        assert_null(e.images);
        assert_null(e.labels);
    }
}

static void test_split_sizes(void **state)
{
    (void)state;
    uint8_t images[20], labels[10];
    fnn_dataset d = indexed_set(10, images, labels);
    fnn_dataset tr, va;
    fnn_error err = {0};
    assert_int_equal(fnn_dataset_split(&d, 0.2, &tr, &va, &err), FNN_OK);
    assert_int_equal(tr.n, 8);
    assert_int_equal(va.n, 2);
    assert_int_equal(tr.images[0], 0);
    assert_int_equal(va.images[0], 8); /* the last two images validate */
    assert_int_equal(va.labels[1], 9);
    assert_int_equal(tr.owns, 0);
    assert_int_equal(va.owns, 0);
    assert_int_equal(va.nclasses, 10);

    assert_int_equal(fnn_dataset_split(&d, 0.0, &tr, &va, &err), FNN_OK);
    assert_int_equal(tr.n, 10);
    assert_int_equal(va.n, 0);

    /* Keras: split_at = floor(n * (1 - f)), so 10 * 0.12 gives 2 validation images. */
    assert_int_equal(fnn_dataset_split(&d, 0.12, &tr, &va, &err), FNN_OK);
    assert_int_equal(tr.n, 8);
    assert_int_equal(va.n, 2);

    /* The study's 60000 * 0.2; the pixels are never touched, so shared buffers do. */
    static uint8_t big_images[60000 * 2], big_labels[60000];
    fnn_dataset big = indexed_set(60000, big_images, big_labels);
    assert_int_equal(fnn_dataset_split(&big, 0.2, &tr, &va, &err), FNN_OK);
    assert_int_equal(tr.n, 48000);
    assert_int_equal(va.n, 12000);
    assert_ptr_equal(va.labels, big_labels + 48000);
    assert_ptr_equal(va.images, big_images + 96000);
}

static void test_split_bad_fraction(void **state)
{
    (void)state;
    uint8_t images[20], labels[10];
    fnn_dataset d = indexed_set(10, images, labels);
    fnn_dataset tr, va;
    fnn_error err = {0};
    const double bad[] = {-0.1, 1.0, 1.5, NAN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(fnn_dataset_split(&d, bad[i], &tr, &va, &err), FNN_ERR_ARG);
        assert_non_null(strstr(err.msg, "[0, 1)"));
    }
    /* 0.95 of 10 leaves floor(0.5) = 0 training images. */
    assert_int_equal(fnn_dataset_split(&d, 0.95, &tr, &va, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "no training images"));
    /* A fraction too small to move one image: Keras refuses it too. */
    assert_int_equal(fnn_dataset_split(&d, 1e-17, &tr, &va, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "no validation images"));
}

/* Every fold of k, for several k and a size none divides evenly: the validation part is the
 * images [n f / k, n (f + 1) / k) in order; the training part is every other image in order,
 * each with its own label. Image i's pixels name i, and labels follow no pattern an offset
 * could keep. */
static void test_folds_pair_images_and_labels(void **state)
{
    enum { N = 23 };
    fnn_dataset d = {.n = N, .c = 1, .h = 2, .w = 2, .nclasses = 10, .owns = 1};
    d.images = malloc(N * 4);
    d.labels = malloc(N);
    assert_non_null(d.images);
    assert_non_null(d.labels);
    for (int i = 0; i < N; i++) {
        const uint8_t px[4] = {(uint8_t)i, (uint8_t)(200 - i), (uint8_t)(3 * i), 77};
        memcpy(d.images + i * 4, px, 4);
        d.labels[i] = (uint8_t)((i * 7 + i / 3) % 10);
    }
    static const int ks[] = {2, 3, 5, 7, N};
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
        int k = ks[ki], in_val[N] = {0};
        for (int f = 0; f < k; f++) {
            fnn_dataset tr, val;
            fnn_error err = {FNN_OK, ""};
            if (fnn_dataset_fold(&d, k, f, &tr, &val, &err) != FNN_OK)
                fail_msg("fold %d of %d: %s", f, k, err.msg);
            int lo = N * f / k, hi = N * (f + 1) / k;
            assert_int_equal(val.n, hi - lo);
            assert_int_equal(tr.n, N - (hi - lo));
            assert_int_equal(tr.h, 2);
            assert_int_equal(tr.w, 2);
            for (int j = 0; j < val.n; j++) {
                int src = lo + j;
                if (memcmp(val.images + j * 4, d.images + src * 4, 4) ||
                    val.labels[j] != d.labels[src])
                    fail_msg("k %d fold %d: validation image %d is not image %d with label %d", k,
                             f, j, src, d.labels[src]);
                in_val[src]++;
            }
            for (int j = 0; j < tr.n; j++) {
                int src = j < lo ? j : j + (hi - lo);
                if (memcmp(tr.images + j * 4, d.images + src * 4, 4))
                    fail_msg("k %d fold %d: training image %d is not image %d", k, f, j, src);
                if (tr.labels[j] != d.labels[src])
                    fail_msg("k %d fold %d: training image %d (image %d) has label %d, not %d", k,
                             f, j, src, tr.labels[j], d.labels[src]);
            }
            fnn_dataset_free(&tr);
        }
        /* The validation folds cover the set once. */
        for (int i = 0; i < N; i++)
            assert_int_equal(in_val[i], 1);
    }
    fnn_dataset_free(&d);
}

static void test_class_names(void **state)
{
    (void)state;
    const char *const *names = fnn_fashion_class_names();
    static const char *const want[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    for (int i = 0; i < 10; i++)
        assert_string_equal(names[i], want[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_t10k),
        cmocka_unit_test(test_real_train),
        cmocka_unit_test(test_roundtrip_plain),
        cmocka_unit_test(test_roundtrip_gz),
        cmocka_unit_test(test_mixed_compression),
        cmocka_unit_test(test_wrong_magic),
        cmocka_unit_test(test_wrong_type_byte),
        cmocka_unit_test(test_truncated_images),
        cmocka_unit_test(test_truncated_labels),
        cmocka_unit_test(test_truncated_header),
        cmocka_unit_test(test_truncated_gzip_stream),
        cmocka_unit_test(test_corrupt_gzip_stream),
        cmocka_unit_test(test_huge_claim),
        cmocka_unit_test(test_labels_huge_claim),
        cmocka_unit_test(test_dims_out_of_range),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_count_mismatch),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_dataset_load_spellings),
        cmocka_unit_test(test_view),
        cmocka_unit_test(test_split_sizes),
        cmocka_unit_test(test_split_bad_fraction),
        cmocka_unit_test(test_folds_pair_images_and_labels),
        cmocka_unit_test(test_class_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
