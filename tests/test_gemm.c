/* A matrix product that fails (oneDNN out of memory for its packing buffers) is reported by every
 * entry point that runs products, as FNN_ERR_NOMEM with a message, only once, and only to the
 * call whose thread it failed on. The failure is injected through the per-thread flag that
 * util/gemm.h's wrapper sets, so this runs with either library. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fnn.h"
#include "util/gemm.h"

#define N 40
#define SIDE 6
#define CLASSES 3

typedef struct {
    fnn_model *m;
    fnn_dataset d;
    float x[N * SIDE * SIDE];   /* (N, SIDE * SIDE) the images as floats */
    float probs[N * CLASSES];   /* (N, CLASSES) */
    float dx[N * SIDE * SIDE];  /* (N, SIDE * SIDE) */
    uint8_t images[N * SIDE * SIDE];
    uint8_t labels[N];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    fnn_error err = {0};
    f->m = fnn_model_create("flatten dense:8:relu dense:3:softmax", 1, SIDE, SIDE, &err);
    if (!f->m) {
        free(f);
        return -1;
    }
    fnn_model_init(f->m, 1);
    for (int i = 0; i < N * SIDE * SIDE; i++) {
        f->images[i] = (uint8_t)(i * 37 % 256);
        f->x[i] = (float)f->images[i] / 255.0f;
    }
    for (int i = 0; i < N; i++)
        f->labels[i] = (uint8_t)(i % CLASSES);
    f->d = (fnn_dataset){.n = N, .c = 1, .h = SIDE, .w = SIDE, .images = f->images,
                         .labels = f->labels, .nclasses = CLASSES};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fnn_model_free(f->m);
    free(f);
    return 0;
}

/* The call fails as out of memory after an injected failure, then succeeds: the flag is
 * cleared by the report. */
static void expect_reported(fnn_status (*call)(fixture *, fnn_error *), fixture *f)
{
    fnn_error err = {0};
    assert_int_equal(call(f, &err), FNN_OK);
    fnn_gemm_failed();
    assert_int_equal(call(f, &err), FNN_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "matrix product"));
    assert_int_equal(call(f, &err), FNN_OK);
}

static fnn_status predict(fixture *f, fnn_error *err)
{
    return fnn_model_predict(f->m, f->x, N, f->probs, 2, err);
}

static fnn_status evaluate(fixture *f, fnn_error *err)
{
    fnn_metrics mt;
    fnn_status s = fnn_evaluate(f->m, &f->d, 2, NULL, NULL, &mt, err);
    if (s == FNN_OK)
        fnn_metrics_free(&mt);
    return s;
}

static fnn_status input_gradient(fixture *f, fnn_error *err)
{
    int classes[N] = {0};
    return fnn_input_gradient(f->m, f->x, N, classes, f->dx, 2, err);
}

static fnn_status robustness(fixture *f, fnn_error *err)
{
    const double levels[] = {0.0, 0.1};
    double acc[2];
    return fnn_robustness(f->m, &f->d, FNN_PERTURB_NOISE, levels, 2, 7, 2, acc, err);
}

static fnn_status train(fixture *f, fnn_error *err)
{
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.threads = 2;
    fnn_dataset none = {0};
    return fnn_train(f->m, &f->d, &none, &cfg, NULL, err);
}

typedef struct {
    fixture *f;
    fnn_status s;
} call_on_thread;

static void *predict_on_thread(void *arg)
{
    call_on_thread *c = arg;
    fnn_error err = {0};
    c->s = predict(c->f, &err);
    return NULL;
}

/* A failure flagged on this thread is not another thread's: the library keeps no shared state. */
static void test_other_thread(void **state)
{
    fixture *f = *state;
    fnn_error err = {0};
    fnn_gemm_failed();
    call_on_thread c = {f, FNN_ERR_ARG};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, predict_on_thread, &c), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(c.s, FNN_OK);
    assert_int_equal(predict(f, &err), FNN_ERR_NOMEM);
}

static void test_predict(void **state) { expect_reported(predict, *state); }
static void test_evaluate(void **state) { expect_reported(evaluate, *state); }
static void test_input_gradient(void **state) { expect_reported(input_gradient, *state); }
static void test_robustness(void **state) { expect_reported(robustness, *state); }
static void test_train(void **state) { expect_reported(train, *state); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_predict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evaluate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_gradient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_robustness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_thread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
