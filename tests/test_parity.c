/* PyTorch parity: the model of tests/fixtures/mlp_parity.safetensors (tools/make_fixtures.py)
 * must reproduce its twin's logits, probabilities, loss, every gradient including the input's,
 * and the losses and parameters of three Keras-form Adam and SGD-momentum steps. */
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
#include "util/team.h"

#define FIXTURE FNN_FIXTURES "/mlp_parity.safetensors"
/* The fixture's values were computed in float64 and its optimizer steps in float32; float32
 * arithmetic in a different order stays within ~1e-6 (tests/fixtures/README.md). Torch's
 * placement of Adam's epsilon would be 4e-4 away, so this tolerance also catches that. */
#define TOL 1e-5

#include "parity.h"

/* ---------------------------------------------------------------- tests */

static void check_forward_backward(fixture *f, int threads)
{
    fnn_model *m = f->m;
    load_initial(f);
    float *dx = malloc((size_t)f->n * f->in * sizeof *dx); /* (n, input) */
    assert_non_null(dx);
    double loss = model_step(f, dx, threads);

    const fnn_st_tensor *logits = need(f, "logits");
    assert_int_equal(logits->size, (size_t)f->n * f->k);
    double d_logits = max_diff(f->ex->act[m->src[m->nlayers]], logits->data, logits->size);
    double d_loss = fabs(loss - need(f, "loss")->data[0]);
    double d_grad = 0.0;
    for (int i = 0; i < fnn_model_num_tensors(m); i++)
        d_grad = fmax(d_grad, compare_tensor(f, i, m->grads, "grad."));
    const fnn_st_tensor *gx = need(f, "grad.x");
    assert_int_equal(gx->size, (size_t)f->n * f->in);
    double d_dx = max_diff(dx, gx->data, gx->size);
    print_message("%d thread(s): max |diff| logits %.2e, loss %.2e, parameter gradients %.2e, "
                  "input gradient %.2e\n", threads, d_logits, d_loss, d_grad, d_dx);
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

static void test_predict_probs(void **state)
{
    fixture *f = *state;
    load_initial(f);
    const fnn_st_tensor *probs = need(f, "probs");
    float *p = malloc(probs->size * sizeof *p); /* (n, classes) */
    assert_non_null(p);
    fnn_error err;
    for (int threads = 1; threads <= 2; threads++) {
        memset(p, 0, probs->size * sizeof *p);
        assert_int_equal(fnn_model_predict(f->m, f->x, f->n, p, threads, &err), FNN_OK);
        double d = max_diff(p, probs->data, probs->size);
        print_message("predict, %d thread(s): max |diff| probabilities %.2e\n", threads, d);
        assert_true(d < TOL);
    }
    free(p);
}

/* One block per tensor, the rows of a kernel split between threads, as training partitions
 * the arena. */
static void partition_by_tensor(fnn_optimizer *o, const fnn_model *m)
{
    int nt = fnn_model_num_tensors(m);
    fnn_param_block *blocks = malloc((size_t)nt * sizeof *blocks);
    assert_non_null(blocks);
    for (int i = 0; i < nt; i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        size_t rows = t.rank ? (size_t)t.shape[0] : 1;
        blocks[i] = (fnn_param_block){(size_t)(t.data - m->params), rows, t.size / rows,
                                      t.rank >= 2, 1.0f};
    }
    fnn_error err;
    assert_int_equal(fnn_optimizer_partition(o, blocks, nt, &err), FNN_OK);
    free(blocks);
}

/* `steps` optimizer steps on the fixture batch from its initial weights, as the training loop
 * runs them; losses[t] is the loss before step t. */
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

static void check_optimizer(fixture *f, const char *which, const fnn_optim_config *cfg,
                            int steps, int threads)
{
    load_initial(f);
    fnn_optimizer o;
    fnn_error err;
    assert_int_equal(fnn_optimizer_init(&o, cfg, f->m->arena_size, &err), FNN_OK);
    if (threads > 1)
        partition_by_tensor(&o, f->m);
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

    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.loss", which);
    const fnn_st_tensor *want = need(f, prefix);
    assert_int_equal(want->size, steps);
    double d_loss = 0.0, d_param = 0.0;
    for (int t = 0; t < steps; t++)
        d_loss = fmax(d_loss, fabs(losses[t] - want->data[t]));
    snprintf(prefix, sizeof prefix, "%s.", which);
    for (int i = 0; i < fnn_model_num_tensors(f->m); i++)
        d_param = fmax(d_param, compare_tensor(f, i, f->m->params, prefix));
    print_message("%s, %d steps, %d thread(s): max |diff| losses %.2e, parameters %.2e\n", which,
                  steps, threads, d_loss, d_param);
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
    check_optimizer(f, "adam", &cfg, steps, 1);
    check_optimizer(f, "adam", &cfg, steps, 2);
}

static void test_sgd_steps(void **state)
{
    fixture *f = *state;
    cJSON *j = meta_json(f, "sgd");
    fnn_optim_config cfg = {.kind = FNN_OPT_SGD,
                            .lr = (float)json_number(j, "lr"),
                            .momentum = (float)json_number(j, "momentum")};
    int steps = (int)json_number(j, "steps");
    cJSON_Delete(j);
    assert_true(steps >= 1 && steps <= 100);
    check_optimizer(f, "sgd", &cfg, steps, 1);
    check_optimizer(f, "sgd", &cfg, steps, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_backward),
        cmocka_unit_test(test_predict_probs),
        cmocka_unit_test(test_adam_steps),
        cmocka_unit_test(test_sgd_steps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
