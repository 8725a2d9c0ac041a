/* Test-time augmentation: with flip, every consumer of a model's predictions (prediction,
 * evaluation and its metrics, validation in training) gets the mean of the probabilities of
 * each image and of its mirror, computed here from two plain passes; without it, the plain
 * numbers bit for bit. The model's predictions differ on mirrored images, so the mean is
 * neither of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fnn.h"
#include "model/model.h"

#define ARCH "conv2d:4:3:same relu flatten dense:3:softmax"
#define N 40
#define C 2
#define H 5
#define W 5 /* odd: the middle column stays where it is */
#define IN (C * H * W)
#define K 3

/* Images brighter on their left side for class 0, right for class 1, noise for class 2. */
static fnn_dataset make_set(uint32_t seed, int mirrored)
{
    fnn_dataset d = {.n = N, .c = C, .h = H, .w = W, .nclasses = K, .owns = 1};
    d.images = malloc((size_t)N * IN);
    d.labels = malloc(N);
    uint32_t s = seed;
    for (int i = 0; i < N; i++) {
        d.labels[i] = (uint8_t)(i % K);
        for (int p = 0; p < IN; p++) {
            s = s * 1664525u + 1013904223u;
            int col = p % W, left = col < W / 2;
            int v = (int)(s >> 26) + ((d.labels[i] == 0 && left) || (d.labels[i] == 1 && !left)
                                          ? 150 : 0);
            /* The mirror: pixel (ch, r, col) holds the original's (ch, r, W - 1 - col). */
            int at = mirrored ? p - col + (W - 1 - col) : p;
            d.images[(size_t)i * IN + at] = (uint8_t)v;
        }
    }
    return d;
}

static fnn_model *trained(void)
{
    fnn_error err;
    fnn_model *m = fnn_model_create(ARCH, C, H, W, &err);
    assert_non_null(m);
    fnn_model_init(m, 9);
    fnn_dataset tr = make_set(1, 0);
    fnn_train_config c = fnn_train_default();
    c.epochs = 3;
    c.threads = 1;
    assert_int_equal(fnn_train_run(m, &tr, NULL, &c, NULL, NULL, &err), FNN_OK);
    fnn_dataset_free(&tr);
    return m;
}

