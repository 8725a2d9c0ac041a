/* End-to-end tests of fnn train's experiment features, run as a user would run them (spawned
 * processes on synthetic IDX data): exact resume, Ctrl-C, NaN handling, early stopping,
 * transfer learning with frozen layers, kept classes, k-fold cross-validation. */
#define _XOPEN_SOURCE 700

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fnn.h"

extern char **environ;

#define PATH_CAP 1024
#define RUN_TIMEOUT_S 60
#define MAGIC_IMAGES 0x00000803u
#define MAGIC_LABELS 0x00000801u
#define SYN_TRAIN 200
#define SYN_TEST 50

static char g_base[PATH_CAP]; /* $FNN_TMP/test_train_features.work: everything written here */
static char g_syn[PATH_CAP + 16]; /* a synthetic data directory */

/* ---------------------------------------------------------------- helpers (from test_cli.c) */

/* snprintf into buf, failing the test rather than truncating a path. */
static char *pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *pathf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, PATH_CAP, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_CAP)
        fail_msg("path too long: %s", fmt);
    return buf;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file, NUL-terminated; *len gets its size. NULL when it cannot be read. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A new, empty directory at path (whatever was there before is removed). */
static void fresh_dir(const char *path)
{
    if (file_exists(path))
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(path, 0777) != 0)
        fail_msg("cannot create directory %s: %s", path, strerror(errno));
}

static void assert_files_equal(const char *a, const char *b)
{
    size_t la, lb;
    char *da = read_all(a, &la), *db = read_all(b, &lb);
    if (!da || !db)
        fail_msg("cannot read %s or %s", a, b);
    if (la != lb || memcmp(da, db, la) != 0) {
        size_t i = 0;
        while (i < la && i < lb && da[i] == db[i])
            i++;
        free(da);
        free(db);
        fail_msg("%s (%zu bytes) and %s (%zu bytes) differ, first at byte %zu", a, la, b, lb, i);
    }
    free(da);
    free(db);
}

/* ---------------------------------------------------------------- running the CLI */

typedef struct {
    int code;  /* exit status */
    char *out; /* stdout, NUL-terminated */
    char *err; /* stderr, NUL-terminated */
} run_t;

/* Starts FNN_BIN with args (NULL-terminated, not counting argv[0]), stdin from /dev/null and
 * stdout/stderr going to files named by the returned serial, so neither pipe can fill up. */
static pid_t spawn_fnn(const char *const *args, unsigned *id)
{
    static unsigned serial;
    char out_path[PATH_CAP], err_path[PATH_CAP];
    *id = serial++;
    pathf(out_path, "%s/run%u.stdout", g_base, *id);
    pathf(err_path, "%s/run%u.stderr", g_base, *id);

    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)FNN_BIN;
    for (; args[argc - 1]; argc++) {
        assert_true(argc < 63);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;

    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, FNN_BIN, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("cannot run %s: %s", FNN_BIN, strerror(rc));
    return pid;
}

/* Waits for the child started by spawn_fnn and collects its output. A signal or a hang fails
 * the test. */
static run_t finish(pid_t pid, unsigned id)
{
    char out_path[PATH_CAP], err_path[PATH_CAP];
    pathf(out_path, "%s/run%u.stdout", g_base, id);
    pathf(err_path, "%s/run%u.stderr", g_base, id);
    struct timespec t0, now, nap = {0, 2000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > RUN_TIMEOUT_S) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("fnn ran longer than %d s", RUN_TIMEOUT_S);
        }
        nanosleep(&nap, NULL);
    }
    run_t r = {0};
    r.out = read_all(out_path, NULL);
    r.err = read_all(err_path, NULL);
    assert_non_null(r.out);
    assert_non_null(r.err);
    unlink(out_path);
    unlink(err_path);
    if (WIFSIGNALED(status))
        fail_msg("fnn was killed by signal %d; stderr:\n%s", WTERMSIG(status), r.err);
    assert_true(WIFEXITED(status));
    r.code = WEXITSTATUS(status);
    return r;
}

static run_t run_argv(const char *const *args)
{
    unsigned id;
    pid_t pid = spawn_fnn(args, &id);
    return finish(pid, id);
}

#define FNN(...) run_argv((const char *const[]){__VA_ARGS__, NULL})

