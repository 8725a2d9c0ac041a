/* The weights' moving average (--ema): its update rule against a double-precision reference,
 * and a training run whose final model, validation numbers and batch norm statistics are the
 * average's, recomputed here from the weights seen after every step. */
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
#include "optim/ema.h"

/* A batch norm layer, so that the average covers moving statistics too. */
#define ARCH "flatten dense:8 batchnorm relu dense:3:softmax"
#define EPOCHS 3
#define DECAY 0.9f
#define EVERY 2

static void test_update_rule(void **state)
{
    fnn_optimizer o;
    fnn_error err;
    fnn_optim_config c = fnn_optim_default(FNN_OPT_SGD);
    assert_int_equal(fnn_optimizer_init(&o, &c, 5, &err), FNN_OK);
    float w[5] = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f}, start[5];
    memcpy(start, w, sizeof w);
    assert_int_equal(fnn_ema_start(&o, DECAY, EVERY, w, &err), FNN_OK);
    for (int i = 0; i < 5; i++)
        w[i] += 1.0f + (float)i;
    fnn_ema_update(&o, w, 1, NULL); /* not a multiple of EVERY: nothing */
    assert_memory_equal(o.ema, start, sizeof start);
    fnn_ema_update(&o, w, 2, NULL);
    /* Warm-up: min(0.9, 3 / 12) = 0.25 per step, kept for EVERY steps. */
    double keep = 0.25 * 0.25;
    for (int i = 0; i < 5; i++)
        assert_true(fabs(o.ema[i] - (keep * start[i] + (1.0 - keep) * w[i])) < 1e-6);
    /* Far from the start the decay is DECAY's. */
    float before[5];
    memcpy(before, o.ema, sizeof before);
    fnn_ema_update(&o, start, 1000, NULL);
    keep = (double)DECAY * DECAY;
    for (int i = 0; i < 5; i++)
        assert_true(fabs(o.ema[i] - (keep * before[i] + (1.0 - keep) * start[i])) < 1e-6);
    /* A swap gives the average to the weights and back. */
    float avg[5], raw[5];
    memcpy(avg, o.ema, sizeof avg);
    memcpy(raw, start, sizeof raw);
    fnn_ema_swap(&o, raw);
    assert_memory_equal(raw, avg, sizeof avg);
    assert_memory_equal(o.ema, start, sizeof start);
    fnn_optimizer_release(&o);

    assert_int_equal(fnn_optimizer_init(&o, &c, 5, &err), FNN_OK);
    assert_int_equal(fnn_ema_start(&o, 1.0f, 1, w, &err), FNN_ERR_ARG);
    assert_int_equal(fnn_ema_start(&o, 0.5f, -1, w, &err), FNN_ERR_ARG);
    assert_null(o.ema);
    fnn_ema_swap(&o, w); /* off: nothing */
    fnn_ema_update(&o, w, 2, NULL);
    fnn_optimizer_release(&o);
}

/* 60 images of 4x4 in 3 classes. */
static fnn_dataset make_set(int n, uint32_t seed)
{
    fnn_dataset d = {.n = n, .c = 1, .h = 4, .w = 4, .nclasses = 3, .owns = 1};
    d.images = malloc((size_t)n * 16);
    d.labels = malloc((size_t)n);
    uint32_t s = seed;
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        d.labels[i] = (uint8_t)((s >> 16) % 3);
        for (int j = 0; j < 16; j++) {
            s = s * 1664525u + 1013904223u;
            d.images[i * 16 + j] = (uint8_t)((j % 3 == d.labels[i] ? 100 : 0) + (s >> 25));
        }
    }
    return d;
}

/* The test's own average, from the weights after each step t, seen by the callbacks. */
typedef struct {
    const fnn_model *m;
    double *avg;  /* (arena_size) */
    int64_t seen; /* the last step folded in */
    int steps;    /* per epoch */
} shadow;

static void fold(shadow *sh, int64_t t)
{
    if (t <= sh->seen)
        return;
    sh->seen = t;
    if (t % EVERY)
        return;
    double d = fmin(DECAY, (1.0 + (double)t) / (10.0 + (double)t)), keep = pow(d, EVERY);
    for (size_t i = 0; i < sh->m->arena_size; i++)
        sh->avg[i] = keep * sh->avg[i] + (1.0 - keep) * sh->m->params[i];
}

/* One thread: the model holds the weights after the step before this one. */
static void on_step(void *user, const fnn_step_info *s)
{
    shadow *sh = user;
    fold(sh, (int64_t)(s->epoch - 1) * s->steps + s->step);
    sh->steps = s->steps;
}

