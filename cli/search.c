/* fnn search: grid and random search over fnn train's options. Every trial is an `fnn train`
 * process of its own, scored on the validation split; the test set is read once, at the end. */
#define _GNU_SOURCE
#include "cli.h"
#include "dist.h"
#include "options.h"
#include "grid.h"
#include "jobs.h"
#include "util/atomic.h"
#include "util/input.h"
#include "util/outputs.h"
#include "util/rng.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: fnn search --out DIR --grid KEY=V1,V2,... [--grid ...] [options] [train options]\n"
    "\n"
    "Grid or random search over fnn train's options. Each configuration (a \"trial\") is\n"
    "trained by an fnn train process of its own, on one thread, on the training split, and\n"
    "scored on the validation split only, by the validation accuracy of the epoch whose\n"
    "weights it saved (the last, or the one --early-stopping restored; ties go to the lower\n"
    "validation loss). Trials run in parallel. When all are done they are ranked, and the\n"
    "best one alone is evaluated on the test set: the only time the search reads it.\n"
    "\n";

static const char usage_end[] =
    "\n"
    "--data is read by the trials and by the final test. Any other option is an fnn train\n"
    "option given to every trial unchanged (--epochs 5, --limit 10000, ...). The search sets\n"
    "the trials' --out, --history, --threads, --no-test, --quiet and --json itself, so those\n"
    "are refused, as are --test-limit, --checkpoint, --resume and --folds.\n"
    "\n"
    "Before any trial starts, every trial's options are checked (keys against fnn train's\n"
    "options, architectures by building them, values by fnn train's own option checks), so\n"
    "a bad key or value stops the search at once with train's message. The architectures are\n"
    "built for the data's image shape and classes, as fnn train builds them (the training\n"
    "data is opened once per set of data options to learn them). A usage error that train\n"
    "sees only while it trains stops the search at the first trial that meets it. A trial\n"
    "that fails at run time (a loss that turned NaN, say) is listed as failed and the search\n"
    "goes on.\n"
    "\n"
    "files in DIR:\n"
    "  search.json             the grid and every trial's exact fnn train options\n"
    "  trial-NNN.safetensors   each trial's model, with trial-NNN.history.csv\n"
    "  trial-NNN.json          fnn train --json output of a finished trial; trial-NNN.log its\n"
    "                          stderr\n"
    "  results.csv             one row per trial, best first\n"
    "  results.json            everything, the final test result included\n"
    "  trial-best.safetensors  a copy of the best trial's model; test.json its fnn eval --json\n"
    "\n"
    "Resuming: run the same command again. Trials that have a trial-NNN.json are kept and the\n"
    "others run; a DIR made with another grid or other train options is refused. Ctrl-C stops\n"
    "the running trials and keeps the finished ones.\n"
    "\n"
    "example, the study's MLP (3 x 2 x 2 = 12 trials):\n"
    "  fnn search --out search-mlp --epochs 5 \\\n"
    "      --arch \"flatten dense:{width}:relu dropout:{dropout} dense:64:relu dense:10:softmax\" \\\n"
    "      --grid lr=0.0005,0.001,0.002 --grid dropout=0.2,0.5 --grid width=128,256\n"
    "and 5 of those 12, drawn at random: add --samples 5 --seed 1.\n"
    "\n"
    "Over several machines (Open MPI): mpirun -np N fnn search ... deals the trials to the N\n"
    "ranks (trial i to rank (i - 1) mod N); rank 0 ranks them, tests the best and writes the\n"
    "results. --workers is per rank (default: its host's cores shared by its ranks there).\n"
    "\n"
    "Exit status: 0 on success, 1 on a runtime error (every trial failed, the test evaluation\n"
    "failed, or the search was interrupted), 2 on a usage error.\n";

/* More trials than this need --samples. */
#define MAX_TRIALS CLI_MAX_TRIALS

/* fnn train's options that a search does not pass on, and why. */
static const struct {
    const char *name, *why;
} reserved[] = {
    {"out", "the search names each trial's files, DIR/trial-NNN.*"},
    {"history", "the search names each trial's files, DIR/trial-NNN.*"},
    {"json", "the search reads each trial's --json output"},
    {"quiet", "the search reads each trial's --json output"},
    {"threads", "each trial runs on one thread; --workers sets how many run at once"},
    {"no-test", "trials never read the test set; the best one is tested once at the end"},
    {"test-limit", "trials never read the test set; the best one is tested once at the end"},
    {"checkpoint", "an interrupted search is continued by running it again"},
    {"resume", "an interrupted search is continued by running it again"},
    {"folds", "a trial is one training run, scored on the validation split"},
};

typedef struct {
    grid g;
    char **fixed;       /* (nfixed) train options for every trial, as given */
    int nfixed;
    const char *out_dir, *data;
    long samples, workers, seed;
    int json, no_final_test;
} search_opts;

typedef struct {
    int number;        /* 1-based; names the trial's files */
    uint64_t config;   /* index of its configuration in the full grid */
    int *choice;       /* (nkeys) value index per grid key */
    char **argv;       /* the whole fnn train command, NULL-terminated */
    int args_at;       /* argv[args_at..] are the options recorded in search.json */
    char *model, *result, *part, *log;
    /* Outcome: */
    int ok;            /* 1 finished with a validation score, -1 failed, 0 not run */
    int resumed;       /* finished by an earlier run of the same search */
    char *error;       /* why it failed */
    double val_acc, val_loss, best_val_acc, train_acc, seconds;
    int epochs;       /* epochs trained */
    int scored_epoch; /* the epoch whose weights were saved, and scored */
    int best_epoch;   /* the epoch of the highest validation accuracy, for information */
} trial;

typedef struct {
    search_opts *o;
    trial *t;
    int ntrials, finished, to_run;
    FILE *progress;
    trial *rejected;   /* the trial fnn train refused with a usage error */
} run_state;

/* ---------------------------------------------------------------- small helpers */

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (!s) {
        fputs("fnn search: out of memory\n", stderr);
        exit(EXIT_RUNTIME);
    }
    return s;
}

/* Why a train option cannot be given to a search, or NULL when it can. */
static const char *reserved_why(const char *name)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (!strcmp(reserved[i].name, name))
            return reserved[i].why;
    return NULL;
}

/* fnn train's option of that name, from the option table, or NULL. */
static const cli_option *train_option_find(const char *name)
{
    return cli_option_named(CLI_TRAIN, name);
}

/* The whole file, NUL-terminated, or NULL with errno set (EINVAL: not a regular file) and, when
 * err is not NULL, a message naming the file. */
