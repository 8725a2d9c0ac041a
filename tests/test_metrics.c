/* Tests for fnn_metrics_compute and the report and confusion formatters: hand-computed metrics,
 * scikit-learn's classification_report text verbatim, argument errors and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnn.h"

#define TOL 1e-9

/* Allocation failures are injected by replacing malloc, which glibc supports by symbol
 * interposition; it also reaches the library when it is a shared object. Under AddressSanitizer
 * the replacement would fight ASan's own allocator, so those tests are left out there. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define FNN_TEST_ALLOC_FAILURES 1

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);

static int alloc_armed;    /* count only inside the call under test */
static int alloc_fail_at;  /* index of the allocation that fails */
static int alloc_count;    /* allocations attempted while armed */
static long alloc_live;    /* blocks obtained minus blocks freed while armed */

static int alloc_should_fail(void)
{
    return alloc_armed && alloc_count++ == alloc_fail_at;
}

void *malloc(size_t size)
{
    if (alloc_should_fail())
        return NULL;
    void *p = __libc_malloc(size);
    if (p && alloc_armed)
        alloc_live++;
    return p;
}

void *calloc(size_t count, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    void *p = __libc_calloc(count, size);
    if (p && alloc_armed)
        alloc_live++;
    return p;
}

void *realloc(void *ptr, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    void *p = __libc_realloc(ptr, size);
    if (p && !ptr && alloc_armed)
        alloc_live++;
    return p;
}

void free(void *ptr)
{
    if (ptr && alloc_armed)
        alloc_live--;
    __libc_free(ptr);
}

static void alloc_arm(int fail_at)
{
    alloc_fail_at = fail_at;
    alloc_count = 0;
    alloc_live = 0;
    alloc_armed = 1;
}

static void alloc_disarm(void)
{
    alloc_armed = 0;
}

/* False where something else owns malloc (valgrind, a preloaded allocator): the replacements
 * above are then never called, and the tests that need them are skipped. The volatile pointer
 * keeps the compiler from folding the probe away. */
static int alloc_hooks_active(void)
{
    void *(*volatile probe)(size_t) = malloc;
    alloc_arm(0);
    void *p = probe(1);
    alloc_disarm();
    free(p);
    return p == NULL;
}
#endif

static int is_zeroed(const fnn_metrics *m)
{
    fnn_metrics zero;
    memset(&zero, 0, sizeof zero);
    return memcmp(m, &zero, sizeof zero) == 0;
}

static int64_t cm(const fnn_metrics *m, int t, int p)
{
    return m->confusion[t * m->nclasses + p];
}

/* Three classes with supports 5, 3, 2. Confusion (rows true, columns predicted):
 *   [3 2 0]   column sums 4 4 2
 *   [0 2 1]
 *   [1 0 1]
 * class 0: P = 3/4, R = 3/5, F1 = 2*3 / (4 + 5) = 2/3
 * class 1: P = 2/4, R = 2/3, F1 = 2*2 / (4 + 3) = 4/7
 * class 2: P = 1/2, R = 1/2, F1 = 2*1 / (2 + 2) = 1/2
 * accuracy = 6/10
 * macro    P = (3/4 + 1/2 + 1/2) / 3 = 7/12, R = (3/5 + 2/3 + 1/2) / 3 = 53/90,
 *          F1 = (2/3 + 4/7 + 1/2) / 3 = 73/126
 * weighted P = (3/4*5 + 1/2*3 + 1/2*2) / 10 = 5/8, R = (3 + 2 + 1) / 10 = 3/5,
 *          F1 = (2/3*5 + 4/7*3 + 1/2*2) / 10 = 127/210 */
static const uint8_t hand_labels[10] = {0, 0, 0, 0, 0, 1, 1, 1, 2, 2};
static const int hand_pred[10] = {0, 0, 0, 1, 1, 1, 1, 2, 0, 2};

