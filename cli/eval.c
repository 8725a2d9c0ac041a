/* fnn eval: the test-set report of a saved model. */
#include "cli.h"
#include "util/text.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: fnn eval MODEL [options]\n"
    "\n"
    "Evaluates a saved model on the Fashion-MNIST test set: loss, accuracy, confusion matrix\n"
    "and classification report.\n"
    "\n"
    "  --data DIR      IDX files (gzipped or plain) [" FNN_DEFAULT_DATA_DIR "]\n"
    "  --split NAME    test (t10k files) or train [test]\n"
    "  --limit N       evaluate the first N images only [all]\n"
    "  --threads N     threads to use, 0 for every core [0]\n"
    "  --json          print one JSON document instead of text\n"
    "  -h, --help      this help\n";

int cmd_eval(int argc, char **argv)
{
    enum { O_DATA = 256, O_SPLIT, O_LIMIT, O_THREADS, O_JSON };
    static const struct option longopts[] = {
        {"data", required_argument, 0, O_DATA},     {"split", required_argument, 0, O_SPLIT},
        {"limit", required_argument, 0, O_LIMIT},   {"threads", required_argument, 0, O_THREADS},
        {"json", no_argument, 0, O_JSON},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *data = FNN_DEFAULT_DATA_DIR, *split = "test";
    long limit = 0, threads = 0;
    int json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return EXIT_OK;
        case O_DATA: data = optarg; break;
        case O_JSON: json = 1; break;
        case O_SPLIT:
            if (strcmp(optarg, "test") && strcmp(optarg, "train"))
                return cli_error("eval", EXIT_USAGE, "--split: expected test or train, got '%s'",
                                 optarg);
            split = optarg;
            break;
        case O_LIMIT:
            if (!cli_int("eval", "--limit", optarg, 1, 100000000, &limit)) return EXIT_USAGE;
            break;
        case O_THREADS:
            if (!cli_int("eval", "--threads", optarg, 0, 1024, &threads)) return EXIT_USAGE;
            break;
        case ':':
            return cli_error("eval", EXIT_USAGE, "option '%s' needs a value", cli_bad_option(argv));
        default:
            return cli_error("eval", EXIT_USAGE, "unknown option '%s' (see fnn eval --help)",
                             cli_bad_option(argv));
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
    if ((rc = load_split("eval", data, strcmp(split, "test") ? "train" : "t10k", limit, &d)))
        goto done;
    if (fnn_evaluate(m, &d, (int)threads, NULL, NULL, &mt, &err) != FNN_OK) {
        rc = cli_lib_error("eval", &err);
        goto done;
    }
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model_file", path);
        cJSON_AddStringToObject(doc, "arch", fnn_model_spec(m));
        cJSON_AddStringToObject(doc, "split", split);
        cJSON_AddItemToObject(doc, split, metrics_json(&mt, (const char *const *)names));
        print_json(doc);
        cJSON_Delete(doc);
    } else {
        printf("model: %s (%s)\n", path, fnn_model_spec(m));
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
