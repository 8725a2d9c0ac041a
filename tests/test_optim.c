/* Weight decay in the optimizers: AdamW's decoupled decay and the L2 term of Adam and SGD,
 * three steps against a double-precision reference written from the papers' formulas, on an
 * arena whose first block is decayed (a kernel) and second is not (a bias). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "optim/optim.h"

#define N 8     /* parameters: the first 6 decay (3 rows of 2), the last 2 do not */
#define STEPS 3

static const float p0[N] = {0.5f, -1.0f, 2.0f, -0.25f, 0.75f, 1.5f, -0.5f, 0.3f};
static const float grads[STEPS][N] = {
    {0.1f, -0.2f, 0.3f, 0.05f, -0.4f, 0.2f, 0.1f, -0.1f},
    {-0.3f, 0.1f, 0.2f, -0.05f, 0.2f, -0.1f, 0.3f, 0.2f},
    {0.2f, 0.2f, -0.1f, 0.1f, 0.1f, 0.3f, -0.2f, 0.05f},
};

/* One reference step of parameter i. */
static void reference(const fnn_optim_config *c, int decayed, double *p, double *m, double *v,
                      double g, int t)
{
    double wd = decayed ? c->weight_decay : 0.0;
    if (c->kind == FNN_OPT_SGD) {
        *m = c->momentum * *m - c->lr * (g + wd * *p);
        *p += *m;
        return;
    }
    if (c->kind == FNN_OPT_ADAMW)
        *p *= 1.0 - c->lr * wd; /* Loshchilov and Hutter: decay decoupled from the gradient */
    else
        g += wd * *p;
    *m = c->beta1 * *m + (1 - c->beta1) * g;
    *v = c->beta2 * *v + (1 - c->beta2) * g * g;
    double alpha = c->lr * sqrt(1 - pow(c->beta2, t)) / (1 - pow(c->beta1, t));
    *p -= alpha * *m / (sqrt(*v) + c->eps);
}

static void check(fnn_optim_config c)
{
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, &c, N, &err), FNN_OK);
    fnn_param_block blocks[2] = {{0, 3, 2, 1, 1.0f}, {6, 2, 1, 0, 1.0f}};
    assert_int_equal(fnn_optimizer_partition(&o, blocks, 2, &err), FNN_OK);
    float p[N];
    double pd[N], md[N] = {0}, vd[N] = {0};
    memcpy(p, p0, sizeof p);
    for (int i = 0; i < N; i++)
        pd[i] = p0[i];
    for (int t = 0; t < STEPS; t++) {
        fnn_optimizer_step(&o, p, grads[t], t + 1);
        for (int i = 0; i < N; i++)
            reference(&c, i < 6, &pd[i], &md[i], &vd[i], grads[t][i], t + 1);
    }
    for (int i = 0; i < N; i++)
        assert_float_equal(p[i], pd[i], 1e-6);
    fnn_optimizer_release(&o);
}

/* The same steps without decay: what the decayed run must differ from. */
static float undecayed(fnn_optim_config c, int i)
{
    c.weight_decay = 0.0f;
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, &c, N, &err), FNN_OK);
    float p[N];
    memcpy(p, p0, sizeof p);
    for (int t = 0; t < STEPS; t++)
        fnn_optimizer_step(&o, p, grads[t], t + 1);
    fnn_optimizer_release(&o);
    return p[i];
}

static void decayed_run(fnn_optim_config c, float *p)
{
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, &c, N, &err), FNN_OK);
    fnn_param_block blocks[2] = {{0, 3, 2, 1, 1.0f}, {6, 2, 1, 0, 1.0f}};
    assert_int_equal(fnn_optimizer_partition(&o, blocks, 2, &err), FNN_OK);
    memcpy(p, p0, sizeof p0);
    for (int t = 0; t < STEPS; t++)
        fnn_optimizer_step(&o, p, grads[t], t + 1);
    fnn_optimizer_release(&o);
}

static void test_adamw(void **state)
{
    fnn_optim_config c = fnn_optim_default(FNN_OPT_ADAMW);
    assert_float_equal(c.weight_decay, 0.004f, 0.0f);
    c.lr = 0.1f;
    c.weight_decay = 0.5f;
    check(c);
    /* Decay moves the kernel and leaves the bias exactly where plain Adam puts it. */
    float p[N];
    decayed_run(c, p);
    assert_true(fabsf(p[2] - undecayed(c, 2)) > 1e-3f);
    assert_float_equal(p[7], undecayed(c, 7), 0.0f);
}

static void test_adam_l2(void **state)
{
    fnn_optim_config c = fnn_optim_default(FNN_OPT_ADAM);
    c.lr = 0.1f;
    c.weight_decay = 0.5f;
    check(c);
    float p[N];
    decayed_run(c, p);
    assert_true(fabsf(p[0] - undecayed(c, 0)) > 1e-3f);
    assert_float_equal(p[6], undecayed(c, 6), 0.0f);
}

static void test_sgd_l2(void **state)
{
    fnn_optim_config c = fnn_optim_default(FNN_OPT_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    c.weight_decay = 0.5f;
    check(c);
    float p[N];
    decayed_run(c, p);
    assert_true(fabsf(p[1] - undecayed(c, 1)) > 1e-3f);
    assert_float_equal(p[7], undecayed(c, 7), 0.0f);
}

/* Per-group rates: plain SGD on gradient g moves a block by -lr * scale * g; a block at scale 1
 * moves as with no groups, and a scale of 0 is refused. */
static void test_block_lr_scale(void **state)
{
    fnn_optim_config c = fnn_optim_default(FNN_OPT_SGD);
    c.lr = 0.5f;
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, &c, N, &err), FNN_OK);
    fnn_param_block blocks[2] = {{0, 3, 2, 1, 1.0f}, {6, 2, 1, 0, 4.0f}};
    assert_int_equal(fnn_optimizer_partition(&o, blocks, 2, &err), FNN_OK);
    float p[N], g[N];
    memcpy(p, p0, sizeof p);
    for (int i = 0; i < N; i++)
        g[i] = 0.125f * (float)(i + 1);
    fnn_optimizer_step(&o, p, g, 1);
    for (int i = 0; i < N; i++)
        assert_float_equal(p[i], p0[i] - 0.5f * (i < 6 ? 1.0f : 4.0f) * g[i], 1e-7f);
    blocks[1].lr_scale = 0.0f;
    assert_int_equal(fnn_optimizer_partition(&o, blocks, 2, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "learning-rate scale"));
    fnn_optimizer_release(&o);
}

static void test_bad_decay(void **state)
{
    fnn_optimizer o;
    fnn_error err = {0};
    fnn_optim_config c = fnn_optim_default(FNN_OPT_ADAMW);
    c.weight_decay = -0.1f;
    assert_int_equal(fnn_optimizer_init(&o, &c, N, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "weight decay"));
    c.weight_decay = NAN;
    assert_int_equal(fnn_optimizer_init(&o, &c, N, &err), FNN_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_adam_l2),
        cmocka_unit_test(test_sgd_l2),
        cmocka_unit_test(test_block_lr_scale),
        cmocka_unit_test(test_bad_decay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
