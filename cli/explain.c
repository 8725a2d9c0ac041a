/* fnn explain: where a saved model looks. Per-class saliency maps and an occlusion map over
 * test images, summarised as a table (or JSON with the maps), optionally written as CSV and PGM. */
#include "cli.h"
#include "options.h"
#include "util/text.h"
#include "util/atomic.h"
#include "util/outputs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: fnn explain MODEL [options]\n"
    "\n"
    "Shows which pixels a saved model relies on, over the images of a split of --data:\n"
    "- saliency: for each class, the mean over that class's images of |d score / d pixel|, the\n"
    "  gradient of the class's score (its logit) with respect to the input; a colour pixel\n"
    "  takes its largest |gradient| over the red, green and blue channels, so every map is one\n"
    "  value per pixel (H rows of W);\n"
    "- occlusion: the accuracy lost when a black patch hides part of every image (every\n"
    "  channel), slid over the image; each pixel gets the mean loss of the patches covering it.\n"
    "The data is read as the model takes it: --image-size and --channels default to its input.\n"
    "Prints per class where the saliency lies: its peak and centre of mass (row, column), the\n"
    "share of it in the 10% most salient pixels (conc.) and in the upper, middle and lower\n"
    "thirds of the rows; then the same for the occlusion map. --json adds the maps themselves:\n"
    "{\"saliency\": {\"method\", \"classes\": [{\"index\", \"label\", \"images\", \"peak\",\n"
    "\"centre\", \"top10_share\", \"thirds\", \"map\": [[...W values] x H]}]}, \"occlusion\":\n"
    "{\"patch\", \"stride\", \"base_accuracy\", \"max_drop\", ..., \"drop\": [[...]]}}.\n"
    "--out-dir writes each map as CSV and as a grey PGM image (saliency_K, occlusion).\n"
    "Occlusion runs the model once per patch position over every image ((H - patch) / stride + 1\n"
    "by (W - patch) / stride + 1 positions: 169 for the defaults on 28x28), hence the default\n"
    "--limit.\n"
    "\n";

static const char *const method_names[] = {"gradient", "smoothgrad", "integrated"};

/* Images per library call: the progress bar moves between calls. */
#define CHUNK 500

typedef struct {
    int peak_r, peak_c;
    double centre_r, centre_c; /* centre of mass */
    double top10;              /* share of the mass in the 10% largest pixels */
    double thirds[3];          /* share in the top, middle and bottom thirds of the rows */
} map_summary;

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Negative values (occlusion making a patch easier) carry no mass. */
static map_summary summarise(const float *map, int h, int w, float *sorted)
{
    map_summary s = {0};
    double mass = 0.0, top = 0.0;
    int best = 0;
    for (int p = 0; p < h * w; p++) {
        double v = map[p] > 0.0f ? map[p] : 0.0;
        sorted[p] = (float)v;
        mass += v;
        s.centre_r += v * (p / w);
        s.centre_c += v * (p % w);
        s.thirds[3 * (p / w) / h] += v;
        if (map[p] > map[best])
            best = p;
    }
    s.peak_r = best / w;
    s.peak_c = best % w;
    qsort(sorted, (size_t)h * w, sizeof *sorted, cmp_desc);
    for (int p = 0; p < (h * w + 9) / 10; p++)
        top += sorted[p];
    if (mass > 0.0) {
        s.centre_r /= mass;
        s.centre_c /= mass;
        s.top10 = top / mass;
        for (int t = 0; t < 3; t++)
            s.thirds[t] /= mass;
    }
    return s;
}

static cJSON *map_json(const float *map, int h, int w)
{
    cJSON *rows = cJSON_CreateArray();
    for (int r = 0; r < h; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; c < w; c++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber(map[r * w + c]));
        cJSON_AddItemToArray(rows, row);
    }
    return rows;
}

static void map_summary_json(cJSON *o, const map_summary *s)
{
    int peak[2] = {s->peak_r, s->peak_c};
    double centre[2] = {s->centre_r, s->centre_c};
    cJSON_AddItemToObject(o, "peak", cJSON_CreateIntArray(peak, 2));
    cJSON_AddItemToObject(o, "centre", cJSON_CreateDoubleArray(centre, 2));
    cJSON_AddNumberToObject(o, "top10_share", s->top10);
    cJSON_AddItemToObject(o, "thirds", cJSON_CreateDoubleArray(s->thirds, 3));
}

