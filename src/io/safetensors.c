/* Reading and writing safetensors files: every header field is checked before any data is used,
 * so a damaged or hostile file fails with a message instead of reading out of bounds. */
#define _POSIX_C_SOURCE 200809L

#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/atomic.h"
#include "util/error.h"
#include "util/input.h"

/* Tensor bytes are copied to and from memory as they lie, which is only right on a
 * little-endian machine with 4-byte IEEE floats. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fnn's safetensors code assumes a little-endian machine"
#endif
_Static_assert(sizeof(float) == 4, "F32 tensors need a 4-byte float");

/* Header integers arrive as JSON doubles, which are exact up to 2^53. */
#define MAX_JSON_INT 9007199254740992.0

static const char META_KEY[] = "__metadata__";

/* ---------------------------------------------------------------- reading */

/* Why v is not a usable size or offset, or NULL when *out received it. */
static const char *json_size(const cJSON *v, size_t *out)
{
    if (!cJSON_IsNumber(v))
        return "is not a number";
    double d = v->valuedouble;
    if (d < 0)
        return "is negative";
    if (d != floor(d))
        return "is not an integer";
    if (d > MAX_JSON_INT || d > (double)SIZE_MAX)
        return "is too large";
    *out = (size_t)d;
    return NULL;
}

/* The product of shape into *size; 0 when the tensor's bytes would not fit in a size_t. */
static int shape_size(int rank, const size_t *shape, size_t *size)
{
    *size = 1;
    for (int i = 0; i < rank; i++)
        if (shape[i] == 0) { /* 0 however large the other dimensions are */
            *size = 0;
            return 1;
        }
    for (int i = 0; i < rank; i++) {
        if (*size > SIZE_MAX / sizeof(float) / shape[i])
            return 0;
        *size *= shape[i];
    }
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key of obj that occurs twice (cJSON keeps duplicates), or NULL. */
static const char *find_duplicate_key(const cJSON *obj, int *nomem)
{
    int n = cJSON_GetArraySize(obj);
    *nomem = 0;
    if (n < 2)
        return NULL;
    const char **keys = malloc((size_t)n * sizeof *keys);
    if (!keys) {
        *nomem = 1;
        return NULL;
    }
    int i = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        keys[i++] = c->string;
    qsort(keys, (size_t)n, sizeof *keys, cmp_str_ptr);
    const char *dup = NULL;
    for (i = 1; i < n && !dup; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            dup = keys[i];
    free(keys);
    return dup;
}

typedef struct {
    size_t begin, end; /* byte offsets in the data section */
    int index;         /* into the tensor array */
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* Checks one tensor entry and fills t (all but name and data) and s. */
static fnn_status parse_tensor(const char *path, const cJSON *e, size_t data_size,
                               fnn_st_tensor *t, span *s, fnn_error *err)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": entry is not a JSON object", path,
                        name);
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        const cJSON **slot = strcmp(f->string, "dtype") == 0          ? &dtype
                             : strcmp(f->string, "shape") == 0        ? &shape
                             : strcmp(f->string, "data_offsets") == 0 ? &offsets
                                                                      : NULL;
        if (!slot)
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": unexpected field \"%s\"",
                            path, name, f->string);
        if (*slot)
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": field \"%s\" appears twice",
                            path, name, f->string);
        *slot = f;
    }
    if (!dtype)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": missing field \"dtype\"", path,
                        name);
    if (!shape)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": missing field \"shape\"", path,
                        name);
    if (!offsets)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": missing field \"data_offsets\"",
                        path, name);

    if (!cJSON_IsString(dtype))
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": dtype is not a string", path,
                        name);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: tensor \"%s\": dtype \"%s\" is not supported (only F32)", path, name,
                        dtype->valuestring);

    if (!cJSON_IsArray(shape))
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": shape is not a list", path, name);
    int rank = cJSON_GetArraySize(shape);
    if (rank > FNN_ST_MAX_RANK)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": rank %d exceeds the limit of %d",
                        path, name, rank, FNN_ST_MAX_RANK);
    t->rank = rank;
    for (int i = 0; i < rank; i++) {
        const char *why = json_size(cJSON_GetArrayItem(shape, i), &t->shape[i]);
        if (why)
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": shape[%d] %s", path, name, i,
                            why);
    }
    size_t size;
    if (!shape_size(t->rank, t->shape, &size))
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": the product of shape overflows",
                        path, name);
    t->size = size;

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets is not a list of two integers", path,
                        name);
    const char *why = json_size(cJSON_GetArrayItem(offsets, 0), &s->begin);
    if (why)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": data_offsets[0] %s", path, name,
                        why);
    why = json_size(cJSON_GetArrayItem(offsets, 1), &s->end);
    if (why)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": data_offsets[1] %s", path, name,
                        why);
    if (s->begin > s->end)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets [%zu, %zu] end before they begin", path,
                        name, s->begin, s->end);
    if (s->end > data_size)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets [%zu, %zu] run past the %zu-byte data "
                        "section",
                        path, name, s->begin, s->end, data_size);
    if (s->end - s->begin != size * sizeof(float))
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets [%zu, %zu] hold %zu bytes but its shape "
                        "needs %zu",
                        path, name, s->begin, s->end, s->end - s->begin, size * sizeof(float));
    return FNN_OK;
}

