/* Inference timing of fnn_predictor_run (fnn_model_predict with one executor kept across calls,
 * the library path of `fnn predict`), for bench/onnx.sh:
 * runs ITERS calls on BATCH Fashion-MNIST test images (scaled as fnn predict scales them) after a
 * warm-up, and prints one JSON line with the median and the 10th and 90th percentiles of a
 * call's time. Usage: predict_bench MODEL DATA_DIR BATCH ITERS THREADS */
#include "fnn.h"
#include "timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARMUP 5

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: predict_bench MODEL DATA_DIR BATCH ITERS THREADS\n");
        return 2;
    }
    int batch = atoi(argv[3]), iters = atoi(argv[4]), threads = atoi(argv[5]);
    if (batch < 1 || iters < 1 || threads < 0) {
        fprintf(stderr, "predict_bench: BATCH and ITERS must be positive, THREADS at least 0\n");
        return 2;
    }
    fnn_error err = {0};
    fnn_model *m = fnn_model_load(argv[1], NULL, &err);
    if (!m) {
        fprintf(stderr, "predict_bench: %s\n", err.msg);
        return 1;
    }
    fnn_dataset d; /* the test images, scaled below as fnn predict scales them */
    if (fnn_dataset_load(argv[2], "t10k", &d, &err) != FNN_OK) {
        fprintf(stderr, "predict_bench: %s\n", err.msg);
        fnn_model_free(m);
        return 1;
    }
    size_t size = (size_t)d.h * d.w;
    int k = fnn_model_num_classes(m), n = d.n < batch ? d.n : batch;
    float *x = malloc((size_t)batch * size * sizeof *x);    // (batch, h*w)
    float *probs = malloc((size_t)batch * k * sizeof *probs); // (batch, k)
    double *t = malloc((size_t)iters * sizeof *t);
    if (!x || !probs || !t) {
        fprintf(stderr, "predict_bench: out of memory\n");
        return 1;
    }
    for (int i = 0; i < batch; i++) /* images repeat when the file has fewer than batch */
        for (size_t p = 0; p < size; p++)
            x[(size_t)i * size + p] = d.images[(size_t)(i % n) * size + p] / 255.0f;
    /* One executor for every call, as a server keeps one: fnn_model_predict would make it anew
     * each time. */
    fnn_exec *e;
    if (fnn_predictor_create(m, batch, threads, &e, &err) != FNN_OK) {
        fprintf(stderr, "predict_bench: %s\n", err.msg);
        return 1;
    }
    for (int it = -WARMUP; it < iters; it++) {
        double t0 = now_us();
        if (fnn_predictor_run(e, x, batch, probs, &err) != FNN_OK) {
            fprintf(stderr, "predict_bench: %s\n", err.msg);
            return 1;
        }
        if (it >= 0)
            t[it] = now_us() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    printf("{\"tool\": \"fnn\", \"batch\": %d, \"threads\": %d, \"iters\": %d, \"median_us\": %.1f, "
           "\"p10_us\": %.1f, \"p90_us\": %.1f}\n",
           batch, threads, iters, t[iters / 2], t[iters / 10], t[iters * 9 / 10]);
    fnn_exec_free(e);
    free(x);
    free(probs);
    free(t);
    fnn_dataset_free(&d);
    fnn_model_free(m);
    return 0;
}
