/* Learning-rate schedules, Nesterov momentum and gradient clipping against hand-computed
 * values: the schedule as a function, the other two through the optimizer and a real training
 * step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fnn.h"
#include "optim/optim.h"
#include "train/train.h"

static void test_step_schedule(void **state)
{
    fnn_lr_schedule s = {.kind = FNN_LR_STEP, .step_epochs = 2, .gamma = 0.5f};
    /* Epochs 0 and 1 at 0.1, 2 and 3 at 0.05, 4 at 0.025, whatever the step inside them. */
    const float want[5] = {0.1f, 0.1f, 0.05f, 0.05f, 0.025f};
    for (int e = 0; e < 5; e++)
        for (int i = 0; i < 3; i++)
            assert_float_equal(fnn_lr_at(&s, 0.1f, 5, 3, e, (int64_t)e * 3 + i, 1.0f), want[e],
                               1e-9f);
}

static void test_cosine_schedule(void **state)
{
    /* 2 epochs of 2 steps: 4 steps, lr (1 + cos(pi t / 4)) / 2. */
    fnn_lr_schedule s = {.kind = FNN_LR_COSINE};
    const float want[4] = {0.1f, 0.085355339f, 0.05f, 0.014644661f};
    for (int t = 0; t < 4; t++)
        assert_float_equal(fnn_lr_at(&s, 0.1f, 2, 2, t / 2, t, 1.0f), want[t], 1e-7f);
}

static void test_warmup(void **state)
{
    /* One warm-up epoch of 4 steps: lr/4, 2lr/4, 3lr/4, lr; then cosine over the 8 steps of
     * the remaining 2 epochs: step 4 is its start (lr) and step 8 its middle (lr / 2). */
    fnn_lr_schedule s = {.kind = FNN_LR_COSINE, .warmup_epochs = 1};
    const float warm[4] = {0.025f, 0.05f, 0.075f, 0.1f};
    for (int t = 0; t < 4; t++)
        assert_float_equal(fnn_lr_at(&s, 0.1f, 3, 4, 0, t, 1.0f), warm[t], 1e-8f);
    assert_float_equal(fnn_lr_at(&s, 0.1f, 3, 4, 1, 4, 1.0f), 0.1f, 1e-8f);
    assert_float_equal(fnn_lr_at(&s, 0.1f, 3, 4, 2, 8, 1.0f), 0.05f, 1e-8f);
    /* Warm-up alone, then constant. */
    fnn_lr_schedule c = {.kind = FNN_LR_CONSTANT, .warmup_epochs = 2};
    assert_float_equal(fnn_lr_at(&c, 0.2f, 5, 1, 0, 0, 1.0f), 0.1f, 1e-8f);
    assert_float_equal(fnn_lr_at(&c, 0.2f, 5, 1, 3, 3, 1.0f), 0.2f, 0.0f);
}

static void test_onecycle_table(void **state)
{
    /* 2 epochs of 5 steps, peak at 0.3: P = 3 of T = 10. Up lr/3, 2lr/3, lr; then down
     * lr * (10 - t) / 7 from t = 3 (lr) to t = 9 (lr / 7). */
    fnn_lr_schedule s = {.kind = FNN_LR_ONECYCLE, .peak_at = 0.3f};
    const double want[10] = {1.0 / 3, 2.0 / 3, 1.0, 1.0, 6.0 / 7, 5.0 / 7, 4.0 / 7, 3.0 / 7,
                             2.0 / 7, 1.0 / 7};
    for (int t = 0; t < 10; t++)
        assert_float_equal(fnn_lr_at(&s, 0.7f, 2, 5, t / 5, t, 1.0f), 0.7 * want[t], 1e-7f);
    /* The peak rounds to the nearest step and stays inside the run: 0.99 of 10 is step 9. */
    s.peak_at = 0.99f;
    assert_float_equal(fnn_lr_at(&s, 0.9f, 1, 10, 0, 8, 1.0f), 0.9f, 1e-7f);
    assert_float_equal(fnn_lr_at(&s, 0.9f, 1, 10, 0, 9, 1.0f), 0.9f, 1e-7f);
    /* The plateau factor has no say. */
    assert_float_equal(fnn_lr_at(&s, 0.9f, 1, 10, 0, 9, 0.5f), 0.9f, 1e-7f);
}