/* Sorted by offset, the tensors must cover [0, data_size) exactly: an overlap means two tensors
 * share bytes, a gap or a tail means bytes nobody accounts for (often a sign of corruption). */
static fnn_status check_tiling(const char *path, const fnn_st_file *st, span *spans,
                               fnn_error *err)
{
    int n = st->ntensors;
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    size_t cursor = 0;
    for (int i = 0; i < n; i++) {
        const char *name = st->tensors[spans[i].index].name;
        if (spans[i].begin < cursor)
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: tensor \"%s\" [%zu, %zu] overlaps tensor \"%s\" [%zu, %zu]", path,
                            name, spans[i].begin, spans[i].end,
                            st->tensors[spans[i - 1].index].name, spans[i - 1].begin,
                            spans[i - 1].end);
        if (spans[i].begin > cursor) {
            if (i == 0)
                return fnn_fail(err, FNN_ERR_FORMAT,
                                "%s: %zu unused bytes at the start of the data section, before "
                                "tensor \"%s\"",
                                path, spans[i].begin, name);
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: gap of %zu bytes between tensor \"%s\" and tensor \"%s\"", path,
                            spans[i].begin - cursor, st->tensors[spans[i - 1].index].name, name);
        }
        cursor = spans[i].end;
    }
    if (cursor != st->data_size)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: %zu trailing bytes after the last tensor (data section is %zu bytes)",
                        path, st->data_size - cursor, st->data_size);
    return FNN_OK;
}

/* Copies s into the string arena at *at and returns the copy. */
static const char *arena_put(char **at, const char *s)
{
    size_t n = strlen(s) + 1;
    char *dst = *at;
    memcpy(dst, s, n);
    *at += n;
    return dst;
}

