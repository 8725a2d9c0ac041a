/* fnn predict: classifies image files (every image of a folder, or of an IDX file) with a
 * saved model. */
#include "cli.h"
#include "options.h"
#include "util/text.h"
#include "util/input.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char usage[] =
    "usage: fnn predict MODEL IMAGE... [options]\n"
    "\n"
    "Classifies each IMAGE with a saved model and prints its most likely classes with their\n"
    "probabilities. An IMAGE is a PNG, JPEG, PGM, PPM or BMP file of any size. Images are\n"
    "converted to what the model was trained on: grey or colour (red, green, blue), resized\n"
    "to its input (fnn summary MODEL shows it) by area averaging and scaled to [0, 1]; the\n"
    "model applies its own input normalisation.\n"
    "--invert is for grey models trained on light things on a dark background, as\n"
    "Fashion-MNIST and MNIST are: it turns photos of dark things on a light background round.\n"
    "An IMAGE may also be a folder: its image files (by extension, any case; hidden files and\n"
    "others skipped) and those of its subfolders, in name order, as fnn train reads a class\n"
    "folder; or an IDX image file (gzipped or plain, e.g. t10k-images-idx3-ubyte.gz) of\n"
    "images of the model's size, classified one by one as \"FILE[i]\"; a colour model takes\n"
    "each of its grey images as three equal planes.\n"
    "\n";

static const char usage_end[] =
    "\n"
    "The class names come from the model file. Exit status 1 names the file that could not be\n"
    "read.\n";

#define IDX_IMAGES_MAGIC 0x00000803u

/* The inputs gathered from every IMAGE argument, in order. */
typedef struct {
    int n, cap;
    float *x;     // (cap, c, h, w)
    char **names; /* (cap) the path, or "path[i]" inside an IDX file */
} inputs;

static int grow(inputs *in, int more, size_t size)
{
    if (in->n + more <= in->cap)
        return 1;
    int cap = in->cap ? in->cap : 16;
    while (cap < in->n + more)
        cap *= 2;
    float *x = realloc(in->x, (size_t)cap * size * sizeof *x);
    if (x)
        in->x = x;
    char **names = realloc(in->names, (size_t)cap * sizeof *names);
    if (names)
        in->names = names;
    if (!x || !names)
        return 0;
    in->cap = cap;
    return 1;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A zlib stream over the regular file at path, or NULL after printing why. */
static gzFile open_gz(const char *path)
{
    int fd;
    fnn_error err = {0};
    if (fnn_input_fd(path, &fd, NULL, &err) != FNN_OK) {
        cli_error("predict", EXIT_RUNTIME, "%s", err.msg);
        return NULL;
    }
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        cli_error("predict", EXIT_RUNTIME, "%s: out of memory opening the file", path);
    }
    return gz;
}

/* 1 if path starts like an IDX image file once decompressed, 0 otherwise, -1 after printing
 * why it cannot be read. */
static int is_idx(const char *path)
{
    gzFile gz = open_gz(path);
    if (!gz)
        return -1;
    unsigned char magic[4];
    int got = gzread(gz, magic, sizeof magic);
    gzclose(gz);
    return got == (int)sizeof magic && be32(magic) == IDX_IMAGES_MAGIC;
}

/* Appends the images of an IDX file (first `limit` when limit > 0) as c planes; h and w must
 * match. IDX images are grey: a colour model gets the grey plane three times, as fnn_data_load
 * converts grey data with --channels 3. */
