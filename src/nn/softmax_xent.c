/* Softmax fused with sparse categorical cross-entropy, optionally label-smoothed. The fused
 * gradient with respect to the logits is (softmax - target) / n, which is exact and avoids
 * dividing by small probabilities. */
#include "nn/layer.h"

#include <math.h>

/* Keras clips probabilities to [eps, 1 - eps] before the log; the same bound keeps a confident
 * mistake's loss finite. */
#define XENT_EPS 1e-7

void fnn_softmax_rows(const float *x, int k, size_t lo, size_t hi, float *p)
{
    for (size_t r = lo; r < hi; r++) {
        const float *row = x + r * k;
        float *out = p + r * k;
        float mx = row[0];
        for (int j = 1; j < k; j++)
            mx = fmaxf(mx, row[j]);
        float sum = 0.0f;
        for (int j = 0; j < k; j++) {
            out[j] = expf(row[j] - mx);
            sum += out[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < k; j++)
            out[j] *= inv;
    }
}

void fnn_softmax_xent(const float *logits, const uint8_t *labels, int n, int k, float smoothing,
                      size_t lo, size_t hi, float *dlogits, double *loss_sum, int *correct)
{
    double loss = 0.0;
    int hits = 0;
    float inv_n = 1.0f / (float)n;
    /* Targets (1 - s) onehot + s / k, as Keras's and PyTorch's label_smoothing. */
    float keep = 1.0f - smoothing, spread = smoothing / (float)k;
    for (size_t r = lo; r < hi; r++) {
        const float *row = logits + r * k;
        float *d = dlogits + r * k;
        int y = labels[r], best = 0;
        float mx = row[0];
        for (int j = 1; j < k; j++) {
            if (row[j] > mx) {
                mx = row[j];
                best = j;
            }
        }
        float sum = 0.0f;
        for (int j = 0; j < k; j++) {
            d[j] = expf(row[j] - mx);
            sum += d[j];
        }
        float inv = 1.0f / sum;
        hits += best == y;
        /* smoothing == 0 keeps the plain path so unsmoothed runs stay bit-exact. */
        if (smoothing == 0.0f) {
            double py = (double)(d[y] * inv);
            loss -= log(py < XENT_EPS ? XENT_EPS : py);
            for (int j = 0; j < k; j++)
                d[j] = (d[j] * inv - (j == y)) * inv_n;
            continue;
        }
        for (int j = 0; j < k; j++) {
            double pj = (double)(d[j] * inv);
            float q = (j == y ? keep : 0.0f) + spread;
            loss -= (double)q * log(pj < XENT_EPS ? XENT_EPS : pj);
            d[j] = (d[j] * inv - q) * inv_n;
        }
    }
    *loss_sum = loss;
    *correct = hits;
}
