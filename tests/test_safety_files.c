/* Model files under damage: the tensor-data checksum (fnn_crc32) catches a byte changed in place,
 * files without one still load, and a save killed (SIGKILL) before any one of its system calls
 * leaves the previous file or the new one, whole and loadable. */
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
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "fnn.h"
#include "io/safetensors.h"
#include "check.h"

/* 200 KB of tensors: several writes per save, so kills land between them. */
#define SAVE_SPEC "flatten dense:64 dense:10:softmax"

/* ---------------------------------------------------------------- helpers */

/* "$FNN_TMP/test_safety_files.work/<name>": this program's own directory. */
static const char *tmp_path(const char *name)
{
    static char buf[8][1024];
    static int next;
    const char *dir = getenv("FNN_TMP");
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/test_safety_files.work", dir && *dir ? dir : "/tmp");
    mkdir(p, 0777);
    if (*name)
        snprintf(p + strlen(p), sizeof buf[0] - strlen(p), "/%s", name);
    return p;
}

static fnn_model *make_model(const char *spec, uint64_t seed)
{
    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_create(spec, 1, 28, 28, &err);
    if (!m)
        fail_msg("fnn_model_create: %s", err.msg);
    fnn_model_init(m, seed);
    return m;
}

static void save(const fnn_model *m, const char *path)
{
    fnn_error err = {FNN_OK, ""};
    if (fnn_model_save(m, NULL, path, &err) != FNN_OK)
        fail_msg("fnn_model_save: %s", err.msg);
}

/* 1 if every tensor of a and b is equal bit for bit. */
static int same_weights(const fnn_model *a, const fnn_model *b)
{
    if (fnn_model_num_tensors(a) != fnn_model_num_tensors(b))
        return 0;
    for (int i = 0; i < fnn_model_num_tensors(a); i++) {
        fnn_tensor x, y;
        fnn_model_tensor(a, i, &x);
        fnn_model_tensor(b, i, &y);
        if (x.size != y.size || memcmp(x.data, y.data, x.size * sizeof(float)) != 0)
            return 0;
    }
    return 1;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Rewrites src to dst with metadata key `key` set to value (NULL: removed), tensors unchanged. */
static void rewrite_meta(const char *src, const char *dst, const char *key, const char *value)
{
    fnn_st_file st;
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_st_read(src, &st, &err), FNN_OK);
    const char *keys[16], *values[16];
    int n = 0, found = 0;
    for (int i = 0; i < st.nmeta; i++) {
        if (strcmp(st.meta_keys[i], key) == 0) {
            found = 1;
            if (!value)
                continue;
            keys[n] = key;
            values[n++] = value;
        } else {
            keys[n] = st.meta_keys[i];
            values[n++] = st.meta_values[i];
        }
    }
    assert_true(found);
    assert_int_equal(fnn_st_write(dst, st.tensors, st.ntensors, keys, values, n, &err), FNN_OK);
    fnn_st_free(&st);
}

/* ---------------------------------------------------------------- checksum */

static void test_checksum_written(void **state)
{
    (void)state;
    fnn_model *m = make_model("flatten dense:8:relu dense:10:softmax", 3);
    const char *path = tmp_path("crc.safetensors");
    save(m, path);
    /* Computed here from the file's own bytes, independently of the writer. */
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | bytes[i];
    assert_true(8 + hlen < len);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, bytes + 8 + hlen, (uInt)(len - 8 - hlen));
    char want[16];
    snprintf(want, sizeof want, "%08lx", crc);

    fnn_st_file st;
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_st_read(path, &st, &err), FNN_OK);
    assert_non_null(fnn_st_meta(&st, "fnn_crc32"));
    assert_string_equal(fnn_st_meta(&st, "fnn_crc32"), want);
    fnn_st_free(&st);
    free(bytes);
    fnn_model_free(m);
}

