/* The standalone activation layer: forward against hand-computed values for every kind, input
 * gradients against central differences of a double reference, the derivative chosen at the
 * kinks, one thread against two, setup errors and spec tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <omp.h>

#include "fnn.h"
#include "nn/layer.h"
#include "util/rng.h"
#include "check.h"

/* Central-difference step on the double reference: truncation error ~ FD_STEP^2 |f'''| / 6,
 * rounding ~1e-16 / FD_STEP, both far below GRAD_TOL. */
#define FD_STEP 1e-4
/* Gradient-check inputs keep at least this far from the kink at 0 of relu, leaky ReLU and ELU,
 * so that no step crosses it. */
#define KINK_MARGIN 1e-2
/* max|analytic - reference| / max|reference| for a float gradient against the double one. */
#define GRAD_TOL 1e-5
/* A gradient whose largest entry is below this is treated as missing: the check fails. */
#define NONTRIVIAL 1e-2

/* ---------------------------------------------------------------- harness */

typedef struct {
    fnn_layer l;
    int n;      /* batch rows the buffers hold */
    float *x;   /* (n, c, h, w) */
    float *y;   /* (n, c, h, w) */
    float *dy;  /* (n, c, h, w) */
    float *dx;  /* (n, c, h, w) */
} act_case;

static size_t case_size(const act_case *ac) { return (size_t)ac->n * fnn_shape_size(ac->l.in); }

/* A layer of `kind` and `alpha` at stack position 2 on (c, h, w), set up; setup's status. */
static fnn_status layer_make(fnn_layer *l, fnn_activation kind, float alpha, int c, int h, int w,
                             fnn_error *err)
{
    *l = (fnn_layer){.ops = &fnn_activation_ops, .index = 2, .in = {c, h, w}};
    l->cfg.act.kind = kind;
    l->cfg.act.alpha = alpha;
    return l->ops->setup(l, err);
}

/* Sets up the layer and allocates its buffers for n rows. */
static void case_make(act_case *ac, fnn_activation kind, float alpha, int c, int h, int w, int n)
{
    memset(ac, 0, sizeof *ac);
    fnn_error err = {0};
    fnn_status s = layer_make(&ac->l, kind, alpha, c, h, w, &err);
    if (s != FNN_OK)
        print_message("setup: %s\n", err.msg);
    assert_int_equal(s, FNN_OK);
    assert_int_equal(ac->l.out.c, c);
    assert_int_equal(ac->l.out.h, h);
    assert_int_equal(ac->l.out.w, w);
    assert_int_equal(ac->l.nparams, 0);
    assert_int_equal(ac->l.scratch_per_sample, 0);
    ac->n = n;
    ac->x = calloc(case_size(ac), sizeof(float));
    ac->y = calloc(case_size(ac), sizeof(float));
    ac->dy = calloc(case_size(ac), sizeof(float));
    ac->dx = calloc(case_size(ac), sizeof(float));
    assert_true(ac->x && ac->y && ac->dy && ac->dx);
}

static void case_free(act_case *ac)
{
    free(ac->x);
    free(ac->y);
    free(ac->dy);
    free(ac->dx);
}

/* Forward then backward (dy -> dx) with `threads` threads (1: outside a parallel region). y and
 * dx start as NaN, so that a pass that leaves some rows unwritten fails. */
static void case_run(act_case *ac, int threads)
{
    fnn_pass p = {.train = 1, .sync = NULL};
    size_t size = case_size(ac);
    for (size_t i = 0; i < size; i++)
        ac->y[i] = ac->dx[i] = NAN;
    float *dy = malloc(size * sizeof *dy); /* backward may overwrite its dy */
    assert_non_null(dy);
    memcpy(dy, ac->dy, size * sizeof *dy);
    if (threads == 1) {
        ac->l.ops->forward(&ac->l, &p, ac->x, ac->y, ac->n);
        ac->l.ops->backward(&ac->l, &p, ac->x, ac->y, dy, ac->dx, ac->n);
    } else {
#pragma omp parallel num_threads(threads)
        {
            ac->l.ops->forward(&ac->l, &p, ac->x, ac->y, ac->n);
#pragma omp barrier
            ac->l.ops->backward(&ac->l, &p, ac->x, ac->y, dy, ac->dx, ac->n);
        }
    }
    free(dy);
}

