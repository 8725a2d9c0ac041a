/* fnn train: the study by default. Trains, validates every epoch, evaluates on the test set,
 * prints the report and writes the model and its history; the experiment options (augmentation,
 * schedules, early stopping, checkpoints, k-fold, transfer learning) map onto fnn_train_config. */
#include "cli.h"
#include "dist.h"
#include "options.h"
#include "util/atomic.h"
#include "util/clock.h"
#include "util/input.h"
#include "util/outputs.h"
#include "util/text.h"

#include <signal.h>
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: fnn train [options]\n"
    "\n"
    "Trains a classifier (by default the study's MLP) on Fashion-MNIST or on any image data\n"
    "--data names (IDX files, an image folder tree, a CSV file, CIFAR-10), validates it after\n"
    "every epoch, evaluates it once on the test set and saves it with its input shape,\n"
    "normalisation and class names. The model is made for the data's image shape and classes:\n"
    "a preset's last layer gets one unit per class.\n"
    "\n";

static const char usage_end[] =
    "\n"
    "Over several processes or machines (Open MPI): mpirun -np N fnn train ... Each rank\n"
    "computes its share of every batch and the gradients are summed before each update, so N\n"
    "ranks train the model one process trains; --batch-size stays the whole batch (at least\n"
    "N). Rank 0 alone validates, prints, tests and writes the files. Every rank must run the\n"
    "same fnn with the same options on the same data, or all stop before training.\n"
    "\n"
    "Exit status: 0 on success, 1 on a runtime error (a NaN loss included: the last good\n"
    "checkpoint is kept), 2 on a usage error, 130 when interrupted by Ctrl-C.\n";

#define MAX_FOLDS CLI_MAX_FOLDS

/* How --val-split holds images out. By format: IDX files and CIFAR-10's batches come in an
 * order of their own, whose end Keras holds out; folder trees and CSV files are often sorted
 * by class, whose end would be one class. */
enum { SPLIT_BY_FORMAT = 0, SPLIT_LAST, SPLIT_STRATIFIED };
static const char *const split_names[] = {"by format", "last", "stratified"};

typedef struct {
    cli_data_opts data;
    const char *arch, *out, *history;
    long limit, test_limit;
    double val_split;
    int quiet, json;
    int no_test;      /* leave the test set unread */
    const char *init_from, *resume;
    int classes[FNN_MAX_CLASSES], nclasses; /* --classes, in order; 0: all */
    long per_class;
    int folds;
    int reset_head;   /* --init-from leaves the last layer initialised */
    int split;        /* --split: SPLIT_BY_FORMAT, SPLIT_LAST or SPLIT_STRATIFIED */
    /* The options given that fix the run (CLI_RUN_SETUP), by id - OPT_FIRST: the last value as
     * typed ("" for a flag), or NULL; with --resume they are checked against the checkpoint. */
    const char *setup[OPT_END - OPT_FIRST];
    int data_given, out_given, history_given, epochs_given, val_given;
    const cli_recipe *recipe; /* the recipe --arch named, whose options were read first */
    /* --threads 0 (the default): cfg.threads is the count of the cores that other processes
     * left free while the data loaded (fnn_cores_probe), of `cores`; they kept `cores_busy`
     * busy on average. */
    int threads_auto, cores;
    double cores_busy;
    fnn_train_config cfg;
} train_opts;

typedef struct {
    const train_opts *o;
    int tty;           /* stderr is a terminal: draw a progress bar */
    int nepochs;
    /* Over several ranks (cli/dist.c): each rank's stats are its shard's; the epoch's are
     * summed over the ranks into stats, which the history is written from. */
    fnn_epoch_stats *stats; /* (nepochs) */
    double shard_rows;      /* this rank's rows of the epoch so far */
    fnn_error dist_err;     /* why summing them failed */
} progress_state;

/* The rows of each batch that this rank's shard computes, as the library splits them. */
static void on_step(void *user, const fnn_step_info *si)
{
    progress_state *ps = user;
    int64_t i = dist_rank(), n = dist_size();
    ps->shard_rows += (double)((int64_t)si->rows * (i + 1) / n - (int64_t)si->rows * i / n);
}

/* The epoch's training loss and accuracy over every rank's rows, in place of this rank's own:
 * every rank calls it once per epoch, as the library calls on_epoch on each. 0 when the ranks
 * could not be reached. */
static int sum_over_ranks(progress_state *ps, fnn_epoch_stats *s)
{
    float sums[3] = {(float)(s->train_loss * ps->shard_rows),
                     (float)(s->train_acc * ps->shard_rows), (float)ps->shard_rows};
    ps->shard_rows = 0.0;
    if (dist_allreduce_sum(sums, 3, &ps->dist_err) != FNN_OK)
        return 0;
    s->train_loss = sums[2] > 0.0f ? sums[0] / sums[2] : NAN;
    s->train_acc = sums[2] > 0.0f ? sums[1] / sums[2] : NAN;
    ps->stats[s->epoch - 1].train_loss = s->train_loss;
    ps->stats[s->epoch - 1].train_acc = s->train_acc;
    return 1;
}

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

static int on_epoch(void *user, const fnn_epoch_stats *given)
{
    progress_state *ps = user;
    fnn_epoch_stats all = *given, *s = &all;
    if (dist_size() > 1 && !sum_over_ranks(ps, s))
        return 1;
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

/* "5,6,7": distinct labels 0..255, at most FNN_MAX_CLASSES of them. */
static int parse_classes(const char *text, train_opts *o)
{
    const char *p = text;
    o->nclasses = 0;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 255 || (*end && *end != ',') || o->nclasses == FNN_MAX_CLASSES)
            return cli_error("train", EXIT_USAGE, "--classes: expected a comma-separated list of "
                             "labels in 0..255, got '%s'", text);
        for (int i = 0; i < o->nclasses; i++)
            if (o->classes[i] == v)
                return cli_error("train", EXIT_USAGE, "--classes: class %ld is listed twice", v);
        o->classes[o->nclasses++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p)
            return cli_error("train", EXIT_USAGE, "--classes: '%s' ends with a comma", text);
    }
    if (o->nclasses < 2)
        return cli_error("train", EXIT_USAGE, "--classes: a classifier needs at least 2 classes, "
                         "got '%s'", text);
    return EXIT_OK;
}

