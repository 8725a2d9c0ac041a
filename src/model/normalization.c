/* The model's per-channel input normalisation (Keras's Normalization layer, adapted on the
 * training split): the scaled pixels become (x - mean) / std before the first layer. */
#include "model/model.h"
#include "util/error.h"
#include "util/team.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fnn_status fnn_model_set_normalization(fnn_model *m, const float *mean, const float *std,
                                       fnn_error *err)
{
    int c = m->input.c;
    if (!mean != !std)
        return fnn_fail(err, FNN_ERR_ARG,
                        "normalization: mean and std are both given or both NULL");
    if (!mean) {
        m->normalized = 0;
        return FNN_OK;
    }
    for (int ch = 0; ch < c; ch++) {
        if (!isfinite(mean[ch]))
            return fnn_fail(err, FNN_ERR_ARG, "normalization: mean of channel %d is %g", ch,
                            (double)mean[ch]);
        if (!(std[ch] > 0.0f) || !isfinite(std[ch]))
            return fnn_fail(err, FNN_ERR_ARG,
                            "normalization: std of channel %d is %g; it must be finite and > 0",
                            ch, (double)std[ch]);
    }
    if (!m->norm_mean) {
        m->norm_mean = malloc((size_t)c * sizeof *m->norm_mean);
        m->norm_std = malloc((size_t)c * sizeof *m->norm_std);
        if (!m->norm_mean || !m->norm_std) {
            free(m->norm_mean);
            free(m->norm_std);
            m->norm_mean = m->norm_std = NULL;
            return fnn_fail(err, FNN_ERR_NOMEM, "normalization: out of memory");
        }
    }
    memcpy(m->norm_mean, mean, (size_t)c * sizeof *mean);
    memcpy(m->norm_std, std, (size_t)c * sizeof *std);
    m->normalized = 1;
    return FNN_OK;
}

int fnn_model_normalization(const fnn_model *m, float *mean, float *std)
{
    for (int ch = 0; ch < m->input.c; ch++) {
        if (mean)
            mean[ch] = m->normalized ? m->norm_mean[ch] : 0.0f;
        if (std)
            std[ch] = m->normalized ? m->norm_std[ch] : 1.0f;
    }
    return m->normalized;
}

void fnn_model_normalize_rows(const fnn_model *m, const float *x, int n, float *out)
{
    size_t plane = (size_t)m->input.h * m->input.w, in = (size_t)m->input.c * plane, lo, hi;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    for (size_t r = lo; r < hi; r++)
        for (int ch = 0; ch < m->input.c; ch++) {
            const float *src = x + r * in + (size_t)ch * plane;
            float *dst = out + r * in + (size_t)ch * plane;
            float mu = m->norm_mean[ch], sd = m->norm_std[ch];
            /* A division, not a product with 1 / std: the ONNX export's Div and PyTorch's
             * Normalize give the same floats. */
            for (size_t i = 0; i < plane; i++)
                dst[i] = (src[i] - mu) / sd;
        }
}

void fnn_model_normalize_grad_rows(const fnn_model *m, float *dx, int n)
{
    size_t plane = (size_t)m->input.h * m->input.w, in = (size_t)m->input.c * plane, lo, hi;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    for (size_t r = lo; r < hi; r++)
        for (int ch = 0; ch < m->input.c; ch++) {
            float *g = dx + r * in + (size_t)ch * plane, sd = m->norm_std[ch];
            for (size_t i = 0; i < plane; i++)
                g[i] /= sd;
        }
}
