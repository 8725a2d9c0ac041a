/* Reads IDX files (the MNIST container: big-endian header, then raw bytes), gzipped or plain,
 * into an fnn_dataset, and finds them as a data source: MNIST, KMNIST, EMNIST, Fashion-MNIST.
 * Nothing is allocated from a header before the data backs it up. */
#define _POSIX_C_SOURCE 200809L

#include "data/idx.h"
#include "data/source.h"
#include "util/error.h"
#include "util/input.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
/* Caps on header fields: far above any real image set, low enough that a corrupt header
 * cannot ask for an absurd amount of memory or overflow the size computation. */
#define IDX_MAX_ITEMS 10000000u
#define IDX_MAX_SIDE 4096u
/* gzread handles at most INT_MAX bytes per call; big calls keep the per-call overhead
 * negligible when inflating the 47 MB training set. */
#define IDX_READ_CHUNK (4u << 20)
/* zlib's input buffer; its 8 KiB default costs a read(2) per 8 KiB. */
#define IDX_GZ_BUFFER (1u << 20)
/* First allocation for a compressed file, whose true length is unknown until it is inflated. */
#define IDX_GROW_START (1u << 20)

typedef struct {
    uint32_t dims[3]; /* items, then rows and cols for images */
    uint8_t *data;    /* (dims[0]) for labels, (dims[0], dims[1], dims[2]) for images */
    size_t size;      /* bytes in data */
} idx_array;

static const char *idx_type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "16-bit int";
    case 0x0C: return "32-bit int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    }
    return "not an IDX type";
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Turns the state of a stream that stopped early into a message: a broken or cut-off .gz
 * stream is reported as such rather than as a short IDX file. */
static fnn_status idx_stream_error(gzFile gz, const char *path, size_t offset, fnn_error *err)
{
    int code = Z_OK;
    const char *msg = gzerror(gz, &code);
    if (code == Z_OK)
        return FNN_OK;
    if (code == Z_ERRNO)
        return fnn_fail(err, FNN_ERR_IO, "%s: read error at offset %zu: %s", path, offset,
                        strerror(errno));
    if (code == Z_BUF_ERROR)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: compressed data ends early after %zu uncompressed bytes: the .gz "
                        "file is truncated",
                        path, offset);
    if (code == Z_MEM_ERROR)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory while inflating", path);
    /* zlib prefixes its message with the path, which ours already leads with. */
    size_t plen = strlen(path);
    if (strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
        msg += plen + 2;
    return fnn_fail(err, FNN_ERR_FORMAT,
                    "%s: corrupt compressed data at or before uncompressed offset %zu (zlib: %s)",
                    path, offset, msg);
}

/* Reads up to len bytes into buf, stopping early only at the end of the data; *got says how
 * many arrived. Stream errors fail even when they come after some bytes were delivered. */