static int parse_options(int argc, char **argv, train_opts *o)
{
    double lr = NAN, momentum = 0.0, decay = NAN, x;
    long v;
    int c, choice, nesterov = 0;
    while ((c = cli_next_option("train", CLI_TRAIN, argc, argv)) != -1) {
        const cli_option *row = cli_option_of(CLI_TRAIN, c);
        if (row && (row->flags & CLI_RUN_SETUP))
            o->setup[c - OPT_FIRST] = optarg ? optarg : "";
        switch (c) {
        case 0: return EXIT_USAGE;
        case 'h':
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_TRAIN);
            fputs(usage_end, stdout);
            return -1;
        case OPT_DATA: o->data.data = optarg; o->data_given = 1; break;
        case OPT_ARCH: o->arch = optarg; break;
        case OPT_OUT: o->out = optarg; o->out_given = 1; break;
        case OPT_HISTORY: o->history = optarg; o->history_given = 1; break;
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_NO_TEST: o->no_test = 1; break;
        case OPT_NESTEROV: nesterov = 1; break;
        case OPT_AUG_FLIP: o->cfg.augment.flip = 1; break;
        case OPT_CHECKPOINT: o->cfg.checkpoint = optarg; break;
        case OPT_RESUME: o->resume = optarg; break;
        case OPT_INIT_FROM: o->init_from = optarg; break;
        case OPT_RESET_HEAD: o->reset_head = 1; break;
        case OPT_EPOCHS:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.epochs = (int)v;
            o->epochs_given = 1;
            break;
        case OPT_BATCH_SIZE:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.batch_size = (int)v;
            break;
        case OPT_SEED:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.seed = (uint64_t)v;
            break;
        case OPT_THREADS:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.threads = (int)v;
            break;
        case OPT_LIMIT:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &o->limit)) return EXIT_USAGE;
            break;
        case OPT_TEST_LIMIT:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &o->test_limit))
                return EXIT_USAGE;
            break;
        case OPT_LR:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &lr)) return EXIT_USAGE;
            break;
        case OPT_MOMENTUM:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &momentum))
                return EXIT_USAGE;
            break;
        case OPT_WEIGHT_DECAY:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &decay))
                return EXIT_USAGE;
            break;
        case OPT_VAL_SPLIT:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &o->val_split))
                return EXIT_USAGE;
            o->val_given = 1;
            break;
        case OPT_OPTIMIZER: {
            static const fnn_optimizer_kind kinds[] = {FNN_OPT_ADAM, FNN_OPT_ADAMW, FNN_OPT_SGD};
            if (!cli_opt_choice("train", CLI_TRAIN, c, optarg, &choice)) return EXIT_USAGE;
            o->cfg.optim = fnn_optim_default(kinds[choice]);
            break;
        }
        case OPT_LR_SCHEDULE: {
            static const fnn_lr_schedule_kind kinds[] = {FNN_LR_CONSTANT, FNN_LR_STEP, FNN_LR_COSINE,
                                                FNN_LR_PLATEAU, FNN_LR_ONECYCLE};
            if (!cli_opt_choice("train", CLI_TRAIN, c, optarg, &choice)) return EXIT_USAGE;
            o->cfg.schedule.kind = kinds[choice];
            break;
        }
        case OPT_LR_STEP_EPOCHS:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.schedule.step_epochs = (int)v;
            break;
        case OPT_LR_GAMMA:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.schedule.gamma = (float)x;
            break;
        case OPT_LR_PATIENCE:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.schedule.patience = (int)v;
            break;
        case OPT_LR_FACTOR:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.schedule.factor = (float)x;
            break;
        case OPT_LR_MIN:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.schedule.min_lr = (float)x;
            break;
        case OPT_LR_PEAK_AT:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.schedule.peak_at = (float)x;
            break;
        case OPT_WARMUP_EPOCHS:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.schedule.warmup_epochs = (int)v;
            break;
        case OPT_CLIP_NORM:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.clip_norm = (float)x;
            break;
        case OPT_LABEL_SMOOTHING:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.label_smoothing = (float)x;
            break;
        case OPT_BN_LR_SCALE:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.bn_lr_scale = (float)x;
            break;
        case OPT_EMA:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.ema = (float)x;
            break;
        case OPT_EMA_EVERY:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.ema_every = (int)v;
            break;
        case OPT_TTA:
            if (!cli_opt_choice("train", CLI_TRAIN, c, optarg, &choice)) return EXIT_USAGE;
            o->cfg.tta = (fnn_tta)choice;
            break;
        case OPT_AUG_SHIFT:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.augment.shift = (int)v;
            break;
        case OPT_AUG_ROTATE:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.augment.rotate = (float)x;
            break;
        case OPT_AUG_ERASE:
            if (!cli_opt_real("train", CLI_TRAIN, c, optarg, &x)) return EXIT_USAGE;
            o->cfg.augment.erase = (float)x;
            break;
        case OPT_EARLY_STOPPING:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.early_stopping = (int)v;
            break;
        case OPT_MONITOR:
            if (!cli_opt_choice("train", CLI_TRAIN, c, optarg, &choice)) return EXIT_USAGE;
            o->cfg.monitor = choice ? FNN_MONITOR_VAL_ACCURACY : FNN_MONITOR_VAL_LOSS;
            break;
        case OPT_FOLDS:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->folds = (int)v;
            break;
        case OPT_FREEZE:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &v)) return EXIT_USAGE;
            o->cfg.freeze = (int)v;
            break;
        case OPT_CLASSES:
            if (parse_classes(optarg, o) != EXIT_OK) return EXIT_USAGE;
            break;
        case OPT_PER_CLASS:
            if (!cli_opt_int("train", CLI_TRAIN, c, optarg, &o->per_class))
                return EXIT_USAGE;
            break;
        case OPT_SPLIT:
            if (!cli_opt_choice("train", CLI_TRAIN, c, optarg, &choice)) return EXIT_USAGE;
            o->split = choice ? SPLIT_STRATIFIED : SPLIT_LAST;
            break;
        default:
            switch (cli_data_option("train", CLI_TRAIN, c, optarg, &o->data)) {
            case 1: break;
            case 0: return cli_unhandled_option("train", CLI_TRAIN, c);
            default: return EXIT_USAGE;
            }
        }
    }
    if (optind < argc)
        return cli_error("train", EXIT_USAGE, "unexpected argument '%s' (see fnn train --help)",
                         argv[optind]);
    if (o->resume) {
        if (!o->epochs_given)
            return cli_error("train", EXIT_USAGE, "--resume needs --epochs: the epoch to "
                             "continue to");
        return EXIT_OK; /* the rest is checked once the checkpoint has filled in the options */
    }
    if (o->cfg.ema_every && o->cfg.ema == 0.0f)
        return cli_error("train", EXIT_USAGE, "--ema-every applies to --ema only");
    if (o->reset_head && !o->init_from)
        return cli_error("train", EXIT_USAGE, "--reset-head applies to --init-from only");
    if (o->folds && (o->per_class || o->val_given))
        return cli_error("train", EXIT_USAGE, "--folds makes its own validation splits; it does "
                         "not combine with --%s", o->per_class ? "per-class" : "val-split");
    if (o->folds && o->cfg.checkpoint)
        return cli_error("train", EXIT_USAGE, "--folds runs K trainings; it cannot --checkpoint");
    if (!isnan(lr))
        o->cfg.optim.lr = (float)lr;
    if (!isnan(decay))
        o->cfg.optim.weight_decay = (float)decay;
    if (o->cfg.optim.kind == FNN_OPT_SGD) {
        o->cfg.optim.momentum = (float)momentum;
        o->cfg.optim.nesterov = nesterov;
    } else if (momentum != 0.0 || nesterov) {
        return cli_error("train", EXIT_USAGE, "--%s applies to --optimizer sgd only",
                         nesterov ? "nesterov" : "momentum");
    }
    if (nesterov && momentum == 0.0)
        return cli_error("train", EXIT_USAGE, "--nesterov needs --momentum above 0");
    if (o->cfg.schedule.warmup_epochs > o->cfg.epochs)
        return cli_error("train", EXIT_USAGE, "--warmup-epochs %d is more than --epochs %d",
                         o->cfg.schedule.warmup_epochs, o->cfg.epochs);
    if (o->cfg.schedule.kind == FNN_LR_ONECYCLE && o->cfg.schedule.warmup_epochs)
        return cli_error("train", EXIT_USAGE, "--lr-schedule onecycle warms up itself (to "
                         "--lr-peak-at): leave out --warmup-epochs");
    if ((o->cfg.early_stopping || o->cfg.schedule.kind == FNN_LR_PLATEAU) && o->val_split == 0.0 &&
        !o->folds)
        return cli_error("train", EXIT_USAGE, "--%s watches the validation set: give "
                         "--val-split above 0", o->cfg.early_stopping ? "early-stopping"
                                                                       : "lr-schedule plateau");
    return EXIT_OK;
}

#define RECIPE_MAX_ARGS 32

/* The options, and before them those of a recipe that --arch names (cli_recipe_named): they
 * are read first, so that the options given override them. */
