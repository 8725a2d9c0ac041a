/* The one table of the command-line options of every fnn command: their names, values, ranges,
 * defaults, help and which commands take them. getopt_long's arrays, the --help option lists and
 * fnn search's checks of train options are all read from it, so they cannot drift apart. */
#ifndef FNN_CLI_OPTIONS_H
#define FNN_CLI_OPTIONS_H

#include <getopt.h>
#include <stdio.h>

/* The commands, as bits of cli_option.cmds. */
enum {
    CLI_TRAIN = 1u << 0,
    CLI_EVAL = 1u << 1,
    CLI_PREDICT = 1u << 2,
    CLI_EXPLAIN = 1u << 3,
    CLI_ROBUSTNESS = 1u << 4,
    CLI_REPORT = 1u << 5,
    CLI_SEARCH = 1u << 6,
    CLI_SUMMARY = 1u << 7,
    CLI_EXPORT = 1u << 8,
};

/* What getopt_long returns for each option. Commands whose option of the same name means the
 * same kind of thing share its id (--seed, --out, --limit), each with a row of its own where help,
 * range or default differ; no two rows of one command share a name. */
enum {
    OPT_FIRST = 256,
    /* data */
    OPT_DATA = OPT_FIRST, OPT_TEST_DATA, OPT_IMAGE_SIZE, OPT_CHANNELS, OPT_NORMALIZE,
    OPT_SKIP_BAD, OPT_SPLIT, OPT_VAL_SPLIT, OPT_LIMIT, OPT_TEST_LIMIT, OPT_NO_TEST,
    OPT_CLASSES, OPT_PER_CLASS,
    /* model and optimisation */
    OPT_ARCH, OPT_INPUT_SHAPE, OPT_EPOCHS, OPT_BATCH_SIZE, OPT_OPTIMIZER, OPT_LR, OPT_MOMENTUM,
    OPT_WEIGHT_DECAY, OPT_NESTEROV, OPT_SEED, OPT_THREADS, OPT_TTA,
    /* schedule */
    OPT_LR_SCHEDULE, OPT_LR_STEP_EPOCHS, OPT_LR_GAMMA, OPT_LR_PATIENCE, OPT_LR_FACTOR,
    OPT_LR_MIN, OPT_LR_PEAK_AT, OPT_WARMUP_EPOCHS,
    /* regularisation and stopping */
    OPT_CLIP_NORM, OPT_LABEL_SMOOTHING, OPT_BN_LR_SCALE, OPT_EMA, OPT_EMA_EVERY,
    OPT_AUG_SHIFT, OPT_AUG_FLIP, OPT_AUG_ROTATE, OPT_AUG_ERASE,
    OPT_EARLY_STOPPING, OPT_MONITOR, OPT_FOLDS,
    /* checkpoints and transfer */
    OPT_CHECKPOINT, OPT_RESUME, OPT_INIT_FROM, OPT_RESET_HEAD, OPT_FREEZE,
    /* analysis */
    OPT_TOP, OPT_INVERT, OPT_METHOD, OPT_SAMPLES, OPT_NOISE, OPT_PATCH, OPT_STRIDE,
    OPT_NO_OCCLUSION, OPT_OUT_DIR, OPT_PERTURBATION, OPT_SALIENCY_IMAGES, OPT_OCCLUSION_IMAGES,
    /* search */
    OPT_GRID, OPT_GRID_FILE, OPT_WORKERS, OPT_NO_FINAL_TEST,
    /* export */
    OPT_ONNX, OPT_BATCH,
    /* output */
    OPT_OUT, OPT_HISTORY, OPT_QUIET, OPT_JSON,
    OPT_END
};

typedef enum {
    CLI_FLAG,   /* no value */
    CLI_INT,    /* an integer in [lo, hi] */
    CLI_REAL,   /* a number in [lo, hi] */
    CLI_CHOICE, /* one of choices */
    CLI_LIST,   /* a comma-separated list, checked by the command */
    CLI_TEXT,   /* free text: a spec, a template */
    CLI_PATH,   /* a file or directory */
    CLI_SIZE,   /* "HxW" or "N" (N x N), each 1..4096 */
    CLI_SHAPE,  /* "CxHxW", C 1 or 3, H and W 1..4096 */
} cli_type;

/* train --folds: the most folds, as its row's range and train's arrays. */
#define CLI_MAX_FOLDS 100

/* fnn search --samples: the most trials. */
#define CLI_MAX_TRIALS 100000

/* Row flag: train --resume requires the checkpoint's value of this option (it fixes the run). */
#define CLI_RUN_SETUP 1u

typedef struct {
    int id;              /* OPT_*: what getopt_long returns */
    const char *name;    /* long name, without its dashes */
    const char *metavar; /* the value's placeholder in help ("N", "PATH"); NULL for a flag */
    cli_type type;
    double lo, hi;       /* CLI_INT and CLI_REAL: the accepted range */
    const char *choices; /* CLI_CHOICE: the accepted values, comma-separated */
    const char *def;     /* the default as --help shows it, or NULL */
    const char *help;    /* one paragraph, wrapped when printed; '\n' forces a new line */
    const char *group;   /* the heading it is listed under */
    unsigned cmds;       /* CLI_* bits of the commands that take it */
    unsigned flags;      /* CLI_RUN_SETUP */
    char short_name;     /* its one-letter form, or 0 (-h for --help is every command's) */
} cli_option;

/* All rows, ending with one whose name is NULL. */
extern const cli_option cli_options[];

/* A recipe: an architecture preset that also names the training options it was tuned with
 * (fnn train --arch fast, --arch best). fnn train reads them before the options given, which
 * override them. */
typedef struct {
    const char *name;    /* the preset's name, as --arch takes it */
    const char *options; /* fnn train options, separated by single spaces */
} cli_recipe;

/* The recipe of --arch's value, or NULL when it names none. */
const cli_recipe *cli_recipe_named(const char *arch);

/* The row of command `cmd` (one CLI_* bit) for a long name or an id, or NULL when it has none. */
const cli_option *cli_option_named(unsigned cmd, const char *name);
const cli_option *cli_option_of(unsigned cmd, int id);

/* The next option of argv for `cmd` (its name, for messages, and its bit), parsed with a
 * getopt_long array built from the table: the option's id, 'h' for -h/--help, -1 after the last
 * option, or 0 after printing why the option is not one (unknown, or its value missing). */
int cli_next_option(const char *cmd, unsigned bit, int argc, char **argv);

/* For an option id that cli_next_option returned but the command's parser has no case for:
 * prints "unknown option '--name'" and returns EXIT_USAGE, so that such a row is refused, not
 * ignored. */
int cli_unhandled_option(const char *cmd, unsigned bit, int id);

/* The option list of `cmd`'s --help, grouped under the table's headings. */
void cli_print_options(FILE *f, unsigned cmd);

/* Values checked against the option's row of `cmd`. Each returns 1 with *out set, or prints
 * which option and value were wrong and returns 0. */
int cli_opt_int(const char *cmd, unsigned bit, int id, const char *text, long *out);
int cli_opt_real(const char *cmd, unsigned bit, int id, const char *text, double *out);
/* *out: the index of text in the row's choices. */
int cli_opt_choice(const char *cmd, unsigned bit, int id, const char *text, int *out);

/* "HxW", or "N" for N x N; each side in 1..4096. */
int cli_parse_size(const char *cmd, const char *opt, const char *text, int *h, int *w);
/* "CxHxW": C 1 or 3, H and W in 1..4096. */
int cli_parse_shape(const char *cmd, const char *opt, const char *text, int *c, int *h, int *w);

#endif
