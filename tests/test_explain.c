/* Explanations: input gradients against central finite differences through the real layer
 * stack, and saliency and occlusion maps of a model trained on data whose class is decided by
 * one region of the image only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "fnn.h"
#include "model/exec.h"
#include "model/model.h"
#include "util/rng.h"

/* ---------------------------------------------------------------- input gradients */

/* Logits (n, k) of x in eval mode, on the calling thread. */
static void logits_of(const fnn_model *m, const float *x, int n, float *out)
{
    fnn_error err;
    fnn_exec *e;
    assert_int_equal(fnn_exec_create(m, n, 1, NULL, &e, &err), FNN_OK);
    fnn_pass pass = {.train = 0};
    const float *z = fnn_exec_forward(e, &pass, x, n);
    memcpy(out, z, (size_t)n * m->nclasses * sizeof *out);
    fnn_exec_free(e);
}

/* Every layer type the gradient passes through, batch norm with non-trivial moving statistics;
 * more images than one internal batch, each asking for its own class. */
static void check_gradient(const char *spec, int threads)
{
    enum { N = 300, H = 10, W = 10 };
    const float step = 1e-3f;
    fnn_error err;
    fnn_model *m = fnn_model_create(spec, 1, H, W, &err);
    if (!m)
        fail_msg("%s: %s", spec, err.msg);
    fnn_model_init(m, 7);
    fnn_rng rng;
    fnn_rng_seed(&rng, 11);
    for (int t = 0; t < fnn_model_num_tensors(m); t++) {
        fnn_tensor tt;
        fnn_model_tensor(m, t, &tt);
        int var = strstr(tt.name, "moving_variance") != NULL;
        if (tt.rank == 1)
            for (size_t i = 0; i < tt.size; i++)
                tt.data[i] = var ? 0.5f + fnn_rng_uniform(&rng) : fnn_rng_uniform(&rng) - 0.5f;
    }
    int k = fnn_model_num_classes(m);
    size_t in = H * W;
    float *x = malloc(N * in * sizeof *x), *dx = malloc(N * in * sizeof *dx);
    float *fd = malloc(N * in * sizeof *fd);
    float *zp = malloc((size_t)N * k * sizeof *zp), *zm = malloc((size_t)N * k * sizeof *zm);
    int classes[N];
    for (size_t i = 0; i < N * in; i++)
        x[i] = fnn_rng_uniform(&rng);
    for (int i = 0; i < N; i++)
        classes[i] = i % k;
    assert_int_equal(fnn_input_gradient(m, x, N, classes, dx, threads, &err), FNN_OK);

    /* Images do not interact in eval mode, so one pixel of every image moves at once. */
    for (size_t p = 0; p < in; p++) {
        for (int i = 0; i < N; i++)
            x[i * in + p] += step;
        logits_of(m, x, N, zp);
        for (int i = 0; i < N; i++)
            x[i * in + p] -= 2 * step;
        logits_of(m, x, N, zm);
        for (int i = 0; i < N; i++) {
            x[i * in + p] += step;
            fd[i * in + p] = (zp[i * k + classes[i]] - zm[i * k + classes[i]]) / (2 * step);
        }
    }
    /* Per element: float rounding of the logits (about 1e-7 |z| / step) and the rare kink
     * crossed by the step (ReLU, a max-pool switch) allow a few misses, a wrong or zero
     * gradient misses nearly everywhere. */
    double norm = 0;
    size_t bad = 0, worst = 0;
    for (size_t i = 0; i < N * in; i++) {
        double e = fabs((double)dx[i] - fd[i]);
        norm += (double)fd[i] * fd[i];
        if (e > 2e-4 + 1e-2 * fabs(fd[i]))
            bad++;
        if (e > fabs((double)dx[worst] - fd[worst]))
            worst = i;
    }
    if (!(sqrt(norm / (N * in)) > 1e-3) || bad > N * in / 100)
        fail_msg("%s, %d threads: %zu of %zu elements differ, e.g. image %zu pixel %zu: %g "
                 "against %g by finite differences (gradient rms %g)", spec, threads, bad,
                 (size_t)N * in, worst / in, worst % in, dx[worst], fd[worst],
                 sqrt(norm / (N * in)));
    free(x);
    free(dx);
    free(fd);
    free(zp);
    free(zm);
    fnn_model_free(m);
}

