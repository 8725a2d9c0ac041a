/* Allocation failure is reported, not a crash: fnn runs under a small address-space limit
 * (RLIMIT_AS set in the child before exec) on commands that need more memory than that, and must
 * exit 1 with an "out of memory" message saying what it was allocating, never die of a signal. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fnn.h"
#include "io/safetensors.h"

/* Room for fnn, its libraries and OpenBLAS's startup buffers (OpenBLAS loops forever in its
 * constructor, before main, when it cannot get them: about 300 MiB is too little), and for
 * training the study's MLP, which the control case checks; far too little for the cases below. */
#define LIMIT_MB 1024
#define RUN_TIMEOUT_S 120
#define SYN_N 300

typedef struct {
    int signaled; /* the signal that ended it, else 0 */
    int code;     /* exit status */
    char err[4096]; /* stderr */
} run_t;

static char g_dir[1024];

static const char *work(const char *name)
{
    static char buf[4][1200];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    assert_int_equal(fwrite(b, 1, 4, f), 4);
}

/* A small plain-IDX data set of 28x28 images, train and t10k, in g_dir/syn. */
static void write_synthetic(void)
{
    mkdir(work("syn"), 0777);
    static const char *const prefixes[2] = {"train", "t10k"};
    for (int s = 0; s < 2; s++) {
        char path[1300];
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", work("syn"), prefixes[s]);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        put_be32(f, 0x803);
        put_be32(f, SYN_N);
        put_be32(f, 28);
        put_be32(f, 28);
        for (int i = 0; i < SYN_N * 28 * 28; i++)
            assert_int_equal(fputc((i * 7 + i / 784) & 0xff, f), (i * 7 + i / 784) & 0xff);
        assert_int_equal(fclose(f), 0);
        snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", work("syn"), prefixes[s]);
        f = fopen(path, "wb");
        assert_non_null(f);
        put_be32(f, 0x801);
        put_be32(f, SYN_N);
        for (int i = 0; i < SYN_N; i++)
            assert_int_equal(fputc(i % 10, f), i % 10);
        assert_int_equal(fclose(f), 0);
    }
}

/* Runs FNN_BIN with args under the address-space limit; fails the test if it hangs. */
static run_t run_limited(const char *const *args)
{
    const char *errpath = work("stderr.txt");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit lim = {(rlim_t)LIMIT_MB << 20, (rlim_t)LIMIT_MB << 20};
        int out = open("/dev/null", O_WRONLY);
        int err = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 ||
            setrlimit(RLIMIT_AS, &lim) != 0)
            _exit(126);
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)FNN_BIN;
        for (; args[n - 1] && n < 31; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(FNN_BIN, argv);
        _exit(127);
    }
    run_t r = {0, 0, ""};
    int status = 0;
    for (int waited_ms = 0;; waited_ms += 20) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        assert_true(w >= 0);
        if (w == pid)
            break;
        if (waited_ms > RUN_TIMEOUT_S * 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s %s ... hung for %d s under a %d MiB address-space limit", FNN_BIN,
                     args[0], RUN_TIMEOUT_S, LIMIT_MB);
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    FILE *f = fopen(errpath, "r");
    assert_non_null(f);
    size_t got = fread(r.err, 1, sizeof r.err - 1, f);
    r.err[got] = '\0';
    fclose(f);
    if (WIFSIGNALED(status))
        r.signaled = WTERMSIG(status);
    else
        r.code = WEXITSTATUS(status);
    print_message("%s %s: %s%d\n%s", FNN_BIN, args[0], r.signaled ? "signal " : "exit ",
                  r.signaled ? r.signaled : r.code, r.err);
    return r;
}

/* The run ended by itself with exit 1 and a message naming the allocation. */
static void assert_reported_oom(const run_t *r, const char *what)
{
    if (r->signaled)
        fail_msg("killed by signal %d instead of reporting the failed allocation", r->signaled);
    assert_int_equal(r->code, 1);
    if (!strstr(r->err, "out of memory"))
        fail_msg("stderr does not say \"out of memory\": %s", r->err);
    if (!strstr(r->err, what))
        fail_msg("stderr does not name \"%s\": %s", what, r->err);
}

static int setup(void **state)
{
    (void)state;
    const char *dir = getenv("FNN_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/test_safety_oom.work", dir && *dir ? dir : "/tmp");
    mkdir(g_dir, 0777);
    return 0;
}

static int sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 1; /* ASan reserves terabytes of shadow memory: no address-space limit fits */
#else
    return 0;
#endif
}

/* The limit leaves room for ordinary work, so the failures below are about their size. */
static void test_control_fits(void **state)
{
    (void)state;
    if (sanitized())
        skip();
    write_synthetic();
    const char *args[] = {"train", "--data", work("syn"), "--epochs", "1", "--quiet",
                          "--out", work("control.safetensors"), NULL};
    run_t r = run_limited(args);
    assert_int_equal(r.signaled, 0);
    assert_int_equal(r.code, 0);
}

/* 159 million parameters: 1.2 GiB for the weights and their gradients alone. */
#define WIDE_ARCH "flatten dense:200000 dense:10:softmax"

static void test_wide_model(void **state)
{
    (void)state;
    if (sanitized())
        skip();
    write_synthetic();
    const char *args[] = {"train", "--data", work("syn"), "--epochs", "1", "--quiet",
                          "--arch", WIDE_ARCH, "--out", work("wide.safetensors"), NULL};
    run_t r = run_limited(args);
    if (r.signaled)
        fail_msg("killed by signal %d instead of reporting the failed allocation", r.signaled);
    /* A runtime failure (1), not a usage error (2): the spec itself is fine. */
    assert_int_equal(r.code, 1);
    if (!strstr(r.err, "out of memory") || !strstr(r.err, "159000010 parameters"))
        fail_msg("stderr does not report the failed allocation: %s", r.err);
    struct stat sb;
    assert_true(stat(work("wide.safetensors"), &sb) != 0);
}

/* A model file whose architecture needs 1.2 GiB (its tensors are not even there: the model is
 * built first) makes `fnn summary` fail with exit 1. */
static void test_wide_model_file(void **state)
{
    (void)state;
    if (sanitized())
        skip();
    const char *keys[] = {"format", "arch", "input_shape", "class_names"};
    const char *values[] = {"fnn", WIDE_ARCH, "[1, 28, 28]",
                            "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]"};
    fnn_error err = {FNN_OK, ""};
    assert_int_equal(fnn_st_write(work("wide_file.safetensors"), NULL, 0, keys, values, 4, &err),
                     FNN_OK);
    const char *args[] = {"summary", work("wide_file.safetensors"), NULL};
    run_t r = run_limited(args);
    assert_reported_oom(&r, "159000010 parameters");
}

/* A batch of all 60000 training images through 64 full-size feature maps: about 23 GB. */
static void test_huge_batch(void **state)
{
    (void)state;
    if (sanitized())
        skip();
    const char *args[] = {"train", "--batch-size", "65536", "--val-split", "0", "--epochs", "1",
                          "--no-test", "--quiet", "--arch",
                          "conv2d:64:3:same:relu flatten dense:10:softmax", "--out",
                          work("batch.safetensors"), NULL};
    run_t r = run_limited(args);
    assert_reported_oom(&r, "batch of 60000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_fits),
        cmocka_unit_test(test_wide_model),
        cmocka_unit_test(test_wide_model_file),
        cmocka_unit_test(test_huge_batch),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
