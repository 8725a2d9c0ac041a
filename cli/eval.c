/* fnn eval: the test-set report of a saved model. */
#include "cli.h"
#include "options.h"
#include "util/text.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: fnn eval MODEL [options]\n"
    "\n"
    "Evaluates a saved model on the test split of --data (Fashion-MNIST by default; any format\n"
    "fnn train reads, in grey or colour, as the model takes it): loss, accuracy, confusion\n"
    "matrix and classification report under the model's class names. A data set that does not\n"
    "fit the model (image shape, classes, class names) is refused.\n"
    "\n";

int cmd_eval(int argc, char **argv)
{
    cli_data_opts data = CLI_DATA_DEFAULT;
    const char *split = "test";
    long limit = 0, threads = 0;
    int json = 0, c, choice;
    fnn_tta tta = FNN_TTA_NONE;
    while ((c = cli_next_option("eval", CLI_EVAL, argc, argv)) != -1) {
        switch (c) {
        case 0: return EXIT_USAGE;
        case 'h':
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_EVAL);
            return EXIT_OK;
        case OPT_JSON: json = 1; break;
        case OPT_SPLIT:
            if (!cli_opt_choice("eval", CLI_EVAL, c, optarg, &choice)) return EXIT_USAGE;
            split = choice ? "train" : "test";
            break;
        case OPT_LIMIT:
            if (!cli_opt_int("eval", CLI_EVAL, c, optarg, &limit)) return EXIT_USAGE;
            break;
        case OPT_THREADS:
            if (!cli_opt_int("eval", CLI_EVAL, c, optarg, &threads)) return EXIT_USAGE;
            break;
        case OPT_TTA:
            if (!cli_opt_choice("eval", CLI_EVAL, c, optarg, &choice)) return EXIT_USAGE;
            tta = (fnn_tta)choice;
            break;
        default:
            switch (cli_data_option("eval", CLI_EVAL, c, optarg, &data)) {
            case 1: break;
            case 0: return cli_unhandled_option("eval", CLI_EVAL, c);
            default: return EXIT_USAGE;
            }
        }
    }
    if (optind != argc - 1)
        return cli_error("eval", EXIT_USAGE, "expected one MODEL file (see fnn eval --help)");
    const char *path = argv[optind];

    fnn_error err = {0};
    fnn_model_meta meta = {0};
    fnn_model *m = fnn_model_load(path, &meta, &err);
    if (!m)
        return cli_error("eval", EXIT_RUNTIME, "%s", err.msg);
    int k = fnn_model_num_classes(m), rc;
    char **names = fnn_class_names(meta.class_names_json, k);
    fnn_dataset d = {0};
    fnn_metrics mt = {0};
    cli_data_read how;
    if (!names) {
        rc = cli_error("eval", EXIT_RUNTIME, "out of memory");
        goto done;
    }
    /* Read as the model takes its input; names are compared only with a model that stores
     * its own. */
    if ((rc = cli_load_for_model("eval", &data, split, limit, m,
                                 meta.class_names_json ? (const char *const *)names : NULL, &d,
                                 &how)))
        goto done;
    fnn_eval_options eo = {.threads = (int)threads, .tta = tta};
    if (fnn_evaluate_with(m, &d, &eo, NULL, NULL, &mt, &err) != FNN_OK) {
        rc = cli_lib_error("eval", &err);
        goto done;
    }
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model_file", path);
        cJSON_AddStringToObject(doc, "arch", fnn_model_spec(m));
        cJSON_AddStringToObject(doc, "split", split);
        cJSON_AddStringToObject(doc, "tta", tta == FNN_TTA_FLIP ? "flip" : "none");
        cJSON *dj = cJSON_AddObjectToObject(doc, "data");
        cJSON_AddStringToObject(dj, "path", how.path);
        cJSON_AddStringToObject(dj, "format", fnn_data_format_name(how.format));
        cJSON_AddNumberToObject(dj, "skipped", how.skipped);
        cJSON_AddItemToObject(doc, split, metrics_json(&mt, (const char *const *)names));
        print_json(doc);
        cJSON_Delete(doc);
    } else {
        printf("model: %s (%s)\n", path, fnn_model_spec(m));
        printf("data: %s %s, %s split", fnn_data_format_name(how.format), how.path, split);
        if (tta == FNN_TTA_FLIP)
            printf(", test-time augmentation: flip");
        if (how.skipped)
            printf(", %d bad image%s skipped", how.skipped, how.skipped == 1 ? "" : "s");
        printf("\n");
        print_evaluation(stdout, split, &mt, (const char *const *)names);
    }
done:
    fnn_metrics_free(&mt);
    fnn_dataset_free(&d);
    fnn_class_names_free(names, k);
    fnn_model_meta_free(&meta);
    fnn_model_free(m);
    return rc;
}
