/* The CSV data source in Kaggle's layout (the Fashion-MNIST and MNIST CSV files): a header
 * line, then label,pixel1,...,pixelN per image, grey values 0-255, plain or gzipped. One pass
 * over the bytes with a hand-written field parser: no strtol, no per-field allocation. */
#define _POSIX_C_SOURCE 200809L

#include "data/source.h"
#include "util/error.h"
#include "util/input.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define CSV_PATH_CAP 4096
/* zlib's input buffer, and the most bytes asked of gzread at once (it takes an unsigned). */
#define CSV_GZ_BUFFER (1u << 20)
#define CSV_CHUNK (16u << 20)
/* Shown of a bad field, at most. */
#define CSV_TOKEN_SHOWN 24

/* The whole file, inflated when gzipped, into *out with a NUL after its *len bytes. */
static fnn_status read_all(const char *path, char **out, size_t *len, fnn_error *err)
{
    int fd;
    struct stat sb;
    fnn_status st = fnn_input_fd(path, &fd, &sb, err);
    if (st != FNN_OK)
        return st;
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory opening the file", path);
    }
    gzbuffer(gz, CSV_GZ_BUFFER);
    size_t cap = (size_t)sb.st_size + 1 > 1024 ? (size_t)sb.st_size + 1 : 1024, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap);
            break;
        }
        if (n + 1 == cap) { /* compressed: grows as bytes arrive */
            char *grown = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = grown;
            cap *= 2;
        }
        size_t want = cap - 1 - n < CSV_CHUNK ? cap - 1 - n : CSV_CHUNK;
        int got = gzread(gz, buf + n, (unsigned)want);
        if (got < 0) {
            int code;
            const char *msg = gzerror(gz, &code);
            st = fnn_fail(err, code == Z_ERRNO ? FNN_ERR_IO : FNN_ERR_FORMAT,
                          "%s: %s after %zu bytes", path,
                          code == Z_ERRNO ? strerror(errno) : msg, n);
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    int code = Z_OK;
    if (st == FNN_OK && buf) {
        gzerror(gz, &code);
        if (code == Z_BUF_ERROR)
            st = fnn_fail(err, FNN_ERR_FORMAT,
                          "%s: compressed data ends early after %zu bytes: the .gz file is "
                          "truncated",
                          path, n);
    }
    gzclose_r(gz);
    if (st != FNN_OK) {
        free(buf);
        return st;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return FNN_OK;
}

/* The field at p as the user wrote it, for a message: up to the next comma or end of line. */
static void token(const char *p, char *out, size_t cap)
{
    size_t i = 0;
    while (p[i] && p[i] != ',' && p[i] != '\n' && p[i] != '\r' && i + 1 < cap)
        out[i] = p[i], i++;
    out[i] = 0;
}

static long fields_in_line(const char *p)
{
    long n = 1;
    for (; *p && *p != '\n'; p++)
        n += *p == ',';
    return n;
}

/* Parses the rows after the header into d (already sized for at most rows images). */
static fnn_status parse_rows(const char *path, const char *p, long pixels, long rows,
                             fnn_dataset *d, fnn_error *err)
{
    long line = 1, n = 0;
    int maxlabel = -1;
    char tok[CSV_TOKEN_SHOWN + 1];
    while (*p) {
        line++;
        if (*p == '\n' || (*p == '\r' && p[1] == '\n')) { /* blank lines are skipped */
            p += *p == '\r' ? 2 : 1;
            continue;
        }
        if (n == rows)
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: line %ld: more rows than lines", path, line);
        const char *start = p;
        unsigned v = 0;
        for (; *p >= '0' && *p <= '9'; p++) /* saturated: any long number is out of range */
            v = v < 1000 ? v * 10 + (unsigned)(*p - '0') : v;
        if (p == start || (*p != ',' && *p != '\n' && *p != '\r' && *p)) {
            token(start, tok, sizeof tok);
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: line %ld, column 1: label \"%s\" is not an integer", path, line,
                            tok);
        }
        if (v >= FNN_MAX_CLASSES)
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: line %ld, column 1: label %.*s is outside 0 to %d (fnn supports "
                            "%d classes)",
                            path, line, (int)(p - start), start, FNN_MAX_CLASSES - 1,
                            FNN_MAX_CLASSES);
        d->labels[n] = (uint8_t)v;
        maxlabel = (int)v > maxlabel ? (int)v : maxlabel;
        uint8_t *img = d->images + (size_t)n * (size_t)pixels;
        for (long j = 0; j < pixels; j++) {
            if (*p != ',')
                return fnn_fail(err, FNN_ERR_FORMAT,
                                "%s: line %ld: %ld fields, expected %ld (a label and %ld pixels, "
                                "as the header has)",
                                path, line, j + 1, pixels + 1, pixels);
            start = ++p;
            v = 0;
            for (; *p >= '0' && *p <= '9'; p++)
                v = v < 1000 ? v * 10 + (unsigned)(*p - '0') : v;
            if (p == start || v > 255 || (*p != ',' && *p != '\n' && *p != '\r' && *p)) {
                token(start, tok, sizeof tok);
                return fnn_fail(err, FNN_ERR_FORMAT,
                                "%s: line %ld, column %ld: \"%s\" is not a pixel value (an "
                                "integer 0 to 255)",
                                path, line, j + 2, tok);
            }
            img[j] = (uint8_t)v;
        }
        if (*p == '\r')
            p++;
        if (*p == ',')
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: line %ld: %ld fields, expected %ld (a label and %ld pixels, as "
                            "the header has)",
                            path, line, pixels + fields_in_line(p), pixels + 1, pixels);
        if (*p && *p != '\n')
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: line %ld: a stray carriage return", path,
                            line);
        if (*p)
            p++;
        n++;
    }
    d->n = (int)n;
    d->nclasses = maxlabel + 1;
    return FNN_OK;
}