static char *read_file(const char *path, size_t *len, fnn_error *err)
{
    FILE *f;
    if (fnn_input_open(path, &f, NULL, err) != FNN_OK) {
        if (errno == 0)
            errno = EINVAL;
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 4096 + 1 > cap) {
            char *grown = realloc(buf, cap = 2 * cap + 4096 + 1);
            if (!grown) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = grown;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* The last non-empty line of a file (a child's error message), malloc'd. */
static char *last_line(const char *path)
{
    char *text = read_file(path, NULL, NULL);
    if (!text)
        return strdup("(no output)");
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    char *line = strdup(n ? (nl ? nl + 1 : text) : "(no output)");
    free(text);
    return line;
}

/* ---------------------------------------------------------------- options */

static int add_fixed(search_opts *o, const char *text)
{
    char **grown = realloc(o->fixed, (size_t)(o->nfixed + 1) * sizeof *grown);
    if (!grown)
        return cli_error("search", EXIT_RUNTIME, "out of memory");
    o->fixed = grown;
    o->fixed[o->nfixed++] = (char *)text;
    return EXIT_OK;
}

static int grid_error(fnn_status s, const fnn_error *err)
{
    return cli_error("search", s == FNN_ERR_NOMEM ? EXIT_RUNTIME : EXIT_USAGE, "%s", err->msg);
}

static int add_grid_file(search_opts *o, const char *path)
{
    size_t len;
    fnn_error err = {0};
    char *text = read_file(path, &len, &err);
    if (!text)
        return cli_error("search", EXIT_USAGE, "--grid-file %s", err.msg);
    fnn_status s = grid_parse(&o->g, text, len, path, &err);
    free(text);
    return s == FNN_OK ? EXIT_OK : grid_error(s, &err);
}

/* fnn search's own options are taken here; every other "--name [value]" is an fnn train option
 * for all trials, its arity read from train's rows of the option table. */
static int parse(int argc, char **argv, search_opts *o)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_SEARCH);
            fputs(usage_end, stdout);
            return -1;
        }
    }
    int rc = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) || !arg[2])
            return cli_error("search", EXIT_USAGE,
                             "unexpected argument '%s' (see fnn search --help)", arg);
        const char *eq = strchr(arg, '=');
        char *name = strndup(arg + 2, eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));
        if (!name)
            return cli_error("search", EXIT_RUNTIME, "out of memory");
        const char *value = eq ? eq + 1 : NULL;
        const cli_option *own = cli_option_named(CLI_SEARCH, name);
        const cli_option *to = train_option_find(name);
        /* An own flag given a value ("--json=1") is not search's: train's rows judge it. */
        if (own && !own->metavar && value)
            own = NULL;
        int needs_value = own ? own->metavar != NULL : to && to->metavar;
        if (needs_value && !value) {
            if (i + 1 == argc) {
                rc = cli_error("search", EXIT_USAGE, "option '%s' needs a value", arg);
                goto next;
            }
            value = argv[++i];
        }
        fnn_error err = {0};
        fnn_status s;
        switch (own ? own->id : 0) {
        case OPT_JSON: o->json = 1; break;
        case OPT_NO_FINAL_TEST: o->no_final_test = 1; break;
        case OPT_GRID: {
            char origin[96];
            snprintf(origin, sizeof origin, "--grid '%.60s'", value);
            if ((s = grid_add(&o->g, value, origin, &err)) != FNN_OK)
                rc = grid_error(s, &err);
            break;
        }
        case OPT_ARCH: {
            char *kv = xasprintf("arch=%s", value);
            if ((s = grid_add(&o->g, kv, "--arch", &err)) != FNN_OK)
                rc = grid_error(s, &err);
            free(kv);
            break;
        }
        case OPT_GRID_FILE: rc = add_grid_file(o, value); break;
        case OPT_OUT: o->out_dir = value; break;
        case OPT_DATA: o->data = value; break;
        case OPT_SAMPLES:
            rc = cli_opt_int("search", CLI_SEARCH, OPT_SAMPLES, value, &o->samples) ? 0
                                                                                  : EXIT_USAGE;
            break;
        case OPT_WORKERS:
            rc = cli_opt_int("search", CLI_SEARCH, OPT_WORKERS, value, &o->workers) ? 0
                                                                                  : EXIT_USAGE;
            break;
        case OPT_SEED:
            rc = cli_opt_int("search", CLI_SEARCH, OPT_SEED, value, &o->seed) ? 0 : EXIT_USAGE;
            break;
        default:
            if (own) /* a row of search's without a case above */
                rc = cli_error("search", EXIT_USAGE, "unknown option '%s' (see fnn search "
                               "--help)", arg);
            else if (!to)
                rc = cli_error("search", EXIT_USAGE,
                               "unknown option '%s': neither fnn search's nor fnn train's (see "
                               "fnn search --help and fnn train --help)", arg);
            else if (reserved_why(name))
                rc = cli_error("search", EXIT_USAGE, "--%s cannot be given to a search: %s",
                               name, reserved_why(name));
            else if (!to->metavar && value)
                rc = cli_error("search", EXIT_USAGE, "--%s takes no value, got '%s'", name,
                               value);
            else if ((rc = add_fixed(o, argv[i - (value && !eq ? 1 : 0)])) == EXIT_OK && value &&
                     !eq)
                rc = add_fixed(o, value);
        }
    next:
        free(name);
        if (rc)
            return rc;
    }
    if (!o->out_dir)
        return cli_error("search", EXIT_USAGE, "--out DIR is required (see fnn search --help)");
    if (!o->g.nkeys)
        return cli_error("search", EXIT_USAGE,
                         "no grid: give --grid KEY=V1,V2,... or --grid-file (see fnn search --help)");
    return EXIT_OK;
}

/* Whether some value of a key other than name refers to {name}. */
static int used_as_placeholder(const grid *g, const char *name)
{
    char *ph = xasprintf("{%s}", name);
    int used = 0;
    for (int i = 0; i < g->nkeys && !used; i++)
        for (int j = 0; j < g->keys[i].nvalues && !used; j++)
            used = strcmp(g->keys[i].name, name) && strstr(g->keys[i].values[j], ph);
    free(ph);
    return used;
}

static int fixed_has(const search_opts *o, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < o->nfixed; i++) {
        const char *f = o->fixed[i];
        if (!strncmp(f, "--", 2) && !strncmp(f + 2, name, len) && (!f[2 + len] || f[2 + len] == '='))
            return 1;
    }
    return 0;
}

/* Every grid key must be a train option or a placeholder in use, and not also a fixed option. */
static int check_keys(const search_opts *o)
{
    for (int i = 0; i < o->g.nkeys; i++) {
        const grid_key *k = &o->g.keys[i];
        const cli_option *to = train_option_find(k->name);
        if (!strcmp(k->name, "data"))
            return cli_error("search", EXIT_USAGE, "%s: 'data' cannot be a grid key: every "
                             "trial uses --data", k->origin);
        if (to && reserved_why(k->name))
            return cli_error("search", EXIT_USAGE, "%s: '%s' cannot be a grid key: %s",
                             k->origin, k->name, reserved_why(k->name));
        if (!to && !used_as_placeholder(&o->g, k->name))
            return cli_error("search", EXIT_USAGE,
                             "%s: grid key '%s' is not an fnn train option (see fnn train --help) "
                             "and no other value uses it as {%s}", k->origin, k->name, k->name);
        if (to && fixed_has(o, k->name))
            return cli_error("search", EXIT_USAGE,
                             "--%s is given both as a grid key (%s) and as an option for every "
                             "trial", k->name, k->origin);
        for (int j = 0; to && !to->metavar && j < k->nvalues; j++)
            if (strcmp(k->values[j], "on") && strcmp(k->values[j], "off"))
                return cli_error("search", EXIT_USAGE,
                                 "%s: --%s takes no value, so its grid values are on and off, "
                                 "got '%s'", k->origin, k->name, k->values[j]);
    }
    return EXIT_OK;
}

