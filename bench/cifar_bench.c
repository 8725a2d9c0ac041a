/* The fnn side of bench/cifar.sh: a CIFAR-shaped set (3 x 32 x 32) made from Fashion-MNIST,
 * and a training run on it through the library, as `fnn train` would do it.
 *   cifar_bench write DATA_DIR OUT   writes OUT/data_batch_1.bin ... data_batch_5.bin (the first
 *                                    50,000 training images), OUT/test_batch.bin (the 10,000
 *                                    test images) and OUT/batches.meta.txt, CIFAR-10's layout
 *   cifar_bench train DIR ARCH THREADS EPOCHS LIMIT TEST_LIMIT
 *                                    trains ARCH (batch 32, Adam, seed 42, the last 20 % of the
 *                                    first LIMIT training images held out; 0: all) and tests on
 *                                    the first TEST_LIMIT test images (0: all); one JSON line
 * Each image of the set is a Fashion-MNIST image placed at a random offset (0 to 4 pixels in x
 * and y) on a 32 x 32 canvas and coloured with a random foreground and background colour:
 * the shape carries the class, the colours and the position do not, so a CNN learns it about as
 * well as Fashion-MNIST while every channel differs. Random noise, which nothing learns, would
 * time the same arithmetic but give no accuracy to check the twins against. */
#include "fnn.h"
#include "timing.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIDE 32
#define PLANE (SIDE * SIDE)
#define RECORD (1 + 3 * PLANE)
#define PER_BATCH 10000
#define TRAIN_BATCHES 5
#define SEED 42
#define VAL_SPLIT 0.2

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "cifar_bench: %s: %s\n", what, msg);
    return 1;
}

/* splitmix64: the image's random numbers depend only on its index, so the set is the same on
 * every run and machine. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* One record: the label byte, then the red, green and blue planes (32 x 32 each). The
 * foreground channels lie in [96, 255], the background's in [0, 79], so every channel keeps
 * the image's contrast. */
static void make_record(const fnn_dataset *d, int i, uint64_t key, uint8_t *rec)
{
    uint64_t r = mix(key);
    int ox = (int)(r % 5), oy = (int)(r / 5 % 5);
    int fg[3], bg[3];
    for (int ch = 0; ch < 3; ch++) {
        r = mix(r);
        fg[ch] = 96 + (int)(r % 160);
        bg[ch] = (int)((r >> 32) % 80);
    }
    const uint8_t *img = d->images + (size_t)i * d->h * d->w; // (28, 28)
    rec[0] = d->labels[i];
    for (int ch = 0; ch < 3; ch++) {
        uint8_t *plane = rec + 1 + ch * PLANE; // (32, 32)
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++) {
                int sy = y - oy, sx = x - ox;
                int p = sy >= 0 && sy < d->h && sx >= 0 && sx < d->w ? img[sy * d->w + sx] : 0;
                plane[y * SIDE + x] = (uint8_t)(bg[ch] + (p * (fg[ch] - bg[ch]) + 127) / 255);
            }
    }
}

/* Images [start, start + PER_BATCH) of d into one batch file; key_base keeps the training and
 * test images' random streams apart. */
static int write_batch(const fnn_dataset *d, int start, uint64_t key_base, const char *path)
{
    uint8_t *buf = malloc((size_t)PER_BATCH * RECORD);
    if (!buf)
        return fail(path, "out of memory");
    for (int i = 0; i < PER_BATCH; i++)
        make_record(d, start + i, key_base + (uint64_t)(start + i), buf + (size_t)i * RECORD);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return fail(path, strerror(errno));
    }
    size_t wrote = fwrite(buf, RECORD, PER_BATCH, f);
    free(buf);
    if ((wrote != PER_BATCH) | ferror(f) | fclose(f))
        return fail(path, "write error");
    return 0;
}

static int write_names(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fail(path, strerror(errno));
    const char *const *names = fnn_fashion_class_names();
    for (int k = 0; k < 10; k++)
        fprintf(f, "%s\n", names[k]);
    if (ferror(f) | fclose(f))
        return fail(path, "write error");
    return 0;
}

static int write_all(const char *data, const char *out)
{
    fnn_dataset tr, te;
    fnn_error err = {0};
    if (fnn_dataset_load(data, "train", &tr, &err) != FNN_OK)
        return fail(data, err.msg);
    if (fnn_dataset_load(data, "t10k", &te, &err) != FNN_OK) {
        fnn_dataset_free(&tr);
        return fail(data, err.msg);
    }
    int rc = 0;
    if (tr.n < TRAIN_BATCHES * PER_BATCH || te.n < PER_BATCH || tr.h != 28 || tr.w != 28 ||
        te.h != 28 || te.w != 28)
        rc = fail(data, "expected Fashion-MNIST: 60,000 training and 10,000 test images of "
                        "28 x 28");
    char path[4096];
    for (int b = 0; !rc && b < TRAIN_BATCHES; b++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", out, b + 1);
        rc = write_batch(&tr, b * PER_BATCH, 0, path);
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", out);
    rc = rc || write_batch(&te, 0, 1ull << 32, path);
    snprintf(path, sizeof path, "%s/batches.meta.txt", out);
    rc = rc || write_names(path);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&te);
    return rc;
}