static const char *kind_name(fnn_activation kind)
{
    switch (kind) {
    case FNN_ACT_RELU: return "relu";
    case FNN_ACT_LEAKY_RELU: return "leakyrelu";
    case FNN_ACT_ELU: return "elu";
    case FNN_ACT_TANH: return "tanh";
    case FNN_ACT_SIGMOID: return "sigmoid";
    default: return "?";
    }
}

/* ---------------------------------------------------------------- forward by hand */

#define N_HAND 12
static const float hand_x[N_HAND] = {-100, -2, -0.5f, -0.25f, 0, 0.25f, 0.5f, 2, 100, -20, 20, 1};

/* Every case runs as a (2, 3, 2) sample, once with one thread and once with two. tol is
 * relative beyond |want| = 1: alpha = 0.3f is 0.3 only to float precision. */
static void hand_case(fnn_activation kind, float alpha, const double *want, double tol)
{
    for (int threads = 1; threads <= 2; threads++) {
        act_case ac;
        case_make(&ac, kind, alpha, 2, 3, 2, 1);
        memcpy(ac.x, hand_x, sizeof hand_x);
        case_run(&ac, threads);
        for (int i = 0; i < N_HAND; i++) {
            double got = ac.y[i], bound = tol * fmax(1.0, fabs(want[i]));
            if (!(fabs(got - want[i]) <= bound))
                print_message("%s:%g, %d threads: f(%g) = %.9g, want %.9g\n", kind_name(kind),
                              (double)alpha, threads, (double)hand_x[i], got, want[i]);
            assert_true(fabs(got - want[i]) <= bound);
        }
        case_free(&ac);
    }
}

static void test_forward_relu(void **state)
{
    const double want[N_HAND] = {0, 0, 0, 0, 0, 0.25, 0.5, 2, 100, 0, 20, 1};
    hand_case(FNN_ACT_RELU, 0.0f, want, 0.0);
}

static void test_forward_leaky_relu(void **state)
{
    const double want[N_HAND] = {-30, -0.6, -0.15, -0.075, 0, 0.25, 0.5, 2, 100, -6, 20, 1};
    hand_case(FNN_ACT_LEAKY_RELU, 0.3f, want, 1e-6);
    const double zero[N_HAND] = {0, 0, 0, 0, 0, 0.25, 0.5, 2, 100, 0, 20, 1};
    hand_case(FNN_ACT_LEAKY_RELU, 0.0f, zero, 0.0);
}

static void test_forward_elu(void **state)
{
    /* e^-2 - 1 = -0.8646647167633873, e^-0.5 - 1 = -0.3934693402873666,
     * e^-0.25 - 1 = -0.22119921692859512, e^-20 - 1 = -0.9999999979388464. */
    const double want[N_HAND] = {-1, -0.8646647167633873, -0.3934693402873666,
                                 -0.22119921692859512, 0, 0.25, 0.5, 2, 100,
                                 -0.9999999979388464, 20, 1};
    hand_case(FNN_ACT_ELU, 1.0f, want, 1e-6);
    double scaled[N_HAND];
    for (int i = 0; i < N_HAND; i++)
        scaled[i] = hand_x[i] > 0 ? want[i] : 1.5 * want[i];
    hand_case(FNN_ACT_ELU, 1.5f, scaled, 1e-6);
}

static void test_forward_tanh(void **state)
{
    const double t25 = 0.24491866240370913, t5 = 0.46211715726000974, t1 = 0.7615941559557649,
                 t2 = 0.9640275800758169;
    const double want[N_HAND] = {-1, -t2, -t5, -t25, 0, t25, t5, t2, 1, -1, 1, t1};
    hand_case(FNN_ACT_TANH, 0.0f, want, 1e-6);
}