/* ---------------------------------------------------------------- trials */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The configurations to try: all of them, or `samples` distinct ones drawn with Floyd's
 * algorithm (uniform over subsets), sorted so that trials follow grid order. */
static int pick_configs(const search_opts *o, uint64_t **out, int *n)
{
    uint64_t total = grid_size(&o->g, o->samples ? 0x7FFFFFFFu : MAX_TRIALS);
    if (!total && !o->samples)
        return cli_error("search", EXIT_USAGE,
                         "the grid spans more than %d configurations: use --samples N", MAX_TRIALS);
    if (!total)
        return cli_error("search", EXIT_USAGE, "the grid spans more than 2^31 configurations");
    if (o->samples && (uint64_t)o->samples > total)
        return cli_error("search", EXIT_USAGE,
                         "--samples %ld: the grid has only %llu configurations", o->samples,
                         (unsigned long long)total);
    int count = o->samples ? (int)o->samples : (int)total;
    uint64_t *c = malloc((size_t)count * sizeof *c);
    if (!c)
        return cli_error("search", EXIT_RUNTIME, "out of memory");
    if (!o->samples) {
        for (int i = 0; i < count; i++)
            c[i] = (uint64_t)i;
    } else {
        fnn_rng r;
        fnn_rng_seed(&r, (uint64_t)o->seed);
        int got = 0;
        for (uint64_t j = total - (uint64_t)count; j < total; j++) {
            uint64_t pick = fnn_rng_below(&r, (uint32_t)(j + 1));
            int seen = 0;
            for (int i = 0; i < got && !seen; i++)
                seen = c[i] == pick;
            c[got++] = seen ? j : pick;
        }
        qsort(c, (size_t)count, sizeof *c, cmp_u64);
    }
    *out = c;
    *n = count;
    return EXIT_OK;
}

static void push(char ***v, int *n, char *s)
{
    char **grown = realloc(*v, (size_t)(*n + 2) * sizeof *grown);
    if (!grown) {
        fputs("fnn search: out of memory\n", stderr);
        exit(EXIT_RUNTIME);
    }
    *v = grown;
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

/* The fnn train command of trial t: what the search sets, then --data and --seed, the fixed
 * options, and the grid's values with their placeholders filled. */
static int build_trial(const search_opts *o, const char *exe, trial *t)
{
    t->choice = calloc((size_t)o->g.nkeys, sizeof *t->choice);
    if (!t->choice)
        return cli_error("search", EXIT_RUNTIME, "out of memory");
    grid_config(&o->g, t->config, t->choice);
    const char *dir = o->out_dir;
    t->model = xasprintf("%s/trial-%03d.safetensors", dir, t->number);
    t->result = xasprintf("%s/trial-%03d.json", dir, t->number);
    t->part = xasprintf("%s/trial-%03d.json.part", dir, t->number);
    t->log = xasprintf("%s/trial-%03d.log", dir, t->number);
    int n = 0;
    const char *head[] = {exe, "train", "--threads", "1", "--no-test", "--quiet", "--json",
                          "--out", t->model};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        push(&t->argv, &n, xasprintf("%s", head[i]));
    t->args_at = n;
    push(&t->argv, &n, xasprintf("--data"));
    push(&t->argv, &n, xasprintf("%s", o->data));
    if (!grid_find(&o->g, "seed")) {
        push(&t->argv, &n, xasprintf("--seed"));
        push(&t->argv, &n, xasprintf("%ld", o->seed));
    }
    for (int i = 0; i < o->nfixed; i++)
        push(&t->argv, &n, xasprintf("%s", o->fixed[i]));
    for (int i = 0; i < o->g.nkeys; i++) {
        const grid_key *k = &o->g.keys[i];
        const cli_option *to = train_option_find(k->name);
        if (!to)
            continue;
        fnn_error err = {0};
        char *v = grid_fill(&o->g, t->choice, k->values[t->choice[i]], k->name, &err);
        if (!v)
            return cli_error("search", EXIT_USAGE, "%s: %s", k->origin, err.msg);
        if (!to->metavar) {
            if (!strcmp(v, "on"))
                push(&t->argv, &n, xasprintf("--%s", k->name));
            free(v);
            continue;
        }
        push(&t->argv, &n, xasprintf("--%s", k->name));
        push(&t->argv, &n, v);
    }
    return EXIT_OK;
}

/* "lr=0.001 width=128": the keys that vary across the grid (all keys if none does). */
static char *params_text(const grid *g, const int *choice)
{
    int varying = 0;
    for (int i = 0; i < g->nkeys; i++)
        varying += g->keys[i].nvalues > 1;
    char *s = xasprintf("%s", "");
    for (int i = 0; i < g->nkeys; i++) {
        if (varying && g->keys[i].nvalues == 1)
            continue;
        char *grown = xasprintf("%s%s%s=%s", s, *s ? " " : "", g->keys[i].name,
                                g->keys[i].values[choice[i]]);
        free(s);
        s = grown;
    }
    return s;
}

/* The value of option --name in a trial's command ("--name V" or "--name=V"), or NULL. */
static const char *trial_value(const trial *t, const char *name)
{
    size_t len = strlen(name);
    const char *value = NULL;
    for (int j = t->args_at; t->argv[j]; j++) {
        const char *a = t->argv[j];
        if (strncmp(a, "--", 2) || strncmp(a + 2, name, len))
            continue;
        if (a[2 + len] == '=')
            value = a + 3 + len;
        else if (!a[2 + len] && t->argv[j + 1])
            value = t->argv[++j];
    }
    return value;
}

/* Whether flag --name is among a trial's options. */
static int trial_flag(const trial *t, const char *name)
{
    for (int j = t->args_at; t->argv[j]; j++)
        if (!strncmp(t->argv[j], "--", 2) && !strcmp(t->argv[j] + 2, name))
            return 1;
    return 0;
}

/* The shape and classes of the training data as a trial's data options read it. Trials mostly
 * share those options: the last answer is kept, keyed by them. */
typedef struct {
    char *key;   /* "SIZE|CHANNELS|SKIP" of the answer below, NULL before the first */
    int c, h, w; /* image shape */
    int k;       /* classes */
} data_probe;

static int probe_data(const search_opts *o, const trial *t, data_probe *p)
{
    const char *size = trial_value(t, "image-size"), *channels = trial_value(t, "channels");
    int skip = trial_flag(t, "skip-bad-images");
    char *key = xasprintf("%s|%s|%d", size ? size : "", channels ? channels : "", skip);
    if (p->key && !strcmp(p->key, key)) {
        free(key);
        return EXIT_OK;
    }
    fnn_data_options opt = {.skip_bad = skip, .channels = channels ? atoi(channels) : 0};
    if (size && !cli_parse_size("search", "--image-size", size, &opt.h, &opt.w)) {
        free(key);
        return EXIT_USAGE;
    }
    fnn_error err = {0};
    fnn_source *src;
    if (fnn_source_open(o->data, "train", &opt, &src, &err) != FNN_OK) {
        free(key);
        return cli_lib_error("search", &err);
    }
    fnn_source_shape(src, &p->c, &p->h, &p->w);
    p->k = fnn_source_num_classes(src);
    fnn_source_close(src);
    free(p->key);
    p->key = key;
    return EXIT_OK;
}

/* The architecture of a trial whose options fnn train accepts, built as fnn train builds it
 * for the data: fnn train reads its data before its --arch, so its option checks cannot see a
 * bad one. The input is the data's image shape as the trial's --image-size and --channels read
 * it, and the classes are the data's, or as many as --classes keeps. */
static int check_arch(const search_opts *o, const trial *t, data_probe *p)
{
    const char *arch = trial_value(t, "arch"), *classes = trial_value(t, "classes");
    int rc = probe_data(o, t, p);
    if (rc)
        return rc;
    int k = p->k;
    if (classes)
        for (k = 1; *classes; classes++)
            k += *classes == ',';
    char *params = params_text(&o->g, t->choice);
    char *prefix = xasprintf("trial %d (%s): --arch %s", t->number, params, arch ? arch : "mlp");
    free(params);
    /* The model's own messages follow the trial's name. */
    char *text = NULL;
    size_t len = 0;
    FILE *msg = open_memstream(&text, &len);
    if (!msg) {
        free(prefix);
        return cli_error("search", EXIT_RUNTIME, "out of memory");
    }
    cli_error_stream = msg;
    fnn_model *m = cli_model_for("search", arch ? arch : "mlp", p->c, p->h, p->w, k,
                                 classes ? "--classes keeps" : "the data has", &rc);
    cli_error_stream = NULL;
    if (fclose(msg) != 0 || !text) {
        free(text);
        free(prefix);
        fnn_model_free(m);
        return cli_error("search", EXIT_RUNTIME, "out of memory");
    }
    if (!m) {
        /* "fnn search: " and the newline of cli_error's line are the search's own. */
        const char *body = strncmp(text, "fnn search: ", 12) ? text : text + 12;
        while (len && text[len - 1] == '\n')
            text[--len] = '\0';
        rc = cli_error("search", rc, "%s: %s", prefix, body);
    }
    fnn_model_free(m);
    free(text);
    free(prefix);
    return rc;
}

/* fnn train's own option checks, then its architecture, judge every trial before any trial
 * starts, in this process: a usage error stops the search with train's message. */
static int check_trials(const search_opts *o, trial *t, int n)
{
    data_probe probe = {0};
    int rc = EXIT_OK;
    for (int i = 0; i < n && rc == EXIT_OK; i++) {
        /* getopt permutes what it parses: a copy of the trial's argv, from "train" on. */
        char **argv = NULL;
        int argc = 0;
        for (int j = 1; t[i].argv[j]; j++)
            push(&argv, &argc, t[i].argv[j]);
        char *text = NULL;
        size_t len = 0;
        FILE *msg = open_memstream(&text, &len);
        if (!msg) {
            free(argv);
            rc = cli_error("search", EXIT_RUNTIME, "out of memory");
            break;
        }
        cli_error_stream = msg;
        int code = cmd_train_check(argc, argv);
        cli_error_stream = NULL;
        free(argv);
        if (fclose(msg) != 0 || !text) {
            free(text);
            rc = cli_error("search", EXIT_RUNTIME, "out of memory");
            break;
        }
        if (code != EXIT_OK) {
            char *params = params_text(&o->g, t[i].choice);
            while (len && text[len - 1] == '\n')
                text[--len] = '\0';
            rc = cli_error("search", code, "trial %d (%s) is refused by fnn train:\n%s",
                           t[i].number, params, text);
            free(params);
        }
        free(text);
        if (rc == EXIT_OK)
            rc = check_arch(o, &t[i], &probe);
    }
    free(probe.key);
    return rc;
}

/* ---------------------------------------------------------------- search.json */

static cJSON *grid_json(const grid *g)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < g->nkeys; i++)
        cJSON_AddItemToObject(o, g->keys[i].name,
                              cJSON_CreateStringArray((const char *const *)g->keys[i].values,
                                                      g->keys[i].nvalues));
    return o;
}