/* Validates the parsed header against the data section and fills st (whose data is set). */
static fnn_status parse_header(const char *path, const cJSON *root, fnn_st_file *st,
                               fnn_error *err)
{
    if (!cJSON_IsObject(root))
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: header is not a JSON object", path);
    int nomem;
    const char *dup = find_duplicate_key(root, &nomem);
    if (nomem)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory checking the header", path);
    if (dup)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: header: \"%s\" appears twice", path, dup);

    const cJSON *meta = NULL;
    int ntensors = 0;
    size_t nchars = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, META_KEY) == 0)
            meta = c;
        else
            ntensors++;
        nchars += strlen(c->string) + 1;
    }
    int nmeta = 0;
    if (meta) {
        if (!cJSON_IsObject(meta))
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: %s is not a JSON object", path, META_KEY);
        dup = find_duplicate_key(meta, &nomem);
        if (nomem)
            return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory checking the header", path);
        if (dup)
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: %s: key \"%s\" appears twice", path,
                            META_KEY, dup);
        for (const cJSON *c = meta->child; c; c = c->next) {
            if (!cJSON_IsString(c))
                return fnn_fail(err, FNN_ERR_FORMAT, "%s: %s: value of \"%s\" is not a string",
                                path, META_KEY, c->string);
            nchars += strlen(c->string) + strlen(c->valuestring) + 2;
            nmeta++;
        }
    }

    st->strings = malloc(nchars > 0 ? nchars : 1);
    st->tensors = calloc(ntensors > 0 ? (size_t)ntensors : 1, sizeof *st->tensors);
    st->meta_keys = malloc(nmeta > 0 ? (size_t)nmeta * sizeof(char *) : 1);
    st->meta_values = malloc(nmeta > 0 ? (size_t)nmeta * sizeof(char *) : 1);
    span *spans = malloc(ntensors > 0 ? (size_t)ntensors * sizeof *spans : 1);
    if (!st->strings || !st->tensors || !st->meta_keys || !st->meta_values || !spans) {
        free(spans);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for a %d-tensor header", path,
                        ntensors);
    }
    char *at = st->strings;
    if (meta) {
        for (const cJSON *c = meta->child; c; c = c->next) {
            st->meta_keys[st->nmeta] = arena_put(&at, c->string);
            st->meta_values[st->nmeta] = arena_put(&at, c->valuestring);
            st->nmeta++;
        }
    }
    fnn_status status = FNN_OK;
    for (const cJSON *c = root->child; c && status == FNN_OK; c = c->next) {
        if (c == meta)
            continue;
        fnn_st_tensor *t = &st->tensors[st->ntensors];
        status = parse_tensor(path, c, st->data_size, t, &spans[st->ntensors], err);
        if (status == FNN_OK) {
            t->name = arena_put(&at, c->string);
            spans[st->ntensors].index = st->ntensors;
            st->ntensors++;
        }
    }
    if (status == FNN_OK)
        status = check_tiling(path, st, spans, err);
    if (status == FNN_OK)
        for (int i = 0; i < st->ntensors; i++)
            st->tensors[spans[i].index].data =
                (const float *)((const char *)st->data + spans[i].begin);
    free(spans);
    return status;
}

/* Reads exactly n bytes at the current position, which is offset (for the message). */
static fnn_status read_exact(const char *path, FILE *fp, void *buf, size_t n, size_t offset,
                             const char *what, fnn_error *err)
{
    if (n == 0 || fread(buf, 1, n, fp) == n)
        return FNN_OK;
    if (ferror(fp))
        return fnn_fail(err, FNN_ERR_IO, "%s: read error in the %s at offset %zu: %s", path, what,
                        offset, strerror(errno));
    return fnn_fail(err, FNN_ERR_FORMAT, "%s: file ends inside the %s (%zu bytes from offset %zu)",
                    path, what, n, offset);
}

