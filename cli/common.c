/* Printing and option parsing shared by the subcommands. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "options.h"
#include "signals.h"
#include "util/outputs.h"
#include "util/text.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

const char *cli_options_from;
FILE *cli_error_stream;
const char *cli_where = "";

int cli_error(const char *cmd, int code, const char *fmt, ...)
{
    /* Messages quote names and tokens read from files: filtered, so that none runs as a
     * terminal escape sequence. */
    char small[1024], *msg = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof small && (msg = malloc((size_t)n + 1))) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (!msg) /* out of memory: the message cut short */
        msg = small;
    cli_signals_hold(); /* a signal ending the process: its effects are no error of ours */
    fnn_text_printable(msg, "\n\t");
    FILE *f = cli_error_stream ? cli_error_stream : stderr;
    /* Under mpirun every rank's messages reach one terminal: each says whose it is. */
    const char *where = *cli_where ? " (" : "";
    if (cli_options_from && code == EXIT_USAGE) {
        fprintf(f, "fnn %s%s%s%s: %s: the options stored in it are invalid: %s\n", cmd, where,
                cli_where, *where ? ")" : "", cli_options_from, msg);
        code = EXIT_RUNTIME;
    } else {
        fprintf(f, "fnn %s%s%s%s: %s\n", cmd, where, cli_where, *where ? ")" : "", msg);
    }
    if (msg != small)
        free(msg);
    return code;
}

int cli_lib_error(const char *cmd, const fnn_error *err)
{
    return cli_error(cmd, err->status == FNN_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME, "%s", err->msg);
}

int cli_int(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        cli_error(cmd, EXIT_USAGE, "%s: expected an integer in %ld..%ld, got '%s'", opt, lo, hi,
                  text);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
               double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        cli_error(cmd, EXIT_USAGE, "%s: expected a number in [%g, %g], got '%s'", opt, lo, hi,
                  text);
        return 0;
    }
    *out = v;
    return 1;
}

/* The path a split is read from, and the split of that path to read: --test-data for the test
 * split when it names one. A test set of its own may be a whole set (a lone folder tree, one
 * CSV or IDX file), read as its "train" split, or one with a test split of its own (an IDX or
 * CIFAR-10 directory, a tree with train/ and test/), read as "test". */
static const char *split_path(const cli_data_opts *d, const char *split, const char **read)
{
    *read = split;
    if (!d->test_data || strcmp(split, "test"))
        return d->data;
    struct stat sb;
    char **paths;
    int n;
    if (stat(d->test_data, &sb) == 0 && S_ISDIR(sb.st_mode) &&
        fnn_data_files(d->test_data, "test", NULL, &paths, &n, NULL) == FNN_OK) {
        for (int i = 0; i < n; i++)
            free(paths[i]);
        free(paths);
    } else {
        *read = "train";
    }
    return d->test_data;
}

static fnn_data_options data_options(const cli_data_opts *d)
{
    return (fnn_data_options){.channels = d->channels, .h = d->height, .w = d->width,
                              .skip_bad = d->skip_bad};
}

fnn_status cli_data_inputs(fnn_outputs *set, const cli_data_opts *d, const char *split,
                           fnn_error *err)
{
    const char *opt = d->test_data && !strcmp(split, "test") ? "--test-data" : "--data";
    fnn_data_options o = data_options(d);
    char **paths;
    int n;
    const char *path = split_path(d, split, &split);
    fnn_status s = fnn_data_files(path, split, &o, &paths, &n, err);
    for (int i = 0; i < n; i++) {
        if (s == FNN_OK)
            s = fnn_outputs_input(set, opt, paths[i], err);
        free(paths[i]);
    }
    free(paths);
    return s;
}

const char *cli_bad_option(char **argv)
{
    static char shortopt[3] = "-?";
    /* Inside a cluster such as -xy getopt has not moved optind; optopt then holds the letter.
     * For long options optopt is 0 or the option's code, above 255. */
    if (optopt > 0 && optopt < 256) {
        shortopt[1] = (char)optopt;
        return shortopt;
    }
    return argv[optind - 1];
}

