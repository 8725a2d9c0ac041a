/* For test_onnx_runtimes.sh: a colour (3x32x32) CNN with a per-channel input standardisation,
 * built and trained through the library on a synthetic set, then exported to ONNX with the
 * images and fnn's probabilities for them, in the files the runtime checkers read:
 *   PREFIX.onnx        the export (dynamic batch)
 *   PREFIX.idx         the test images, IDX unsigned bytes of 4 dimensions (n, 3, 32, 32)
 *   PREFIX.json        fnn_model_predict's probabilities as `fnn predict --json --top K` prints
 *                      them: {"images": [{"top": [{"index", "probability"}, ...]}, ...]}
 * Usage: onnx_colour_model PREFIX N. Exit status 0 on success, 1 with a message on error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnn.h"

#define C 3
#define SIDE 32
#define CLASSES 4
#define TRAIN 800
/* Convolutions on both of fnn's paths (3 channels: im2col; 8 channels, 3x3 stride 1: Winograd),
 * a strided 'same' one, pooling and batch norm. */
#define SPEC "conv2d:8:3:same:relu maxpool:2 conv2d:8:3:same batchnorm relu " \
             "conv2d:8:3:s2:same:relu globalavgpool dense:4:softmax"

static int die(const char *what, const fnn_error *err)
{
    fprintf(stderr, "onnx_colour_model: %s: %s\n", what, err ? err->msg : "failed");
    return 1;
}

/* Each class a tint: class k brightens channel k % 3 (class 3: all), over uniform noise, with a
 * lighter square whose place varies, so that the convolutions have something to find. */
static void make_set(fnn_dataset *d, int n, unsigned seed)
{
    *d = (fnn_dataset){.n = n, .c = C, .h = SIDE, .w = SIDE, .nclasses = CLASSES, .owns = 1};
    d->images = malloc((size_t)n * C * SIDE * SIDE);
    d->labels = malloc((size_t)n);
    if (!d->images || !d->labels)
        return;
    unsigned s = seed;
    for (int i = 0; i < n; i++) {
        int k = i % CLASSES;
        d->labels[i] = (uint8_t)k;
        s = s * 1664525u + 1013904223u;
        int y0 = (int)(s >> 27), x0 = (int)((s >> 22) & 31);
        for (int ch = 0; ch < C; ch++)
            for (int p = 0; p < SIDE * SIDE; p++) {
                s = s * 1664525u + 1013904223u;
                int v = (int)(s >> 25); /* 0..127 */
                if (k == 3 || ch == k)
                    v += 60;
                int y = p / SIDE, x = p % SIDE;
                if (y >= y0 && y < y0 + 8 && x >= x0 && x < x0 + 8)
                    v += 60;
                d->images[((size_t)i * C + ch) * SIDE * SIDE + p] = (uint8_t)(v > 255 ? 255 : v);
            }
    }
}

static int write_idx(const char *path, const fnn_dataset *d, int n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    unsigned dims[5] = {0x00000804u, (unsigned)n, C, SIDE, SIDE};
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        unsigned char be[4] = {dims[i] >> 24, dims[i] >> 16 & 255, dims[i] >> 8 & 255,
                               dims[i] & 255};
        ok &= fwrite(be, 1, 4, f) == 4;
    }
    size_t bytes = (size_t)n * C * SIDE * SIDE;
    ok &= fwrite(d->images, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok;
}

static int write_json(const char *path, const float *probs, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    int ok = fprintf(f, "{\"images\": [") > 0;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * CLASSES;
        int order[CLASSES];
        for (int j = 0; j < CLASSES; j++)
            order[j] = j;
        for (int a = 0; a < CLASSES; a++) /* most likely first, as fnn predict lists them */
            for (int b = a + 1; b < CLASSES; b++)
                if (p[order[b]] > p[order[a]]) {
                    int t = order[a];
                    order[a] = order[b];
                    order[b] = t;
                }
        ok &= fprintf(f, "%s{\"top\": [", i ? ", " : "") > 0;
        for (int j = 0; j < CLASSES; j++)
            ok &= fprintf(f, "%s{\"index\": %d, \"probability\": %.9g}", j ? ", " : "",
                          order[j], (double)p[order[j]]) > 0;
        ok &= fprintf(f, "]}") > 0;
    }
    ok &= fprintf(f, "]}\n") > 0;
    return fclose(f) == 0 && ok;
}

int main(int argc, char **argv)
{
    if (argc != 3 || atoi(argv[2]) < 1) {
        fprintf(stderr, "usage: onnx_colour_model PREFIX N\n");
        return 2;
    }
    const char *prefix = argv[1];
    int n = atoi(argv[2]);
    fnn_error err = {0};
    fnn_dataset train, test, none = {0};
    make_set(&train, TRAIN, 1);
    make_set(&test, n, 2);
    if (!train.images || !train.labels || !test.images || !test.labels)
        return die("data", NULL);
    double mean[C], std[C];
    float fmean[C], fstd[C];
    if (fnn_dataset_channel_stats(&train, mean, std, 0, &err) != FNN_OK)
        return die("channel statistics", &err);
    for (int ch = 0; ch < C; ch++) {
        fmean[ch] = (float)mean[ch];
        fstd[ch] = (float)std[ch];
    }
    fnn_model *m = fnn_model_create(SPEC, C, SIDE, SIDE, &err);
    if (!m)
        return die("model", &err);
    fnn_model_init(m, 3);
    if (fnn_model_set_normalization(m, fmean, fstd, &err) != FNN_OK)
        return die("normalization", &err);
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 3;
    cfg.batch_size = 32;
    if (fnn_train(m, &train, &none, &cfg, NULL, &err) != FNN_OK)
        return die("training", &err);

    size_t in = (size_t)C * SIDE * SIDE;
    float *x = malloc((size_t)n * in * sizeof *x), *probs = malloc((size_t)n * CLASSES * sizeof *probs);
    if (!x || !probs)
        return die("out of memory", NULL);
    for (size_t i = 0; i < (size_t)n * in; i++)
        x[i] = (float)test.images[i] / 255.0f; /* as fnn's batches scale them */
    if (fnn_model_predict(m, x, n, probs, 0, &err) != FNN_OK)
        return die("prediction", &err);
    char path[4096];
    snprintf(path, sizeof path, "%s.onnx", prefix);
    if (fnn_export_onnx(m, path, NULL, &err) != FNN_OK)
        return die("export", &err);
    snprintf(path, sizeof path, "%s.idx", prefix);
    if (!write_idx(path, &test, n))
        return die(path, NULL);
    snprintf(path, sizeof path, "%s.json", prefix);
    if (!write_json(path, probs, n))
        return die(path, NULL);
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * CLASSES;
        int best = 0;
        for (int j = 1; j < CLASSES; j++)
            best = p[j] > p[best] ? j : best;
        hits += best == test.labels[i];
    }
    printf("colour model %s, normalisation mean %.4f %.4f %.4f std %.4f %.4f %.4f: "
           "accuracy %.3f on %d test images\n", fnn_model_spec(m), mean[0], mean[1], mean[2],
           std[0], std[1], std[2], (double)hits / n, n);
    free(x);
    free(probs);
    fnn_model_free(m);
    fnn_dataset_free(&train);
    fnn_dataset_free(&test);
    return 0;
}