static void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static void expect_code(const run_t *r, int code)
{
    if (r->code != code)
        fail_msg("exit status %d, expected %d\nstdout:\n%.3000s\nstderr:\n%.3000s", r->code, code,
                 r->out, r->err);
}

static void expect_contains(const char *text, const char *what, const char *part)
{
    if (!strstr(text, part))
        fail_msg("%s does not contain \"%s\":\n%.4000s", what, part, text);
}

/* A whole document (nothing before or after it); fails the test if it does not parse. */
static cJSON *parse_json(const char *text)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(text, &end, 1);
    if (!doc)
        fail_msg("not a JSON document (error near offset %td):\n%.2000s",
                 end ? end - text : (ptrdiff_t)-1, text);
    return doc;
}

static cJSON *get(const cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        fail_msg("JSON has no \"%s\"", key);
    return v;
}

static double get_number(const cJSON *o, const char *key)
{
    cJSON *v = get(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("JSON \"%s\" is not a number", key);
    return v->valuedouble;
}

/* ---------------------------------------------------------------- synthetic IDX data */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX file: magic, the `ndims` dims, then `payload` bytes (which may disagree with the
 * header on purpose). */
static void write_idx(const char *path, uint32_t magic, const uint32_t *dims, int ndims,
                      const uint8_t *payload, size_t len, int gz)
{
    size_t hdr = 4 + 4 * (size_t)ndims;
    uint8_t *buf = malloc(hdr + len);
    assert_non_null(buf);
    put_be32(buf, magic);
    for (int i = 0; i < ndims; i++)
        put_be32(buf + 4 + 4 * i, dims[i]);
    if (len)
        memcpy(buf + hdr, payload, len);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, buf, (unsigned)(hdr + len)), (int)(hdr + len));
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        write_file(path, buf, hdr + len);
    }
    free(buf);
}

/* Images with a label-dependent pattern plus noise, so training has something to learn. */
static void write_images(const char *path, uint32_t n, uint32_t side, int gz)
{
    size_t len = (size_t)n * side * side;
    uint8_t *px = malloc(len);
    assert_non_null(px);
    uint32_t s = 12345u + n;
    for (size_t i = 0; i < len; i++) {
        s = s * 1664525u + 1013904223u;
        size_t img = i / ((size_t)side * side), pos = i % ((size_t)side * side);
        px[i] = (uint8_t)((pos % 10 == img % 10 ? 160 : 0) + (s >> 26));
    }
    uint32_t dims[3] = {n, side, side};
    write_idx(path, MAGIC_IMAGES, dims, 3, px, len, gz);
    free(px);
}

static void write_labels(const char *path, uint32_t n, uint32_t declared, int bad_label)
{
    uint8_t *lb = malloc(n);
    assert_non_null(lb);
    for (uint32_t i = 0; i < n; i++)
        lb[i] = (uint8_t)(i % 10);
    if (bad_label >= 0)
        lb[3] = (uint8_t)bad_label;
    write_idx(path, MAGIC_LABELS, &declared, 1, lb, n, 0);
    free(lb);
}

/* A complete, valid data directory: 200 training and 50 test images of 28x28. */
static void make_data_dir(const char *dir)
{
    char p[PATH_CAP];
    fresh_dir(dir);
    write_images(pathf(p, "%s/train-images-idx3-ubyte", dir), SYN_TRAIN, 28, 0);
    write_labels(pathf(p, "%s/train-labels-idx1-ubyte", dir), SYN_TRAIN, SYN_TRAIN, -1);
    write_images(pathf(p, "%s/t10k-images-idx3-ubyte", dir), SYN_TEST, 28, 0);
    write_labels(pathf(p, "%s/t10k-labels-idx1-ubyte", dir), SYN_TEST, SYN_TEST, -1);
}

/* ---------------------------------------------------------------- safetensors files */

typedef struct {
    char *bytes;
    size_t len, data_at; /* the data section starts at byte data_at */
    cJSON *header;
} st_file;