static cJSON *trial_args_json(const trial *t)
{
    cJSON *a = cJSON_CreateArray();
    for (int j = t->args_at; t->argv[j]; j++)
        cJSON_AddItemToArray(a, cJSON_CreateString(t->argv[j]));
    return a;
}

static cJSON *manifest_json(const search_opts *o, const trial *t, int n)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "fnn_version", FNN_VERSION);
    cJSON_AddItemToObject(doc, "grid", grid_json(&o->g));
    cJSON_AddNumberToObject(doc, "samples", (double)o->samples);
    cJSON_AddNumberToObject(doc, "seed", (double)o->seed);
    cJSON *trials = cJSON_AddArrayToObject(doc, "trials");
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "trial", t[i].number);
        cJSON_AddNumberToObject(e, "config", (double)t[i].config);
        cJSON_AddItemToObject(e, "args", trial_args_json(&t[i]));
        cJSON_AddItemToArray(trials, e);
    }
    return doc;
}

static int write_json_file(const char *path, cJSON *doc)
{
    char *text = cJSON_Print(doc);
    if (!text)
        return cli_error("search", EXIT_RUNTIME, "out of memory");
    size_t len = strlen(text);
    text[len] = '\n';
    fnn_error err = {0};
    fnn_status s = fnn_write_atomic(path, text, len + 1, &err);
    free(text);
    return s == FNN_OK ? EXIT_OK : cli_error("search", EXIT_RUNTIME, "%s", err.msg);
}

/* Creates DIR, or checks that it is a search's (fnn never writes into a directory it did not
 * create) and that the search already in it is this one: the same trials with the same fnn
 * train options, so that their finished results can be kept. */