static void shape_text(const fnn_layer_info *li, char *buf, size_t size)
{
    if (li->out_rank == 1)
        snprintf(buf, size, "(None, %d)", li->out_c);
    else /* Keras prints channels last */
        snprintf(buf, size, "(None, %d, %d, %d)", li->out_h, li->out_w, li->out_c);
}

void cli_thousands(size_t v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%zu", v), o = 0;
    for (int i = 0; i < n && o + 2 < (int)size; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

void print_summary(FILE *f, const fnn_model *m)
{
    /* Keras's columns, the first widened for long layer names. */
    int width = 28;
    for (int i = 0; i < fnn_model_num_layers(m); i++) {
        fnn_layer_info li;
        fnn_model_layer_info(m, i, &li);
        int len = (int)(strlen(li.name) + strlen(li.type)) + 4;
        width = len > width ? len : width;
    }
    char rule[128], dbl[128];
    int total_width = width + 37 < (int)sizeof rule ? width + 37 : (int)sizeof rule - 1;
    memset(rule, '_', (size_t)total_width);
    memset(dbl, '=', (size_t)total_width);
    rule[total_width] = dbl[total_width] = '\0';
    fprintf(f, "Model: \"sequential\"\n%s\n %-*s%-26s%s\n%s\n", rule, width, "Layer (type)",
            "Output Shape", "Param #", dbl);
    for (int i = 0; i < fnn_model_num_layers(m); i++) {
        fnn_layer_info li;
        fnn_model_layer_info(m, i, &li);
        char name[80], shape[48];
        snprintf(name, sizeof name, "%s (%s)", li.name, li.type);
        shape_text(&li, shape, sizeof shape);
        fprintf(f, " %-*s%-26s%zu\n", width, name, shape, li.nparams);
        if (i + 1 < fnn_model_num_layers(m))
            fprintf(f, "\n");
    }
    char total[32], trainable[32], frozen[32];
    size_t all = fnn_model_num_params(m), train = fnn_model_num_trainable(m);
    cli_thousands(all, total, sizeof total);
    cli_thousands(train, trainable, sizeof trainable);
    cli_thousands(all - train, frozen, sizeof frozen);
    fprintf(f, "%s\nTotal params: %s\nTrainable params: %s\nNon-trainable params: %s\n%s\n", dbl,
            total, trainable, frozen, rule);
}

cJSON *summary_json(const fnn_model *m)
{
    cJSON *o = cJSON_CreateObject();
    int c, h, w;
    fnn_model_input_shape(m, &c, &h, &w);
    cJSON_AddStringToObject(o, "arch", fnn_model_spec(m));
    int shape[3] = {c, h, w};
    cJSON_AddItemToObject(o, "input_shape", cJSON_CreateIntArray(shape, 3));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int i = 0; i < fnn_model_num_layers(m); i++) {
        fnn_layer_info li;
        fnn_model_layer_info(m, i, &li);
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "name", li.name);
        cJSON_AddStringToObject(l, "type", li.type);
        cJSON *s = cJSON_AddArrayToObject(l, "output_shape");
        if (li.out_rank == 1) {
            cJSON_AddItemToArray(s, cJSON_CreateNumber(li.out_c));
        } else {
            int chw[3] = {li.out_c, li.out_h, li.out_w};
            for (int j = 0; j < 3; j++)
                cJSON_AddItemToArray(s, cJSON_CreateNumber(chw[j]));
        }
        cJSON_AddNumberToObject(l, "params", (double)li.nparams);
        cJSON_AddItemToArray(layers, l);
    }
    cJSON_AddNumberToObject(o, "total_params", (double)fnn_model_num_params(m));
    cJSON_AddNumberToObject(o, "trainable_params", (double)fnn_model_num_trainable(m));
    return o;
}

