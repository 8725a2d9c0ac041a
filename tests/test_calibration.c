/* Calibration: reliability bins and the expected calibration error against small cases worked
 * out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fnn.h"

/* Four images of three classes. Top-1: 0.9 right, 0.7 wrong, 0.4 right, 0.6 right. */
static const float probs[4 * 3] = {0.9f, 0.05f, 0.05f, 0.2f, 0.7f, 0.1f,
                                   0.4f, 0.35f, 0.25f, 0.1f, 0.3f, 0.6f};
static const uint8_t labels[4] = {0, 0, 0, 2};

static void test_two_bins(void **state)
{
    fnn_calibration c;
    fnn_error err;
    assert_int_equal(fnn_calibration_compute(labels, probs, 4, 3, 2, &c, &err), FNN_OK);
    assert_int_equal(c.nbins, 2);
    /* (0, 0.5]: the 0.4 image, right. (0.5, 1]: 0.9, 0.7, 0.6, two of three right. */
    assert_int_equal(c.count[0], 1);
    assert_int_equal(c.count[1], 3);
    assert_float_equal(c.confidence[0], 0.4, 1e-6);
    assert_float_equal(c.accuracy[0], 1.0, 1e-12);
    assert_float_equal(c.confidence[1], (0.9 + 0.7 + 0.6) / 3, 1e-6);
    assert_float_equal(c.accuracy[1], 2.0 / 3, 1e-12);
    /* 1/4 |1 - 0.4| + 3/4 |2/3 - 2.2/3| = 0.15 + 0.05 */
    assert_float_equal(c.ece, 0.2, 1e-6);
    fnn_calibration_free(&c);
}

static void test_four_bins_with_an_empty_one(void **state)
{
    fnn_calibration c;
    fnn_error err;
    assert_int_equal(fnn_calibration_compute(labels, probs, 4, 3, 4, &c, &err), FNN_OK);
    /* (0, .25]: none; (.25, .5]: 0.4 right; (.5, .75]: 0.7 wrong, 0.6 right; (.75, 1]: 0.9 right */
    const int64_t count[4] = {0, 1, 2, 1};
    const double conf[4] = {0, 0.4, 0.65, 0.9}, acc[4] = {0, 1, 0.5, 1};
    for (int b = 0; b < 4; b++) {
        assert_int_equal(c.count[b], count[b]);
        assert_float_equal(c.confidence[b], conf[b], 1e-6);
        assert_float_equal(c.accuracy[b], acc[b], 1e-12);
    }
    /* 1/4 0.6 + 2/4 0.15 + 1/4 0.1 */
    assert_float_equal(c.ece, 0.25, 1e-6);
    fnn_calibration_free(&c);
}

/* A bin's upper edge belongs to it: 0.5 of two classes falls in (0, 0.5], 1.0 in the last. */
static void test_bin_edges_and_ties(void **state)
{
    const float p[3 * 2] = {0.5f, 0.5f, 1.0f, 0.0f, 0.75f, 0.25f};
    const uint8_t y[3] = {1, 0, 0};
    fnn_calibration c;
    fnn_error err;
    assert_int_equal(fnn_calibration_compute(y, p, 3, 2, 4, &c, &err), FNN_OK);
    /* argmax of a tie is the first class: 0.5 is predicted as class 0 and is wrong. */
    assert_int_equal(c.count[1], 1);
    assert_float_equal(c.accuracy[1], 0.0, 0);
    assert_int_equal(c.count[2], 1);
    assert_int_equal(c.count[3], 1);
    assert_float_equal(c.ece, (0.5 + 0.25 + 0.0) / 3, 1e-7);
    fnn_calibration_free(&c);
}

static void test_bad_arguments(void **state)
{
    fnn_calibration c;
    fnn_error err;
    assert_int_equal(fnn_calibration_compute(labels, probs, 4, 3, 0, &c, &err), FNN_ERR_ARG);
    assert_int_equal(fnn_calibration_compute(labels, probs, 0, 3, 10, &c, &err), FNN_ERR_ARG);
    const uint8_t bad[4] = {0, 0, 3, 0};
    assert_int_equal(fnn_calibration_compute(bad, probs, 4, 3, 10, &c, &err), FNN_ERR_ARG);
    assert_non_null(strstr(err.msg, "image 2"));
    assert_null(c.count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_bins),
        cmocka_unit_test(test_four_bins_with_an_empty_one),
        cmocka_unit_test(test_bin_edges_and_ties),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
