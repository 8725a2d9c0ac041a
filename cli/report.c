/* fnn report: one HTML page (and its figures as PNG and SVG) about one or more saved models. */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"
#include "options.h"
#include "report/report.h"
#include "util/outputs.h"
#include "util/text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: fnn report MODEL [MODEL ...] [--out REPORT.html] [options]\n"
    "\n"
    "Writes one self-contained HTML page about each model, measured on the test split of --data\n"
    "(Fashion-MNIST's by default) read as the first model takes it (--image-size and --channels\n"
    "default to its input): training curves (from the history saved in the model), confusion\n"
    "matrices (counts, and row-normalised on a fixed 0-1 scale), per-class precision/recall/F1\n"
    "with the classification report, the most confident mistakes and most confused class pairs\n"
    "(in colour for a colour model), saliency maps (gradient, SmoothGrad, integrated gradients;\n"
    "laid over each class's mean image for a colour model) and an occlusion map, robustness\n"
    "curves (noise, shift, rotation, occlusion, contrast), a reliability diagram with the\n"
    "expected calibration error, and findings written from those numbers. With several models\n"
    "it adds a comparison table and overlaid curves. Figures are embedded in the page and also\n"
    "saved as PNG and SVG in REPORT_files/ beside it.\n"
    "\n";

static const char usage_end[] =
    "\n"
    "The slow steps (saliency, occlusion, robustness) show a progress bar when stderr is a\n"
    "terminal. The study's MLP takes seconds; a CNN minutes on two cores: --limit 1000 gives a\n"
    "quick look.\n"
    "Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.\n";

typedef struct {
    int model, nmodels;
    const char *stem;
    int tty;
} progress_state;

static void on_step(void *user, const char *step, int done, int total)
{
    const progress_state *ps = user;
    if (!ps->tty)
        return;
    int width = 24, filled = width * done / total;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '=' : (i == filled ? '>' : '.');
    bar[width] = '\0';
    fprintf(stderr, "\r\033[Kmodel %d/%d %s [%s] %d/%d %s", ps->model + 1, ps->nmodels, ps->stem,
            bar, done, total, step);
    fflush(stderr);
}

/* Figure files are named after the model's file stem: two models with the same stem, or one
 * called "compare" (the comparison's prefix), get a number appended. */
static fnn_status unique_stem(fnn_report_model *models, int i, fnn_error *err)
{
    int clash = !strcmp(models[i].stem, "compare");
    for (int j = 0; j < i; j++)
        clash |= !strcmp(models[j].stem, models[i].stem);
    if (!clash)
        return FNN_OK;
    size_t len = strlen(models[i].stem) + 16;
    char *s = malloc(len);
    if (!s) {
        *err = (fnn_error){FNN_ERR_NOMEM, "out of memory"};
        return FNN_ERR_NOMEM;
    }
    snprintf(s, len, "%s_%d", models[i].stem, i + 1);
    free(models[i].stem);
    models[i].stem = s;
    return FNN_OK;
}

/* "report.html" -> "report_files" beside it. */
static char *files_dir_for(const char *html)
{
    size_t len = strlen(html), cut = len;
    if (len > 5 && !strcmp(html + len - 5, ".html"))
        cut = len - 5;
    else if (len > 4 && !strcmp(html + len - 4, ".htm"))
        cut = len - 4;
    char *dir = malloc(cut + 8);
    if (dir)
        snprintf(dir, cut + 8, "%.*s_files", (int)cut, html);
    return dir;
}