static fnn_status read_file(const char *path, FILE *fp, fnn_st_file *out, fnn_error *err)
{
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0)
        return fnn_fail(err, FNN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return fnn_fail(err, FNN_ERR_IO, "%s: not a regular file", path);
    uint64_t file_size = (uint64_t)sb.st_size;
    if (file_size < 8)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: file is %llu bytes, too short for the 8-byte header length", path,
                        (unsigned long long)file_size);
    unsigned char len8[8]; /* u64, little-endian */
    fnn_status st = read_exact(path, fp, len8, 8, 0, "header length", err);
    if (st != FNN_OK)
        return st;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | len8[i];
    if (n > FNN_ST_MAX_HEADER)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: header length %llu at offset 0 exceeds the limit of %zu bytes", path,
                        (unsigned long long)n, FNN_ST_MAX_HEADER);
    if (n > file_size - 8)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: header length %llu at offset 0 runs past the end of the %llu-byte "
                        "file",
                        path, (unsigned long long)n, (unsigned long long)file_size);
    if (file_size - 8 - n > SIZE_MAX)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: data section too large for this machine", path);
    size_t hlen = (size_t)n;
    out->data_size = (size_t)(file_size - 8 - n);

    char *header = malloc(hlen + 1);
    /* A separate allocation keeps the floats aligned whatever the header length. */
    out->data = malloc(out->data_size > 0 ? out->data_size : 1);
    if (!header || !out->data) {
        free(header);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for a %llu-byte file", path,
                        (unsigned long long)file_size);
    }
    st = read_exact(path, fp, header, hlen, 8, "header", err);
    if (st == FNN_OK)
        st = read_exact(path, fp, out->data, out->data_size, 8 + hlen, "data section", err);
    if (st != FNN_OK) {
        free(header);
        return st;
    }
    header[hlen] = '\0';
    const char *nul = memchr(header, '\0', hlen);
    if (nul) {
        size_t at = 8 + (size_t)(nul - header);
        free(header);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: NUL byte in the header at offset %zu", path, at);
    }
    /* Requiring the terminator rejects anything but whitespace (the padding) after the JSON. */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(header, &end, 1);
    if (!root) {
        size_t at = 8 + (end ? (size_t)(end - header) : 0);
        free(header);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: header is not valid JSON (error at offset %zu)",
                        path, at);
    }
    st = parse_header(path, root, out, err);
    cJSON_Delete(root);
    free(header);
    return st;
}

fnn_status fnn_st_read(const char *path, fnn_st_file *out, fnn_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *fp;
    fnn_status st = fnn_input_open(path, &fp, NULL, err);
    if (st != FNN_OK)
        return st;
    st = read_file(path, fp, out, err);
    /* Nothing was written, so a failing fclose loses nothing; the read result stands. */
    fclose(fp);
    if (st != FNN_OK)
        fnn_st_free(out);
    return st;
}

void fnn_st_free(fnn_st_file *st)
{
    if (!st)
        return;
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->data);
    free(st->strings);
    memset(st, 0, sizeof *st);
}

