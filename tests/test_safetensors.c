/* Tests for src/io/safetensors.c and src/util/atomic.c: round trips, the on-disk layout, one
 * malformed file per validation rule, and atomic writes that fail without touching the target. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fnn.h"
#include "io/safetensors.h"
#include "util/atomic.h"
#include "check.h"

/* ---------------------------------------------------------------- helpers */

/* "$FNN_TMP/test_st_<name>", so files never collide with other test programs'. */
static const char *tmp_path(const char *name)
{
    static char buf[8][1024];
    static int next;
    const char *dir = getenv("FNN_TMP");
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/test_st_%s", dir && *dir ? dir : "/tmp", name);
    return p;
}

static void write_bytes(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The whole file, malloc'd; *len receives its size. */
static unsigned char *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    assert_int_equal(fclose(f), 0);
    *len = (size_t)n;
    return b;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A file with the given header length field, header text and data_len bytes of data. */
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t header_len,
                      size_t data_len)
{
    size_t total = 8 + header_len + data_len;
    unsigned char *b = calloc(total, 1);
    assert_non_null(b);
    put_le64(b, hlen);
    memcpy(b + 8, header, header_len);
    for (size_t i = 0; i < data_len; i++)
        b[8 + header_len + i] = (unsigned char)(i * 7 + 1);
    write_bytes(path, b, total);
    free(b);
}

/* Reading path must fail with status, a message naming the file and containing part, and leave
 * the output empty. */
static void expect_read_failure(const char *path, fnn_status status, const char *part)
{
    fnn_st_file st;
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_st_read(path, &st, &err), status);
    assert_int_equal(err.status, status);
    assert_msg_has(&err, path);
    assert_msg_has(&err, part);
    assert_int_equal(st.ntensors, 0);
    assert_null(st.tensors);
    assert_null(st.data);
    fnn_st_free(&st);
}

/* Number of "<base>.tmp.*" files beside path: temporary files left behind. */
static int count_temps(const char *path)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    assert_non_null(slash);
    *slash = '\0';
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    assert_int_equal(closedir(d), 0);
    return n;
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip(void **state)
{
    (void)state;
    float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f}; /* (2, 3) */
    float b[4] = {10, 20, 30, 40};                         /* (4) */
    float s[1] = {-7.5f};                                  /* () */
    float c[24];                                           /* (2, 1, 3, 4) */
    for (int i = 0; i < 24; i++)
        c[i] = (float)i / 3.0f;
    fnn_st_tensor in[5] = {
        {.name = "layers.1.kernel", .rank = 2, .shape = {2, 3}, .size = 6, .data = a},
        {.name = "b", .rank = 1, .shape = {4}, .size = 4, .data = b},
        {.name = "scalar", .rank = 0, .size = 1, .data = s},
        {.name = "empty", .rank = 2, .shape = {0, 5}, .size = 0, .data = NULL},
        {.name = "quote\"d \xc3\xa9", .rank = 4, .shape = {2, 1, 3, 4}, .size = 24, .data = c},
    };
    const char *keys[] = {"format", "list", "odd"};
    const char *values[] = {"fnn", "[\"a\", \"b\"]", "line\nbreak \"quoted\" \\ \xe2\x9c\x93"};
    const char *path = tmp_path("round_trip.safetensors");
    fnn_error err = {FNN_OK, ""};
    int stale = count_temps(path); /* left by an earlier run that crashed, if any */
    assert_int_equal(fnn_st_write(path, in, 5, keys, values, 3, &err), FNN_OK);
    assert_int_equal(count_temps(path), stale);

    fnn_st_file st;
    assert_int_equal(fnn_st_read(path, &st, &err), FNN_OK);
    assert_int_equal(st.ntensors, 5);
    for (int i = 0; i < 5; i++) {
        const fnn_st_tensor *t = &st.tensors[i]; /* header order is write order */
        assert_string_equal(t->name, in[i].name);
        assert_int_equal(t->rank, in[i].rank);
        for (int d = 0; d < t->rank; d++)
            assert_int_equal(t->shape[d], in[i].shape[d]);
        assert_int_equal(t->size, in[i].size);
        assert_true((uintptr_t)t->data % sizeof(float) == 0);
        if (t->size > 0)
            assert_memory_equal(t->data, in[i].data, t->size * sizeof(float));
        assert_ptr_equal(fnn_st_find(&st, in[i].name), t);
    }
    assert_null(fnn_st_find(&st, "missing"));
    assert_null(fnn_st_find(&st, "__metadata__"));
    assert_int_equal(st.nmeta, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(fnn_st_meta(&st, keys[i]), values[i]);
    assert_null(fnn_st_meta(&st, "absent"));
    assert_int_equal(st.data_size, (6 + 4 + 1 + 0 + 24) * sizeof(float));
    fnn_st_free(&st);
    fnn_st_free(&st); /* freeing twice is harmless: the first call empties it */
}