static fnn_status idx_read_bytes(gzFile gz, const char *path, uint8_t *buf, size_t len,
                                 size_t offset, size_t *got, fnn_error *err)
{
    size_t done = 0;
    while (done < len) {
        size_t want = len - done < IDX_READ_CHUNK ? len - done : IDX_READ_CHUNK;
        int n = gzread(gz, buf + done, (unsigned)want);
        if (n < 0) {
            fnn_status st = idx_stream_error(gz, path, offset + done, err);
            return st != FNN_OK ? st
                                : fnn_fail(err, FNN_ERR_IO, "%s: read error at offset %zu", path,
                                           offset + done);
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    if (done < len)
        return idx_stream_error(gz, path, offset + done, err);
    return FNN_OK;
}

/* Reads the payload of a stream whose length is unknown in advance, growing the buffer only
 * as bytes arrive so a header that lies about its size cannot force a huge allocation. */
static fnn_status idx_read_growing(gzFile gz, const char *path, size_t expected, size_t offset,
                                   uint8_t **out, size_t *got, fnn_error *err)
{
    size_t cap = expected < IDX_GROW_START ? expected : IDX_GROW_START;
    size_t filled = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
    for (;;) {
        size_t n = 0;
        fnn_status st = idx_read_bytes(gz, path, buf + filled, cap - filled, offset + filled, &n,
                                       err);
        filled += n;
        if (st != FNN_OK) {
            free(buf);
            return st;
        }
        if (filled < cap || cap == expected)
            break;
        size_t next = cap > expected / 2 ? expected : cap * 2;
        uint8_t *grown = realloc(buf, next);
        if (!grown) {
            free(buf);
            return fnn_fail(err, FNN_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, next);
        }
        buf = grown;
        cap = next;
    }
    *out = buf;
    *got = filled;
    return FNN_OK;
}

/* Checks the magic number: 0x00 0x00, the data type, the number of dimensions. */
static fnn_status idx_check_magic(const char *path, const uint8_t *m, int ndims, fnn_error *err)
{
    uint32_t want = (uint32_t)IDX_TYPE_UBYTE << 8 | (uint32_t)ndims;
    const char *kind = ndims == 3 ? "images" : "labels";
    if (m[0] != 0 || m[1] != 0)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: bad magic number 0x%08x at offset 0, expected 0x%08x (IDX %s): not "
                        "an IDX file",
                        path, be32(m), want, kind);
    if (m[2] != IDX_TYPE_UBYTE)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: data type byte 0x%02x (%s) at offset 2, expected 0x%02x (unsigned "
                        "byte)",
                        path, m[2], idx_type_name(m[2]), IDX_TYPE_UBYTE);
    if (m[3] != ndims)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: magic number 0x%08x declares %d dimensions, expected 0x%08x (IDX %s, "
                        "%d dimension%s)",
                        path, be32(m), m[3], want, kind, ndims, ndims == 1 ? "" : "s");
    return FNN_OK;
}

/* Checks each dimension against its cap and returns the payload size in *bytes. */
static fnn_status idx_check_dims(const char *path, const uint32_t *dims, int ndims, size_t *bytes,
                                 fnn_error *err)
{
    static const char *const names[3] = {"item count", "row count", "column count"};
    size_t total = 1;
    for (int i = 0; i < ndims; i++) {
        uint32_t cap = i == 0 ? IDX_MAX_ITEMS : IDX_MAX_SIDE;
        if (dims[i] == 0 || dims[i] > cap)
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: %s %u at offset %d is out of range (1 to %u)", path, names[i],
                            dims[i], 4 + 4 * i, cap);
        if (total > SIZE_MAX / dims[i])
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: dimensions overflow the size of memory",
                            path);
        total *= dims[i];
    }
    *bytes = total;
    return FNN_OK;
}

/* The payload length of a plain file of file_size bytes, or -1 when it cannot be known in
 * advance (compressed data). */
static long long idx_plain_payload(gzFile gz, long long file_size, size_t header)
{
    return gzdirect(gz) ? file_size - (long long)header : -1;
}

static fnn_status idx_read_open(gzFile gz, const char *path, long long file_size, int ndims,
                                idx_array *out, fnn_error *err)
{
    const char *what = ndims == 3 ? "images" : "labels";
    size_t header = 4 + 4 * (size_t)ndims;
    uint8_t head[16];
    size_t got = 0;
    fnn_status st = idx_read_bytes(gz, path, head, 4, 0, &got, err);
    if (st != FNN_OK)
        return st;
    if (got < 4)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: %zu bytes long, too short for an IDX header (%zu bytes)", path, got,
                        header);
    st = idx_check_magic(path, head, ndims, err);
    if (st != FNN_OK)
        return st;
    st = idx_read_bytes(gz, path, head + 4, header - 4, 4, &got, err);
    if (st != FNN_OK)
        return st;
    if (got < header - 4)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: %zu bytes long, too short for an IDX %s header (%zu bytes)", path,
                        4 + got, what, header);
    for (int i = 0; i < ndims; i++)
        out->dims[i] = be32(head + 4 + 4 * i);
    size_t expected = 0;
    st = idx_check_dims(path, out->dims, ndims, &expected, err);
    if (st != FNN_OK)
        return st;

    long long present = idx_plain_payload(gz, file_size, header);
    if (present >= 0 && (unsigned long long)present < expected)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: truncated: the header declares %u %s (%zu bytes after the %zu-byte "
                        "header) but only %lld bytes are present",
                        path, out->dims[0], what, expected, header, present);
    if (present >= 0 && (unsigned long long)present > expected)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: %llu bytes of trailing data at offset %zu, after the %u %s the header "
                        "declares: the header's count is wrong or the file is corrupt",
                        path, (unsigned long long)present - expected, header + expected,
                        out->dims[0], what);

    uint8_t *data = NULL;
    if (present >= 0) {
        data = malloc(expected);
        if (!data)
            return fnn_fail(err, FNN_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, expected);
        st = idx_read_bytes(gz, path, data, expected, header, &got, err);
    } else {
        st = idx_read_growing(gz, path, expected, header, &data, &got, err);
    }
    if (st != FNN_OK) {
        free(data);
        return st;
    }
    if (got < expected) {
        free(data);
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: truncated: the header declares %u %s (%zu bytes after the %zu-byte "
                        "header) but only %zu bytes are present",
                        path, out->dims[0], what, expected, header, got);
    }
    /* A file that changed since stat, or a compressed one, may still hold more. */
    uint8_t extra;
    st = idx_read_bytes(gz, path, &extra, 1, header + expected, &got, err);
    if (st == FNN_OK && got != 0)
        st = fnn_fail(err, FNN_ERR_FORMAT,
                      "%s: trailing data at offset %zu, after the %u %s the header declares: the "
                      "header's count is wrong or the file is corrupt",
                      path, header + expected, out->dims[0], what);
    if (st != FNN_OK) {
        free(data);
        return st;
    }
    out->data = data;
    out->size = expected;
    return FNN_OK;
}