static void test_checksum_catches_flipped_bytes(void **state)
{
    (void)state;
    fnn_model *m = make_model("flatten dense:8:relu dense:10:softmax", 4);
    const char *path = tmp_path("flip.safetensors");
    save(m, path);
    size_t len;
    unsigned char *orig = read_all(path, &len);
    /* One bit in the first, a middle and the last data byte: each still a finite float, with
     * the header untouched, so only the checksum can notice. */
    size_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | orig[i];
    size_t at[3] = {8 + hlen, 8 + hlen + (len - 8 - hlen) / 2, len - 4};
    for (int k = 0; k < 3; k++) {
        unsigned char *bytes = malloc(len);
        assert_non_null(bytes);
        memcpy(bytes, orig, len);
        bytes[at[k]] ^= 0x01; /* the lowest mantissa bit of a little-endian float */
        write_all(path, bytes, len);
        fnn_error err = {FNN_OK, ""};
        fnn_model *back = fnn_model_load(path, NULL, &err);
        assert_null(back);
        assert_int_equal(err.status, FNN_ERR_FORMAT);
        assert_msg_has(&err, "tensor data is corrupt: its CRC-32 is");
        assert_msg_has(&err, path);
        free(bytes);
    }
    free(orig);
    fnn_model_free(m);
}

static void test_file_without_checksum_loads(void **state)
{
    (void)state;
    fnn_model *m = make_model("flatten dense:8:relu dense:10:softmax", 5);
    const char *path = tmp_path("with.safetensors"), *old = tmp_path("without.safetensors");
    save(m, path);
    rewrite_meta(path, old, "fnn_crc32", NULL);
    fnn_error err = {FNN_OK, ""};
    fnn_model *back = fnn_model_load(old, NULL, &err);
    if (!back)
        fail_msg("a file without a checksum must load: %s", err.msg);
    assert_true(same_weights(m, back));
    fnn_model_free(back);
    fnn_model_free(m);
}

static void test_malformed_checksum(void **state)
{
    (void)state;
    fnn_model *m = make_model("flatten dense:8:relu dense:10:softmax", 6);
    const char *path = tmp_path("fmt.safetensors"), *bad = tmp_path("fmt_bad.safetensors");
    save(m, path);
    static const char *const values[] = {"", "1234567", "123456789", "ABCDEF01", "0x123456",
                                         "1234567g"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        rewrite_meta(path, bad, "fnn_crc32", values[i]);
        fnn_error err = {FNN_OK, ""};
        assert_null(fnn_model_load(bad, NULL, &err));
        assert_int_equal(err.status, FNN_ERR_FORMAT);
        assert_msg_has(&err, "is not 8 lowercase hex digits");
    }
    fnn_model_free(m);
}

/* ---------------------------------------------------------------- killed saves */

/* Removes the temporary files killed saves leave behind; returns how many there were. */
static int remove_temps(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            char p[2048];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            assert_int_equal(unlink(p), 0);
            n++;
        }
    closedir(d);
    return n;
}

/* A child, traced, that saves m over path once and exits; returned stopped before the save. */
static pid_t start_saver(const fnn_model *m, const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
            _exit(4);
        raise(SIGSTOP);
        fnn_error err = {FNN_OK, ""};
        _exit(fnn_model_save(m, NULL, path, &err) == FNN_OK ? 0 : 3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSTOPPED(status))
        fail_msg("the saving child did not stop (status 0x%x; 4 means ptrace was refused)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : status);
    assert_int_equal(WSTOPSIG(status), SIGSTOP);
    assert_int_equal(ptrace(PTRACE_SETOPTIONS, pid, NULL,
                            (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)), 0);
    return pid;
}

/* Lets the child run to the entry of its stop-th system call from now (1-based), where it
 * waits with the call not yet made, and returns stop; or, when it ends first, returns the
 * calls it made and leaves its wait status in *status. */
static int run_to_call(pid_t pid, int stop, int *status)
{
    int calls = 0, inside = 0, sig = 0;
    for (;;) {
        assert_int_equal(ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(long)sig), 0);
        sig = 0;
        assert_int_equal(waitpid(pid, status, 0), pid);
        if (WIFEXITED(*status) || WIFSIGNALED(*status))
            return calls;
        if (WSTOPSIG(*status) != (SIGTRAP | 0x80)) {
            sig = WSTOPSIG(*status); /* a signal for the child: deliver it */
            continue;
        }
        /* System-call stops come in pairs, entry then exit. */
        inside = !inside;
        if (inside && ++calls == stop)
            return calls;
    }
}

