/* Data-parallel training without MPI: two shards of one run, each an fnn_train_run on a thread
 * of its own, sum their gradients through on_gradients (a shared buffer and a barrier) and must
 * train the model one process trains, up to the order of summation. A loss divided by the
 * shard's rows instead of the whole batch's, or shards that take the wrong rows, or dropout and
 * augmentation drawn per shard instead of per image, move the weights far past the tolerance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fnn.h"
#include "util/error.h"
#include "util/rng.h"

#define N 193    /* the last batch of 32 has one row: shard 0 gets none */
#define SIDE 12
#define SHARDS 2
#define EPOCHS 4 /* 7 steps each */

/* What the shards share: each one's gradient, and the barrier they meet at. */
typedef struct {
    pthread_barrier_t meet;
    float *grads[SHARDS]; /* (n[i]) each, allocated by its shard's first call */
    size_t n[SHARDS];
    size_t nparams;       /* the hook gets the whole arena: at least this many floats */
    int calls[SHARDS];
} exchange;

typedef struct {
    exchange *x;
    int index;
} shard_ctx;

/* MPI_Allreduce's sum, in the same order on both shards so that they stay bit-identical. */
static fnn_status sum_gradients(void *user, float *grads, size_t n, fnn_error *err)
{
    shard_ctx *c = user;
    exchange *x = c->x;
    if (!x->grads[c->index]) {
        x->grads[c->index] = malloc(n * sizeof *grads);
        x->n[c->index] = n;
    }
    if (!x->grads[c->index] || n != x->n[c->index] || n < x->nparams)
        return fnn_fail(err, FNN_ERR_ARG, "hook: %zu gradients for %zu parameters", n,
                        x->nparams); /* the test then fails: the other shard waits forever */
    memcpy(x->grads[c->index], grads, n * sizeof *grads);
    pthread_barrier_wait(&x->meet);
    for (size_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int j = 0; j < SHARDS; j++)
            s += x->grads[j][i];
        grads[i] = s;
    }
    x->calls[c->index]++;
    pthread_barrier_wait(&x->meet); /* nobody overwrites its buffer before all have read */
    return FNN_OK;
}

/* N images of SIDE x SIDE whose class is the brightest quarter of the image, with noise. */
static fnn_dataset make_set(void)
{
    fnn_dataset d = {.n = N, .c = 1, .h = SIDE, .w = SIDE, .nclasses = 4, .owns = 1};
    d.images = malloc((size_t)N * SIDE * SIDE);
    d.labels = malloc(N);
    assert_non_null(d.images);
    assert_non_null(d.labels);
    for (int i = 0; i < N; i++) {
        int y = i % 4;
        d.labels[i] = (uint8_t)y;
        for (int p = 0; p < SIDE * SIDE; p++) {
            int quarter = (p / SIDE >= SIDE / 2) * 2 + (p % SIDE >= SIDE / 2);
            uint64_t h = fnn_hash64((uint64_t)i * 1000 + (uint64_t)p);
            d.images[(size_t)i * SIDE * SIDE + p] = (uint8_t)((h & 127) + (quarter == y) * 100);
        }
    }
    return d;
}

static fnn_train_config config(const fnn_augment_config *aug)
{
    fnn_train_config c = fnn_train_default();
    c.epochs = EPOCHS;
    c.batch_size = 32;
    c.seed = 7;
    c.threads = 1;
    /* SGD, not Adam: Adam divides the scale of the gradient out, so it would hide a loss
     * divided by the wrong batch size. */
    c.optim = fnn_optim_default(FNN_OPT_SGD);
    c.optim.lr = 0.05f;
    c.optim.momentum = 0.9f;
    c.augment = *aug;
    return c;
}

static fnn_model *make_model(const char *spec)
{
    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_create(spec, 1, SIDE, SIDE, &err);
    if (!m)
        fail_msg("%s", err.msg);
    fnn_model_init(m, 3);
    return m;
}

typedef struct {
    const char *spec;
    const fnn_dataset *d;
    fnn_train_config cfg;
    shard_ctx ctx;
    fnn_model *m;
    fnn_status s;
    fnn_error err;
} shard_run;

static void *run_shard(void *arg)
{
    shard_run *r = arg;
    r->s = fnn_train(r->m, r->d, NULL, &r->cfg, NULL, &r->err);
    return NULL;
}

/* The largest difference between two models' parameters, and its size relative to the
 * largest parameter. */