static void test_hand_computed_three_classes(void **state)
{
    (void)state;
    fnn_metrics m;
    fnn_error err = {0};
    assert_int_equal(fnn_metrics_compute(hand_labels, hand_pred, NULL, 10, 3, &m, &err), FNN_OK);
    assert_int_equal(m.nclasses, 3);
    assert_int_equal(m.n, 10);

    static const int64_t expect_cm[3][3] = {{3, 2, 0}, {0, 2, 1}, {1, 0, 1}};
    for (int t = 0; t < 3; t++)
        for (int p = 0; p < 3; p++)
            assert_int_equal(cm(&m, t, p), expect_cm[t][p]);

    assert_int_equal(m.support[0], 5);
    assert_int_equal(m.support[1], 3);
    assert_int_equal(m.support[2], 2);
    assert_float_equal(m.precision[0], 3.0 / 4, TOL);
    assert_float_equal(m.recall[0], 3.0 / 5, TOL);
    assert_float_equal(m.f1[0], 2.0 / 3, TOL);
    assert_float_equal(m.precision[1], 2.0 / 4, TOL);
    assert_float_equal(m.recall[1], 2.0 / 3, TOL);
    assert_float_equal(m.f1[1], 4.0 / 7, TOL);
    assert_float_equal(m.precision[2], 1.0 / 2, TOL);
    assert_float_equal(m.recall[2], 1.0 / 2, TOL);
    assert_float_equal(m.f1[2], 1.0 / 2, TOL);
    assert_float_equal(m.accuracy, 0.6, TOL);

    assert_float_equal(m.macro_precision, 7.0 / 12, TOL);
    assert_float_equal(m.macro_recall, 53.0 / 90, TOL);
    assert_float_equal(m.macro_f1, 73.0 / 126, TOL);
    assert_float_equal(m.weighted_precision, 5.0 / 8, TOL);
    assert_float_equal(m.weighted_recall, 3.0 / 5, TOL);
    assert_float_equal(m.weighted_f1, 127.0 / 210, TOL);
    assert_true(isnan(m.loss)); // no probabilities given

    fnn_metrics_free(&m);
    assert_true(is_zeroed(&m));
    fnn_metrics_free(&m); // freeing twice is harmless once zeroed
    fnn_metrics_free(NULL);
}

/* Equal supports make the two averages equal; unequal supports (above) pull them apart, and the
 * weighted recall is always the accuracy. */
static void test_macro_and_weighted_averages(void **state)
{
    (void)state;
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(hand_labels, hand_pred, NULL, 10, 3, &m, NULL), FNN_OK);
    assert_true(fabs(m.macro_precision - m.weighted_precision) > 0.04);
    assert_true(fabs(m.macro_f1 - m.weighted_f1) > 0.02);
    assert_float_equal(m.weighted_recall, m.accuracy, TOL);
    fnn_metrics_free(&m);

    const uint8_t labels[6] = {0, 1, 2, 2, 1, 0};
    const int pred[6] = {0, 2, 2, 2, 1, 1};
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 6, 3, &m, NULL), FNN_OK);
    assert_float_equal(m.macro_precision, m.weighted_precision, TOL);
    assert_float_equal(m.macro_recall, m.weighted_recall, TOL);
    assert_float_equal(m.macro_f1, m.weighted_f1, TOL);
    fnn_metrics_free(&m);
}

/* Class 2 has support 2 but is never predicted: 0/0 precision is 0, not NaN, and so is F1.
 * Class 1: P = 1/3, R = 1/1, F1 = 2 / (3 + 1) = 1/2. */
static void test_class_never_predicted(void **state)
{
    (void)state;
    const uint8_t labels[4] = {0, 1, 2, 2};
    const int pred[4] = {0, 1, 1, 1};
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 4, 3, &m, NULL), FNN_OK);
    assert_false(isnan(m.precision[2]));
    assert_float_equal(m.precision[2], 0.0, TOL);
    assert_float_equal(m.recall[2], 0.0, TOL);
    assert_float_equal(m.f1[2], 0.0, TOL);
    assert_int_equal(m.support[2], 2);
    assert_float_equal(m.precision[1], 1.0 / 3, TOL);
    assert_float_equal(m.recall[1], 1.0, TOL);
    assert_float_equal(m.f1[1], 0.5, TOL);
    // macro P = (1 + 1/3 + 0) / 3, weighted P = (1*1 + 1/3*1 + 0*2) / 4
    assert_float_equal(m.macro_precision, 4.0 / 9, TOL);
    assert_float_equal(m.weighted_precision, 1.0 / 3, TOL);
    assert_false(isnan(m.macro_f1));
    assert_false(isnan(m.weighted_f1));
    fnn_metrics_free(&m);
}

/* Class 2 is predicted once but never true; class 3 appears nowhere. Both have support 0 and
 * recall 0, and both still count in the macro average (sklearn with labels=range(4)).
 * class 0: P = 2/2, R = 2/2; class 1: P = 1/1, R = 1/2, F1 = 2 / (1 + 2) = 2/3. */
