/* Which figures the report shows and what goes into each: the measured numbers turned into
 * chart specs for chart.c. */
#include "report/report.h"
#include "util/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_W 560
#define LINE_H 360
#define MISTAKES 16
#define PAIRS 4
#define PAIR_EXAMPLES 6

void fnn_report_figures_free(fnn_report_figures *f)
{
    for (int i = 0; i < f->n; i++)
        fnn_figure_free(&f->items[i].fig);
    free(f->items);
    memset(f, 0, sizeof *f);
}

/* A zeroed slot at the end of out, named; it counts once its figure has been rendered. */
static fnn_report_figure *slot(fnn_report_figures *out, const char *stem, const char *name,
                               const char *kind, fnn_error *err)
{
    if (out->n == out->cap) {
        int cap = out->cap ? out->cap * 2 : 16;
        fnn_report_figure *grown = realloc(out->items, (size_t)cap * sizeof *grown);
        if (!grown) {
            fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory for figures");
            return NULL;
        }
        out->items = grown;
        out->cap = cap;
    }
    fnn_report_figure *f = &out->items[out->n];
    memset(f, 0, sizeof *f);
    /* A name cut short would no longer be found by the page, or would be another figure's. */
    if (snprintf(f->name, sizeof f->name, "%s_%s", stem, name) >= (int)sizeof f->name) {
        fnn_fail(err, FNN_ERR_ARG, "report: the figure name %s_%s is longer than %zu bytes",
                 stem, name, sizeof f->name - 1);
        return NULL;
    }
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    return f;
}

/* The status of a slot that could not be made. */
static fnn_status slot_error(const fnn_error *err) { return err ? err->status : FNN_ERR_NOMEM; }

static void describe(fnn_report_figure *f, const char *title, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void describe(fnn_report_figure *f, const char *title, const char *fmt, ...)
{
    snprintf(f->title, sizeof f->title, "%s", title);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->caption, sizeof f->caption, fmt, ap);
    va_end(ap);
}

/* Renders spec into a new slot of out. */
#define ADD_FIGURE(out, stem, name, kind, render, spec, err)                                     \
    do {                                                                                         \
        fnn_report_figure *f_ = slot(out, stem, name, kind, err);                                \
        if (!f_)                                                                                 \
            return slot_error(err);                                                              \
        fnn_status s_ = render(spec, &f_->fig, err);                                             \
        if (s_ != FNN_OK)                                                                        \
            return s_;                                                                           \
        out->n++;                                                                                \
    } while (0)

static fnn_report_figure *last(fnn_report_figures *out) { return &out->items[out->n - 1]; }

/* ---------------------------------------------------------------- one model */

static fnn_status curves(const fnn_report_model *r, fnn_report_figures *out, fnn_error *err)
{
    if (r->epochs == 0)
        return FNN_OK;
    const double *train[2] = {r->train_loss, r->train_acc}, *val[2] = {r->val_loss, r->val_acc};
    static const char *const what[2] = {"loss", "accuracy"};
    for (int i = 0; i < 2; i++) {
        char title[96];
        snprintf(title, sizeof title, "%s: training and validation %s", r->stem, what[i]);
        fnn_series s[2] = {{"training", r->epoch, train[i], r->epochs, 0, 0, 1},
                           {"validation", r->epoch, val[i], r->epochs, 1, 0, 1}};
        fnn_line_chart c = {.width = LINE_W, .height = LINE_H, .title = title, .xlabel = "epoch",
                            .ylabel = what[i], .series = s, .nseries = 2};
        ADD_FIGURE(out, r->stem, what[i], "line", fnn_chart_line, &c, err);
        describe(last(out), title,
                 "Per epoch, from the history stored in the model file. Training %s is the "
                 "running mean over the epoch with dropout active (as Keras reports it); "
                 "validation %s is measured after the epoch in eval mode.",
                 what[i], what[i]);
    }
    return FNN_OK;
}

/* The smallest confusion-matrix cell, in pixels: a row of 11-pixel class names. */
#define MIN_CELL 16
/* The widest bar chart: charts stay under the renderer's 8192 pixels. */
#define MAX_BARS_WIDTH 8000

/* A bar chart's width for k categories of `groups` bars: 56 pixels a category up to 1000 pixels,
 * past that at least 6 a bar, so that many classes spread out instead of overlapping. */