static int parse(int argc, char **argv, train_opts *o)
{
    train_opts given = *o;
    int rc = parse_options(argc, argv, &given);
    const cli_recipe *r = rc ? NULL : cli_recipe_named(given.arch);
    if (!r) {
        *o = given;
        return rc;
    }
    static char text[512]; /* the recipe's words, which getopt hands out as optarg */
    char *args[RECIPE_MAX_ARGS + 2] = {argv[0]};
    int n = 1;
    snprintf(text, sizeof text, "%s", r->options);
    for (char *save, *w = strtok_r(text, " ", &save); w && n <= RECIPE_MAX_ARGS;
         w = strtok_r(NULL, " ", &save))
        args[n++] = w;
    optind = 0;
    if ((rc = parse_options(n, args, o)) != EXIT_OK)
        return rc;
    o->epochs_given = o->val_given = 0; /* given means given by the user */
    optind = 0;
    rc = parse_options(argc, argv, o);
    o->recipe = r;
    return rc;
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
static cJSON *history_json(const fnn_epoch_stats *st, int n, int with_seconds, int best_epoch)
{
    cJSON *h = cJSON_CreateObject();
    /* Early stopping: the epoch whose weights the model holds. */
    if (best_epoch)
        cJSON_AddNumberToObject(h, "restored_epoch", best_epoch);
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

/* Writes the history to write_to (the run's staged file for path), as JSON when path ends in
 * .json and as CSV otherwise. */
static fnn_status write_history(const char *path, const char *write_to, const fnn_epoch_stats *st,
                                int n, int best_epoch, fnn_error *err)
{
    fnn_atomic_file *f;
    fnn_status s = fnn_atomic_open(write_to, &f, err);
    if (s != FNN_OK)
        return s;
    size_t len = strlen(path);
    if (len >= 5 && !strcmp(path + len - 5, ".json")) {
        cJSON *h = history_json(st, n, 1, best_epoch);
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
    return fnn_atomic_commit(f, err);
}

/* Where a run's files go. Every input and output is registered first, so that no output can
 * replace the data, a model or checkpoint being read, or another output, however the paths are
 * spelled; the model and the history are written to temporaries and put in place together only
 * when the run has succeeded. The checkpoint is written during the run (it may be the one being
 * resumed). A device as --out gets no history file unless --history names one. */
typedef struct {
    fnn_outputs *set;
    char *history; /* the history's path, NULL for none */
} run_files;

static int plan_files(const train_opts *o, run_files *f)
{
    fnn_error err = {0};
    fnn_status s = FNN_OK;
    if (!(f->set = fnn_outputs_new()))
        return cli_error("train", EXIT_RUNTIME, "out of memory");
    s = cli_data_inputs(f->set, &o->data, "train", &err);
    /* The test split is the user's data all the same when it is not read. One that cannot be
     * listed is absent (a lone folder tree, which trains without a test set), or its reading
     * fails below, before anything is written. */
    if (s == FNN_OK)
        cli_data_inputs(f->set, &o->data, "test", NULL);
    if (s == FNN_OK && o->init_from)
        s = fnn_outputs_input(f->set, "--init-from", o->init_from, &err);
    if (s == FNN_OK && o->cfg.checkpoint)
        s = fnn_outputs_file(f->set, "--checkpoint", o->cfg.checkpoint, FNN_OUT_LIVE, &err);
    /* Resuming a checkpoint and updating it in place is what --resume does by default. */
    if (s == FNN_OK && o->resume &&
        !(o->cfg.checkpoint && fnn_same_file(o->resume, o->cfg.checkpoint)))
        s = fnn_outputs_input(f->set, "--resume", o->resume, &err);
    if (s == FNN_OK)
        s = fnn_outputs_file(f->set, "--out", o->out, FNN_OUT_STAGED, &err);
    if (s == FNN_OK && (o->history || !fnn_outputs_through(f->set, o->out))) {
        f->history = o->history ? strdup(o->history) : default_history_path(o->out);
        if (!f->history)
            return cli_error("train", EXIT_RUNTIME, "out of memory");
        s = fnn_outputs_file(f->set, o->history ? "--history" : "the history (from --out)",
                             f->history, FNN_OUT_STAGED, &err);
    }
    return s == FNN_OK ? EXIT_OK : cli_lib_error("train", &err);
}

static void run_files_free(run_files *f)
{
    fnn_outputs_free(f->set);
    free(f->history);
}

/* Set by the signal thread at the first Ctrl-C (cli/signals.h); the library polls it once per
 * step. */
static volatile sig_atomic_t interrupted;
_Static_assert(sizeof(sig_atomic_t) == sizeof(int), "cfg.interrupt reads the flag as an int");

/* The options that rebuild a run's data and model, stored in its checkpoints. */
static char *user_json(const train_opts *o)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "data", o->data.data);
    if (o->data.test_data) /* left out when not given, as in checkpoints from before it */
        cJSON_AddStringToObject(j, "test_data", o->data.test_data);
    cJSON_AddNumberToObject(j, "limit", (double)o->limit);
    cJSON_AddNumberToObject(j, "test_limit", (double)o->test_limit);
    cJSON_AddNumberToObject(j, "val_split", o->val_split);
    cJSON_AddBoolToObject(j, "no_test", o->no_test);
    cJSON_AddItemToObject(j, "classes", cJSON_CreateIntArray(o->classes, o->nclasses));
    cJSON_AddNumberToObject(j, "per_class", (double)o->per_class);
    cJSON_AddStringToObject(j, "out", o->out);
    if (o->history)
        cJSON_AddStringToObject(j, "history", o->history);
    if (o->init_from)
        cJSON_AddStringToObject(j, "init_from", o->init_from);
    if (o->reset_head) /* left out when off, as in checkpoints from before it was stored */
        cJSON_AddTrueToObject(j, "reset_head");
    /* The data options, stored since issue 16 (older checkpoints: none given). */
    int size[2] = {o->data.height, o->data.width};
    cJSON_AddItemToObject(j, "image_size", cJSON_CreateIntArray(size, 2));
    cJSON_AddNumberToObject(j, "channels", o->data.channels);
    cJSON_AddBoolToObject(j, "skip_bad_images", o->data.skip_bad);
    cJSON_AddStringToObject(j, "normalize", o->data.standardize ? "standardize" : "scale");
    cJSON_AddStringToObject(j, "split", split_names[o->split]);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

/* Fills o from a checkpoint's stored options; text lives as long as o uses it. */
static int apply_user_json(train_opts *o, cJSON *j, const char *path)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data"),
                *test_data = cJSON_GetObjectItemCaseSensitive(j, "test_data"),
                *limit = cJSON_GetObjectItemCaseSensitive(j, "limit"),
                *test_limit = cJSON_GetObjectItemCaseSensitive(j, "test_limit"),
                *val_split = cJSON_GetObjectItemCaseSensitive(j, "val_split"),
                *no_test = cJSON_GetObjectItemCaseSensitive(j, "no_test"),
                *classes = cJSON_GetObjectItemCaseSensitive(j, "classes"),
                *per_class = cJSON_GetObjectItemCaseSensitive(j, "per_class"),
                *out = cJSON_GetObjectItemCaseSensitive(j, "out"),
                *history = cJSON_GetObjectItemCaseSensitive(j, "history"),
                *init_from = cJSON_GetObjectItemCaseSensitive(j, "init_from"),
                *reset_head = cJSON_GetObjectItemCaseSensitive(j, "reset_head"),
                *image_size = cJSON_GetObjectItemCaseSensitive(j, "image_size"),
                *channels = cJSON_GetObjectItemCaseSensitive(j, "channels"),
                *skip_bad = cJSON_GetObjectItemCaseSensitive(j, "skip_bad_images"),
                *normalize = cJSON_GetObjectItemCaseSensitive(j, "normalize"),
                *split = cJSON_GetObjectItemCaseSensitive(j, "split");
    int split_mode = -1;
    for (int i = 0; split && cJSON_IsString(split) && i < 3; i++)
        if (!strcmp(split->valuestring, split_names[i]))
            split_mode = i;
    const cJSON *ih = cJSON_GetArrayItem(image_size, 0), *iw = cJSON_GetArrayItem(image_size, 1);
    if (!cJSON_IsString(data) || (test_data && !cJSON_IsString(test_data)) ||
        !cJSON_IsNumber(limit) || !cJSON_IsNumber(test_limit) ||
        !cJSON_IsNumber(val_split) || !cJSON_IsBool(no_test) || !cJSON_IsArray(classes) ||
        !cJSON_IsNumber(per_class) || !cJSON_IsString(out) ||
        (history && !cJSON_IsString(history)) || (init_from && !cJSON_IsString(init_from)) ||
        (reset_head && !cJSON_IsBool(reset_head)) ||
        (image_size && (cJSON_GetArraySize(image_size) != 2 || !cJSON_IsNumber(ih) ||
                        !cJSON_IsNumber(iw) || ih->valuedouble < 0 || ih->valuedouble > 4096 ||
                        iw->valuedouble < 0 || iw->valuedouble > 4096 ||
                        (ih->valuedouble == 0) != (iw->valuedouble == 0))) ||
        (channels && (!cJSON_IsNumber(channels) || (channels->valuedouble != 0 &&
                                                    channels->valuedouble != 1 &&
                                                    channels->valuedouble != 3))) ||
        (skip_bad && !cJSON_IsBool(skip_bad)) ||
        (normalize && (!cJSON_IsString(normalize) ||
                       (strcmp(normalize->valuestring, "scale") &&
                        strcmp(normalize->valuestring, "standardize")))) ||
        (split && split_mode < 0) ||
        limit->valuedouble < 0 || limit->valuedouble > 1e8 || test_limit->valuedouble < 0 ||
        test_limit->valuedouble > 1e8 || !(val_split->valuedouble >= 0.0 &&
                                          val_split->valuedouble <= 0.99) ||
        per_class->valuedouble < 0 || per_class->valuedouble > 1e8 ||
        cJSON_GetArraySize(classes) > FNN_MAX_CLASSES)
        return cli_error("train", EXIT_RUNTIME, "--resume %s: the stored command-line options "
                         "are incomplete or out of range", path);
    if (!o->data_given)
        o->data.data = data->valuestring;
    if (!o->data.test_data && test_data)
        o->data.test_data = test_data->valuestring;
    o->limit = (long)limit->valuedouble;
    o->test_limit = (long)test_limit->valuedouble;
    o->val_split = val_split->valuedouble;
    o->no_test = cJSON_IsTrue(no_test);
    o->per_class = (long)per_class->valuedouble;
    o->nclasses = 0;
    for (const cJSON *c = classes->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble > 255)
            return cli_error("train", EXIT_RUNTIME, "--resume %s: a stored class is not a "
                             "label in 0..255", path);
        o->classes[o->nclasses++] = (int)c->valuedouble;
    }
    if (!o->out_given)
        o->out = out->valuestring;
    if (!o->history_given && history)
        o->history = history->valuestring;
    o->init_from = init_from ? init_from->valuestring : NULL;
    o->reset_head = cJSON_IsTrue(reset_head);
    o->data.height = image_size ? (int)ih->valuedouble : 0;
    o->data.width = image_size ? (int)iw->valuedouble : 0;
    o->data.channels = channels ? (int)channels->valuedouble : 0;
    o->data.skip_bad = cJSON_IsTrue(skip_bad);
    o->data.standardize = normalize && !strcmp(normalize->valuestring, "standardize");
    o->split = split ? split_mode : SPLIT_BY_FORMAT;
    return EXIT_OK;
}

/* "5,6,7" for a --classes list, "all" for none. */
static void format_classes(char *buf, size_t size, const int *classes, int n)
{
    snprintf(buf, size, "%s", n ? "" : "all");
    for (int i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%d", i ? "," : "", classes[i]);
    }
}

/* With --resume, every setup option given must say what the checkpoint holds, so that adding
 * --resume to the command line of the first run works, and a conflicting value is an error
 * that names both. cli: the command line as parsed; o: after the checkpoint's stored options
 * were applied; info: the checkpoint's model and training settings. */
