/* Colour through the library: the model's per-channel input normalisation (forward, input
 * gradient, arguments, the data's statistics, model files, checkpoints, transfer) and the
 * evaluation tools on 3-channel images (robustness, occlusion and saliency touch every plane). */
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
#include "io/safetensors.h"
#include "check.h"

enum { C = 3, SIDE = 6, PLANE = SIDE * SIDE, IN = C * PLANE };

static const float MEAN[C] = {0.49f, 0.48f, 0.45f}, STD[C] = {0.25f, 0.24f, 0.26f};

/* "$FNN_TMP/test_channels_<name>". */
static const char *tmp_path(const char *name)
{
    static char buf[4][1024];
    static int next;
    const char *dir = getenv("FNN_TMP");
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/test_channels_%s", dir && *dir ? dir : "/tmp", name);
    return p;
}

static fnn_model *make_model(const char *spec, uint64_t seed)
{
    fnn_error err = {0};
    fnn_model *m = fnn_model_create(spec, C, SIDE, SIDE, &err);
    if (!m)
        fail_msg("%s: %s", spec, err.msg);
    fnn_model_init(m, seed);
    return m;
}

/* Uniform pixels in [0, 1), (n, C, SIDE, SIDE). */
static float *random_x(int n, unsigned seed)
{
    float *x = malloc((size_t)n * IN * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < (size_t)n * IN; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) * 0x1p-24f;
    }
    return x;
}

/* n random colour images with labels i % k. */
static fnn_dataset random_set(int n, int k, unsigned seed)
{
    fnn_dataset d = {.n = n, .c = C, .h = SIDE, .w = SIDE, .nclasses = k, .owns = 1};
    d.images = malloc((size_t)n * IN);
    d.labels = malloc((size_t)n);
    assert_true(d.images && d.labels);
    for (size_t i = 0; i < (size_t)n * IN; i++) {
        seed = seed * 1664525u + 1013904223u;
        d.images[i] = (uint8_t)(seed >> 24);
    }
    for (int i = 0; i < n; i++)
        d.labels[i] = (uint8_t)(i % k);
    return d;
}

#define SPEC "conv2d:4:3:same:relu conv2d:5:3:same maxpool:2 flatten dense:3"

/* ---------------------------------------------------------------- the normalisation */

/* A normalised model gives, bit for bit, what the same weights give without normalisation on
 * inputs normalised by hand; its input gradient is that model's divided by std. */
static void test_forward_and_gradient(void **state)
{
    enum { N = 7 };
    fnn_error err = {0};
    fnn_model *a = make_model(SPEC, 5), *b = make_model(SPEC, 5);
    assert_int_equal(fnn_model_normalization(a, NULL, NULL), 0);
    assert_int_equal(fnn_model_set_normalization(a, MEAN, STD, &err), FNN_OK);
    float *x = random_x(N, 1), *xn = malloc(N * IN * sizeof *xn);
    assert_non_null(xn);
    for (int i = 0; i < N; i++)
        for (int ch = 0; ch < C; ch++)
            for (int p = 0; p < PLANE; p++) {
                size_t at = (size_t)i * IN + (size_t)ch * PLANE + p;
                xn[at] = (x[at] - MEAN[ch]) / STD[ch];
            }
    int classes[N];
    for (int i = 0; i < N; i++)
        classes[i] = i % 3;
    for (int threads = 1; threads <= 2; threads++) {
        float pa[N * 3], pb[N * 3], ga[N * IN], gb[N * IN];
        assert_int_equal(fnn_model_predict(a, x, N, pa, threads, &err), FNN_OK);
        assert_int_equal(fnn_model_predict(b, xn, N, pb, threads, &err), FNN_OK);
        assert_memory_equal(pa, pb, sizeof pa);
        assert_int_equal(fnn_input_gradient(a, x, N, classes, ga, threads, &err), FNN_OK);
        assert_int_equal(fnn_input_gradient(b, xn, N, classes, gb, threads, &err), FNN_OK);
        double worst = 0.0, largest = 0.0;
        for (int i = 0; i < N * IN; i++) {
            double want = (double)gb[i] / STD[(i % IN) / PLANE];
            worst = fmax(worst, fabs(ga[i] - want));
            largest = fmax(largest, fabs(want));
        }
        assert_true(largest > 1e-3);
        assert_true(worst <= 1e-6 * largest);
    }
    /* Removed again, the model is b. */
    assert_int_equal(fnn_model_set_normalization(a, NULL, NULL, &err), FNN_OK);
    float pa[N * 3], pb[N * 3];
    assert_int_equal(fnn_model_predict(a, xn, N, pa, 1, &err), FNN_OK);
    assert_int_equal(fnn_model_predict(b, xn, N, pb, 1, &err), FNN_OK);
    assert_memory_equal(pa, pb, sizeof pa);
    free(x);
    free(xn);
    fnn_model_free(a);
    fnn_model_free(b);
}