const fnn_st_tensor *fnn_st_find(const fnn_st_file *st, const char *name)
{
    for (int i = 0; i < st->ntensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

const char *fnn_st_meta(const fnn_st_file *st, const char *key)
{
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

/* ---------------------------------------------------------------- writing */

/* Checks the writer's arguments, so that whatever it writes, fnn_st_read accepts. */
static fnn_status check_write_args(const char *path, const fnn_st_tensor *tensors, int ntensors,
                                   const char *const *keys, const char *const *values, int nmeta,
                                   fnn_error *err)
{
    if (ntensors < 0 || nmeta < 0)
        return fnn_fail(err, FNN_ERR_ARG, "%s: negative tensor or metadata count", path);
    size_t total = 0; /* bytes, as the header will hold them */
    for (int i = 0; i < ntensors; i++) {
        const fnn_st_tensor *t = &tensors[i];
        if (!t->name || !*t->name || strcmp(t->name, META_KEY) == 0)
            return fnn_fail(err, FNN_ERR_ARG, "%s: tensor %d: name is empty or reserved", path,
                            i);
        if (t->rank < 0 || t->rank > FNN_ST_MAX_RANK)
            return fnn_fail(err, FNN_ERR_ARG, "%s: tensor \"%s\": rank %d is out of range [0, %d]",
                            path, t->name, t->rank, FNN_ST_MAX_RANK);
        size_t size;
        if (!shape_size(t->rank, t->shape, &size) || size != t->size)
            return fnn_fail(err, FNN_ERR_ARG,
                            "%s: tensor \"%s\": size %zu is not the product of its shape", path,
                            t->name, t->size);
        if (t->size > 0 && !t->data)
            return fnn_fail(err, FNN_ERR_ARG, "%s: tensor \"%s\": no data", path, t->name);
        if (size * sizeof(float) > (size_t)MAX_JSON_INT - total)
            return fnn_fail(err, FNN_ERR_ARG, "%s: tensors too large for a header offset", path);
        total += size * sizeof(float);
        for (int j = 0; j < i; j++)
            if (strcmp(tensors[j].name, t->name) == 0)
                return fnn_fail(err, FNN_ERR_ARG, "%s: tensor \"%s\" given twice", path, t->name);
    }
    for (int i = 0; i < nmeta; i++) {
        if (!keys[i] || !values[i])
            return fnn_fail(err, FNN_ERR_ARG, "%s: metadata entry %d is NULL", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(keys[j], keys[i]) == 0)
                return fnn_fail(err, FNN_ERR_ARG, "%s: metadata key \"%s\" given twice", path,
                                keys[i]);
    }
    return FNN_OK;
}

/* The header as unformatted JSON, or NULL when out of memory. */
static char *build_header(const fnn_st_tensor *tensors, int ntensors, const char *const *keys,
                          const char *const *values, int nmeta)
{
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && nmeta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, META_KEY);
        ok = meta != NULL;
        for (int i = 0; ok && i < nmeta; i++)
            ok = cJSON_AddStringToObject(meta, keys[i], values[i]) != NULL;
    }
    size_t offset = 0;
    for (int i = 0; ok && i < ntensors; i++) {
        const fnn_st_tensor *t = &tensors[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = offs && cJSON_AddStringToObject(e, "dtype", "F32");
        for (int d = 0; ok && d < t->rank; d++) {
            cJSON *v = cJSON_CreateNumber((double)t->shape[d]);
            ok = v && cJSON_AddItemToArray(shape, v);
        }
        size_t end = offset + t->size * sizeof(float);
        cJSON *b = ok ? cJSON_CreateNumber((double)offset) : NULL;
        ok = b && cJSON_AddItemToArray(offs, b);
        cJSON *en = ok ? cJSON_CreateNumber((double)end) : NULL;
        ok = en && cJSON_AddItemToArray(offs, en);
        offset = end;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return json;
}

fnn_status fnn_st_write(const char *path, const fnn_st_tensor *tensors, int ntensors,
                        const char *const *meta_keys, const char *const *meta_values, int nmeta,
                        fnn_error *err)
{
    fnn_status st = check_write_args(path, tensors, ntensors, meta_keys, meta_values, nmeta, err);
    if (st != FNN_OK)
        return st;
    char *json = build_header(tensors, ntensors, meta_keys, meta_values, nmeta);
    if (!json)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory building the header", path);
    size_t n = strlen(json);
    /* Pad with spaces so the data section starts 8-byte aligned, as the reference writer does. */
    size_t pad = (8 - n % 8) % 8;
    if (n + pad > FNN_ST_MAX_HEADER) {
        free(json);
        return fnn_fail(err, FNN_ERR_ARG, "%s: header of %zu bytes exceeds the limit of %zu", path,
                        n + pad, FNN_ST_MAX_HEADER);
    }
    unsigned char len8[8]; /* u64, little-endian */
    uint64_t hlen = (uint64_t)(n + pad);
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(hlen >> (8 * i));
    static const char spaces[8] = "        ";

    fnn_atomic_file *f;
    st = fnn_atomic_open(path, &f, err);
    if (st == FNN_OK)
        st = fnn_atomic_write(f, len8, sizeof len8, err);
    if (st == FNN_OK)
        st = fnn_atomic_write(f, json, n, err);
    if (st == FNN_OK)
        st = fnn_atomic_write(f, spaces, pad, err);
    for (int i = 0; i < ntensors && st == FNN_OK; i++)
        st = fnn_atomic_write(f, tensors[i].data, tensors[i].size * sizeof(float), err);
    free(json);
    if (st != FNN_OK) {
        fnn_atomic_abort(f);
        return st;
    }
    return fnn_atomic_commit(f, err);
}