/* Reads one IDX file of unsigned bytes with ndims dimensions (3: images, 1: labels). */
static fnn_status idx_read(const char *path, int ndims, idx_array *out, fnn_error *err)
{
    memset(out, 0, sizeof *out);
    int fd;
    struct stat sb;
    fnn_status st = fnn_input_fd(path, &fd, &sb, err);
    if (st != FNN_OK)
        return errno == ENOENT ? fnn_fail(err, FNN_ERR_IO, "%s: no such file; " FNN_DATA_HINT, path)
                               : st;
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory opening the file", path);
    }
    if (gzbuffer(gz, IDX_GZ_BUFFER) != 0)
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot set the read buffer size", path);
    if (st == FNN_OK)
        st = idx_read_open(gz, path, (long long)sb.st_size, ndims, out, err);
    int rc = gzclose_r(gz);
    if (st == FNN_OK && rc != Z_OK)
        st = fnn_fail(err, FNN_ERR_IO, "%s: error closing the file (zlib code %d)", path, rc);
    if (st != FNN_OK) {
        free(out->data);
        out->data = NULL;
    }
    return st;
}

fnn_status fnn_idx_load(const char *images_path, const char *labels_path, fnn_dataset *out,
                        fnn_error *err)
{
    if (!images_path || !labels_path || !out)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_idx_load: NULL path or output");
    memset(out, 0, sizeof *out);
    idx_array im, lb;
    fnn_status st = idx_read(images_path, 3, &im, err);
    if (st != FNN_OK)
        return st;
    st = idx_read(labels_path, 1, &lb, err);
    if (st != FNN_OK) {
        free(im.data);
        return st;
    }
    if (im.dims[0] != lb.dims[0]) {
        free(im.data);
        free(lb.data);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s holds %u images but %s holds %u labels",
                        images_path, im.dims[0], labels_path, lb.dims[0]);
    }
    int maxlabel = 0;
    for (size_t i = 0; i < lb.size; i++)
        if (lb.data[i] > maxlabel)
            maxlabel = lb.data[i];
    out->n = (int)im.dims[0];
    out->c = 1;
    out->h = (int)im.dims[1];
    out->w = (int)im.dims[2];
    out->images = im.data;
    out->labels = lb.data;
    /* The data's own count: a model's class count comes from its spec, not from here. */
    out->nclasses = maxlabel + 1;
    out->owns = 1;
    snprintf(out->labels_path, sizeof out->labels_path, "%s", labels_path);
    return FNN_OK;
}

/* ---------------------------------------------------------------- the IDX data source */

#define IDX_PATH_CAP 4096

/* The spellings of an IDX file's tail, in the order find_file in dataset.c prefers them: the
 * original site's, then some mirrors', each plain before gzipped. */
static const char *const idx_tails[4] = {"-idx%d-ubyte", "-idx%d-ubyte.gz", ".idx%d-ubyte",
                                         ".idx%d-ubyte.gz"};

