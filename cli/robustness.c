/* fnn robustness: test accuracy of a saved model under noise, shifts, rotations, occlusion and
 * contrast changes, as a table or JSON. */
#include "cli.h"
#include "options.h"
#include "util/text.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: fnn robustness MODEL [options]\n"
    "\n"
    "Measures a saved model's test accuracy while the test images are perturbed, at several\n"
    "levels of each perturbation (level 0, or 1 for contrast, is the plain test accuracy):\n"
    "  noise     Gaussian noise of this standard deviation (pixels in [0, 1]), clipped\n"
    "  shift     the image moved this many pixels up, down, left or right (drawn per image)\n"
    "  rotate    rotated by this many degrees, clockwise or counter-clockwise (drawn per image)\n"
    "  occlude   a black square of this side at a random place in the image\n"
    "  contrast  pixels pulled towards the image's mean: mean + factor (x - mean)\n"
    "Colour images get noise drawn per channel; a shift, rotation or square moves or covers all\n"
    "their channels alike; contrast pulls towards the mean of all their values. Shifts and\n"
    "squares larger than the images (under 16 pixels) are left out.\n"
    "The data is read as the model takes it: --image-size and --channels default to its input.\n"
    "\n";

static const char *const units[FNN_PERTURB_COUNT] = {"sigma", "pixels", "degrees", "pixels",
                                                     "factor"};

/* How many of p's first levels (ascending) images of h x w can take: fnn_robustness refuses a
 * shift or an occluding square larger than the image, and the defaults go up to 16 pixels. */
static int levels_that_fit(fnn_perturbation p, const double *levels, int n, int h, int w)
{
    if (p != FNN_PERTURB_SHIFT && p != FNN_PERTURB_OCCLUDE)
        return n;
    int fit = 0;
    while (fit < n && levels[fit] <= (h > w ? h : w))
        fit++;
    return fit;
}

/* Sets chosen[p] for each name of a comma-separated list; 0 after printing what was wrong. An
 * empty list or an empty name is an error: the command needs at least one perturbation. */
static int parse_list(const char *text, int *chosen)
{
    const char *t = text;
    for (;;) {
        size_t len = strcspn(t, ",");
        int found = 0;
        for (int p = 0; len && p < FNN_PERTURB_COUNT; p++)
            if (strlen(fnn_perturbation_name(p)) == len &&
                !strncmp(t, fnn_perturbation_name(p), len))
                found = chosen[p] = 1;
        if (!found && len) {
            cli_error("robustness", EXIT_USAGE, "--perturbation: unknown name '%.*s' (noise, "
                      "shift, rotate, occlude, contrast)", (int)len, t);
            return 0;
        }
        if (!found) {
            cli_error("robustness", EXIT_USAGE, "--perturbation '%s': an empty name; expected a "
                      "comma-separated list of noise, shift, rotate, occlude, contrast", text);
            return 0;
        }
        if (!t[len])
            return 1;
        t += len + 1;
    }
}

