/* The image folder data source: one subfolder per class (the ImageFolder convention), images
 * decoded in parallel by stb_image, converted to the asked channels and resized by area
 * averaging (src/io/image.c), kept as uint8 planes. */
#define _DEFAULT_SOURCE /* d_type */

#include "data/source.h"
#include "io/image.h"
#include "util/error.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define FOLDER_PATH_CAP 4096
/* Nesting below a class folder; deeper trees are almost surely a mistake (or a loop that
 * changes its inode at each turn, as some network file systems report). */
#define FOLDER_MAX_DEPTH 64

typedef struct {
    fnn_paths files; /* every image, class by class, each in name order */
    int *labels;     // (files.n)
    int cap;         /* labels' capacity */
} folder_list;

/* The directories above the one being walked, by device and inode, to catch symlink loops. */
typedef struct {
    dev_t dev[FOLDER_MAX_DEPTH + 2];
    ino_t ino[FOLDER_MAX_DEPTH + 2];
    int n;
} folder_stack;

/* ImageFolder's rule: known extensions only, in any case. */
static int image_name(const char *name)
{
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm"};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof ext / sizeof *ext; i++)
        if (strcasecmp(dot, ext[i]) == 0)
            return 1;
    return 0;
}

/* A directory entry: its name and whether readdir already knows it is a regular file, which
 * spares a stat per image (a quarter of the time of listing 60,000 files). */
typedef struct {
    char *name;
    int regular;
} folder_entry;

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const folder_entry *)a)->name, ((const folder_entry *)b)->name);
}

static void entries_free(folder_entry *e, int n)
{
    for (int i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

/* The entries of dir but hidden ones, sorted in byte order, into *out (*n of them). */
static fnn_status list_dir(const char *dir, folder_entry **out, int *n, fnn_error *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return fnn_fail(err, FNN_ERR_IO, "%s: cannot open the directory: %s", dir,
                        strerror(errno));
    fnn_status st = FNN_OK;
    folder_entry *v = NULL;
    int cap = 0, count = 0;
    struct dirent *e;
    errno = 0;
    while (st == FNN_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            folder_entry *grown = realloc(v, (size_t)cap * sizeof *v);
            if (!grown) {
                st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory listing files", dir);
                break;
            }
            v = grown;
        }
        if (!(v[count].name = strdup(e->d_name))) {
            st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory listing files", dir);
            break;
        }
        v[count++].regular = e->d_type == DT_REG;
        errno = 0;
    }
    if (st == FNN_OK && errno != 0)
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot read the directory: %s", dir, strerror(errno));
    closedir(d);
    if (st != FNN_OK) {
        entries_free(v, count);
        return st;
    }
    if (count)
        qsort(v, (size_t)count, sizeof *v, entry_cmp);
    *out = v;
    *n = count;
    return FNN_OK;
}

static int is_dir(const char *path, struct stat *sb)
{
    return stat(path, sb) == 0 && S_ISDIR(sb->st_mode);
}

static fnn_status add_item(folder_list *l, const char *path, int label, fnn_error *err)
{
    if (l->files.n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        int *labels = realloc(l->labels, (size_t)cap * sizeof *labels);
        if (!labels)
            return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory listing images", path);
        l->labels = labels;
        l->cap = cap;
    }
    fnn_status st = fnn_paths_add(&l->files, path, err);
    if (st == FNN_OK)
        l->labels[l->files.n - 1] = label;
    return st;
}

/* Adds the images below dir (every file when all is set) with the label, in name order,
 * following symbolic links; a link back to a folder above is a loop and an error. */
static fnn_status walk(const char *dir, int label, int all, folder_stack *stack, folder_list *l,
                       fnn_error *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return fnn_fail(err, FNN_ERR_IO, "%s: %s", dir, strerror(errno));
    for (int i = 0; i < stack->n; i++)
        if (stack->dev[i] == sb.st_dev && stack->ino[i] == sb.st_ino)
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: a symbolic link loop: this folder is one of its own parents",
                            dir);
    if (stack->n > FOLDER_MAX_DEPTH)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: folders nested more than %d deep", dir,
                        FOLDER_MAX_DEPTH);
    stack->dev[stack->n] = sb.st_dev;
    stack->ino[stack->n] = sb.st_ino;
    stack->n++;
    folder_entry *names;
    int n;
    fnn_status st = list_dir(dir, &names, &n, err);
    for (int i = 0; st == FNN_OK && i < n; i++) {
        char path[FOLDER_PATH_CAP];
        st = fnn_path_join(path, sizeof path, dir, names[i].name, err);
        if (st != FNN_OK)
            break;
        if (!names[i].regular && is_dir(path, &sb))
            st = walk(path, label, all, stack, l, err);
        else if (all || image_name(names[i].name)) /* a dangling link fails when decoded */
            st = add_item(l, path, label, err);
    }
    entries_free(names, n);
    stack->n--;
    return st;
}