static int bars_width(int k, int groups)
{
    int width = 120 + 56 * k < 1000 ? 120 + 56 * k : 1000;
    int per = 6 * groups + 2;
    if (per > (MAX_BARS_WIDTH - 120) / k)
        per = (MAX_BARS_WIDTH - 120) / k;
    return width > 120 + per * k ? width : 120 + per * k;
}

static fnn_status confusion(const fnn_report_model *r, fnn_report_figures *out, fnn_error *err)
{
    int k = r->k;
    double *v = malloc((size_t)k * k * sizeof *v); // (k, k)
    if (!v)
        return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory");
    double top = 1;
    for (int i = 0; i < k * k; i++) {
        v[i] = (double)r->mt.confusion[i];
        top = v[i] > top ? v[i] : top;
    }
    /* 48-pixel cells up to 900 pixels; past that the matrix grows with the classes, so that
     * every class keeps a row its name fits (62 EMNIST classes, 200 and more). */
    int side = 160 + 48 * k < 900 ? 160 + 48 * k : 900;
    if (side < 160 + MIN_CELL * k)
        side = 160 + MIN_CELL * k;
    char title[96];
    snprintf(title, sizeof title, "%s: confusion matrix (counts)", r->stem);
    fnn_heatmap c = {side + 140, side + 60, title, "predicted", "true", k, k, v, 0, top,
                     r->mt.confusion, 0, (const char *const *)r->names,
                     (const char *const *)r->names};
    fnn_report_figure *f = slot(out, r->stem, "confusion", "heatmap", err);
    fnn_status s = f ? fnn_chart_heatmap(&c, &f->fig, err) : slot_error(err);
    if (s == FNN_OK) {
        out->n++;
        describe(f, title, "Rows are the true class, columns the prediction, over %d test images.",
                 r->mt.n);
        for (int i = 0; i < k; i++) {
            int64_t row = r->mt.support[i];
            for (int j = 0; j < k; j++)
                v[i * k + j] = row ? (double)r->mt.confusion[i * k + j] / row : 0;
        }
        snprintf(title, sizeof title, "%s: confusion matrix (row-normalised)", r->stem);
        c.title = title;
        c.vmin = 0;
        c.vmax = 1;
        c.show_values = 1;
        f = slot(out, r->stem, "confusion_normalised", "heatmap", err);
        s = f ? fnn_chart_heatmap(&c, &f->fig, err) : slot_error(err);
        if (s == FNN_OK) {
            out->n++;
            describe(f, title,
                     "Each row divided by the class's number of test images: the diagonal is the "
                     "recall. The colour scale is fixed to 0..1, so a poor model cannot look "
                     "good; counts are shown under the fractions.");
        }
    }
    free(v);
    return s;
}

static fnn_status class_bars(const fnn_report_model *r, fnn_report_figures *out, fnn_error *err)
{
    int k = r->k;
    double *v = malloc((size_t)3 * k * sizeof *v); // (3, k)
    if (!v)
        return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory");
    memcpy(v, r->mt.precision, (size_t)k * sizeof *v);
    memcpy(v + k, r->mt.recall, (size_t)k * sizeof *v);
    memcpy(v + 2 * k, r->mt.f1, (size_t)k * sizeof *v);
    static const char *const groups[3] = {"precision", "recall", "F1"};
    char title[96];
    snprintf(title, sizeof title, "%s: precision, recall and F1 per class", r->stem);
    fnn_bar_chart c = {bars_width(k, 3), 400, title, "score", k, 3,
                       (const char *const *)r->names, groups, v, 0, 1.08};
    fnn_report_figure *f = slot(out, r->stem, "per_class", "bars", err);
    fnn_status s = f ? fnn_chart_bars(&c, &f->fig, err) : slot_error(err);
    if (s == FNN_OK) {
        out->n++;
        describe(f, title, "On the test set; the table below gives the same numbers.");
    }
    free(v);
    return s;
}

/* Test image i as floats in [0, 1], (c, h, w), for the galleries. */
static float *test_pixels(const fnn_report_model *r, int i, float *buf)
{
    size_t chw = (size_t)r->c * r->h * r->w;
    const uint8_t *src = r->test->images + (size_t)i * chw;
    for (size_t j = 0; j < chw; j++)
        buf[j] = src[j] / 255.0f;
    return buf;
}

