/* No global mutable state in the library: two models trained at the same time, in two threads of
 * one process, end with exactly the weights and metrics each gets when trained alone. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "fnn.h"

#define N_TRAIN 960
#define N_VAL 192
#define SIDE 8
#define ROUNDS 3 /* concurrent runs; each must match */

/* Two jobs that differ in everything a shared setting could leak between them: architecture
 * (dense and conv: different BLAS shapes), optimizer, batch size, seed, dropout. */
typedef struct {
    const char *spec;
    fnn_optimizer_kind optim;
    int batch_size;
    uint64_t seed;
} job_config;

static const job_config JOBS[2] = {
    {"flatten dense:32:relu dropout:0.3 dense:10:softmax", FNN_OPT_ADAM, 16, 11},
    {"conv2d:4:3:same:relu maxpool:2 batchnorm flatten dense:10:softmax", FNN_OPT_SGD, 24, 97},
};

#define EPOCHS 3

typedef struct {
    const job_config *cfg;
    const fnn_dataset *train, *val;
    fnn_model *model;
    fnn_epoch_stats stats[EPOCHS];
    fnn_status status;
    fnn_error err;
} job;

static uint8_t g_images[(N_TRAIN + N_VAL) * SIDE * SIDE];
static uint8_t g_labels[N_TRAIN + N_VAL];

/* A learnable synthetic set: class k brightens row k of the image, plus deterministic noise. */
static void make_data(fnn_dataset *all)
{
    uint32_t x = 12345;
    for (int i = 0; i < N_TRAIN + N_VAL; i++) {
        int k = i % 10;
        g_labels[i] = (uint8_t)k;
        for (int p = 0; p < SIDE * SIDE; p++) {
            x = x * 1664525u + 1013904223u;
            int v = (int)(x >> 26) + (p / SIDE == k % SIDE ? 150 : 0) + (k >= SIDE ? 60 : 0);
            g_images[(size_t)i * SIDE * SIDE + (size_t)p] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    *all = (fnn_dataset){.n = N_TRAIN + N_VAL, .c = 1, .h = SIDE, .w = SIDE, .images = g_images,
                         .labels = g_labels, .nclasses = 10, .owns = 0};
}

static void *run_job(void *arg)
{
    job *j = arg;
    j->err = (fnn_error){FNN_OK, ""};
    j->model = fnn_model_create(j->cfg->spec, 1, SIDE, SIDE, &j->err);
    if (!j->model) {
        j->status = j->err.status;
        return NULL;
    }
    fnn_model_init(j->model, j->cfg->seed);
    fnn_train_config tc = fnn_train_default();
    tc.epochs = EPOCHS;
    tc.batch_size = j->cfg->batch_size;
    tc.seed = j->cfg->seed;
    tc.threads = 1;
    tc.optim = fnn_optim_default(j->cfg->optim);
    j->status = fnn_train(j->model, j->train, j->val, &tc, j->stats, &j->err);
    return NULL;
}

static void job_init(job *j, const job_config *cfg, const fnn_dataset *train,
                     const fnn_dataset *val)
{
    memset(j, 0, sizeof *j);
    j->cfg = cfg;
    j->train = train;
    j->val = val;
}

static void assert_job_ok(const job *j)
{
    if (j->status != FNN_OK)
        fail_msg("%s: %s", j->cfg->spec, j->err.msg);
}

/* Every tensor and every epoch's metrics identical, bit for bit. */
static void assert_same_result(const job *a, const job *b)
{
    int nt = fnn_model_num_tensors(a->model);
    assert_int_equal(nt, fnn_model_num_tensors(b->model));
    for (int i = 0; i < nt; i++) {
        fnn_tensor ta, tb;
        fnn_model_tensor(a->model, i, &ta);
        fnn_model_tensor(b->model, i, &tb);
        assert_int_equal(ta.size, tb.size);
        if (memcmp(ta.data, tb.data, ta.size * sizeof(float)) != 0)
            fail_msg("%s: tensor %s differs from the run alone", a->cfg->spec, ta.name);
    }
    for (int e = 0; e < EPOCHS; e++) {
        const fnn_epoch_stats *x = &a->stats[e], *y = &b->stats[e];
        if (memcmp(&x->train_loss, &y->train_loss, sizeof x->train_loss) != 0 ||
            memcmp(&x->train_acc, &y->train_acc, sizeof x->train_acc) != 0 ||
            memcmp(&x->val_loss, &y->val_loss, sizeof x->val_loss) != 0 ||
            memcmp(&x->val_acc, &y->val_acc, sizeof x->val_acc) != 0)
            fail_msg("%s: epoch %d metrics differ from the run alone", a->cfg->spec, e + 1);
    }
}

static void test_concurrent_training_matches_alone(void **state)
{
    (void)state;
    fnn_dataset all, train, val;
    make_data(&all);
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_dataset_split(&all, (double)N_VAL / (N_TRAIN + N_VAL), &train, &val,
                                       &err), FNN_OK);

    job alone[2];
    for (int k = 0; k < 2; k++) {
        job_init(&alone[k], &JOBS[k], &train, &val);
        run_job(&alone[k]);
        assert_job_ok(&alone[k]);
    }
    /* The two runs differ, so a mix-up between the threads could not go unnoticed, and
     * training did something (the loss fell). */
    assert_true(alone[0].stats[EPOCHS - 1].train_loss != alone[1].stats[EPOCHS - 1].train_loss);
    for (int k = 0; k < 2; k++)
        assert_true(alone[k].stats[EPOCHS - 1].train_loss < alone[k].stats[0].train_loss);

    for (int round = 0; round < ROUNDS; round++) {
        job both[2];
        pthread_t tid[2];
        for (int k = 0; k < 2; k++) {
            job_init(&both[k], &JOBS[k], &train, &val);
            assert_int_equal(pthread_create(&tid[k], NULL, run_job, &both[k]), 0);
        }
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_join(tid[k], NULL), 0);
        for (int k = 0; k < 2; k++) {
            assert_job_ok(&both[k]);
            assert_same_result(&both[k], &alone[k]);
            fnn_model_free(both[k].model);
        }
    }
    for (int k = 0; k < 2; k++)
        fnn_model_free(alone[k].model);
}

/* Finite weights so large that the logits overflow: prediction and evaluation must report a
 * numeric failure instead of returning NaN probabilities. */
static void test_overflowing_weights_are_reported(void **state)
{
    (void)state;
    fnn_error err = {0};
    fnn_model *m = fnn_model_create("flatten dense:4:relu dense:3:softmax", 1, 2, 2, &err);
    assert_non_null(m);
    fnn_model_init(m, 1);
    float x[4] = {1.0f, 1.0f, 1.0f, 1.0f}, probs[3];
    assert_int_equal(fnn_model_predict(m, x, 1, probs, 1, &err), FNN_OK);
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        for (size_t j = 0; j < t.size; j++)
            t.data[j] = 1e30f;
    }
    assert_int_equal(fnn_model_predict(m, x, 1, probs, 1, &err), FNN_ERR_NUMERIC);
    if (!strstr(err.msg, "image 0"))
        fail_msg("the message does not name the image: %s", err.msg);
    fnn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_training_matches_alone),
        cmocka_unit_test(test_overflowing_weights_are_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
