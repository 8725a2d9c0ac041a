/* Shared by the test programs that run the built `fnn` as a user would (posix_spawn, no shell):
 * path and file helpers, a child run with captured stdout/stderr and a timeout, JSON checks and a
 * small synthetic IDX data set. The including test defines PATH_CAP, RUN_TIMEOUT_S (seconds any one
 * fnn run may take) and CLI_RUN_DIR (the directory for the capture files) first. Static, as it
 * serves test programs only; marked unused because not every program needs every helper. */
#ifndef FNN_TESTS_CLI_HARNESS_H
#define FNN_TESTS_CLI_HARNESS_H

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
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define CLI_HELPER static __attribute__((unused))

extern char **environ;

/* ---------------------------------------------------------------- files and directories */

/* snprintf into buf, failing the test rather than truncating a path. */
CLI_HELPER char *pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
CLI_HELPER char *pathf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, PATH_CAP, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_CAP)
        fail_msg("path too long: %s", fmt);
    return buf;
}

CLI_HELPER int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file, NUL-terminated; *len gets its size. NULL when it cannot be read. */
CLI_HELPER char *read_all(const char *path, size_t *len)
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

CLI_HELPER void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

CLI_HELPER int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A new, empty directory at path (whatever was there before is removed). */
CLI_HELPER void fresh_dir(const char *path)
{
    if (file_exists(path))
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(path, 0777) != 0)
        fail_msg("cannot create directory %s: %s", path, strerror(errno));
}

/* A group setup's work directory, new and empty: $FNN_TMP/NAME.work (/tmp without FNN_TMP),
 * into base. 0, or -1 after saying why on stderr: a group setup has no test to fail. */
CLI_HELPER int work_dir(char *base, size_t cap, const char *name)
{
    const char *tmp = getenv("FNN_TMP");
    snprintf(base, cap, "%s/%s.work", tmp && *tmp ? tmp : "/tmp", name);
    if (file_exists(base))
        nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(base, 0777) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", base, strerror(errno));
        return -1;
    }
    return 0;
}

CLI_HELPER void assert_files_equal(const char *a, const char *b)
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

/* Starts prog with argv (argv[0] included, NULL-terminated), stdin from /dev/null and
 * stdout/stderr going to files in CLI_RUN_DIR named by *id, so neither pipe can fill up and
 * block the child. */
CLI_HELPER pid_t spawn_prog(const char *prog, char *const *argv, unsigned *id)
{
    static unsigned serial;
    char out_path[PATH_CAP], err_path[PATH_CAP];
    *id = serial++;
    pathf(out_path, "%s/run%u.stdout", CLI_RUN_DIR, *id);
    pathf(err_path, "%s/run%u.stderr", CLI_RUN_DIR, *id);

    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("cannot run %s: %s", prog, strerror(rc));
    return pid;
}

/* Waits for the child started as *id and collects its output; name and cmd (the program and its
 * first argument) name it in failures. A signal or a run longer than timeout_s fails the test. */
CLI_HELPER run_t finish_run(pid_t pid, unsigned id, const char *name, const char *cmd,
                            int timeout_s)
{
    char out_path[PATH_CAP], err_path[PATH_CAP];
    pathf(out_path, "%s/run%u.stdout", CLI_RUN_DIR, id);
    pathf(err_path, "%s/run%u.stderr", CLI_RUN_DIR, id);
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
        if (now.tv_sec - t0.tv_sec > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s %s ... ran longer than %d s", name, cmd ? cmd : "", timeout_s);
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
        fail_msg("%s %s ... was killed by signal %d; stderr:\n%.3000s", name, cmd ? cmd : "",
                 WTERMSIG(status), r.err);
    assert_true(WIFEXITED(status));
    r.code = WEXITSTATUS(status);
    return r;
}

CLI_HELPER run_t run_prog(const char *prog, char *const *argv, int timeout_s)
{
    unsigned id;
    pid_t pid = spawn_prog(prog, argv, &id);
    return finish_run(pid, id, prog, argv[1], timeout_s);
}

/* Starts FNN_BIN with args (NULL-terminated, not counting argv[0]); see spawn_prog. */
CLI_HELPER pid_t spawn_fnn(const char *const *args, unsigned *id)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)FNN_BIN;
    for (; args[argc - 1]; argc++) {
        assert_true(argc < 63);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    return spawn_prog(FNN_BIN, argv, id);
}