/* How the gallery draws r's images: grey, or colour from their three planes. */
static fnn_colormap image_cmap(const fnn_report_model *r)
{
    return r->c == 3 ? FNN_CMAP_RGB : FNN_CMAP_GREY;
}

/* Galleries show images about `side` pixels across (84: Fashion-MNIST's 28 x 3): smaller ones
 * scaled up by a whole factor, so that every image pixel stays a sharp square; larger ones
 * scaled down to it, so that a gallery of many classes of large images stays within a chart's
 * size. */
static double zoom_for(const fnn_report_model *r, int side)
{
    int longest = r->h > r->w ? r->h : r->w;
    return longest <= side ? side / longest : (double)side / longest;
}

/* Indices of the wrongly classified images of (truth, pred), or of all mistakes when truth < 0,
 * by the predicted class's probability, highest first; returns how many (at most max). */
static int confident_mistakes(const fnn_report_model *r, int truth, int pred, int *idx, int max)
{
    int n = 0, k = r->k;
    for (int i = 0; i < r->test->n; i++) {
        int y = r->test->labels[i], p = r->pred[i];
        if (y == p || (truth >= 0 && (y != truth || p != pred)))
            continue;
        float conf = r->probs[(size_t)i * k + p];
        int at = n < max ? n : max;
        while (at > 0 && r->probs[(size_t)idx[at - 1] * k + r->pred[idx[at - 1]]] < conf)
            at--;
        if (at >= max)
            continue;
        int end = n < max ? n : max - 1;
        memmove(idx + at + 1, idx + at, (size_t)(end - at) * sizeof *idx);
        idx[at] = i;
        n += n < max;
    }
    return n;
}

static fnn_status mistakes(const fnn_report_model *r, fnn_report_figures *out, fnn_error *err)
{
    size_t chw = (size_t)r->c * r->h * r->w;
    int cap = MISTAKES > PAIRS * PAIR_EXAMPLES ? MISTAKES : PAIRS * PAIR_EXAMPLES;
    float *pix = malloc((size_t)cap * chw * sizeof *pix); // (cap, c, h, w)
    char(*cap_text)[128] = malloc((size_t)cap * sizeof *cap_text);
    fnn_tile *tiles = calloc((size_t)cap, sizeof *tiles);
    fnn_status s = FNN_OK;
    if (!pix || !cap_text || !tiles) {
        s = fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory for the galleries");
        goto done;
    }
    int idx[MISTAKES], k = r->k;
    int n = confident_mistakes(r, -1, -1, idx, MISTAKES);
    char title[128];
    if (n > 0) {
        for (int t = 0; t < n; t++) {
            int i = idx[t];
            snprintf(cap_text[t], sizeof cap_text[t], "true: %s\npred: %s\np = %.3f",
                     r->names[r->test->labels[i]], r->names[r->pred[i]],
                     r->probs[(size_t)i * k + r->pred[i]]);
            tiles[t] = (fnn_tile){.pixels = test_pixels(r, i, pix + t * chw),
                                  .caption = cap_text[t], .cmap = image_cmap(r), .vmax = 1};
        }
        snprintf(title, sizeof title, "%s: the %d most confident mistakes", r->stem, n);
        fnn_gallery g = {title, r->h, r->w, zoom_for(r, 84), 8, n, tiles, NULL, 3};
        fnn_report_figure *f = slot(out, r->stem, "mistakes", "gallery", err);
        if (!f || (s = fnn_chart_gallery(&g, &f->fig, err)) != FNN_OK) {
            s = f ? s : slot_error(err);
            goto done;
        }
        out->n++;
        describe(f, title,
                 "Wrongly classified test images with the highest probability given to the wrong "
                 "class: true class, predicted class and that probability.");
    }

    fnn_confusion_pair pairs[PAIRS];
    int np = fnn_report_top_confusions(&r->mt, pairs, PAIRS);
    if (np > 0) {
        char labels[PAIRS][128];
        const char *row_labels[PAIRS];
        memset(tiles, 0, (size_t)cap * sizeof *tiles);
        for (int p = 0; p < np; p++) {
            int ex[PAIR_EXAMPLES];
            int m = confident_mistakes(r, pairs[p].truth, pairs[p].pred, ex, PAIR_EXAMPLES);
            snprintf(labels[p], sizeof labels[p], "%s as %s (%lld)", r->names[pairs[p].truth],
                     r->names[pairs[p].pred], (long long)pairs[p].count);
            row_labels[p] = labels[p];
            for (int e = 0; e < m; e++) {
                int t = p * PAIR_EXAMPLES + e, i = ex[e];
                snprintf(cap_text[t], sizeof cap_text[t], "p = %.3f",
                         r->probs[(size_t)i * k + r->pred[i]]);
                tiles[t] = (fnn_tile){.pixels = test_pixels(r, i, pix + t * chw),
                                      .caption = cap_text[t], .cmap = image_cmap(r), .vmax = 1};
            }
        }
        snprintf(title, sizeof title, "%s: the most confused class pairs", r->stem);
        fnn_gallery g = {title, r->h, r->w, zoom_for(r, 84), PAIR_EXAMPLES, np * PAIR_EXAMPLES,
                         tiles, row_labels, 1};
        fnn_report_figure *f = slot(out, r->stem, "confused_pairs", "gallery", err);
        if (!f || (s = fnn_chart_gallery(&g, &f->fig, err)) != FNN_OK) {
            s = f ? s : slot_error(err);
            goto done;
        }
        out->n++;
        describe(f, title,
                 "One row per pair \"true as predicted (count)\", largest count first, with the "
                 "most confident examples of each and the probability given to the wrong class.");
    }
done:
    free(pix);
    free(cap_text);
    free(tiles);
    return s;
}

