/* fnn export: writes a saved model in a format other runtimes read (ONNX). */
#include "cli.h"
#include "options.h"

#include <sys/stat.h>

static const char usage[] =
    "usage: fnn export MODEL --onnx OUT.onnx [options]\n"
    "\n"
    "Writes MODEL as an ONNX file (opset 13) that onnxruntime, OpenCV's DNN module and other\n"
    "runtimes load. Its input \"pixels\" is (batch, C, H, W) float in the model's input shape\n"
    "(fnn summary MODEL prints it; (batch, 1, 28, 28) for Fashion-MNIST models): pixels\n"
    "from 0 to 255, C planes (1: grey; 3: red, green, blue), as fnn predict reads them.\n"
    "The graph scales them to [0, 1] itself, then, for a model trained with --normalize\n"
    "standardize, subtracts each channel's mean and divides by its std (Sub \"input_mean\"\n"
    "and Div \"input_std\" nodes). Its output \"probabilities\" (batch, classes) is what\n"
    "fnn predict prints.\n"
    "The class names and the architecture spec are in the file's metadata_props (\"class_names\",\n"
    "\"fnn_spec\"). The file is written atomically: on any error nothing is left at OUT.\n"
    "\n";

static const char usage_end[] =
    "\n"
    "Exit status 1 names the file or the layer that could not be exported, 2 a usage error.\n";

int cmd_export(int argc, char **argv)
{
    const char *out = NULL;
    long batch = 0;
    int json = 0, c;
    while ((c = cli_next_option("export", CLI_EXPORT, argc, argv)) != -1) {
        switch (c) {
        case 0: return EXIT_USAGE;
        case 'h':
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_EXPORT);
            fputs(usage_end, stdout);
            return EXIT_OK;
        case OPT_ONNX: out = optarg; break;
        case OPT_BATCH:
            if (!cli_opt_int("export", CLI_EXPORT, c, optarg, &batch)) return EXIT_USAGE;
            break;
        case OPT_JSON: json = 1; break;
        default:
            return cli_unhandled_option("export", CLI_EXPORT, c);
        }
    }
    if (optind != argc - 1)
        return cli_error("export", EXIT_USAGE, "expected one MODEL file (see fnn export --help)");
    if (!out || !*out)
        return cli_error("export", EXIT_USAGE,
                         "expected --onnx OUT.onnx, the file to write (see fnn export --help)");
    const char *path = argv[optind];
    fnn_error err = {0};
    fnn_model_meta meta = {0};
    fnn_model *m = fnn_model_load(path, &meta, &err);
    if (!m)
        return cli_error("export", EXIT_RUNTIME, "%s", err.msg);
    fnn_onnx_options opt = {.batch = (int)batch, .class_names_json = meta.class_names_json};
    int rc = EXIT_OK;
    if (fnn_export_onnx(m, out, &opt, &err) != FNN_OK) {
        rc = cli_error("export", EXIT_RUNTIME, "%s not exported: %s", path, err.msg);
    } else {
        /* Nothing more on stdout when the file itself may have gone there (/dev/stdout, a
         * pipe): only a regular file gets its summary. */
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
            if (json) {
                cJSON *doc = cJSON_CreateObject();
                cJSON_AddStringToObject(doc, "model_file", path);
                cJSON_AddStringToObject(doc, "onnx_file", out);
                cJSON_AddNumberToObject(doc, "opset", FNN_ONNX_OPSET);
                if (batch)
                    cJSON_AddNumberToObject(doc, "batch", (double)batch);
                else
                    cJSON_AddStringToObject(doc, "batch", "dynamic");
                cJSON_AddNumberToObject(doc, "bytes", (double)st.st_size);
                print_json(doc);
                cJSON_Delete(doc);
            } else {
                printf("wrote %s (ONNX opset %d, %s batch, %lld bytes)\n", out, FNN_ONNX_OPSET,
                       batch ? "fixed" : "dynamic", (long long)st.st_size);
            }
        }
    }
    fnn_model_meta_free(&meta);
    fnn_model_free(m);
    return rc;
}