/* Runs FNN_BIN with args to the end, within RUN_TIMEOUT_S. */
CLI_HELPER run_t run_argv(const char *const *args)
{
    unsigned id;
    pid_t pid = spawn_fnn(args, &id);
    return finish_run(pid, id, "fnn", args[0], RUN_TIMEOUT_S);
}

#define FNN(...) run_argv((const char *const[]){__VA_ARGS__, NULL})

CLI_HELPER void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

CLI_HELPER void expect_code(const run_t *r, int code)
{
    if (r->code != code)
        fail_msg("exit status %d, expected %d\nstdout:\n%.3000s\nstderr:\n%.3000s", r->code, code,
                 r->out, r->err);
}

CLI_HELPER void expect_contains(const char *text, const char *what, const char *part)
{
    if (!strstr(text, part))
        fail_msg("%s does not contain \"%s\":\n%.4000s", what, part, text);
}

/* A whole document (nothing before or after it); fails the test if it does not parse. */
CLI_HELPER cJSON *parse_json(const char *text)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(text, &end, 1);
    if (!doc)
        fail_msg("not a JSON document (error near offset %td):\n%.2000s",
                 end ? end - text : (ptrdiff_t)-1, text);
    return doc;
}

CLI_HELPER cJSON *get(const cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        fail_msg("JSON has no \"%s\"", key);
    return v;
}

CLI_HELPER double get_number(const cJSON *o, const char *key)
{
    cJSON *v = get(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("JSON \"%s\" is not a number", key);
    return v->valuedouble;
}

/* ---------------------------------------------------------------- synthetic IDX data */

#define MAGIC_IMAGES 0x00000803u
#define MAGIC_LABELS 0x00000801u
/* The synthetic data set: small enough that training on it takes milliseconds. */
#define SYN_TRAIN 200
#define SYN_TEST 50

CLI_HELPER void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX file: magic, the `ndims` dims, then `payload` bytes (which may disagree with the
 * header on purpose). */
CLI_HELPER void write_idx(const char *path, uint32_t magic, const uint32_t *dims, int ndims,
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
CLI_HELPER void write_images(const char *path, uint32_t n, uint32_t side, int gz)
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

CLI_HELPER void write_labels(const char *path, uint32_t n, uint32_t declared, int bad_label)
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
CLI_HELPER void make_data_dir(const char *dir)
{
    char p[PATH_CAP];
    fresh_dir(dir);
    write_images(pathf(p, "%s/train-images-idx3-ubyte", dir), SYN_TRAIN, 28, 0);
    write_labels(pathf(p, "%s/train-labels-idx1-ubyte", dir), SYN_TRAIN, SYN_TRAIN, -1);
    write_images(pathf(p, "%s/t10k-images-idx3-ubyte", dir), SYN_TEST, 28, 0);
    write_labels(pathf(p, "%s/t10k-labels-idx1-ubyte", dir), SYN_TEST, SYN_TEST, -1);
}

/* ---------------------------------------------------------------- safetensors files, read raw */

typedef struct {
    char *bytes;
    size_t len, data_at; /* the data section starts at byte data_at */
    cJSON *header;
} st_file;

CLI_HELPER void st_read(const char *path, st_file *f)
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

CLI_HELPER void st_free(st_file *f)
{
    cJSON_Delete(f->header);
    free(f->bytes);
}

/* The bytes of tensor t (its data_offsets checked against the file). */
CLI_HELPER const char *st_tensor(const st_file *f, const cJSON *t, size_t *len)
{
    cJSON *off = get(t, "data_offsets");
    assert_int_equal(cJSON_GetArraySize(off), 2);
    double a = cJSON_GetArrayItem(off, 0)->valuedouble, b = cJSON_GetArrayItem(off, 1)->valuedouble;
    assert_true(a >= 0 && b >= a && f->data_at + (size_t)b <= f->len);
    *len = (size_t)(b - a);
    return f->bytes + f->data_at + (size_t)a;
}

#endif