static int read_idx(const char *path, int c, int h, int w, long limit, inputs *in)
{
    gzFile gz = open_gz(path);
    unsigned char hdr[16];
    if (!gz)
        return EXIT_RUNTIME;
    int rc = EXIT_OK;
    if (gzread(gz, hdr, sizeof hdr) != (int)sizeof hdr) {
        rc = cli_error("predict", EXIT_RUNTIME, "%s: IDX header is truncated", path);
        goto done;
    }
    uint32_t n = be32(hdr + 4), rows = be32(hdr + 8), cols = be32(hdr + 12);
    if ((int)rows != h || (int)cols != w) {
        rc = cli_error("predict", EXIT_RUNTIME,
                       "%s: IDX images are %ux%u but the model expects %dx%d", path, rows, cols,
                       h, w);
        goto done;
    }
    if (limit > 0 && (uint32_t)limit < n)
        n = (uint32_t)limit;
    size_t size = (size_t)h * w;
    unsigned char *pix = malloc(size);
    if (!pix || n > 100000000u || !grow(in, (int)n, (size_t)c * size)) {
        free(pix);
        rc = cli_error("predict", EXIT_RUNTIME, "%s: out of memory for %u images", path, n);
        goto done;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (gzread(gz, pix, (unsigned)size) != (int)size) {
            rc = cli_error("predict", EXIT_RUNTIME,
                           "%s: truncated: image %u of %u ends early (byte %zu)", path, i, n,
                           16 + (size_t)i * size);
            break;
        }
        float *x = in->x + (size_t)in->n * c * size;
        for (size_t p = 0; p < size; p++)
            x[p] = pix[p] / 255.0f;
        for (int ch = 1; ch < c; ch++)
            memcpy(x + ch * size, x, size * sizeof *x);
        char name[1100];
        snprintf(name, sizeof name, "%s[%u]", path, i);
        in->names[in->n++] = strdup(name);
    }
    free(pix);
done:
    gzclose(gz);
    return rc;
}

/* Appends the image file at path, read as the model's input (c, h, w). */
static int add_image(const char *path, int c, int h, int w, int invert, inputs *in)
{
    size_t chw = (size_t)c * h * w;
    if (!grow(in, 1, chw))
        return cli_error("predict", EXIT_RUNTIME, "out of memory");
    fnn_error err = {0};
    if (fnn_image_load(path, c, h, w, invert, in->x + (size_t)in->n * chw, &err) != FNN_OK)
        return cli_error("predict", EXIT_RUNTIME, "%s", err.msg);
    if (!(in->names[in->n] = strdup(path)))
        return cli_error("predict", EXIT_RUNTIME, "out of memory");
    in->n++;
    return EXIT_OK;
}

/* Appends the image files below the folder dir (the first `limit` when limit > 0). */
static int read_folder(const char *dir, int c, int h, int w, int invert, long limit, inputs *in)
{
    fnn_error err = {0};
    char **files;
    int n, rc = EXIT_OK;
    if (fnn_image_files(dir, &files, &n, &err) != FNN_OK)
        return cli_error("predict", EXIT_RUNTIME, "%s", err.msg);
    if (n == 0)
        rc = cli_error("predict", EXIT_RUNTIME,
                       "%s: no image files in the folder or below it (PNG, JPEG, BMP, PGM or "
                       "PPM, by extension)", dir);
    for (int i = 0; i < n && rc == EXIT_OK && (limit <= 0 || i < limit); i++)
        rc = add_image(files[i], c, h, w, invert, in);
    for (int i = 0; i < n; i++)
        free(files[i]);
    free(files);
    return rc;
}

/* Appends what the IMAGE argument path names: a folder's image files, an IDX file's images (the
 * first `limit` of either when limit > 0) or one image file. */
static int add_input(const char *path, int c, int h, int w, int invert, long limit, inputs *in)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return read_folder(path, c, h, w, invert, limit, in);
    int idx = is_idx(path);
    if (idx < 0)
        return EXIT_RUNTIME;
    if (idx)
        return read_idx(path, c, h, w, limit, in);
    return add_image(path, c, h, w, invert, in);
}

/* Indices of the `top` largest probabilities of p (k), largest first. */
static void top_classes(const float *p, int k, int top, int *out)
{
    for (int t = 0; t < top; t++) {
        int best = -1;
        for (int j = 0; j < k; j++) {
            int taken = 0;
            for (int u = 0; u < t; u++)
                taken |= out[u] == j;
            if (!taken && (best < 0 || p[j] > p[best]))
                best = j;
        }
        out[t] = best;
    }
}