/* Writes map as DIR/NAME.csv and DIR/NAME.pgm, each atomically. */
static int write_map(const char *dir, const char *name, const float *map, int h, int w)
{
    char path[1100];
    fnn_error err = {0};
    fnn_atomic_file *f = NULL;
    snprintf(path, sizeof path, "%s/%s.csv", dir, name);
    fnn_status s = fnn_atomic_open(path, &f, &err);
    for (int r = 0; s == FNN_OK && r < h; r++)
        for (int c = 0; s == FNN_OK && c < w; c++)
            s = fnn_atomic_printf(f, &err, "%.6g%c", (double)map[r * w + c],
                                  c + 1 < w ? ',' : '\n');
    if (s == FNN_OK)
        s = fnn_atomic_commit(f, &err);
    else
        fnn_atomic_abort(f);
    if (s != FNN_OK)
        return cli_error("explain", EXIT_RUNTIME, "%s", err.msg);

    float top = 0.0f;
    for (int p = 0; p < h * w; p++)
        top = map[p] > top ? map[p] : top;
    unsigned char *pgm = malloc((size_t)h * w + 64);
    if (!pgm)
        return cli_error("explain", EXIT_RUNTIME, "out of memory");
    int head = snprintf((char *)pgm, 64, "P5\n%d %d\n255\n", w, h);
    for (int p = 0; p < h * w; p++)
        pgm[head + p] = (unsigned char)(top > 0.0f && map[p] > 0.0f
                                            ? lrintf(255.0f * map[p] / top) : 0);
    snprintf(path, sizeof path, "%s/%s.pgm", dir, name);
    s = fnn_write_atomic(path, pgm, (size_t)head + (size_t)h * w, &err);
    free(pgm);
    return s == FNN_OK ? EXIT_OK : cli_error("explain", EXIT_RUNTIME, "%s", err.msg);
}

/* --out-dir is a directory explain made (marked .fnn-explain), or makes; the maps go to a
 * temporary one that replaces it only once all are written. */
static int stage_out_dir(const char *dir, fnn_outputs **files)
{
    fnn_error err = {0};
    if (!(*files = fnn_outputs_new()))
        return cli_error("explain", EXIT_RUNTIME, "out of memory");
    if (fnn_outputs_dir(*files, "--out-dir", dir, ".fnn-explain", FNN_OUT_STAGED, &err) != FNN_OK)
        return cli_lib_error("explain", &err);
    /* Before the temporary exists, so that no signal can come between the two. */
    cli_discard_on_signal(*files);
    if (fnn_outputs_stage(*files, &err) != FNN_OK)
        return cli_lib_error("explain", &err);
    return EXIT_OK;
}

typedef struct {
    fnn_saliency_config sal;
    int patch, stride, occlusion;
    cli_data_opts data;
    const char *split, *out_dir;
    long limit, threads;
    int json;
} explain_opts;

static int parse(int argc, char **argv, explain_opts *o)
{
    long v;
    double dv;
    int c, choice;
    while ((c = cli_next_option("explain", CLI_EXPLAIN, argc, argv)) != -1) {
        switch (c) {
        case 0: return EXIT_USAGE;
        case 'h':
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_EXPLAIN);
            return -1;
        case OPT_OUT_DIR: o->out_dir = optarg; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_NO_OCCLUSION: o->occlusion = 0; break;
        case OPT_METHOD:
            if (!cli_opt_choice("explain", CLI_EXPLAIN, c, optarg, &choice)) return EXIT_USAGE;
            o->sal.method = (fnn_saliency_method)choice;
            break;
        case OPT_SPLIT:
            if (!cli_opt_choice("explain", CLI_EXPLAIN, c, optarg, &choice)) return EXIT_USAGE;
            o->split = choice ? "train" : "test";
            break;
        case OPT_SAMPLES:
            if (!cli_opt_int("explain", CLI_EXPLAIN, c, optarg, &v)) return EXIT_USAGE;
            o->sal.samples = (int)v;
            break;
        case OPT_NOISE:
            if (!cli_opt_real("explain", CLI_EXPLAIN, c, optarg, &dv)) return EXIT_USAGE;
            o->sal.noise = (float)dv;
            break;
        case OPT_PATCH:
            if (!cli_opt_int("explain", CLI_EXPLAIN, c, optarg, &v)) return EXIT_USAGE;
            o->patch = (int)v;
            break;
        case OPT_STRIDE:
            if (!cli_opt_int("explain", CLI_EXPLAIN, c, optarg, &v)) return EXIT_USAGE;
            o->stride = (int)v;
            break;
        case OPT_SEED:
            if (!cli_opt_int("explain", CLI_EXPLAIN, c, optarg, &v)) return EXIT_USAGE;
            o->sal.seed = (uint64_t)v;
            break;
        case OPT_LIMIT:
            if (!cli_opt_int("explain", CLI_EXPLAIN, c, optarg, &o->limit)) return EXIT_USAGE;
            break;
        case OPT_THREADS:
            if (!cli_opt_int("explain", CLI_EXPLAIN, c, optarg, &o->threads)) return EXIT_USAGE;
            break;
        default:
            switch (cli_data_option("explain", CLI_EXPLAIN, c, optarg, &o->data)) {
            case 1: break;
            case 0: return cli_unhandled_option("explain", CLI_EXPLAIN, c);
            default: return EXIT_USAGE;
            }
        }
    }
    if (optind != argc - 1)
        return cli_error("explain", EXIT_USAGE, "expected one MODEL file (see fnn explain --help)");
    return EXIT_OK;
}