static void test_class_absent_from_labels(void **state)
{
    (void)state;
    const uint8_t labels[4] = {0, 1, 0, 1};
    const int pred[4] = {0, 1, 0, 2};
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 4, 4, &m, NULL), FNN_OK);
    for (int c = 2; c < 4; c++) {
        assert_int_equal(m.support[c], 0);
        assert_float_equal(m.recall[c], 0.0, TOL);
        assert_float_equal(m.precision[c], 0.0, TOL);
        assert_float_equal(m.f1[c], 0.0, TOL);
    }
    assert_int_equal(cm(&m, 1, 2), 1);
    assert_float_equal(m.f1[1], 2.0 / 3, TOL);
    assert_float_equal(m.macro_recall, (1.0 + 0.5) / 4, TOL);
    assert_float_equal(m.macro_f1, (1.0 + 2.0 / 3) / 4, TOL);
    assert_float_equal(m.weighted_f1, (1.0 * 2 + 2.0 / 3 * 2) / 4, TOL);
    assert_float_equal(m.accuracy, 0.75, TOL);
    fnn_metrics_free(&m);
}

static void test_perfect_predictions(void **state)
{
    (void)state;
    const uint8_t labels[7] = {0, 1, 2, 2, 1, 0, 0};
    const int pred[7] = {0, 1, 2, 2, 1, 0, 0};
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 7, 3, &m, NULL), FNN_OK);
    for (int c = 0; c < 3; c++) {
        assert_float_equal(m.precision[c], 1.0, TOL);
        assert_float_equal(m.recall[c], 1.0, TOL);
        assert_float_equal(m.f1[c], 1.0, TOL);
        for (int p = 0; p < 3; p++)
            assert_int_equal(cm(&m, c, p), c == p ? m.support[c] : 0);
    }
    assert_float_equal(m.accuracy, 1.0, TOL);
    assert_float_equal(m.macro_f1, 1.0, TOL);
    assert_float_equal(m.weighted_f1, 1.0, TOL);
    fnn_metrics_free(&m);
}

/* Probabilities that floats hold exactly, so the expected value is exact in double. */
static void test_loss_is_mean_negative_log_of_true_class(void **state)
{
    (void)state;
    const uint8_t labels[3] = {0, 1, 1};
    const int pred[3] = {0, 0, 0};
    const float probs[6] = {0.75f, 0.25f, 0.5f, 0.5f, 0.875f, 0.125f}; // (3, 2)
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, probs, 3, 2, &m, NULL), FNN_OK);
    assert_float_equal(m.loss, -(log(0.75) + log(0.5) + log(0.125)) / 3, TOL);
    fnn_metrics_free(&m);
}

/* Keras clips to [1e-7, 1 - 1e-7]: a zero probability costs -log(1e-7) (about 16.118) rather
 * than infinity, and a probability of one still costs -log(1 - 1e-7). */
static void test_loss_clips_like_keras(void **state)
{
    (void)state;
    const uint8_t labels[2] = {1, 0};
    const int pred[2] = {0, 0};
    const float probs[4] = {1.0f, 0.0f, 1.0f, 0.0f}; // (2, 2)
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, probs, 1, 2, &m, NULL), FNN_OK);
    assert_false(isinf(m.loss));
    assert_float_equal(m.loss, -log(1e-7), TOL);
    fnn_metrics_free(&m);

    assert_int_equal(fnn_metrics_compute(labels + 1, pred, probs + 2, 1, 2, &m, NULL), FNN_OK);
    assert_float_equal(m.loss, -log(1.0 - 1e-7), TOL);
    assert_true(m.loss > 0.0);
    fnn_metrics_free(&m);

    assert_int_equal(fnn_metrics_compute(labels, pred, probs, 2, 2, &m, NULL), FNN_OK);
    assert_float_equal(m.loss, (-log(1e-7) - log(1.0 - 1e-7)) / 2, TOL);
    fnn_metrics_free(&m);
}

static void test_nan_probability_gives_nan_loss(void **state)
{
    (void)state;
    const uint8_t labels[2] = {0, 1};
    const int pred[2] = {0, 1};
    const float probs[4] = {NAN, NAN, 0.5f, 0.5f}; // (2, 2)
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, probs, 2, 2, &m, NULL), FNN_OK);
    assert_true(isnan(m.loss));
    fnn_metrics_free(&m);
}