static void st_read(const char *path, st_file *f)
{
    f->bytes = read_all(path, &f->len);
    if (!f->bytes || f->len < 8)
        fail_msg("%s: missing or shorter than 8 bytes", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | (uint8_t)f->bytes[i];
    if (n > f->len - 8)
        fail_msg("%s: header length %llu runs past the file", path, (unsigned long long)n);
    f->header = cJSON_ParseWithLength(f->bytes + 8, (size_t)n);
    if (!cJSON_IsObject(f->header))
        fail_msg("%s: header is not a JSON object", path);
    f->data_at = 8 + (size_t)n;
}

static void st_free(st_file *f)
{
    cJSON_Delete(f->header);
    free(f->bytes);
}

/* The bytes of tensor t (its data_offsets checked against the file). */
static const char *st_tensor(const st_file *f, const cJSON *t, size_t *len)
{
    cJSON *off = get(t, "data_offsets");
    assert_int_equal(cJSON_GetArraySize(off), 2);
    double a = cJSON_GetArrayItem(off, 0)->valuedouble, b = cJSON_GetArrayItem(off, 1)->valuedouble;
    assert_true(a >= 0 && b >= a && f->data_at + (size_t)b <= f->len);
    *len = (size_t)(b - a);
    return f->bytes + f->data_at + (size_t)a;
}

/* A malloc'd copy of tensor `name` of a safetensors file; *len gets its size in bytes. */
static char *tensor_bytes(const char *path, const char *name, size_t *len)
{
    st_file f;
    st_read(path, &f);
    const char *data = st_tensor(&f, get(f.header, name), len);
    char *copy = malloc(*len ? *len : 1);
    assert_non_null(copy);
    memcpy(copy, data, *len);
    st_free(&f);
    return copy;
}

static int same_tensor(const char *pa, const char *pb, const char *name)
{
    size_t la, lb;
    char *a = tensor_bytes(pa, name, &la), *b = tensor_bytes(pb, name, &lb);
    int same = la == lb && !memcmp(a, b, la);
    free(a);
    free(b);
    return same;
}

/* A metadata string of a safetensors file, parsed as JSON. */
static cJSON *meta_json(const char *path, const char *key)
{
    st_file f;
    st_read(path, &f);
    cJSON *v = get(get(f.header, "__metadata__"), key);
    assert_true(cJSON_IsString(v));
    cJSON *doc = parse_json(v->valuestring);
    st_free(&f);
    return doc;
}

/* The training options every run here shares: synthetic data, two threads, small batches. */
#define SYN "--data", g_syn, "--threads", "2", "--batch-size", "16", "--quiet"

/* ---------------------------------------------------------------- resume */

/* 3 epochs straight and 2 + a resume to 3 end in the same file, byte for byte, with dropout,
 * augmentation, a step schedule and clipping all drawing on the seed and the step. */
static void test_resume_equals_straight(void **state)
{
    char straight[PATH_CAP], part[PATH_CAP], resumed[PATH_CAP], ck[PATH_CAP];
    pathf(straight, "%s/straight.safetensors", g_base);
    pathf(part, "%s/part.safetensors", g_base);
    pathf(resumed, "%s/resumed.safetensors", g_base);
    pathf(ck, "%s/resume.ckpt", g_base);
#define FEATURES "--aug-shift", "2", "--aug-flip", "--aug-rotate", "10", "--aug-erase", "0.5", \
                 "--lr-schedule", "step", "--lr-step-epochs", "1", "--lr-gamma", "0.5",      \
                 "--clip-norm", "2", "--optimizer", "adamw"
    run_t r = FNN("train", SYN, FEATURES, "--epochs", "3", "--out", straight);
    expect_code(&r, 0);
    run_free(&r);
    r = FNN("train", SYN, FEATURES, "--epochs", "2", "--out", part, "--checkpoint", ck);
    expect_code(&r, 0);
    run_free(&r);
    assert_true(file_exists(ck));
    r = FNN("train", "--resume", ck, "--epochs", "3", "--out", resumed, "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    assert_int_equal((int)get_number(doc, "resumed_epoch"), 2);
    assert_int_equal(cJSON_GetArraySize(get(get(doc, "history"), "epoch")), 3);
    cJSON_Delete(doc);
    run_free(&r);
    assert_files_equal(straight, resumed);
    /* The 2-epoch model differs: the comparison above had something to find. */
    assert_false(same_tensor(straight, part, "layers.1.kernel"));
#undef FEATURES
}

static void test_resume_refuses_options(void **state)
{
    char ck[PATH_CAP], out[PATH_CAP];
    pathf(ck, "%s/refuse.ckpt", g_base);
    pathf(out, "%s/refuse.safetensors", g_base);
    run_t r = FNN("train", SYN, "--epochs", "1", "--out", out, "--checkpoint", ck);
    expect_code(&r, 0);
    run_free(&r);
    r = FNN("train", "--resume", ck, "--epochs", "2", "--lr", "0.1");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--lr");
    run_free(&r);
    r = FNN("train", "--resume", ck);
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--epochs");
    run_free(&r);
    /* Already at epoch 1: asking for 1 is nothing to do. */
    r = FNN("train", "--resume", ck, "--epochs", "1", "--out", out);
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "1 epochs done");
    run_free(&r);
}

/* Damaged checkpoints fail with the file and the field named, and nothing is written. */
static void test_bad_checkpoints(void **state)
{
    char ck[PATH_CAP], bad[PATH_CAP], out[PATH_CAP], model[PATH_CAP];
    pathf(ck, "%s/good.ckpt", g_base);
    pathf(bad, "%s/bad.ckpt", g_base);
    pathf(out, "%s/from_bad.safetensors", g_base);
    pathf(model, "%s/plain.safetensors", g_base);
    run_t r = FNN("train", SYN, "--epochs", "1", "--out", model, "--checkpoint", ck);
    expect_code(&r, 0);
    run_free(&r);
    size_t len;
    char *bytes = read_all(ck, &len);
    assert_non_null(bytes);

    /* Truncated. */
    write_file(bad, bytes, len / 2);
    r = FNN("train", "--resume", bad, "--epochs", "2", "--out", out);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", bad);
    run_free(&r);
    /* A model file is not a checkpoint. */
    r = FNN("train", "--resume", model, "--epochs", "2", "--out", out);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "not an fnn checkpoint");
    run_free(&r);
    /* A state field out of range, same length so the header stays valid. */
    static const char field[] = "\\\"epoch\\\":1,";
    char *pos = NULL;
    for (size_t i = 8; !pos && i + sizeof field - 1 <= len; i++)
        if (!memcmp(bytes + i, field, sizeof field - 1))
            pos = bytes + i;
    assert_non_null(pos);
    memcpy(pos, "\\\"epoch\\\":7,", 12);
    write_file(bad, bytes, len);
    r = FNN("train", "--resume", bad, "--epochs", "9", "--out", out);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "\"t\"");
    run_free(&r);
    free(bytes);
    assert_false(file_exists(out));
}

