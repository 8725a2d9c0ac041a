/* fnn summary: a model's layers, from a model file or from an architecture spec. */
#include "cli.h"

#include <getopt.h>

static const char usage[] =
    "usage: fnn summary MODEL [--json]\n"
    "       fnn summary --arch SPEC [--json]\n"
    "\n"
    "Prints the layers, output shapes and parameter counts, as Keras's model.summary() does.\n"
    "\n"
    "  --arch SPEC     describe a spec or preset without a model file (input 1x28x28)\n"
    "  --json          print JSON instead of text\n"
    "  -h, --help      this help\n";

int cmd_summary(int argc, char **argv)
{
    enum { O_ARCH = 256, O_JSON };
    static const struct option longopts[] = {
        {"arch", required_argument, 0, O_ARCH},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *arch = NULL;
    int json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return EXIT_OK;
        case O_ARCH: arch = optarg; break;
        case O_JSON: json = 1; break;
        case ':':
            return cli_error("summary", EXIT_USAGE, "option '%s' needs a value", cli_bad_option(argv));
        default:
            return cli_error("summary", EXIT_USAGE, "unknown option '%s' (see fnn summary --help)",
                             cli_bad_option(argv));
        }
    }
    if ((arch != NULL) == (optind < argc) || optind < argc - 1)
        return cli_error("summary", EXIT_USAGE,
                         "expected one MODEL file or --arch SPEC (see fnn summary --help)");
    fnn_error err = {0};
    fnn_model *m = arch ? fnn_model_create(arch, 1, 28, 28, &err)
                        : fnn_model_load(argv[optind], NULL, &err);
    if (!m)
        return cli_error("summary", arch && err.status != FNN_ERR_NOMEM ? EXIT_USAGE : EXIT_RUNTIME,
                         "%s", err.msg);
    if (json) {
        cJSON *doc = summary_json(m);
        print_json(doc);
        cJSON_Delete(doc);
    } else {
        print_summary(stdout, m);
    }
    fnn_model_free(m);
    return EXIT_OK;
}