void print_normalization(FILE *f, const fnn_model *m)
{
    int c, h, w;
    float mean[3], std[3];
    fnn_model_input_shape(m, &c, &h, &w);
    if (!fnn_model_normalization(m, mean, std)) {
        fprintf(f, "normalization: scale, pixel / 255\n");
        return;
    }
    fprintf(f, "normalization: standardize, per channel (pixel / 255 - mean) / std with mean");
    for (int i = 0; i < c; i++)
        fprintf(f, "%s %.4f", i ? "," : "", mean[i]);
    fprintf(f, " and std");
    for (int i = 0; i < c; i++)
        fprintf(f, "%s %.4f", i ? "," : "", std[i]);
    fprintf(f, "\n");
}

cJSON *normalization_json(const fnn_model *m)
{
    int c, h, w;
    float mean[3], std[3];
    fnn_model_input_shape(m, &c, &h, &w);
    cJSON *j = cJSON_CreateObject();
    if (!fnn_model_normalization(m, mean, std)) {
        cJSON_AddStringToObject(j, "kind", "scale");
        return j;
    }
    cJSON_AddStringToObject(j, "kind", "standardize");
    cJSON_AddItemToObject(j, "mean", cJSON_CreateFloatArray(mean, c));
    cJSON_AddItemToObject(j, "std", cJSON_CreateFloatArray(std, c));
    return j;
}

void print_evaluation(FILE *f, const char *split, const fnn_metrics *mt,
                      const char *const *class_names)
{
    fprintf(f, "%s: %d images, loss %.4f, accuracy %.4f\n\n", split, mt->n, mt->loss,
            mt->accuracy);
    char *conf = fnn_format_confusion(mt, class_names);
    char *report = fnn_format_report(mt, class_names, 4);
    fprintf(f, "Confusion matrix (%s)\n%s\nClassification report (%s)\n%s", split,
            conf ? conf : "(out of memory)\n", split, report ? report : "(out of memory)\n");
    free(conf);
    free(report);
}

/* NaN is not JSON: it becomes null. */
static cJSON *number(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

cJSON *metrics_json(const fnn_metrics *mt, const char *const *class_names)
{
    cJSON *o = cJSON_CreateObject();
    int k = mt->nclasses;
    cJSON_AddNumberToObject(o, "images", mt->n);
    cJSON_AddItemToObject(o, "loss", number(mt->loss));
    cJSON_AddItemToObject(o, "accuracy", number(mt->accuracy));
    cJSON *conf = cJSON_AddArrayToObject(o, "confusion_matrix");
    for (int i = 0; i < k; i++) {
        cJSON *row = cJSON_CreateArray();
        for (int j = 0; j < k; j++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)mt->confusion[i * k + j]));
        cJSON_AddItemToArray(conf, row);
    }
    cJSON *classes = cJSON_AddArrayToObject(o, "classes");
    for (int i = 0; i < k; i++) {
        cJSON *c = cJSON_CreateObject();
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        cJSON_AddNumberToObject(c, "index", i);
        cJSON_AddStringToObject(c, "label", class_names ? class_names[i] : idx);
        cJSON_AddNumberToObject(c, "precision", mt->precision[i]);
        cJSON_AddNumberToObject(c, "recall", mt->recall[i]);
        cJSON_AddNumberToObject(c, "f1", mt->f1[i]);
        cJSON_AddNumberToObject(c, "support", (double)mt->support[i]);
        cJSON_AddItemToArray(classes, c);
    }
    cJSON *macro = cJSON_AddObjectToObject(o, "macro_avg");
    cJSON_AddNumberToObject(macro, "precision", mt->macro_precision);
    cJSON_AddNumberToObject(macro, "recall", mt->macro_recall);
    cJSON_AddNumberToObject(macro, "f1", mt->macro_f1);
    cJSON *weighted = cJSON_AddObjectToObject(o, "weighted_avg");
    cJSON_AddNumberToObject(weighted, "precision", mt->weighted_precision);
    cJSON_AddNumberToObject(weighted, "recall", mt->weighted_recall);
    cJSON_AddNumberToObject(weighted, "f1", mt->weighted_f1);
    return o;
}

