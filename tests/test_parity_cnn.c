/* PyTorch parity for convolutions, batch norm and pooling: the model of
 * tests/fixtures/cnn_parity.safetensors (tools/make_cnn_fixture.py) must reproduce its twin's
 * training-mode logits, loss, gradients and moving statistics, its eval-mode logits, and the
 * tensors after three Keras-form Adam steps, with one thread and with two. The same again on
 * 3-channel inputs behind a per-channel input normalisation (rgb_parity.safetensors, written by
 * the script's --rgb). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <math.h>
#include <omp.h>

#include "fnn.h"
#include "io/safetensors.h"
#include "model/exec.h"
#include "model/model.h"
#include "nn/layer.h"
#include "optim/optim.h"
#include "train/train.h"
#include "util/team.h"

/* The fixture of the group being run; parity.h names it in its messages. */
static const char *fixture_path;
#define FIXTURE fixture_path
/* The fixture's values were computed in float64 and its Adam steps in float32; torch's own
 * float32 stays within 4.5e-7 of them before the steps and 3.4e-7 after
 * (tests/fixtures/README.md). */
#define TOL 1e-5

#include "parity.h"

/* Max difference over the frozen (frozen = 1) or trainable (0) tensors. */
static double compare_tensors(const fixture *f, int frozen, const float *base, const char *prefix)
{
    double d = 0.0;
    int seen = 0;
    for (int i = 0; i < fnn_model_num_tensors(f->m); i++) {
        fnn_tensor t;
        fnn_model_tensor(f->m, i, &t);
        if (t.frozen != frozen)
            continue;
        d = fmax(d, compare_tensor(f, i, base, prefix));
        seen++;
    }
    assert_true(seen > 0);
    return d;
}

/* ---------------------------------------------------------------- tests */

static void check_forward_backward(fixture *f, int threads)
{
    fnn_model *m = f->m;
    load_initial(f);
    float *dx = malloc((size_t)f->n * f->in * sizeof *dx); /* (n, c, h, w) */
    assert_non_null(dx);
    double loss = model_step(f, dx, threads);

    const fnn_st_tensor *logits = need(f, "logits");
    assert_int_equal(logits->size, (size_t)f->n * f->k);
    double d_logits = max_diff(f->ex->act[m->src[m->nlayers]], logits->data, logits->size);
    double d_loss = fabs(loss - need(f, "loss")->data[0]);
    /* Frozen tensors have no gradient in the fixture; their training forward moved them. */
    double d_grad = compare_tensors(f, 0, m->grads, "grad.");
    double d_stats = compare_tensors(f, 1, m->params, "after.");
    const fnn_st_tensor *gx = need(f, "grad.x");
    assert_int_equal(gx->size, (size_t)f->n * f->in);
    double d_dx = max_diff(dx, gx->data, gx->size);
    print_message("%d thread(s): max |diff| logits %.2e, loss %.2e, parameter gradients %.2e, "
                  "input gradient %.2e, moving statistics %.2e\n", threads, d_logits, d_loss,
                  d_grad, d_dx, d_stats);
    assert_true(d_logits < TOL);
    assert_true(d_loss < TOL);
    assert_true(d_dx < TOL);
    free(dx);
}

static void test_forward_backward(void **state)
{
    check_forward_backward(*state, 1);
    check_forward_backward(*state, 2);
}

/* Eval mode: batch norm normalises with the initial moving statistics and leaves them alone. */
static void test_eval_logits(void **state)
{
    fixture *f = *state;
    fnn_model *m = f->m;
    const fnn_st_tensor *want = need(f, "eval.logits");
    assert_int_equal(want->size, (size_t)f->n * f->k);
    for (int threads = 1; threads <= 2; threads++) {
        load_initial(f);
        fnn_pass pass = {.train = 0};
        const float *logits = NULL;
        if (threads == 1) {
            logits = fnn_exec_forward(f->ex, &pass, f->x, f->n);
        } else {
            fnn_blas_single_threaded();
#pragma omp parallel num_threads(threads)
            {
                const float *l = fnn_exec_forward(f->ex, &pass, f->x, f->n);
#pragma omp single
                logits = l;
            }
        }
        double d = max_diff(logits, want->data, want->size);
        double d_stats = compare_tensors(f, 1, m->params, ""); /* unchanged */
        print_message("eval, %d thread(s): max |diff| logits %.2e, moving statistics %.2e\n",
                      threads, d, d_stats);
        assert_true(d < TOL);
        assert_true(d_stats == 0.0);
    }
}

/* `steps` Adam steps on the fixture batch from its initial tensors, as the training loop runs
 * them; losses[t] is the loss before step t. */
static void train_steps(fixture *f, fnn_optimizer *o, int steps, double *losses)
{
    for (int t = 0; t < steps; t++) {
        fnn_pass pass = {.train = 1, .key = (uint64_t)t};
        team_step(f, &pass, NULL, &losses[t]);
        fnn_optimizer_step(o, f->m->params, f->m->grads, t + 1);
        /* The step ends without a barrier: the next forward pass reads every thread's rows. */
#pragma omp barrier
    }
}

static void check_adam(fixture *f, const fnn_optim_config *cfg, int steps, int threads)
{
    load_initial(f);
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, cfg, f->m->arena_size, &err), FNN_OK);
    /* Blocks over the trainable tensors only, as training runs: Adam must not touch the moving
     * statistics, which only the training forward passes move. */
    assert_int_equal(fnn_partition_optimizer(&o, f->m, &err), FNN_OK);
    double *losses = malloc((size_t)steps * sizeof *losses);
    assert_non_null(losses);
    if (threads == 1) {
        train_steps(f, &o, steps, losses);
    } else {
        fnn_blas_single_threaded();
#pragma omp parallel num_threads(threads)
        train_steps(f, &o, steps, losses);
    }
    assert_int_equal(o.t, steps);

    const fnn_st_tensor *want = need(f, "adam.loss");
    assert_int_equal(want->size, steps);
    double d_loss = 0.0;
    for (int t = 0; t < steps; t++)
        d_loss = fmax(d_loss, fabs(losses[t] - want->data[t]));
    double d_param = compare_tensors(f, 0, f->m->params, "adam.");
    double d_stats = compare_tensors(f, 1, f->m->params, "adam.");
    print_message("adam, %d steps, %d thread(s): max |diff| losses %.2e, parameters %.2e, "
                  "moving statistics %.2e\n", steps, threads, d_loss, d_param, d_stats);
    assert_true(d_loss < TOL);
    /* The losses must fall, or the comparison could pass with a no-op on a flat loss. */
    assert_true(losses[steps - 1] < losses[0]);
    free(losses);
    fnn_optimizer_release(&o);
}

static void test_adam_steps(void **state)
{
    fixture *f = *state;
    int steps;
    fnn_optim_config cfg = fixture_adam(f, &steps);
    check_adam(f, &cfg, steps, 1);
    check_adam(f, &cfg, steps, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_backward),
        cmocka_unit_test(test_eval_logits),
        cmocka_unit_test(test_adam_steps),
    };
    fixture_path = FNN_FIXTURES "/cnn_parity.safetensors";
    int failed = cmocka_run_group_tests_name("grey", tests, setup, teardown);
    fixture_path = FNN_FIXTURES "/rgb_parity.safetensors";
    return failed + cmocka_run_group_tests_name("rgb", tests, setup, teardown);
}