int cmd_explain(int argc, char **argv)
{
    explain_opts o = {.sal = {.seed = 1}, .patch = 4, .stride = 2, .occlusion = 1,
                      .data = CLI_DATA_DEFAULT, .split = "test", .limit = 1000};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    const char *path = argv[optind];

    fnn_error err = {0};
    fnn_model_meta meta = {0};
    fnn_model *m = fnn_model_load(path, &meta, &err);
    if (!m)
        return cli_error("explain", EXIT_RUNTIME, "%s", err.msg);
    int k = fnn_model_num_classes(m);
    char **names = fnn_class_names(meta.class_names_json, k);
    fnn_dataset d = {0};
    fnn_outputs *files = NULL;
    float *maps = NULL, *part = NULL, *drop = NULL, *pdrop = NULL, *sorted = NULL;
    int64_t *counts = NULL;
    double base = 0.0;
    rc = names ? cli_load_for_model("explain", &o.data, o.split, o.limit, m,
                                    meta.class_names_json ? (const char *const *)names : NULL, &d,
                                    NULL)
               : cli_error("explain", EXIT_RUNTIME, "out of memory");
    if (rc == EXIT_OK && o.out_dir)
        rc = stage_out_dir(o.out_dir, &files);
    if (rc != EXIT_OK)
        goto done;
    if (o.occlusion && (o.patch > d.h || o.patch > d.w)) {
        rc = cli_error("explain", EXIT_USAGE, "--patch %d: larger than the %dx%d images", o.patch,
                       d.h, d.w);
        goto done;
    }
    int h = d.h, w = d.w, hw = h * w;
    maps = calloc((size_t)k * hw, sizeof *maps);   // (k, h, w) sums, then means
    part = malloc((size_t)k * hw * sizeof *part);  // (k, h, w) one chunk's means
    drop = calloc((size_t)hw, sizeof *drop);       // (h, w)
    pdrop = malloc((size_t)hw * sizeof *pdrop);    // (h, w)
    sorted = malloc((size_t)hw * sizeof *sorted);
    counts = calloc((size_t)k, sizeof *counts);
    if (!names || !maps || !part || !drop || !pdrop || !sorted || !counts) {
        rc = cli_error("explain", EXIT_RUNTIME, "out of memory");
        goto done;
    }

    /* In chunks of images: a class's map is the count-weighted mean of its chunk means, and the
     * occlusion drop the size-weighted mean of the chunks' drops. */
    int nchunks = (d.n + CHUNK - 1) / CHUNK;
    cli_progress bar;
    progress_begin(&bar, "explain", (long)nchunks * (o.occlusion ? 2 : 1));
    long steps = 0, hits = 0;
    for (int start = 0; start < d.n && rc == EXIT_OK; start += CHUNK) {
        fnn_dataset v = fnn_dataset_view(&d, start, d.n - start < CHUNK ? d.n - start : CHUNK);
        int64_t here[FNN_MAX_CLASSES] = {0};
        for (int i = 0; i < v.n; i++)
            here[v.labels[i]]++;
        if (fnn_saliency(m, &v, &o.sal, (int)o.threads, part, &err) != FNN_OK) {
            rc = cli_lib_error("explain", &err);
            break;
        }
        for (int c = 0; c < k; c++) {
            counts[c] += here[c];
            for (int p = 0; p < hw; p++)
                maps[(size_t)c * hw + p] += (float)here[c] * part[(size_t)c * hw + p];
        }
        progress_update(&bar, ++steps);
        if (!o.occlusion)
            continue;
        double b;
        if (fnn_occlusion(m, &v, o.patch, o.stride, (int)o.threads, pdrop, &b, &err) != FNN_OK) {
            rc = cli_lib_error("explain", &err);
            break;
        }
        hits += lround(b * v.n); /* b is a count over v.n images */
        for (int p = 0; p < hw; p++)
            drop[p] += pdrop[p] * (float)v.n / (float)d.n;
        progress_update(&bar, ++steps);
    }
    progress_end(&bar);
    if (rc != EXIT_OK)
        goto done;
    base = (double)hits / d.n;
    for (int c = 0; c < k; c++)
        for (int p = 0; counts[c] && p < hw; p++)
            maps[(size_t)c * hw + p] /= (float)counts[c];

    cJSON *doc = o.json ? cJSON_CreateObject() : NULL, *classes = NULL;
    if (doc) {
        cJSON_AddStringToObject(doc, "model_file", path);
        cJSON_AddStringToObject(doc, "arch", fnn_model_spec(m));
        cJSON_AddStringToObject(doc, "split", o.split);
        cJSON_AddNumberToObject(doc, "images", d.n);
        cJSON *sal = cJSON_AddObjectToObject(doc, "saliency");
        cJSON_AddStringToObject(sal, "method", method_names[o.sal.method]);
        classes = cJSON_AddArrayToObject(sal, "classes");
    } else {
        printf("model: %s (%s)\n%s: %d images; saliency: %s\n\n", path, fnn_model_spec(m),
               o.split, d.n, method_names[o.sal.method]);
        printf("%-14s %6s %10s %14s %7s %7s %6s %7s\n", "class", "images", "peak (r,c)",
               "centre (r,c)", "conc.", "upper", "middle", "lower");
    }
    for (int c = 0; c < k; c++) {
        const float *map = maps + (size_t)c * hw;
        map_summary s = summarise(map, h, w, sorted);
        if (doc) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "index", c);
            cJSON_AddStringToObject(e, "label", names[c]);
            cJSON_AddNumberToObject(e, "images", (double)counts[c]);
            map_summary_json(e, &s);
            cJSON_AddItemToObject(e, "map", map_json(map, h, w));
            cJSON_AddItemToArray(classes, e);
        } else if (counts[c]) {
            char peak[32], centre[32];
            snprintf(peak, sizeof peak, "(%d,%d)", s.peak_r, s.peak_c);
            snprintf(centre, sizeof centre, "(%.1f,%.1f)", s.centre_r, s.centre_c);
            printf("%-14s %6lld %10s %14s %6.1f%% %6.1f%% %5.1f%% %6.1f%%\n", names[c],
                   (long long)counts[c], peak, centre, 100 * s.top10, 100 * s.thirds[0],
                   100 * s.thirds[1], 100 * s.thirds[2]);
        } else {
            printf("%-14s %6d %10s\n", names[c], 0, "-");
        }
        if (o.out_dir) {
            char name[32];
            snprintf(name, sizeof name, "saliency_%d", c);
            if ((rc = write_map(fnn_outputs_path(files, o.out_dir), name, map, h, w)) != EXIT_OK)
                break;
        }
    }
    if (!doc)
        printf("(peak and centre of mass as (row, column); conc.: share of the saliency in the "
               "10%% most salient pixels; upper, middle, lower: share in each third of the rows)\n");
    if (o.occlusion && rc == EXIT_OK) {
        map_summary s = summarise(drop, h, w, sorted);
        if (doc) {
            cJSON *occ = cJSON_AddObjectToObject(doc, "occlusion");
            cJSON_AddNumberToObject(occ, "patch", o.patch);
            cJSON_AddNumberToObject(occ, "stride", o.stride);
            cJSON_AddNumberToObject(occ, "base_accuracy", base);
            cJSON_AddNumberToObject(occ, "max_drop", drop[s.peak_r * w + s.peak_c]);
            map_summary_json(occ, &s);
            cJSON_AddItemToObject(occ, "drop", map_json(drop, h, w));
        } else {
            printf("\nocclusion (%dx%d black patch, stride %d): accuracy %.4f unoccluded; largest "
                   "mean drop %.4f at (%d,%d); centre of the drop (%.1f,%.1f); thirds %.1f%% "
                   "%.1f%% %.1f%%\n", o.patch, o.patch, o.stride, base,
                   drop[s.peak_r * w + s.peak_c], s.peak_r, s.peak_c, s.centre_r, s.centre_c,
                   100 * s.thirds[0], 100 * s.thirds[1], 100 * s.thirds[2]);
        }
        if (o.out_dir)
            rc = write_map(fnn_outputs_path(files, o.out_dir), "occlusion", drop, h, w);
    }
    if (rc == EXIT_OK && files && fnn_outputs_commit(files, &err) != FNN_OK)
        rc = cli_lib_error("explain", &err);
    if (doc) {
        if (rc == EXIT_OK)
            print_json(doc);
        cJSON_Delete(doc);
    }
done:
    cli_discard_on_signal(NULL);
    fnn_outputs_free(files);
    free(maps);
    free(part);
    free(drop);
    free(pdrop);
    free(sorted);
    free(counts);
    fnn_class_names_free(names, k);
    fnn_dataset_free(&d);
    fnn_model_meta_free(&meta);
    fnn_model_free(m);
    return rc;
}