/* Classes per band of the saliency gallery: more would make it wider than a chart may be. */
#define SALIENCY_COLS 16

static fnn_status saliency(const fnn_report_model *r, fnn_report_figures *out, fnn_error *err)
{
    size_t hw = (size_t)r->h * r->w, chw = (size_t)r->c * hw;
    /* Up to SALIENCY_COLS classes side by side; more classes wrap into further bands of the
     * same four rows. */
    int k = r->k, cols = k < SALIENCY_COLS ? k : SALIENCY_COLS, bands = (k + cols - 1) / cols;
    int rows = 4 * bands;
    fnn_tile *tiles = calloc((size_t)rows * cols, sizeof *tiles);
    const char **row_labels = malloc((size_t)rows * sizeof *row_labels);
    if (!tiles || !row_labels) {
        free(tiles);
        free(row_labels);
        return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory");
    }
    static const char *const labels[4] = {"mean image", "gradient", "SmoothGrad", "integrated"};
    for (int i = 0; i < rows; i++)
        row_labels[i] = labels[i % 4];
    for (int c = 0; c < k; c++) {
        fnn_tile *band = tiles + (size_t)(c / cols) * 4 * cols + c % cols; // (4, cols) from here
        const float *mean = r->mean_image + c * chw;
        band[0] = (fnn_tile){.pixels = mean, .caption = r->names[c], .cmap = image_cmap(r),
                             .vmax = 1};
        /* Each map on its own scale, as their units differ. A grey image's map stands alone; a
         * colour image's is laid over the class's mean image, where it shows which of the
         * colour regions the class's score follows. */
        for (int m = 0; m < 3; m++) {
            const float *map = r->saliency[m] + c * hw;
            band[(m + 1) * cols] =
                r->c == 3 ? (fnn_tile){.pixels = mean, .caption = r->names[c],
                                       .cmap = FNN_CMAP_RGB, .vmax = 1, .overlay = map}
                          : (fnn_tile){.pixels = map, .caption = r->names[c],
                                       .cmap = FNN_CMAP_HEAT};
        }
    }
    char title[128];
    snprintf(title, sizeof title, "%s: saliency per class", r->stem);
    fnn_gallery g = {title, r->h, r->w, zoom_for(r, 84), cols, rows * cols, tiles, row_labels, 1};
    fnn_report_figure *f = slot(out, r->stem, "saliency", "gallery", err);
    fnn_status s = f ? fnn_chart_gallery(&g, &f->fig, err) : slot_error(err);
    if (s == FNN_OK) {
        out->n++;
        describe(f, title,
                 "Mean absolute gradient of each class's score (the logit) with respect to the "
                 "input pixels, averaged over up to %d test images of the class: plain gradient, "
                 "SmoothGrad (noisy copies) and integrated gradients (from a black image). Bright "
                 "pixels change the class score most; each map has its own scale.%s",
                 r->saliency_images,
                 r->c == 3 ? " A colour pixel's value is its largest gradient over the red, green "
                             "and blue channels; the maps are laid over the class's mean image, "
                             "opaque where the map is high." : "");
    }
    free(tiles);
    free(row_labels);
    return s;
}