static void to_float(const fnn_dataset *d, float *x)
{
    for (size_t i = 0; i < (size_t)N * IN; i++)
        x[i] = d->images[i] / 255.0f;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void test_predict_averages_mirror(void **state)
{
    fnn_model *m = trained();
    fnn_dataset d = make_set(2, 0), dm = make_set(2, 1);
    float x[N * IN], xm[N * IN], p[N * K], pm[N * K], got[N * K], none[N * K];
    to_float(&d, x);
    to_float(&dm, xm);
    fnn_error err;
    for (int threads = 1; threads <= 2; threads++) {
        assert_int_equal(fnn_model_predict(m, x, N, p, threads, &err), FNN_OK);
        assert_int_equal(fnn_model_predict(m, xm, N, pm, threads, &err), FNN_OK);
        assert_true(max_diff(p, pm, N * K) > 1e-3); /* the model is not symmetric */
        fnn_eval_options o = {.threads = threads, .tta = FNN_TTA_FLIP};
        assert_int_equal(fnn_model_predict_with(m, x, N, &o, got, &err), FNN_OK);
        for (int i = 0; i < N * K; i++)
            assert_true(fabs(got[i] - 0.5 * ((double)p[i] + pm[i])) < 1e-6);
        o.tta = FNN_TTA_NONE;
        assert_int_equal(fnn_model_predict_with(m, x, N, &o, none, &err), FNN_OK);
        assert_memory_equal(none, p, sizeof p);
    }
    fnn_eval_options bad = {.tta = (fnn_tta)7};
    assert_int_equal(fnn_model_predict_with(m, x, N, &bad, got, &err), FNN_ERR_ARG);
    fnn_dataset_free(&d);
    fnn_dataset_free(&dm);
    fnn_model_free(m);
}

/* fnn_evaluate_with: probabilities, predictions and metrics from the averaged ones, in one
 * team and in two; FNN_TTA_NONE is fnn_evaluate. */
static void test_evaluate_averages_mirror(void **state)
{
    fnn_model *m = trained();
    fnn_dataset d = make_set(3, 0), dm = make_set(3, 1);
    float p[N * K], pm[N * K], got[N * K], want[N * K];
    int pred[N], plain_pred[N];
    fnn_metrics plain = {0}, mt = {0};
    fnn_error err;
    assert_int_equal(fnn_evaluate(m, &d, 1, plain_pred, p, &plain, &err), FNN_OK);
    assert_int_equal(fnn_evaluate(m, &dm, 1, NULL, pm, NULL, &err), FNN_OK);
    for (int i = 0; i < N * K; i++)
        want[i] = 0.5f * (p[i] + pm[i]);
    for (int threads = 1; threads <= 2; threads++) {
        fnn_eval_options o = {.threads = threads, .tta = FNN_TTA_FLIP};
        assert_int_equal(fnn_evaluate_with(m, &d, &o, pred, got, &mt, &err), FNN_OK);
        assert_true(max_diff(got, want, N * K) < 1e-6);
        double loss = 0.0;
        int hits = 0;
        for (int i = 0; i < N; i++) {
            const float *g = got + i * K;
            int best = 0;
            for (int j = 1; j < K; j++)
                best = g[j] > g[best] ? j : best;
            assert_int_equal(pred[i], best);
            hits += best == d.labels[i];
            loss -= log(g[d.labels[i]]);
        }
        assert_true(fabs(mt.loss - loss / N) < 1e-9 * (1 + loss));
        assert_true(mt.accuracy == (double)hits / N);
        fnn_metrics_free(&mt);
        /* Bit for bit fnn_evaluate with as many threads (their products split differently). */
        o.tta = FNN_TTA_NONE;
        fnn_metrics_free(&plain);
        assert_int_equal(fnn_evaluate(m, &d, threads, plain_pred, p, &plain, &err), FNN_OK);
        assert_int_equal(fnn_evaluate_with(m, &d, &o, pred, got, &mt, &err), FNN_OK);
        assert_memory_equal(got, p, sizeof p);
        assert_memory_equal(pred, plain_pred, sizeof pred);
        assert_true(mt.loss == plain.loss && mt.accuracy == plain.accuracy);
        fnn_metrics_free(&mt);
    }
    assert_true(max_diff(want, p, N * K) > 1e-3);
    fnn_metrics_free(&plain);
    fnn_dataset_free(&d);
    fnn_dataset_free(&dm);
    fnn_model_free(m);
}

/* Validation in training sees the averaged predictions; training itself is unchanged. */
static void test_validation(void **state)
{
    fnn_dataset tr = make_set(1, 0), val = make_set(4, 0);
    fnn_error err;
    fnn_train_config c = fnn_train_default();
    c.epochs = 2;
    c.threads = 2;
    fnn_epoch_stats plain[2], flip[2];
    fnn_model *a = fnn_model_create(ARCH, C, H, W, &err), *b = fnn_model_create(ARCH, C, H, W,
                                                                                 &err);
    fnn_model_init(a, 9);
    fnn_model_init(b, 9);
    assert_int_equal(fnn_train_run(a, &tr, &val, &c, plain, NULL, &err), FNN_OK);
    c.tta = FNN_TTA_FLIP;
    assert_int_equal(fnn_train_run(b, &tr, &val, &c, flip, NULL, &err), FNN_OK);
    assert_memory_equal(a->params, b->params, a->arena_size * sizeof *a->params);
    fnn_metrics mt = {0};
    fnn_eval_options o = {.threads = 2, .tta = FNN_TTA_FLIP};
    assert_int_equal(fnn_evaluate_with(b, &val, &o, NULL, NULL, &mt, &err), FNN_OK);
    assert_true(mt.accuracy == flip[1].val_acc);
    assert_true(flip[1].val_loss != plain[1].val_loss);
    assert_true(flip[1].train_loss == plain[1].train_loss);
    c.tta = (fnn_tta)2;
    assert_int_equal(fnn_train_run(b, &tr, &val, &c, flip, NULL, &err), FNN_ERR_ARG);
    fnn_metrics_free(&mt);
    fnn_model_free(a);
    fnn_model_free(b);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&val);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_averages_mirror),
        cmocka_unit_test(test_evaluate_averages_mirror),
        cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