/* ---------------------------------------------------------------- Ctrl-C */

/* SIGINT mid-run: exit 130 with a message, a checkpoint that resumes to exactly the model an
 * uninterrupted run of as many epochs gives. */
static void test_sigint_writes_resumable_checkpoint(void **state)
{
    char ck[PATH_CAP], out[PATH_CAP], resumed[PATH_CAP], straight[PATH_CAP];
    pathf(ck, "%s/int.ckpt", g_base);
    pathf(out, "%s/int.safetensors", g_base);
    pathf(resumed, "%s/int_resumed.safetensors", g_base);
    pathf(straight, "%s/int_straight.safetensors", g_base);
    unsigned id;
    pid_t pid = spawn_fnn((const char *const[]){"train", SYN, "--epochs", "100000", "--out", out,
                                                "--checkpoint", ck, NULL},
                          &id);
    /* The handler is in place once training runs, which the first checkpoint shows. */
    struct timespec nap = {0, 5000000};
    for (int i = 0; i < 4000 && !file_exists(ck); i++)
        nanosleep(&nap, NULL);
    assert_true(file_exists(ck));
    nanosleep(&(struct timespec){0, 30000000}, NULL);
    assert_int_equal(kill(pid, SIGINT), 0);
    run_t r = finish(pid, id);
    expect_code(&r, 130);
    expect_contains(r.err, "stderr", "interrupted at epoch");
    expect_contains(r.err, "stderr", "--resume");
    run_free(&r);
    assert_false(file_exists(out));

    cJSON *st = meta_json(ck, "state");
    int epoch = (int)get_number(st, "epoch"), step = (int)get_number(st, "step");
    cJSON_Delete(st);
    char epochs[16];
    snprintf(epochs, sizeof epochs, "%d", epoch + 1 + (step > 0));
    r = FNN("train", "--resume", ck, "--epochs", epochs, "--out", resumed);
    expect_code(&r, 0);
    run_free(&r);
    r = FNN("train", SYN, "--epochs", epochs, "--out", straight);
    expect_code(&r, 0);
    run_free(&r);
    assert_files_equal(straight, resumed);
}