/* Whether name is "[PREFIX-]<word>-<kind><tail>" for one of the split's words; *prefix_len
 * receives the length of "PREFIX-" and *spelling the tail's index. */
static int idx_name_match(const char *name, const char *split, const char *kind, int dims,
                          size_t *prefix_len, int *spelling)
{
    static const char *const train_words[] = {"train", NULL};
    static const char *const test_words[] = {"t10k", "test", NULL};
    const char *const *words = strcmp(split, "train") == 0 ? train_words : test_words;
    size_t len = strlen(name);
    for (int t = 0; t < 4; t++) {
        char tail[32];
        snprintf(tail, sizeof tail, idx_tails[t], dims);
        size_t tl = strlen(tail);
        if (len < tl || strcmp(name + len - tl, tail) != 0)
            continue;
        for (int w = 0; words[w]; w++) {
            char stem[32];
            int sl = snprintf(stem, sizeof stem, "%s-%s", words[w], kind);
            size_t end = len - tl;
            if ((size_t)sl > end || strncmp(name + end - sl, stem, (size_t)sl) != 0)
                continue;
            size_t pre = end - (size_t)sl;
            if (pre == 0 || name[pre - 1] == '-') {
                *prefix_len = pre;
                *spelling = t;
                return 1;
            }
        }
    }
    return 0;
}

static int idx_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir, sorted, into p (names only). */
static fnn_status idx_list(const char *dir, fnn_paths *p, fnn_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return fnn_fail(err, FNN_ERR_IO, "%s: cannot open the directory: %s", dir,
                        strerror(errno));
    fnn_status st = FNN_OK;
    struct dirent *e;
    while (st == FNN_OK && (e = readdir(d)))
        if (e->d_name[0] != '.')
            st = fnn_paths_add(p, e->d_name, err);
    closedir(d);
    if (st == FNN_OK)
        qsort(p->v, (size_t)p->n, sizeof *p->v, idx_strcmp);
    return st;
}

/* Finds the split's images file in dir: the preferred spelling of the one set there; several
 * sets (EMNIST's balanced, letters, ...) are ambiguous and named. */
static fnn_status idx_find_images(const char *dir, const char *split, char *images,
                                  fnn_error *err)
{
    fnn_paths names = {0};
    fnn_status st = idx_list(dir, &names, err);
    int best = -1, best_spelling = 4;
    size_t best_prefix = 0;
    for (int i = 0; st == FNN_OK && i < names.n; i++) {
        size_t pre;
        int sp;
        if (!idx_name_match(names.v[i], split, "images", 3, &pre, &sp))
            continue;
        if (best >= 0 && (pre != best_prefix || strncmp(names.v[i], names.v[best], pre) != 0))
            st = fnn_fail(err, FNN_ERR_FORMAT,
                          "%s: several IDX sets for the %s split (%s and %s): pass the images "
                          "file of the one to read",
                          dir, split, names.v[best], names.v[i]);
        else if (sp < best_spelling) {
            best = i;
            best_spelling = sp;
            best_prefix = pre;
        }
    }
    if (st == FNN_OK && best < 0)
        st = fnn_fail(err, FNN_ERR_IO,
                      "%s: no IDX images for the %s split (looked for %s-images-idx3-ubyte, "
                      "with a PREFIX- and .gz, or spelled .idx3-ubyte); " FNN_DATA_HINT,
                      dir, split, strcmp(split, "train") == 0 ? "train" : "t10k or test");
    if (st == FNN_OK)
        st = fnn_path_join(images, IDX_PATH_CAP, dir, names.v[best], err);
    fnn_paths_free(&names);
    return st;
}

/* The labels file that goes with an images file: "images" and idx3 become "labels" and idx1;
 * the first spelling (with or without .gz, - or .) that exists. */