static int train(const char *dir, const char *arch, int threads, int epochs, int limit,
                 int test_limit)
{
    fnn_error err = {0};
    fnn_dataset full, test, tr, val;
    fnn_data_options o = {.format = FNN_FORMAT_CIFAR10, .threads = threads};
    double t0 = now_us();
    if (fnn_data_load(dir, "train", &o, &full, &err) != FNN_OK)
        return fail(dir, err.msg);
    if (fnn_data_load(dir, "test", &o, &test, &err) != FNN_OK) {
        fnn_dataset_free(&full);
        return fail(dir, err.msg);
    }
    double load_s = (now_us() - t0) / 1e6;
    fnn_dataset used = fnn_dataset_view(&full, 0, limit && limit < full.n ? limit : full.n);
    fnn_dataset tested = fnn_dataset_view(&test, 0, test_limit && test_limit < test.n ? test_limit
                                                                                   : test.n);
    fnn_epoch_stats *stats = calloc((size_t)epochs, sizeof *stats);
    fnn_model *m = NULL;
    fnn_metrics mt = {0};
    int rc = 1;
    if (!stats) {
        fail(dir, "out of memory");
        goto done;
    }
    if (fnn_dataset_split(&used, VAL_SPLIT, &tr, &val, &err) != FNN_OK ||
        !(m = fnn_model_create(arch, full.c, full.h, full.w, &err))) {
        fail(dir, err.msg);
        goto done;
    }
    fnn_model_init(m, SEED);
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = epochs;
    cfg.batch_size = 32;
    cfg.seed = SEED;
    cfg.threads = threads;
    if (fnn_train(m, &tr, &val, &cfg, stats, &err) != FNN_OK) {
        fail(dir, err.msg);
        goto done;
    }
    double train_s = 0.0, val_s = 0.0;
    for (int e = 0; e < epochs; e++) {
        train_s += stats[e].seconds;
        val_s += stats[e].val_seconds;
    }
    t0 = now_us();
    if (fnn_evaluate(m, &tested, threads, NULL, NULL, &mt, &err) != FNN_OK) {
        fail(dir, err.msg);
        goto done;
    }
    double test_s = (now_us() - t0) / 1e6;
    printf("{\"fnn_version\": \"%s\", \"gemm\": \"%s\", \"arch\": \"%s\", \"params\": %zu, "
           "\"shape\": [%d, %d, %d], \"threads\": %d, \"epochs\": %d, \"batch_size\": %d, "
           "\"train_images\": %d, \"validation_images\": %d, \"test_images\": %d, "
           "\"seconds\": {\"load\": %.4f, \"train\": %.4f, \"validation\": %.4f, \"test\": %.4f}, "
           "\"train_loss\": %.6f, \"train_accuracy\": %.6f, \"val_accuracy\": %.6f, "
           "\"test_loss\": %.6f, \"test_accuracy\": %.6f}\n",
           FNN_VERSION, fnn_gemm_library(), arch, fnn_model_num_params(m), full.c, full.h, full.w,
           threads, epochs, cfg.batch_size, tr.n, val.n, tested.n, load_s, train_s, val_s, test_s,
           stats[epochs - 1].train_loss, stats[epochs - 1].train_acc, stats[epochs - 1].val_acc,
           mt.loss, mt.accuracy);
    rc = 0;
done:
    fnn_metrics_free(&mt);
    fnn_model_free(m);
    free(stats);
    fnn_dataset_free(&full);
    fnn_dataset_free(&test);
    return rc;
}

/* A non-negative int argument, or -1. */
static int count_arg(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || end == s || *end || v < 0 || v > 1000000000 ? -1 : (int)v;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "write") == 0)
        return write_all(argv[2], argv[3]);
    if (argc == 8 && strcmp(argv[1], "train") == 0) {
        int threads = count_arg(argv[4]), epochs = count_arg(argv[5]);
        int limit = count_arg(argv[6]), test_limit = count_arg(argv[7]);
        if (threads < 0 || epochs < 1 || limit < 0 || test_limit < 0) {
            fprintf(stderr, "cifar_bench: THREADS, LIMIT and TEST_LIMIT must be integers >= 0, "
                            "EPOCHS >= 1\n");
            return 2;
        }
        return train(argv[2], argv[3], threads, epochs, limit, test_limit);
    }
    fprintf(stderr, "usage: cifar_bench write DATA_DIR OUT | train DIR ARCH THREADS EPOCHS LIMIT "
                    "TEST_LIMIT\n");
    return 2;
}