/* The data section starts at a multiple of 8 whatever the header's natural length, the padding
 * is spaces, and the tensors follow each other in the order given. */
static void test_layout(void **state)
{
    (void)state;
    float v[3] = {1, 2, 3};
    float w[2] = {4, 5};
    char name[16];
    for (int len = 1; len <= 8; len++) {
        memset(name, 'x', (size_t)len);
        name[len] = '\0';
        fnn_st_tensor in[2] = {
            {.name = name, .rank = 1, .shape = {3}, .size = 3, .data = v},
            {.name = "w", .rank = 2, .shape = {1, 2}, .size = 2, .data = w},
        };
        const char *path = tmp_path("layout.safetensors");
        fnn_error err = {FNN_OK, ""};
        assert_int_equal(fnn_st_write(path, in, 2, NULL, NULL, 0, &err), FNN_OK);
        size_t len_b;
        unsigned char *b = read_bytes(path, &len_b);
        uint64_t n = get_le64(b);
        assert_int_equal((8 + n) % 8, 0);
        assert_int_equal(len_b, 8 + n + sizeof v + sizeof w);
        assert_int_equal(b[8], '{');
        size_t close = (size_t)n + 7;
        while (b[close] == ' ')
            close--;
        assert_int_equal(b[close], '}');
        assert_true(8 + (size_t)n - close - 1 < 8); /* no more padding than needed */
        assert_memory_equal(b + 8 + n, v, sizeof v);
        assert_memory_equal(b + 8 + n + sizeof v, w, sizeof w);
        assert_null(strstr((const char *)b + 8, "__metadata__")); /* omitted when empty */
        free(b);
    }
}

/* Files from other writers may leave the data section unaligned; the floats must still be
 * aligned in memory. A header without metadata and with no tensors is valid too. */
static void test_unpadded_and_empty(void **state)
{
    (void)state;
    const char *path = tmp_path("unpadded.safetensors");
    const char *h = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    assert_true((8 + strlen(h)) % 4 != 0);
    write_raw(path, strlen(h), h, strlen(h), 8);
    fnn_st_file st;
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_st_read(path, &st, &err), FNN_OK);
    assert_int_equal(st.ntensors, 1);
    assert_int_equal(st.nmeta, 0);
    assert_true((uintptr_t)st.tensors[0].data % sizeof(float) == 0);
    const unsigned char want[8] = {1, 8, 15, 22, 29, 36, 43, 50};
    assert_memory_equal(st.tensors[0].data, want, 8);
    fnn_st_free(&st);

    write_raw(path, 2, "{}", 2, 0);
    assert_int_equal(fnn_st_read(path, &st, &err), FNN_OK);
    assert_int_equal(st.ntensors, 0);
    assert_int_equal(st.data_size, 0);
    fnn_st_free(&st);
}