static fnn_status occlusion(const fnn_report_model *r, fnn_report_figures *out, fnn_error *err)
{
    size_t hw = (size_t)r->h * r->w, chw = (size_t)r->c * hw;
    float *mean = calloc(chw, sizeof *mean); // (c, h, w)
    if (!mean)
        return fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory");
    for (size_t j = 0; j < chw; j++)
        for (int c = 0; c < r->k; c++)
            mean[j] += r->mean_image[c * chw + j] / r->k;
    float top = 0;
    size_t at = 0;
    for (size_t j = 0; j < hw; j++)
        if (r->occlusion[j] > top)
            top = r->occlusion[j], at = j;
    char cap_map[128], title[128];
    snprintf(cap_map, sizeof cap_map, "accuracy drop\n0 (dark) to %.3f", top);
    fnn_tile tiles[2] = {{.pixels = mean, .caption = "mean test image\n", .cmap = image_cmap(r),
                          .vmax = 1},
                         {.pixels = r->occlusion, .caption = cap_map, .cmap = FNN_CMAP_HEAT,
                          .vmax = top > 0 ? top : 1}};
    snprintf(title, sizeof title, "%s: occlusion", r->stem);
    fnn_gallery g = {title, r->h, r->w, zoom_for(r, 168), 2, 2, tiles, NULL, 2};
    fnn_report_figure *f = slot(out, r->stem, "occlusion", "gallery", err);
    fnn_status s = f ? fnn_chart_gallery(&g, &f->fig, err) : slot_error(err);
    if (s == FNN_OK) {
        out->n++;
        describe(f, title,
                 "A %dx%d black square slid with stride %d over the first %d test images: each "
                 "pixel shows the mean drop in accuracy (from %.3f) of the squares covering it. "
                 "The largest drop, %.3f, is at row %zu, column %zu.",
                 r->patch, r->patch, r->stride, r->occlusion_images, r->occlusion_base, top,
                 at / r->w, at % r->w);
    }
    free(mean);
    return s;
}

static fnn_status robustness(const fnn_report_model *r, fnn_report_figures *out, fnn_error *err)
{
    fnn_series s[FNN_PERTURB_COUNT];
    char labels[FNN_PERTURB_COUNT][64];
    double steps[64];
    int ns = 0, most = 0;
    for (int i = 0; i < 64; i++)
        steps[i] = i;
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        int nl = r->nlevels[p] < 64 ? r->nlevels[p] : 64;
        if (!nl)
            continue;
        snprintf(labels[p], sizeof labels[p], "%s (%g to %g)",
                 fnn_perturbation_name((fnn_perturbation)p), r->levels[p][0], r->levels[p][nl - 1]);
        s[ns++] = (fnn_series){labels[p], steps, r->robust[p], nl, p, 0, 1};
        most = nl > most ? nl : most;
    }
    if (!ns)
        return FNN_OK;
    char title[128];
    snprintf(title, sizeof title, "%s: robustness", r->stem);
    fnn_line_chart c = {.width = LINE_W + 80, .height = LINE_H + 40, .title = title,
                        .xlabel = "level (0 = unperturbed)", .ylabel = "test accuracy",
                        .series = s, .nseries = ns, .xmin = -0.3, .xmax = most - 0.7, .ymin = 0,
                        .ymax = 1};
    ADD_FIGURE(out, r->stem, "robustness", "line", fnn_chart_line, &c, err);
    describe(last(out), title,
             "Test accuracy under each perturbation at its default levels (the legend gives the "
             "range: noise standard deviation, shift in pixels, rotation in degrees, side of the "
             "occluding square in pixels, contrast factor). Level 0 is the unperturbed test set.");
    return FNN_OK;
}

/* The reliability curve of r: NaN where a bin is empty. conf and acc hold nbins values. */
static void reliability_points(const fnn_report_model *r, double *conf, double *acc)
{
    for (int b = 0; b < r->cal.nbins; b++) {
        conf[b] = r->cal.count[b] ? r->cal.confidence[b] : NAN;
        acc[b] = r->cal.count[b] ? r->cal.accuracy[b] : NAN;
    }
}

static const double diag[2] = {0, 1};