/* Each rejected call returns FNN_ERR_ARG, names the culprit and leaves out zeroed. */
static void expect_arg_error(const uint8_t *labels, const int *pred, int n, int nclasses,
                             const char *needle)
{
    fnn_metrics m;
    memset(&m, 0xAB, sizeof m); // garbage, to see that a failure still zeroes it
    fnn_error err = {0};
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, n, nclasses, &m, &err), FNN_ERR_ARG);
    assert_int_equal(err.status, FNN_ERR_ARG);
    if (!strstr(err.msg, needle))
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, needle);
    assert_true(is_zeroed(&m));
    fnn_metrics_free(&m);
}

static void test_argument_errors(void **state)
{
    (void)state;
    const uint8_t labels[4] = {0, 1, 2, 1};
    const uint8_t bad_labels[4] = {0, 1, 7, 1};
    const int pred[4] = {0, 1, 2, 2};
    const int pred_high[4] = {0, 1, 2, 3};
    const int pred_neg[4] = {0, -1, 2, 1};

    expect_arg_error(bad_labels, pred, 4, 3, "labels[2] = 7");
    expect_arg_error(labels, pred_high, 4, 3, "pred[3] = 3");
    expect_arg_error(labels, pred_neg, 4, 3, "pred[1] = -1");
    expect_arg_error(labels, pred, 0, 3, "n = 0");
    expect_arg_error(labels, pred, -5, 3, "n = -5");
    expect_arg_error(labels, pred, 4, 1, "nclasses = 1");
    expect_arg_error(labels, pred, 4, FNN_MAX_CLASSES + 1, "nclasses = 257");
    expect_arg_error(NULL, pred, 4, 3, "labels is NULL");
    expect_arg_error(labels, NULL, 4, 3, "pred is NULL");
    // label 2 is in range for 3 classes but not for 2
    expect_arg_error(labels, pred, 4, 2, "labels[2] = 2");

    fnn_error err = {0};
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 4, 3, NULL, &err), FNN_ERR_ARG);
    // a NULL error pointer is allowed
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 0, 3, &m, NULL), FNN_ERR_ARG);
}

static void test_max_classes_accepted(void **state)
{
    (void)state;
    const uint8_t labels[2] = {255, 0};
    const int pred[2] = {255, 1};
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 2, FNN_MAX_CLASSES, &m, NULL),
                     FNN_OK);
    assert_int_equal(cm(&m, 255, 255), 1);
    assert_int_equal(cm(&m, 0, 1), 1);
    assert_float_equal(m.accuracy, 0.5, TOL);
    fnn_metrics_free(&m);
}

/* Compares two multi-line strings line by line so a failure shows the first differing line. */
static void assert_lines_equal(const char *got, const char *want)
{
    assert_non_null(got);
    int line = 1;
    while (*got || *want) {
        size_t gl = strcspn(got, "\n"), wl = strcspn(want, "\n");
        if (gl != wl || memcmp(got, want, gl) != 0)
            fail_msg("line %d differs:\n got: \"%.*s\"\nwant: \"%.*s\"", line, (int)gl, got,
                     (int)wl, want);
        if ((got[gl] == '\n') != (want[wl] == '\n'))
            fail_msg("line %d: newline at end differs", line);
        got += gl + (got[gl] == '\n');
        want += wl + (want[wl] == '\n');
        line++;
    }
}

/* sklearn.metrics.classification_report([0,1,2,2,1,0], [0,2,2,2,1,1],
 *                                       target_names=["a","b","c"], digits=2)
 * a: P 1/1 R 1/2; b: P 1/2 R 1/2; c: P 2/3 R 2/2; accuracy 4/6. */
static void test_report_matches_sklearn(void **state)
{
    (void)state;
    const uint8_t labels[6] = {0, 1, 2, 2, 1, 0};
    const int pred[6] = {0, 2, 2, 2, 1, 1};
    const char *const names[3] = {"a", "b", "c"};
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 6, 3, &m, NULL), FNN_OK);
    char *report = fnn_format_report(&m, names, 2);
    const char *want =
        "              precision    recall  f1-score   support\n"
        "\n"
        "           a       1.00      0.50      0.67         2\n"
        "           b       0.50      0.50      0.50         2\n"
        "           c       0.67      1.00      0.80         2\n"
        "\n"
        "    accuracy                           0.67         6\n"
        "   macro avg       0.72      0.67      0.66         6\n"
        "weighted avg       0.72      0.67      0.66         6\n";
    assert_lines_equal(report, want);
    assert_string_equal(report, want);
    free(report);
    fnn_metrics_free(&m);
}

