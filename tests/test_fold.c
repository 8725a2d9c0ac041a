/* An evaluation executor folds each batchnorm that follows a conv2d or dense, and a ReLU after
 * it, into that layer (model/exec.c): its logits match those of an executor that runs every
 * layer (one made for backward), on every way conv2d shares a pass, with moving statistics far
 * from the initial ones; layers a batchnorm does not follow are left as they were. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fnn.h"
#include "model/exec.h"
#include "model/model.h"
#include "util/rng.h"

#define SIDE 16
#define N 6

/* conv-bn-relu by im2col (1 channel), with a bias by Winograd (16x16: by tile rows for one
 * image), conv-bn without a ReLU by Winograd (8x8: by filters for one image), a 5x5 kernel by
 * im2col with a bias, and dense-bn-relu. */
static const char *const folded_spec =
    "conv2d:4:3:same:nobias batchnorm relu conv2d:8:3:same batchnorm relu maxpool:2 "
    "conv2d:8:3:same:nobias batchnorm conv2d:6:5:same batchnorm relu flatten "
    "dense:16 batchnorm relu dense:3:softmax";

static fnn_model *make_model(const char *spec)
{
    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_create(spec, 1, SIDE, SIDE, &err);
    if (!m)
        fail_msg("%s: %s", spec, err.msg);
    fnn_model_init(m, 3);
    return m;
}

/* Batch norm's parameters far from 1, 0, 0, 1: gamma of both signs, variances from 0.05. */
static void random_statistics(fnn_model *m, uint64_t seed)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, seed);
    for (int t = 0; t < fnn_model_num_tensors(m); t++) {
        fnn_tensor tt;
        fnn_model_tensor(m, t, &tt);
        int gamma = strstr(tt.name, "gamma") != NULL, beta = strstr(tt.name, "beta") != NULL;
        int mean = strstr(tt.name, "moving_mean") != NULL;
        int var = strstr(tt.name, "moving_variance") != NULL;
        for (size_t i = 0; i < tt.size && (gamma || beta || mean || var); i++) {
            float u = fnn_rng_uniform(&rng);
            tt.data[i] = var ? 0.05f + 2.0f * u : gamma ? 3.0f * u - 1.0f : u - 0.5f;
        }
    }
}

static void inputs(float *x, int n)
{
    for (int i = 0; i < n * SIDE * SIDE; i++)
        x[i] = (float)(fnn_hash64((uint64_t)i + 77) & 255) / 255.0f;
}

/* Logits (n, k) of x in evaluation mode through e, by a team of `team`. */
static void logits(fnn_exec *e, const float *x, int n, int team, float *out)
{
    fnn_barrier sync;
    fnn_pass pass = {.train = 0, .sync = &sync};
#pragma omp parallel num_threads(team)
    {
        fnn_team_begin(&sync);
        const float *z = fnn_exec_forward(e, &pass, x, n);
        if (omp_get_thread_num() == 0)
            memcpy(out, z, (size_t)n * e->m->nclasses * sizeof *out);
        fnn_team_end(&sync);
    }
}

/* Layers of e that are aliases: flatten's, and what the executor folded. */
static int aliases(const fnn_exec *e)
{
    int count = 0;
    for (int i = 0; i < e->m->nlayers; i++)
        count += e->layers[i].ops->alias;
    return count;
}

/* Folded and unfolded logits of m, n images by `team` threads; returns the largest difference
 * relative to the largest logit. */
static double fold_error(const fnn_model *m, int n, int team, int *folded, int *exact)
{
    fnn_error err;
    float x[N * SIDE * SIDE], want[N * 3], got[N * 3];
    inputs(x, n);
    fnn_exec *plain, *fold;
    assert_int_equal(fnn_exec_create(m, N, team, m->grads, &plain, &err), FNN_OK);
    assert_int_equal(fnn_exec_create(m, N, team, NULL, &fold, &err), FNN_OK);
    logits(plain, x, n, team, want);
    logits(fold, x, n, team, got);
    *folded = aliases(fold) - aliases(plain);
    *exact = memcmp(got, want, (size_t)n * 3 * sizeof *got) == 0;
    double top = 0.0, diff = 0.0;
    for (int i = 0; i < n * 3; i++) {
        top = fmax(top, fabs(want[i]));
        diff = fmax(diff, fabs((double)got[i] - want[i]));
    }
    fnn_exec_free(plain);
    fnn_exec_free(fold);
    assert_true(top > 0.0);
    return diff / top;
}

static void folded_matches_unfolded(void **state)
{
    (void)state;
    fnn_model *m = make_model(folded_spec);
    random_statistics(m, 5);
    static const int shapes[][2] = {{1, 1}, {1, 2}, {N, 1}, {N, 2}, {3, 4}, {1, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int folded, exact;
        double rel = fold_error(m, shapes[s][0], shapes[s][1], &folded, &exact);
        /* 5 batchnorms and the 4 ReLUs after them */
        assert_int_equal(folded, 9);
        /* Bit for bit with GCC 12 here (the same products and sums in the same order); the
         * tolerance leaves a compiler room to contract them differently in the two places. */
        if (rel > 1e-5)
            fail_msg("%d images, %d threads: folded logits differ by %g of the largest",
                     shapes[s][0], shapes[s][1], rel);
    }
    fnn_model_free(m);
}

/* A batchnorm after a pooling layer, after a conv2d with its own ReLU, or after a dense with
 * one, and a ReLU after an unfolded batchnorm, stay as they were: the same logits, bit for bit. */
static void other_batchnorms_stay(void **state)
{
    (void)state;
    fnn_model *m = make_model("conv2d:4:3:same:relu batchnorm relu maxpool:2 batchnorm "
                              "conv2d:8:3:same:relu batchnorm flatten dense:16:relu batchnorm "
                              "dense:3:softmax");
    random_statistics(m, 6);
    for (int team = 1; team <= 2; team++) {
        int folded, exact;
        fold_error(m, N, team, &folded, &exact);
        assert_int_equal(folded, 0);
        assert_true(exact);
    }
    fnn_model_free(m);
}

/* A predictor kept across calls follows changed batch norm statistics and a changed kernel of a
 * conv2d it folded a batchnorm into: fnn_model_predict's probabilities, bit for bit. */
static void predictor_follows_statistics(void **state)
{
    (void)state;
    fnn_error err;
    fnn_model *m = make_model(folded_spec);
    float x[N * SIDE * SIDE], want[N * 3], got[N * 3], first[N * 3];
    inputs(x, N);
    fnn_exec *e;
    assert_int_equal(fnn_predictor_create(m, N, 2, &e, &err), FNN_OK);
    for (int round = 0; round < 4; round++) {
        if (round == 1)
            random_statistics(m, 8);
        if (round == 3) { /* the Winograd kernel of the second convolution */
            fnn_tensor t;
            fnn_model_tensor(m, 5, &t);
            assert_non_null(strstr(t.name, "layers.3.kernel"));
            for (size_t i = 0; i < t.size; i++)
                t.data[i] *= -0.5f;
        }
        assert_int_equal(fnn_model_predict(m, x, N, want, 2, &err), FNN_OK);
        assert_int_equal(fnn_predictor_run(e, x, N, got, &err), FNN_OK);
        assert_memory_equal(got, want, sizeof want);
        if (round == 0)
            memcpy(first, got, sizeof first);
        else if (round == 1)
            assert_memory_not_equal(got, first, sizeof first);
    }
    fnn_exec_free(e);
    fnn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(folded_matches_unfolded),
        cmocka_unit_test(other_batchnorms_stay),
        cmocka_unit_test(predictor_follows_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