int cmd_predict(int argc, char **argv)
{
    long top = 3, limit = 0, threads = 0;
    int json = 0, invert = 0, c, choice;
    fnn_tta tta = FNN_TTA_NONE;
    while ((c = cli_next_option("predict", CLI_PREDICT, argc, argv)) != -1) {
        switch (c) {
        case 0: return EXIT_USAGE;
        case 'h':
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_PREDICT);
            fputs(usage_end, stdout);
            return EXIT_OK;
        case OPT_JSON: json = 1; break;
        case OPT_INVERT: invert = 1; break;
        case OPT_TOP:
            if (!cli_opt_int("predict", CLI_PREDICT, c, optarg, &top)) return EXIT_USAGE;
            break;
        case OPT_LIMIT:
            if (!cli_opt_int("predict", CLI_PREDICT, c, optarg, &limit)) return EXIT_USAGE;
            break;
        case OPT_THREADS:
            if (!cli_opt_int("predict", CLI_PREDICT, c, optarg, &threads)) return EXIT_USAGE;
            break;
        case OPT_TTA:
            if (!cli_opt_choice("predict", CLI_PREDICT, c, optarg, &choice)) return EXIT_USAGE;
            tta = (fnn_tta)choice;
            break;
        default:
            return cli_unhandled_option("predict", CLI_PREDICT, c);
        }
    }
    if (argc - optind < 2)
        return cli_error("predict", EXIT_USAGE,
                         "expected a MODEL file and at least one IMAGE (see fnn predict --help)");
    const char *path = argv[optind];

    fnn_error err = {0};
    fnn_model_meta meta = {0};
    fnn_model *m = fnn_model_load(path, &meta, &err);
    if (!m)
        return cli_error("predict", EXIT_RUNTIME, "%s", err.msg);
    int k = fnn_model_num_classes(m), ch, h, w, rc = EXIT_OK;
    fnn_model_input_shape(m, &ch, &h, &w);
    char **names = fnn_class_names(meta.class_names_json, k);
    inputs in = {0};
    float *probs = NULL;
    int *best = NULL;
    if (top > k)
        top = k;
    /* Every input is read before anything is printed: a bad file stops the run with no output. */
    for (int a = optind + 1; a < argc && rc == EXIT_OK; a++)
        rc = add_input(argv[a], ch, h, w, invert, limit, &in);
    if (rc != EXIT_OK)
        goto done;
    probs = malloc((size_t)in.n * k * sizeof *probs); // (n, k)
    best = malloc((size_t)top * sizeof *best);
    if (!names || !probs || !best) {
        rc = cli_error("predict", EXIT_RUNTIME, "out of memory for %d images", in.n);
        goto done;
    }
    /* In chunks, for the progress bar over a large IDX file. */
    cli_progress bar;
    fnn_eval_options eo = {.threads = (int)threads, .tta = tta};
    progress_begin(&bar, "predict", in.n);
    for (int start = 0; start < in.n; start += 1024) {
        int rows = in.n - start < 1024 ? in.n - start : 1024;
        if (fnn_model_predict_with(m, in.x + (size_t)start * ch * h * w, rows, &eo,
                                   probs + (size_t)start * k, &err) != FNN_OK) {
            progress_end(&bar);
            rc = cli_lib_error("predict", &err);
            goto done;
        }
        progress_update(&bar, start + rows);
    }
    progress_end(&bar);
    cJSON *doc = json ? cJSON_CreateObject() : NULL, *list = NULL;
    if (doc) {
        cJSON_AddStringToObject(doc, "model_file", path);
        cJSON_AddStringToObject(doc, "tta", tta == FNN_TTA_FLIP ? "flip" : "none");
        list = cJSON_AddArrayToObject(doc, "images");
    }
    for (int i = 0; i < in.n; i++) {
        const float *p = probs + (size_t)i * k;
        top_classes(p, k, (int)top, best);
        if (!doc) {
            printf("%s:", in.names[i]);
            for (int t = 0; t < top; t++)
                printf("%s %s (%.4f)", t ? "," : "", names[best[t]], p[best[t]]);
            printf("\n");
            continue;
        }
        cJSON *o = cJSON_CreateObject(), *tops = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "path", in.names[i]);
        for (int t = 0; t < top; t++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "index", best[t]);
            cJSON_AddStringToObject(e, "label", names[best[t]]);
            cJSON_AddNumberToObject(e, "probability", p[best[t]]);
            cJSON_AddItemToArray(tops, e);
        }
        cJSON_AddItemToObject(o, "top", tops);
        cJSON_AddItemToArray(list, o);
    }
    if (doc) {
        print_json(doc);
        cJSON_Delete(doc);
    }
done:
    for (int i = 0; i < in.n; i++)
        free(in.names[i]);
    free(in.names);
    free(in.x);
    free(probs);
    free(best);
    fnn_class_names_free(names, k);
    fnn_model_meta_free(&meta);
    fnn_model_free(m);
    return rc;
}
