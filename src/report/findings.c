/* The findings section: sentences written from a model's numbers (never from fixed text), so
 * that what the page says follows what was measured. */
#define _POSIX_C_SOURCE 200809L

#include "report/report.h"

#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fnn_report_top_confusions(const fnn_metrics *mt, fnn_confusion_pair *pairs, int max)
{
    int n = 0, k = mt->nclasses;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            int64_t c = mt->confusion[i * k + j];
            if (i == j || c <= 0)
                continue;
            /* insertion into the sorted top list; ties keep matrix order */
            int at = n < max ? n : max;
            while (at > 0 && pairs[at - 1].count < c)
                at--;
            if (at >= max)
                continue;
            int last = n < max ? n : max - 1;
            memmove(pairs + at + 1, pairs + at, (size_t)(last - at) * sizeof *pairs);
            pairs[at] = (fnn_confusion_pair){i, j, c};
            n += n < max;
        }
    return n;
}

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->failed || need < 0)
        return;
    if (t->len + (size_t)need + 1 > t->cap) {
        size_t cap = (t->len + (size_t)need + 1) * 2;
        char *grown = realloc(t->s, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->s = grown;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)need;
}

static double pct(double v) { return 100.0 * v; }

/* Overall accuracy, best and worst class by F1, and the classes mixed up most. */
static void classes(text *t, const fnn_report_model *r, int *worst_out)
{
    const fnn_metrics *mt = &r->mt;
    int best = 0, worst = 0;
    for (int c = 1; c < mt->nclasses; c++) {
        best = mt->f1[c] > mt->f1[best] ? c : best;
        worst = mt->f1[c] < mt->f1[worst] ? c : worst;
    }
    *worst_out = worst;
    add(t, "Overall: test accuracy %.1f%% on %d images (loss %.3f, macro F1 %.3f); with this many "
           "images the accuracy has a standard error of about %.1f points.\n",
        pct(mt->accuracy), mt->n, mt->loss, mt->macro_f1,
        pct(sqrt(mt->accuracy * (1 - mt->accuracy) / (mt->n > 0 ? mt->n : 1))));
    add(t, "Best and worst classes: best is %s (F1 %.3f, precision %.3f, recall %.3f); worst is "
           "%s (F1 %.3f, precision %.3f, recall %.3f).\n",
        r->names[best], mt->f1[best], mt->precision[best], mt->recall[best], r->names[worst],
        mt->f1[worst], mt->precision[worst], mt->recall[worst]);
    fnn_confusion_pair top[3];
    int n = fnn_report_top_confusions(mt, top, 3);
    if (!n) {
        add(t, "Top confusions: none; every test image was classified correctly.\n");
        return;
    }
    add(t, "Top confusions:");
    for (int i = 0; i < n; i++) {
        int64_t support = mt->support[top[i].truth];
        add(t, "%s %s predicted as %s (%lld images, %.1f%% of %s)", i ? ";" : "",
            r->names[top[i].truth], r->names[top[i].pred], (long long)top[i].count,
            support ? 100.0 * top[i].count / support : 0.0, r->names[top[i].truth]);
    }
    add(t, ".\n");
}

typedef enum { FIT_UNKNOWN, FIT_OVER, FIT_UNDER, FIT_GOOD } fit_kind;

/* Over- or under-fitting, from the last epoch's gap and the validation curve's shape. */
static fit_kind fitting(text *t, const fnn_report_model *r)
{
    int n = r->epochs;
    if (n == 0 || !r->val_acc || isnan(r->val_acc[n - 1])) {
        add(t, "Training vs validation: the model file holds no validation history, so over- or "
               "under-fitting cannot be judged from it.\n");
        return FIT_UNKNOWN;
    }
    int best = 0, best_loss = 0;
    for (int i = 1; i < n; i++) {
        best = r->val_acc[i] > r->val_acc[best] ? i : best;
        best_loss = r->val_loss[i] < r->val_loss[best_loss] ? i : best_loss;
    }
    double gap = r->train_acc[n - 1] - r->val_acc[n - 1];
    double loss_rise = r->val_loss[n - 1] - r->val_loss[best_loss];
    add(t, "Training vs validation: after %d epoch%s training accuracy is %.1f%% and validation "
           "accuracy %.1f%% (gap %+.1f points; best validation %.1f%% at epoch %d); validation loss "
           "%.3f (lowest %.3f at epoch %d). ",
        n, n == 1 ? "" : "s", pct(r->train_acc[n - 1]), pct(r->val_acc[n - 1]), pct(gap),
        pct(r->val_acc[best]), (int)(r->epoch ? r->epoch[best] : best + 1), r->val_loss[n - 1],
        r->val_loss[best_loss], (int)(r->epoch ? r->epoch[best_loss] : best_loss + 1));
    /* Training accuracy is measured with dropout active, which pulls it below validation
     * accuracy; a positive gap of a few points is already telling. */
    if (gap > 0.03 || (best_loss < n - 1 && loss_rise > 0.05 * r->val_loss[best_loss])) {
        add(t, "The model is over-fitting: %s.\n",
            gap > 0.03 ? "it fits the training data clearly better than unseen data"
                       : "validation loss has been rising since its lowest point");
        return FIT_OVER;
    }
    if (n < 3) {
        add(t, "The model is probably under-fitting: %d epoch%s cannot show the validation curve "
               "levelling off.\n", n, n == 1 ? "" : "s");
        return FIT_UNDER;
    }
    /* still improving: above every epoch before the last three (with three, before the last) */
    int since = n > 3 ? n - 3 : n - 1;
    double before = -INFINITY;
    for (int i = 0; i < since; i++)
        before = r->val_acc[i] > before ? r->val_acc[i] : before;
    double rise = r->val_acc[n - 1] - before;
    if (rise > 0.005 || r->val_acc[n - 1] < 0.8) {
        if (rise > 0.005)
            add(t, "The model is under-fitting: validation accuracy rose %.1f points over the "
                   "last %d epoch%s and was still rising when training stopped.\n",
                pct(rise), n - since, n - since == 1 ? "" : "s");
        else
            add(t, "The model is under-fitting: validation accuracy is low, so the model lacks "
                   "capacity or training.\n");
        return FIT_UNDER;
    }
    add(t, "Neither over- nor under-fitting is evident: the curves have levelled off together.\n");
    return FIT_GOOD;
}