static fnn_status idx_labels_for(const char *images, char *labels, fnn_error *err)
{
    const char *base = strrchr(images, '/');
    base = base ? base + 1 : images;
    const char *at = NULL;
    for (const char *p = strstr(base, "images"); p; p = strstr(p + 1, "images"))
        at = p;
    const char *tail = at ? strstr(at, "idx3-ubyte") : NULL;
    if (!at || !tail || tail <= at + 6)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: cannot tell its labels file: an IDX images file's name holds "
                        "\"images\" and \"idx3-ubyte\" (train-images-idx3-ubyte)",
                        images);
    char first[IDX_PATH_CAP];
    first[0] = 0;
    for (int t = 0; t < 4; t++) {
        char tl[32];
        snprintf(tl, sizeof tl, idx_tails[t], 1);
        int n = snprintf(labels, IDX_PATH_CAP, "%.*slabels%.*s%s", (int)(at - images), images,
                         (int)(tail - 1 - (at + 6)), at + 6, tl);
        if (n < 0 || n >= IDX_PATH_CAP)
            return fnn_fail(err, FNN_ERR_ARG, "%s: path too long", images);
        if (!first[0])
            memcpy(first, labels, (size_t)n + 1);
        if (access(labels, F_OK) == 0)
            return FNN_OK;
    }
    return fnn_fail(err, FNN_ERR_IO, "%s: no such file (nor with .gz, nor spelled .idx1-ubyte): "
                    "the labels of %s", first, images);
}

/* The split's images file of path (a directory, or an images file and its test sibling). */
static fnn_status idx_images_path(const char *path, const char *split, char *images,
                                  fnn_error *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return idx_find_images(path, split, images, err);
    if (strcmp(split, "train") == 0) {
        int n = snprintf(images, IDX_PATH_CAP, "%s", path);
        return n < 0 || n >= IDX_PATH_CAP ? fnn_fail(err, FNN_ERR_ARG, "%s: path too long", path)
                                          : FNN_OK;
    }
    fnn_status st = fnn_test_sibling(path, "t10k", images, IDX_PATH_CAP, err);
    if (st == FNN_OK && access(images, F_OK) != 0)
        st = fnn_test_sibling(path, "test", images, IDX_PATH_CAP, err);
    if (st == FNN_OK && access(images, F_OK) != 0)
        st = fnn_fail(err, FNN_ERR_IO, "%s: no test split beside it (no t10k or test file of "
                      "that name)", path);
    return st;
}

int fnn_idx_dir_detect(const char *dir)
{
    fnn_paths names = {0};
    int found = 0;
    if (idx_list(dir, &names, NULL) == FNN_OK)
        for (int i = 0; i < names.n && !found; i++) {
            size_t pre;
            int sp;
            found = idx_name_match(names.v[i], "train", "images", 3, &pre, &sp) ||
                    idx_name_match(names.v[i], "test", "images", 3, &pre, &sp);
        }
    fnn_paths_free(&names);
    return found;
}

fnn_status fnn_idx_source_load(const char *path, const char *split, fnn_dataset *d,
                               fnn_error *err)
{
    char images[IDX_PATH_CAP], labels[IDX_PATH_CAP];
    fnn_status st = idx_images_path(path, split, images, err);
    if (st == FNN_OK)
        st = idx_labels_for(images, labels, err);
    return st != FNN_OK ? st : fnn_idx_load(images, labels, d, err);
}

fnn_status fnn_idx_source_files(const char *path, const char *split, fnn_paths *p,
                                fnn_error *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        /* Every IDX file of the split there, each spelling and set: the ones not read are the
         * user's too. */
        fnn_paths names = {0};
        fnn_status st = idx_list(path, &names, err);
        for (int i = 0; st == FNN_OK && i < names.n; i++) {
            size_t pre;
            int sp;
            char full[IDX_PATH_CAP];
            if (!idx_name_match(names.v[i], split, "images", 3, &pre, &sp) &&
                !idx_name_match(names.v[i], split, "labels", 1, &pre, &sp))
                continue;
            st = fnn_path_join(full, sizeof full, path, names.v[i], err);
            if (st == FNN_OK)
                st = fnn_paths_add(p, full, err);
        }
        fnn_paths_free(&names);
        return st;
    }
    char images[IDX_PATH_CAP], labels[IDX_PATH_CAP];
    fnn_status st = idx_images_path(path, split, images, err);
    if (st == FNN_OK)
        st = fnn_paths_add(p, images, err);
    if (st == FNN_OK && idx_labels_for(images, labels, NULL) == FNN_OK)
        st = fnn_paths_add(p, labels, err);
    return st;
}
