/* fnn train: the study by default. Trains, validates every epoch, evaluates on the test set,
 * prints the report and writes the model and its history. */
#include "cli.h"
#include "util/atomic.h"

#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: fnn train [options]\n"
    "\n"
    "Trains a classifier on Fashion-MNIST (by default the study's MLP), validates it after\n"
    "every epoch, evaluates it once on the test set and saves it.\n"
    "\n"
    "data:\n"
    "  --data DIR          IDX files (gzipped or plain) [" FNN_DEFAULT_DATA_DIR "]\n"
    "  --val-split X       fraction of the training file held out for validation, taken from\n"
    "                      its end as Keras does [0.2]\n"
    "  --limit N           use only the first N images of the training file [all]\n"
    "  --test-limit N      evaluate on the first N test images [all]\n"
    "  --no-test           do not read the test set at all (model selection on validation)\n"
    "model and optimisation:\n"
    "  --arch SPEC         architecture spec or preset [mlp = \"" FNN_DEFAULT_ARCH "\"]\n"
    "                      tokens: flatten, dense:UNITS[:relu|softmax|linear], dropout:RATE,\n"
    "                      conv2d:FILTERS:KERNEL[:sSTRIDE][:same|valid][:nobias][:he][:relu],\n"
    "                      maxpool:SIZE[:STRIDE], avgpool:SIZE[:STRIDE], globalavgpool,\n"
    "                      batchnorm[:MOMENTUM[:EPS]], relu, leakyrelu[:ALPHA], elu[:ALPHA],\n"
    "                      tanh, sigmoid, and residual ... end around a block that keeps its\n"
    "                      input's shape; presets: mlp, cnn, resnet (fnn summary --arch NAME)\n"
    "  --epochs N          [10]\n"
    "  --batch-size N      [32]\n"
    "  --optimizer NAME    adam, adamw or sgd [adam]\n"
    "  --lr X              learning rate [0.001 for adam, 0.01 for sgd]\n"
    "  --momentum X        SGD momentum [0]\n"
    "  --weight-decay X    on kernels: L2 (X w added to the gradient) with adam and sgd,\n"
    "                      decoupled with adamw [0; 0.004 for adamw]\n"
    "  --seed N            seeds initialisation, shuffling and dropout [42]; the same seed and\n"
    "                      thread count give the same numbers, bit for bit\n"
    "  --threads N         threads to use, 0 for every core [0]\n"
    "output:\n"
    "  --out MODEL         model file, safetensors [model.safetensors]\n"
    "  --history PATH      per-epoch metrics, CSV, or JSON if PATH ends in .json\n"
    "                      [MODEL without .safetensors, plus .history.csv]\n"
    "  --quiet             print nothing but errors\n"
    "  --json              print one JSON document with everything instead of text\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.\n";

typedef struct {
    const char *data, *arch, *out, *history;
    long limit, test_limit;
    double val_split;
    int quiet, json;
    int no_test;      /* leave the test set unread */
    fnn_train_config cfg;
} train_opts;

typedef struct {
    const train_opts *o;
    int tty;           /* stderr is a terminal: draw a progress bar */
    int nepochs;
} progress_state;

static void on_progress(void *user, const fnn_progress *p)
{
    const progress_state *ps = user;
    if (!ps->tty)
        return;
    int width = 30, done = (int)((long)width * p->step / p->steps);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < done ? '=' : (i == done ? '>' : '.');
    bar[width] = '\0';
    double eta = p->step ? p->elapsed_s * (p->steps - p->step) / p->step : 0.0;
    fprintf(stderr, "\rEpoch %d/%d [%s] %d/%d  train loss %.4f acc %.4f  ETA %.1fs ", p->epoch,
            ps->nepochs, bar, p->step, p->steps, p->train_loss, p->train_acc, eta);
    fflush(stderr);
}

