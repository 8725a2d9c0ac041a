/* Classification metrics from labels and predictions: confusion matrix, accuracy, cross-entropy
 * and scikit-learn's per-class and averaged precision, recall and F1 (zero_division=0). */
#include "util/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Keras's backend.epsilon(): probabilities are clipped to [eps, 1 - eps] before the log, so a
 * confident wrong answer costs -log(1e-7) instead of infinity and the loss matches Keras's. */
#define FNN_PROB_EPS 1e-7

/* scikit-learn's zero_division=0: a ratio with an empty denominator counts as 0, not NaN. */
static double ratio_or_zero(double num, double den)
{
    return den > 0 ? num / den : 0.0;
}

static fnn_status check_inputs(const uint8_t *labels, const int *pred, int n, int nclasses,
                               fnn_error *err)
{
    if (n <= 0)
        return fnn_fail(err, FNN_ERR_ARG, "metrics: n = %d, need at least one sample", n);
    if (nclasses < 2 || nclasses > FNN_MAX_CLASSES)
        return fnn_fail(err, FNN_ERR_ARG, "metrics: nclasses = %d is outside [2, %d]", nclasses,
                        FNN_MAX_CLASSES);
    if (!labels || !pred)
        return fnn_fail(err, FNN_ERR_ARG, "metrics: %s is NULL", labels ? "pred" : "labels");
    for (int i = 0; i < n; i++) {
        if (labels[i] >= nclasses)
            return fnn_fail(err, FNN_ERR_ARG, "metrics: labels[%d] = %d is outside [0, %d)", i,
                            labels[i], nclasses);
        if (pred[i] < 0 || pred[i] >= nclasses)
            return fnn_fail(err, FNN_ERR_ARG, "metrics: pred[%d] = %d is outside [0, %d)", i,
                            pred[i], nclasses);
    }
    return FNN_OK;
}

/* Mean of -log(clip(p_true)) in double. A NaN probability is not clipped away: it makes the
 * loss NaN, so a numerically broken model cannot report a finite loss. */
static double mean_cross_entropy(const uint8_t *labels, const float *probs, int n, int nclasses)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double p = probs[(size_t)i * nclasses + labels[i]]; // probs is (n, nclasses)
        if (p < FNN_PROB_EPS)
            p = FNN_PROB_EPS;
        else if (p > 1.0 - FNN_PROB_EPS)
            p = 1.0 - FNN_PROB_EPS;
        sum -= log(p);
    }
    return sum / n;
}

fnn_status fnn_metrics_compute(const uint8_t *labels, const int *pred, const float *probs, int n,
                               int nclasses, fnn_metrics *out, fnn_error *err)
{
    if (!out)
        return fnn_fail(err, FNN_ERR_ARG, "metrics: out is NULL");
    memset(out, 0, sizeof *out);
    fnn_status s = check_inputs(labels, pred, n, nclasses, err);
    if (s != FNN_OK)
        return s;

    /* Each array is its own allocation so that fnn_metrics_free stays correct for a struct that
     * a caller assembled by hand (e.g. read back from a report file). */
    size_t k = (size_t)nclasses;
    fnn_metrics m = {0};
    m.nclasses = nclasses;
    m.n = n;
    m.confusion = calloc(k * k, sizeof *m.confusion); // (nclasses, nclasses)
    m.support = calloc(k, sizeof *m.support);         // (nclasses)
    m.precision = malloc(k * sizeof *m.precision);    // (nclasses)
    m.recall = malloc(k * sizeof *m.recall);          // (nclasses)
    m.f1 = malloc(k * sizeof *m.f1);                  // (nclasses)
    if (!m.confusion || !m.support || !m.precision || !m.recall || !m.f1) {
        fnn_metrics_free(&m);
        return fnn_fail(err, FNN_ERR_NOMEM, "metrics: out of memory for %d classes", nclasses);
    }

    for (int i = 0; i < n; i++)
        m.confusion[(size_t)labels[i] * k + (size_t)pred[i]]++;

    int64_t correct = 0;
    for (size_t c = 0; c < k; c++) {
        int64_t tp = m.confusion[c * k + c];
        int64_t predicted = 0, actual = 0;
        for (size_t j = 0; j < k; j++) {
            predicted += m.confusion[j * k + c];
            actual += m.confusion[c * k + j];
        }
        correct += tp;
        m.support[c] = actual;
        m.precision[c] = ratio_or_zero((double)tp, (double)predicted);
        m.recall[c] = ratio_or_zero((double)tp, (double)actual);
        /* 2tp / (2tp + fp + fn), the form scikit-learn >= 1.3 uses; equal to the harmonic mean
         * of precision and recall whenever both are defined. */
        m.f1[c] = ratio_or_zero(2.0 * (double)tp, (double)(predicted + actual));

        m.macro_precision += m.precision[c];
        m.macro_recall += m.recall[c];
        m.macro_f1 += m.f1[c];
        m.weighted_precision += m.precision[c] * (double)actual;
        m.weighted_recall += m.recall[c] * (double)actual;
        m.weighted_f1 += m.f1[c] * (double)actual;
    }
    /* Every class in [0, nclasses) counts in the macro average, as scikit-learn does when given
     * labels=range(nclasses); total support is n because every label is in range. */
    m.macro_precision /= nclasses;
    m.macro_recall /= nclasses;
    m.macro_f1 /= nclasses;
    m.weighted_precision /= n;
    m.weighted_recall /= n;
    m.weighted_f1 /= n;
    m.accuracy = (double)correct / n;
    m.loss = probs ? mean_cross_entropy(labels, probs, n, nclasses) : NAN;

    *out = m;
    return FNN_OK;
}

void fnn_metrics_free(fnn_metrics *mt)
{
    if (!mt)
        return;
    free(mt->confusion);
    free(mt->support);
    free(mt->precision);
    free(mt->recall);
    free(mt->f1);
    memset(mt, 0, sizeof *mt);
}