/* fnn_train refuses a peak outside (0, 1) and a warm-up on top of the cycle's own. */
static void test_onecycle_config(void **state)
{
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:2:softmax", 1, 2, 2, &err);
    assert_non_null(m);
    fnn_model_init(m, 1);
    uint8_t px[2 * 4] = {0}, y[2] = {0, 1};
    fnn_dataset d = {.n = 2, .c = 1, .h = 2, .w = 2, .nclasses = 2, .images = px, .labels = y};
    fnn_dataset none = {0};
    const float peak[] = {0.0f, 1.0f, NAN, 0.5f};
    const int warm[] = {0, 0, 0, 1};
    for (int i = 0; i < 4; i++) {
        fnn_train_config c = fnn_train_default();
        c.epochs = 1;
        c.schedule = (fnn_lr_schedule){.kind = FNN_LR_ONECYCLE, .peak_at = peak[i],
                                       .warmup_epochs = warm[i]};
        assert_int_equal(fnn_train(m, &d, &none, &c, NULL, &err), FNN_ERR_ARG);
        assert_non_null(strstr(err.msg, "one-cycle"));
    }
    fnn_train_config ok = fnn_train_default();
    ok.epochs = 1;
    ok.schedule = (fnn_lr_schedule){.kind = FNN_LR_ONECYCLE, .peak_at = 0.5f};
    assert_int_equal(fnn_train(m, &d, &none, &ok, NULL, &err), FNN_OK);
    fnn_model_free(m);
}

/* The change one plain SGD step makes to tensor i (kernel 0, bias 1) of a fresh dense model
 * trained with bn_lr_scale. */
static void one_dense_step(float bn_lr_scale, float *dkernel, float *dbias)
{
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:2:softmax", 1, 2, 2, &err);
    assert_non_null(m);
    fnn_model_init(m, 3);
    uint8_t px[2 * 4] = {10, 200, 30, 90, 250, 0, 70, 120}, y[2] = {0, 1};
    fnn_dataset d = {.n = 2, .c = 1, .h = 2, .w = 2, .nclasses = 2, .images = px, .labels = y};
    fnn_dataset none = {0};
    fnn_tensor k, b;
    fnn_model_tensor(m, 0, &k);
    fnn_model_tensor(m, 1, &b);
    assert_int_equal(k.rank, 2);
    assert_int_equal(b.rank, 1);
    float k0[8], b0[2];
    memcpy(k0, k.data, sizeof k0);
    memcpy(b0, b.data, sizeof b0);
    fnn_train_config c = fnn_train_default();
    c.epochs = 1;
    c.batch_size = 2;
    c.threads = 1;
    c.optim = fnn_optim_default(FNN_OPT_SGD);
    c.optim.lr = 0.5f;
    c.bn_lr_scale = bn_lr_scale;
    assert_int_equal(fnn_train(m, &d, &none, &c, NULL, &err), FNN_OK);
    for (int i = 0; i < 8; i++)
        dkernel[i] = k.data[i] - k0[i];
    for (int i = 0; i < 2; i++)
        dbias[i] = b.data[i] - b0[i];
    fnn_model_free(m);
}

/* --bn-lr-scale reaches the optimizer through the model's groups: biases move 4x as far, kernels
 * exactly as far as without it, and 0 and 1 are the same run. */
static void test_bn_lr_scale_groups(void **state)
{
    float k1[8], b1[2], k4[8], b4[2], k0[8], b0[2];
    one_dense_step(1.0f, k1, b1);
    one_dense_step(4.0f, k4, b4);
    one_dense_step(0.0f, k0, b0);
    assert_memory_equal(k1, k4, sizeof k1);
    assert_memory_equal(k1, k0, sizeof k1);
    assert_memory_equal(b1, b0, sizeof b1);
    for (int i = 0; i < 2; i++) {
        assert_true(fabsf(b1[i]) > 1e-4f);
        assert_float_equal(b4[i], 4.0f * b1[i], 1e-6f);
    }
}