/* The example in sklearn's classification_report docstring, printed there verbatim:
 * y_true = [0, 1, 2, 2, 2], y_pred = [0, 0, 2, 2, 1], names "class 0".."class 2". */
static void test_report_matches_sklearn_docstring(void **state)
{
    (void)state;
    const uint8_t labels[5] = {0, 1, 2, 2, 2};
    const int pred[5] = {0, 0, 2, 2, 1};
    const char *const names[3] = {"class 0", "class 1", "class 2"};
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 5, 3, &m, NULL), FNN_OK);
    char *report = fnn_format_report(&m, names, 2);
    assert_lines_equal(report,
                       "              precision    recall  f1-score   support\n"
                       "\n"
                       "     class 0       0.50      1.00      0.67         1\n"
                       "     class 1       0.00      0.00      0.00         1\n"
                       "     class 2       1.00      0.67      0.80         3\n"
                       "\n"
                       "    accuracy                           0.60         5\n"
                       "   macro avg       0.50      0.56      0.49         5\n"
                       "weighted avg       0.70      0.60      0.61         5\n");
    free(report);
    fnn_metrics_free(&m);
}

/* Without names the index is the name; a name longer than "weighted avg" widens the first column
 * for every row; digits=4 widens nothing because 9 columns still hold "0.6667". */
static void test_report_names_and_digits(void **state)
{
    (void)state;
    const uint8_t labels[6] = {0, 1, 2, 2, 1, 0};
    const int pred[6] = {0, 2, 2, 2, 1, 1};
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, 6, 3, &m, NULL), FNN_OK);

    char *report = fnn_format_report(&m, NULL, 4);
    assert_lines_equal(report,
                       "              precision    recall  f1-score   support\n"
                       "\n"
                       "           0     1.0000    0.5000    0.6667         2\n"
                       "           1     0.5000    0.5000    0.5000         2\n"
                       "           2     0.6667    1.0000    0.8000         2\n"
                       "\n"
                       "    accuracy                         0.6667         6\n"
                       "   macro avg     0.7222    0.6667    0.6556         6\n"
                       "weighted avg     0.7222    0.6667    0.6556         6\n");
    free(report);

    const char *const names[3] = {"Ankle boot, long", "b", "c"};
    report = fnn_format_report(&m, names, 2);
    assert_lines_equal(report,
                       "                  precision    recall  f1-score   support\n"
                       "\n"
                       "Ankle boot, long       1.00      0.50      0.67         2\n"
                       "               b       0.50      0.50      0.50         2\n"
                       "               c       0.67      1.00      0.80         2\n"
                       "\n"
                       "        accuracy                           0.67         6\n"
                       "       macro avg       0.72      0.67      0.66         6\n"
                       "    weighted avg       0.72      0.67      0.66         6\n");
    free(report);

    // sklearn's width = max(longest name, len("weighted avg"), digits) lets digits=14 widen it
    report = fnn_format_report(&m, NULL, 14);
    assert_non_null(report);
    const char *head = "                precision    recall  f1-score   support\n\n";
    assert_memory_equal(report, head, strlen(head));
    assert_non_null(strstr(report, "\n             0  1.00000000000000 0.50000000000000"
                                   " 0.66666666666667         2\n"));
    assert_non_null(strstr(report, "\n  weighted avg  0.72222222222222"));
    free(report);

    assert_null(fnn_format_report(&m, NULL, -1));
    assert_null(fnn_format_report(NULL, NULL, 2));
    fnn_metrics_free(&m);
}

static void test_confusion_table(void **state)
{
    (void)state;
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(hand_labels, hand_pred, NULL, 10, 3, &m, NULL), FNN_OK);
    const char *const names[3] = {"T-shirt/top", "Trouser", "Bag"};
    char *table = fnn_format_confusion(&m, names);
    assert_lines_equal(table,
                       "rows: true class, columns: predicted class\n"
                       "              |  0  1  2\n"
                       "--------------+---------\n"
                       "T-shirt/top 0 |  3  2  0\n"
                       "Trouser     1 |  0  2  1\n"
                       "Bag         2 |  1  0  1\n");
    free(table);

    table = fnn_format_confusion(&m, NULL);
    assert_lines_equal(table,
                       "rows: true class, columns: predicted class\n"
                       "  |  0  1  2\n"
                       "--+---------\n"
                       "0 |  3  2  0\n"
                       "1 |  0  2  1\n"
                       "2 |  1  0  1\n");
    free(table);
    assert_null(fnn_format_confusion(NULL, names));
    fnn_metrics_free(&m);
}

