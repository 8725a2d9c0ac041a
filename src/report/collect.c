/* Measuring one model for the report: test metrics, saliency and occlusion maps, robustness
 * curves and calibration, plus the class names and history stored in the model file. */
#define _POSIX_C_SOURCE 200809L

#include "report/report.h"
#include "util/error.h"
#include "util/text.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fnn_report_model_free(fnn_report_model *r)
{
    free(r->path);
    free(r->stem);
    free(r->arch);
    if (r->names)
        for (int i = 0; i < r->k; i++)
            free(r->names[i]);
    free(r->names);
    free(r->epoch);
    free(r->train_loss);
    free(r->train_acc);
    free(r->val_loss);
    free(r->val_acc);
    fnn_metrics_free(&r->mt);
    free(r->probs);
    free(r->pred);
    for (int i = 0; i < 3; i++)
        free(r->saliency[i]);
    free(r->mean_image);
    free(r->occlusion);
    for (int p = 0; p < FNN_PERTURB_COUNT; p++)
        free(r->robust[p]);
    if (r->cal.nbins)
        fnn_calibration_free(&r->cal);
    memset(r, 0, sizeof *r);
}

/* The stored class names, or "0", "1", ... when the file has none that fit. */
static fnn_status read_names(fnn_report_model *r, const char *json, fnn_error *err)
{
    r->names = fnn_class_names(json, r->k);
    return r->names ? FNN_OK : fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for class names",
                                        r->path);
}

/* The largest epoch number a history may hold: anything above is not a count of epochs. */
#define MAX_EPOCH 1000000000

/* The per-epoch history; a model saved without one keeps epochs = 0. Every list is walked once
 * through its links: cJSON_GetArrayItem walks from the start each time. Epochs are integers in
 * 1..MAX_EPOCH, the metrics finite numbers or null (not measured). */
static fnn_status read_history(fnn_report_model *r, const char *json, fnn_error *err)
{
    if (!json)
        return FNN_OK;
    cJSON *h = cJSON_Parse(json);
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: the stored training history is not a JSON object",
                        r->path);
    }
    static const char *keys[] = {"epoch", "train_loss", "train_accuracy", "val_loss",
                                 "val_accuracy"};
    double **dst[] = {&r->epoch, &r->train_loss, &r->train_acc, &r->val_loss, &r->val_acc};
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(h, "epoch"));
    fnn_status s = FNN_OK;
    for (int k = 0; k < 5 && s == FNN_OK; k++) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(h, keys[k]);
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
            s = fnn_fail(err, FNN_ERR_FORMAT,
                         "%s: training history: \"%s\" should be a list of %d numbers", r->path,
                         keys[k], n);
            break;
        }
        if (!(*dst[k] = malloc((size_t)(n ? n : 1) * sizeof **dst[k]))) {
            s = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for the history", r->path);
            break;
        }
        int i = 0;
        for (const cJSON *v = a->child; v && s == FNN_OK; v = v->next, i++) {
            double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
            if (k == 0 && !(x >= 1 && x <= MAX_EPOCH && x == floor(x)))
                s = fnn_fail(err, FNN_ERR_FORMAT, "%s: training history: \"epoch\" item %d "
                             "should be an epoch number in 1..%d", r->path, i, MAX_EPOCH);
            else if (k > 0 && !cJSON_IsNull(v) && !isfinite(x))
                s = fnn_fail(err, FNN_ERR_FORMAT, "%s: training history: \"%s\" item %d should "
                             "be a finite number or null", r->path, keys[k], i);
            else
                (*dst[k])[i] = x;
        }
    }
    if (s == FNN_OK)
        r->epochs = n;
    cJSON_Delete(h);
    return s;
}

/* The longest file stem kept in figure names: with a "_N" suffix for a second model of the
 * same stem and the longest figure name it stays within fnn_report_figure's name. */
#define MAX_STEM 24

static char *file_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strcspn(base, ".");
    if (len > MAX_STEM)
        len = MAX_STEM;
    char *stem = malloc(len + 2);
    if (!stem)
        return NULL;
    for (size_t i = 0; i < len; i++) /* safe in a file name and an HTML attribute */
        stem[i] = (base[i] >= 'a' && base[i] <= 'z') || (base[i] >= 'A' && base[i] <= 'Z') ||
                          (base[i] >= '0' && base[i] <= '9') || base[i] == '-'
                      ? base[i]
                      : '_';
    if (!len)
        stem[len++] = 'm';
    stem[len] = '\0';
    return stem;
}

static void step(const fnn_report_options *o, const char *what, int *done)
{
    if (o->progress)
        o->progress(o->user, what, (*done)++, FNN_REPORT_STEPS);
}

/* Each class's mean test image, and the mean top-1 probability. */
static fnn_status per_class_means(fnn_report_model *r, fnn_error *err)
{
    const fnn_dataset *d = r->test;
    size_t chw = (size_t)r->c * r->h * r->w;
    r->mean_image = calloc((size_t)r->k * chw, sizeof *r->mean_image);
    int64_t *count = calloc((size_t)r->k, sizeof *count);
    if (!r->mean_image || !count) {
        free(count);
        return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory for mean images");
    }
    for (int i = 0; i < d->n; i++) {
        float *dst = r->mean_image + d->labels[i] * chw;
        const uint8_t *src = d->images + (size_t)i * chw;
        for (size_t j = 0; j < chw; j++)
            dst[j] += src[j] / 255.0f;
        count[d->labels[i]]++;
    }
    for (int c = 0; c < r->k; c++)
        for (size_t j = 0; count[c] && j < chw; j++)
            r->mean_image[c * chw + j] /= (float)count[c];
    double conf = 0;
    for (int i = 0; i < d->n; i++)
        conf += r->probs[(size_t)i * r->k + r->pred[i]];
    r->mean_confidence = d->n ? conf / d->n : NAN;
    free(count);
    return FNN_OK;
}