static double max_diff(const fnn_model *a, const fnn_model *b, double *largest)
{
    double d = 0.0;
    *largest = 0.0;
    for (int t = 0; t < fnn_model_num_tensors(a); t++) {
        fnn_tensor ta, tb;
        fnn_model_tensor(a, t, &ta);
        fnn_model_tensor(b, t, &tb);
        for (size_t i = 0; i < ta.size; i++) {
            double e = fabs((double)ta.data[i] - tb.data[i]);
            d = e > d ? e : d;
            *largest = fabs(ta.data[i]) > *largest ? fabs(ta.data[i]) : *largest;
        }
    }
    return d;
}

static void check_shards_match_one(const char *spec, const fnn_augment_config *aug)
{
    fnn_dataset d = make_set();
    fnn_error err = {FNN_OK, ""};
    fnn_model *one = make_model(spec);
    fnn_train_config c1 = config(aug);
    if (fnn_train(one, &d, NULL, &c1, NULL, &err) != FNN_OK)
        fail_msg("one process: %s", err.msg);

    exchange x = {0};
    shard_run runs[SHARDS];
    assert_int_equal(pthread_barrier_init(&x.meet, NULL, SHARDS), 0);
    for (int i = 0; i < SHARDS; i++) {
        runs[i] = (shard_run){.spec = spec, .d = &d, .cfg = config(aug), .m = make_model(spec)};
        runs[i].ctx = (shard_ctx){&x, i};
        runs[i].cfg.shard_index = i;
        runs[i].cfg.shard_count = SHARDS;
        runs[i].cfg.on_gradients = sum_gradients;
        runs[i].cfg.grad_user = &runs[i].ctx;
    }
    x.nparams = fnn_model_num_params(one);
    pthread_t th[SHARDS];
    for (int i = 0; i < SHARDS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_shard, &runs[i]), 0);
    for (int i = 0; i < SHARDS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < SHARDS; i++)
        if (runs[i].s != FNN_OK)
            fail_msg("shard %d: %s", i, runs[i].err.msg);
    for (int i = 0; i < SHARDS; i++)
        assert_int_equal(x.calls[i], EPOCHS * ((N + 31) / 32));

    /* Same reduced gradients, same update: the shards hold the very same weights. */
    double largest, d01 = max_diff(runs[0].m, runs[1].m, &largest);
    assert_true(d01 == 0.0);
    double dev = max_diff(one, runs[0].m, &largest);
    print_message("%s: largest weight %.3g, 1 vs 2 shards differ by %.3g\n", spec, largest, dev);
    assert_true(largest > 0.1); /* it trained */
    assert_true(dev < 2e-5 * largest);

    for (int i = 0; i < SHARDS; i++) {
        fnn_model_free(runs[i].m);
        free(x.grads[i]);
    }
    pthread_barrier_destroy(&x.meet);
    fnn_model_free(one);
    fnn_dataset_free(&d);
}

static void mlp_two_shards_train_as_one(void **state)
{
    (void)state;
    fnn_augment_config none = {0};
    check_shards_match_one("mlp", &none); /* the study MLP, dropout included */
}

static void cnn_two_shards_train_as_one(void **state)
{
    (void)state;
    fnn_augment_config aug = {.shift = 2, .flip = 1};
    check_shards_match_one("conv2d:6:3:same:he maxpool:2 dropout:0.25 conv2d:8:3 flatten "
                           "dense:4:softmax", &aug);
}

static fnn_status refuse(void *user, float *grads, size_t n, fnn_error *err)
{
    int *calls = user;
    return ++*calls == 3 ? fnn_fail(err, FNN_ERR_IO, "hook: the link went down") : FNN_OK;
}

/* A hook's failure ends the run at once, and fnn_train_run returns it as it was. */
static void hook_failure_stops_training(void **state)
{
    (void)state;
    fnn_dataset d = make_set();
    fnn_model *m = make_model("mlp");
    fnn_augment_config none = {0};
    fnn_train_config c = config(&none);
    int calls = 0;
    c.threads = 2;
    c.on_gradients = refuse;
    c.grad_user = &calls;
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_train(m, &d, NULL, &c, NULL, &err), FNN_ERR_IO);
    assert_int_equal(calls, 3);
    assert_string_equal(err.msg, "hook: the link went down");
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

static void bad_shards_are_refused(void **state)
{
    (void)state;
    fnn_dataset d = make_set();
    fnn_model *m = make_model("mlp");
    fnn_augment_config none = {0};
    fnn_train_config c = config(&none);
    fnn_error err = {FNN_OK, ""};
    c.shard_count = 2;
    c.shard_index = 2;
    assert_int_equal(fnn_train(m, &d, NULL, &c, NULL, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "shard 2 of 2"));
    fnn_model_free(m);
    fnn_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mlp_two_shards_train_as_one),
        cmocka_unit_test(cnn_two_shards_train_as_one),
        cmocka_unit_test(hook_failure_stops_training),
        cmocka_unit_test(bad_shards_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
