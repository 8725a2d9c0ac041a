/* Weights apart from the memory of a pass: an on_epoch callback that evaluates the model being
 * trained with a larger batch than training's does not move the training loop's buffers (it
 * used to: the loop kept a pointer to the logits' gradient across the callback, which the
 * evaluation freed as it grew the model's buffers), and two threads can run inference on one
 * const model at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fnn.h"
#include "util/rng.h"

#define SIDE 8
#define TRAIN_N 40
#define EVAL_N 600 /* more than one evaluation batch of 256, and far more than training's 8 */

static fnn_dataset make_set(int n, uint64_t seed)
{
    fnn_dataset d = {.n = n, .c = 1, .h = SIDE, .w = SIDE, .nclasses = 3, .owns = 1};
    d.images = malloc((size_t)n * SIDE * SIDE);
    d.labels = malloc((size_t)n);
    assert_non_null(d.images);
    assert_non_null(d.labels);
    for (int i = 0; i < n; i++) {
        d.labels[i] = (uint8_t)(i % 3);
        for (int p = 0; p < SIDE * SIDE; p++)
            d.images[(size_t)i * SIDE * SIDE + p] =
                (uint8_t)((fnn_hash64(seed + (uint64_t)i * 64 + (uint64_t)p) & 127) +
                          (p % 3 == i % 3) * 90);
    }
    return d;
}

typedef struct {
    fnn_model *m;
    const fnn_dataset *test;
    int evaluations;
    fnn_status last;
} evaluator;

static int evaluate_each_epoch(void *user, const fnn_epoch_stats *s)
{
    (void)s;
    evaluator *ev = user;
    fnn_metrics mt;
    fnn_error err;
    ev->last = fnn_evaluate(ev->m, ev->test, 2, NULL, NULL, &mt, &err);
    if (ev->last == FNN_OK)
        fnn_metrics_free(&mt);
    ev->evaluations++;
    return 0;
}

static fnn_model *train(const fnn_dataset *d, const fnn_dataset *test, int evaluate)
{
    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_create("flatten dense:16:relu dropout:0.2 dense:3:softmax", 1, SIDE,
                                    SIDE, &err);
    if (!m)
        fail_msg("%s", err.msg);
    fnn_model_init(m, 5);
    evaluator ev = {.m = m, .test = test};
    fnn_train_config c = fnn_train_default();
    c.epochs = 3;
    c.batch_size = 8;
    c.threads = 2;
    c.on_epoch = evaluate ? evaluate_each_epoch : NULL;
    c.user = &ev;
    if (fnn_train(m, d, NULL, &c, NULL, &err) != FNN_OK)
        fail_msg("training: %s", err.msg);
    if (evaluate) {
        assert_int_equal(ev.evaluations, 3);
        assert_int_equal(ev.last, FNN_OK);
    }
    return m;
}

/* Evaluating inside on_epoch changes nothing about the training: the weights are the ones a
 * run without the callback reaches, bit for bit. */
static void evaluating_in_on_epoch_leaves_training_alone(void **state)
{
    (void)state;
    fnn_dataset d = make_set(TRAIN_N, 1), test = make_set(EVAL_N, 2);
    fnn_model *plain = train(&d, &test, 0), *watched = train(&d, &test, 1);
    for (int t = 0; t < fnn_model_num_tensors(plain); t++) {
        fnn_tensor a, b;
        fnn_model_tensor(plain, t, &a);
        fnn_model_tensor(watched, t, &b);
        assert_memory_equal(a.data, b.data, a.size * sizeof *a.data);
    }
    fnn_model_free(plain);
    fnn_model_free(watched);
    fnn_dataset_free(&d);
    fnn_dataset_free(&test);
}

typedef struct {
    const fnn_model *m;
    const fnn_dataset *d;
    float *probs; /* (n, classes) */
    fnn_status s;
} job;