/* After the epoch's validation the model holds its raw weights again. */
static int on_epoch(void *user, const fnn_epoch_stats *s)
{
    shadow *sh = user;
    fold(sh, (int64_t)s->epoch * sh->steps);
    return 0;
}

static fnn_train_config config(void)
{
    fnn_train_config c = fnn_train_default();
    c.epochs = EPOCHS;
    c.batch_size = 8;
    c.threads = 1;
    c.seed = 3;
    c.optim.lr = 0.05f;
    return c;
}

static fnn_model *model(void)
{
    fnn_error err;
    fnn_model *m = fnn_model_create(ARCH, 1, 4, 4, &err);
    assert_non_null(m);
    fnn_model_init(m, 5);
    return m;
}

static void test_training_ends_on_average(void **state)
{
    fnn_dataset tr = make_set(60, 1), val = make_set(30, 2);
    fnn_error err;
    fnn_train_config c = config();
    fnn_model *plain = model();
    fnn_epoch_stats sp[EPOCHS], se[EPOCHS];
    assert_int_equal(fnn_train_run(plain, &tr, &val, &c, sp, NULL, &err), FNN_OK);

    fnn_model *m = model();
    shadow sh = {.m = m, .avg = malloc(m->arena_size * sizeof *sh.avg)};
    assert_non_null(sh.avg);
    for (size_t i = 0; i < m->arena_size; i++)
        sh.avg[i] = m->params[i];
    c.ema = DECAY;
    c.ema_every = EVERY;
    c.on_step = on_step;
    c.on_epoch = on_epoch;
    c.user = &sh;
    assert_int_equal(fnn_train_run(m, &tr, &val, &c, se, NULL, &err), FNN_OK);
    assert_int_equal(sh.seen, (int64_t)EPOCHS * sh.steps);

    /* The model is the average, batch norm's moving statistics included, and not the raw
     * weights, which are the plain run's (the average does not change training). */
    double worst = 0.0;
    for (size_t i = 0; i < m->arena_size; i++)
        worst = fmax(worst, fabs(m->params[i] - sh.avg[i]));
    assert_true(worst < 1e-5);
    assert_memory_not_equal(m->params, plain->params, m->arena_size * sizeof *m->params);
    for (int e = 0; e < EPOCHS; e++)
        assert_true(se[e].train_loss == sp[e].train_loss);
    int nt = fnn_model_num_tensors(m), bn_seen = 0;
    for (int i = 0; i < nt; i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        if (!strstr(t.name, "moving_mean"))
            continue;
        bn_seen = 1;
        fnn_tensor pt;
        fnn_model_tensor(plain, i, &pt);
        assert_memory_not_equal(t.data, pt.data, t.size * sizeof *t.data);
    }
    assert_true(bn_seen);

    /* The last validation was the average's: the final model's loss and accuracy, exactly. */
    float *probs = malloc((size_t)val.n * 3 * sizeof *probs);
    assert_non_null(probs);
    fnn_metrics mt = {0};
    assert_int_equal(fnn_evaluate(m, &val, 1, NULL, probs, &mt, &err), FNN_OK);
    double loss = 0.0;
    for (int i = 0; i < val.n; i++) {
        double p = probs[(size_t)i * 3 + val.labels[i]];
        loss -= log(p < 1e-7 ? 1e-7 : p);
    }
    loss /= val.n;
    assert_true(loss == se[EPOCHS - 1].val_loss);
    assert_true(mt.accuracy == se[EPOCHS - 1].val_acc);
    assert_true(se[EPOCHS - 1].val_loss != sp[EPOCHS - 1].val_loss);

    fnn_metrics_free(&mt);
    free(probs);
    free(sh.avg);
    fnn_model_free(m);
    fnn_model_free(plain);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&val);
}

static void test_bad_config(void **state)
{
    fnn_dataset tr = make_set(20, 1);
    fnn_error err;
    fnn_train_config c = config();
    fnn_model *m = model();
    c.ema = 1.0f;
    assert_int_equal(fnn_train_run(m, &tr, NULL, &c, NULL, NULL, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "weight averaging"));
    c.ema = 0.5f;
    c.ema_every = -2;
    assert_int_equal(fnn_train_run(m, &tr, NULL, &c, NULL, NULL, &err), FNN_ERR_ARG);
    fnn_model_free(m);
    fnn_dataset_free(&tr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_rule),
        cmocka_unit_test(test_training_ends_on_average),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