static int check_setup(const train_opts *cli, const train_opts *o, const fnn_checkpoint_info *info)
{
    static const char *const optimizers[] = {"adam", "sgd", "adamw"};
    static const char *const schedules[] = {"constant", "step", "cosine", "plateau",
                                            "onecycle"};
    static const char *const monitors[] = {"val_loss", "val_accuracy"};
    static const char *const ttas[] = {"none", "flip"};
    const fnn_train_config *c = &cli->cfg, *k = &info->cfg;
    for (const cli_option *opt = cli_options; opt->name; opt++) {
        if (!(opt->cmds & CLI_TRAIN) || !(opt->flags & CLI_RUN_SETUP) ||
            !cli->setup[opt->id - OPT_FIRST])
            continue;
        const char *given = cli->setup[opt->id - OPT_FIRST];
        char buf[FNN_MAX_CLASSES * 4 + 8];
        const char *stored = buf;
        int same, flag = opt->type == CLI_FLAG;
#define INT_(a, b) (same = (a) == (b), snprintf(buf, sizeof buf, "%ld", (long)(b)))
#define REAL_(a, b) (same = (a) == (b), snprintf(buf, sizeof buf, "%g", (double)(b)))
#define ALL_(a, b) (same = (a) == (b), (b) ? snprintf(buf, sizeof buf, "%ld", (long)(b)) \
                                           : snprintf(buf, sizeof buf, "all"))
#define NAME_(a, b, names) (same = (a) == (b), stored = (names)[b])
        switch (opt->id) {
        case OPT_ARCH: {
            fnn_error err = {0};
            fnn_model *m = fnn_model_create(given, info->c, info->h, info->w, &err);
            if (!m)
                return cli_error("train", err.status == FNN_ERR_NOMEM ? EXIT_RUNTIME : EXIT_USAGE,
                                 "%s", err.msg);
            same = !strcmp(fnn_model_spec(m), info->arch);
            fnn_model_free(m);
            snprintf(buf, sizeof buf, "'%.*s%s'", (int)sizeof buf - 8, info->arch,
                     strlen(info->arch) > sizeof buf - 8 ? "..." : "");
            break;
        }
        case OPT_BATCH_SIZE: INT_(c->batch_size, k->batch_size); break;
        case OPT_LR: REAL_((float)strtod(given, NULL), k->optim.lr); break;
        case OPT_VAL_SPLIT: REAL_(cli->val_split, o->val_split); break;
        case OPT_SEED: INT_(c->seed, k->seed); break;
        case OPT_THREADS: INT_(c->threads, k->threads); break;
        case OPT_TTA: NAME_(c->tta, k->tta, ttas); break;
        case OPT_LIMIT: ALL_(cli->limit, o->limit); break;
        case OPT_TEST_LIMIT: ALL_(cli->test_limit, o->test_limit); break;
        case OPT_OPTIMIZER: NAME_(c->optim.kind, k->optim.kind, optimizers); break;
        case OPT_MOMENTUM: REAL_((float)strtod(given, NULL), k->optim.momentum); break;
        case OPT_WEIGHT_DECAY: REAL_((float)strtod(given, NULL), k->optim.weight_decay); break;
        case OPT_NO_TEST: same = o->no_test; break;
        case OPT_NESTEROV: same = k->optim.nesterov; break;
        case OPT_LR_SCHEDULE: NAME_(c->schedule.kind, k->schedule.kind, schedules); break;
        case OPT_LR_STEP_EPOCHS: INT_(c->schedule.step_epochs, k->schedule.step_epochs); break;
        case OPT_LR_GAMMA: REAL_(c->schedule.gamma, k->schedule.gamma); break;
        case OPT_LR_PATIENCE: INT_(c->schedule.patience, k->schedule.patience); break;
        case OPT_LR_FACTOR: REAL_(c->schedule.factor, k->schedule.factor); break;
        case OPT_LR_MIN: REAL_(c->schedule.min_lr, k->schedule.min_lr); break;
        case OPT_LR_PEAK_AT: REAL_(c->schedule.peak_at, k->schedule.peak_at); break;
        case OPT_WARMUP_EPOCHS: INT_(c->schedule.warmup_epochs, k->schedule.warmup_epochs); break;
        case OPT_CLIP_NORM: REAL_(c->clip_norm, k->clip_norm); break;
        case OPT_LABEL_SMOOTHING: REAL_(c->label_smoothing, k->label_smoothing); break;
        /* 0 in the library means 1. */
        case OPT_BN_LR_SCALE:
            REAL_(c->bn_lr_scale, k->bn_lr_scale > 0.0f ? k->bn_lr_scale : 1.0f);
            break;
        case OPT_EMA: REAL_(c->ema, k->ema); break;
        /* 0 in the library means 1. */
        case OPT_EMA_EVERY: INT_(c->ema_every, k->ema_every ? k->ema_every : 1); break;
        case OPT_AUG_SHIFT: INT_(c->augment.shift, k->augment.shift); break;
        case OPT_AUG_FLIP: same = k->augment.flip; break;
        case OPT_AUG_ROTATE: REAL_(c->augment.rotate, k->augment.rotate); break;
        case OPT_AUG_ERASE: REAL_(c->augment.erase, k->augment.erase); break;
        case OPT_EARLY_STOPPING: INT_(c->early_stopping, k->early_stopping); break;
        case OPT_MONITOR: NAME_(c->monitor, k->monitor, monitors); break;
        case OPT_FOLDS:
            return cli_error("train", EXIT_USAGE, "--resume %s: --folds %s cannot resume: a "
                             "checkpoint holds one training, not %s", cli->resume, given, given);
        case OPT_INIT_FROM:
            same = o->init_from && !strcmp(given, o->init_from);
            stored = o->init_from ? o->init_from : "none";
            break;
        case OPT_RESET_HEAD: same = o->reset_head; break;
        case OPT_FREEZE: INT_(c->freeze, k->freeze); break;
        case OPT_CLASSES:
            same = cli->nclasses == o->nclasses &&
                   !memcmp(cli->classes, o->classes, (size_t)o->nclasses * sizeof *o->classes);
            format_classes(buf, sizeof buf, o->classes, o->nclasses);
            break;
        case OPT_PER_CLASS: ALL_(cli->per_class, o->per_class); break;
        case OPT_IMAGE_SIZE:
            same = cli->data.height == o->data.height && cli->data.width == o->data.width;
            if (o->data.height)
                snprintf(buf, sizeof buf, "%dx%d", o->data.height, o->data.width);
            else
                stored = "size (none given: the data's)";
            break;
        case OPT_CHANNELS:
            same = cli->data.channels == o->data.channels;
            if (o->data.channels)
                snprintf(buf, sizeof buf, "%d", o->data.channels);
            else
                stored = "channels (none given: the data's)";
            break;
        case OPT_SKIP_BAD: same = o->data.skip_bad; break;
        case OPT_NORMALIZE:
            same = cli->data.standardize == o->data.standardize;
            stored = o->data.standardize ? "standardize" : "scale";
            break;
        case OPT_SPLIT:
            same = cli->split == o->split;
            stored = split_names[o->split];
            break;
        default: /* a setup option without a case above: refused rather than ignored */
            same = 0;
            stored = "value, which this check does not read";
            break;
        }
#undef INT_
#undef REAL_
#undef ALL_
#undef NAME_
        if (same)
            continue;
        if (flag)
            return cli_error("train", EXIT_USAGE, "--resume %s: --%s is given but the "
                             "checkpoint's run was without it", cli->resume, opt->name);
        return cli_error("train", EXIT_USAGE, "--resume %s: --%s %s differs from the "
                         "checkpoint's %s", cli->resume, opt->name, given, stored);
    }
    return EXIT_OK;
}

/* The data sets of a run: the training split (less --limit) filtered to --classes, split, the
 * training part cut to --per-class, and the test split filtered the same way. */
typedef struct {
    fnn_dataset full, test, kept, kept_test, few;
    fnn_dataset tr, val;      /* views or copies of the above */
    cli_data_read how, test_how;
    int has_test;             /* the test split is read */
    int stratified;           /* the validation split is stratified (else the last images) */
    char **names;             /* (k) the model's class names: the kept classes' */
    int k;                    /* the model's classes */
} run_data;

static void run_data_free(run_data *d)
{
    fnn_dataset_free(&d->full);
    fnn_dataset_free(&d->test);
    fnn_dataset_free(&d->kept);
    fnn_dataset_free(&d->kept_test);
    fnn_dataset_free(&d->few);
    fnn_class_names_free(d->names, d->k);
}

/* The test split against the training split it must match: shape, classes, names. */
static int check_test(const run_data *d, const char *const *names)
{
    const fnn_dataset *a = &d->full, *b = &d->test;
    const char *path = d->test_how.path;
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return cli_error("train", EXIT_RUNTIME,
                         "%s: the test set's images are %dx%dx%d but the training set's are "
                         "%dx%dx%d",
                         path, b->c, b->h, b->w, a->c, a->h, a->w);
    if (b->nclasses > a->nclasses)
        return cli_error("train", EXIT_RUNTIME,
                         "%s: the test set has %d classes but the training set %d",
                         b->labels_path[0] ? b->labels_path : path, b->nclasses, a->nclasses);
    for (int i = 0; b->class_names && i < b->nclasses; i++)
        if (strcmp(b->class_names[i], names[i]))
            return cli_error("train", EXIT_RUNTIME,
                             "%s: the test set's class %d is \"%s\" but the training set's is "
                             "\"%s\"",
                             path, i, b->class_names[i], names[i]);
    return EXIT_OK;
}

static int load_data(const train_opts *o, run_data *d, double *seconds)
{
    fnn_error err = {0};
    int rc, all[FNN_MAX_CLASSES];
    double t0 = fnn_now_s();
    if ((rc = cli_load("train", &o->data, "train", o->limit, &d->full, &d->how)))
        return rc;
    d->has_test = !o->no_test && !o->folds && cli_has_test_split(&o->data, d->how.format);
    if (d->has_test &&
        (rc = cli_load("train", &o->data, "test", o->test_limit, &d->test, &d->test_how)))
        return rc;
    *seconds = fnn_now_s() - t0;
    char **names = cli_class_names(&d->full, d->how.format, d->how.path);
    if (!names)
        return cli_error("train", EXIT_RUNTIME, "out of memory");
    if (d->has_test && (rc = check_test(d, (const char *const *)names))) {
        fnn_class_names_free(names, d->full.nclasses);
        return rc;
    }
    fnn_dataset *train = &d->full;
    d->k = d->full.nclasses;
    if (o->nclasses) {
        /* The kept classes' names, in the order --classes gives them. */
        for (int i = 0; i < o->nclasses; i++)
            if (o->classes[i] >= d->full.nclasses) {
                fnn_class_names_free(names, d->full.nclasses);
                return cli_error("train", EXIT_USAGE,
                                 "--classes: class %d is not in the data, whose classes are "
                                 "0..%d",
                                 o->classes[i], d->full.nclasses - 1);
            }
        char **kept = calloc((unsigned)o->nclasses, sizeof *kept);
        for (int i = 0; kept && i < o->nclasses; i++) {
            kept[i] = names[o->classes[i]];
            names[o->classes[i]] = NULL;
        }
        fnn_class_names_free(names, d->full.nclasses);
        if (!kept)
            return cli_error("train", EXIT_RUNTIME, "out of memory");
        names = kept;
        d->k = o->nclasses;
        if (fnn_dataset_select_classes(&d->full, o->classes, o->nclasses, 0, &d->kept, &err) ||
            (d->has_test && fnn_dataset_select_classes(&d->test, o->classes, o->nclasses, 0,
                                                       &d->kept_test, &err))) {
            d->names = names;
            return cli_lib_error("train", &err);
        }
        train = &d->kept;
    }
    d->names = names;
    if (o->nclasses && d->kept.n == 0)
        return cli_error("train", EXIT_RUNTIME, "--classes: no training image has any of "
                         "those labels");
    d->stratified = o->split == SPLIT_STRATIFIED ||
                    (o->split == SPLIT_BY_FORMAT && (d->how.format == FNN_FORMAT_FOLDER ||
                                                     d->how.format == FNN_FORMAT_CSV));
    /* Folds take contiguous runs of images: a class-sorted set is first mixed (a stratified
     * split of nothing is a seeded shuffle). */
    if (d->stratified && (o->folds || o->val_split > 0.0) &&
        fnn_dataset_stratify(train, o->folds ? 0.0 : o->val_split, o->cfg.seed, &err) != FNN_OK)
        return cli_lib_error("train", &err);
    if (o->folds) {
        d->tr = *train;
        return EXIT_OK;
    }
    if (fnn_dataset_split(train, o->val_split, &d->tr, &d->val, &err) != FNN_OK)
        return cli_lib_error("train", &err);
    if (o->per_class) {
        for (int i = 0; i < d->k; i++)
            all[i] = i;
        if (fnn_dataset_select_classes(&d->tr, all, d->k, (int)o->per_class, &d->few, &err))
            return cli_lib_error("train", &err);
        d->tr = d->few;
    }
    return EXIT_OK;
}