static int prepare_dir(const search_opts *o, const trial *t, int n)
{
    fnn_error err = {0};
    fnn_outputs *set = fnn_outputs_new();
    fnn_status s = set ? fnn_outputs_dir(set, "--out", o->out_dir, ".fnn-search", FNN_OUT_LIVE,
                                         &err)
                       : fnn_fail(&err, FNN_ERR_NOMEM, "out of memory");
    fnn_outputs_free(set);
    if (s != FNN_OK)
        return cli_lib_error("search", &err);
    char *path = xasprintf("%s/search.json", o->out_dir);
    cJSON *now = manifest_json(o, t, n);
    cJSON *now_trials = cJSON_GetObjectItemCaseSensitive(now, "trials");
    int rc = EXIT_OK;
    char *text = read_file(path, NULL, NULL);
    if (text) {
        cJSON *before = cJSON_Parse(text);
        cJSON *trials = cJSON_GetObjectItemCaseSensitive(before, "trials");
        if (!trials || !cJSON_Compare(trials, now_trials, 1))
            rc = cli_error("search", EXIT_USAGE,
                           "--out %s holds another search (its search.json lists other trials or "
                           "other fnn train options): give a new --out, or delete the directory "
                           "to start over", o->out_dir);
        cJSON_Delete(before);
        free(text);
    } else if (errno != ENOENT) {
        rc = cli_error("search", EXIT_RUNTIME, "%s: %s", path, strerror(errno));
    } else {
        rc = write_json_file(path, now);
    }
    cJSON_Delete(now);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- results of a trial */

static double number_at(const cJSON *arr, int i)
{
    const cJSON *v = cJSON_GetArrayItem(arr, i);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Reads fnn train's --json document. The score is the validation accuracy of the epoch whose
 * weights were saved: the last one, or under --early-stopping the one restored. */
static int read_result_text(trial *t, const char *text)
{
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(doc, "history");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(h, "val_accuracy");
    const cJSON *restored = cJSON_GetObjectItemCaseSensitive(h, "restored_epoch");
    int n = cJSON_GetArraySize(val), ok = 0;
    int e = cJSON_IsNumber(restored) && restored->valueint >= 1 && restored->valueint <= n
                ? restored->valueint : n;
    if (n > 0) {
        t->epochs = n;
        t->scored_epoch = e;
        t->val_acc = number_at(val, e - 1);
        t->val_loss = number_at(cJSON_GetObjectItemCaseSensitive(h, "val_loss"), e - 1);
        t->train_acc = number_at(cJSON_GetObjectItemCaseSensitive(h, "train_accuracy"), e - 1);
        t->best_val_acc = -1.0;
        for (int i = 0; i < n; i++)
            if (number_at(val, i) > t->best_val_acc) {
                t->best_val_acc = number_at(val, i);
                t->best_epoch = i + 1;
            }
        ok = isfinite(t->val_acc);
    }
    /* A resumed trial's time, as its fnn train measured it; a new trial's is the wall clock's. */
    const cJSON *secs = cJSON_GetObjectItemCaseSensitive(doc, "seconds"), *part;
    t->seconds = 0.0;
    cJSON_ArrayForEach(part, secs)
        t->seconds += cJSON_IsNumber(part) ? part->valuedouble : 0.0;
    cJSON_Delete(doc);
    return ok;
}

static int read_result(trial *t, const char *path)
{
    char *text = read_file(path, NULL, NULL);
    int ok = read_result_text(t, text);
    free(text);
    return ok;
}

static void print_progress(run_state *rs, const trial *t)
{
    char *params = params_text(&rs->o->g, t->choice);
    fprintf(rs->progress, "trial %d/%d  %s  ", t->number, rs->ntrials, params);
    if (t->ok > 0)
        fprintf(rs->progress, "val accuracy %.4f", t->val_acc);
    else
        fprintf(rs->progress, "FAILED: %s", t->error);
    fprintf(rs->progress, "  %.1fs  [%d/%d run]\n", t->seconds, rs->finished, rs->to_run);
    fflush(rs->progress);
    free(params);
}

static int on_trial_done(void *user, job *j)
{
    run_state *rs = user;
    trial *t = NULL;
    for (int i = 0; i < rs->ntrials && !t; i++)
        if (rs->t[i].argv == j->argv)
            t = &rs->t[i];
    rs->finished++;
    if (j->code == EXIT_USAGE) {
        t->error = last_line(t->log);
        rs->rejected = t;
        return 1;
    }
    fnn_error err = {0};
    if (j->code == 0 && read_result(t, t->part)) {
        size_t len;
        char *text = read_file(t->part, &len, NULL);
        if (text && fnn_write_atomic(t->result, text, len, &err) == FNN_OK) {
            unlink(t->part);
            t->ok = 1;
        } else {
            t->ok = -1;
            t->error = xasprintf("%s", text ? err.msg : strerror(errno));
        }
        free(text);
    } else {
        t->ok = -1;
        t->error = j->code == 0 ? xasprintf("no validation accuracy in %s (--val-split 0?)", t->part)
                   : j->code < 0 ? xasprintf("killed by a signal")
                                 : last_line(t->log);
    }
    t->seconds = j->seconds;
    print_progress(rs, t);
    return 0;
}

/* ---------------------------------------------------------------- the results table */

static int cmp_rank(const void *a, const void *b)
{
    const trial *x = *(trial *const *)a, *y = *(trial *const *)b;
    if ((x->ok > 0) != (y->ok > 0))
        return x->ok > 0 ? -1 : 1;
    if (x->ok > 0 && x->val_acc != y->val_acc)
        return x->val_acc > y->val_acc ? -1 : 1;
    /* Equal accuracy (likely on a small validation split): the lower loss is more confident. */
    if (x->ok > 0 && x->val_loss != y->val_loss && !isnan(x->val_loss) && !isnan(y->val_loss))
        return x->val_loss < y->val_loss ? -1 : 1;
    return x->number - y->number;
}

/* A CSV field followed by end ("," or "\n"), quoted when it holds a comma, a quote or a line
 * break. */
static fnn_status csv_field(fnn_atomic_file *f, const char *s, const char *end, fnn_error *err)
{
    if (!strpbrk(s, ",\"\n\r"))
        return fnn_atomic_printf(f, err, "%s%s", s, end);
    fnn_status st = fnn_atomic_printf(f, err, "\"");
    for (const char *p = s; *p && st == FNN_OK; p++)
        st = fnn_atomic_printf(f, err, *p == '"' ? "\"\"" : "%c", *p);
    return st == FNN_OK ? fnn_atomic_printf(f, err, "\"%s", end) : st;
}

static int write_csv(const search_opts *o, trial **ranked, int n)
{
    char *path = xasprintf("%s/results.csv", o->out_dir);
    fnn_error err = {0};
    fnn_atomic_file *f = NULL;
    fnn_status s = fnn_atomic_open(path, &f, &err);
    if (s == FNN_OK)
        s = fnn_atomic_printf(f, &err, "rank,trial,");
    for (int k = 0; k < o->g.nkeys && s == FNN_OK; k++)
        s = csv_field(f, o->g.keys[k].name, ",", &err);
    if (s == FNN_OK)
        s = fnn_atomic_printf(f, &err, "val_accuracy,val_loss,scored_epoch,best_val_accuracy,"
                                       "best_epoch,train_accuracy,epochs,seconds,status\n");
    for (int i = 0; i < n && s == FNN_OK; i++) {
        const trial *t = ranked[i];
        s = fnn_atomic_printf(f, &err, "%d,%d,", i + 1, t->number);
        for (int k = 0; k < o->g.nkeys && s == FNN_OK; k++)
            s = csv_field(f, o->g.keys[k].values[t->choice[k]], ",", &err);
        if (s == FNN_OK && t->ok > 0)
            s = fnn_atomic_printf(f, &err, "%.6f,%.6f,%d,%.6f,%d,%.6f,%d,%.2f,ok\n", t->val_acc,
                                  t->val_loss, t->scored_epoch, t->best_val_acc, t->best_epoch,
                                  t->train_acc, t->epochs, t->seconds);
        else if (s == FNN_OK) {
            s = fnn_atomic_printf(f, &err, ",,,,,,,%.2f,", t->seconds);
            if (s == FNN_OK) {
                char *status = xasprintf("failed: %s", t->error);
                s = csv_field(f, status, "\n", &err);
                free(status);
            }
        }
    }
    if (s == FNN_OK)
        s = fnn_atomic_commit(f, &err);
    else if (f)
        fnn_atomic_abort(f);
    free(path);
    return s == FNN_OK ? EXIT_OK : cli_error("search", EXIT_RUNTIME, "%s", err.msg);
}

static void print_table(FILE *f, const search_opts *o, trial **ranked, int n)
{
    int show[64], nshow = 0, varying = 0;
    for (int k = 0; k < o->g.nkeys; k++)
        varying += o->g.keys[k].nvalues > 1;
    for (int k = 0; k < o->g.nkeys && nshow < 64; k++)
        if (!varying || o->g.keys[k].nvalues > 1)
            show[nshow++] = k;
    int width[64];
    for (int s = 0; s < nshow; s++) {
        const grid_key *k = &o->g.keys[show[s]];
        width[s] = (int)strlen(k->name);
        for (int v = 0; v < k->nvalues; v++)
            if ((int)strlen(k->values[v]) > width[s])
                width[s] = (int)strlen(k->values[v]);
    }
    fprintf(f, "rank  trial  ");
    for (int s = 0; s < nshow; s++)
        fprintf(f, "%-*s  ", width[s], o->g.keys[show[s]].name);
    fprintf(f, "val_acc  val_loss  epoch  best_val_acc (epoch)  seconds\n");
    for (int i = 0; i < n; i++) {
        const trial *t = ranked[i];
        fprintf(f, "%4d  %5d  ", i + 1, t->number);
        for (int s = 0; s < nshow; s++)
            fprintf(f, "%-*s  ", width[s], o->g.keys[show[s]].values[t->choice[show[s]]]);
        char best[32];
        snprintf(best, sizeof best, "%.4f (%d)", t->best_val_acc, t->best_epoch);
        if (t->ok > 0)
            fprintf(f, "%-7.4f  %-8.4f  %5d  %-20s  %7.1f\n", t->val_acc, t->val_loss,
                    t->scored_epoch, best, t->seconds);
        else
            fprintf(f, "failed: %s\n", t->error);
    }
}

static cJSON *trial_json(const search_opts *o, const trial *t, int rank)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "rank", rank);
    cJSON_AddNumberToObject(e, "trial", t->number);
    cJSON *p = cJSON_AddObjectToObject(e, "params");
    for (int k = 0; k < o->g.nkeys; k++)
        cJSON_AddStringToObject(p, o->g.keys[k].name, o->g.keys[k].values[t->choice[k]]);
    cJSON_AddItemToObject(e, "args", trial_args_json(t));
    cJSON_AddStringToObject(e, "status", t->ok > 0 ? "ok" : "failed");
    if (t->ok > 0) {
        cJSON_AddNumberToObject(e, "val_accuracy", t->val_acc);
        cJSON_AddItemToObject(e, "val_loss", isfinite(t->val_loss) ? cJSON_CreateNumber(t->val_loss)
                                                                  : cJSON_CreateNull());
        cJSON_AddNumberToObject(e, "scored_epoch", t->scored_epoch);
        cJSON_AddNumberToObject(e, "best_val_accuracy", t->best_val_acc);
        cJSON_AddNumberToObject(e, "best_epoch", t->best_epoch);
        cJSON_AddItemToObject(e, "train_accuracy", isfinite(t->train_acc)
                                                       ? cJSON_CreateNumber(t->train_acc)
                                                       : cJSON_CreateNull());
        cJSON_AddNumberToObject(e, "epochs", t->epochs);
        cJSON_AddStringToObject(e, "model_file", t->model);
        cJSON_AddStringToObject(e, "train_output", t->result);
    } else {
        cJSON_AddStringToObject(e, "error", t->error);
    }
    cJSON_AddNumberToObject(e, "seconds", t->seconds);
    cJSON_AddBoolToObject(e, "resumed", t->resumed);
    return e;
}