/* The class folders of root: its subfolders but hidden ones, in byte order. */
static fnn_status class_dirs(const char *root, fnn_paths *classes, fnn_error *err)
{
    folder_entry *names;
    int n;
    fnn_status st = list_dir(root, &names, &n, err);
    for (int i = 0; st == FNN_OK && i < n; i++) {
        char path[FOLDER_PATH_CAP];
        struct stat sb;
        st = fnn_path_join(path, sizeof path, root, names[i].name, err);
        if (st == FNN_OK && !names[i].regular && is_dir(path, &sb))
            st = fnn_paths_add(classes, names[i].name, err);
    }
    entries_free(names, n);
    return st;
}

/* The split's root (root/train or root/test when both are there, else root itself for the
 * training split) and its class names: the training split's, so that labels agree. */
static fnn_status split_root(const char *path, const char *split, char *root, fnn_paths *classes,
                             fnn_error *err)
{
    char train[FOLDER_PATH_CAP], test[FOLDER_PATH_CAP];
    struct stat sb;
    fnn_status st = fnn_path_join(train, sizeof train, path, "train", err);
    if (st == FNN_OK)
        st = fnn_path_join(test, sizeof test, path, "test", err);
    if (st != FNN_OK)
        return st;
    int layout = is_dir(train, &sb) && is_dir(test, &sb);
    if (!layout && strcmp(split, "test") == 0)
        return fnn_fail(err, FNN_ERR_IO,
                        "%s: no test split: the folder tree has no train/ and test/ folders at "
                        "the top, so all of it is the training split (fnn: --test-data PATH "
                        "names a test set; --test-data with this folder reads all of it)",
                        path);
    snprintf(root, FOLDER_PATH_CAP, "%s", !layout ? path : strcmp(split, "train") == 0 ? train : test);
    st = class_dirs(layout ? train : path, classes, err);
    if (st != FNN_OK)
        return st;
    if (classes->n == 0)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: no data found: looked for IDX files (train-images-idx3-ubyte[.gz]), "
                        "CIFAR-10 batches (data_batch_1.bin) and an image folder tree (one "
                        "subfolder of images per class)",
                        layout ? train : path);
    if (classes->n == 1)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: a single class folder (%s): a classifier needs two or more",
                        layout ? train : path, classes->v[0]);
    if (classes->n > FNN_MAX_CLASSES)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: %d class folders, more than the %d fnn supports",
                        layout ? train : path, classes->n, FNN_MAX_CLASSES);
    if (layout && strcmp(split, "test") == 0) {
        fnn_paths own = {0};
        st = class_dirs(test, &own, err);
        for (int i = 0, k = 0; st == FNN_OK && i < own.n; i++) {
            while (k < classes->n && strcmp(classes->v[k], own.v[i]) < 0)
                k++;
            if (k == classes->n || strcmp(classes->v[k], own.v[i]) != 0)
                st = fnn_fail(err, FNN_ERR_FORMAT, "%s/%s: a class that %s does not have", test,
                              own.v[i], train);
        }
        fnn_paths_free(&own);
    }
    return st;
}

/* Lists the split's images (every file when all is set) with their labels. */
static fnn_status list_split(const char *path, const char *split, int all, fnn_paths *classes,
                             folder_list *l, fnn_error *err)
{
    char root[FOLDER_PATH_CAP];
    fnn_status st = split_root(path, split, root, classes, err);
    folder_stack stack;
    stack.n = 0;
    struct stat sb;
    /* The tree's top counts as a parent: a class folder that links to it is a loop. */
    if (st == FNN_OK && stat(path, &sb) == 0) {
        stack.dev[0] = sb.st_dev;
        stack.ino[0] = sb.st_ino;
        stack.n = 1;
    }
    for (int k = 0; st == FNN_OK && k < classes->n; k++) {
        char dir[FOLDER_PATH_CAP];
        st = fnn_path_join(dir, sizeof dir, root, classes->v[k], err);
        if (st != FNN_OK)
            break;
        int before = l->files.n;
        if (strcmp(root, path) != 0 && !is_dir(dir, &sb))
            continue; /* a class with no images in the test split */
        st = walk(dir, k, all, &stack, l, err);
        if (st == FNN_OK && !all && l->files.n == before)
            st = fnn_fail(err, FNN_ERR_FORMAT,
                          "%s: an empty class folder: no PNG, JPEG, BMP, PGM or PPM files", dir);
    }
    return st;
}