static void test_arguments(void **state)
{
    fnn_error err = {0};
    fnn_model *m = make_model(SPEC, 1);
    float mean[C], std[C];
    const float zero[C] = {0.5f, 0.5f, 0.5f}, sd0[C] = {0.2f, 0.0f, 0.2f};
    const float nan_mean[C] = {0.5f, NAN, 0.5f}, inf_sd[C] = {0.2f, 0.2f, INFINITY};
    assert_int_equal(fnn_model_set_normalization(m, zero, sd0, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "std of channel 1");
    assert_int_equal(fnn_model_set_normalization(m, nan_mean, STD, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "mean of channel 1");
    assert_int_equal(fnn_model_set_normalization(m, MEAN, inf_sd, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "std of channel 2");
    assert_int_equal(fnn_model_set_normalization(m, MEAN, NULL, &err), FNN_ERR_ARG);
    assert_int_equal(fnn_model_normalization(m, mean, std), 0);
    for (int ch = 0; ch < C; ch++)
        assert_true(mean[ch] == 0.0f && std[ch] == 1.0f);
    assert_int_equal(fnn_model_set_normalization(m, MEAN, STD, &err), FNN_OK);
    assert_int_equal(fnn_model_normalization(m, mean, std), 1);
    assert_memory_equal(mean, MEAN, sizeof mean);
    assert_memory_equal(std, STD, sizeof std);
    fnn_model_free(m);
}

/* Mean and population std of pixel / 255 per channel, against a hand count; the thread count
 * changes nothing; a constant channel gets std 1. */
static void test_channel_stats(void **state)
{
    /* 2 images of 2 channels of 1x2 pixels. Channel 0: 0, 255, 255, 255; channel 1: all 51. */
    uint8_t images[8] = {0, 255, 51, 51, 255, 255, 51, 51}, labels[2] = {0, 1};
    fnn_dataset d = {.n = 2, .c = 2, .h = 1, .w = 2, .images = images, .labels = labels,
                     .nclasses = 2};
    double mean[2], std[2];
    fnn_error err = {0};
    assert_int_equal(fnn_dataset_channel_stats(&d, mean, std, 1, &err), FNN_OK);
    assert_true(fabs(mean[0] - 0.75) < 1e-15);
    assert_true(fabs(std[0] - sqrt(0.75 * 0.25)) < 1e-15);
    assert_true(fabs(mean[1] - 0.2) < 1e-15);
    assert_true(std[1] == 1.0);

    fnn_dataset big = random_set(301, 3, 9);
    double m1[C], s1[C], m2[C], s2[C];
    assert_int_equal(fnn_dataset_channel_stats(&big, m1, s1, 1, &err), FNN_OK);
    assert_int_equal(fnn_dataset_channel_stats(&big, m2, s2, 2, &err), FNN_OK);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_memory_equal(s1, s2, sizeof s1);
    for (int ch = 0; ch < C; ch++) { /* uniform bytes: mean 1/2, std about 0.29 */
        assert_true(fabs(m1[ch] - 0.5) < 0.02);
        assert_true(fabs(s1[ch] - 0.2887) < 0.02);
    }
    fnn_dataset empty = {.n = 0, .c = 1, .h = 1, .w = 1};
    assert_int_equal(fnn_dataset_channel_stats(&empty, m1, s1, 1, &err), FNN_ERR_ARG);
    fnn_dataset_free(&big);
}

/* ---------------------------------------------------------------- model files */

static void test_model_file_round_trip(void **state)
{
    fnn_error err = {0};
    fnn_model *m = make_model(SPEC, 3);
    const float odd[C] = {0.1f, 1.0f / 3.0f, 0.7071068f}; /* floats needing all 9 digits */
    assert_int_equal(fnn_model_set_normalization(m, odd, STD, &err), FNN_OK);
    const char *path = tmp_path("norm.safetensors");
    assert_int_equal(fnn_model_save(m, NULL, path, &err), FNN_OK);
    fnn_model *back = fnn_model_load(path, NULL, &err);
    if (!back)
        fail_msg("%s", err.msg);
    float mean[C], std[C];
    assert_int_equal(fnn_model_normalization(back, mean, std), 1);
    assert_memory_equal(mean, odd, sizeof mean);
    assert_memory_equal(std, STD, sizeof std);
    float *x = random_x(4, 2), pa[12], pb[12];
    assert_int_equal(fnn_model_predict(m, x, 4, pa, 1, &err), FNN_OK);
    assert_int_equal(fnn_model_predict(back, x, 4, pb, 1, &err), FNN_OK);
    assert_memory_equal(pa, pb, sizeof pa);
    free(x);
    fnn_model_free(back);

    /* Without one, the metadata is what it always was, and loads as none. */
    assert_int_equal(fnn_model_set_normalization(m, NULL, NULL, &err), FNN_OK);
    const char *plain = tmp_path("plain.safetensors");
    assert_int_equal(fnn_model_save(m, NULL, plain, &err), FNN_OK);
    fnn_st_file st;
    assert_int_equal(fnn_st_read(plain, &st, &err), FNN_OK);
    assert_string_equal(fnn_st_meta(&st, "normalization"), "{\"scale\": 0.00392156862745098}");
    fnn_st_free(&st);
    back = fnn_model_load(plain, NULL, &err);
    assert_non_null(back);
    assert_int_equal(fnn_model_normalization(back, NULL, NULL), 0);
    fnn_model_free(back);
    fnn_model_free(m);
}

/* The file at `path` rewritten with another "normalization" metadata. */
static void rewrite_normalization(const char *from, const char *to, const char *value)
{
    fnn_st_file st;
    fnn_error err = {0};
    assert_int_equal(fnn_st_read(from, &st, &err), FNN_OK);
    const char *values[16];
    assert_true(st.nmeta <= 16);
    for (int i = 0; i < st.nmeta; i++)
        values[i] = strcmp(st.meta_keys[i], "normalization") ? st.meta_values[i] : value;
    assert_int_equal(fnn_st_write(to, st.tensors, st.ntensors, st.meta_keys, values, st.nmeta,
                                  &err), FNN_OK);
    fnn_st_free(&st);
}

static void test_model_file_malformed(void **state)
{
    static const struct {
        const char *value, *needle;
    } cases[] = {
        {"{\"scale\": 0.00392156862745098, \"mean\": [0.5, 0.5], \"std\": [1, 1, 1]}",
         "\"mean\" has 2 values but the model's input has 3 channels"},
        {"{\"scale\": 0.00392156862745098, \"mean\": [0.5, 0.5, 0.5], \"std\": [1, 0, 1]}",
         "\"std\": entry 1 is not a finite number above 0"},
        {"{\"scale\": 0.00392156862745098, \"mean\": [0.5, \"a\", 0.5], \"std\": [1, 1, 1]}",
         "\"mean\": entry 1 is not a finite number"},
        {"{\"scale\": 0.00392156862745098, \"mean\": [1e300, 0, 0], \"std\": [1, 1, 1]}",
         "\"mean\": entry 0"},
        {"{\"scale\": 0.00392156862745098, \"mean\": 0.5, \"std\": [1, 1, 1]}",
         "\"mean\" is not a list of numbers"},
        {"{\"scale\": 0.00392156862745098, \"mean\": [0.5, 0.5, 0.5]}",
         "has \"mean\" without \"std\""},
        {"{\"scale\": 0.00392156862745098, \"offset\": [0, 0, 0]}", "is not the {\"scale\""},
        {"{\"scale\": 1}", "is not the {\"scale\""},
    };
    fnn_error err = {0};
    fnn_model *m = make_model(SPEC, 3);
    assert_int_equal(fnn_model_set_normalization(m, MEAN, STD, &err), FNN_OK);
    const char *good = tmp_path("good.safetensors"), *bad = tmp_path("bad.safetensors");
    assert_int_equal(fnn_model_save(m, NULL, good, &err), FNN_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite_normalization(good, bad, cases[i].value);
        fnn_model *back = fnn_model_load(bad, NULL, &err);
        if (back)
            fail_msg("case %zu loaded: %s", i, cases[i].value);
        assert_int_equal(err.status, FNN_ERR_FORMAT);
        assert_msg_has(&err, bad);
        assert_msg_has(&err, "metadata normalization");
        assert_msg_has(&err, cases[i].needle);
    }
    fnn_model_free(m);
}

/* ---------------------------------------------------------------- training */

static fnn_train_config small_run(int epochs)
{
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = epochs;
    cfg.batch_size = 16;
    cfg.threads = 2;
    cfg.seed = 4;
    return cfg;
}

/* Two epochs in one run, or one, a checkpoint, and a resume into a model that was not given
 * the normalisation: the same weights, bit for bit, and the normalisation back. */
static void test_checkpoint_resume(void **state)
{
    fnn_error err = {0};
    fnn_dataset train = random_set(96, 3, 21), none = {0};
    fnn_model *whole = make_model(SPEC, 8), *first = make_model(SPEC, 8),
              *resumed = make_model(SPEC, 8);
    assert_int_equal(fnn_model_set_normalization(whole, MEAN, STD, &err), FNN_OK);
    assert_int_equal(fnn_model_set_normalization(first, MEAN, STD, &err), FNN_OK);
    fnn_train_config cfg = small_run(2);
    fnn_epoch_stats stats[2]; /* checkpoints keep the history */
    assert_int_equal(fnn_train(whole, &train, &none, &cfg, stats, &err), FNN_OK);
    const char *ckpt = tmp_path("ckpt.safetensors");
    cfg = small_run(1);
    cfg.checkpoint = ckpt;
    if (fnn_train(first, &train, &none, &cfg, stats, &err) != FNN_OK)
        fail_msg("%s", err.msg);
    cfg = small_run(2);
    cfg.resume = ckpt;
    if (fnn_train(resumed, &train, &none, &cfg, stats, &err) != FNN_OK)
        fail_msg("%s", err.msg);
    float mean[C], std[C];
    assert_int_equal(fnn_model_normalization(resumed, mean, std), 1);
    assert_memory_equal(mean, MEAN, sizeof mean);
    assert_memory_equal(std, STD, sizeof std);
    for (int i = 0; i < fnn_model_num_tensors(whole); i++) {
        fnn_tensor a, b;
        fnn_model_tensor(whole, i, &a);
        fnn_model_tensor(resumed, i, &b);
        assert_memory_equal(a.data, b.data, a.size * sizeof *a.data);
    }
    fnn_model_free(whole);
    fnn_model_free(first);
    fnn_model_free(resumed);
    fnn_dataset_free(&train);
}

/* Transfer copies weights, not the source's statistics: the target keeps its own. */
static void test_transfer_keeps_own(void **state)
{
    fnn_error err = {0};
    fnn_model *src = make_model(SPEC, 1), *dst = make_model(SPEC, 2);
    assert_int_equal(fnn_model_set_normalization(src, MEAN, STD, &err), FNN_OK);
    int loaded;
    assert_int_equal(fnn_model_transfer(dst, src, 2, NULL, &loaded, &err), FNN_OK);
    assert_true(loaded > 0);
    assert_int_equal(fnn_model_normalization(dst, NULL, NULL), 0);
    fnn_model_free(src);
    fnn_model_free(dst);
}

/* ---------------------------------------------------------------- evaluation on colour */

/* A linear model that looks at the blue plane only for class 1 (with a weaker red weight, so
 * that a saliency summing channels would differ from their maximum) and at green for class 0;
 * class 1 images are blue all over, class 0 images black. */
static fnn_model *blue_model(void)
{
    fnn_model *m = make_model("flatten dense:2", 1);
    fnn_tensor kernel, bias;
    fnn_model_tensor(m, 0, &kernel); /* (IN, 2) */
    fnn_model_tensor(m, 1, &bias);
    for (int i = 0; i < IN; i++) {
        int ch = i / PLANE;
        kernel.data[i * 2 + 0] = ch == 1 ? 0.25f : 0.0f;
        kernel.data[i * 2 + 1] = ch == 2 ? 1.0f : ch == 0 ? -0.5f : 0.0f;
    }
    bias.data[0] = 0.0f;
    bias.data[1] = -0.5f;
    return m;
}

static fnn_dataset blue_set(int n)
{
    fnn_dataset d = {.n = n, .c = C, .h = SIDE, .w = SIDE, .nclasses = 2, .owns = 1};
    d.images = calloc((size_t)n, IN);
    d.labels = malloc((size_t)n);
    assert_true(d.images && d.labels);
    for (int i = 0; i < n; i++) {
        d.labels[i] = (uint8_t)(i % 2);
        if (d.labels[i])
            memset(d.images + (size_t)i * IN + 2 * PLANE, 255, PLANE);
    }
    return d;
}

/* Noise, a shift out of the image and a square over all of it reach the blue plane: the class
 * 1 images (or, for noise, most class 0 ones) change class. */
static void test_robustness_every_plane(void **state)
{
    fnn_error err = {0};
    fnn_model *m = blue_model();
    fnn_dataset d = blue_set(40);
    const double noise[2] = {0, 0.5}, shift[2] = {0, SIDE}, occlude[2] = {0, SIDE};
    const struct {
        fnn_perturbation p;
        const double *levels;
    } cases[] = {{FNN_PERTURB_NOISE, noise}, {FNN_PERTURB_SHIFT, shift},
                 {FNN_PERTURB_OCCLUDE, occlude}};
    for (int i = 0; i < 3; i++) {
        double acc[2];
        assert_int_equal(fnn_robustness(m, &d, cases[i].p, cases[i].levels, 2, 1, 2, acc, &err),
                         FNN_OK);
        print_message("%s: %.3f, then %.3f\n", fnn_perturbation_name(cases[i].p), acc[0], acc[1]);
        assert_true(acc[0] == 1.0);
        /* Had the edit reached the red plane alone, no image would change class. */
        assert_true(acc[1] < 0.9);
    }
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

static void test_occlusion_every_plane(void **state)
{
    fnn_error err = {0};
    fnn_model *m = blue_model();
    fnn_dataset d = blue_set(20);
    float drop[PLANE];
    double base;
    assert_int_equal(fnn_occlusion(m, &d, SIDE, 1, 1, drop, &base, &err), FNN_OK);
    assert_true(base == 1.0);
    for (int p = 0; p < PLANE; p++)
        assert_float_equal(drop[p], 0.5f, 1e-6f);
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

/* The model is linear, so each class's gradient is its kernel column: the map is the largest
 * |weight| over a pixel's channels, 1 (blue, not 1.5 = blue + red) for class 1, 0.25 for 0. */
static void test_saliency_max_over_channels(void **state)
{
    fnn_error err = {0};
    fnn_model *m = blue_model();
    fnn_dataset d = blue_set(10);
    float maps[2 * PLANE];
    fnn_saliency_config cfg = {.method = FNN_SALIENCY_GRADIENT};
    assert_int_equal(fnn_saliency(m, &d, &cfg, 1, maps, &err), FNN_OK);
    for (int p = 0; p < PLANE; p++) {
        assert_float_equal(maps[p], 0.25f, 1e-6f);
        assert_float_equal(maps[PLANE + p], 1.0f, 1e-6f);
    }
    /* Integrated gradients scale by each channel's own pixels: blue 1 for class 1, and the
     * black class 0 images give 0. */
    cfg.method = FNN_SALIENCY_INTEGRATED;
    assert_int_equal(fnn_saliency(m, &d, &cfg, 1, maps, &err), FNN_OK);
    for (int p = 0; p < PLANE; p++) {
        assert_float_equal(maps[p], 0.0f, 1e-6f);
        assert_float_equal(maps[PLANE + p], 1.0f, 1e-5f);
    }
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_and_gradient),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_channel_stats),
        cmocka_unit_test(test_model_file_round_trip),
        cmocka_unit_test(test_model_file_malformed),
        cmocka_unit_test(test_checkpoint_resume),
        cmocka_unit_test(test_transfer_keeps_own),
        cmocka_unit_test(test_robustness_every_plane),
        cmocka_unit_test(test_occlusion_every_plane),
        cmocka_unit_test(test_saliency_max_over_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