void print_json(cJSON *doc)
{
    char *text = cJSON_Print(doc);
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        free(text);
    }
}

int cli_data_option(const char *cmd, unsigned bit, int id, const char *arg, cli_data_opts *d)
{
    int choice;
    switch (id) {
    case OPT_DATA: d->data = arg; return 1;
    case OPT_TEST_DATA: d->test_data = arg; return 1;
    case OPT_SKIP_BAD: d->skip_bad = 1; return 1;
    case OPT_IMAGE_SIZE:
        return cli_parse_size(cmd, "--image-size", arg, &d->height, &d->width) ? 1 : -1;
    case OPT_CHANNELS:
        if (!cli_opt_choice(cmd, bit, id, arg, &choice))
            return -1;
        d->channels = choice ? 3 : 1;
        return 1;
    case OPT_NORMALIZE:
        if (!cli_opt_choice(cmd, bit, id, arg, &choice))
            return -1;
        d->standardize = choice;
        return 1;
    default: return 0;
    }
}

static void on_load_progress(void *user, long done, long total)
{
    cli_progress *bar = user;
    bar->total = total > 0 ? total : 1;
    progress_update(bar, done);
}

int cli_load(const char *cmd, const cli_data_opts *d, const char *split, long limit,
             fnn_dataset *out, cli_data_read *how)
{
    cli_progress bar;
    progress_begin(&bar, "loading", 1);
    fnn_data_options o = data_options(d);
    o.on_progress = on_load_progress;
    o.user = &bar;
    fnn_error err = {0};
    fnn_source *src;
    const char *path = split_path(d, split, &split);
    fnn_status s = fnn_source_open(path, split, &o, &src, &err);
    progress_end(&bar);
    if (s != FNN_OK)
        return cli_lib_error(cmd, &err);
    if (how)
        *how = (cli_data_read){.format = fnn_source_format(src),
                               .skipped = fnn_source_skipped(src), .path = path};
    fnn_source_take(src, out);
    fnn_source_close(src);
    if (limit > 0 && limit < out->n)
        out->n = (int)limit;
    return EXIT_OK;
}

int load_split(const char *cmd, const cli_data_opts *d, const char *split, long limit,
               fnn_dataset *out)
{
    return cli_load(cmd, d, split, limit, out, NULL);
}

