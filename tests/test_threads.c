/* Inference from several threads on the two patterns fnn.h calls safe ("Threads and models"):
 * one model shared behind a lock, and one model per thread. Each thread's probabilities must be
 * those of the same calls made one after another, bit for bit; under ASan and UBSan
 * (make test-sanitize) the threads must also touch no memory they should not. */
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

#define ARCH "conv2d:8:3:same:relu maxpool:2 flatten dense:128:relu dense:5:softmax"
#define C 1
#define H 28
#define W 28
#define K 5
#define NIMG 240
#define NTHREADS 4
/* The calls' batch sizes, in turn: a model's buffers grow while the threads run. */
static const int chunk_sizes[] = {1, 9, 30, 4};
#define NCHUNKS_MAX NIMG

typedef struct {
    int start, count;
} chunk;

static chunk g_chunks[NCHUNKS_MAX];
static int g_nchunks;
static float g_x[NIMG * C * H * W]; // (NIMG, C, H, W)
static float g_ref[NIMG * K];       // (NIMG, K) the calls made one after another

typedef struct {
    fnn_model *shared;        /* pattern 1: one model, behind lock */
    fnn_model *own[NTHREADS]; /* pattern 2: one model per thread */
    pthread_mutex_t lock;     /* the shared model, and next */
    int next;                 /* the next chunk a thread takes */
    float probs[NIMG * K];    // (NIMG, K)
    int failed;               /* a call returned an error */
} run;

typedef struct {
    run *r;
    int t;
} worker_arg;

static fnn_model *make_model(void)
{
    fnn_error err = {0};
    fnn_model *m = fnn_model_create(ARCH, C, H, W, &err);
    if (!m)
        fail_msg("%s", err.msg);
    fnn_model_init(m, 7);
    return m;
}

static void *worker(void *arg)
{
    worker_arg *a = arg;
    run *r = a->r;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        int i = r->next++;
        pthread_mutex_unlock(&r->lock);
        if (i >= g_nchunks)
            return NULL;
        const chunk *c = &g_chunks[i];
        const float *x = g_x + (size_t)c->start * C * H * W;
        float *p = r->probs + (size_t)c->start * K;
        fnn_error err = {0};
        fnn_status s;
        if (r->shared) {
            pthread_mutex_lock(&r->lock);
            s = fnn_model_predict(r->shared, x, c->count, p, 1, &err);
            pthread_mutex_unlock(&r->lock);
        } else {
            s = fnn_model_predict(r->own[a->t], x, c->count, p, 1, &err);
        }
        if (s != FNN_OK) {
            pthread_mutex_lock(&r->lock);
            r->failed = 1;
            pthread_mutex_unlock(&r->lock);
        }
    }
}

static void run_threads(run *r)
{
    pthread_t th[NTHREADS];
    worker_arg args[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        args[t] = (worker_arg){r, t};
        assert_int_equal(pthread_create(&th[t], NULL, worker, &args[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    assert_false(r->failed);
    assert_memory_equal(r->probs, g_ref, sizeof g_ref);
}

static int setup(void **state)
{
    (void)state;
    uint64_t s = 12345;
    for (size_t i = 0; i < sizeof g_x / sizeof *g_x; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        g_x[i] = (float)(s >> 40) / (float)(1 << 24); /* uniform in [0, 1) */
    }
    g_nchunks = 0;
    for (int start = 0, j = 0; start < NIMG; j++) {
        int n = chunk_sizes[j % (sizeof chunk_sizes / sizeof *chunk_sizes)];
        n = n < NIMG - start ? n : NIMG - start;
        g_chunks[g_nchunks++] = (chunk){start, n};
        start += n;
    }
    /* The reference, and the first prediction of the process before any thread starts (with
     * OpenBLAS it sets the library's thread count, as fnn.h says). */
    fnn_model *m = make_model();
    fnn_error err = {0};
    for (int i = 0; i < g_nchunks; i++)
        if (fnn_model_predict(m, g_x + (size_t)g_chunks[i].start * C * H * W, g_chunks[i].count,
                              g_ref + (size_t)g_chunks[i].start * K, 1, &err) != FNN_OK)
            fail_msg("%s", err.msg);
    fnn_model_free(m);
    return 0;
}

static void test_one_model_behind_a_lock(void **state)
{
    (void)state;
    run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    pthread_mutex_init(&r->lock, NULL);
    r->shared = make_model();
    run_threads(r);
    fnn_model_free(r->shared);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Each thread's model is loaded from one file, one load after another. */
static void test_one_model_per_thread(void **state)
{
    (void)state;
    const char *dir = getenv("FNN_TMP");
    char path[1024];
    snprintf(path, sizeof path, "%s/test_threads.safetensors", dir ? dir : ".");
    fnn_error err = {0};
    fnn_model *m = make_model();
    fnn_model_meta meta = {.class_names_json = "[\"a\", \"b\", \"c\", \"d\", \"e\"]"};
    if (fnn_model_save(m, &meta, path, &err) != FNN_OK)
        fail_msg("%s", err.msg);
    fnn_model_free(m);

    run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    pthread_mutex_init(&r->lock, NULL);
    for (int t = 0; t < NTHREADS; t++)
        if (!(r->own[t] = fnn_model_load(path, NULL, &err)))
            fail_msg("%s", err.msg);
    run_threads(r);
    for (int t = 0; t < NTHREADS; t++)
        fnn_model_free(r->own[t]);
    pthread_mutex_destroy(&r->lock);
    free(r);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_model_behind_a_lock),
        cmocka_unit_test(test_one_model_per_thread),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
