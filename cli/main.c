/* fnn: the command-line tool. Dispatches to one file per subcommand. */
#include "cli.h"
#include "dist.h"

#include <string.h>

static const char usage[] =
    "usage: fnn COMMAND [options]\n"
    "\n"
    "Train, evaluate, explain and ship small image classifiers, in C.\n"
    "\n"
    "commands:\n"
    "  train     train a model (the published study's MLP by default) and report on the test set\n"
    "  eval      evaluate a saved model: loss, accuracy, confusion matrix, classification report\n"
    "  summary   print a model's layers, output shapes and parameter counts\n"
    "  search    grid or random search over train options, ranked on validation; tests the best\n"
    "  predict   classify your own images (PNG, JPEG, PGM, BMP) or an IDX file with a model\n"
    "  explain   per-class saliency and occlusion maps: which pixels a model looks at\n"
    "  robustness  test accuracy under noise, shifts, rotations, occlusion and contrast changes\n"
    "  report    one HTML page of figures and findings about one or more saved models\n"
    "  export    write a model as ONNX for onnxruntime, OpenCV and other runtimes\n"
    "\n"
    "Run 'fnn COMMAND --help' for a command's options. 'fnn --version' prints the version.\n"
    "Data: Fashion-MNIST from Debian's dataset-fashion-mnist package, in " FNN_DEFAULT_DATA_DIR ",\n"
    "by default; --data PATH for your own: IDX files, a folder of images per class, a CSV file\n"
    "(label,pixel1,...) or CIFAR-10's binary batches.\n"
    "Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.\n";

int main(int argc, char **argv)
{
    /* Before anything starts a thread, so that every thread inherits the blocked signals. */
    cli_signals_start();
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("fnn %s (matrix products: %s)\n", FNN_VERSION, fnn_gemm_library());
        return EXIT_OK;
    }
    /* train and search run over mpirun's ranks; the other commands are one process. */
    if (!strcmp(cmd, "train") || !strcmp(cmd, "search")) {
        int rc = dist_init(cmd);
        if (rc == EXIT_OK)
            rc = cmd[0] == 't' ? cmd_train(argc - 1, argv + 1) : cmd_search(argc - 1, argv + 1);
        /* A rank that failed leaves without MPI_Finalize, which would wait for ranks that may
         * be waiting for it: mpirun sees the exit status and ends the others. */
        if (rc == EXIT_OK)
            dist_finalize();
        return rc;
    }
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } single[] = {
        {"eval", cmd_eval},         {"summary", cmd_summary},
        {"predict", cmd_predict},   {"explain", cmd_explain},
        {"robustness", cmd_robustness}, {"report", cmd_report},
        {"export", cmd_export},
    };
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        if (!strcmp(cmd, single[i].name)) {
            int rc = dist_single(cmd);
            return rc ? rc : single[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "fnn: unknown command '%s'\n\n%s", cmd, usage);
    return EXIT_USAGE;
}