static void test_plateau_and_constant(void **state)
{
    fnn_lr_schedule p = {.kind = FNN_LR_PLATEAU, .patience = 1, .factor = 0.5f};
    assert_float_equal(fnn_lr_at(&p, 0.1f, 9, 5, 3, 17, 0.25f), 0.025f, 1e-9f);
    fnn_lr_schedule c = {0};
    assert_float_equal(fnn_lr_at(&c, 0.1f, 9, 5, 3, 17, 0.25f), 0.1f, 0.0f);
}

/* ReduceLROnPlateau's bookkeeping epoch by epoch: improvements smaller than min_delta (1e-4)
 * count as none, a cut comes after `patience` epochs without one, and the rate stops at
 * min_lr. lr 0.1, patience 2, factor 0.5, min_lr 0.01 (scale floor 0.1). */
static void test_plateau_table(void **state)
{
    fnn_lr_schedule s = {.kind = FNN_LR_PLATEAU, .patience = 2, .factor = 0.5f, .min_lr = 0.01f};
    const float floor_scale = 0.01f / 0.1f;
    static const struct {
        double loss;
        float scale;
        double best;
        int wait;
    } table[] = {
        {1.0, 1.0f, 1.0, 0},        /* the first epoch always improves on +inf */
        {0.99995, 1.0f, 1.0, 1},    /* better by 5e-5: not by min_delta */
        {0.99992, 0.5f, 1.0, 0},    /* better by 8e-5 still not: the second such epoch cuts */
        {0.9, 0.5f, 0.9, 0},        /* a real improvement */
        {0.89985, 0.5f, 0.89985, 0}, /* better by 1.5e-4: counts */
        {0.95, 0.5f, 0.89985, 1},
        {0.95, 0.25f, 0.89985, 0},
        {0.8999, 0.25f, 0.89985, 1}, /* worse than the best, though better than the last */
        {0.95, 0.125f, 0.89985, 0},
        {0.95, 0.125f, 0.89985, 1},
        {0.95, floor_scale, 0.89985, 0}, /* 0.0625 would be below min_lr / lr */
        {0.95, floor_scale, 0.89985, 1},
        {0.95, floor_scale, 0.89985, 0},
    };
    float scale = 1.0f;
    double best = HUGE_VAL;
    int wait = 0;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        fnn_plateau_step(&s, 0.1f, table[i].loss, &scale, &best, &wait);
        if (scale != table[i].scale || best != table[i].best || wait != table[i].wait)
            fail_msg("epoch %zu, loss %g: scale %g best %g wait %d; expected %g %g %d", i + 1,
                     table[i].loss, (double)scale, best, wait, (double)table[i].scale,
                     table[i].best, table[i].wait);
    }
}

static void test_nesterov_step(void **state)
{
    /* Keras: v = mu v - lr g; p += mu v - lr g. p = 1, lr 0.1, mu 0.9, g = 0.5 then -0.25:
     * v = -0.05, p = 1 - 0.045 - 0.05 = 0.905;
     * v = -0.045 + 0.025 = -0.02, p = 0.905 - 0.018 + 0.025 = 0.912. */
    fnn_optim_config c = fnn_optim_default(FNN_OPT_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    c.nesterov = 1;
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, &c, 1, &err), FNN_OK);
    float p = 1.0f, g1 = 0.5f, g2 = -0.25f;
    fnn_optimizer_step(&o, &p, &g1, 1);
    assert_float_equal(p, 0.905f, 1e-6f);
    fnn_optimizer_step(&o, &p, &g2, 2);
    assert_float_equal(p, 0.912f, 1e-6f);
    /* Plain momentum differs: p = 1 - 0.05 = 0.95, then v = -0.02, p = 0.93. */
    c.nesterov = 0;
    fnn_optimizer plain;
    assert_int_equal(fnn_optimizer_init(&plain, &c, 1, &err), FNN_OK);
    p = 1.0f;
    fnn_optimizer_step(&plain, &p, &g1, 1);
    fnn_optimizer_step(&plain, &p, &g2, 2);
    assert_float_equal(p, 0.93f, 1e-6f);
    fnn_optimizer_release(&o);
    fnn_optimizer_release(&plain);
}