/* ---------------------------------------------------------------- the one test evaluation */

/* Writes the best model (its file's bytes: a trial run by another rank may have written it on
 * another host) to trial-best.safetensors and runs fnn eval on it. On success *test receives
 * eval's "test" object; otherwise *error says why. */
static int final_test(const search_opts *o, const char *exe, const trial *best,
                      const char *bytes, size_t nbytes, char **envp, cJSON **test, char **error)
{
    char *model = xasprintf("%s/trial-best.safetensors", o->out_dir);
    char *out = xasprintf("%s/test.json", o->out_dir), *log = xasprintf("%s/test.log", o->out_dir);
    fnn_error err = {0};
    int rc = fnn_write_atomic(model, bytes, nbytes, &err) == FNN_OK
                 ? EXIT_OK : cli_error("search", EXIT_RUNTIME, "%s", err.msg);
    if (!rc) {
        char **argv = NULL;
        int argc = 0;
        const char *head[] = {exe, "eval", model, "--json", "--data", o->data};
        for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
            push(&argv, &argc, (char *)head[i]);
        /* The best trial's options that fnn eval takes too (the data options it shares with
         * train: --test-data, --image-size, ...), so that the test set is read as the trials
         * read theirs. */
        for (int i = best->args_at; best->argv[i]; i++) {
            const char *a = best->argv[i];
            size_t len = strcspn(a + 2, "=");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), a + 2);
            const cli_option *row = strncmp(a, "--", 2) ? NULL : train_option_find(name);
            int shared = row && (row->cmds & CLI_EVAL) && row->id != OPT_DATA;
            if (shared)
                push(&argv, &argc, best->argv[i]);
            if (row && row->metavar && !a[2 + len] && best->argv[i + 1] && shared)
                push(&argv, &argc, best->argv[i + 1]);
            if (row && row->metavar && !a[2 + len])
                i++;
        }
        job j = {.argv = argv, .out_path = out, .err_path = log, .envp = envp};
        char msg[256];
        int r = jobs_run(&j, 1, 1, NULL, NULL, msg, sizeof msg);
        free(argv);
        if (r == JOBS_INTERRUPTED)
            rc = cli_error("search", EXIT_RUNTIME, "interrupted during the test evaluation");
        else if (r == JOBS_FAILED)
            rc = cli_error("search", EXIT_RUNTIME, "%s", msg);
        else if (j.code != 0) {
            *error = last_line(log);
            rc = cli_error("search", EXIT_RUNTIME, "the test evaluation of the best trial failed: "
                           "%s", *error);
        } else {
            char *text = read_file(out, NULL, NULL);
            cJSON *doc = text ? cJSON_Parse(text) : NULL;
            cJSON *t = cJSON_DetachItemFromObjectCaseSensitive(doc, "test");
            if (cJSON_IsObject(t))
                *test = t;
            else
                rc = cli_error("search", EXIT_RUNTIME, "%s: no \"test\" object in fnn eval's "
                               "output", out);
            free(text);
            cJSON_Delete(doc);
        }
    }
    free(model);
    free(out);
    free(log);
    return rc;
}

/* ---------------------------------------------------------------- the report */

/* Everything, as results.json and --json print it. Takes ownership of test. */
static cJSON *results_doc(const search_opts *o, trial **ranked, int n, int to_run,
                          const trial *best, cJSON *test, const char *test_error)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "fnn_version", FNN_VERSION);
    cJSON_AddStringToObject(doc, "search", o->samples ? "random" : "grid");
    cJSON_AddItemToObject(doc, "grid", grid_json(&o->g));
    cJSON_AddNumberToObject(doc, "configurations", (double)grid_size(&o->g, UINT64_MAX));
    cJSON_AddNumberToObject(doc, "trials_run", to_run);
    cJSON_AddNumberToObject(doc, "trials_resumed", n - to_run);
    cJSON_AddStringToObject(doc, "score", "val_accuracy of the epoch whose weights were saved "
                                          "(the last, or the one --early-stopping restored)");
    cJSON *list = cJSON_AddArrayToObject(doc, "trials");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(list, trial_json(o, ranked[i], i + 1));
    cJSON_AddItemToObject(doc, "best", best ? trial_json(o, best, 1) : cJSON_CreateNull());
    cJSON *final = cJSON_AddObjectToObject(doc, "final_test");
    cJSON_AddStringToObject(final, "label", "test accuracy of the best configuration (the only "
                                            "time the test set was read)");
    cJSON_AddBoolToObject(final, "read", best && !o->no_final_test);
    if (best && !o->no_final_test)
        cJSON_AddStringToObject(final, "model_file", "trial-best.safetensors");
    if (test_error)
        cJSON_AddStringToObject(final, "error", test_error);
    cJSON_AddItemToObject(final, "test", test ? test : cJSON_CreateNull());
    return doc;
}