static void test_gradient_conv_stack(void **state)
{
    const char *spec = "conv2d:4:3:same batchnorm tanh maxpool:2 conv2d:6:3 relu "
                       "flatten dense:16 batchnorm tanh dropout:0.5 dense:5:softmax";
    check_gradient(spec, 1);
    check_gradient(spec, 2);
}

static void test_gradient_residual(void **state)
{
    check_gradient("conv2d:4:3:same tanh residual conv2d:4:3:same:nobias batchnorm tanh end "
                   "avgpool:2 flatten dense:3:softmax", 2);
}

static void test_gradient_mlp(void **state)
{
    check_gradient("flatten dense:32:relu dropout:0.5 dense:16:relu dense:4:softmax", 2);
}

static void test_gradient_rejects_bad_class(void **state)
{
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:3:softmax", 1, 4, 4, &err);
    float x[16] = {0}, dx[16];
    int cls = 3;
    assert_int_equal(fnn_input_gradient(m, x, 1, &cls, dx, 1, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "class 3"));
    fnn_model_free(m);
}

/* ---------------------------------------------------------------- a region decides the class */

enum { SIDE = 16, SQ = 5, SQ0 = 1 }; /* the square covers rows and columns SQ0 .. SQ0+SQ-1 */

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

static int in_square(int p)
{
    int y = p / SIDE, x = p % SIDE;
    return y >= SQ0 && y < SQ0 + SQ && x >= SQ0 && x < SQ0 + SQ;
}

static fnn_model *train_region_model(const fnn_dataset *train)
{
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:16:relu dense:2:softmax", 1, SIDE, SIDE, &err);
    fnn_model_init(m, 3);
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 8;
    cfg.batch_size = 32;
    cfg.threads = 1;
    cfg.seed = 5;
    /* Weight decay pulls the weights of pixels that carry no information towards zero. */
    cfg.optim.weight_decay = 1e-3f;
    fnn_dataset none = {0};
    assert_int_equal(fnn_train(m, train, &none, &cfg, NULL, &err), FNN_OK);
    return m;
}

/* The map's largest value lies in the square, and the square's mean is well above the rest
 * (noise puts its maximum there one time in ten, with equal means). */
static void assert_map_in_square(const float *map, const char *what)
{
    int best = 0;
    double inside = 0, outside = 0;
    for (int p = 0; p < SIDE * SIDE; p++) {
        if (map[p] > map[best])
            best = p;
        if (in_square(p))
            inside += map[p];
        else
            outside += map[p];
    }
    inside /= SQ * SQ;
    outside /= SIDE * SIDE - SQ * SQ;
    if (!in_square(best) || !(inside > 1.5 * outside))
        fail_msg("%s: maximum at row %d column %d, mean %g in the square and %g outside", what,
                 best / SIDE, best % SIDE, inside, outside);
}

static void test_maps_find_the_region(void **state)
{
    fnn_dataset train, test;
    make_region_set(&train, 2000, 1);
    make_region_set(&test, 300, 2);
    fnn_model *m = train_region_model(&train);
    fnn_error err;
    fnn_metrics mt = {0};
    assert_int_equal(fnn_evaluate(m, &test, 1, NULL, NULL, &mt, &err), FNN_OK);
    assert_true(mt.accuracy > 0.95);

    float maps[2 * SIDE * SIDE];
    const fnn_saliency_method methods[] = {FNN_SALIENCY_GRADIENT, FNN_SALIENCY_SMOOTHGRAD,
                                           FNN_SALIENCY_INTEGRATED};
    for (int j = 0; j < 3; j++) {
        fnn_saliency_config cfg = {.method = methods[j], .seed = 9, .max_images = 100};
        assert_int_equal(fnn_saliency(m, &test, &cfg, 2, maps, &err), FNN_OK);
        char what[64];
        for (int c = 0; c < 2; c++) {
            snprintf(what, sizeof what, "saliency method %d class %d", j, c);
            /* Integrated gradients scale by the pixel: class 0 has no bright square to credit. */
            if (methods[j] != FNN_SALIENCY_INTEGRATED || c == 1)
                assert_map_in_square(maps + c * SIDE * SIDE, what);
        }
    }

    float drop[SIDE * SIDE];
    double base;
    assert_int_equal(fnn_occlusion(m, &test, 4, 2, 2, drop, &base, &err), FNN_OK);
    assert_true(base == mt.accuracy);
    assert_map_in_square(drop, "occlusion");
    fnn_metrics_free(&mt);
    fnn_model_free(m);
    fnn_dataset_free(&train);
    fnn_dataset_free(&test);
}