/* ---------------------------------------------------------------- NaN */

/* A learning rate of 1000 with SGD: the loss overflows, the message names the epoch and step,
 * the exit status is 1, the earlier checkpoint is left as it was and no model is written. */
static void test_nan_keeps_last_checkpoint(void **state)
{
    char ck[PATH_CAP], out[PATH_CAP], copy[PATH_CAP];
    pathf(ck, "%s/nan.ckpt", g_base);
    pathf(out, "%s/nan.safetensors", g_base);
    pathf(copy, "%s/nan.ckpt.before", g_base);
    run_t r = FNN("train", SYN, "--epochs", "1", "--out", out, "--checkpoint", ck);
    expect_code(&r, 0);
    run_free(&r);
    unlink(out);
    size_t len;
    char *before = read_all(ck, &len);
    assert_non_null(before);
    write_file(copy, before, len);
    free(before);
    r = FNN("train", SYN, "--epochs", "2", "--optimizer", "sgd", "--lr", "1e3", "--out", out,
            "--checkpoint", ck);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "at epoch 1, step ");
    if (!strstr(r.err, "NaN") && !strstr(r.err, "infinite"))
        fail_msg("no NaN or infinite in: %s", r.err);
    run_free(&r);
    assert_files_equal(copy, ck);
    assert_false(file_exists(out));
}

/* ---------------------------------------------------------------- early stopping */

/* Accuracy on the synthetic set saturates, so val_accuracy stops improving: the run stops,
 * reports the restored epoch, and holds exactly the weights of a run that ended there. */