/* The fixture was written by Python's safetensors, so it checks interoperability. */
static void test_reads_python_fixture(void **state)
{
    (void)state;
    fnn_st_file st;
    fnn_error err = {FNN_OK, ""};
    const char *path = FNN_FIXTURES "/mlp_parity.safetensors";
    assert_int_equal(fnn_st_read(path, &st, &err), FNN_OK);
    const fnn_st_tensor *x = fnn_st_find(&st, "x");
    assert_non_null(x);
    assert_int_equal(x->rank, 4);
    assert_int_equal(x->shape[0], 7);
    assert_int_equal(x->size, 7 * 36);
    for (size_t i = 0; i < x->size; i++)
        assert_true(x->data[i] >= 0.0f && x->data[i] < 1.0f);
    assert_string_equal(fnn_st_meta(&st, "input_shape"), "[1, 6, 6]");
    fnn_st_free(&st);
}

/* ---------------------------------------------------------------- malformed files */

typedef struct {
    const char *header;
    size_t data_len;
    const char *message; /* a part the error message must contain */
} bad_header;

#define T32(name, shape, b, e) \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static const bad_header BAD_HEADERS[] = {
    {"{\"a\": ", 0, "not valid JSON"},
    {"{} x", 0, "not valid JSON"}, /* only whitespace may follow the JSON */
    {"[1, 2]", 0, "not a JSON object"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "value of \"k\" is not a string"},
    {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "key \"k\" appears twice"},
    {"{\"__metadata__\":[\"k\"]}", 0, "__metadata__ is not a JSON object"},
    {"{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
     "tensor \"w\": dtype \"F16\" is not supported"},
    {"{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype is not a string"},
    {"{" T32("w", "[3]", 0, 8) "}", 8, "tensor \"w\": data_offsets [0, 8] hold 8 bytes but its "
                                       "shape needs 12"},
    {"{" T32("w", "[2]", 0, 8) "}", 4, "tensor \"w\": data_offsets [0, 8] run past the 4-byte"},
    {"{" T32("w", "[2]", 8, 0) "}", 8, "end before they begin"},
    {"{" T32("a", "[2]", 0, 8) "," T32("b", "[2]", 4, 12) "}", 12,
     "tensor \"b\" [4, 12] overlaps tensor \"a\" [0, 8]"},
    {"{" T32("a", "[1]", 0, 4) "," T32("b", "[1]", 8, 12) "}", 12,
     "gap of 4 bytes between tensor \"a\" and tensor \"b\""},
    {"{" T32("a", "[1]", 4, 8) "}", 8, "4 unused bytes at the start of the data section"},
    {"{" T32("a", "[1]", 0, 4) "}", 8, "4 trailing bytes after the last tensor"},
    {"{}", 4, "4 trailing bytes"},
    {"{" T32("a", "[1]", 0, 4) "," T32("a", "[1]", 4, 8) "}", 8, "\"a\" appears twice"},
    {"{" T32("w", "[-1]", 0, 4) "}", 4, "tensor \"w\": shape[0] is negative"},
    {"{" T32("w", "[1.5]", 0, 4) "}", 4, "tensor \"w\": shape[0] is not an integer"},
    {"{" T32("w", "[\"2\"]", 0, 8) "}", 8, "tensor \"w\": shape[0] is not a number"},
    {"{" T32("w", "[1e300]", 0, 8) "}", 8, "tensor \"w\": shape[0] is too large"},
    {"{" T32("w", "[4294967296,4294967296]", 0, 8) "}", 8, "product of shape overflows"},
    {"{" T32("w", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4, "rank 9 exceeds the limit of 8"},
    {"{" T32("w", "2", 0, 8) "}", 8, "tensor \"w\": shape is not a list"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor \"w\": missing field \"data_offsets\""},
    {"{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing field \"dtype\""},
    {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing field \"shape\""},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
     "tensor \"w\": unexpected field \"x\""},
    {"{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     "field \"dtype\" appears twice"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
     "data_offsets is not a list of two integers"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8,
     "data_offsets[1] is negative"},
    {"{\"w\":[1]}", 0, "tensor \"w\": entry is not a JSON object"},
};