static void print_best(FILE *out, const search_opts *o, const trial *best, const cJSON *test)
{
    char *params = params_text(&o->g, best->choice);
    fprintf(out, "\nbest: trial %d (%s), validation accuracy %.4f\n", best->number, params,
            best->val_acc);
    free(params);
    if (o->no_final_test) {
        fprintf(out, "the test set was not read (--no-final-test)\n");
    } else if (cJSON_IsObject(test)) {
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(test, "accuracy");
        const cJSON *loss = cJSON_GetObjectItemCaseSensitive(test, "loss");
        const cJSON *images = cJSON_GetObjectItemCaseSensitive(test, "images");
        fprintf(out, "\ntest accuracy of the best configuration (the only time the test set was "
                     "read): %.4f (loss %.4f, %d images; %s/test.json)\n",
                cJSON_IsNumber(acc) ? acc->valuedouble : NAN,
                cJSON_IsNumber(loss) ? loss->valuedouble : NAN,
                cJSON_IsNumber(images) ? images->valueint : 0, o->out_dir);
    }
    fprintf(out, "results: %s/results.csv and %s/results.json\n", o->out_dir, o->out_dir);
}

/* ---------------------------------------------------------------- the command */

static void trials_free(trial *t, int n)
{
    for (int i = 0; t && i < n; i++) {
        for (int j = 0; t[i].argv && t[i].argv[j]; j++)
            free(t[i].argv[j]);
        free(t[i].argv);
        free(t[i].choice);
        free(t[i].model);
        free(t[i].result);
        free(t[i].part);
        free(t[i].log);
        free(t[i].error);
    }
    free(t);
}

/* ---------------------------------------------------------------- over mpirun's ranks */

/* The rank that runs trial t: trials are dealt round-robin, so a search resumed with the same
 * number of ranks finds each trial's files where it left them. */
static int trial_rank(const trial *t) { return (t->number - 1) % dist_size(); }

/* Every rank must run this fnn with these options on these data, or the trials the ranks run
 * would belong to different searches. */
static int check_ranks_alike(int argc, char **argv, const search_opts *o)
{
    if (dist_size() == 1)
        return EXIT_OK;
    dist_part parts[3] = {{"the fnn executable", 0}, {"the command line", DIST_HASH_SEED},
                          {"the data", 0}};
    fnn_error err = {0};
    int rc = EXIT_OK;
    if (dist_hash_binary(&parts[0].hash, &err) != FNN_OK)
        rc = cli_lib_error("search", &err);
    for (int i = 1; i < argc; i++)
        parts[1].hash = dist_hash_str(parts[1].hash, argv[i]);
    char what[600];
    snprintf(what, sizeof what, "the data at --data %s", o->data);
    parts[2].name = what;
    if (rc == EXIT_OK && dist_hash_data(o->data, "train", &parts[2].hash, &err) != FNN_OK)
        rc = cli_lib_error("search", &err);
    if ((rc = dist_agree("search", rc)))
        return rc;
    return dist_check_config("search", parts, 3);
}

/* This rank's trials as JSON text, for rank 0: their outcome, and a finished trial's fnn train
 * output, which holds its scores. */
static char *own_results(const trial *t, int n)
{
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        if (trial_rank(&t[i]) != dist_rank() || !t[i].ok)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "trial", t[i].number);
        cJSON_AddNumberToObject(e, "ok", t[i].ok);
        cJSON_AddBoolToObject(e, "resumed", t[i].resumed);
        cJSON_AddNumberToObject(e, "seconds", t[i].seconds);
        if (t[i].error)
            cJSON_AddStringToObject(e, "error", t[i].error);
        char *text = t[i].ok > 0 ? read_file(t[i].result, NULL, NULL) : NULL;
        if (text)
            cJSON_AddStringToObject(e, "result", text);
        free(text);
        cJSON_AddItemToArray(list, e);
    }
    char *out = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    if (!out) {
        fputs("fnn search: out of memory\n", stderr);
        exit(EXIT_RUNTIME);
    }
    return out;
}

/* Rank 0 takes the other ranks' trials into t, and keeps a copy of each finished one's fnn train
 * output beside its own (on a file system the ranks share, the same bytes again). */
static int take_results(trial *t, int n, char **texts)
{
    for (int r = 1; r < dist_size(); r++) {
        cJSON *list = cJSON_Parse(texts[r]), *e;
        if (!cJSON_IsArray(list)) {
            cJSON_Delete(list);
            return cli_error("search", EXIT_RUNTIME, "rank %d sent unreadable results", r);
        }
        cJSON_ArrayForEach(e, list) {
            const cJSON *num = cJSON_GetObjectItemCaseSensitive(e, "trial");
            int k = cJSON_IsNumber(num) ? num->valueint - 1 : -1;
            if (k < 0 || k >= n || trial_rank(&t[k]) != r)
                continue;
            trial *x = &t[k];
            const char *result = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "result"));
            const char *error = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "error"));
            x->ok = cJSON_GetObjectItemCaseSensitive(e, "ok")->valueint > 0 ? 1 : -1;
            x->resumed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "resumed"));
            if (x->ok > 0 && !read_result_text(x, result))
                x->ok = -1;
            if (x->ok < 0)
                x->error = xasprintf("%s", error ? error : "no result from its rank");
            x->seconds = cJSON_GetObjectItemCaseSensitive(e, "seconds")->valuedouble;
            fnn_error err = {0};
            if (x->ok > 0 && fnn_write_atomic(x->result, result, strlen(result), &err) != FNN_OK) {
                cJSON_Delete(list);
                return cli_error("search", EXIT_RUNTIME, "%s", err.msg);
            }
        }
        cJSON_Delete(list);
    }
    return EXIT_OK;
}

/* The best trial's model file, on rank 0, from the rank that trained it. */
static int fetch_best(const trial *t, int best_number, char **bytes, size_t *len)
{
    const trial *b = &t[best_number - 1];
    int from = trial_rank(b), rc = EXIT_OK;
    if (dist_rank() == from && !(*bytes = read_file(b->model, len, NULL)))
        rc = cli_error("search", EXIT_RUNTIME, "%s: %s", b->model, strerror(errno));
    /* Every rank learns whether the sender has the file before anything is sent. */
    if ((rc = dist_agree("search", rc)))
        return rc;
    fnn_error err = {0};
    if (dist_send_to_root(from, bytes, len, &err) != FNN_OK)
        return cli_lib_error("search", &err);
    return EXIT_OK;
}