static void test_forward_sigmoid(void **state)
{
    const double s25 = 0.5621765008857981, s5 = 0.6224593312018546, s1 = 0.7310585786300049,
                 s2 = 0.8807970779778823, s20 = 0.9999999979388463;
    const double want[N_HAND] = {0,   1 - s2, 1 - s5, 1 - s25, 0.5, s25,
                                 s5,  s2,     1,      1 - s20, s20, s1};
    hand_case(FNN_ACT_SIGMOID, 0.0f, want, 1e-6);
}

/* ---------------------------------------------------------------- gradients */

/* The double reference of f. */
static double ref_f(fnn_activation kind, double alpha, double x)
{
    switch (kind) {
    case FNN_ACT_RELU: return x > 0 ? x : 0;
    case FNN_ACT_LEAKY_RELU: return x > 0 ? x : alpha * x;
    case FNN_ACT_ELU: return x > 0 ? x : alpha * expm1(x);
    case FNN_ACT_TANH: return tanh(x);
    case FNN_ACT_SIGMOID: return 1 / (1 + exp(-x));
    default: fail(); return NAN;
    }
}

/* Input gradient of sum(y * r) against central differences of the double reference, with 1
 * and 2 threads giving bit-identical outputs and gradients. n = 5 rows split unevenly. */
static void grad_case(fnn_activation kind, float alpha, uint64_t seed)
{
    fnn_rng rng;
    fnn_rng_seed(&rng, seed);
    act_case ac;
    case_make(&ac, kind, alpha, 3, 4, 5, 5);
    size_t size = case_size(&ac);
    for (size_t i = 0; i < size; i++) {
        do
            ac.x[i] = 6.0f * fnn_rng_uniform(&rng) - 3.0f;
        while (fabsf(ac.x[i]) < KINK_MARGIN);
        ac.dy[i] = 2.0f * fnn_rng_uniform(&rng) - 1.0f;
    }
    /* The loss is a sum of per-element terms, so perturbing x[j] moves only term j. */
    double *g = malloc(size * sizeof *g);
    float *y1 = malloc(size * sizeof *y1), *dx1 = malloc(size * sizeof *dx1);
    assert_true(g && y1 && dx1);
    for (size_t j = 0; j < size; j++) {
        double x = ac.x[j], r = ac.dy[j];
        g[j] = (ref_f(kind, alpha, x + FD_STEP) * r - ref_f(kind, alpha, x - FD_STEP) * r) /
               (2 * FD_STEP);
    }
    for (int threads = 1; threads <= 2; threads++) {
        case_run(&ac, threads);
        double err = rel_err(ac.dx, g, size), mx = max_abs_f(ac.dx, size);
        if (!(err < GRAD_TOL) || !(mx > NONTRIVIAL))
            print_message("%s:%g, %d threads: max |dx| %g, relative error %g\n",
                          kind_name(kind), (double)alpha, threads, mx, err);
        assert_true(err < GRAD_TOL);
        assert_true(mx > NONTRIVIAL);
        if (threads == 1) {
            memcpy(y1, ac.y, size * sizeof *y1);
            memcpy(dx1, ac.dx, size * sizeof *dx1);
        } else {
            assert_memory_equal(y1, ac.y, size * sizeof *y1);
            assert_memory_equal(dx1, ac.dx, size * sizeof *dx1);
        }
    }
    free(g);
    free(y1);
    free(dx1);
    case_free(&ac);
}

static void test_grad_relu(void **state) { grad_case(FNN_ACT_RELU, 0.0f, 11); }

static void test_grad_leaky_relu(void **state)
{
    grad_case(FNN_ACT_LEAKY_RELU, 0.3f, 12);
    grad_case(FNN_ACT_LEAKY_RELU, 0.01f, 13);
    grad_case(FNN_ACT_LEAKY_RELU, 0.0f, 14);
}

static void test_grad_elu(void **state)
{
    grad_case(FNN_ACT_ELU, 1.0f, 15);
    grad_case(FNN_ACT_ELU, 0.5f, 16);
    grad_case(FNN_ACT_ELU, 2.0f, 17);
}

