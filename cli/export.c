/* fnn export: writes a saved model in a format other runtimes read (ONNX). */
#include "cli.h"

#include <getopt.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: fnn export MODEL --onnx OUT.onnx [options]\n"
    "\n"
    "Writes MODEL as an ONNX file (opset 13) that onnxruntime, OpenCV's DNN module and other\n"
    "runtimes load. Its input \"pixels\" is (batch, 1, 28, 28) float for Fashion-MNIST models:\n"
    "grey pixels from 0 to 255, light on dark, as fnn predict reads them; the graph scales them\n"
    "to [0, 1] itself. Its output \"probabilities\" (batch, classes) is what fnn predict prints.\n"
    "The class names and the architecture spec are in the file's metadata_props (\"class_names\",\n"
    "\"fnn_spec\"). The file is written atomically: on any error nothing is left at OUT.\n"
    "\n"
    "  --onnx OUT      the ONNX file to write\n"
    "  --batch N       fix the batch size at N instead of a dynamic \"batch\" dimension, for\n"
    "                  runtimes that need one [dynamic]\n"
    "  --json          print {\"model_file\", \"onnx_file\", \"opset\", \"batch\", \"bytes\"}\n"
    "                  (nothing is printed when OUT is not a regular file, e.g. /dev/stdout)\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status 1 names the file or the layer that could not be exported, 2 a usage error.\n";

int cmd_export(int argc, char **argv)
{
    enum { O_ONNX = 256, O_BATCH, O_JSON };
    static const struct option longopts[] = {
        {"onnx", required_argument, 0, O_ONNX},
        {"batch", required_argument, 0, O_BATCH},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *out = NULL;
    long batch = 0;
    int json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return EXIT_OK;
        case O_ONNX: out = optarg; break;
        case O_BATCH:
            if (!cli_int("export", "--batch", optarg, 1, 1 << 20, &batch)) return EXIT_USAGE;
            break;
        case O_JSON: json = 1; break;
        case ':':
            return cli_error("export", EXIT_USAGE, "option '%s' needs a value", cli_bad_option(argv));
        default:
            return cli_error("export", EXIT_USAGE, "unknown option '%s' (see fnn export --help)",
                             cli_bad_option(argv));
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