/* A save killed (SIGKILL) before each one of its system calls in turn, from the first to the
 * process's exit after it: the file at path must then be, byte for byte, either the previous
 * model or the new one, and load. The kills are placed by counting calls, not by timing, so the
 * test does not depend on how fast the disk is; it checks that the previous file lasts while a
 * temporary file is being written (some kill lands there), that the new one appears in one step
 * and is never undone by a later kill. */
static void test_kill_during_save_keeps_previous(void **state)
{
    (void)state;
    fnn_model *a = make_model(SAVE_SPEC, 7), *b = make_model(SAVE_SPEC, 8);
    assert_false(same_weights(a, b));
    const char *path = tmp_path("killed.safetensors"), *dir = tmp_path("");
    size_t len_a, len_b;
    save(a, tmp_path("killed_a.safetensors"));
    save(b, tmp_path("killed_b.safetensors"));
    unsigned char *bytes_a = read_all(tmp_path("killed_a.safetensors"), &len_a),
                  *bytes_b = read_all(tmp_path("killed_b.safetensors"), &len_b);
    remove_temps(dir, "killed.safetensors");

    /* How many calls a whole save makes here, exit included. */
    save(a, path);
    int status;
    pid_t pid = start_saver(b, path);
    int calls = run_to_call(pid, -1, &status);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(calls >= 4); /* at least create, write, rename and exit */

    int first_b = 0, with_temp = 0;
    for (int k = 1; k <= calls; k++) {
        save(a, path);
        pid = start_saver(b, path);
        if (run_to_call(pid, k, &status) != k)
            fail_msg("kill before call %d of %d: the child ended first (status 0x%x)", k, calls,
                     status);
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        with_temp += remove_temps(dir, "killed.safetensors") > 0;

        size_t len;
        unsigned char *now = read_all(path, &len);
        int is_a = len == len_a && !memcmp(now, bytes_a, len);
        int is_b = len == len_b && !memcmp(now, bytes_b, len);
        free(now);
        if (!is_a && !is_b)
            fail_msg("kill before call %d of %d: the file is neither model", k, calls);
        if (is_b && !first_b)
            first_b = k;
        if (is_a && first_b)
            fail_msg("kill before call %d: the file is the previous model again, after call %d "
                     "had replaced it", k, first_b);
        fnn_error err = {FNN_OK, ""};
        fnn_model *back = fnn_model_load(path, NULL, &err);
        if (!back)
            fail_msg("kill before call %d: the model file no longer loads: %s", k, err.msg);
        assert_true(same_weights(back, is_b ? b : a));
        fnn_model_free(back);
    }
    print_message("%d calls per save; a temporary file was there at %d kills; the new file from "
                  "the kill before call %d\n", calls, with_temp, first_b);
    /* The first kill finds the previous file; the last (at exit) the new one. */
    assert_true(first_b > 1);
    assert_true(with_temp > 0);
    free(bytes_a);
    free(bytes_b);
    fnn_model_free(a);
    fnn_model_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum_written),
        cmocka_unit_test(test_checksum_catches_flipped_bytes),
        cmocka_unit_test(test_file_without_checksum_loads),
        cmocka_unit_test(test_malformed_checksum),
        cmocka_unit_test(test_kill_during_save_keeps_previous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