/* Saliency is a per-class mean: a class's map does not change when another class's images are
 * dropped, and a class without images gets zeros. */
static void test_saliency_per_class_means(void **state)
{
    fnn_dataset d;
    make_region_set(&d, 60, 4);
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:8:relu dense:3:softmax", 1, SIDE, SIDE, &err);
    fnn_model_init(m, 1);
    float maps[3 * SIDE * SIDE], manual[SIDE * SIDE] = {0};
    fnn_saliency_config cfg = {.method = FNN_SALIENCY_GRADIENT};
    assert_int_equal(fnn_saliency(m, &d, &cfg, 1, maps, &err), FNN_OK);
    /* By hand: |gradient of class 1| averaged over the class 1 images. */
    float x[SIDE * SIDE], g[SIDE * SIDE];
    int one = 1, count = 0;
    for (int i = 0; i < d.n; i++) {
        if (d.labels[i] != 1)
            continue;
        for (int p = 0; p < SIDE * SIDE; p++)
            x[p] = d.images[i * SIDE * SIDE + p] / 255.0f;
        assert_int_equal(fnn_input_gradient(m, x, 1, &one, g, 1, &err), FNN_OK);
        for (int p = 0; p < SIDE * SIDE; p++)
            manual[p] += fabsf(g[p]);
        count++;
    }
    assert_true(count > 0);
    double nonzero = 0;
    for (int p = 0; p < SIDE * SIDE; p++) {
        assert_float_equal(maps[SIDE * SIDE + p], manual[p] / count, 1e-5);
        assert_float_equal(maps[2 * SIDE * SIDE + p], 0.0, 0.0);
        nonzero += maps[SIDE * SIDE + p];
    }
    assert_true(nonzero > 0);
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

/* Integrated gradients by hand, image by image: the path's 32 points a x for a = (v + 0.5) / 32,
 * each one's gradient by fnn_input_gradient, their mean times the pixel. fnn_saliency takes
 * 8 images a call here, so each class's map sums several calls made with one executor, and
 * the classes follow one another through it. */
static void test_integrated_gradients_by_hand(void **state)
{
    enum { STEPS = 32, HW = SIDE * SIDE };
    fnn_dataset d;
    make_region_set(&d, 60, 8);
    fnn_error err;
    fnn_model *m = fnn_model_create("conv2d:4:3:same:relu maxpool:2 flatten dense:2:softmax", 1,
                                    SIDE, SIDE, &err);
    assert_non_null(m);
    fnn_model_init(m, 2);
    float maps[2 * HW];
    fnn_saliency_config cfg = {.method = FNN_SALIENCY_INTEGRATED};
    assert_int_equal(fnn_saliency(m, &d, &cfg, 2, maps, &err), FNN_OK);
    for (int c = 0; c < 2; c++) {
        double manual[HW] = {0};
        int count = 0;
        for (int i = 0; i < d.n; i++) {
            if (d.labels[i] != c)
                continue;
            float x[HW], xv[HW], g[HW];
            double sum[HW] = {0};
            for (int p = 0; p < HW; p++)
                x[p] = d.images[i * HW + p] / 255.0f;
            for (int v = 0; v < STEPS; v++) {
                float a = ((float)v + 0.5f) / (float)STEPS;
                for (int p = 0; p < HW; p++)
                    xv[p] = a * x[p];
                assert_int_equal(fnn_input_gradient(m, xv, 1, &c, g, 1, &err), FNN_OK);
                for (int p = 0; p < HW; p++)
                    sum[p] += g[p];
            }
            for (int p = 0; p < HW; p++)
                manual[p] += fabs(sum[p] / STEPS * (d.images[i * HW + p] / 255.0));
            count++;
        }
        assert_true(count > 8); /* more than one call's images */
        double total = 0;
        for (int p = 0; p < HW; p++) {
            double want = manual[p] / count;
            if (fabs(maps[c * HW + p] - want) > 1e-5 + 1e-4 * fabs(want))
                fail_msg("class %d pixel %d: %g, by hand %g", c, p, (double)maps[c * HW + p],
                         want);
            total += want;
        }
        assert_true(total > 0);
    }
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

/* Occlusion by hand: for every position of the patch, the accuracy of a copy of the data with
 * that square blacked out in every channel, by fnn_evaluate; each pixel's drop is the mean over
 * the positions covering it. One executor serves all of fnn_occlusion's positions, so this
 * fails if a pass sees anything of an earlier one (a stale batch, an edit carried over). */
static void test_occlusion_matches_evaluations(void **state)
{
    enum { N = 300, C = 3, PATCH = 6, STRIDE = 4 }; /* two batches; origins 0, 4, 8 and 10 */
    fnn_dataset d;
    make_region_set(&d, N, 6);
    /* In colour: three planes, the second and third the first's inverse and half. */
    uint8_t *rgb = malloc((size_t)N * C * SIDE * SIDE);
    for (int i = 0; i < N; i++)
        for (int p = 0; p < SIDE * SIDE; p++) {
            uint8_t v = d.images[(size_t)i * SIDE * SIDE + p];
            uint8_t *px = rgb + (size_t)i * C * SIDE * SIDE + p;
            px[0] = v;
            px[SIDE * SIDE] = (uint8_t)(255 - v);
            px[2 * SIDE * SIDE] = (uint8_t)(v / 2);
        }
    free(d.images);
    d.images = rgb;
    d.c = C;
    fnn_error err;
    fnn_model *m = fnn_model_create("conv2d:4:3:same:relu maxpool:2 flatten dense:2:softmax", C,
                                    SIDE, SIDE, &err);
    assert_non_null(m);
    fnn_model_init(m, 4);
    float drop[SIDE * SIDE];
    double base;
    assert_int_equal(fnn_occlusion(m, &d, PATCH, STRIDE, 2, drop, &base, &err), FNN_OK);

    fnn_metrics mt = {0};
    assert_int_equal(fnn_evaluate(m, &d, 2, NULL, NULL, &mt, &err), FNN_OK);
    assert_true(base == mt.accuracy);
    fnn_metrics_free(&mt);
    const int origin[] = {0, 4, 8, SIDE - PATCH};
    double sum[SIDE * SIDE] = {0};
    int cover[SIDE * SIDE] = {0}, changed = 0;
    fnn_dataset o = d;
    o.owns = 0;
    o.images = malloc((size_t)N * C * SIDE * SIDE);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            memcpy(o.images, d.images, (size_t)N * C * SIDE * SIDE);
            for (int i = 0; i < N * C; i++)
                for (int y = origin[a]; y < origin[a] + PATCH; y++)
                    memset(o.images + (size_t)i * SIDE * SIDE + y * SIDE + origin[b], 0, PATCH);
            assert_int_equal(fnn_evaluate(m, &o, 2, NULL, NULL, &mt, &err), FNN_OK);
            double dropped = base - mt.accuracy;
            changed += dropped != 0.0;
            fnn_metrics_free(&mt);
            for (int y = origin[a]; y < origin[a] + PATCH; y++)
                for (int x = origin[b]; x < origin[b] + PATCH; x++) {
                    sum[y * SIDE + x] += dropped;
                    cover[y * SIDE + x]++;
                }
        }
    assert_true(changed > 0); /* else every map would be zeros, and this proves nothing */
    for (int p = 0; p < SIDE * SIDE; p++)
        if (drop[p] != (float)(sum[p] / cover[p]))
            fail_msg("occlusion at row %d column %d: %g, by hand %g", p / SIDE, p % SIDE,
                     (double)drop[p], sum[p] / cover[p]);
    free(o.images);
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

static void test_occlusion_arguments(void **state)
{
    fnn_dataset d;
    make_region_set(&d, 10, 4);
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:2:softmax", 1, SIDE, SIDE, &err);
    float drop[SIDE * SIDE];
    double base;
    assert_int_equal(fnn_occlusion(m, &d, SIDE + 1, 2, 1, drop, &base, &err), FNN_ERR_ARG);
    assert_int_equal(fnn_occlusion(m, &d, 4, 0, 1, drop, &base, &err), FNN_ERR_ARG);
    fnn_saliency_config cfg = {.method = 7};
    float maps[2 * SIDE * SIDE];
    assert_int_equal(fnn_saliency(m, &d, &cfg, 1, maps, &err), FNN_ERR_ARG);
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_conv_stack),
        cmocka_unit_test(test_gradient_residual),
        cmocka_unit_test(test_gradient_mlp),
        cmocka_unit_test(test_gradient_rejects_bad_class),
        cmocka_unit_test(test_maps_find_the_region),
        cmocka_unit_test(test_saliency_per_class_means),
        cmocka_unit_test(test_integrated_gradients_by_hand),
        cmocka_unit_test(test_occlusion_matches_evaluations),
        cmocka_unit_test(test_occlusion_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