static void test_grad_tanh(void **state) { grad_case(FNN_ACT_TANH, 0.0f, 18); }

static void test_grad_sigmoid(void **state) { grad_case(FNN_ACT_SIGMOID, 0.0f, 19); }

/* At x = 0 the kinked kinds take the derivative TensorFlow does: relu 0, leaky ReLU alpha,
 * ELU alpha (the left side). Smooth kinds give f'(0): tanh 1, sigmoid 1/4. */
static void test_derivative_at_zero(void **state)
{
    const fnn_activation kinds[5] = {FNN_ACT_RELU, FNN_ACT_LEAKY_RELU, FNN_ACT_ELU, FNN_ACT_TANH,
                                     FNN_ACT_SIGMOID};
    const float alphas[5] = {0, 0.3f, 0.7f, 0, 0};
    const float want[5] = {0, 0.3f * 4, 0.7f * 4, 4, 1};
    for (int k = 0; k < 5; k++) {
        act_case ac;
        case_make(&ac, kinds[k], alphas[k], 1, 1, 1, 1);
        ac.x[0] = 0.0f;
        ac.dy[0] = 4.0f;
        case_run(&ac, 1);
        if (fabsf(ac.dx[0] - want[k]) > 1e-6f)
            print_message("%s: dx at 0 is %g, want %g\n", kind_name(kinds[k]), (double)ac.dx[0],
                          (double)want[k]);
        assert_true(fabsf(ac.dx[0] - want[k]) <= 1e-6f);
        case_free(&ac);
    }
}

/* Without dx (the first layer of a model) backward writes nothing. */
static void test_backward_without_dx(void **state)
{
    act_case ac;
    case_make(&ac, FNN_ACT_TANH, 0.0f, 2, 2, 2, 3);
    for (size_t i = 0; i < case_size(&ac); i++) {
        ac.x[i] = (float)i - 10.0f;
        ac.dy[i] = 1.0f;
    }
    fnn_pass p = {.train = 1};
    ac.l.ops->forward(&ac.l, &p, ac.x, ac.y, ac.n);
    ac.l.ops->backward(&ac.l, &p, ac.x, ac.y, ac.dy, NULL, ac.n);
    for (size_t i = 0; i < case_size(&ac); i++)
        assert_float_equal(ac.dy[i], 1.0f, 0.0f);
    case_free(&ac);
}

/* ---------------------------------------------------------------- setup and format */

static void expect_setup_fails(fnn_activation kind, float alpha, const char *word)
{
    fnn_layer l;
    fnn_error err = {0};
    assert_int_equal(layer_make(&l, kind, alpha, 4, 3, 3, &err), FNN_ERR_ARG);
    assert_int_equal(err.status, FNN_ERR_ARG);
    if (!strstr(err.msg, "layer 2") || !strstr(err.msg, word))
        print_message("message \"%s\" lacks \"layer 2\" or \"%s\"\n", err.msg, word);
    assert_non_null(strstr(err.msg, "activation"));
    assert_non_null(strstr(err.msg, "layer 2"));
    assert_non_null(strstr(err.msg, word));
}

static void test_setup_errors(void **state)
{
    expect_setup_fails(FNN_ACT_LINEAR, 0.0f, "linear");
    expect_setup_fails(FNN_ACT_SOFTMAX, 0.0f, "softmax");
    expect_setup_fails(FNN_ACT_LEAKY_RELU, -0.1f, "alpha");
    expect_setup_fails(FNN_ACT_ELU, -1.0f, "alpha");
    expect_setup_fails(FNN_ACT_ELU, NAN, "alpha");
    expect_setup_fails(FNN_ACT_LEAKY_RELU, INFINITY, "alpha");
    expect_setup_fails((fnn_activation)99, 0.0f, "99");

    fnn_layer l;
    fnn_error err = {0};
    assert_int_equal(layer_make(&l, FNN_ACT_RELU, 0.0f, 0, 3, 3, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "layer 2"));
}