static fnn_status reliability(const fnn_report_model *r, fnn_report_figures *out, fnn_error *err)
{
    if (!r->cal.nbins || r->cal.nbins > 256)
        return FNN_OK;
    double conf[256], acc[256];
    reliability_points(r, conf, acc);
    char title[128], label[64];
    snprintf(title, sizeof title, "%s: reliability diagram (ECE %.3f)", r->stem, r->cal.ece);
    snprintf(label, sizeof label, "%s (ECE %.3f)", r->stem, r->cal.ece);
    fnn_series s[2] = {{"perfect calibration", diag, diag, 2, -1, 1, 0},
                       {label, conf, acc, r->cal.nbins, 0, 0, 1}};
    fnn_line_chart c = {.width = LINE_H + 60, .height = LINE_H + 40, .title = title,
                        .xlabel = "confidence (top-1 probability)", .ylabel = "accuracy",
                        .series = s, .nseries = 2, .xmin = 0, .xmax = 1, .ymin = 0, .ymax = 1};
    ADD_FIGURE(out, r->stem, "reliability", "line", fnn_chart_line, &c, err);
    describe(last(out), title,
             "Test images binned by their top-1 probability (%d equal bins; empty bins left out): "
             "mean confidence against accuracy in each bin. Points below the diagonal are "
             "over-confident. ECE is the bins' mean |accuracy - confidence| weighted by their "
             "counts.",
             r->cal.nbins);
    return FNN_OK;
}

fnn_status fnn_report_model_figures(const fnn_report_model *r, fnn_report_figures *out,
                                    fnn_error *err)
{
    fnn_status s = curves(r, out, err);
    if (s == FNN_OK)
        s = confusion(r, out, err);
    if (s == FNN_OK)
        s = class_bars(r, out, err);
    if (s == FNN_OK && r->test && r->probs)
        s = mistakes(r, out, err);
    if (s == FNN_OK && r->saliency[0] && r->saliency[1] && r->saliency[2] && r->mean_image)
        s = saliency(r, out, err);
    if (s == FNN_OK && r->occlusion && r->mean_image)
        s = occlusion(r, out, err);
    if (s == FNN_OK)
        s = robustness(r, out, err);
    if (s == FNN_OK)
        s = reliability(r, out, err);
    return s;
}

/* ---------------------------------------------------------------- several models */

#define MAX_COMPARE 10

static fnn_status compare_curves(const fnn_report_model *m, int n, fnn_report_figures *out,
                                 fnn_error *err)
{
    fnn_series s[2 * MAX_COMPARE];
    char labels[2 * MAX_COMPARE][80];
    static const char *const what[2] = {"accuracy", "loss"};
    for (int w = 0; w < 2; w++) {
        int ns = 0;
        for (int i = 0; i < n; i++) {
            if (!m[i].epochs)
                continue;
            snprintf(labels[ns], sizeof labels[ns], "%s validation", m[i].stem);
            s[ns] = (fnn_series){labels[ns], m[i].epoch, w ? m[i].val_loss : m[i].val_acc,
                                 m[i].epochs, i, 0, 1};
            ns++;
            snprintf(labels[ns], sizeof labels[ns], "%s training", m[i].stem);
            s[ns] = (fnn_series){labels[ns], m[i].epoch, w ? m[i].train_loss : m[i].train_acc,
                                 m[i].epochs, i, 1, 0};
            ns++;
        }
        if (!ns)
            return FNN_OK;
        char title[96], name[32];
        snprintf(title, sizeof title, "Models compared: %s per epoch", what[w]);
        snprintf(name, sizeof name, "%s", what[w]);
        fnn_line_chart c = {.width = LINE_W + 80, .height = LINE_H + 40, .title = title,
                            .xlabel = "epoch", .ylabel = what[w], .series = s, .nseries = ns};
        ADD_FIGURE(out, "compare", name, "line", fnn_chart_line, &c, err);
        describe(last(out), title,
                 "Solid: validation; dashed: training (dropout active). One colour per model.");
    }
    return FNN_OK;
}