/* A Fashion-MNIST-sized table: ten classes with four-digit counts stay under 100 columns, and
 * every name and count appears. */
static void test_confusion_ten_classes_fits(void **state)
{
    (void)state;
    enum { K = 10, PER = 1003 };
    static uint8_t labels[K * PER];
    static int pred[K * PER];
    for (int i = 0; i < K * PER; i++) {
        labels[i] = (uint8_t)(i / PER);
        pred[i] = (i % PER) < 3 ? (labels[i] + 1) % K : labels[i]; // 3 misses per class
    }
    const char *const names[K] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(labels, pred, NULL, K * PER, K, &m, NULL), FNN_OK);
    char *table = fnn_format_confusion(&m, names);
    assert_non_null(table);
    for (int c = 0; c < K; c++)
        assert_non_null(strstr(table, names[c]));
    assert_non_null(strstr(table, "T-shirt/top 0 |  1000     3     0"));
    assert_non_null(strstr(table, "Ankle boot  9 |     3     0"));
    int lines = 0;
    for (const char *line = table; *line; lines++) {
        size_t len = strcspn(line, "\n");
        assert_true(len <= 100);
        line += len + (line[len] == '\n');
    }
    assert_int_equal(lines, 3 + K);
    free(table);
    fnn_metrics_free(&m);
}

#ifdef FNN_TEST_ALLOC_FAILURES
/* Fails the first, second, ... allocation in turn until the call succeeds: each failure must
 * be reported, leak nothing and leave out zeroed. */
static void test_metrics_allocation_failures(void **state)
{
    (void)state;
    if (!alloc_hooks_active())
        skip();
    int failures = 0;
    for (int at = 0; at < 64; at++) {
        fnn_metrics m;
        fnn_error err = {0};
        alloc_arm(at);
        fnn_status s = fnn_metrics_compute(hand_labels, hand_pred, NULL, 10, 3, &m, &err);
        alloc_disarm();
        if (s == FNN_OK) {
            fnn_metrics_free(&m);
            break;
        }
        assert_int_equal(s, FNN_ERR_NOMEM);
        assert_int_equal(err.status, FNN_ERR_NOMEM);
        assert_int_equal(alloc_live, 0);
        assert_true(is_zeroed(&m));
        failures++;
    }
    assert_true(failures >= 5); // one per array
}

static void test_format_allocation_failures(void **state)
{
    (void)state;
    if (!alloc_hooks_active())
        skip();
    fnn_metrics m;
    assert_int_equal(fnn_metrics_compute(hand_labels, hand_pred, NULL, 10, 3, &m, NULL), FNN_OK);
    for (int which = 0; which < 2; which++) {
        int failures = 0;
        for (int at = 0; at < 64; at++) {
            alloc_arm(at);
            char *s = which ? fnn_format_confusion(&m, NULL) : fnn_format_report(&m, NULL, 2);
            alloc_disarm();
            if (s) {
                free(s);
                break;
            }
            assert_int_equal(alloc_live, 0);
            failures++;
        }
        assert_true(failures >= 1);
    }
    fnn_metrics_free(&m);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed_three_classes),
        cmocka_unit_test(test_macro_and_weighted_averages),
        cmocka_unit_test(test_class_never_predicted),
        cmocka_unit_test(test_class_absent_from_labels),
        cmocka_unit_test(test_perfect_predictions),
        cmocka_unit_test(test_loss_is_mean_negative_log_of_true_class),
        cmocka_unit_test(test_loss_clips_like_keras),
        cmocka_unit_test(test_nan_probability_gives_nan_loss),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_max_classes_accepted),
        cmocka_unit_test(test_report_matches_sklearn),
        cmocka_unit_test(test_report_matches_sklearn_docstring),
        cmocka_unit_test(test_report_names_and_digits),
        cmocka_unit_test(test_confusion_table),
        cmocka_unit_test(test_confusion_ten_classes_fits),
#ifdef FNN_TEST_ALLOC_FAILURES
        cmocka_unit_test(test_metrics_allocation_failures),
        cmocka_unit_test(test_format_allocation_failures),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