/* Decodes path into dst (c, h, w): alpha over black, resized when its size differs. With
 * fixed 0 a size other than h x w is refused (FNN_ERR_ARG, *ih and *iw set). */
static fnn_status decode_one(const char *path, int c, int h, int w, int fixed, uint8_t *dst,
                             int *ih, int *iw, fnn_error *err)
{
    uint8_t *pix; // (ih, iw, c + 1)
    fnn_status st = fnn_image_decode(path, c, &pix, ih, iw, NULL, err);
    if (st != FNN_OK)
        return st;
    size_t area = (size_t)*ih * *iw;
    if (*ih == h && *iw == w) {
        for (size_t i = 0; i < area; i++) {
            unsigned a = pix[(c + 1) * i + c];
            for (int k = 0; k < c; k++)
                dst[k * area + i] = (uint8_t)((pix[(c + 1) * i + k] * a + 127) / 255);
        }
    } else if (!fixed) {
        st = FNN_ERR_ARG;
    } else {
        float *planes = malloc(area * c * sizeof *planes); // (c, ih, iw)
        float *out = malloc((size_t)c * h * w * sizeof *out); // (c, h, w)
        if (!planes || !out)
            st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, *iw,
                          *ih);
        for (size_t i = 0; st == FNN_OK && i < area; i++) {
            float a = pix[(c + 1) * i + c] / 255.0f;
            for (int k = 0; k < c; k++)
                planes[k * area + i] = a * (pix[(c + 1) * i + k] / 255.0f);
        }
        if (st == FNN_OK)
            st = fnn_image_resize(planes, c, *ih, *iw, out, h, w, path, err);
        for (size_t i = 0; st == FNN_OK && i < (size_t)c * h * w; i++) {
            float v = out[i] < 0.0f ? 0.0f : out[i] > 1.0f ? 1.0f : out[i];
            dst[i] = (uint8_t)lrintf(v * 255.0f);
        }
        free(planes);
        free(out);
    }
    free(pix);
    return st;
}

enum { ITEM_OK, ITEM_BAD, ITEM_SIZE };

/* Decodes items [from, n) into d's images in parallel. status (n) records each item's outcome;
 * the lowest failing item that is not skipped ends the run early (items above it stop), so the
 * error reported is always the first in order, whatever the threads did. */
static int decode_all(const folder_list *l, int from, const fnn_data_options *o, fnn_dataset *d,
                      int fixed, uint8_t *status, int *sizes)
{
    int n = l->files.n, first = n;
    long done = from;
    size_t bytes = (size_t)d->c * d->h * d->w;
    int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
    long step = n / 100 > 1 ? n / 100 : 1, shown = from;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int i = from; i < n; i++) {
        int stop;
#pragma omp atomic read
        stop = first;
        if (i > stop)
            continue;
        int ih = 0, iw = 0;
        fnn_status st = decode_one(l->files.v[i], d->c, d->h, d->w, fixed,
                                   d->images + (size_t)i * bytes, &ih, &iw, NULL);
        status[i] = st == FNN_OK ? ITEM_OK : st == FNN_ERR_ARG ? ITEM_SIZE : ITEM_BAD;
        sizes[2 * i] = ih;
        sizes[2 * i + 1] = iw;
        if (status[i] == ITEM_SIZE || (status[i] == ITEM_BAD && !o->skip_bad)) {
#pragma omp critical
            {
                int now_first;
#pragma omp atomic read
                now_first = first;
                if (i < now_first) {
#pragma omp atomic write
                    first = i;
                }
            }
        }
        long now;
#pragma omp atomic capture
        now = ++done;
        if (o->on_progress && omp_get_thread_num() == 0 && now - shown >= step) {
            shown = now;
            o->on_progress(o->user, now, n);
        }
    }
    return first;
}

