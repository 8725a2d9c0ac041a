/* Label smoothing in the fused softmax/cross-entropy against a double-precision reference of
 * PyTorch's CrossEntropyLoss(label_smoothing=s) (targets (1 - s) onehot + s / k, mean over the
 * batch), and the training configuration's bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fnn.h"
#include "check.h"
#include "nn/layer.h"

#define N 3
#define K 4

static const float logits[N * K] = {1.0f, 2.0f, 3.0f, -1.0f,  /* label 0: a mistake */
                                    0.5f, -0.5f, 4.0f, 0.0f,  /* label 2: confident, right */
                                    -2.0f, 1.5f, 1.4f, 0.3f}; /* label 1: a near tie */
static const uint8_t labels[N] = {0, 2, 1};

/* Loss summed over the rows and gradient (p - q) / N, in double. */
static double reference(double s, double *grad)
{
    double loss = 0.0;
    for (int r = 0; r < N; r++) {
        const float *x = logits + r * K;
        double mx = x[0], sum = 0.0, p[K];
        for (int j = 1; j < K; j++)
            mx = fmax(mx, x[j]);
        for (int j = 0; j < K; j++)
            sum += exp(x[j] - mx);
        for (int j = 0; j < K; j++) {
            p[j] = exp(x[j] - mx) / sum;
            double q = (j == labels[r] ? 1.0 - s : 0.0) + s / K;
            loss -= q * log(p[j]);
            grad[r * K + j] = (p[j] - q) / N;
        }
    }
    return loss;
}

static void check_against_reference(float s)
{
    float d[N * K];
    double want_d[N * K], loss;
    int hits;
    fnn_softmax_xent(logits, labels, N, K, s, 0, N, d, &loss, &hits);
    double want = reference(s, want_d);
    assert_true(fabs(loss - want) < 1e-6 * want);
    assert_true(rel_err(d, want_d, N * K) < 1e-6);
    assert_int_equal(hits, 2);
}

static void test_smoothed_loss_and_gradient(void **state)
{
    check_against_reference(0.1f);
    check_against_reference(0.3f);
}

static void test_zero_is_plain_cross_entropy(void **state)
{
    check_against_reference(0.0f);
}

/* Smoothing changes the target of every class, not only the label's: the gradient of a wrong
 * class's logit is p - s / k, not p. */
static void test_wrong_classes_get_mass(void **state)
{
    float plain[N * K], smooth[N * K];
    double l0, l1;
    int h;
    fnn_softmax_xent(logits, labels, N, K, 0.0f, 0, N, plain, &l0, &h);
    fnn_softmax_xent(logits, labels, N, K, 0.2f, 0, N, smooth, &l1, &h);
    /* Row 1, class 3 (wrong): the target rises from 0 to 0.2 / 4. */
    assert_float_equal(plain[1 * K + 3] - smooth[1 * K + 3], 0.05f / N, 1e-7f);
    /* The confident right row pays more under smoothing. */
    assert_true(l1 > l0);
}

static void test_config_bounds(void **state)
{
    fnn_error err;
    fnn_model *m = fnn_model_create("flatten dense:4:softmax", 1, 2, 2, &err);
    assert_non_null(m);
    fnn_model_init(m, 1);
    uint8_t px[4 * 4] = {0}, y[4] = {0, 1, 2, 3};
    fnn_dataset d = {.n = 4, .c = 1, .h = 2, .w = 2, .nclasses = 4, .images = px, .labels = y};
    const float bad[] = {-0.1f, 1.0f, NAN};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fnn_train_config c = fnn_train_default();
        c.epochs = 1;
        c.label_smoothing = bad[i];
        fnn_dataset none = {0};
        assert_int_equal(fnn_train(m, &d, &none, &c, NULL, &err), FNN_ERR_ARG);
        assert_non_null(strstr(err.msg, "label smoothing"));
    }
    fnn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smoothed_loss_and_gradient),
        cmocka_unit_test(test_zero_is_plain_cross_entropy),
        cmocka_unit_test(test_wrong_classes_get_mass),
        cmocka_unit_test(test_config_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