int cmd_robustness(int argc, char **argv)
{
    cli_data_opts data = CLI_DATA_DEFAULT;
    const char *split = "test";
    long limit = 0, threads = 0, seed = 1;
    int json = 0, c, chosen[FNN_PERTURB_COUNT] = {0}, any = 0, choice;
    while ((c = cli_next_option("robustness", CLI_ROBUSTNESS, argc, argv)) != -1) {
        switch (c) {
        case 0: return EXIT_USAGE;
        case 'h':
            fputs(usage, stdout);
            cli_print_options(stdout, CLI_ROBUSTNESS);
            return EXIT_OK;
        case OPT_JSON: json = 1; break;
        case OPT_PERTURBATION:
            if (!parse_list(optarg, chosen)) return EXIT_USAGE;
            any = 1;
            break;
        case OPT_SPLIT:
            if (!cli_opt_choice("robustness", CLI_ROBUSTNESS, c, optarg, &choice))
                return EXIT_USAGE;
            split = choice ? "train" : "test";
            break;
        case OPT_SEED:
            if (!cli_opt_int("robustness", CLI_ROBUSTNESS, c, optarg, &seed)) return EXIT_USAGE;
            break;
        case OPT_LIMIT:
            if (!cli_opt_int("robustness", CLI_ROBUSTNESS, c, optarg, &limit)) return EXIT_USAGE;
            break;
        case OPT_THREADS:
            if (!cli_opt_int("robustness", CLI_ROBUSTNESS, c, optarg, &threads))
                return EXIT_USAGE;
            break;
        default:
            switch (cli_data_option("robustness", CLI_ROBUSTNESS, c, optarg, &data)) {
            case 1: break;
            case 0: return cli_unhandled_option("robustness", CLI_ROBUSTNESS, c);
            default: return EXIT_USAGE;
            }
        }
    }
    if (optind != argc - 1)
        return cli_error("robustness", EXIT_USAGE,
                         "expected one MODEL file (see fnn robustness --help)");
    for (int p = 0; !any && p < FNN_PERTURB_COUNT; p++)
        chosen[p] = 1;
    const char *path = argv[optind];

    fnn_error err = {0};
    fnn_model_meta meta = {0};
    fnn_model *m = fnn_model_load(path, &meta, &err);
    if (!m)
        return cli_error("robustness", EXIT_RUNTIME, "%s", err.msg);
    int k = fnn_model_num_classes(m);
    char **names = fnn_class_names(meta.class_names_json, k);
    fnn_dataset d = {0};
    double acc[FNN_PERTURB_COUNT][16];
    int rc = names ? cli_load_for_model("robustness", &data, split, limit, m,
                                        meta.class_names_json ? (const char *const *)names
                                                              : NULL, &d, NULL)
                   : cli_error("robustness", EXIT_RUNTIME, "out of memory");
    if (rc != EXIT_OK)
        goto done;
    /* Each perturbation's default levels, those the images can take. */
    const double *levels[FNN_PERTURB_COUNT];
    int nlevels[FNN_PERTURB_COUNT];
    long total = 0, done_steps = 0;
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        nlevels[p] = fnn_perturbation_levels(p, &levels[p]);
        nlevels[p] = chosen[p] ? levels_that_fit(p, levels[p], nlevels[p], d.h, d.w) : 0;
        total += nlevels[p];
    }
    cli_progress bar;
    progress_begin(&bar, "robustness", total);
    /* One level per call, so the bar moves. */
    for (int p = 0; p < FNN_PERTURB_COUNT && rc == EXIT_OK; p++) {
        for (int j = 0; j < nlevels[p] && rc == EXIT_OK; j++) {
            /* Each level's draws depend on the seed and the level's place, as in one call. */
            if (fnn_robustness(m, &d, p, levels[p] + j, 1,
                               (uint64_t)seed * 1000003u + (uint64_t)j, (int)threads, &acc[p][j],
                               &err) != FNN_OK)
                rc = cli_lib_error("robustness", &err);
            progress_update(&bar, ++done_steps);
        }
    }
    progress_end(&bar);
    if (rc != EXIT_OK)
        goto done;

    /* The weakest axis: the largest drop at a perturbation's strongest level. */
    int weakest = -1;
    double worst = 0.0;
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        int n = nlevels[p];
        if (n && (weakest < 0 || acc[p][0] - acc[p][n - 1] > worst)) {
            worst = acc[p][0] - acc[p][n - 1];
            weakest = p;
        }
    }
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model_file", path);
        cJSON_AddStringToObject(doc, "arch", fnn_model_spec(m));
        cJSON_AddStringToObject(doc, "split", split);
        cJSON_AddNumberToObject(doc, "images", d.n);
        cJSON_AddNumberToObject(doc, "seed", (double)seed);
        cJSON *list = cJSON_AddArrayToObject(doc, "perturbations");
        for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
            int n = nlevels[p];
            if (!chosen[p])
                continue;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", fnn_perturbation_name(p));
            cJSON_AddStringToObject(o, "unit", units[p]);
            cJSON_AddItemToObject(o, "levels", cJSON_CreateDoubleArray(levels[p], n));
            cJSON_AddItemToObject(o, "accuracy", cJSON_CreateDoubleArray(acc[p], n));
            cJSON_AddItemToArray(list, o);
        }
        cJSON_AddStringToObject(doc, "weakest", fnn_perturbation_name(weakest));
        print_json(doc);
        cJSON_Delete(doc);
    } else {
        printf("model: %s (%s)\n%s: %d images, seed %ld\n\n", path, fnn_model_spec(m), split,
               d.n, seed);
        printf("%-12s %8s %-8s %9s %8s\n", "perturbation", "level", "unit", "accuracy", "change");
        for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
            for (int j = 0; j < nlevels[p]; j++) {
                printf("%-12s %8g %-8s %9.4f", j ? "" : fnn_perturbation_name(p), levels[p][j],
                       units[p], acc[p][j]);
                if (j)
                    printf(" %+8.4f", acc[p][j] - acc[p][0]);
                printf("\n");
            }
        }
        int n = nlevels[weakest];
        printf("\nweakest: %s (accuracy %.4f -> %.4f at %g %s)\n", fnn_perturbation_name(weakest),
               acc[weakest][0], acc[weakest][n - 1], levels[weakest][n - 1], units[weakest]);
    }
done:
    fnn_dataset_free(&d);
    fnn_class_names_free(names, k);
    fnn_model_meta_free(&meta);
    fnn_model_free(m);
    return rc;
}
