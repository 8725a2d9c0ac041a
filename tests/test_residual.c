/* Residual blocks: the block's output is its input plus its layers' output, and every gradient
 * of a model with one (including the input's, which takes both paths) matches central
 * differences of the model's own loss, with the identity shortcut and with a strided 1x1
 * projection; one and two threads agree. */
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
#include "nn/layer.h"
#include "util/rng.h"

#define N 5                   /* batch */
#define SPEC "dense:6 residual dense:6 dense:6 end dense:3"
/* (1, 6, 6) in; the block turns (3, 6, 6) into (4, 3, 3), so "end" projects with stride 2. */
#define PROJ_SPEC "conv2d:3:3:same residual conv2d:4:3:s2:same conv2d:4:3:same end flatten dense:3"
#define MAX_IN 36
#define FD_STEP 1e-2f         /* the model is linear, so only rounding limits the step */
#define TOL 2e-3

typedef struct {
    fnn_model *m;
    fnn_exec *ex;             /* for up to 4 threads */
    int in;                   /* input size per sample */
    float x[N * MAX_IN];      /* (N, in) */
    uint8_t y[N];
} fixture;

static int setup_spec(void **state, const char *spec, int h)
{
    fixture *f = calloc(1, sizeof *f);
    fnn_error err;
    f->in = h * h;
    f->m = fnn_model_create(spec, 1, h, h, &err);
    assert_non_null(f->m);
    assert_int_equal(fnn_exec_create(f->m, N, 4, f->m->grads, &f->ex, &err), FNN_OK);
    fnn_model_init(f->m, 3);
    fnn_rng rng;
    fnn_rng_seed(&rng, 11);
    for (int i = 0; i < N * f->in; i++)
        f->x[i] = 2.0f * fnn_rng_uniform(&rng) - 1.0f;
    for (int i = 0; i < N; i++)
        f->y[i] = (uint8_t)fnn_rng_below(&rng, 3);
    /* Non-zero biases, so that their gradients carry information. */
    for (size_t i = 0; i < f->m->arena_size; i++)
        if (f->m->params[i] == 0.0f)
            f->m->params[i] = 0.1f * (2.0f * fnn_rng_uniform(&rng) - 1.0f);
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_spec(state, SPEC, 2); }
static int setup_proj(void **state) { return setup_spec(state, PROJ_SPEC, 6); }

static int teardown(void **state)
{
    fixture *f = *state;
    fnn_exec_free(f->ex);
    fnn_model_free(f->m);
    free(f);
    return 0;
}

/* Mean loss of the batch; with dx, also every gradient (team code when threads > 1). */
static double run(fixture *f, float *dx, int threads)
{
    double loss = 0.0;
    fnn_pass pass = {.train = 1};
#pragma omp parallel num_threads(threads)
    {
        const float *logits = fnn_exec_forward(f->ex, &pass, f->x, N);
#pragma omp single
        {
            int hits;
            fnn_softmax_xent(logits, f->y, N, 3, 0.0f, 0, N, fnn_exec_logit_grad(f->ex), &loss,
                             &hits);
        }
        if (dx)
            fnn_exec_backward(f->ex, &pass, f->x, N, dx);
    }
    return loss / N;
}

static void test_block_adds_its_input(void **state)
{
    fixture *f = *state;
    run(f, NULL, 1);
    fnn_model *m = f->m;
    /* Layers: 0 dense, 1 residual, 2 dense, 3 dense, 4 end, 5 dense. */
    for (int i = 0; i < N * 6; i++)
        assert_float_equal(f->ex->act[4][i], f->ex->act[0][i] + f->ex->act[3][i], 1e-6);
    assert_ptr_equal(m->layers[1].partner, &m->layers[4]);
    assert_ptr_equal(m->layers[4].partner, &m->layers[1]);
}

static void check_gradients(fixture *f, int threads)
{
    fnn_model *m = f->m;
    float dx[N * MAX_IN];
    run(f, dx, threads);
    float *analytic = malloc(m->arena_size * sizeof *analytic);
    memcpy(analytic, m->grads, m->arena_size * sizeof *analytic);
    double worst = 0.0, largest = 0.0;
    for (size_t i = 0; i < m->arena_size; i++) {
        float keep = m->params[i];
        m->params[i] = keep + FD_STEP;
        double up = run(f, NULL, 1);
        m->params[i] = keep - FD_STEP;
        double down = run(f, NULL, 1);
        m->params[i] = keep;
        double fd = (up - down) / (2.0 * FD_STEP);
        worst = fmax(worst, fabs(fd - analytic[i]));
        largest = fmax(largest, fabs(fd));
    }
    print_message("%d thread(s): parameters max |analytic - fd| %.2e of max |fd| %.2e\n", threads,
                  worst, largest);
    assert_true(largest > 1e-3);
    assert_true(worst <= TOL * largest);

    /* The input's gradient takes both the block's path and the shortcut. */
    worst = largest = 0.0;
    for (int i = 0; i < N * f->in; i++) {
        float keep = f->x[i];
        f->x[i] = keep + FD_STEP;
        double up = run(f, NULL, 1);
        f->x[i] = keep - FD_STEP;
        double down = run(f, NULL, 1);
        f->x[i] = keep;
        double fd = (up - down) / (2.0 * FD_STEP);
        worst = fmax(worst, fabs(fd - dx[i]));
        largest = fmax(largest, fabs(fd));
    }
    print_message("%d thread(s): input max |analytic - fd| %.2e of max |fd| %.2e\n", threads,
                  worst, largest);
    assert_true(largest > 1e-3);
    assert_true(worst <= TOL * largest);
    free(analytic);
}

static void test_gradients_one_thread(void **state) { check_gradients(*state, 1); }
static void test_gradients_two_threads(void **state) { check_gradients(*state, 2); }

static void test_projection_shape(void **state)
{
    fixture *f = *state;
    fnn_layer_info li;
    fnn_model_layer_info(f->m, 4, &li);
    assert_string_equal(li.type, "Add");
    assert_int_equal(li.nparams, 4 * 3 + 4); /* a (4, 3, 1, 1) kernel and 4 biases */
    assert_int_equal(li.out_c, 4);
    assert_int_equal(li.out_h, 3);
}

static void test_bad_blocks(void **state)
{
    fnn_error err = {0};
    assert_null(fnn_model_create("conv2d:2:3:same residual conv2d:2:2 end flatten dense:3", 1, 5,
                                 5, &err));
    assert_non_null(strstr(err.msg, "whole stride"));
    assert_null(fnn_model_create("residual dense:8 dense:3", 1, 2, 2, &err));
    assert_non_null(strstr(err.msg, "never closed"));
    assert_null(fnn_model_create("dense:8 end dense:3", 1, 2, 2, &err));
    assert_non_null(strstr(err.msg, "closes no"));
    assert_null(fnn_model_create("dense:8 residual end dense:3", 1, 2, 2, &err));
    assert_non_null(strstr(err.msg, "empty"));
    fnn_model *m = fnn_model_create(SPEC, 1, 2, 2, &err);
    assert_non_null(m);
    assert_string_equal(fnn_model_spec(m), SPEC);
    fnn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_block_adds_its_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gradients_one_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gradients_two_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_projection_shape, setup_proj, teardown),
        cmocka_unit_test_setup_teardown(test_gradients_one_thread, setup_proj, teardown),
        cmocka_unit_test_setup_teardown(test_gradients_two_threads, setup_proj, teardown),
        cmocka_unit_test(test_bad_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
