/* Data sources: the format of a path (detection), the options every format shares (channels,
 * size), and the fnn_source interface over the adapters in idx.c, folder.c, csv.c and cifar.c. */
#define _POSIX_C_SOURCE 200809L

#include "data/dataset.h"
#include "data/idx.h"
#include "data/source.h"
#include "util/error.h"
#include "util/input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Sides above this are refused: far above any image a small classifier takes. */
#define SOURCE_MAX_SIDE 4096

struct fnn_source {
    fnn_data_format format;
    fnn_dataset d; /* the split, decoded, with the options' channels and size */
    int skipped;   /* bad images skipped (skip_bad) */
};

const char *fnn_data_format_name(fnn_data_format f)
{
    switch (f) {
    case FNN_FORMAT_AUTO: return "auto";
    case FNN_FORMAT_IDX: return "IDX";
    case FNN_FORMAT_FOLDER: return "image folder";
    case FNN_FORMAT_CSV: return "CSV";
    case FNN_FORMAT_CIFAR10: return "CIFAR-10";
    }
    return "unknown";
}

fnn_status fnn_paths_add(fnn_paths *p, const char *path, fnn_error *err)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        char **v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v)
            return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory listing files", path);
        p->v = v;
        p->cap = cap;
    }
    if (!(p->v[p->n] = strdup(path)))
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory listing files", path);
    p->n++;
    return FNN_OK;
}

void fnn_paths_free(fnn_paths *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

fnn_status fnn_path_join(char *out, size_t cap, const char *dir, const char *name,
                         fnn_error *err)
{
    size_t len = strlen(dir);
    const char *sep = len == 0 ? "./" : dir[len - 1] == '/' ? "" : "/";
    int n = snprintf(out, cap, "%s%s%s", dir, sep, name);
    if (n < 0 || (size_t)n >= cap)
        return fnn_fail(err, FNN_ERR_ARG, "%s/%s: path too long", dir, name);
    return FNN_OK;
}

fnn_status fnn_test_sibling(const char *path, const char *test, char *out, size_t cap,
                            fnn_error *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *at = NULL;
    for (const char *p = strstr(base, "train"); p; p = strstr(p + 1, "train"))
        at = p;
    if (!at)
        return fnn_fail(err, FNN_ERR_IO,
                        "%s: no test split: a file holds one split, and its name has no \"train\" "
                        "to find the test file by; pass the test set's file",
                        path);
    int n = snprintf(out, cap, "%.*s%s%s", (int)(at - path), path, test, at + 5);
    if (n < 0 || (size_t)n >= cap)
        return fnn_fail(err, FNN_ERR_ARG, "%s: path too long", path);
    return FNN_OK;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A regular file's format: by name (.csv, .csv.gz; an IDX name), else by content (IDX's magic
 * number, or a first line of comma-separated text). */
static fnn_status detect_file(const char *path, fnn_data_format *f, fnn_error *err)
{
    if (has_suffix(path, ".csv") || has_suffix(path, ".csv.gz") || has_suffix(path, ".CSV")) {
        *f = FNN_FORMAT_CSV;
        return FNN_OK;
    }
    if (strstr(path, "idx3-ubyte")) {
        *f = FNN_FORMAT_IDX;
        return FNN_OK;
    }
    int fd;
    fnn_status st = fnn_input_fd(path, &fd, NULL, err); /* never blocks on a FIFO */
    if (st != FNN_OK)
        return st;
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory opening the file", path);
    }
    unsigned char head[256];
    int n = gzread(gz, head, sizeof head);
    gzclose_r(gz);
    if (n >= 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08 && head[3] == 3) {
        *f = FNN_FORMAT_IDX;
        return FNN_OK;
    }
    int comma = 0, text = n > 0;
    for (int i = 0; i < n && head[i] != '\n'; i++) {
        comma |= head[i] == ',';
        text &= head[i] >= 0x20 || head[i] == '\t' || head[i] == '\r';
    }
    if (comma && text) {
        *f = FNN_FORMAT_CSV;
        return FNN_OK;
    }
    return fnn_fail(err, FNN_ERR_FORMAT,
                    "%s: not a data set file: looked for a CSV file (.csv, .csv.gz, or a header "
                    "line of comma-separated fields) and an IDX images file (magic number "
                    "0x00000803)",
                    path);
}