/* How many of p's first levels (ascending) images of h x w can take: fnn_robustness refuses a
 * shift or an occluding square larger than the image, and the defaults go up to 16 pixels. */
static int levels_that_fit(fnn_perturbation p, const double *levels, int n, int h, int w)
{
    if (p != FNN_PERTURB_SHIFT && p != FNN_PERTURB_OCCLUDE)
        return n;
    int fit = 0;
    while (fit < n && levels[fit] <= (h > w ? h : w))
        fit++;
    return fit;
}

static fnn_status measure(fnn_model *m, fnn_report_model *r, const fnn_report_options *o,
                          fnn_error *err)
{
    const fnn_dataset *d = r->test;
    int done = 0, k = r->k;
    size_t hw = (size_t)r->h * r->w;
    fnn_status s;
    step(o, "evaluation", &done);
    r->probs = malloc((size_t)d->n * k * sizeof *r->probs);
    r->pred = malloc((size_t)d->n * sizeof *r->pred);
    if (!r->probs || !r->pred)
        return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory for %d test images", d->n);
    fnn_eval_options eo = {.threads = o->threads, .tta = o->tta};
    if ((s = fnn_evaluate_with(m, d, &eo, r->pred, r->probs, &r->mt, err)) != FNN_OK)
        return s;
    if ((s = per_class_means(r, err)) != FNN_OK)
        return s;
    if ((s = fnn_calibration_compute(d->labels, r->probs, d->n, k, FNN_REPORT_CAL_BINS, &r->cal,
                                     err)) != FNN_OK)
        return s;

    static const char *const methods[3] = {"saliency (gradient)", "saliency (SmoothGrad)",
                                           "saliency (integrated gradients)"};
    r->saliency_images = o->saliency_images;
    for (int meth = 0; meth < 3; meth++) {
        step(o, methods[meth], &done);
        fnn_saliency_config cfg = {.method = (fnn_saliency_method)meth,
                                   .max_images = o->saliency_images, .seed = o->seed};
        if (!(r->saliency[meth] = malloc((size_t)k * hw * sizeof *r->saliency[meth])))
            return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory for saliency maps");
        if ((s = fnn_saliency(m, d, &cfg, o->threads, r->saliency[meth], err)) != FNN_OK)
            return s;
    }

    step(o, "occlusion", &done);
    fnn_dataset sub = fnn_dataset_view(d, 0, o->occlusion_images < d->n ? o->occlusion_images : d->n);
    r->occlusion_images = sub.n;
    r->patch = o->patch;
    r->stride = o->stride;
    if (!(r->occlusion = malloc(hw * sizeof *r->occlusion)))
        return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory for the occlusion map");
    if ((s = fnn_occlusion(m, &sub, o->patch, o->stride, o->threads, r->occlusion,
                           &r->occlusion_base, err)) != FNN_OK)
        return s;

    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        char what[64];
        snprintf(what, sizeof what, "robustness (%s)", fnn_perturbation_name((fnn_perturbation)p));
        step(o, what, &done);
        int nl = fnn_perturbation_levels((fnn_perturbation)p, &r->levels[p]);
        nl = levels_that_fit((fnn_perturbation)p, r->levels[p], nl, r->h, r->w);
        if (nl <= 0)
            continue;
        if (!(r->robust[p] = malloc((size_t)nl * sizeof *r->robust[p])))
            return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory for robustness");
        if ((s = fnn_robustness(m, d, (fnn_perturbation)p, r->levels[p], nl, o->seed, o->threads,
                                r->robust[p], err)) != FNN_OK)
            return s;
        r->nlevels[p] = nl;
    }
    step(o, "figures", &done);
    return FNN_OK;
}

fnn_status fnn_report_collect(const char *path, const fnn_dataset *test,
                              const fnn_report_options *o, fnn_report_model *out, fnn_error *err)
{
    memset(out, 0, sizeof *out);
    fnn_model_meta meta = {0};
    fnn_model *m = fnn_model_load(path, &meta, err);
    if (!m)
        return err ? err->status : FNN_ERR_IO;
    fnn_status s = FNN_OK;
    out->path = strdup(path);
    out->stem = file_stem(path);
    out->arch = strdup(fnn_model_spec(m));
    if (!out->path || !out->stem || !out->arch)
        s = fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory");
    out->nparams = fnn_model_num_params(m);
    out->k = fnn_model_num_classes(m);
    fnn_model_input_shape(m, &out->c, &out->h, &out->w);
    out->test = test;
    if (s == FNN_OK)
        s = read_names(out, meta.class_names_json, err);
    if (s == FNN_OK)
        s = read_history(out, meta.history_json, err);
    if (s == FNN_OK)
        s = fnn_check_data(m, test, "test", err);
    if (s == FNN_OK)
        s = measure(m, out, o, err);
    if (s != FNN_OK && err && !strstr(err->msg, path)) {
        /* say which model of several failed */
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%.200s: %.300s", path, err->msg);
        memcpy(err->msg, msg, sizeof msg);
    }
    fnn_model_meta_free(&meta);
    fnn_model_free(m);
    if (s != FNN_OK)
        fnn_report_model_free(out);
    return s;
}
