/* Robustness: with no perturbation the accuracy is fnn_evaluate's exactly, and perturbations
 * that destroy the deciding part of the image make a trained model's accuracy fall. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fnn.h"
#include "util/rng.h"

enum { SIDE = 16, SQ = 5, SQ0 = 1 };

/* Noise everywhere; class 1 images carry a bright square at the top left. */
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
        for (int y = SQ0; d->labels[i] && y < SQ0 + SQ; y++)
            for (int x = SQ0; x < SQ0 + SQ; x++)
                img[y * SIDE + x] = (uint8_t)(140 + fnn_rng_below(&rng, 116));
    }
}

static fnn_model *g_model;
static fnn_dataset g_test;

static int setup(void **state)
{
    fnn_dataset train;
    make_region_set(&train, 2000, 1);
    make_region_set(&g_test, 700, 2); /* more than two internal batches */
    fnn_error err;
    g_model = fnn_model_create("flatten dense:16:relu dense:2:softmax", 1, SIDE, SIDE, &err);
    fnn_model_init(g_model, 3);
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 8;
    cfg.batch_size = 32;
    cfg.threads = 1;
    fnn_dataset none = {0};
    int ok = fnn_train(g_model, &train, &none, &cfg, NULL, &err) == FNN_OK;
    fnn_dataset_free(&train);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    fnn_model_free(g_model);
    fnn_dataset_free(&g_test);
    return 0;
}

static void test_no_perturbation_is_plain_accuracy(void **state)
{
    fnn_error err;
    for (int threads = 1; threads <= 2; threads++) {
        fnn_metrics mt = {0};
        assert_int_equal(fnn_evaluate(g_model, &g_test, threads, NULL, NULL, &mt, &err), FNN_OK);
        assert_true(mt.accuracy > 0.95);
        for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
            const double *levels;
            int n = fnn_perturbation_levels(p, &levels);
            assert_true(n >= 4);
            double acc[16];
            assert_int_equal(fnn_robustness(g_model, &g_test, p, levels, n, 1, threads, acc,
                                            &err), FNN_OK);
            if (acc[0] != mt.accuracy)
                fail_msg("%s, %d threads: %.17g at level %g, fnn_evaluate %.17g",
                         fnn_perturbation_name(p), threads, acc[0], levels[0], mt.accuracy);
        }
        fnn_metrics_free(&mt);
    }
}

/* Accuracy falls as the noise grows (a little slack for the draw), and ends far below. */
static void test_accuracy_falls_with_noise(void **state)
{
    const double *levels;
    int n = fnn_perturbation_levels(FNN_PERTURB_NOISE, &levels);
    assert_true(levels[0] == 0.0 && levels[n - 1] >= 0.4);
    double acc[16];
    fnn_error err;
    assert_int_equal(fnn_robustness(g_model, &g_test, FNN_PERTURB_NOISE, levels, n, 7, 2, acc,
                                    &err), FNN_OK);
    for (int j = 1; j < n; j++)
        if (acc[j] > acc[j - 1] + 0.02)
            fail_msg("noise %g: accuracy %g above %g at noise %g", levels[j], acc[j],
                     acc[j - 1], levels[j - 1]);
    if (!(acc[n - 1] < acc[0] - 0.15))
        fail_msg("noise %g: accuracy %g against %g without noise", levels[n - 1], acc[n - 1],
                 acc[0]);
}

/* The square is learnt at its place: moving it away or covering it costs accuracy, and the
 * result depends only on the seed. */
static void test_shift_and_occlusion_hurt(void **state)
{
    fnn_error err;
    const double shift[2] = {0, 6}, occl[2] = {0, 16};
    double a[2], b[2], c[2];
    assert_int_equal(fnn_robustness(g_model, &g_test, FNN_PERTURB_SHIFT, shift, 2, 3, 2, a, &err),
                     FNN_OK);
    assert_true(a[1] < a[0] - 0.15);
    assert_int_equal(fnn_robustness(g_model, &g_test, FNN_PERTURB_SHIFT, shift, 2, 3, 1, b, &err),
                     FNN_OK);
    assert_true(a[1] == b[1]);
    assert_int_equal(fnn_robustness(g_model, &g_test, FNN_PERTURB_OCCLUDE, occl, 2, 3, 2, c, &err),
                     FNN_OK);
    assert_true(c[1] < c[0] - 0.15);
}

static void test_bad_levels(void **state)
{
    fnn_error err;
    const double bad[2] = {0, -1};
    double acc[2];
    assert_int_equal(fnn_robustness(g_model, &g_test, FNN_PERTURB_NOISE, bad, 2, 1, 1, acc, &err),
                     FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "noise"));
    assert_int_equal(fnn_robustness(g_model, &g_test, FNN_PERTURB_COUNT, bad, 1, 1, 1, acc, &err),
                     FNN_ERR_ARG);
    assert_string_equal(fnn_perturbation_name(FNN_PERTURB_CONTRAST), "contrast");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_perturbation_is_plain_accuracy),
        cmocka_unit_test(test_accuracy_falls_with_noise),
        cmocka_unit_test(test_shift_and_occlusion_hurt),
        cmocka_unit_test(test_bad_levels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