static void test_malformed_headers(void **state)
{
    (void)state;
    const char *path = tmp_path("bad.safetensors");
    for (size_t i = 0; i < sizeof BAD_HEADERS / sizeof BAD_HEADERS[0]; i++) {
        const bad_header *c = &BAD_HEADERS[i];
        size_t n = strlen(c->header);
        write_raw(path, n, c->header, n, c->data_len);
        print_message("case %zu: %s\n", i, c->message);
        expect_read_failure(path, FNN_ERR_FORMAT, c->message);
    }
}

static void test_malformed_framing(void **state)
{
    (void)state;
    const char *path = tmp_path("framing.safetensors");
    write_bytes(path, "\x02\x00\x00\x00\x00", 5);
    expect_read_failure(path, FNN_ERR_FORMAT, "5 bytes, too short");
    write_bytes(path, "", 0);
    expect_read_failure(path, FNN_ERR_FORMAT, "0 bytes, too short");

    write_raw(path, 100, "{}", 2, 0);
    expect_read_failure(path, FNN_ERR_FORMAT, "header length 100 at offset 0 runs past the end");
    write_raw(path, (uint64_t)1 << 60, "{}", 2, 0);
    expect_read_failure(path, FNN_ERR_FORMAT, "header length 1152921504606846976 at offset 0 "
                                              "exceeds the limit");
    write_raw(path, UINT64_MAX, "{}", 2, 0);
    expect_read_failure(path, FNN_ERR_FORMAT, "exceeds the limit");

    write_raw(path, 4, "{}\0 ", 4, 0);
    expect_read_failure(path, FNN_ERR_FORMAT, "NUL byte in the header at offset 10");

    expect_read_failure(tmp_path("does_not_exist.safetensors"), FNN_ERR_IO, "cannot open");
    const char *dir = tmp_path("a_directory");
    assert_true(mkdir(dir, 0777) == 0 || errno == EEXIST);
    expect_read_failure(dir, FNN_ERR_IO, "not a regular file");
}

/* Cutting a valid file anywhere must be detected: in the length, the header or the data. */
static void test_truncated_copies(void **state)
{
    (void)state;
    float v[16];
    for (int i = 0; i < 16; i++)
        v[i] = (float)i;
    fnn_st_tensor in[2] = {
        {.name = "v", .rank = 2, .shape = {2, 4}, .size = 8, .data = v},
        {.name = "w", .rank = 1, .shape = {8}, .size = 8, .data = v + 8},
    };
    const char *keys[] = {"k"};
    const char *values[] = {"v"};
    const char *path = tmp_path("full.safetensors");
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_st_write(path, in, 2, keys, values, 1, &err), FNN_OK);
    size_t len;
    unsigned char *b = read_bytes(path, &len);
    const char *cut = tmp_path("cut.safetensors");
    for (size_t n = 0; n < len; n++) {
        write_bytes(cut, b, n);
        fnn_st_file st;
        fnn_status s = fnn_st_read(cut, &st, &err);
        if (s != FNN_ERR_FORMAT)
            fail_msg("a copy cut to %zu of %zu bytes gave status %d", n, len, (int)s);
        assert_msg_has(&err, cut);
    }
    free(b);
}

/* ---------------------------------------------------------------- writer arguments */