static void *infer(void *arg)
{
    job *j = arg;
    fnn_error err;
    fnn_metrics mt;
    for (int round = 0; round < 4 && j->s == FNN_OK; round++)
        if ((j->s = fnn_evaluate(j->m, j->d, 1, NULL, j->probs, &mt, &err)) == FNN_OK)
            fnn_metrics_free(&mt);
    return NULL;
}

/* Two threads evaluate one const model at once, each its own data, and get what each gets
 * alone: inference writes nothing into the model. */
static void threads_share_one_model(void **state)
{
    (void)state;
    fnn_dataset d = make_set(TRAIN_N, 1), a = make_set(EVAL_N, 2), b = make_set(300, 3);
    fnn_model *m = train(&d, &a, 0);
    size_t k = (size_t)fnn_model_num_classes(m);
    float *alone_a = malloc(EVAL_N * k * sizeof(float)), *alone_b = malloc(300 * k * sizeof(float));
    float *pa = malloc(EVAL_N * k * sizeof(float)), *pb = malloc(300 * k * sizeof(float));
    assert_true(alone_a && alone_b && pa && pb);
    fnn_error err;
    fnn_metrics mt;
    assert_int_equal(fnn_evaluate(m, &a, 1, NULL, alone_a, &mt, &err), FNN_OK);
    fnn_metrics_free(&mt);
    assert_int_equal(fnn_evaluate(m, &b, 1, NULL, alone_b, &mt, &err), FNN_OK);
    fnn_metrics_free(&mt);
    job ja = {m, &a, pa, FNN_OK}, jb = {m, &b, pb, FNN_OK};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, infer, &ja), 0);
    assert_int_equal(pthread_create(&tb, NULL, infer, &jb), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(ja.s, FNN_OK);
    assert_int_equal(jb.s, FNN_OK);
    assert_memory_equal(pa, alone_a, EVAL_N * k * sizeof(float));
    assert_memory_equal(pb, alone_b, 300 * k * sizeof(float));
    free(alone_a);
    free(alone_b);
    free(pa);
    free(pb);
    fnn_model_free(m);
    fnn_dataset_free(&d);
    fnn_dataset_free(&a);
    fnn_dataset_free(&b);
}

/* A predictor kept across calls gives fnn_model_predict's probabilities, bit for bit, call
 * after call, and follows the weights when they change (a CNN whose second convolution runs by
 * Winograd, with the transformed kernels cached in the executor). */
static void predictor_matches_predict(void **state)
{
    (void)state;
    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_create("conv2d:4:3:same:relu conv2d:6:3:same:relu maxpool:2 flatten "
                                    "dense:3:softmax", 1, SIDE, SIDE, &err);
    if (!m)
        fail_msg("%s", err.msg);
    fnn_model_init(m, 9);
    enum { N = 5 };
    float x[N * SIDE * SIDE], want[N * 3], got[N * 3];
    for (int i = 0; i < N * SIDE * SIDE; i++)
        x[i] = (float)(fnn_hash64((uint64_t)i) & 255) / 255.0f;
    fnn_exec *e;
    assert_int_equal(fnn_predictor_create(m, N, 2, &e, &err), FNN_OK);
    for (int round = 0; round < 3; round++) {
        if (round == 2) { /* new weights: the cached transform must not be used */
            fnn_tensor t;
            fnn_model_tensor(m, 2, &t);
            for (size_t i = 0; i < t.size; i++)
                t.data[i] *= -0.5f;
        }
        assert_int_equal(fnn_model_predict(m, x, N, want, 2, &err), FNN_OK);
        for (int n = N; n >= 1; n -= 4) {
            memset(got, 0, sizeof got);
            assert_int_equal(fnn_predictor_run(e, x, n, got, &err), FNN_OK);
            if (n == N)
                assert_memory_equal(got, want, sizeof want);
        }
    }
    fnn_exec_free(e);
    assert_int_equal(fnn_predictor_create(m, 0, 2, &e, &err), FNN_ERR_ARG);
    assert_null(e);
    fnn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(predictor_matches_predict),
        cmocka_unit_test(evaluating_in_on_epoch_leaves_training_alone),
        cmocka_unit_test(threads_share_one_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