/* A fresh model of o's arch for d's images and classes, initialised, with --normalize
 * standardize's statistics of the training part tr and --init-from applied (reported in
 * *transfer when asked). */
static int make_model(const train_opts *o, const run_data *d, const fnn_dataset *tr,
                      fnn_model **out_model, cJSON **transfer)
{
    fnn_error err = {0};
    const fnn_dataset *x = &d->full;
    int rc;
    fnn_model *m = cli_model_for("train", o->arch, x->c, x->h, x->w, d->k,
                                 o->nclasses ? "--classes keeps" : "the data has", &rc);
    if (!m)
        return rc;
    if (o->cfg.freeze > fnn_model_num_layers(m)) {
        int layers = fnn_model_num_layers(m);
        fnn_model_free(m);
        return cli_error("train", EXIT_USAGE, "--freeze %d: the model has %d layers",
                         o->cfg.freeze, layers);
    }
    fnn_model_init(m, o->cfg.seed);
    if (o->data.standardize) {
        double dmean[3], dstd[3];
        float mean[3], std[3];
        fnn_status s = fnn_dataset_channel_stats(tr, dmean, dstd, o->cfg.threads, &err);
        for (int i = 0; s == FNN_OK && i < x->c; i++) {
            mean[i] = (float)dmean[i];
            std[i] = (float)dstd[i];
        }
        if (s != FNN_OK || fnn_model_set_normalization(m, mean, std, &err) != FNN_OK) {
            fnn_model_free(m);
            return cli_lib_error("train", &err);
        }
    }
    if (o->init_from) {
        fnn_model *src = fnn_model_load(o->init_from, NULL, &err);
        int nt = fnn_model_num_tensors(m), loaded = 0, sc = 0, sh = 0, sw = 0;
        if (src)
            fnn_model_input_shape(src, &sc, &sh, &sw);
        if (src && sc != x->c) {
            fnn_model_free(src);
            fnn_model_free(m);
            return cli_error("train", EXIT_RUNTIME,
                             "--init-from %s: its first layers take %dx%dx%d images, the data's "
                             "are %dx%dx%d (--image-size and --channels convert the data)",
                             o->init_from, sc, sh, sw, x->c, x->h, x->w);
        }
        fnn_transfer_entry *rep = calloc((size_t)nt + 1, sizeof *rep);
        int layers = fnn_model_num_layers(m) - (o->reset_head ? 1 : 0);
        if (!src || !rep || fnn_model_transfer(m, src, layers, rep, &loaded, &err) != FNN_OK) {
            /* A model that did not load is named by its message; one that did, here. */
            rc = !rep ? cli_error("train", EXIT_RUNTIME, "out of memory")
                 : src ? cli_error("train", EXIT_RUNTIME, "--init-from %s: %s", o->init_from,
                                   err.msg)
                       : cli_error("train", EXIT_RUNTIME, "--init-from %s", err.msg);
            free(rep);
            fnn_model_free(src);
            fnn_model_free(m);
            return rc;
        }
        if (transfer) {
            *transfer = cJSON_CreateObject();
            cJSON_AddStringToObject(*transfer, "from", o->init_from);
            cJSON_AddNumberToObject(*transfer, "loaded", loaded);
            cJSON_AddNumberToObject(*transfer, "tensors_in_model", nt);
            cJSON *list = cJSON_AddArrayToObject(*transfer, "tensors");
            for (int i = 0; i < nt; i++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "name", rep[i].name);
                cJSON_AddBoolToObject(e, "loaded", rep[i].loaded);
                if (!rep[i].loaded)
                    cJSON_AddStringToObject(e, "reason", rep[i].reason);
                cJSON_AddItemToArray(list, e);
            }
        }
        free(rep);
        fnn_model_free(src);
    }
    *out_model = m;
    return EXIT_OK;
}

/* Where the test set comes from, or why there is none. */
static const char *no_test_reason(const train_opts *o, const run_data *d)
{
    if (o->no_test)
        return "--no-test";
    if (o->folds)
        return "--folds";
    return d->how.format == FNN_FORMAT_FOLDER
               ? "the image folder has no train/ and test/ folders; --test-data PATH names one"
               : "the file's name has no \"train\" to find its test file by; --test-data PATH "
                 "names one";
}

/* The test set's path for the header: a file's test split is the file named for it
 * (mine_train.csv: mine_test.csv); a directory's is in it. */
static void test_path(const train_opts *o, const run_data *d, char *buf, size_t size)
{
    struct stat sb;
    char **paths;
    int n;
    snprintf(buf, size, "%s", d->test_how.path);
    if (o->data.test_data || stat(d->test_how.path, &sb) != 0 || !S_ISREG(sb.st_mode) ||
        fnn_data_files(d->test_how.path, "test", NULL, &paths, &n, NULL) != FNN_OK)
        return;
    if (n > 0)
        snprintf(buf, size, "%s", paths[0]);
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

/* The header's account of the data: what was read and how it was split, and the model's
 * input normalisation. */
static void print_data(FILE *f, const train_opts *o, const run_data *d, const fnn_model *m)
{
    const fnn_dataset *x = &d->full;
    char n[32], v[32];
    cli_thousands((size_t)x->n, n, sizeof n);
    fprintf(f, "data: %s %s (%d classes, %s image%s, %dx%dx%d%s",
            fnn_data_format_name(d->how.format), d->how.path, x->nclasses, n, x->n == 1 ? "" : "s",
            x->c, x->h, x->w,
            o->data.height && d->how.format == FNN_FORMAT_FOLDER ? " resized" : "");
    if (d->how.skipped)
        fprintf(f, ", %d bad image%s skipped", d->how.skipped, d->how.skipped == 1 ? "" : "s");
    cli_thousands((size_t)d->val.n, v, sizeof v);
    if (o->val_split == 0.0)
        fprintf(f, "); validation: none (--val-split 0)\n");
    else if (d->stratified)
        fprintf(f, "); validation: stratified %g%% (%s image%s), seed %llu\n",
                100.0 * o->val_split, v, d->val.n == 1 ? "" : "s", (unsigned long long)o->cfg.seed);
    else
        fprintf(f, "); validation: last %g%% (%s image%s)\n", 100.0 * o->val_split, v,
                d->val.n == 1 ? "" : "s");
    if (d->has_test) {
        char path[4096];
        test_path(o, d, path, sizeof path);
        cli_thousands((size_t)d->test.n, n, sizeof n);
        fprintf(f, "test data: %s %s (%s images", fnn_data_format_name(d->test_how.format), path,
                n);
        if (d->test_how.skipped)
            fprintf(f, ", %d bad image%s skipped", d->test_how.skipped,
                    d->test_how.skipped == 1 ? "" : "s");
        fprintf(f, ")\n");
    } else {
        fprintf(f, "test data: none (%s)\n", no_test_reason(o, d));
    }
    /* Long lists are cut: the model file holds them all. */
    fprintf(f, "class names:");
    for (int i = 0; i < d->k && i < 20; i++)
        fprintf(f, "%s %s", i ? "," : "", d->names[i]);
    if (d->k > 20)
        fprintf(f, ", ... (%d more)", d->k - 20);
    fprintf(f, "\n");
    print_normalization(f, m);
}

/* The same account for --json. */
static cJSON *data_json(const train_opts *o, const run_data *d, const fnn_model *m)
{
    const fnn_dataset *x = &d->full;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "dir", o->data.data);
    cJSON_AddStringToObject(j, "format", fnn_data_format_name(d->how.format));
    cJSON_AddNumberToObject(j, "images", x->n);
    int shape[3] = {x->c, x->h, x->w};
    cJSON_AddItemToObject(j, "shape", cJSON_CreateIntArray(shape, 3));
    cJSON_AddBoolToObject(j, "resized", o->data.height && d->how.format == FNN_FORMAT_FOLDER);
    cJSON_AddNumberToObject(j, "skipped", d->how.skipped);
    cJSON_AddNumberToObject(j, "num_classes", x->nclasses);
    cJSON_AddItemToObject(j, "class_names",
                          cJSON_CreateStringArray((const char *const *)d->names, d->k));
    cJSON *v = cJSON_AddObjectToObject(j, "validation_split");
    cJSON_AddStringToObject(v, "method", d->stratified ? "stratified" : "last");
    cJSON_AddNumberToObject(v, "fraction", o->val_split);
    cJSON_AddNumberToObject(v, "images", d->val.n);
    if (d->stratified)
        cJSON_AddNumberToObject(v, "seed", (double)o->cfg.seed);
    else
        cJSON_AddNullToObject(v, "seed");
    if (d->has_test) {
        char path[4096];
        test_path(o, d, path, sizeof path);
        cJSON *t = cJSON_AddObjectToObject(j, "test_data");
        cJSON_AddStringToObject(t, "path", path);
        cJSON_AddStringToObject(t, "format", fnn_data_format_name(d->test_how.format));
        cJSON_AddNumberToObject(t, "images", d->test.n);
        cJSON_AddNumberToObject(t, "skipped", d->test_how.skipped);
    } else {
        cJSON_AddNullToObject(j, "test_data");
        cJSON_AddStringToObject(j, "no_test", no_test_reason(o, d));
    }
    cJSON_AddItemToObject(j, "normalization", normalization_json(m));
    return j;
}

/* --init-from's report: one line per tensor of the new model. */
static void print_transfer(FILE *f, const cJSON *t)
{
    fprintf(f, "init from %s: %d of %d tensors loaded\n",
            cJSON_GetObjectItem(t, "from")->valuestring,
            cJSON_GetObjectItem(t, "loaded")->valueint,
            cJSON_GetObjectItem(t, "tensors_in_model")->valueint);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(t, "tensors")) {
        const cJSON *reason = cJSON_GetObjectItem(e, "reason");
        fprintf(f, "  %-24s %s\n", cJSON_GetObjectItem(e, "name")->valuestring,
                reason ? reason->valuestring : "loaded");
    }
}