static fnn_status detect(const char *path, fnn_data_format *f, fnn_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fnn_fail(err, FNN_ERR_IO, "%s: no such file or directory; " FNN_DATA_HINT,
                            path);
        return fnn_fail(err, FNN_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (S_ISREG(sb.st_mode))
        return detect_file(path, f, err);
    if (!S_ISDIR(sb.st_mode))
        return fnn_fail(err, FNN_ERR_IO, "%s: neither a file nor a directory", path);
    *f = fnn_idx_dir_detect(path)     ? FNN_FORMAT_IDX
         : fnn_cifar_dir_detect(path) ? FNN_FORMAT_CIFAR10
                                      : FNN_FORMAT_FOLDER;
    return FNN_OK;
}

static fnn_status check_args(const char *path, const char *split, const fnn_data_options *o,
                             fnn_error *err)
{
    if (!path || !split)
        return fnn_fail(err, FNN_ERR_ARG, "data source: NULL path or split");
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
        return fnn_fail(err, FNN_ERR_ARG, "%s: split \"%s\": expected \"train\" or \"test\"",
                        path, split);
    if (o->format < FNN_FORMAT_AUTO || o->format > FNN_FORMAT_CIFAR10)
        return fnn_fail(err, FNN_ERR_ARG, "%s: data format %d is not one fnn knows", path,
                        (int)o->format);
    if (o->channels != 0 && o->channels != 1 && o->channels != 3)
        return fnn_fail(err, FNN_ERR_ARG, "%s: %d channels: expected 1, 3 or 0 (as stored)",
                        path, o->channels);
    if ((o->h == 0) != (o->w == 0) || o->h < 0 || o->w < 0 || o->h > SOURCE_MAX_SIDE ||
        o->w > SOURCE_MAX_SIDE)
        return fnn_fail(err, FNN_ERR_ARG,
                        "%s: image size %dx%d: expected both sides in 1 to %d, or both 0 (as "
                        "stored)",
                        path, o->h, o->w, SOURCE_MAX_SIDE);
    if (o->threads < 0)
        return fnn_fail(err, FNN_ERR_ARG, "%s: %d threads: expected 0 (all) or more", path,
                        o->threads);
    return FNN_OK;
}

/* Converts d's images to c channels in place of the old buffer: luma as stb_image computes it
 * (so a colour file read grey here and through stb agree), or the grey plane repeated. */
static fnn_status convert_channels(fnn_dataset *d, int c, const char *path, fnn_error *err)
{
    if (c == 0 || c == d->c)
        return FNN_OK;
    size_t area = (size_t)d->h * d->w, n = (size_t)d->n;
    uint8_t *out = malloc(n * area > 0 ? n * c * area : 1); // (n, c, h, w)
    if (!out)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory converting to %d channels", path,
                        c);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *src = d->images + i * d->c * area; // (d->c, h, w)
        uint8_t *dst = out + i * c * area;                // (c, h, w)
        if (c == 1)
            for (size_t j = 0; j < area; j++)
                dst[j] = (uint8_t)((src[j] * 77 + src[area + j] * 150 + src[2 * area + j] * 29) >>
                                   8);
        else
            for (int k = 0; k < 3; k++)
                memcpy(dst + k * area, src, area);
    }
    free(d->images);
    d->images = out;
    d->c = c;
    return FNN_OK;
}

static fnn_status load(const char *path, const char *split, const fnn_data_options *o,
                       fnn_data_format f, fnn_dataset *d, int *skipped, fnn_error *err)
{
    switch (f) {
    case FNN_FORMAT_IDX: return fnn_idx_source_load(path, split, d, err);
    case FNN_FORMAT_FOLDER: return fnn_folder_source_load(path, split, o, d, skipped, err);
    case FNN_FORMAT_CSV: return fnn_csv_source_load(path, split, o, d, err);
    case FNN_FORMAT_CIFAR10: return fnn_cifar_source_load(path, split, d, err);
    case FNN_FORMAT_AUTO: break;
    }
    return fnn_fail(err, FNN_ERR_ARG, "%s: no data format", path);
}

fnn_status fnn_source_open(const char *path, const char *split, const fnn_data_options *opt,
                           fnn_source **out, fnn_error *err)
{
    fnn_data_options defaults = {0};
    const fnn_data_options *o = opt ? opt : &defaults;
    if (!out)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_source_open: NULL output");
    *out = NULL;
    fnn_status st = check_args(path, split, o, err);
    fnn_data_format f = o->format;
    if (st == FNN_OK && f == FNN_FORMAT_AUTO)
        st = detect(path, &f, err);
    if (st != FNN_OK)
        return st;
    fnn_source *s = calloc(1, sizeof *s);
    if (!s)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", path);
    s->format = f;
    st = load(path, split, o, f, &s->d, &s->skipped, err);
    if (st == FNN_OK && s->d.n == 0)
        st = fnn_fail(err, FNN_ERR_FORMAT, "%s: the %s split holds no images", path, split);
    /* Only a folder tree's images are resized; a CSV takes h x w as its rows' shape. */
    if (st == FNN_OK && o->h && (s->d.h != o->h || s->d.w != o->w))
        st = fnn_fail(err, FNN_ERR_ARG,
                      "%s: %s images are %dx%d, not the %dx%d asked for: only an image folder's "
                      "images are resized",
                      path, fnn_data_format_name(f), s->d.h, s->d.w, o->h, o->w);
    if (st == FNN_OK)
        st = convert_channels(&s->d, o->channels, path, err);
    if (st != FNN_OK) {
        fnn_source_close(s);
        return st;
    }
    *out = s;
    return FNN_OK;
}