static void test_early_stopping_restores_best(void **state)
{
    char es[PATH_CAP], best[PATH_CAP], last[PATH_CAP];
    pathf(es, "%s/es.safetensors", g_base);
    pathf(best, "%s/es_best.safetensors", g_base);
    pathf(last, "%s/es_last.safetensors", g_base);
    run_t r = FNN("train", SYN, "--epochs", "40", "--early-stopping", "2", "--monitor",
                  "val_accuracy", "--out", es, "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *e = get(doc, "early_stopping");
    int restored = (int)get_number(e, "restored_epoch");
    int ran = cJSON_GetArraySize(get(get(doc, "history"), "epoch"));
    assert_true(cJSON_IsTrue(get(e, "stopped_early")));
    assert_true(restored >= 1 && restored == ran - 2);
    /* The best epoch's accuracy is the highest, and the first to reach it. */
    cJSON *acc = get(get(doc, "history"), "val_accuracy");
    double top = cJSON_GetArrayItem(acc, restored - 1)->valuedouble;
    for (int i = 0; i < ran; i++)
        assert_true(cJSON_GetArrayItem(acc, i)->valuedouble <= top + (i >= restored - 1 ? 0 : -1e-12));
    run_free(&r);
    cJSON_Delete(doc);
    cJSON *hist = meta_json(es, "history");
    assert_int_equal((int)get_number(hist, "restored_epoch"), restored);
    cJSON_Delete(hist);

    char n[16];
    snprintf(n, sizeof n, "%d", restored);
    r = FNN("train", SYN, "--epochs", n, "--out", best);
    expect_code(&r, 0);
    run_free(&r);
    snprintf(n, sizeof n, "%d", ran);
    r = FNN("train", SYN, "--epochs", n, "--out", last);
    expect_code(&r, 0);
    run_free(&r);
    const char *names[] = {"layers.1.kernel", "layers.1.bias", "layers.3.kernel",
                           "layers.4.kernel", "layers.4.bias"};
    for (int i = 0; i < 5; i++)
        assert_true(same_tensor(es, best, names[i]));
    assert_false(same_tensor(es, last, "layers.1.kernel"));
}

/* ---------------------------------------------------------------- transfer learning */

#define HEAD5 "flatten dense:32:relu dropout:0.2 dense:16:relu dense:5:softmax"

static void pretrain(char *path)
{
    pathf(path, "%s/pre.safetensors", g_base);
    if (file_exists(path))
        return;
    run_t r = FNN("train", SYN, "--epochs", "2", "--arch", HEAD5, "--classes", "0,1,2,3,4",
                  "--out", path);
    expect_code(&r, 0);
    run_free(&r);
}

/* Loading into a 3-class head: the report says which tensors came from the source; frozen
 * layers keep the source's bytes and the others move; class names follow --classes. */
static void test_init_from_and_freeze(void **state)
{
    char pre[PATH_CAP], ft[PATH_CAP], thawed[PATH_CAP];
    pretrain(pre);
    pathf(ft, "%s/ft.safetensors", g_base);
    pathf(thawed, "%s/thawed.safetensors", g_base);
    const char *arch = "flatten dense:32:relu dropout:0.2 dense:16:relu dense:3:softmax";
    run_t r = FNN("train", "--data", g_syn, "--threads", "2", "--batch-size", "16", "--json",
                  "--epochs", "2", "--arch", arch, "--classes", "7,5,9", "--init-from", pre,
                  "--freeze", "4", "--out", ft);
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *t = get(doc, "transfer");
    assert_int_equal((int)get_number(t, "loaded"), 4);
    cJSON *list = get(t, "tensors");
    assert_int_equal(cJSON_GetArraySize(list), 6);
    const char *expect[6] = {"layers.1.kernel", "layers.1.bias", "layers.3.kernel",
                             "layers.3.bias", "layers.4.kernel", "layers.4.bias"};
    for (int i = 0; i < 6; i++) {
        cJSON *e = cJSON_GetArrayItem(list, i);
        assert_string_equal(get(e, "name")->valuestring, expect[i]);
        assert_int_equal(cJSON_IsTrue(get(e, "loaded")), i < 4);
        if (i >= 4)
            expect_contains(get(e, "reason")->valuestring, "reason", "needed");
    }
    assert_int_equal((int)get_number(get(doc, "data"), "test"), 15); /* 5 each of 3 classes */
    cJSON_Delete(doc);
    run_free(&r);
    for (int i = 0; i < 4; i++)
        assert_true(same_tensor(pre, ft, expect[i]));
    cJSON *names = meta_json(ft, "class_names");
    assert_int_equal(cJSON_GetArraySize(names), 3);
    assert_string_equal(cJSON_GetArrayItem(names, 0)->valuestring, "Sneaker");
    assert_string_equal(cJSON_GetArrayItem(names, 1)->valuestring, "Sandal");
    assert_string_equal(cJSON_GetArrayItem(names, 2)->valuestring, "Ankle boot");
    cJSON_Delete(names);

    /* Without --freeze the loaded layers train, so the check above could fail. */
    r = FNN("train", SYN, "--epochs", "2", "--arch", arch, "--classes", "7,5,9", "--init-from",
            pre, "--out", thawed);
    expect_code(&r, 0);
    run_free(&r);
    assert_false(same_tensor(pre, thawed, "layers.1.kernel"));
    assert_false(same_tensor(pre, thawed, "layers.3.kernel"));
}

/* Same head size: everything loads unless --reset-head; the text report lists each tensor. */
static void test_init_from_reset_head(void **state)
{
    char pre[PATH_CAP], ft[PATH_CAP];
    pretrain(pre);
    pathf(ft, "%s/ft_reset.safetensors", g_base);
    run_t r = FNN("train", "--data", g_syn, "--threads", "2", "--epochs", "1", "--arch", HEAD5,
                  "--classes", "5,6,7,8,9", "--init-from", pre, "--reset-head", "--freeze", "5",
                  "--out", ft);
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "4 of 6 tensors loaded");
    expect_contains(r.out, "stdout", "layers.4.kernel");
    run_free(&r);
    assert_true(same_tensor(pre, ft, "layers.3.kernel"));
    /* The head was initialised afresh and trained: not the source's. */
    assert_false(same_tensor(pre, ft, "layers.4.kernel"));
}