static int is_dir(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    return n > 0 && (size_t)n < sizeof path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int cli_has_test_split(const cli_data_opts *d, fnn_data_format f)
{
    if (d->test_data)
        return 1;
    struct stat sb;
    if (stat(d->data, &sb) != 0 || S_ISDIR(sb.st_mode))
        /* A folder tree splits by its train/ and test/ folders; an IDX or CIFAR-10 directory
         * always has a test split (a missing file is then an error that names it). */
        return f != FNN_FORMAT_FOLDER || (is_dir(d->data, "train") && is_dir(d->data, "test"));
    /* A file holds one split; the test file is named for it, with "test" for "train". */
    const char *base = strrchr(d->data, '/');
    return strstr(base ? base + 1 : d->data, "train") != NULL;
}

/* Whether path names Fashion-MNIST: a component with "fashion" in it, any case. */
static int names_fashion(const char *path)
{
    for (const char *p = path; *p; p++)
        if (!strncasecmp(p, "fashion", 7))
            return 1;
    return 0;
}

char **cli_class_names(const fnn_dataset *d, fnn_data_format f, const char *path)
{
    int k = d->nclasses;
    char **names = calloc((size_t)(k > 0 ? k : 1), sizeof *names);
    if (!names)
        return NULL;
    /* IDX and CSV files name no classes. Fashion-MNIST's names are right only for
     * Fashion-MNIST, which MNIST, KMNIST and EMNIST share the file names and the size with:
     * its Debian directory (the default), or ten classes under a path that says "fashion"
     * (Kaggle's fashion-mnist_train.csv). */
    const char *const *fashion = (f == FNN_FORMAT_IDX || f == FNN_FORMAT_CSV) && k == 10 &&
                                         (!strcmp(path, FNN_DEFAULT_DATA_DIR) ||
                                          names_fashion(path))
                                     ? fnn_fashion_class_names()
                                     : NULL;
    for (int i = 0; i < k; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        const char *name = d->class_names ? d->class_names[i] : fashion ? fashion[i] : idx;
        if (!(names[i] = strdup(name))) {
            fnn_class_names_free(names, i);
            return NULL;
        }
    }
    return names;
}

int cli_check_fits(const char *cmd, const fnn_model *m, const char *const *names,
                   const fnn_dataset *d, const char *what, const char *path)
{
    int c, h, w, k = fnn_model_num_classes(m);
    fnn_model_input_shape(m, &c, &h, &w);
    if (d->c != c || d->h != h || d->w != w)
        return cli_error(cmd, EXIT_RUNTIME,
                         "%s: the %s set's images are %dx%dx%d but the model takes %dx%dx%d "
                         "(--image-size and --channels convert images as they are read)",
                         path, what, d->c, d->h, d->w, c, h, w);
    if (d->nclasses > k)
        return cli_error(cmd, EXIT_RUNTIME, "%s: the %s set has %d classes but the model %d",
                         path, what, d->nclasses, k);
    for (int i = 0; d->class_names && names && i < d->nclasses; i++)
        if (strcmp(d->class_names[i], names[i]))
            return cli_error(cmd, EXIT_RUNTIME,
                             "%s: the %s set's class %d is \"%s\" but the model's is \"%s\"",
                             path, what, i, d->class_names[i], names[i]);
    fnn_error err = {0};
    if (fnn_check_data(m, d, what, &err) != FNN_OK)
        return cli_error(cmd, EXIT_RUNTIME, "%s: %s", path, err.msg);
    return EXIT_OK;
}

/* A preset (mlp, cnn, resnet) is one word: a layer token has a ':' or is one layer. */
static int is_preset(const char *arch, const fnn_model *m)
{
    return !strpbrk(arch, " \t\n:") && fnn_model_num_layers(m) > 1;
}

fnn_model *cli_model_for(const char *cmd, const char *arch, int c, int h, int w, int k,
                         const char *classes_from, int *rc)
{
    fnn_error err = {0};
    fnn_model *m = fnn_model_create(arch, c, h, w, &err);
    if (!m) { /* a bad spec is a usage error; running out of memory is not */
        *rc = cli_error(cmd, err.status == FNN_ERR_NOMEM ? EXIT_RUNTIME : EXIT_USAGE, "%s",
                        err.msg);
        return NULL;
    }
    int units = fnn_model_num_classes(m);
    if (units == k)
        return m;
    /* A preset's head is made for the data's classes: its canonical spec with the last token,
     * "dense:10:softmax", given k units. */
    const char *spec = fnn_model_spec(m), *last = strrchr(spec, ' ');
    char tail[32];
    snprintf(tail, sizeof tail, "dense:%d:softmax", units);
    if (is_preset(arch, m) && last && !strcmp(last + 1, tail)) {
        size_t len = (size_t)(last - spec);
        char *head = malloc(len + 32);
        fnn_model *fit = NULL;
        if (head) {
            snprintf(head, len + 32, "%.*s dense:%d:softmax", (int)len, spec, k);
            fit = fnn_model_create(head, c, h, w, &err);
            free(head);
        }
        else
            err = (fnn_error){FNN_ERR_NOMEM, "out of memory"};
        fnn_model_free(m);
        if (!fit)
            *rc = cli_lib_error(cmd, &err);
        return fit;
    }
    fnn_model_free(m);
    *rc = cli_error(cmd, EXIT_USAGE,
                    "%s %d classes but the model's last layer has %d units: end --arch with "
                    "dense:%d:softmax",
                    classes_from, k, units, k);
    return NULL;
}