static cJSON *figures_json(const fnn_report_figures *f)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < f->n; i++) {
        const fnn_report_figure *x = &f->items[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", x->name);
        cJSON_AddStringToObject(o, "kind", x->kind);
        cJSON_AddStringToObject(o, "title", x->title);
        cJSON_AddStringToObject(o, "png", x->png_path);
        cJSON_AddStringToObject(o, "svg", x->svg_path);
        cJSON_AddNumberToObject(o, "width", x->fig.width);
        cJSON_AddNumberToObject(o, "height", x->fig.height);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static cJSON *model_json(const fnn_report_model *r, const fnn_report_figures *figs)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_file", r->path);
    cJSON_AddStringToObject(o, "name", r->stem);
    cJSON_AddStringToObject(o, "arch", r->arch);
    cJSON_AddNumberToObject(o, "params", (double)r->nparams);
    cJSON_AddNumberToObject(o, "epochs", r->epochs);
    cJSON_AddItemToObject(o, "test", metrics_json(&r->mt, (const char *const *)r->names));
    int n = r->epochs;
    cJSON_AddItemToObject(o, "final_train_accuracy", num(n ? r->train_acc[n - 1] : NAN));
    cJSON_AddItemToObject(o, "final_val_accuracy", num(n ? r->val_acc[n - 1] : NAN));
    cJSON *cal = cJSON_AddObjectToObject(o, "calibration");
    cJSON_AddNumberToObject(cal, "bins", r->cal.nbins);
    cJSON_AddItemToObject(cal, "ece", num(r->cal.ece));
    cJSON_AddItemToObject(cal, "mean_confidence", num(r->mean_confidence));
    cJSON *occ = cJSON_AddObjectToObject(o, "occlusion");
    cJSON_AddNumberToObject(occ, "images", r->occlusion_images);
    cJSON_AddNumberToObject(occ, "patch", r->patch);
    cJSON_AddNumberToObject(occ, "stride", r->stride);
    cJSON_AddItemToObject(occ, "base_accuracy", num(r->occlusion_base));
    float top = 0;
    for (int i = 0; i < r->h * r->w; i++)
        top = r->occlusion[i] > top ? r->occlusion[i] : top;
    cJSON_AddItemToObject(occ, "max_drop", num(top));
    cJSON *rob = cJSON_AddObjectToObject(o, "robustness");
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        if (!r->nlevels[p])
            continue;
        cJSON *e = cJSON_AddObjectToObject(rob, fnn_perturbation_name((fnn_perturbation)p));
        cJSON_AddItemToObject(e, "levels", cJSON_CreateDoubleArray(r->levels[p], r->nlevels[p]));
        cJSON_AddItemToObject(e, "accuracy", cJSON_CreateDoubleArray(r->robust[p], r->nlevels[p]));
    }
    cJSON *fl = cJSON_AddArrayToObject(o, "findings");
    char *text = fnn_report_findings(r);
    for (char *line = text, *next; line && *line; line = next) {
        if ((next = strchr(line, '\n')))
            *next++ = '\0';
        cJSON_AddItemToArray(fl, cJSON_CreateString(line));
    }
    free(text);
    cJSON_AddItemToObject(o, "figures", figures_json(figs));
    return o;
}