static void test_classes_and_per_class(void **state)
{
    char out[PATH_CAP];
    pathf(out, "%s/few.safetensors", g_base);
    /* 200 images, labels i % 10: classes 2 and 3 have 20 each, 16 in the first 80% (160). */
    run_t r = FNN("train", "--data", g_syn, "--threads", "2", "--json", "--epochs", "1",
                  "--arch", "flatten dense:2:softmax", "--classes", "2,3", "--per-class", "5",
                  "--out", out);
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *d = get(doc, "data");
    assert_int_equal((int)get_number(d, "train"), 10);
    assert_int_equal((int)get_number(d, "validation"), 8);
    assert_int_equal((int)get_number(d, "test"), 10);
    cJSON_Delete(doc);
    run_free(&r);
    /* A head of the wrong size is a usage error that says what to write. */
    r = FNN("train", SYN, "--epochs", "1", "--classes", "2,3", "--out", out);
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "dense:2:softmax");
    run_free(&r);
    r = FNN("train", SYN, "--classes", "2,2", "--out", out);
    expect_code(&r, 2);
    run_free(&r);
}

/* ---------------------------------------------------------------- k-fold */

static void test_folds(void **state)
{
    char out[PATH_CAP];
    pathf(out, "%s/folds.safetensors", g_base);
    run_t r = FNN("train", "--data", g_syn, "--threads", "2", "--epochs", "1", "--folds", "4",
                  "--json", "--out", out);
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *acc = get(doc, "val_accuracy");
    assert_int_equal(cJSON_GetArraySize(acc), 4);
    double mean = 0.0, ss = 0.0;
    for (int i = 0; i < 4; i++)
        mean += cJSON_GetArrayItem(acc, i)->valuedouble / 4;
    for (int i = 0; i < 4; i++)
        ss += pow(cJSON_GetArrayItem(acc, i)->valuedouble - mean, 2);
    assert_float_equal(get_number(doc, "mean"), mean, 1e-12);
    assert_float_equal(get_number(doc, "std"), sqrt(ss / 3), 1e-12);
    assert_true(cJSON_IsNull(get(doc, "test")));
    assert_int_equal((int)get_number(doc, "images"), SYN_TRAIN);
    cJSON_Delete(doc);
    run_free(&r);
    assert_false(file_exists(out));
    /* Text: a line per fold and the summary. */
    r = FNN("train", "--data", g_syn, "--threads", "2", "--epochs", "1", "--folds", "3");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "fold 3/3: 133 train / 67 validation images");
    expect_contains(r.out, "stdout", "+-");
    run_free(&r);
}

static void test_help_lists_options(void **state)
{
    run_t r = FNN("train", "--help");
    expect_code(&r, 0);
    const char *opts[] = {"--aug-shift", "--aug-flip", "--aug-rotate", "--aug-erase",
                          "--nesterov", "--lr-schedule", "--warmup-epochs", "--clip-norm",
                          "--early-stopping", "--monitor", "--checkpoint", "--resume",
                          "--folds", "--init-from", "--freeze", "--classes", "--per-class",
                          "130"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        expect_contains(r.out, "help", opts[i]);
    run_free(&r);
    r = FNN("train", SYN, "--nesterov", "--out", "x.safetensors");
    expect_code(&r, 2);
    run_free(&r);
    r = FNN("train", SYN, "--lr-schedule", "plateau", "--val-split", "0");
    expect_code(&r, 2);
    run_free(&r);
}

static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("FNN_TMP");
    snprintf(g_base, sizeof g_base, "%s/test_train_features.work", tmp && *tmp ? tmp : "/tmp");
    snprintf(g_syn, sizeof g_syn, "%s/syn", g_base);
    if (file_exists(g_base))
        nftw(g_base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(g_base, 0777) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", g_base, strerror(errno));
        return -1;
    }
    make_data_dir(g_syn);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_lists_options),
        cmocka_unit_test(test_resume_equals_straight),
        cmocka_unit_test(test_resume_refuses_options),
        cmocka_unit_test(test_bad_checkpoints),
        cmocka_unit_test(test_sigint_writes_resumable_checkpoint),
        cmocka_unit_test(test_nan_keeps_last_checkpoint),
        cmocka_unit_test(test_early_stopping_restores_best),
        cmocka_unit_test(test_init_from_and_freeze),
        cmocka_unit_test(test_init_from_reset_head),
        cmocka_unit_test(test_classes_and_per_class),
        cmocka_unit_test(test_folds),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