fnn_status fnn_folder_source_load(const char *path, const char *split,
                                  const fnn_data_options *o, fnn_dataset *d, int *skipped,
                                  fnn_error *err)
{
    fnn_paths classes = {0};
    folder_list l = {0};
    uint8_t *status = NULL;
    int *sizes = NULL;
    fnn_status st = list_split(path, split, 0, &classes, &l, err);
    int n = l.files.n, first_ok = -1;
    if (st == FNN_OK && n == 0)
        st = fnn_fail(err, FNN_ERR_FORMAT, "%s: the %s split holds no images", path, split);
    if (st == FNN_OK && (!(status = calloc((size_t)n, 1)) ||
                         !(sizes = calloc((size_t)n * 2, sizeof *sizes)) ||
                         !(d->labels = malloc((size_t)n))))
        st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for %d images", path, n);
    /* The first readable image sets the channels and the size unless the options do. */
    int fixed = o->h > 0, stored = 0;
    for (int i = 0; st == FNN_OK && first_ok < 0 && i < n; i++) {
        int ih, iw;
        uint8_t *pix;
        fnn_error e1 = {0};
        st = fnn_image_decode(l.files.v[i], 1, &pix, &ih, &iw, &stored, &e1);
        if (st == FNN_OK) {
            free(pix);
            first_ok = i;
            d->h = fixed ? o->h : ih;
            d->w = fixed ? o->w : iw;
            d->c = o->channels ? o->channels : stored;
        } else if (o->skip_bad) {
            status[i] = ITEM_BAD;
            st = FNN_OK;
        } else if (err) {
            *err = e1;
        }
    }
    if (st == FNN_OK && first_ok < 0)
        st = fnn_fail(err, FNN_ERR_FORMAT, "%s: none of the %s split's %d images is readable",
                      path, split, n);
    size_t bytes = (size_t)d->c * d->h * d->w;
    if (st == FNN_OK && !(d->images = malloc((size_t)n * bytes)))
        st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for %d images of %dx%dx%d", path, n,
                      d->c, d->h, d->w);
    if (st == FNN_OK) {
        int first = decode_all(&l, first_ok, o, d, fixed, status, sizes);
        if (first < n && status[first] == ITEM_SIZE)
            st = fnn_fail(err, FNN_ERR_FORMAT,
                          "images of mixed sizes: %s is %dx%d but %s is %dx%d; give an image "
                          "size to resize them to (fnn: --image-size HxW)",
                          l.files.v[first_ok], d->h, d->w, l.files.v[first], sizes[2 * first],
                          sizes[2 * first + 1]);
        else if (first < n) { /* decoded again, alone, for its message */
            st = decode_one(l.files.v[first], d->c, d->h, d->w, fixed, d->images, &sizes[0],
                            &sizes[1], err);
            if (st == FNN_OK) /* it changed in between */
                st = fnn_fail(err, FNN_ERR_IO, "%s: changed while it was read", l.files.v[first]);
        }
        if (o->on_progress)
            o->on_progress(o->user, n, n);
    }
    /* Skipped images leave gaps, closed in order. */
    int kept = 0;
    for (int i = 0; st == FNN_OK && i < n; i++) {
        if (status[i] != ITEM_OK)
            continue;
        if (kept != i)
            memcpy(d->images + (size_t)kept * bytes, d->images + (size_t)i * bytes, bytes);
        d->labels[kept++] = (uint8_t)l.labels[i];
    }
    if (st == FNN_OK) {
        *skipped = n - kept;
        d->n = kept;
        d->nclasses = classes.n;
        d->class_names = classes.v;
        d->owns = 1;
        memset(&classes, 0, sizeof classes);
        snprintf(d->labels_path, sizeof d->labels_path, "%s", path);
    } else {
        free(d->images);
        free(d->labels);
        memset(d, 0, sizeof *d);
    }
    fnn_paths_free(&classes);
    fnn_paths_free(&l.files);
    free(l.labels);
    free(status);
    free(sizes);
    return st;
}

fnn_status fnn_image_files(const char *dir, char ***paths, int *n, fnn_error *err)
{
    if (!dir || !paths || !n)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_image_files: NULL argument");
    *paths = NULL;
    *n = 0;
    folder_stack stack = {.n = 0};
    folder_list l = {0};
    fnn_status st = walk(dir, 0, 0, &stack, &l, err);
    free(l.labels);
    if (st != FNN_OK) {
        fnn_paths_free(&l.files);
        return st;
    }
    *paths = l.files.v;
    *n = l.files.n;
    return FNN_OK;
}

fnn_status fnn_folder_source_files(const char *path, const char *split, fnn_paths *p,
                                   fnn_error *err)
{
    fnn_paths classes = {0};
    folder_list l = {0};
    fnn_status st = list_split(path, split, 1, &classes, &l, err);
    for (int i = 0; st == FNN_OK && i < l.files.n; i++)
        st = fnn_paths_add(p, l.files.v[i], err);
    fnn_paths_free(&classes);
    fnn_paths_free(&l.files);
    free(l.labels);
    return st;
}