int cmd_report(int argc, char **argv)
{
    cli_data_opts data = CLI_DATA_DEFAULT;
    const char *out = "report.html";
    long limit = 0, threads = 0, sal = 100, occ = 1000, patch = 4, stride = 2, seed = 42;
    int json = 0, c, choice;
    fnn_tta tta = FNN_TTA_NONE;
    while ((c = cli_next_option("report", CLI_REPORT, argc, argv)) != -1) {
        long *value = NULL;
        switch (c) {
        case 0: return EXIT_USAGE;
        case 'h':
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_REPORT);
            fputs(usage_end, stdout);
            return EXIT_OK;
        case OPT_OUT: out = optarg; break;
        case OPT_JSON: json = 1; break;
        case OPT_LIMIT: value = &limit; break;
        case OPT_SALIENCY_IMAGES: value = &sal; break;
        case OPT_OCCLUSION_IMAGES: value = &occ; break;
        case OPT_PATCH: value = &patch; break;
        case OPT_STRIDE: value = &stride; break;
        case OPT_SEED: value = &seed; break;
        case OPT_THREADS: value = &threads; break;
        case OPT_TTA:
            if (!cli_opt_choice("report", CLI_REPORT, c, optarg, &choice)) return EXIT_USAGE;
            tta = (fnn_tta)choice;
            break;
        default:
            switch (cli_data_option("report", CLI_REPORT, c, optarg, &data)) {
            case 1: break;
            case 0: return cli_unhandled_option("report", CLI_REPORT, c);
            default: return EXIT_USAGE;
            }
        }
        if (value && !cli_opt_int("report", CLI_REPORT, c, optarg, value))
            return EXIT_USAGE;
    }
    int n = argc - optind;
    if (n < 1)
        return cli_error("report", EXIT_USAGE, "expected one or more MODEL files (see fnn report "
                                               "--help)");

    fnn_error err = {0};
    fnn_dataset test = {0};
    fnn_report_model *models = calloc((size_t)n, sizeof *models);
    fnn_report_figures *figs = calloc((size_t)n, sizeof *figs);
    fnn_report_figures compare = {0};
    char *files_dir = files_dir_for(out);
    fnn_outputs *files = fnn_outputs_new();
    int rc = EXIT_OK, collected = 0;
    if (!models || !figs || !files_dir || !files) {
        rc = cli_error("report", EXIT_RUNTIME, "out of memory");
        goto done;
    }
    /* Checked before the slow part: no output may replace a model or the data, and the figures
     * folder must be one fnn made. Both outputs are put in place only once all is written. */
    fnn_status fs = cli_data_inputs(files, &data, "test", &err);
    if (fs == FNN_OK) /* not read, but the user's data all the same */
        fs = cli_data_inputs(files, &data, "train", &err);
    for (int i = 0; i < n && fs == FNN_OK; i++)
        fs = fnn_outputs_input(files, "the model", argv[optind + i], &err);
    if (fs == FNN_OK)
        fs = fnn_outputs_file(files, "--out", out, FNN_OUT_STAGED, &err);
    if (fs == FNN_OK)
        fs = fnn_outputs_dir(files, "--out's figures folder", files_dir, ".fnn-report",
                             FNN_OUT_STAGED, &err);
    if (fs != FNN_OK) {
        rc = cli_lib_error("report", &err);
        goto done;
    }
    /* The test split is read once, for every model: as the first one takes it (each model is
     * checked against it as it is measured). */
    fnn_model_meta meta = {0};
    fnn_model *first = fnn_model_load(argv[optind], &meta, &err);
    if (!first) {
        rc = cli_error("report", EXIT_RUNTIME, "%s", err.msg);
        goto done;
    }
    int k = fnn_model_num_classes(first);
    char **names = fnn_class_names(meta.class_names_json, k);
    rc = names ? cli_load_for_model("report", &data, "test", limit, first,
                                    meta.class_names_json ? (const char *const *)names : NULL,
                                    &test, NULL)
               : cli_error("report", EXIT_RUNTIME, "out of memory");
    fnn_class_names_free(names, k);
    fnn_model_meta_free(&meta);
    fnn_model_free(first);
    if (rc)
        goto done;
    progress_state ps = {.nmodels = n, .tty = isatty(2)};
    fnn_report_options opts = {.threads = (int)threads, .tta = tta,
                               .saliency_images = (int)sal, .occlusion_images = (int)occ,
                               .patch = (int)patch, .stride = (int)stride,
                               .seed = (uint64_t)seed, .progress = on_step, .user = &ps};
    for (int i = 0; i < n; i++) {
        ps.model = i;
        ps.stem = argv[optind + i];
        fnn_status st = fnn_report_collect(argv[optind + i], &test, &opts, &models[i], &err);
        if (st == FNN_OK) {
            collected++;
            st = unique_stem(models, i, &err);
        }
        if (st == FNN_OK)
            st = fnn_report_model_figures(&models[i], &figs[i], &err);
        if (ps.tty)
            fprintf(stderr, "\r\033[K");
        if (st != FNN_OK) {
            rc = cli_lib_error("report", &err);
            goto done;
        }
    }
    cli_discard_on_signal(files);
    if (fnn_report_compare_figures(models, n, &compare, &err) != FNN_OK ||
        fnn_outputs_stage(files, &err) != FNN_OK ||
        fnn_report_write_html(fnn_outputs_path(files, out), files_dir,
                              fnn_outputs_path(files, files_dir), models, n, figs, &compare,
                              &err) != FNN_OK ||
        fnn_outputs_commit(files, &err) != FNN_OK) {
        rc = cli_lib_error("report", &err);
        goto done;
    }
    int nfig = compare.n;
    for (int i = 0; i < n; i++)
        nfig += figs[i].n;
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "report", out);
        cJSON_AddStringToObject(doc, "files_dir", files_dir);
        cJSON_AddNumberToObject(doc, "test_images", test.n);
        cJSON_AddStringToObject(doc, "tta", tta == FNN_TTA_FLIP ? "flip" : "none");
        cJSON_AddNumberToObject(doc, "figures", nfig);
        cJSON *ms = cJSON_AddArrayToObject(doc, "models");
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(ms, model_json(&models[i], &figs[i]));
        cJSON_AddItemToObject(doc, "comparison_figures", figures_json(&compare));
        print_json(doc);
        cJSON_Delete(doc);
    } else {
        for (int i = 0; i < n; i++)
            printf("%s: test accuracy %.4f, macro F1 %.4f, ECE %.4f, %d figures\n",
                   models[i].path, models[i].mt.accuracy, models[i].mt.macro_f1,
                   models[i].cal.ece, figs[i].n);
        printf("wrote %s (%d figures, each also as PNG and SVG in %s/)\n", out, nfig, files_dir);
    }
done:
    for (int i = 0; i < collected; i++)
        fnn_report_model_free(&models[i]);
    for (int i = 0; figs && i < n; i++)
        fnn_report_figures_free(&figs[i]);
    fnn_report_figures_free(&compare);
    free(models);
    free(figs);
    cli_discard_on_signal(NULL);
    fnn_outputs_free(files);
    free(files_dir);
    fnn_dataset_free(&test);
    return rc;
}