static void test_step_lr_and_scale(void **state)
{
    /* SGD without momentum: p -= lr * scale * g, with the rate and scale of the call. */
    fnn_optim_config c = fnn_optim_default(FNN_OPT_SGD);
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, &c, 3, &err), FNN_OK);
    float p[3] = {1, 2, 3}, g[3] = {3, 0, -4};
    assert_float_equal((float)fnn_optimizer_sumsq(&o, g), 25.0f, 0.0f);
    fnn_optimizer_step_lr(&o, p, g, 1, 0.5f, 0.2f);
    assert_float_equal(p[0], 1.0f - 0.5f * 0.2f * 3.0f, 1e-7f);
    assert_float_equal(p[1], 2.0f, 0.0f);
    assert_float_equal(p[2], 3.0f + 0.5f * 0.2f * 4.0f, 1e-7f);
    fnn_optimizer_release(&o);
}

/* A one-layer model on 4x4 images and a data set of 8 of them; one SGD step over the whole. */
static fnn_dataset tiny_set(void)
{
    fnn_dataset d = {.n = 8, .c = 1, .h = 4, .w = 4, .nclasses = 3, .owns = 1};
    d.images = malloc(8 * 16);
    d.labels = malloc(8);
    for (int i = 0; i < 8 * 16; i++)
        d.images[i] = (uint8_t)((i * 37 + 11) % 256);
    for (int i = 0; i < 8; i++)
        d.labels[i] = (uint8_t)(i % 3);
    return d;
}

/* The parameter change of one full-batch SGD step (lr 0.5) with clip_norm (0: off). */
static void one_step(float clip, float *delta, size_t *n)
{
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:3:softmax", 1, 4, 4, &err);
    assert_non_null(m);
    fnn_model_init(m, 3);
    fnn_dataset d = tiny_set();
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.threads = 2;
    cfg.optim = fnn_optim_default(FNN_OPT_SGD);
    cfg.optim.lr = 0.5f;
    cfg.clip_norm = clip;
    *n = 0;
    float before[64];
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        memcpy(before + *n, t.data, t.size * sizeof *t.data);
        *n += t.size;
    }
    assert_int_equal(*n, 51);
    assert_int_equal(fnn_train(m, &d, NULL, &cfg, NULL, &err), FNN_OK);
    size_t k = 0;
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        for (size_t j = 0; j < t.size; j++, k++)
            delta[k] = t.data[j] - before[k];
    }
    fnn_dataset_free(&d);
    fnn_model_free(m);
}

static void test_clipping_scales_the_update(void **state)
{
    float free_step[64], clipped[64], loose[64];
    size_t n;
    one_step(0.0f, free_step, &n);
    double norm = 0.0;
    for (size_t i = 0; i < n; i++)
        norm += (double)free_step[i] * free_step[i];
    norm = sqrt(norm) / 0.5; /* the gradient's norm: the step is lr g */
    assert_true(norm > 0.1);
    /* Clipped to a tenth of its norm: every component scaled by the same 0.1. */
    one_step((float)(norm / 10.0), clipped, &n);
    for (size_t i = 0; i < n; i++)
        assert_float_equal(clipped[i], free_step[i] * 0.1f, 1e-6f + 1e-3f * fabsf(free_step[i]));
    /* A bound above the norm changes nothing, bit for bit. */
    one_step((float)(norm * 2.0), loose, &n);
    assert_memory_equal(loose, free_step, n * sizeof *loose);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_schedule),
        cmocka_unit_test(test_cosine_schedule),
        cmocka_unit_test(test_warmup),
        cmocka_unit_test(test_onecycle_table),
        cmocka_unit_test(test_onecycle_config),
        cmocka_unit_test(test_bn_lr_scale_groups),
        cmocka_unit_test(test_plateau_and_constant),
        cmocka_unit_test(test_plateau_table),
        cmocka_unit_test(test_nesterov_step),
        cmocka_unit_test(test_step_lr_and_scale),
        cmocka_unit_test(test_clipping_scales_the_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