int cmd_search(int argc, char **argv)
{
    char exe[4096];
    ssize_t elen = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (elen <= 0)
        return cli_error("search", EXIT_RUNTIME, "cannot find the fnn executable: %s",
                         strerror(errno));
    exe[elen] = '\0';
    /* Ranks that mpirun put on one host share its cores. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN) / dist_local_size();
    search_opts o = {.data = FNN_DEFAULT_DATA_DIR, .seed = 42, .workers = cores > 1 ? cores : 1};
    trial *t = NULL;
    trial **ranked = NULL;
    job *jobs = NULL;
    uint64_t *configs = NULL;
    cJSON *doc = NULL, *test = NULL;
    char *test_error = NULL, *own = NULL, **texts = NULL, *best_bytes = NULL;
    size_t best_len = 0;
    /* Trials are fnn train processes of their own, not more ranks of this job. */
    char **envp = dist_child_environ();
    int n = 0, rc = parse(argc, argv, &o);
    if (rc) {
        rc = rc < 0 ? EXIT_OK : rc;
        goto done;
    }
    if (!envp)
        rc = cli_error("search", EXIT_RUNTIME, "out of memory");
    if (!rc && !(rc = check_keys(&o)) && !(rc = pick_configs(&o, &configs, &n))) {
        if (!(t = calloc((size_t)n, sizeof *t)) || !(ranked = calloc((size_t)n, sizeof *ranked)) ||
            !(jobs = calloc((size_t)n, sizeof *jobs)))
            rc = cli_error("search", EXIT_RUNTIME, "out of memory");
        for (int i = 0; i < n && !rc; i++) {
            t[i].number = i + 1;
            t[i].config = configs[i];
            rc = build_trial(&o, exe, &t[i]);
        }
        if (!rc)
            rc = check_trials(&o, t, n);
    }
    if ((rc = dist_agree("search", rc)) || (rc = check_ranks_alike(argc, argv, &o)))
        goto done;
    /* Rank 0 makes the directory; the others then find it theirs (or make their own on a host
     * that does not share it). */
    if (dist_rank() == 0)
        rc = prepare_dir(&o, t, n);
    if ((rc = dist_agree("search", rc)))
        goto done;
    if (dist_rank() != 0)
        rc = prepare_dir(&o, t, n);
    if ((rc = dist_agree("search", rc)))
        goto done;

    FILE *progress = o.json ? stderr : stdout;
    int to_run = 0, resumed = 0;
    for (int i = 0; i < n; i++) {
        if (trial_rank(&t[i]) != dist_rank())
            continue;
        if (access(t[i].model, R_OK) == 0 && read_result(&t[i], t[i].result)) {
            t[i].ok = 1;
            t[i].resumed = 1;
            resumed++;
        } else {
            jobs[to_run++] = (job){.argv = t[i].argv, .out_path = t[i].part, .err_path = t[i].log,
                                   .envp = envp};
        }
    }
    long workers = o.workers < to_run ? o.workers : to_run;
    if (dist_size() == 1)
        fprintf(progress, "fnn search: %d trial%s (%s); %d to run, %ld at a time; results in %s\n",
                n, n == 1 ? "" : "s", o.samples ? "a random sample of the grid" : "the whole grid",
                to_run, workers, o.out_dir);
    else
        fprintf(progress, "fnn search: %d trial%s (%s) over %d ranks; rank %d runs every %d%s "
                "from trial %d: %d to run, %ld at a time; results in %s\n", n, n == 1 ? "" : "s",
                o.samples ? "a random sample of the grid" : "the whole grid", dist_size(),
                dist_rank(), dist_size(), dist_size() == 2 ? "nd" : dist_size() == 3 ? "rd" : "th",
                dist_rank() + 1, to_run, workers, o.out_dir);
    if (resumed)
        fprintf(progress, "resuming: %d of %d trials are already finished in %s\n", resumed, n,
                o.out_dir);
    fflush(progress);
    run_state rs = {.o = &o, .t = t, .ntrials = n, .to_run = to_run, .progress = progress};
    char msg[256];
    int r = jobs_run(jobs, to_run, (int)o.workers, on_trial_done, &rs, msg, sizeof msg);
    if (r == JOBS_FAILED) {
        rc = cli_error("search", EXIT_RUNTIME, "%s", msg);
    } else if (r == JOBS_INTERRUPTED) {
        int finished = 0;
        for (int i = 0; i < n; i++)
            finished += t[i].ok > 0;
        rc = cli_error("search", EXIT_RUNTIME,
                       "interrupted: %d of %d trials are finished in %s; run the same command "
                       "again to go on", finished, n, o.out_dir);
    } else if (r == JOBS_STOPPED) {
        char *params = params_text(&o.g, rs.rejected->choice);
        rc = cli_error("search", EXIT_USAGE, "trial %d (%s) is refused by fnn train: %s",
                       rs.rejected->number, params, rs.rejected->error);
        free(params);
    }
    /* Every rank's trials to rank 0, which alone ranks them, tests the best and writes the
     * results. */
    if (dist_size() > 1) {
        fnn_error err = {0};
        own = own_results(t, n);
        if (dist_gather_text(own, &texts, &err) != FNN_OK && !rc)
            rc = cli_lib_error("search", &err);
        if (!rc && dist_rank() == 0)
            rc = take_results(t, n, texts);
    }
    if ((rc = dist_agree("search", rc)))
        goto done;
    to_run = 0;
    for (int i = 0; i < n; i++)
        to_run += !t[i].resumed;

    for (int i = 0; i < n; i++)
        ranked[i] = &t[i];
    qsort(ranked, (size_t)n, sizeof *ranked, cmp_rank);
    const trial *best = ranked[0]->ok > 0 ? ranked[0] : NULL;
    int best_number = best && !o.no_final_test ? best->number : 0;
    fnn_error err = {0};
    if (dist_bcast_int(&best_number, &err) != FNN_OK) {
        rc = cli_lib_error("search", &err);
        goto done;
    }
    if (best_number && (rc = fetch_best(t, best_number, &best_bytes, &best_len)))
        goto done;
    if (dist_rank() != 0)
        goto done;
    if ((rc = write_csv(&o, ranked, n)))
        goto done;
    FILE *out = o.json ? NULL : stdout;
    if (out) {
        fprintf(out, "\nresults on the validation split, best first (val_acc of the saved "
                     "epoch)\n");
        print_table(out, &o, ranked, n);
    }
    if (!best)
        rc = cli_error("search", EXIT_RUNTIME, "every trial failed; see the *.log files in %s",
                       o.out_dir);
    else if (!o.no_final_test)
        rc = final_test(&o, exe, best, best_bytes, best_len, envp, &test, &test_error);

    doc = results_doc(&o, ranked, n, to_run, best, test, test_error);
    test = NULL; /* now part of doc */
    char *path = xasprintf("%s/results.json", o.out_dir);
    int wrc = write_json_file(path, doc);
    free(path);
    if (out && best)
        print_best(out, &o, best, cJSON_GetObjectItemCaseSensitive(
                                      cJSON_GetObjectItemCaseSensitive(doc, "final_test"), "test"));
    if (o.json)
        print_json(doc);
    if (!rc)
        rc = wrc;
done:
    for (int i = 0; texts && i < dist_size(); i++)
        free(texts[i]);
    free(texts);
    free(own);
    free(best_bytes);
    free(envp);
    cJSON_Delete(doc);
    cJSON_Delete(test);
    free(test_error);
    trials_free(t, n);
    free(ranked);
    free(jobs);
    free(configs);
    grid_free(&o.g);
    free(o.fixed);
    return rc;
}