static int on_epoch(void *user, const fnn_epoch_stats *s)
{
    const progress_state *ps = user;
    if (ps->tty)
        fprintf(stderr, "\r\033[K");
    if (ps->o->quiet || ps->o->json)
        return 0;
    printf("Epoch %d/%d  %.2fs  train loss %.4f acc %.4f", s->epoch, ps->nepochs, s->seconds,
           s->train_loss, s->train_acc);
    if (!isnan(s->val_loss))
        printf("  validation loss %.4f acc %.4f", s->val_loss, s->val_acc);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* Whether the directory that would hold path exists and can take a new file: checked before
 * training rather than after it. */
static int writable_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return 0;
    int ok = access(dirname(copy), W_OK | X_OK) == 0;
    free(copy);
    return ok;
}

static int parse(int argc, char **argv, train_opts *o)
{
    enum { O_DATA = 256, O_ARCH, O_EPOCHS, O_BATCH, O_LR, O_VAL, O_SEED, O_THREADS, O_OUT,
           O_HISTORY, O_QUIET, O_JSON, O_LIMIT, O_TEST_LIMIT, O_OPT, O_MOMENTUM, O_DECAY,
           O_NO_TEST };
    static const struct option longopts[] = {
        {"data", required_argument, 0, O_DATA},       {"arch", required_argument, 0, O_ARCH},
        {"epochs", required_argument, 0, O_EPOCHS},   {"batch-size", required_argument, 0, O_BATCH},
        {"lr", required_argument, 0, O_LR},           {"val-split", required_argument, 0, O_VAL},
        {"seed", required_argument, 0, O_SEED},       {"threads", required_argument, 0, O_THREADS},
        {"out", required_argument, 0, O_OUT},         {"history", required_argument, 0, O_HISTORY},
        {"quiet", no_argument, 0, O_QUIET},           {"json", no_argument, 0, O_JSON},
        {"limit", required_argument, 0, O_LIMIT},     {"test-limit", required_argument, 0, O_TEST_LIMIT},
        {"optimizer", required_argument, 0, O_OPT},   {"momentum", required_argument, 0, O_MOMENTUM},
        {"weight-decay", required_argument, 0, O_DECAY}, {"no-test", no_argument, 0, O_NO_TEST},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0},
    };
    double lr = NAN, momentum = 0.0, decay = NAN;
    long v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return -1;
        case O_DATA: o->data = optarg; break;
        case O_ARCH: o->arch = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_HISTORY: o->history = optarg; break;
        case O_QUIET: o->quiet = 1; break;
        case O_JSON: o->json = 1; break;
        case O_NO_TEST: o->no_test = 1; break;
        case O_EPOCHS:
            if (!cli_int("train", "--epochs", optarg, 1, 100000, &v)) return EXIT_USAGE;
            o->cfg.epochs = (int)v;
            break;
        case O_BATCH:
            if (!cli_int("train", "--batch-size", optarg, 1, 65536, &v)) return EXIT_USAGE;
            o->cfg.batch_size = (int)v;
            break;
        case O_SEED:
            if (!cli_int("train", "--seed", optarg, 0, 0x7FFFFFFFL, &v)) return EXIT_USAGE;
            o->cfg.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if (!cli_int("train", "--threads", optarg, 0, 1024, &v)) return EXIT_USAGE;
            o->cfg.threads = (int)v;
            break;
        case O_LIMIT:
            if (!cli_int("train", "--limit", optarg, 1, 100000000, &o->limit)) return EXIT_USAGE;
            break;
        case O_TEST_LIMIT:
            if (!cli_int("train", "--test-limit", optarg, 1, 100000000, &o->test_limit))
                return EXIT_USAGE;
            break;
        case O_LR:
            if (!cli_double("train", "--lr", optarg, 1e-12, 1e3, &lr)) return EXIT_USAGE;
            break;
        case O_MOMENTUM:
            if (!cli_double("train", "--momentum", optarg, 0.0, 0.999999, &momentum))
                return EXIT_USAGE;
            break;
        case O_DECAY:
            if (!cli_double("train", "--weight-decay", optarg, 0.0, 1.0, &decay))
                return EXIT_USAGE;
            break;
        case O_VAL:
            if (!cli_double("train", "--val-split", optarg, 0.0, 0.99, &o->val_split))
                return EXIT_USAGE;
            break;
        case O_OPT:
            if (!strcmp(optarg, "adam"))
                o->cfg.optim = fnn_optim_default(FNN_OPT_ADAM);
            else if (!strcmp(optarg, "adamw"))
                o->cfg.optim = fnn_optim_default(FNN_OPT_ADAMW);
            else if (!strcmp(optarg, "sgd"))
                o->cfg.optim = fnn_optim_default(FNN_OPT_SGD);
            else
                return cli_error("train", EXIT_USAGE,
                                 "--optimizer: expected adam, adamw or sgd, got '%s'", optarg);
            break;
        case ':':
            return cli_error("train", EXIT_USAGE, "option '%s' needs a value (see fnn train --help)",
                             cli_bad_option(argv));
        default:
            return cli_error("train", EXIT_USAGE, "unknown option '%s' (see fnn train --help)",
                             cli_bad_option(argv));
        }
    }
    if (optind < argc)
        return cli_error("train", EXIT_USAGE, "unexpected argument '%s' (see fnn train --help)",
                         argv[optind]);
    if (!writable_dir(o->out))
        return cli_error("train", EXIT_RUNTIME, "--out %s: its directory does not exist or is not "
                         "writable", o->out);
    if (o->history && !writable_dir(o->history))
        return cli_error("train", EXIT_RUNTIME, "--history %s: its directory does not exist or "
                         "is not writable", o->history);
    if (o->history && !strcmp(o->history, o->out))
        return cli_error("train", EXIT_USAGE, "--history and --out name the same file '%s'",
                         o->out);
    if (!isnan(lr))
        o->cfg.optim.lr = (float)lr;
    if (!isnan(decay))
        o->cfg.optim.weight_decay = (float)decay;
    if (o->cfg.optim.kind == FNN_OPT_SGD)
        o->cfg.optim.momentum = (float)momentum;
    else if (momentum != 0.0)
        return cli_error("train", EXIT_USAGE, "--momentum applies to --optimizer sgd only");
    return EXIT_OK;
}