static void test_writer_rejects_bad_arguments(void **state)
{
    (void)state;
    float v[2] = {1, 2};
    const char *path = tmp_path("bad_args.safetensors");
    fnn_error err = {FNN_OK, ""};
    fnn_st_tensor dup[2] = {
        {.name = "a", .rank = 1, .shape = {2}, .size = 2, .data = v},
        {.name = "a", .rank = 1, .shape = {2}, .size = 2, .data = v},
    };
    assert_int_equal(fnn_st_write(path, dup, 2, NULL, NULL, 0, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "tensor \"a\" given twice");

    fnn_st_tensor wrong_size = {.name = "a", .rank = 1, .shape = {3}, .size = 2, .data = v};
    assert_int_equal(fnn_st_write(path, &wrong_size, 1, NULL, NULL, 0, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "size 2 is not the product of its shape");

    fnn_st_tensor reserved = {.name = "__metadata__", .rank = 1, .shape = {2}, .size = 2,
                              .data = v};
    assert_int_equal(fnn_st_write(path, &reserved, 1, NULL, NULL, 0, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "reserved");

    fnn_st_tensor deep = {.name = "a", .rank = 9, .size = 1, .data = v};
    assert_int_equal(fnn_st_write(path, &deep, 1, NULL, NULL, 0, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "rank 9");

    const char *keys[] = {"k", "k"};
    const char *values[] = {"1", "2"};
    assert_int_equal(fnn_st_write(path, NULL, 0, keys, values, 2, &err), FNN_ERR_ARG);
    assert_msg_has(&err, "metadata key \"k\" given twice");
}

/* ---------------------------------------------------------------- atomic writes */

static void assert_file_is(const char *path, const void *want, size_t want_len)
{
    size_t len;
    unsigned char *b = read_bytes(path, &len);
    assert_int_equal(len, want_len);
    assert_memory_equal(b, want, want_len);
    free(b);
}

static void test_atomic_write_replaces(void **state)
{
    (void)state;
    const char *path = tmp_path("atomic.txt");
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_write_atomic(path, "first version", 13, &err), FNN_OK);
    assert_file_is(path, "first version", 13);
    assert_int_equal(fnn_write_atomic(path, "second", 6, &err), FNN_OK);
    assert_file_is(path, "second", 6);
    assert_int_equal(fnn_write_atomic(path, NULL, 0, &err), FNN_OK);
    assert_file_is(path, "", 0);

    /* A streamed file, larger than any stdio buffer, in many pieces. */
    fnn_atomic_file *f;
    int stale = count_temps(path);
    assert_int_equal(fnn_atomic_open(path, &f, &err), FNN_OK);
    assert_int_equal(count_temps(path), stale + 1);
    size_t total = 0;
    for (int i = 0; i < 20000; i++) {
        assert_int_equal(fnn_atomic_printf(f, &err, "%d,%.3f\n", i, i * 0.5), FNN_OK);
        total += (size_t)snprintf(NULL, 0, "%d,%.3f\n", i, i * 0.5);
    }
    assert_int_equal(fnn_atomic_write(f, "end\n", 4, &err), FNN_OK);
    assert_file_is(path, "", 0); /* nothing visible before the commit */
    assert_int_equal(fnn_atomic_commit(f, &err), FNN_OK);
    assert_int_equal(count_temps(path), stale);
    size_t len;
    unsigned char *b = read_bytes(path, &len);
    assert_int_equal(len, total + 4);
    assert_memory_equal(b, "0,0.000\n1,0.500\n", 16);
    assert_memory_equal(b + len - 4, "end\n", 4);
    free(b);

    /* A new file gets the usual permissions, not mkstemp's 0600. */
    mode_t old = umask(022);
    const char *fresh = tmp_path("atomic_mode.txt");
    unlink(fresh);
    assert_int_equal(fnn_write_atomic(fresh, "x", 1, &err), FNN_OK);
    struct stat sb;
    assert_int_equal(stat(fresh, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    umask(old);
}

static void test_atomic_failures_keep_old_file(void **state)
{
    (void)state;
    static const char original[] = "original contents\n";
    const char *path = tmp_path("keep.txt");
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_write_atomic(path, original, sizeof original, &err), FNN_OK);
    int stale = count_temps(path);

    /* Aborting a stream after writing. */
    fnn_atomic_file *f;
    assert_int_equal(fnn_atomic_open(path, &f, &err), FNN_OK);
    assert_int_equal(fnn_atomic_write(f, "replacement", 11, &err), FNN_OK);
    fnn_atomic_abort(f);
    fnn_atomic_abort(NULL);
    assert_file_is(path, original, sizeof original);
    assert_int_equal(count_temps(path), stale);

    /* The writer refusing its arguments before creating anything. */
    float v[2] = {1, 2};
    fnn_st_tensor dup[2] = {
        {.name = "a", .rank = 1, .shape = {2}, .size = 2, .data = v},
        {.name = "a", .rank = 1, .shape = {2}, .size = 2, .data = v},
    };
    assert_int_equal(fnn_st_write(path, dup, 2, NULL, NULL, 0, &err), FNN_ERR_ARG);
    assert_file_is(path, original, sizeof original);

    /* A directory that does not exist. */
    const char *nowhere = tmp_path("no_such_dir/model.safetensors");
    assert_int_equal(fnn_write_atomic(nowhere, "x", 1, &err), FNN_ERR_IO);
    assert_int_equal(err.status, FNN_ERR_IO);
    assert_msg_has(&err, nowhere);
    assert_msg_has(&err, "cannot create temporary file");

    /* The target is a non-empty directory: refused before any temporary file is made. The
     * directory and its file survive. */
    const char *dir = tmp_path("target_dir");
    assert_true(mkdir(dir, 0777) == 0 || errno == EEXIST);
    int stale_dir = count_temps(dir);
    char inner[1100];
    snprintf(inner, sizeof inner, "%s/inner.txt", dir);
    assert_int_equal(fnn_write_atomic(inner, original, sizeof original, &err), FNN_OK);
    assert_int_equal(fnn_write_atomic(dir, "x", 1, &err), FNN_ERR_IO);
    assert_msg_has(&err, "is a directory");
    assert_int_equal(count_temps(dir), stale_dir);
    assert_file_is(inner, original, sizeof original);
    float w[1] = {3};
    fnn_st_tensor one = {.name = "w", .rank = 1, .shape = {1}, .size = 1, .data = w};
    assert_int_equal(fnn_st_write(dir, &one, 1, NULL, NULL, 0, &err), FNN_ERR_IO);
    assert_int_equal(count_temps(dir), stale_dir);
    assert_file_is(inner, original, sizeof original);

    /* An empty path. */
    assert_int_equal(fnn_write_atomic("", "x", 1, &err), FNN_ERR_ARG);
}

/* fnn_atomic_end, as a signal ending the process calls it: the temporaries of the handles still
 * open go, their commits fail and leave the old file, and nothing opens after it. It ends
 * atomic writing for the rest of the process, so a child runs it; the child's exit status
 * names the first check that failed. */
static void test_atomic_end_removes_open_temporaries(void **state)
{
    (void)state;
    const char *path = tmp_path("ended.txt");
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_write_atomic(path, "old", 3, &err), FNN_OK);
    int stale = count_temps(path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fnn_atomic_file *a, *b;
        if (fnn_atomic_open(path, &a, &err) != FNN_OK || fnn_atomic_open(path, &b, &err) != FNN_OK ||
            fnn_atomic_write(a, "new", 3, &err) != FNN_OK)
            _exit(1);
        if (count_temps(path) != stale + 2)
            _exit(2);
        fnn_atomic_end();
        if (count_temps(path) != stale)
            _exit(3); /* the two temporaries are still there */
        if (fnn_atomic_commit(a, &err) == FNN_OK)
            _exit(4); /* a commit put something in place */
        fnn_atomic_abort(b);
        if (fnn_write_atomic(path, "newer", 5, &err) == FNN_OK || !strstr(err.msg, "cancel"))
            _exit(5); /* a write opened after the end */
        _exit(count_temps(path) == stale ? 0 : 6);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the child failed check %d (status %#x)", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                 (unsigned)status);
    assert_file_is(path, "old", 3);
    assert_int_equal(count_temps(path), stale);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_unpadded_and_empty),
        cmocka_unit_test(test_reads_python_fixture),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_malformed_framing),
        cmocka_unit_test(test_truncated_copies),
        cmocka_unit_test(test_writer_rejects_bad_arguments),
        cmocka_unit_test(test_atomic_write_replaces),
        cmocka_unit_test(test_atomic_failures_keep_old_file),
        cmocka_unit_test(test_atomic_end_removes_open_temporaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