/* The split's file: path itself, or its test sibling. */
static fnn_status split_file(const char *path, const char *split, char *file, fnn_error *err)
{
    if (strcmp(split, "train") == 0) {
        snprintf(file, CSV_PATH_CAP, "%s", path);
        return strlen(path) < CSV_PATH_CAP ? FNN_OK
                                           : fnn_fail(err, FNN_ERR_ARG, "%s: path too long", path);
    }
    fnn_status st = fnn_test_sibling(path, "test", file, CSV_PATH_CAP, err);
    if (st == FNN_OK && access(file, F_OK) != 0)
        st = fnn_fail(err, FNN_ERR_IO, "%s: no test split: the file beside it, %s, does not exist",
                      path, file);
    return st;
}

fnn_status fnn_csv_source_load(const char *path, const char *split, const fnn_data_options *o,
                               fnn_dataset *d, fnn_error *err)
{
    char file[CSV_PATH_CAP];
    fnn_status st = split_file(path, split, file, err);
    char *text = NULL;
    size_t len = 0;
    if (st == FNN_OK)
        st = read_all(file, &text, &len, err);
    if (st != FNN_OK)
        return st;
    if (memchr(text, 0, len))
        st = fnn_fail(err, FNN_ERR_FORMAT, "%s: a NUL byte at offset %zu: not a text file", file,
                      (size_t)((char *)memchr(text, 0, len) - text));
    const char *body = st == FNN_OK ? strchr(text, '\n') : NULL;
    if (st == FNN_OK && !body)
        st = fnn_fail(err, FNN_ERR_FORMAT, "%s: no line after the header: the file holds no images",
                      file);
    long pixels = st == FNN_OK ? fields_in_line(text) - 1 : 0;
    if (st == FNN_OK && pixels < 1)
        st = fnn_fail(err, FNN_ERR_FORMAT,
                      "%s: line 1: the header has one field; expected label,pixel1,...,pixelN",
                      file);
    int h = o->h, w = o->w;
    if (st == FNN_OK && h && (long)h * w != pixels)
        st = fnn_fail(err, FNN_ERR_FORMAT, "%s: line 1: %ld pixel columns, not the %dx%d asked for",
                      file, pixels, h, w);
    if (st == FNN_OK && !h) {
        long side = lrint(sqrt((double)pixels));
        if (side * side != pixels)
            st = fnn_fail(err, FNN_ERR_FORMAT,
                          "%s: line 1: %ld pixel columns are not a square image; give the image "
                          "size (fnn: --image-size HxW)",
                          file, pixels);
        h = w = (int)side;
    }
    long rows = 0; /* lines after the header, a last one without its newline included */
    if (st == FNN_OK) {
        const char *end = text + len;
        for (const char *q = body + 1; q < end; rows++) {
            q = memchr(q, '\n', (size_t)(end - q));
            q = q ? q + 1 : end;
        }
    }
    if (st == FNN_OK && rows > INT_MAX / 2)
        st = fnn_fail(err, FNN_ERR_FORMAT, "%s: %ld lines, more than fnn takes", file, rows);
    if (st == FNN_OK) {
        d->c = 1;
        d->h = h;
        d->w = w;
        d->owns = 1;
        d->images = malloc(rows ? (size_t)rows * (size_t)pixels : 1);
        d->labels = malloc(rows ? (size_t)rows : 1);
        if (!d->images || !d->labels)
            st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for %ld images", file, rows);
    }
    if (st == FNN_OK)
        st = parse_rows(file, body + 1, pixels, rows, d, err);
    free(text);
    if (st != FNN_OK) {
        free(d->images);
        free(d->labels);
        memset(d, 0, sizeof *d);
        return st;
    }
    snprintf(d->labels_path, sizeof d->labels_path, "%.*s", (int)sizeof d->labels_path - 1, file);
    return FNN_OK;
}

fnn_status fnn_csv_source_files(const char *path, const char *split, fnn_paths *p,
                                fnn_error *err)
{
    char file[CSV_PATH_CAP];
    fnn_status st = split_file(path, split, file, err);
    return st != FNN_OK ? st : fnn_paths_add(p, file, err);
}