/* The run's settings besides the optimizer's, for the text header and --json. */
static void print_features(FILE *f, const fnn_train_config *c)
{
    static const char *const schedules[] = {"constant", "step", "cosine", "plateau",
                                            "onecycle"};
    const fnn_lr_schedule *s = &c->schedule;
    if (s->kind != FNN_LR_CONSTANT || s->warmup_epochs)
        fprintf(f, "lr schedule: %s", schedules[s->kind]);
    if (s->kind == FNN_LR_STEP)
        fprintf(f, " (every %d epochs x %g)", s->step_epochs, s->gamma);
    if (s->kind == FNN_LR_PLATEAU)
        fprintf(f, " (x %g after %d epochs without improvement, min %g)", s->factor, s->patience,
                s->min_lr);
    if (s->kind == FNN_LR_ONECYCLE)
        fprintf(f, " (peak at %g of the steps)", s->peak_at);
    if (s->warmup_epochs)
        fprintf(f, ", %d warm-up epoch%s", s->warmup_epochs, s->warmup_epochs == 1 ? "" : "s");
    if (s->kind != FNN_LR_CONSTANT || s->warmup_epochs)
        fprintf(f, "\n");
    const fnn_augment_config *a = &c->augment;
    if (a->shift || a->flip || a->rotate > 0.0f || a->erase > 0.0f)
        fprintf(f, "augmentation: shift %d px, flip %s, rotate %g deg, erase p %g\n", a->shift,
                a->flip ? "on" : "off", a->rotate, a->erase);
    if (c->clip_norm > 0.0f)
        fprintf(f, "gradient clipping: global norm %g\n", c->clip_norm);
    if (c->bn_lr_scale > 0.0f && c->bn_lr_scale != 1.0f)
        fprintf(f, "learning rate of batch norm's parameters and biases: x %g\n", c->bn_lr_scale);
    if (c->ema > 0.0f)
        fprintf(f, "weight average: decay %g per step, updated every %d step%s (validation and "
                "the saved model use it)\n", c->ema, c->ema_every > 1 ? c->ema_every : 1,
                c->ema_every > 1 ? "s" : "");
    if (c->tta == FNN_TTA_FLIP)
        fprintf(f, "test-time augmentation: flip (validation and test probabilities averaged "
                "with the mirrored images')\n");
    if (c->label_smoothing > 0.0f)
        fprintf(f, "label smoothing: %g (training loss smoothed; validation and test loss plain)\n",
                c->label_smoothing);
    if (c->early_stopping)
        fprintf(f, "early stopping: patience %d on %s, restoring the best weights\n",
                c->early_stopping, c->monitor == FNN_MONITOR_VAL_ACCURACY ? "val_accuracy"
                                                                           : "val_loss");
    if (c->freeze)
        fprintf(f, "frozen: the first %d layers (the optimizer leaves their tensors alone)\n",
                c->freeze);
}

static cJSON *features_json(const fnn_train_config *c)
{
    static const char *const schedules[] = {"constant", "step", "cosine", "plateau",
                                            "onecycle"};
    cJSON *j = cJSON_CreateObject();
    cJSON *s = cJSON_AddObjectToObject(j, "lr_schedule");
    cJSON_AddStringToObject(s, "kind", schedules[c->schedule.kind]);
    cJSON_AddNumberToObject(s, "step_epochs", c->schedule.step_epochs);
    cJSON_AddNumberToObject(s, "gamma", c->schedule.gamma);
    cJSON_AddNumberToObject(s, "patience", c->schedule.patience);
    cJSON_AddNumberToObject(s, "factor", c->schedule.factor);
    cJSON_AddNumberToObject(s, "min_lr", c->schedule.min_lr);
    cJSON_AddNumberToObject(s, "warmup_epochs", c->schedule.warmup_epochs);
    cJSON_AddNumberToObject(s, "peak_at", c->schedule.peak_at);
    cJSON *a = cJSON_AddObjectToObject(j, "augment");
    cJSON_AddNumberToObject(a, "shift", c->augment.shift);
    cJSON_AddBoolToObject(a, "flip", c->augment.flip);
    cJSON_AddNumberToObject(a, "rotate", c->augment.rotate);
    cJSON_AddNumberToObject(a, "erase", c->augment.erase);
    cJSON_AddNumberToObject(j, "clip_norm", c->clip_norm);
    cJSON_AddNumberToObject(j, "label_smoothing", c->label_smoothing);
    cJSON_AddNumberToObject(j, "bn_lr_scale", c->bn_lr_scale > 0.0f ? c->bn_lr_scale : 1.0f);
    cJSON_AddNumberToObject(j, "ema", c->ema);
    cJSON_AddNumberToObject(j, "ema_every", c->ema_every > 1 ? c->ema_every : 1);
    cJSON_AddStringToObject(j, "tta", c->tta == FNN_TTA_FLIP ? "flip" : "none");
    cJSON_AddBoolToObject(j, "nesterov", c->optim.nesterov);
    cJSON_AddNumberToObject(j, "momentum", c->optim.momentum);
    cJSON_AddNumberToObject(j, "early_stopping", c->early_stopping);
    cJSON_AddStringToObject(j, "monitor", c->monitor == FNN_MONITOR_VAL_ACCURACY ? "val_accuracy"
                                                                                  : "val_loss");
    cJSON_AddNumberToObject(j, "freeze", c->freeze);
    return j;
}

/* --folds K: K trainings on the training file, each validating on one fold. */
static int run_folds(train_opts *o, const run_data *d)
{
    const fnn_dataset *data = &d->tr;
    FILE *out = (o->quiet || o->json) ? NULL : stdout;
    double acc[MAX_FOLDS];
    fnn_epoch_stats *stats = calloc((size_t)o->cfg.epochs, sizeof *stats);
    if (!stats)
        return cli_error("train", EXIT_RUNTIME, "out of memory");
    if (out)
        printf("%d-fold cross-validation on %d training images (the test set is not read)\n\n",
               o->folds, data->n);
    int rc = EXIT_OK;
    for (int f = 0; f < o->folds && rc == EXIT_OK; f++) {
        fnn_error err = {0};
        fnn_dataset tr, val;
        fnn_model *m = NULL;
        fnn_train_result res;
        if (fnn_dataset_fold(data, o->folds, f, &tr, &val, &err) != FNN_OK) {
            rc = cli_lib_error("train", &err);
            break;
        }
        cJSON *transfer = NULL;
        rc = make_model(o, d, &tr, &m, out && f == 0 ? &transfer : NULL);
        if (transfer) {
            print_transfer(stdout, transfer);
            printf("\n");
            cJSON_Delete(transfer);
        }
        if (rc == EXIT_OK &&
            fnn_train_run(m, &tr, &val, &o->cfg, stats, &res, &err) != FNN_OK)
            rc = cli_lib_error("train", &err);
        if (rc == EXIT_OK) {
            int e = res.best_epoch ? res.best_epoch : res.epochs;
            acc[f] = stats[e - 1].val_acc;
            if (out)
                printf("fold %d/%d: %d train / %d validation images, validation accuracy %.4f "
                       "(epoch %d)\n\n", f + 1, o->folds, tr.n, val.n, acc[f], e);
        }
        fnn_model_free(m);
        fnn_dataset_free(&tr);
    }
    if (rc == EXIT_OK) {
        double mean = 0.0, var = 0.0;
        for (int f = 0; f < o->folds; f++)
            mean += acc[f] / o->folds;
        for (int f = 0; f < o->folds; f++)
            var += (acc[f] - mean) * (acc[f] - mean) / (o->folds - 1);
        if (out)
            printf("cross-validation: validation accuracy %.4f +- %.4f (mean +- sample standard "
                   "deviation over %d folds)\n", mean, sqrt(var), o->folds);
        if (o->json) {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddStringToObject(doc, "fnn_version", FNN_VERSION);
            cJSON_AddNumberToObject(doc, "folds", o->folds);
            cJSON_AddNumberToObject(doc, "images", data->n);
            cJSON_AddItemToObject(doc, "val_accuracy", cJSON_CreateDoubleArray(acc, o->folds));
            cJSON_AddNumberToObject(doc, "mean", mean);
            cJSON_AddNumberToObject(doc, "std", sqrt(var));
            cJSON_AddNullToObject(doc, "test");
            print_json(doc);
            cJSON_Delete(doc);
        }
    }
    free(stats);
    return rc;
}

static train_opts train_defaults(void)
{
    train_opts o = {.data = CLI_DATA_DEFAULT, .arch = "mlp", .out = "model.safetensors",
                    .val_split = 0.2, .cfg = fnn_train_default()};
    o.cfg.schedule = (fnn_lr_schedule){.step_epochs = 10, .gamma = 0.1f, .patience = 2,
                                       .factor = 0.5f, .peak_at = 0.25f};
    return o;
}

/* ---------------------------------------------------------------- over mpirun's ranks */

/* The gradient hook: every rank's gradients summed in place (the library divides each shard's
 * loss by the whole batch, so the sum is the one-process gradient). */
static fnn_status sum_gradients(void *user, float *grads, size_t n, fnn_error *err)
{
    (void)user;
    return dist_allreduce_sum(grads, n, err);
}

/* The ranks' options for the job: each rank computes its shard of every batch, rank 0 alone
 * validates (unless early stopping or the plateau schedule need the numbers on every rank),
 * prints, tests and writes files. */
static int setup_ranks(train_opts *o)
{
    if (o->cfg.batch_size < dist_size())
        return cli_error("train", EXIT_USAGE, "--batch-size %d is smaller than the %d ranks: "
                         "the batch size is the global batch, split over the ranks, and each "
                         "needs at least one image of it", o->cfg.batch_size, dist_size());
    if (o->folds)
        return cli_error("train", EXIT_USAGE, "--folds runs one process; run it without mpirun");
    if (o->cfg.threads == 0) {
        /* The ranks mpirun put on this host share its cores. */
        long cores = sysconf(_SC_NPROCESSORS_ONLN) / dist_local_size();
        o->cfg.threads = cores > 1 ? (int)cores : 1;
    }
    o->cfg.shard_index = dist_rank();
    o->cfg.shard_count = dist_size();
    o->cfg.on_gradients = sum_gradients;
    if (dist_rank() != 0) {
        o->quiet = 1;
        o->json = 0;
        o->no_test = 1;
        o->cfg.checkpoint = NULL;
    }
    return EXIT_OK;
}