/* Reliability: the ECE, and the direction of the miscalibration. */
static int calibration(text *t, const fnn_report_model *r)
{
    if (!r->cal.nbins)
        return 0;
    double acc = r->mt.accuracy, conf = r->mean_confidence;
    const char *how = r->cal.ece < 0.02 ? "well calibrated"
                      : r->cal.ece < 0.05 ? "slightly miscalibrated"
                                          : "poorly calibrated";
    double gap = conf - acc;
    const char *degree = fabs(gap) > 0.03 ? "" : "slightly ";
    add(t, "Calibration: expected calibration error %.3f over %d bins, %s; mean confidence %.1f%% "
           "against accuracy %.1f%%, so the model is %s%s.\n",
        r->cal.ece, r->cal.nbins, how, pct(conf), pct(acc), fabs(gap) > 0.01 ? degree : "",
        gap > 0.01 ? "over-confident" : gap < -0.01 ? "under-confident"
                                                    : "about as confident as it is right");
    return r->cal.ece >= 0.02;
}

/* The perturbation whose strongest default level costs the most accuracy. */
static int robustness(text *t, const fnn_report_model *r)
{
    int weakest = -1, strongest = -1;
    double worst_drop = -INFINITY, best_drop = INFINITY;
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        int nl = r->nlevels[p];
        if (nl < 2 || !r->robust[p])
            continue;
        double drop = r->robust[p][0] - r->robust[p][nl - 1];
        if (drop > worst_drop)
            worst_drop = drop, weakest = p;
        if (drop < best_drop)
            best_drop = drop, strongest = p;
    }
    if (weakest < 0)
        return -1;
    int nw = r->nlevels[weakest], ns = r->nlevels[strongest];
    add(t, "Robustness: the weakest axis is %s: accuracy falls from %.1f%% to %.1f%% at level "
           "%g. The strongest is %s (%.1f%% to %.1f%% at level %g).\n",
        fnn_perturbation_name((fnn_perturbation)weakest), pct(r->robust[weakest][0]),
        pct(r->robust[weakest][nw - 1]), r->levels[weakest][nw - 1],
        fnn_perturbation_name((fnn_perturbation)strongest), pct(r->robust[strongest][0]),
        pct(r->robust[strongest][ns - 1]), r->levels[strongest][ns - 1]);
    return weakest;
}

char *fnn_report_findings(const fnn_report_model *r)
{
    text t = {0};
    int worst;
    classes(&t, r, &worst);
    fit_kind fit = fitting(&t, r);
    int miscal = calibration(&t, r);
    int weak = robustness(&t, r);

    add(&t, "Flaws and next steps:");
    /* mix-ups in both directions: a worst class may lose images or attract other classes' */
    int k = r->mt.nclasses, partners = 0;
    const int64_t *cm = r->mt.confusion;
    for (int64_t above = INT64_MAX; partners < 3;) { /* the three largest, in order */
        int pick = -1;
        int64_t best = 0;
        for (int j = 0; j < k; j++) {
            int64_t both = j == worst ? 0 : cm[worst * k + j] + cm[j * k + worst];
            if (both > 0 && both < above && both > best)
                best = both, pick = j;
        }
        if (pick < 0)
            break;
        above = best;
        for (int j = 0; j < k && partners < 3; j++)
            if (j != worst && cm[worst * k + j] + cm[j * k + worst] == above)
                add(&t, "%s%s", partners++ ? ", " : " the worst class is mostly mixed up with ",
                    r->names[j]);
    }
    if (partners)
        add(&t, "; ");
    else
        add(&t, " ");
    int conv = strstr(r->arch, "conv2d") != NULL;
    if (conv)
        add(&t, "more filters, more epochs or targeted augmentation of %s could separate it;",
            r->names[worst]);
    else
        add(&t, "a fully connected network sees no local shape, so a CNN (fnn train --arch cnn) "
                "should separate %s better;", r->names[worst]);
    if (fit == FIT_OVER)
        add(&t, " against over-fitting use stronger dropout or weight decay, augmentation, or stop "
                "at the best validation epoch;");
    else if (fit == FIT_UNDER)
        add(&t, " train longer or give the model more capacity;");
    if (miscal)
        add(&t, " temperature scaling on the validation split would fix the confidence;");
    if (weak >= 0)
        add(&t, " augmenting the training data with %s would address the weakest robustness axis;",
            fnn_perturbation_name((fnn_perturbation)weak));
    add(&t, " and every number here comes from a single training run and one test pass: "
            "repeating training with other seeds would give error bars.\n");
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