static fnn_status compare_robustness(const fnn_report_model *m, int n, fnn_report_figures *out,
                                     fnn_error *err)
{
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        fnn_series s[MAX_COMPARE];
        int ns = 0;
        for (int i = 0; i < n; i++)
            if (m[i].nlevels[p])
                s[ns++] = (fnn_series){m[i].stem, m[i].levels[p], m[i].robust[p], m[i].nlevels[p],
                                       i, 0, 1};
        if (!ns)
            continue;
        const char *pname = fnn_perturbation_name((fnn_perturbation)p);
        char title[96], name[48];
        snprintf(title, sizeof title, "Models compared: accuracy under %s", pname);
        snprintf(name, sizeof name, "robustness_%s", pname);
        fnn_line_chart c = {.width = LINE_W, .height = LINE_H, .title = title, .xlabel = pname,
                            .ylabel = "test accuracy", .series = s, .nseries = ns, .ymin = 0,
                            .ymax = 1};
        ADD_FIGURE(out, "compare", name, "line", fnn_chart_line, &c, err);
        describe(last(out), title, "Test accuracy at each default level of %s.", pname);
    }
    return FNN_OK;
}

static fnn_status compare_reliability(const fnn_report_model *m, int n, fnn_report_figures *out,
                                      fnn_error *err)
{
    fnn_series s[MAX_COMPARE + 1] = {{"perfect calibration", diag, diag, 2, -1, 1, 0}};
    double conf[MAX_COMPARE][256], acc[MAX_COMPARE][256];
    char labels[MAX_COMPARE][80];
    int ns = 1;
    for (int i = 0; i < n; i++) {
        if (!m[i].cal.nbins || m[i].cal.nbins > 256)
            continue;
        reliability_points(&m[i], conf[i], acc[i]);
        snprintf(labels[i], sizeof labels[i], "%s (ECE %.3f)", m[i].stem, m[i].cal.ece);
        s[ns++] = (fnn_series){labels[i], conf[i], acc[i], m[i].cal.nbins, i, 0, 1};
    }
    if (ns == 1)
        return FNN_OK;
    const char *title = "Models compared: reliability";
    fnn_line_chart c = {.width = LINE_H + 60, .height = LINE_H + 40, .title = title,
                        .xlabel = "confidence (top-1 probability)", .ylabel = "accuracy",
                        .series = s, .nseries = ns, .xmin = 0, .xmax = 1, .ymin = 0, .ymax = 1};
    ADD_FIGURE(out, "compare", "reliability", "line", fnn_chart_line, &c, err);
    describe(last(out), title, "Each model's reliability curve; the diagonal is perfect calibration.");
    return FNN_OK;
}

static fnn_status compare_f1(const fnn_report_model *m, int n, fnn_report_figures *out,
                             fnn_error *err)
{
    int k = m[0].k;
    for (int i = 1; i < n; i++)
        if (m[i].k != k)
            return FNN_OK; /* no common classes to compare */
    double *v = malloc((size_t)n * k * sizeof *v); // (n, k)
    const char **groups = malloc((size_t)n * sizeof *groups);
    fnn_status s = FNN_OK;
    if (!v || !groups) {
        s = fnn_fail(err, FNN_ERR_NOMEM, "report: out of memory");
    } else {
        for (int i = 0; i < n; i++) {
            memcpy(v + (size_t)i * k, m[i].mt.f1, (size_t)k * sizeof *v);
            groups[i] = m[i].stem;
        }
        const char *title = "Models compared: F1 per class";
        fnn_bar_chart c = {bars_width(k, n), 400, title, "F1", k, n,
                           (const char *const *)m[0].names, groups, v, 0, 1.08};
        fnn_report_figure *f = slot(out, "compare", "f1", "bars", err);
        s = f ? fnn_chart_bars(&c, &f->fig, err) : slot_error(err);
        if (s == FNN_OK) {
            out->n++;
            describe(f, title, "Test-set F1 of every class, one bar per model (class names from "
                               "the first model).");
        }
    }
    free(v);
    free(groups);
    return s;
}

fnn_status fnn_report_compare_figures(const fnn_report_model *models, int n,
                                      fnn_report_figures *out, fnn_error *err)
{
    if (n < 2)
        return FNN_OK;
    if (n > MAX_COMPARE)
        n = MAX_COMPARE; /* more lines than colours would be unreadable */
    fnn_status s = compare_curves(models, n, out, err);
    if (s == FNN_OK)
        s = compare_f1(models, n, out, err);
    if (s == FNN_OK)
        s = compare_robustness(models, n, out, err);
    if (s == FNN_OK)
        s = compare_reliability(models, n, out, err);
    return s;
}