static char *default_history_path(const char *model_path)
{
    size_t len = strlen(model_path);
    const char *ext = ".safetensors";
    if (len > strlen(ext) && !strcmp(model_path + len - strlen(ext), ext))
        len -= strlen(ext);
    char *p = malloc(len + sizeof ".history.csv");
    if (p) {
        memcpy(p, model_path, len);
        strcpy(p + len, ".history.csv");
    }
    return p;
}

/* Per-epoch metrics as {"epoch": [...], "train_loss": [...], ...}. The copy stored in the
 * model leaves out the wall-clock seconds, so that the same seed gives the same file. */
static cJSON *history_json(const fnn_epoch_stats *st, int n, int with_seconds)
{
    cJSON *h = cJSON_CreateObject();
    const char *keys[] = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                          "seconds"};
    for (int k = 0; k < (with_seconds ? 6 : 5); k++) {
        cJSON *a = cJSON_AddArrayToObject(h, keys[k]);
        for (int i = 0; i < n; i++) {
            double v[] = {st[i].epoch, st[i].train_loss, st[i].train_acc, st[i].val_loss,
                          st[i].val_acc, st[i].seconds};
            cJSON_AddItemToArray(a, isfinite(v[k]) ? cJSON_CreateNumber(v[k]) : cJSON_CreateNull());
        }
    }
    return h;
}

/* Writes the history to a temporary file beside path; the caller commits it once the model is
 * saved, or aborts it, so that a failed run leaves neither file changed. */
