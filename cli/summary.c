/* fnn summary: a model's layers, from a model file or from an architecture spec. */
#include "cli.h"
#include "options.h"
#include "util/text.h"

#include <stdlib.h>

static const char usage[] =
    "usage: fnn summary MODEL [--json]\n"
    "       fnn summary --arch SPEC [--input-shape CxHxW] [--json]\n"
    "\n"
    "Prints the layers, output shapes and parameter counts, as Keras's model.summary() does;\n"
    "for a model file also its input shape, input normalisation and class names.\n"
    "\n";

int cmd_summary(int argc, char **argv)
{
    const char *arch = NULL;
    int json = 0, c, ch = 1, h = 28, w = 28, shape_given = 0;
    while ((c = cli_next_option("summary", CLI_SUMMARY, argc, argv)) != -1) {
        switch (c) {
        case 0: return EXIT_USAGE;
        case 'h':
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_SUMMARY);
            return EXIT_OK;
        case OPT_ARCH: arch = optarg; break;
        case OPT_JSON: json = 1; break;
        case OPT_INPUT_SHAPE:
            if (!cli_parse_shape("summary", "--input-shape", optarg, &ch, &h, &w))
                return EXIT_USAGE;
            shape_given = 1;
            break;
        default:
            return cli_unhandled_option("summary", CLI_SUMMARY, c);
        }
    }
    if (shape_given && !arch)
        return cli_error("summary", EXIT_USAGE, "--input-shape goes with --arch: a model file "
                         "holds its own input shape");
    if ((arch != NULL) == (optind < argc) || optind < argc - 1)
        return cli_error("summary", EXIT_USAGE,
                         "expected one MODEL file or --arch SPEC (see fnn summary --help)");
    fnn_error err = {0};
    fnn_model_meta meta = {0};
    fnn_model *m = arch ? fnn_model_create(arch, ch, h, w, &err)
                        : fnn_model_load(argv[optind], &meta, &err);
    if (!m)
        return cli_error("summary", arch && err.status != FNN_ERR_NOMEM ? EXIT_USAGE : EXIT_RUNTIME,
                         "%s", err.msg);
    /* What a model file holds besides its layers: how it reads its input, what it answers. */
    int k = fnn_model_num_classes(m);
    char **names = arch ? NULL : fnn_class_names(meta.class_names_json, k);
    int rc = EXIT_OK;
    if (!arch && !names) {
        rc = cli_error("summary", EXIT_RUNTIME, "out of memory");
    } else if (json) {
        cJSON *doc = summary_json(m);
        if (names) {
            cJSON_AddItemToObject(doc, "normalization", normalization_json(m));
            cJSON_AddItemToObject(doc, "class_names",
                                  cJSON_CreateStringArray((const char *const *)names, k));
        }
        print_json(doc);
        cJSON_Delete(doc);
    } else {
        print_summary(stdout, m);
        if (names) {
            fnn_model_input_shape(m, &ch, &h, &w);
            printf("input: %dx%dx%d (%s, %d rows, %d columns)\n", ch, h, w,
                   ch == 3 ? "colour: red, green, blue" : ch == 1 ? "grey" : "channels", h, w);
            print_normalization(stdout, m);
            printf("class names (%d):", k);
            for (int i = 0; i < k; i++)
                printf("%s %s", i ? "," : "", names[i]);
            printf("\n");
        }
    }
    fnn_class_names_free(names, k);
    fnn_model_meta_free(&meta);
    fnn_model_free(m);
    return rc;
}
