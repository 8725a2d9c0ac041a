/* Running a model over a data set: probabilities, predictions and metrics. */
#include "data/batch.h"
#include "eval/eval.h"
#include "model/exec.h"
#include "model/model.h"
#include "util/error.h"
#include "util/gemm.h"
#include "util/team.h"

#include <math.h>
#include <stdlib.h>

fnn_status fnn_check_data(const fnn_model *m, const fnn_dataset *d, const char *what,
                          fnn_error *err)
{
    if (m->input.c != d->c || m->input.h != d->h || m->input.w != d->w)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s data: images are %dx%dx%d but the model expects %dx%dx%d", what,
                        d->c, d->h, d->w, m->input.c, m->input.h, m->input.w);
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] >= m->nclasses)
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s data%s%s%s: image %d has label %d but the model has %d classes "
                            "(0..%d)", what, d->labels_path[0] ? " (" : "", d->labels_path,
                            d->labels_path[0] ? ")" : "", i, d->labels[i], m->nclasses,
                            m->nclasses - 1);
    return FNN_OK;
}

fnn_status fnn_infer(const fnn_model *m, const fnn_dataset *d, int threads, fnn_tta tta,
                     float *probs,
                     fnn_error *err)
{
    if ((unsigned)tta > FNN_TTA_FLIP)
        return fnn_fail(err, FNN_ERR_ARG, "evaluation: unknown test-time augmentation %d",
                        (int)tta);
    fnn_status s = fnn_check_data(m, d, "evaluation", err);
    if (s != FNN_OK)
        return s;
    if (d->n == 0)
        return FNN_OK;
    int cap = d->n < FNN_EVAL_BATCH ? d->n : FNN_EVAL_BATCH, nt = fnn_threads_resolve(threads);
    fnn_exec *e;
    if ((s = fnn_exec_create(m, cap, nt, NULL, &e, err)) != FNN_OK)
        return s;
    size_t in = fnn_shape_size(m->input), k = (size_t)m->nclasses;
    float *x = malloc((size_t)cap * in * sizeof *x); /* (cap, in) */
    float *view = tta ? malloc((size_t)cap * k * sizeof *view) : NULL; /* (cap, k) the mirror's */
    if (!x || (tta && !view)) {
        fnn_exec_free(e);
        free(x);
        free(view);
        return fnn_fail(err, FNN_ERR_NOMEM, "evaluation: out of memory");
    }
    fnn_blas_single_threaded();
    fnn_barrier team;
    fnn_pass pass = {.train = 0, .sync = &team};
#pragma omp parallel num_threads(nt)
    {
        fnn_team_begin(&team);
        for (int start = 0; start < d->n; start += cap) {
            int rows = d->n - start < cap ? d->n - start : cap;
            fnn_batch_fill(d, NULL, start, rows, x, NULL);
            fnn_team_sync(&team);
            const float *logits = fnn_exec_forward(e, &pass, x, rows);
            size_t lo, hi;
            fnn_team_range((size_t)rows, 1, &lo, &hi);
            fnn_softmax_rows(logits, (int)k, lo, hi, probs + (size_t)start * k);
            if (tta == FNN_TTA_FLIP) {
                /* Every thread is past the first layer, so x is free to change. */
                fnn_tta_flip_rows(x, rows, d->c, d->h, d->w);
                fnn_team_sync(&team);
                logits = fnn_exec_forward(e, &pass, x, rows);
                fnn_softmax_rows(logits, (int)k, lo, hi, view);
                fnn_tta_average_rows(probs + (size_t)start * k, view, rows, k);
            }
            fnn_team_sync(&team);
        }
        fnn_team_end(&team);
    }
    free(x);
    fnn_exec_free(e);
    free(view);
    if ((s = fnn_gemm_check(&team, "evaluation", err)) != FNN_OK)
        return s;
    return fnn_check_probs(probs, d->n, k, "evaluation", err);
}

static int argmax(const float *p, int k)
{
    int best = 0;
    for (int j = 1; j < k; j++)
        if (p[j] > p[best])
            best = j;
    return best;
}

void fnn_loss_accuracy(const float *probs, const uint8_t *labels, int n, int k, double *loss,
                       double *accuracy)
{
    double sum = 0.0;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k;
        double py = p[labels[i]];
        sum -= log(py < 1e-7 ? 1e-7 : py);
        hits += argmax(p, k) == labels[i];
    }
    *loss = n ? sum / n : NAN;
    *accuracy = n ? (double)hits / n : NAN;
}

fnn_status fnn_evaluate(const fnn_model *m, const fnn_dataset *d, int threads, int *pred,
                        float *probs, fnn_metrics *out, fnn_error *err)
{
    fnn_eval_options o = {.threads = threads, .tta = FNN_TTA_NONE};
    return fnn_evaluate_with(m, d, &o, pred, probs, out, err);
}

fnn_status fnn_evaluate_with(const fnn_model *m, const fnn_dataset *d,
                             const fnn_eval_options *o, int *pred, float *probs,
                             fnn_metrics *out, fnn_error *err)
{
    int k = m->nclasses;
    if (d->n <= 0)
        return fnn_fail(err, FNN_ERR_ARG, "evaluation: the data set is empty");
    float *p = probs ? probs : malloc((size_t)d->n * k * sizeof *p);
    int *y = pred ? pred : malloc((size_t)d->n * sizeof *y);
    fnn_status s = FNN_OK;
    if (!p || !y)
        s = fnn_fail(err, FNN_ERR_NOMEM, "evaluation: out of memory for %d images", d->n);
    if (s == FNN_OK)
        s = fnn_infer(m, d, o->threads, o->tta, p, err);
    if (s == FNN_OK) {
        for (int i = 0; i < d->n; i++)
            y[i] = argmax(p + (size_t)i * k, k);
        if (out)
            s = fnn_metrics_compute(d->labels, y, p, d->n, k, out, err);
    }
    if (p != probs)
        free(p);
    if (y != pred)
        free(y);
    return s;
}