static void expect_format(fnn_activation kind, float alpha, const char *want)
{
    fnn_layer l;
    fnn_error err = {0};
    char buf[64];
    assert_int_equal(layer_make(&l, kind, alpha, 8, 1, 1, &err), FNN_OK);
    l.ops->format(&l, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(l.ops->sharing(&l, 8, 2), FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT |
                                                   FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT);
}

static void test_format_and_sharing(void **state)
{
    expect_format(FNN_ACT_RELU, 0.0f, "relu");
    expect_format(FNN_ACT_LEAKY_RELU, 0.3f, "leakyrelu:0.3");
    expect_format(FNN_ACT_LEAKY_RELU, 0.01f, "leakyrelu:0.01");
    expect_format(FNN_ACT_LEAKY_RELU, 0.0f, "leakyrelu:0");
    expect_format(FNN_ACT_ELU, 1.0f, "elu:1");
    expect_format(FNN_ACT_ELU, 0.5f, "elu:0.5");
    expect_format(FNN_ACT_TANH, 0.0f, "tanh");
    expect_format(FNN_ACT_SIGMOID, 0.0f, "sigmoid");
    assert_string_equal(fnn_activation_ops.kind, "activation");
    assert_string_equal(fnn_activation_ops.type, "Activation");
    assert_int_equal(fnn_activation_ops.alias, 0);
}

/* One image on two threads (a single prediction): each thread takes a non-empty part of the
 * image, the parts tile it, the result is the single thread's bit for bit, and the layer then
 * asks the model for its barriers (no forward row flags). Split by rows, one thread would do
 * the whole image while the other waited. */
static void test_one_image_shared_by_two_threads(void **state)
{
    (void)state;
    act_case one, two;
    case_make(&one, FNN_ACT_RELU, 0.0f, 32, 28, 28, 1);
    case_make(&two, FNN_ACT_RELU, 0.0f, 32, 28, 28, 1);
    size_t size = case_size(&one), share[2][2] = {{0, 0}, {0, 0}};
    fnn_rng rng;
    fnn_rng_seed(&rng, 5);
    for (size_t i = 0; i < size; i++)
        one.x[i] = two.x[i] = 2.0f * fnn_rng_uniform(&rng) - 1.0f;
    int team = 0;
#pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num();
        fnn_layer_forward_elements(&two.l, 1, &share[t][0], &share[t][1]);
#pragma omp master
        team = omp_get_num_threads();
    }
    if (team == 2) {
        assert_true(share[0][0] < share[0][1]);
        assert_true(share[1][0] < share[1][1]);
        assert_int_equal(share[0][0], 0);
        assert_int_equal(share[0][1], share[1][0]);
        assert_int_equal(share[1][1], size);
    }
    case_run(&one, 1);
    case_run(&two, 2);
    assert_memory_equal(one.y, two.y, size * sizeof *one.y);
    unsigned flags = fnn_activation_ops.sharing(&two.l, 1, 2);
    assert_int_equal(flags & (FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT), 0);
    flags = fnn_activation_ops.sharing(&two.l, 2, 2);
    assert_int_equal(flags & (FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT), FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT);
    case_free(&one);
    case_free(&two);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_relu),
        cmocka_unit_test(test_one_image_shared_by_two_threads),
        cmocka_unit_test(test_forward_leaky_relu),
        cmocka_unit_test(test_forward_elu),
        cmocka_unit_test(test_forward_tanh),
        cmocka_unit_test(test_forward_sigmoid),
        cmocka_unit_test(test_grad_relu),
        cmocka_unit_test(test_grad_leaky_relu),
        cmocka_unit_test(test_grad_elu),
        cmocka_unit_test(test_grad_tanh),
        cmocka_unit_test(test_grad_sigmoid),
        cmocka_unit_test(test_derivative_at_zero),
        cmocka_unit_test(test_backward_without_dx),
        cmocka_unit_test(test_setup_errors),
        cmocka_unit_test(test_format_and_sharing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
