/* Test-time augmentation: each image is also run mirrored left to right, and the two class
 * distributions are averaged, for prediction as for evaluation (fnn_infer). */
#include "eval/eval.h"
#include "model/model.h"
#include "util/error.h"
#include "util/team.h"

#include <stdlib.h>

void fnn_tta_flip_rows(float *x, int n, int c, int h, int w)
{
    size_t lo, hi;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        float *img = x + r * (size_t)c * h * w;
        for (int line = 0; line < c * h; line++) {
            float *p = img + (size_t)line * w;
            for (int j = 0; j < w / 2; j++) {
                float t = p[j];
                p[j] = p[w - 1 - j];
                p[w - 1 - j] = t;
            }
        }
    }
}

void fnn_tta_average_rows(float *probs, const float *view, int n, size_t k)
{
    size_t lo, hi;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    for (size_t i = lo * k; i < hi * k; i++)
        probs[i] = 0.5f * (probs[i] + view[i]);
}

fnn_status fnn_model_predict_with(const fnn_model *m, const float *x, int n,
                                  const fnn_eval_options *o, float *probs, fnn_error *err)
{
    if (o->tta == FNN_TTA_NONE)
        return fnn_model_predict(m, x, n, probs, o->threads, err);
    if (o->tta != FNN_TTA_FLIP)
        return fnn_fail(err, FNN_ERR_ARG, "predict: unknown test-time augmentation %d",
                        (int)o->tta);
    if (n <= 0)
        return fnn_model_predict(m, x, n, probs, o->threads, err);
    size_t in = fnn_shape_size(m->input), k = (size_t)m->nclasses;
    float *mirror = malloc((size_t)n * in * sizeof *mirror); /* (n, c, h, w) */
    float *view = malloc((size_t)n * k * sizeof *view);      /* (n, k) */
    fnn_status s = FNN_OK;
    if (!mirror || !view)
        s = fnn_fail(err, FNN_ERR_NOMEM, "predict: out of memory for the mirrored images");
    if (s == FNN_OK)
        s = fnn_model_predict(m, x, n, probs, o->threads, err);
    if (s == FNN_OK) {
        for (size_t i = 0; i < (size_t)n * in; i++)
            mirror[i] = x[i];
        /* Outside a team: one thread takes every row. */
        fnn_tta_flip_rows(mirror, n, m->input.c, m->input.h, m->input.w);
        s = fnn_model_predict(m, mirror, n, view, o->threads, err);
    }
    if (s == FNN_OK)
        fnn_tta_average_rows(probs, view, n, k);
    free(mirror);
    free(view);
    return s;
}
