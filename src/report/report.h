/* `fnn report`: the numbers behind each model's section (collect.c), the findings written from
 * them (findings.c), the figures drawn from them (figures.c) and the page (html.c). */
#ifndef FNN_REPORT_REPORT_H
#define FNN_REPORT_REPORT_H

#include "fnn.h"
#include "report/chart.h"

#define FNN_REPORT_CAL_BINS 15

/* Everything the report shows about one model. Plain data: the findings can be computed from
 * made-up numbers. Pointers left NULL (or counts 0) mean "not measured" and are skipped. */
typedef struct {
    char *path;           /* the model file */
    char *stem;           /* its file name without directory and extension, for file names */
    char *arch;           /* the canonical spec */
    size_t nparams;
    int k;                /* classes */
    char **names;         /* (k) class names */
    int c, h, w;          /* image shape: channels (1 grey, 3 colour), rows, columns */

    int epochs;           /* training history, one entry per epoch; NaN where missing */
    double *epoch, *train_loss, *train_acc, *val_loss, *val_acc; /* (epochs) each */

    fnn_metrics mt;       /* test-set metrics */
    const fnn_dataset *test; /* the images evaluated (borrowed) */
    float *probs;         /* (test->n, k) */
    int *pred;            /* (test->n) */

    int saliency_images;  /* images per class the saliency maps average over */
    float *saliency[3];   /* (k, h*w) per fnn_saliency_method: gradient, SmoothGrad, integrated */
    float *mean_image;    /* (k, c*h*w) the mean test image of each class, in [0, 1] */
    int occlusion_images, patch, stride;
    float *occlusion;     /* (h, w) mean accuracy drop when a patch covering the pixel is masked */
    double occlusion_base;

    int nlevels[FNN_PERTURB_COUNT];
    const double *levels[FNN_PERTURB_COUNT]; /* (nlevels[p]), the library's defaults */
    double *robust[FNN_PERTURB_COUNT];       /* (nlevels[p]) accuracy at each level */

    fnn_calibration cal;  /* nbins 0 when not measured */
    double mean_confidence; /* mean top-1 probability over the test set */
} fnn_report_model;

typedef struct {
    int threads;
    /* The evaluation's (metrics, confusion matrix, calibration, confidence); saliency,
     * occlusion and robustness measure the model on the images alone. */
    fnn_tta tta;
    int saliency_images;  /* per class, for the saliency maps */
    int occlusion_images; /* the first N test images for the occlusion map */
    int patch, stride;    /* occlusion square and its step */
    uint64_t seed;        /* SmoothGrad noise and the robustness perturbations */
    /* Called before each slow step (done of total); may be NULL. */
    void (*progress)(void *user, const char *step, int done, int total);
    void *user;
} fnn_report_options;

/* The number of progress steps fnn_report_collect reports per model. */
#define FNN_REPORT_STEPS (5 + FNN_PERTURB_COUNT)

/* Loads the model at path and measures everything on test. On failure out is freed. */
fnn_status fnn_report_collect(const char *path, const fnn_dataset *test,
                              const fnn_report_options *o, fnn_report_model *out,
                              fnn_error *err);
void fnn_report_model_free(fnn_report_model *r);

/* A pair of classes the model mixes up: `count` test images of class `truth` predicted as `pred`. */
typedef struct {
    int truth, pred;
    int64_t count;
} fnn_confusion_pair;

/* The largest off-diagonal cells of the confusion matrix, largest first; returns how many
 * (at most max, only non-zero ones). */
int fnn_report_top_confusions(const fnn_metrics *mt, fnn_confusion_pair *pairs, int max);

/* The findings, one sentence or short paragraph per line, as a malloc'd string (NULL when out of
 * memory): best and worst classes, top confusions, train/validation gap, calibration, the
 * weakest robustness axis, flaws and next steps. */
char *fnn_report_findings(const fnn_report_model *r);

/* A figure with the names it is saved and shown under. */
typedef struct {
    char name[64];     /* file stem, e.g. "study_confusion" */
    char kind[32];     /* line, heatmap, bars or gallery */
    char title[160];
    char caption[512]; /* shown under it on the page */
    fnn_figure fig;
    char png_path[1024], svg_path[1024]; /* filled in once written */
} fnn_report_figure;

typedef struct {
    fnn_report_figure *items;
    int n, cap;
} fnn_report_figures;

void fnn_report_figures_free(fnn_report_figures *f);

/* Appends the figures of one model's section. */
fnn_status fnn_report_model_figures(const fnn_report_model *r, fnn_report_figures *out,
                                    fnn_error *err);
/* Appends the figures that compare several models (overlaid curves). */
fnn_status fnn_report_compare_figures(const fnn_report_model *models, int n,
                                      fnn_report_figures *out, fnn_error *err);

/* Writes the page to html_path, self-contained (figures as data URIs), and every figure as PNG and
 * SVG into the existing folder write_dir; the page and the figures' paths name files_dir, where
 * the caller puts write_dir (a temporary, so that a failed report leaves nothing behind).
 * per_model[i] holds model i's figures, compare those of the comparison (NULL or empty with one
 * model). */
fnn_status fnn_report_write_html(const char *html_path, const char *files_dir,
                                 const char *write_dir, const fnn_report_model *models, int n,
                                 fnn_report_figures *per_model, fnn_report_figures *compare,
                                 fnn_error *err);

#endif
