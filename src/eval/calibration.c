/* Calibration: how far the model's top-1 probability is from its accuracy, in equal-width
 * confidence bins (the reliability diagram) and as the expected calibration error. */
#include "fnn.h"
#include "util/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fnn_status fnn_calibration_compute(const uint8_t *labels, const float *probs, int n,
                                   int nclasses, int nbins, fnn_calibration *out, fnn_error *err)
{
    memset(out, 0, sizeof *out);
    if (n <= 0 || nclasses < 1 || nbins < 1)
        return fnn_fail(err, FNN_ERR_ARG,
                        "calibration: need images (%d), classes (%d) and bins (%d) above zero",
                        n, nclasses, nbins);
    for (int i = 0; i < n; i++)
        if (labels[i] >= nclasses)
            return fnn_fail(err, FNN_ERR_ARG, "calibration: image %d has label %d of %d classes",
                            i, labels[i], nclasses);
    out->nbins = nbins;
    out->confidence = calloc((size_t)nbins, sizeof *out->confidence);
    out->accuracy = calloc((size_t)nbins, sizeof *out->accuracy);
    out->count = calloc((size_t)nbins, sizeof *out->count);
    if (!out->confidence || !out->accuracy || !out->count) {
        fnn_calibration_free(out);
        return fnn_fail(err, FNN_ERR_NOMEM, "calibration: out of memory");
    }
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * nclasses;
        int top = 0;
        for (int j = 1; j < nclasses; j++)
            if (p[j] > p[top])
                top = j;
        if (!isfinite(p[top])) {
            fnn_calibration_free(out);
            return fnn_fail(err, FNN_ERR_NUMERIC, "calibration: image %d has a probability of %g",
                            i, (double)p[top]);
        }
        /* Bin b holds confidences in (b / nbins, (b + 1) / nbins]; 0 goes to the first. */
        int b = (int)ceil((double)p[top] * nbins) - 1;
        b = b < 0 ? 0 : b >= nbins ? nbins - 1 : b;
        out->confidence[b] += p[top];
        out->accuracy[b] += top == labels[i];
        out->count[b]++;
    }
    for (int b = 0; b < nbins; b++) {
        if (!out->count[b])
            continue;
        out->confidence[b] /= (double)out->count[b];
        out->accuracy[b] /= (double)out->count[b];
        out->ece += (double)out->count[b] / n * fabs(out->accuracy[b] - out->confidence[b]);
    }
    return FNN_OK;
}

void fnn_calibration_free(fnn_calibration *c)
{
    free(c->confidence);
    free(c->accuracy);
    free(c->count);
    memset(c, 0, sizeof *c);
}