static fnn_status write_history(const char *path, const fnn_epoch_stats *st, int n,
                                fnn_atomic_file **out, fnn_error *err)
{
    fnn_atomic_file *f;
    fnn_status s = fnn_atomic_open(path, &f, err);
    if (s != FNN_OK)
        return s;
    size_t len = strlen(path);
    if (len >= 5 && !strcmp(path + len - 5, ".json")) {
        cJSON *h = history_json(st, n, 1);
        char *text = cJSON_Print(h);
        cJSON_Delete(h);
        s = text ? fnn_atomic_printf(f, err, "%s\n", text) : FNN_ERR_NOMEM;
        free(text);
    } else {
        s = fnn_atomic_printf(f, err,
                              "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds\n");
        for (int i = 0; i < n && s == FNN_OK; i++)
            s = fnn_atomic_printf(f, err, "%d,%.6f,%.6f,%.6f,%.6f,%.4f\n", st[i].epoch,
                                  st[i].train_loss, st[i].train_acc, st[i].val_loss,
                                  st[i].val_acc, st[i].seconds);
    }
    if (s != FNN_OK) {
        fnn_atomic_abort(f);
        return s;
    }
    *out = f;
    return FNN_OK;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cmd_train(int argc, char **argv)
{
    train_opts o = {.data = FNN_DEFAULT_DATA_DIR, .arch = "mlp", .out = "model.safetensors",
                    .val_split = 0.2, .cfg = fnn_train_default()};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    FILE *out = (o.quiet || o.json) ? NULL : stdout;

    fnn_error err = {0};
    fnn_model *m = fnn_model_create(o.arch, 1, 28, 28, &err);
    if (!m)
        return cli_error("train", EXIT_USAGE, "%s", err.msg);

    fnn_dataset full = {0}, test = {0}, tr, val;
    fnn_epoch_stats *stats = NULL;
    char *history_path = NULL, *history_text = NULL;
    cJSON *doc = NULL;
    fnn_metrics mt = {0};
    double t_load = now_s();
    if ((rc = load_split("train", o.data, "train", o.limit, &full)) ||
        (!o.no_test && (rc = load_split("train", o.data, "t10k", o.test_limit, &test))))
        goto done;
    t_load = now_s() - t_load;
    if (fnn_dataset_split(&full, o.val_split, &tr, &val, &err) != FNN_OK) {
        rc = cli_lib_error("train", &err);
        goto done;
    }
    /* Checked now, so that a bad test file does not cost a training run first. */
    if (fnn_check_data(m, &full, "training", &err) != FNN_OK ||
        (!o.no_test && fnn_check_data(m, &test, "test", &err) != FNN_OK)) {
        rc = cli_lib_error("train", &err);
        goto done;
    }
    const char *const *names = fnn_fashion_class_names();
    if (out) {
        printf("fnn %s: training on %s\n", FNN_VERSION, o.data);
        printf("data: %d train / %d validation (last %g%% of the training file) / %d test images"
               " (loaded in %.2fs)\n\n", tr.n, val.n, 100.0 * o.val_split, test.n, t_load);
        print_summary(stdout, m);
        const fnn_optim_config *oc = &o.cfg.optim;
        if (oc->kind == FNN_OPT_SGD)
            printf("optimizer: sgd (lr %g, momentum %g", oc->lr, oc->momentum);
        else
            printf("optimizer: %s (lr %g, beta1 %g, beta2 %g, epsilon %g",
                   oc->kind == FNN_OPT_ADAMW ? "adamw" : "adam", oc->lr, oc->beta1, oc->beta2,
                   oc->eps);
        if (oc->weight_decay > 0.0f)
            printf(", weight decay %g", oc->weight_decay);
        printf(")");
        printf(", batch size %d, %d epochs, seed %llu, %d thread%s\n\n", o.cfg.batch_size,
               o.cfg.epochs, (unsigned long long)o.cfg.seed,
               o.cfg.threads ? o.cfg.threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
               o.cfg.threads == 1 ? "" : "s");
        fflush(stdout);
    }

    stats = calloc((size_t)o.cfg.epochs, sizeof *stats);
    if (!stats) {
        rc = cli_error("train", EXIT_RUNTIME, "out of memory");
        goto done;
    }
    progress_state ps = {&o, !o.quiet && isatty(STDERR_FILENO), o.cfg.epochs};
    o.cfg.on_progress = on_progress;
    o.cfg.on_epoch = on_epoch;
    o.cfg.user = &ps;
    fnn_model_init(m, o.cfg.seed);
    if (fnn_train(m, &tr, &val, &o.cfg, stats, &err) != FNN_OK) {
        rc = cli_lib_error("train", &err);
        goto done;
    }
    double train_s = 0.0, val_s = 0.0;
    for (int i = 0; i < o.cfg.epochs; i++) {
        train_s += stats[i].seconds;
        val_s += stats[i].val_seconds;
    }

    double t_eval = now_s();
    if (!o.no_test && fnn_evaluate(m, &test, o.cfg.threads, NULL, NULL, &mt, &err) != FNN_OK) {
        rc = cli_lib_error("train", &err);
        goto done;
    }
    t_eval = now_s() - t_eval;
    if (out) {
        printf("\ntraining: %d epochs in %.2fs (%.3fs per epoch), validation %.2fs", o.cfg.epochs,
               train_s, train_s / o.cfg.epochs, val_s);
        if (o.no_test)
            printf("; the test set was not read (--no-test)\n");
        else {
            printf("; test evaluation %.2fs\n\n", t_eval);
            print_evaluation(stdout, "test", &mt, names);
        }
    }

    cJSON *hist = history_json(stats, o.cfg.epochs, 0);
    history_text = cJSON_PrintUnformatted(hist);
    cJSON_Delete(hist);
    cJSON *names_json = cJSON_CreateStringArray(names, fnn_model_num_classes(m));
    char *names_text = cJSON_PrintUnformatted(names_json);
    cJSON_Delete(names_json);
    fnn_model_meta meta = {.class_names_json = names_text, .history_json = history_text};
    history_path = o.history ? strdup(o.history) : default_history_path(o.out);
    fnn_atomic_file *hist_file = NULL;
    fnn_status s = history_path ? write_history(history_path, stats, o.cfg.epochs, &hist_file, &err)
                                : FNN_ERR_NOMEM;
    if (s == FNN_OK && (s = fnn_model_save(m, &meta, o.out, &err)) != FNN_OK)
        fnn_atomic_abort(hist_file);
    if (s == FNN_OK)
        s = fnn_atomic_commit(hist_file, &err);
    free(names_text);
    if (s != FNN_OK) {
        rc = cli_error("train", EXIT_RUNTIME, "%s", history_path ? err.msg : "out of memory");
        goto done;
    }
    if (out)
        printf("\nsaved the model to %s and the history to %s\n", o.out, history_path);

    if (o.json) {
        doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "fnn_version", FNN_VERSION);
        cJSON_AddItemToObject(doc, "model", summary_json(m));
        cJSON *d = cJSON_AddObjectToObject(doc, "data");
        cJSON_AddStringToObject(d, "dir", o.data);
        cJSON_AddNumberToObject(d, "train", tr.n);
        cJSON_AddNumberToObject(d, "validation", val.n);
        cJSON_AddNumberToObject(d, "test", test.n);
        cJSON *c = cJSON_AddObjectToObject(doc, "config");
        cJSON_AddNumberToObject(c, "epochs", o.cfg.epochs);
        cJSON_AddNumberToObject(c, "batch_size", o.cfg.batch_size);
        static const char *const optimizers[] = {"adam", "sgd", "adamw"};
        cJSON_AddStringToObject(c, "optimizer", optimizers[o.cfg.optim.kind]);
        cJSON_AddNumberToObject(c, "weight_decay", o.cfg.optim.weight_decay);
        cJSON_AddNumberToObject(c, "lr", o.cfg.optim.lr);
        cJSON_AddNumberToObject(c, "seed", (double)o.cfg.seed);
        cJSON_AddNumberToObject(c, "threads", o.cfg.threads);
        cJSON_AddItemToObject(doc, "history", history_json(stats, o.cfg.epochs, 1));
        cJSON *t = cJSON_AddObjectToObject(doc, "seconds");
        cJSON_AddNumberToObject(t, "load", t_load);
        cJSON_AddNumberToObject(t, "train", train_s);
        cJSON_AddNumberToObject(t, "validation", val_s);
        cJSON_AddNumberToObject(t, "test", t_eval);
        cJSON_AddItemToObject(doc, "test", o.no_test ? cJSON_CreateNull() : metrics_json(&mt, names));
        cJSON_AddStringToObject(doc, "model_file", o.out);
        cJSON_AddStringToObject(doc, "history_file", history_path);
        print_json(doc);
    }
    rc = EXIT_OK;
done:
    cJSON_Delete(doc);
    fnn_metrics_free(&mt);
    free(stats);
    free(history_path);
    free(history_text);
    fnn_dataset_free(&full);
    fnn_dataset_free(&test);
    fnn_model_free(m);
    return rc;
}