/* Every rank must run this fnn with these options on these data (and this checkpoint), or
 * they would train different models while summing their gradients. */
static int check_ranks_alike(int argc, char **argv, const train_opts *o, const run_data *d)
{
    dist_part parts[4] = {{"the fnn executable", 0}, {"the command line", DIST_HASH_SEED},
                          {"the training data", DIST_HASH_SEED}, {"the --resume checkpoint", 0}};
    fnn_error err = {0};
    if (dist_hash_binary(&parts[0].hash, &err) != FNN_OK)
        return cli_lib_error("train", &err);
    for (int i = 1; i < argc; i++)
        parts[1].hash = dist_hash_str(parts[1].hash, argv[i]);
    const fnn_dataset *t = &d->full;
    int shape[4] = {t->n, t->c, t->h, t->w};
    parts[2].hash = dist_hash(parts[2].hash, shape, sizeof shape);
    parts[2].hash = dist_hash(parts[2].hash, t->images, (size_t)t->n * t->c * t->h * t->w);
    parts[2].hash = dist_hash(parts[2].hash, t->labels, (size_t)t->n);
    if (o->resume) {
        size_t len = 0;
        FILE *f;
        if (fnn_input_open(o->resume, &f, NULL, &err) != FNN_OK)
            return cli_error("train", EXIT_RUNTIME, "--resume %s", err.msg);
        char buf[1 << 14];
        parts[3].hash = DIST_HASH_SEED;
        while ((len = fread(buf, 1, sizeof buf, f)) > 0)
            parts[3].hash = dist_hash(parts[3].hash, buf, len);
        int bad = ferror(f);
        fclose(f);
        if (bad)
            return cli_error("train", EXIT_RUNTIME, "--resume %s: read error", o->resume);
    }
    return dist_check_config("train", parts, 4);
}

int cmd_train_check(int argc, char **argv)
{
    train_opts o = train_defaults();
    optind = 0; /* GNU getopt starts afresh, as a new fnn train process would */
    int rc = parse(argc, argv, &o);
    return rc < 0 ? EXIT_OK : rc;
}