fnn_data_format fnn_source_format(const fnn_source *s)
{
    return s ? s->format : FNN_FORMAT_AUTO;
}

int fnn_source_count(const fnn_source *s)
{
    return s ? s->d.n : 0;
}

void fnn_source_shape(const fnn_source *s, int *c, int *h, int *w)
{
    if (c)
        *c = s ? s->d.c : 0;
    if (h)
        *h = s ? s->d.h : 0;
    if (w)
        *w = s ? s->d.w : 0;
}

int fnn_source_num_classes(const fnn_source *s)
{
    return s ? s->d.nclasses : 0;
}

const char *fnn_source_class_name(const fnn_source *s, int k)
{
    if (!s || !s->d.class_names || k < 0 || k >= s->d.nclasses)
        return NULL;
    return s->d.class_names[k];
}

fnn_status fnn_source_read(fnn_source *s, int start, int count, uint8_t *images,
                           uint8_t *labels, fnn_error *err)
{
    if (!s || (count > 0 && (!images || !labels)))
        return fnn_fail(err, FNN_ERR_ARG, "fnn_source_read: NULL argument");
    if (start < 0 || count < 0 || start > s->d.n || count > s->d.n - start)
        return fnn_fail(err, FNN_ERR_ARG,
                        "fnn_source_read: items [%d, %d + %d) are outside the %d of the source",
                        start, start, count, s->d.n);
    size_t bytes = fnn_image_bytes(&s->d);
    if (count > 0) {
        memcpy(images, s->d.images + (size_t)start * bytes, (size_t)count * bytes);
        memcpy(labels, s->d.labels + start, (size_t)count);
    }
    return FNN_OK;
}

int fnn_source_skipped(const fnn_source *s)
{
    return s ? s->skipped : 0;
}

void fnn_source_close(fnn_source *s)
{
    if (!s)
        return;
    fnn_dataset_free(&s->d);
    free(s);
}

fnn_status fnn_data_load(const char *path, const char *split, const fnn_data_options *opt,
                         fnn_dataset *out, fnn_error *err)
{
    if (!out)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_data_load: NULL output");
    memset(out, 0, sizeof *out);
    fnn_source *s;
    fnn_status st = fnn_source_open(path, split, opt, &s, err);
    if (st != FNN_OK)
        return st;
    fnn_source_take(s, out);
    fnn_source_close(s);
    return FNN_OK;
}

void fnn_source_take(fnn_source *s, fnn_dataset *out)
{
    /* The source already holds the split as a data set: handed over, not copied. */
    *out = s->d;
    memset(&s->d, 0, sizeof s->d);
}

fnn_status fnn_data_files(const char *path, const char *split, const fnn_data_options *opt,
                          char ***paths, int *n, fnn_error *err)
{
    fnn_data_options defaults = {0};
    const fnn_data_options *o = opt ? opt : &defaults;
    if (!paths || !n)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_data_files: NULL output");
    *paths = NULL;
    *n = 0;
    fnn_status st = check_args(path, split, o, err);
    fnn_data_format f = o->format;
    if (st == FNN_OK && f == FNN_FORMAT_AUTO)
        st = detect(path, &f, err);
    if (st != FNN_OK)
        return st;
    fnn_paths p = {0};
    switch (f) {
    case FNN_FORMAT_IDX: st = fnn_idx_source_files(path, split, &p, err); break;
    case FNN_FORMAT_FOLDER: st = fnn_folder_source_files(path, split, &p, err); break;
    case FNN_FORMAT_CSV: st = fnn_csv_source_files(path, split, &p, err); break;
    case FNN_FORMAT_CIFAR10: st = fnn_cifar_source_files(path, split, &p, err); break;
    case FNN_FORMAT_AUTO: break;
    }
    if (st != FNN_OK) {
        fnn_paths_free(&p);
        return st;
    }
    *paths = p.v;
    *n = p.n;
    return FNN_OK;
}
