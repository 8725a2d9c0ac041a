/* Shared pieces of the fnn command-line tool: exit codes, option values, printing. */
#ifndef FNN_CLI_H
#define FNN_CLI_H

#include "fnn.h"
#include "signals.h"

#include <cjson/cJSON.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Each subcommand: argc/argv start at the subcommand's name. Returns the exit status. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_robustness(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* fnn train's option checks alone, as fnn train runs them before it reads anything: EXIT_OK, or
 * the status of the usage error it printed. argv starts at "train"; the array is permuted. */
int cmd_train_check(int argc, char **argv);

/* Set while the options in use come from a file (train --resume's checkpoint), which the
 * command line has already been checked against: a usage error then names the file and is a
 * runtime error (exit 1), since the user typed nothing wrong. */
extern const char *cli_options_from;

/* Where cli_error writes: stderr when NULL. fnn search points it at a buffer while it runs
 * fnn train's option checks, to quote their message in its own. */
extern FILE *cli_error_stream;

/* Under mpirun with several ranks, "rank R of N" (cli/dist.c sets it), which cli_error puts
 * after the command's name: every rank's messages reach one terminal. "" otherwise. */
extern const char *cli_where;

/* Prints "fnn CMD: message" to stderr (cli_error_stream), text from files made printable, and returns `code`. */
int cli_error(const char *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A failed library call: its message, exit status 1 (2 for bad arguments). */
int cli_lib_error(const char *cmd, const fnn_error *err);

/* Strict option values: the whole text must parse and lie in range. Return 0 on bad input after
 * printing which option and value were wrong. */
int cli_int(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out);
int cli_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
               double *out);

/* The option getopt just rejected, as the user typed it ("-x" inside a cluster, "--foo"). */
const char *cli_bad_option(char **argv);



/* v with a comma every three digits: "60,000". */
void cli_thousands(size_t v, char *buf, size_t size);

/* Keras's model summary table. */
void print_summary(FILE *f, const fnn_model *m);
cJSON *summary_json(const fnn_model *m);

/* The model's input normalisation: "normalization: scale, pixel / 255" or the per-channel mean
 * and std of standardize; as JSON {"kind": "scale"} or {"kind": "standardize", "mean": [...],
 * "std": [...]}. */
void print_normalization(FILE *f, const fnn_model *m);
cJSON *normalization_json(const fnn_model *m);

/* The test-set block shared by train and eval: loss, accuracy, confusion matrix, report. */
void print_evaluation(FILE *f, const char *split, const fnn_metrics *mt,
                      const char *const *class_names);
cJSON *metrics_json(const fnn_metrics *mt, const char *const *class_names);

/* Writes a JSON document to stdout, followed by a newline. */
void print_json(cJSON *doc);

/* The data options of the commands that read a data set (their rows are in cli/options.c). */
typedef struct {
    const char *data;      /* --data */
    const char *test_data; /* --test-data: where the test split is read from; NULL: data */
    int height, width;     /* --image-size; 0: the data's */
    int channels;          /* --channels 1 or 3; 0: what the data holds */
    int standardize;       /* --normalize standardize (train only) */
    int skip_bad;          /* --skip-bad-images */
} cli_data_opts;

#define CLI_DATA_DEFAULT ((cli_data_opts){.data = FNN_DEFAULT_DATA_DIR})

/* Takes option `id` of command `cmd` (its CLI_* bit) into d when it is one of the data options:
 * 1 when taken, 0 when id is not a data option, -1 after printing a usage error. */
int cli_data_option(const char *cmd, unsigned bit, int id, const char *arg, cli_data_opts *d);

/* How a split was read, for the header lines. */
typedef struct {
    fnn_data_format format; /* detected */
    int skipped;            /* bad images skipped (--skip-bad-images) */
    const char *path;       /* --data, or --test-data for the test split */
} cli_data_read;

/* load_split that also says how the split was read (how may be NULL). */
int cli_load(const char *cmd, const cli_data_opts *d, const char *split, long limit,
             fnn_dataset *out, cli_data_read *how);

/* Whether the data d describes has a test split: --test-data; an IDX or CIFAR-10 directory;
 * a folder tree with train/ and test/; a file (CSV, IDX) named with "train", whose test file
 * is named with "test". A lone folder tree or file without "train" in its name has none. f:
 * the training split's format. */
int cli_has_test_split(const cli_data_opts *d, fnn_data_format f);

/* The names of d's classes (d->nclasses malloc'd strings, freed with fnn_class_names_free),
 * read from format f at path: the data's own (folder names, CIFAR-10's); Fashion-MNIST's for
 * an IDX or CSV set of ten classes at the default data directory or under a path naming
 * "fashion" (any case); else "0", "1", ... NULL when out of memory. */
char **cli_class_names(const fnn_dataset *d, fnn_data_format f, const char *path);

/* Checks that d (the `what` set, read from path) fits m: the same image shape, no more
 * classes, the same class names where d names them (names: the model's, may be NULL), labels
 * in range. Prints the error and returns EXIT_RUNTIME; EXIT_OK when it fits. */
int cli_check_fits(const char *cmd, const fnn_model *m, const char *const *names,
                   const fnn_dataset *d, const char *what, const char *path);

/* The model of arch for (c, h, w) inputs and k classes. A preset's (mlp, cnn, resnet) last
 * layer gets k units; any other spec must end with k units, or the usage error says "<classes_from>
 * K classes" ("the data has", "--classes keeps") and how to end --arch. NULL after printing the
 * error, with *rc its exit status. */
fnn_model *cli_model_for(const char *cmd, const char *arch, int c, int h, int w, int k,
                         const char *classes_from, int *rc);

/* Loads the split ("train" or "test": from --test-data when set) that d describes through the
 * library's data sources, keeping the first `limit` images when limit > 0, with a progress bar
 * while it reads when stderr is a terminal. Every command reads its data set through here. */
int load_split(const char *cmd, const cli_data_opts *d, const char *split, long limit,
               fnn_dataset *out);

/* Registers with set, as inputs of --data (or --test-data for the test split when set), every
 * file the split of d reads or could read (fnn_data_files): an output must not replace the
 * user's data. */
fnn_status cli_data_inputs(struct fnn_outputs *set, const cli_data_opts *d, const char *split,
                           fnn_error *err);

/* load_split for a command that runs model m over the data (explain, robustness, report): what
 * the user left unset of --image-size and --channels follows m's input shape, as predict reads
 * image files, so that a folder of images of mixed sizes, or of grey and colour ones, is read as
 * the model was trained on without fnn train's options again; then cli_check_fits with names
 * (NULL: the model stores none). *read, when not NULL, says how the data was read. */
int cli_load_for_model(const char *cmd, const cli_data_opts *d, const char *split, long limit,
                       const fnn_model *m, const char *const *names, fnn_dataset *out,
                       cli_data_read *read);

/* Shared by predict, explain and robustness (cli/analysis.c). */
/* A progress bar on stderr, drawn only when stderr is a terminal and the work has already taken
 * a moment. */
typedef struct {
    const char *what;
    long total;
    double start;
    int tty, shown;
} cli_progress;
void progress_begin(cli_progress *p, const char *what, long total);
void progress_update(cli_progress *p, long done);
/* Clears the bar's line. */
void progress_end(cli_progress *p);

#endif