int cmd_train(int argc, char **argv)
{
    train_opts o = train_defaults();
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    FILE *out = (o.quiet || o.json) ? NULL : stdout;

    fnn_error err = {0};
    fnn_checkpoint_info info = {0};
    cJSON *stored = NULL, *transfer = NULL;
    if (o.resume) {
        if (fnn_checkpoint_info_read(o.resume, &info, &err) != FNN_OK)
            return cli_error("train", EXIT_RUNTIME, "--resume %s", err.msg);
        stored = info.user_json ? cJSON_Parse(info.user_json) : NULL;
        if (!stored) {
            fnn_checkpoint_info_free(&info);
            return cli_error("train", EXIT_RUNTIME, "--resume %s: the checkpoint was not written "
                             "by fnn train (no stored options)", o.resume);
        }
        train_opts cli = o;
        if ((rc = apply_user_json(&o, stored, o.resume)) != EXIT_OK ||
            (rc = check_setup(&cli, &o, &info)) != EXIT_OK) {
            cJSON_Delete(stored);
            fnn_checkpoint_info_free(&info);
            return rc;
        }
        int epochs = o.cfg.epochs;
        const char *checkpoint = o.cfg.checkpoint ? o.cfg.checkpoint : o.resume;
        o.cfg = info.cfg;
        o.cfg.epochs = epochs;
        o.cfg.checkpoint = checkpoint;
        o.cfg.resume = o.resume;
        o.arch = info.arch;
        o.init_from = NULL; /* the checkpoint's weights replace the initial ones */
    }

    if (dist_size() > 1 && (rc = setup_ranks(&o))) {
        cJSON_Delete(stored);
        fnn_checkpoint_info_free(&info);
        return rc;
    }
    out = (o.quiet || o.json) ? NULL : stdout;

    fnn_model *m = NULL;
    run_data d = {0};
    run_files files = {0};
    fnn_epoch_stats *stats = NULL;
    char *history_text = NULL, *user = NULL;
    cJSON *doc = NULL;
    fnn_metrics mt = {0};
    double t_load = 0.0;
    /* --folds saves nothing; of several ranks, rank 0 alone saves. */
    if (!o.folds && dist_rank() == 0 && (rc = plan_files(&o, &files)))
        goto done;
    /* From here a usage error can only come from an option the checkpoint stored. */
    cli_options_from = o.resume;
    /* A team as large as the machine, one of whose cores another process holds, waits at
     * every step for the thread that lost its core: the default team is the cores left free,
     * measured while the data loads. The count is stored with a checkpoint, so a resumed run
     * keeps it whatever the machine does then. */
    fnn_cores_probe probe;
    o.threads_auto = o.cfg.threads == 0;
    if (o.threads_auto)
        fnn_cores_probe_start(&probe);
    if ((rc = load_data(&o, &d, &t_load)))
        goto done;
    if (o.threads_auto) {
        o.cfg.threads = fnn_cores_probe_finish(&probe, 0.1, &o.cores_busy);
        o.cores = probe.cores;
    }
    if (o.folds) {
        rc = run_folds(&o, &d);
        goto done;
    }
    if ((rc = make_model(&o, &d, &d.tr, &m, &transfer)))
        goto done;
    const fnn_dataset *test = o.nclasses ? &d.kept_test : &d.test;
    const char *const *names = (const char *const *)d.names;
    /* Checked now, so that a bad test file does not cost a training run first. */
    if (fnn_check_data(m, o.nclasses ? &d.kept : &d.full, "training", &err) != FNN_OK ||
        (d.has_test && fnn_check_data(m, test, "test", &err) != FNN_OK)) {
        rc = cli_lib_error("train", &err);
        goto done;
    }
    if (dist_size() > 1 && (rc = check_ranks_alike(argc, argv, &o, &d)))
        goto done;
    if (out) {
        printf("fnn %s (%s): training on %s\n", FNN_VERSION, fnn_gemm_library(), o.data.data);
        print_data(stdout, &o, &d, m);
        printf("images: %d train / %d validation / %d test (loaded in %.2fs)\n", d.tr.n,
               d.val.n, test->n, t_load);
        if (o.nclasses) {
            printf("classes:");
            for (int i = 0; i < o.nclasses; i++)
                printf(" %d (%s) as %d%s", o.classes[i], d.names[i], i,
                       i + 1 < o.nclasses ? "," : "");
            printf("\n");
        }
        if (o.per_class)
            printf("per class: the first %ld training images of each\n", o.per_class);
        if (o.resume)
            printf("resuming %s after epoch %d%s\n", o.resume, info.epoch,
                   info.step ? " and part of the next" : "");
        printf("\n");
        print_summary(stdout, m);
        if (o.recipe)
            printf("recipe: %s (%s; the options given override these)\n", o.recipe->name,
                   o.recipe->options);
        const fnn_optim_config *oc = &o.cfg.optim;
        if (oc->kind == FNN_OPT_SGD)
            printf("optimizer: sgd (lr %g, momentum %g%s", oc->lr, oc->momentum,
                   oc->nesterov ? ", nesterov" : "");
        else
            printf("optimizer: %s (lr %g, beta1 %g, beta2 %g, epsilon %g",
                   oc->kind == FNN_OPT_ADAMW ? "adamw" : "adam", oc->lr, oc->beta1, oc->beta2,
                   oc->eps);
        if (oc->weight_decay > 0.0f)
            printf(", weight decay %g", oc->weight_decay);
        printf(")");
        printf(", batch size %d, %d epoch%s, seed %llu, %d thread%s", o.cfg.batch_size,
               o.cfg.epochs, o.cfg.epochs == 1 ? "" : "s", (unsigned long long)o.cfg.seed,
               o.cfg.threads, o.cfg.threads == 1 ? "" : "s");
        if (o.threads_auto && o.cfg.threads < o.cores)
            printf(" (other processes kept %.1f of the %d cores busy; --threads %d for all)",
                   o.cores_busy, o.cores, o.cores);
        else if (o.threads_auto)
            printf(" (every core)");
        if (dist_size() > 1)
            printf(" per rank; %d ranks (MPI), each computing its share of every batch",
                   dist_size());
        printf("\n");
        print_features(stdout, &o.cfg);
        if (transfer)
            print_transfer(stdout, transfer);
        printf("\n");
        fflush(stdout);
    }

    stats = calloc((size_t)o.cfg.epochs, sizeof *stats);
    user = user_json(&o);
    if (!stats || !user) {
        rc = cli_error("train", EXIT_RUNTIME, "out of memory");
        goto done;
    }
    progress_state ps = {.o = &o, .tty = !o.quiet && isatty(STDERR_FILENO), .nepochs = o.cfg.epochs,
                         .stats = stats};
    o.cfg.on_progress = on_progress;
    o.cfg.on_epoch = on_epoch;
    if (dist_size() > 1)
        o.cfg.on_step = on_step;
    /* Validation on rank 0 only, unless early stopping or the plateau schedule decide on it,
     * which every rank must do alike (the same weights give them the same numbers). */
    fnn_dataset no_val = d.val;
    no_val.n = 0;
    const fnn_dataset *val = dist_rank() == 0 || o.cfg.early_stopping ||
                                     o.cfg.schedule.kind == FNN_LR_PLATEAU
                                 ? &d.val : &no_val;
    if (dist_size() > 1) {
        /* What a rank says when mpirun stops it, which Open MPI does to every rank when one of
         * them dies. */
        char words[1024];
        snprintf(words, sizeof words, "fnn train (%s): stopped by mpirun (SIGTERM), most likely "
                 "because another rank died or failed%s%s%s%s\n", dist_where(),
                 o.cfg.checkpoint ? "; the checkpoint " : "",
                 o.cfg.checkpoint ? o.cfg.checkpoint : "",
                 o.cfg.checkpoint ? " holds the last finished epoch: continue with "
                                    "mpirun -np N fnn train --resume " : "",
                 o.cfg.checkpoint ? o.cfg.checkpoint : "");
        cli_signals_last_words(SIGTERM, words);
    }
    o.cfg.user = &ps;
    o.cfg.checkpoint_user = user;
    /* The first Ctrl-C stops training after the step; a second one ends the process. */
    interrupted = 0;
    o.cfg.interrupt = (const volatile int *)&interrupted;
    cli_signals_stop_on(&interrupted, 0, "\nfnn train: stopping after this step (Ctrl-C again to "
                        "quit at once)\n", NULL);
    fnn_train_result res;
    /* The checkpoint's own complaints name it ("N epochs done": the --epochs given); any
     * other bad argument is a stored option the command line could not have given. */
    fnn_status ts = fnn_train_run(m, &d.tr, val, &o.cfg, stats, &res, &err);
    cli_signals_stop_off();
    /* The last words stay: a rank that found another one gone ends training with an error
     * that mpirun's SIGTERM may cut short before it is printed. */
    if (ts == FNN_OK && ps.dist_err.status != FNN_OK) {
        rc = cli_lib_error("train", &ps.dist_err);
        goto done;
    }
    if (!(ts == FNN_ERR_ARG && o.resume && !strstr(err.msg, o.resume)))
        cli_options_from = NULL;
    if (ts == FNN_ERR_INTERRUPTED) {
        if (ps.tty)
            fprintf(stderr, "\r\033[K");
        if (o.cfg.checkpoint)
            rc = cli_error("train", 130, "%s; continue with fnn train --resume %s --epochs %d",
                           err.msg, o.cfg.checkpoint, o.cfg.epochs);
        else
            rc = cli_error("train", 130, "%s; nothing was saved (with --checkpoint PATH an "
                           "interrupted run can be resumed)", err.msg);
        goto done;
    }
    if (ts != FNN_OK) {
        rc = cli_lib_error("train", &err);
        goto done;
    }
    double train_s = 0.0, val_s = 0.0;
    for (int i = res.resumed_epoch; i < res.epochs; i++) {
        train_s += stats[i].seconds;
        val_s += stats[i].val_seconds;
    }

    if (dist_rank() != 0) {
        rc = EXIT_OK;
        goto done;
    }
    double t_eval = fnn_now_s();
    fnn_eval_options eo = {.threads = o.cfg.threads, .tta = o.cfg.tta};
    if (d.has_test && fnn_evaluate_with(m, test, &eo, NULL, NULL, &mt, &err) != FNN_OK) {
        rc = cli_lib_error("train", &err);
        goto done;
    }
    t_eval = fnn_now_s() - t_eval;
    int ran = res.epochs - res.resumed_epoch;
    if (out) {
        if (res.stopped_early)
            printf("\nearly stopping: no improvement for %d epoch%s after epoch %d",
                   o.cfg.early_stopping, o.cfg.early_stopping == 1 ? "" : "s", res.best_epoch);
        if (res.best_epoch)
            printf("\nrestored the weights of epoch %d (best %s %.4f)\n", res.best_epoch,
                   o.cfg.monitor == FNN_MONITOR_VAL_ACCURACY ? "val_accuracy" : "val_loss",
                   o.cfg.monitor == FNN_MONITOR_VAL_ACCURACY ? stats[res.best_epoch - 1].val_acc
                                                              : stats[res.best_epoch - 1].val_loss);
        printf("\ntraining: %d epoch%s in %.2fs (%.3fs per epoch), validation %.2fs", ran,
               ran == 1 ? "" : "s", train_s, ran ? train_s / ran : 0.0, val_s);
        if (dist_size() > 1)
            printf(", summing gradients over the ranks (MPI_Allreduce) %.2fs (%.1f%%)",
                   dist_allreduce_seconds(),
                   train_s > 0.0 ? 100.0 * dist_allreduce_seconds() / train_s : 0.0);
        if (!d.has_test)
            printf("; no test set was read\n");
        else {
            printf("; test evaluation %.2fs\n\n", t_eval);
            print_evaluation(stdout, "test", &mt, names);
        }
    }

    cJSON *hist = history_json(stats, res.epochs, 0, res.best_epoch);
    history_text = cJSON_PrintUnformatted(hist);
    cJSON_Delete(hist);
    cJSON *names_json = cJSON_CreateStringArray(names, fnn_model_num_classes(m));
    char *names_text = cJSON_PrintUnformatted(names_json);
    cJSON_Delete(names_json);
    fnn_model_meta meta = {.class_names_json = names_text, .history_json = history_text};
    /* The failing file, for the message (the commit's own names it). */
    const char *what = NULL, *path = NULL;
    fnn_status s = fnn_outputs_stage(files.set, &err);
    if (s == FNN_OK && files.history) {
        s = write_history(files.history, fnn_outputs_path(files.set, files.history), stats,
                          res.epochs, res.best_epoch, &err);
        what = o.history ? "--history" : "the history";
        path = files.history;
    }
    if (s == FNN_OK) {
        s = fnn_model_save(m, &meta, fnn_outputs_path(files.set, o.out), &err);
        what = "--out";
        path = o.out;
    }
    if (s == FNN_OK && (s = fnn_outputs_commit(files.set, &err)) != FNN_OK)
        what = NULL;
    free(names_text);
    if (s != FNN_OK) {
        rc = what ? cli_error("train", EXIT_RUNTIME, "%s %s: %s", what, path, err.msg)
                  : cli_lib_error("train", &err);
        goto done;
    }
    if (out) {
        printf("\nsaved the model to %s", o.out);
        if (files.history)
            printf(" and the history to %s", files.history);
        printf("%s%s\n", o.cfg.checkpoint ? "; checkpoint " : "",
               o.cfg.checkpoint ? o.cfg.checkpoint : "");
        if (!files.history)
            printf("no history file: --out is a device (give --history PATH for one)\n");
    }

    if (o.json) {
        doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "fnn_version", FNN_VERSION);
        cJSON_AddStringToObject(doc, "gemm", fnn_gemm_library());
        cJSON_AddItemToObject(doc, "model", summary_json(m));
        cJSON *dj = data_json(&o, &d, m);
        cJSON_AddItemToObject(doc, "data", dj);
        cJSON_AddNumberToObject(dj, "train", d.tr.n);
        cJSON_AddNumberToObject(dj, "validation", d.val.n);
        cJSON_AddNumberToObject(dj, "test", test->n);
        cJSON_AddItemToObject(dj, "classes", o.nclasses ? cJSON_CreateIntArray(o.classes, o.nclasses)
                                                        : cJSON_CreateNull());
        cJSON_AddNumberToObject(dj, "per_class", (double)o.per_class);
        cJSON *c = cJSON_AddObjectToObject(doc, "config");
        if (o.recipe)
            cJSON_AddStringToObject(c, "recipe", o.recipe->name);
        else
            cJSON_AddNullToObject(c, "recipe");
        cJSON_AddNumberToObject(c, "epochs", o.cfg.epochs);
        cJSON_AddNumberToObject(c, "batch_size", o.cfg.batch_size);
        static const char *const optimizers[] = {"adam", "sgd", "adamw"};
        cJSON_AddStringToObject(c, "optimizer", optimizers[o.cfg.optim.kind]);
        cJSON_AddNumberToObject(c, "weight_decay", o.cfg.optim.weight_decay);
        cJSON_AddNumberToObject(c, "lr", o.cfg.optim.lr);
        cJSON_AddNumberToObject(c, "seed", (double)o.cfg.seed);
        cJSON_AddNumberToObject(c, "threads", o.cfg.threads);
        cJSON *tj = cJSON_AddObjectToObject(c, "threads_chosen");
        if (o.threads_auto) {
            cJSON_AddStringToObject(tj, "by", "free cores");
            cJSON_AddNumberToObject(tj, "cores", o.cores);
            cJSON_AddNumberToObject(tj, "cores_busy", o.cores_busy);
        } else {
            cJSON_AddStringToObject(tj, "by", o.resume ? "checkpoint" : "--threads");
        }
        cJSON *fj = features_json(&o.cfg);
        for (cJSON *it = fj->child; it; it = fj->child)
            cJSON_AddItemToObject(c, it->string, cJSON_DetachItemViaPointer(fj, it));
        cJSON_Delete(fj);
        cJSON_AddItemToObject(doc, "history", history_json(stats, res.epochs, 1, res.best_epoch));
        cJSON *es = cJSON_AddObjectToObject(doc, "early_stopping");
        cJSON_AddBoolToObject(es, "stopped_early", res.stopped_early);
        if (res.best_epoch)
            cJSON_AddNumberToObject(es, "restored_epoch", res.best_epoch);
        else
            cJSON_AddNullToObject(es, "restored_epoch");
        cJSON_AddItemToObject(doc, "transfer", transfer ? transfer : cJSON_CreateNull());
        transfer = NULL;
        cJSON_AddNumberToObject(doc, "resumed_epoch", res.resumed_epoch);
        cJSON *t = cJSON_AddObjectToObject(doc, "seconds");
        cJSON_AddNumberToObject(t, "load", t_load);
        cJSON_AddNumberToObject(t, "train", train_s);
        cJSON_AddNumberToObject(t, "validation", val_s);
        cJSON_AddNumberToObject(t, "test", t_eval);
        if (dist_size() > 1) {
            cJSON_AddNumberToObject(t, "allreduce", dist_allreduce_seconds());
            cJSON_AddNumberToObject(c, "ranks", dist_size());
        }
        cJSON_AddItemToObject(doc, "test", d.has_test ? metrics_json(&mt, names) : cJSON_CreateNull());
        cJSON_AddStringToObject(doc, "model_file", o.out);
        cJSON_AddItemToObject(doc, "history_file", files.history
                                                       ? cJSON_CreateString(files.history)
                                                       : cJSON_CreateNull());
        if (o.cfg.checkpoint)
            cJSON_AddStringToObject(doc, "checkpoint_file", o.cfg.checkpoint);
        print_json(doc);
    }
    rc = EXIT_OK;
done:
    cJSON_Delete(doc);
    cJSON_Delete(transfer);
    fnn_metrics_free(&mt);
    free(stats);
    run_files_free(&files);
    free(history_text);
    free(user);
    run_data_free(&d);
    fnn_model_free(m);
    cJSON_Delete(stored);
    fnn_checkpoint_info_free(&info);
    cli_options_from = NULL;
    return rc;
}
