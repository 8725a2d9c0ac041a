/* Loading timings of the data sources for bench/load.sh, and the files it loads.
 *   load_bench write DATA_DIR WORK   writes Fashion-MNIST (IDX in DATA_DIR) as a PNG tree,
 *                                    WORK/tree/{train,test}/<class>/<n>.png, and as Kaggle's
 *                                    CSV files, WORK/fashion-mnist_{train,test}.csv (the
 *                                    benchmark reads the training one)
 *   load_bench tree WORK/tree THREADS   loads both splits of the tree
 *   load_bench csv FILE THREADS         loads the CSV file
 * A load prints one JSON line: seconds (the load alone, wall clock), images, and the sum of
 * every pixel and label, which load_py.py prints too, so the two are seen to read the same. */
#include "fnn.h"
#include "timing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb_image_write.h>

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "load_bench: %s: %s\n", what, msg);
    return 1;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return fail(path, strerror(errno));
    return 0;
}

/* The class folders, named so that byte order is label order. */
static void class_dir(char *out, size_t cap, const char *root, int k)
{
    static const char *const names[10] = {"0_tshirt_top", "1_trouser", "2_pullover", "3_dress",
                                          "4_coat",       "5_sandal",  "6_shirt",    "7_sneaker",
                                          "8_bag",        "9_ankle_boot"};
    snprintf(out, cap, "%s/%s", root, names[k]);
}

static int write_tree(const fnn_dataset *d, const char *root)
{
    char dir[4096];
    if (make_dir(root))
        return 1;
    for (int k = 0; k < 10; k++) {
        class_dir(dir, sizeof dir, root, k);
        if (make_dir(dir))
            return 1;
    }
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 256) reduction(| : bad)
    for (int i = 0; i < d->n; i++) {
        char path[4200];
        class_dir(path, sizeof path, root, d->labels[i]);
        snprintf(path + strlen(path), sizeof path - strlen(path), "/%05d.png", i);
        bad |= !stbi_write_png(path, d->w, d->h, 1, d->images + (size_t)i * d->h * d->w, d->w);
    }
    return bad ? fail(root, "cannot write a PNG file") : 0;
}

static int write_csv(const fnn_dataset *d, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return fail(path, strerror(errno));
    fputs("label", f);
    for (int j = 0; j < d->h * d->w; j++)
        fprintf(f, ",pixel%d", j + 1);
    fputc('\n', f);
    for (int i = 0; i < d->n; i++) {
        fprintf(f, "%d", d->labels[i]);
        for (int j = 0; j < d->h * d->w; j++)
            fprintf(f, ",%d", d->images[(size_t)i * d->h * d->w + j]);
        fputc('\n', f);
    }
    if (ferror(f) | fclose(f))
        return fail(path, "write error");
    return 0;
}

static int write_all(const char *data, const char *work)
{
    fnn_dataset tr, te;
    fnn_error err = {0};
    if (fnn_dataset_load(data, "train", &tr, &err) != FNN_OK)
        return fail(data, err.msg);
    if (fnn_dataset_load(data, "t10k", &te, &err) != FNN_OK) {
        fnn_dataset_free(&tr);
        return fail(data, err.msg);
    }
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/tree", work);
    int rc = make_dir(work) || make_dir(a);
    snprintf(b, sizeof b, "%s/tree/train", work);
    rc = rc || write_tree(&tr, b);
    snprintf(b, sizeof b, "%s/tree/test", work);
    rc = rc || write_tree(&te, b);
    snprintf(b, sizeof b, "%s/fashion-mnist_train.csv", work);
    rc = rc || write_csv(&tr, b);
    snprintf(b, sizeof b, "%s/fashion-mnist_test.csv", work);
    rc = rc || write_csv(&te, b);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&te);
    return rc;
}

static unsigned long long checksum(const fnn_dataset *d)
{
    unsigned long long s = 0;
    for (size_t i = 0; i < (size_t)d->n * d->c * d->h * d->w; i++)
        s += d->images[i];
    for (int i = 0; i < d->n; i++)
        s += d->labels[i];
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "write") == 0)
        return write_all(argv[2], argv[3]);
    if (argc != 4 || (strcmp(argv[1], "tree") != 0 && strcmp(argv[1], "csv") != 0)) {
        fprintf(stderr, "usage: load_bench write DATA_DIR WORK | tree DIR THREADS | csv FILE "
                        "THREADS\n");
        return 2;
    }
    fnn_data_options o = {.threads = atoi(argv[3])};
    int tree = strcmp(argv[1], "tree") == 0;
    fnn_dataset d[2];
    fnn_error err = {0};
    double t0 = now_us();
    for (int s = 0; s < 1 + tree; s++)
        if (fnn_data_load(argv[2], s ? "test" : "train", &o, &d[s], &err) != FNN_OK)
            return fail(argv[2], err.msg);
    double seconds = (now_us() - t0) / 1e6;
    unsigned long long sum = 0;
    int n = 0;
    for (int s = 0; s < 1 + tree; s++) {
        sum += checksum(&d[s]);
        n += d[s].n;
        fnn_dataset_free(&d[s]);
    }
    printf("{\"seconds\": %.4f, \"images\": %d, \"checksum\": %llu}\n", seconds, n, sum);
    return 0;
}
