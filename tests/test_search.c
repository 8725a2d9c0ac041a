/* End-to-end tests of fnn search, run as a user would run it: the grid and its trials, random
 * search, the results files, a test set that is read only at the end, resuming, Ctrl-C, and bad
 * grids. The grid-file parser (cli/grid.c) is also driven directly. Trials train on a tiny
 * synthetic data set, so each takes a fraction of a second. */
#define _GNU_SOURCE

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
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fnn.h"
/* The parser is CLI code, not part of libfnn: compiled into this test to be called directly. */
#include "../cli/grid.c"

#define PATH_CAP 1024
/* No single run may take longer; a hung search fails its test instead of stalling ctest. */
#define RUN_TIMEOUT_S 120

static char g_base[PATH_CAP]; /* $FNN_TMP/test_search.work: everything this program writes */
static char g_syn[PATH_CAP + 16]; /* a valid synthetic data directory */
static char g_notest[PATH_CAP + 16]; /* the same without its t10k files */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

/* ---------------------------------------------------------------- JSON and search helpers */

static cJSON *parse_file(const char *path)
{
    char *text = read_all(path, NULL);
    if (!text)
        fail_msg("cannot read %s", path);
    cJSON *doc = parse_json(text);
    free(text);
    return doc;
}

static const char *get_string(const cJSON *o, const char *key)
{
    cJSON *v = get(o, key);
    if (!cJSON_IsString(v))
        fail_msg("JSON \"%s\" is not a string", key);
    return v->valuestring;
}

/* fnn train's own --json document for a trial of results.json: what the trial really ran. */
static cJSON *train_doc(const cJSON *trial)
{
    return parse_file(get_string(trial, "train_output"));
}

/* The number of lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += !strncmp(p, prefix, len);
    return n;
}

static int count_files(const char *pattern)
{
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g), n = rc == 0 ? (int)g.gl_pathc : 0;
    globfree(&g);
    return n;
}

/* A search on the synthetic data: one epoch per trial, two workers. */
#define SEARCH(out, ...)                                                                        \
    FNN("search", "--out", out, "--data", g_syn, "--epochs", "1", "--workers", "2", __VA_ARGS__)

/* ================================================================ the grid and its trials */

/* Every combination, numbered in grid order (last key fastest), and each trial's fnn train ran
 * exactly those values, on one thread, without the test set. */
static void test_grid_product(void **state)
{
    (void)state;
    char out[PATH_CAP], p[PATH_CAP];
    pathf(out, "%s/product", g_base);
    run_t r = SEARCH(out, "--grid", "lr=0.001,0.002", "--grid", "batch-size=16,32,64",
                     "--no-final-test", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *trials = get(doc, "trials"), *e;
    assert_int_equal(cJSON_GetArraySize(trials), 6);
    assert_int_equal((int)get_number(doc, "configurations"), 6);
    static const char *const lrs[] = {"0.001", "0.002"}, *const sizes[] = {"16", "32", "64"};
    int seen[6] = {0};
    cJSON_ArrayForEach(e, trials) {
        int num = (int)get_number(e, "trial");
        assert_in_range(num, 1, 6);
        seen[num - 1]++;
        const char *lr = get_string(get(e, "params"), "lr");
        const char *bs = get_string(get(e, "params"), "batch-size");
        assert_string_equal(lr, lrs[(num - 1) / 3]);
        assert_string_equal(bs, sizes[(num - 1) % 3]);
        cJSON *tr = train_doc(e);
        cJSON *cfg = get(tr, "config");
        assert_float_equal(get_number(cfg, "lr"), atof(lr), 1e-7);
        assert_int_equal((int)get_number(cfg, "batch_size"), atoi(bs));
        assert_int_equal((int)get_number(cfg, "threads"), 1);
        assert_int_equal((int)get_number(cfg, "seed"), 42);
        if (!cJSON_IsNull(get(tr, "test")))
            fail_msg("trial %d read the test set", num);
        assert_true(file_exists(pathf(p, "%s/trial-%03d.safetensors", out, num)));
        cJSON_Delete(tr);
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal(seen[i], 1);
    /* With --json the progress lines go to stderr, one per trial. */
    assert_int_equal(count_lines(r.err, "trial "), 6);
    assert_int_equal(count_lines(r.out, "trial "), 0);
    assert_false(file_exists(pathf(p, "%s/trial-best.safetensors", out)));
    cJSON *file = parse_file(pathf(p, "%s/results.json", out));
    assert_true(cJSON_Compare(file, doc, 1));
    cJSON_Delete(file);
    cJSON_Delete(doc);
    run_free(&r);
}

/* {name} placeholders in --arch are filled per trial; a plain arch key picks presets. */
static void test_arch_template(void **state)
{
    (void)state;
    char out[PATH_CAP], want[256];
    pathf(out, "%s/template", g_base);
    run_t r = SEARCH(out, "--arch", "flatten dense:{width}:relu dropout:{dropout} dense:10:softmax",
                     "--grid", "width=8,16", "--grid", "dropout=0.25,0.5", "--no-final-test",
                     "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *e;
    assert_int_equal(cJSON_GetArraySize(get(doc, "trials")), 4);
    cJSON_ArrayForEach(e, get(doc, "trials")) {
        cJSON *params = get(e, "params");
        snprintf(want, sizeof want, "flatten dense:%s:relu dropout:%s dense:10:softmax",
                 get_string(params, "width"), get_string(params, "dropout"));
        cJSON *tr = train_doc(e);
        assert_string_equal(get_string(get(tr, "model"), "arch"), want);
        cJSON_Delete(tr);
    }
    cJSON_Delete(doc);
    run_free(&r);

    pathf(out, "%s/presets", g_base);
    r = SEARCH(out, "--grid", "arch=mlp,cnn", "--no-final-test", "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    cJSON_ArrayForEach(e, get(doc, "trials")) {
        cJSON *tr = train_doc(e);
        const char *arch = get_string(get(tr, "model"), "arch");
        if (!strcmp(get_string(get(e, "params"), "arch"), "mlp"))
            assert_string_equal(arch, FNN_DEFAULT_ARCH);
        else
            expect_contains(arch, "cnn trial's arch", "conv2d");
        cJSON_Delete(tr);
    }
    cJSON_Delete(doc);
    run_free(&r);
}

/* "lr=0.002 batch-size=16,..." of each trial, in trial order, as one string. */
static char *random_params(const char *out, const char *seed)
{
    run_t r = SEARCH(out, "--grid", "lr=0.001,0.002,0.003", "--grid", "batch-size=8,16,32,64",
                     "--samples", "4", "--seed", seed, "--no-final-test", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *e;
    assert_string_equal(get_string(doc, "search"), "random");
    cJSON *trials = get(doc, "trials");
    assert_int_equal(cJSON_GetArraySize(trials), 4);
    char keys[4][64] = {{0}};
    cJSON_ArrayForEach(e, trials) {
        int num = (int)get_number(e, "trial");
        assert_in_range(num, 1, 4);
        const char *lr = get_string(get(e, "params"), "lr");
        const char *bs = get_string(get(e, "params"), "batch-size");
        assert_true(!strcmp(lr, "0.001") || !strcmp(lr, "0.002") || !strcmp(lr, "0.003"));
        assert_true(!strcmp(bs, "8") || !strcmp(bs, "16") || !strcmp(bs, "32") || !strcmp(bs, "64"));
        snprintf(keys[num - 1], sizeof keys[0], "%s/%s", lr, bs);
        cJSON *tr = train_doc(e);
        assert_int_equal((int)get_number(get(tr, "config"), "batch_size"), atoi(bs));
        cJSON_Delete(tr);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(keys[i], keys[j]))
                fail_msg("--samples drew %s twice", keys[i]);
    char *all = malloc(4 * 64 + 4);
    assert_non_null(all);
    snprintf(all, 4 * 64 + 4, "%s %s %s %s", keys[0], keys[1], keys[2], keys[3]);
    cJSON_Delete(doc);
    run_free(&r);
    return all;
}

/* N distinct configurations from the grid; the same seed draws the same ones, another seed
 * others. */
static void test_random_search(void **state)
{
    (void)state;
    char a[PATH_CAP], b[PATH_CAP], c[PATH_CAP];
    char *pa = random_params(pathf(a, "%s/random_a", g_base), "7");
    char *pb = random_params(pathf(b, "%s/random_b", g_base), "7");
    char *pc = random_params(pathf(c, "%s/random_c", g_base), "8");
    assert_string_equal(pa, pb);
    if (!strcmp(pa, pc))
        fail_msg("seeds 7 and 8 drew the same trials: %s", pa);
    free(pa);
    free(pb);
    free(pc);
    run_t r = SEARCH(pathf(a, "%s/random_too_many", g_base), "--grid", "lr=0.001,0.002",
                     "--samples", "3");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--samples 3");
    assert_false(file_exists(a));
    run_free(&r);
}

/* ================================================================ results and the test set */

/* results.csv and results.json list the same trials in the same order, sorted by validation
 * accuracy, with the numbers fnn train reported; the final test is the one of trial-best. */
static void test_results_files_agree(void **state)
{
    (void)state;
    char out[PATH_CAP], p[PATH_CAP];
    pathf(out, "%s/results", g_base);
    run_t r = SEARCH(out, "--grid", "lr=0.0003,0.003,0.03", "--grid", "batch-size=8,32");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "test accuracy of the best configuration (the only time the "
                                     "test set was read)");
    cJSON *doc = parse_file(pathf(p, "%s/results.json", out));
    cJSON *trials = get(doc, "trials");
    int n = cJSON_GetArraySize(trials);
    assert_int_equal(n, 6);
    char *csv = read_all(pathf(p, "%s/results.csv", out), NULL);
    assert_non_null(csv);
    char *save = NULL, *line = strtok_r(csv, "\n", &save);
    assert_string_equal(line, "rank,trial,lr,batch-size,val_accuracy,val_loss,scored_epoch,"
                              "best_val_accuracy,best_epoch,train_accuracy,epochs,seconds,status");
    double prev = INFINITY, prev_loss = -INFINITY;
    for (int i = 0; i < n; i++) {
        line = strtok_r(NULL, "\n", &save);
        assert_non_null(line);
        int rank, num;
        char lr[32], bs[32];
        double acc, loss;
        if (sscanf(line, "%d,%d,%31[^,],%31[^,],%lf,%lf,", &rank, &num, lr, bs, &acc, &loss) != 6)
            fail_msg("bad CSV row: %s", line);
        cJSON *e = cJSON_GetArrayItem(trials, i);
        assert_int_equal(rank, i + 1);
        assert_int_equal((int)get_number(e, "rank"), i + 1);
        assert_int_equal(num, (int)get_number(e, "trial"));
        assert_string_equal(lr, get_string(get(e, "params"), "lr"));
        assert_string_equal(bs, get_string(get(e, "params"), "batch-size"));
        assert_float_equal(acc, get_number(e, "val_accuracy"), 1e-6);
        assert_float_equal(loss, get_number(e, "val_loss"), 1e-6);
        assert_true(acc <= prev);
        /* Equal accuracies are ranked by the lower validation loss. */
        assert_true(acc < prev || loss >= prev_loss);
        prev = acc;
        prev_loss = loss;
        /* The score is the last epoch's validation accuracy in fnn train's own history. */
        cJSON *tr = train_doc(e);
        cJSON *val = get(get(tr, "history"), "val_accuracy");
        assert_float_equal(acc, cJSON_GetArrayItem(val, cJSON_GetArraySize(val) - 1)->valuedouble,
                           1e-6);
        cJSON_Delete(tr);
    }
    assert_null(strtok_r(NULL, "\n", &save));
    free(csv);

    /* The final test: the best trial's model, evaluated by fnn eval. */
    cJSON *best = cJSON_GetArrayItem(trials, 0);
    char best_model[PATH_CAP];
    pathf(best_model, "%s/trial-%03d.safetensors", out, (int)get_number(best, "trial"));
    assert_files_equal(best_model, pathf(p, "%s/trial-best.safetensors", out));
    run_t ev = FNN("eval", best_model, "--data", g_syn, "--json");
    expect_code(&ev, 0);
    cJSON *evd = parse_json(ev.out);
    cJSON *final = get(doc, "final_test");
    assert_true(cJSON_IsTrue(get(final, "read")));
    assert_float_equal(get_number(get(final, "test"), "accuracy"),
                       get_number(get(evd, "test"), "accuracy"), 1e-12);
    assert_int_equal((int)get_number(get(final, "test"), "images"), SYN_TEST);
    cJSON_Delete(evd);
    run_free(&ev);
    cJSON_Delete(doc);
    run_free(&r);
}

/* With no test files in the data directory every trial still succeeds, and only the final
 * evaluation, after the results are written, fails on them: a search that read the test set
 * any earlier would fail its trials here. */
static void test_test_set_read_only_at_the_end(void **state)
{
    (void)state;
    char out[PATH_CAP], p[PATH_CAP];
    pathf(out, "%s/notest", g_base);
    run_t r = FNN("search", "--out", out, "--data", g_notest, "--epochs", "1", "--workers", "2",
                  "--grid", "lr=0.001,0.002", "--grid", "batch-size=16,32");
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "test evaluation");
    expect_contains(r.err, "stderr", "t10k");
    assert_int_equal(count_lines(r.out, "trial "), 4);
    cJSON *doc = parse_file(pathf(p, "%s/results.json", out)), *e;
    cJSON_ArrayForEach(e, get(doc, "trials"))
        assert_string_equal(get_string(e, "status"), "ok");
    expect_contains(get_string(get(doc, "final_test"), "error"), "final_test.error", "t10k");
    assert_true(file_exists(pathf(p, "%s/results.csv", out)));
    cJSON_Delete(doc);
    run_free(&r);

    /* --no-final-test: the same search succeeds without ever wanting the test files. */
    pathf(out, "%s/notest_final", g_base);
    r = FNN("search", "--out", out, "--data", g_notest, "--epochs", "1", "--workers", "2",
            "--grid", "lr=0.001,0.002", "--no-final-test");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "the test set was not read");
    assert_false(file_exists(pathf(p, "%s/trial-best.safetensors", out)));
    run_free(&r);
}

/* Under --early-stopping the saved weights are those of the restored epoch, and that epoch's
 * validation accuracy is the score. */
static void test_early_stopping_score(void **state)
{
    (void)state;
    char out[PATH_CAP];
    pathf(out, "%s/early", g_base);
    run_t r = FNN("search", "--out", out, "--data", g_syn, "--workers", "2", "--epochs", "8",
                  "--early-stopping", "1", "--monitor", "val_loss", "--grid", "lr=0.03,0.1",
                  "--grid", "batch-size=8,64", "--no-final-test", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *e;
    int restored_before_last = 0;
    cJSON_ArrayForEach(e, get(doc, "trials")) {
        cJSON *tr = train_doc(e);
        cJSON *h = get(tr, "history");
        int restored = (int)get_number(h, "restored_epoch");
        int epochs = cJSON_GetArraySize(get(h, "val_accuracy"));
        restored_before_last += restored < epochs;
        assert_int_equal((int)get_number(e, "scored_epoch"), restored);
        assert_float_equal(get_number(e, "val_accuracy"),
                           cJSON_GetArrayItem(get(h, "val_accuracy"), restored - 1)->valuedouble,
                           1e-9);
        cJSON_Delete(tr);
    }
    /* Otherwise this test could not tell the restored epoch from the last. */
    if (!restored_before_last)
        fail_msg("no trial restored an earlier epoch than its last:\n%s", r.out);
    cJSON_Delete(doc);
    run_free(&r);
}

/* The number of fields in a CSV row, commas inside double quotes not counting. */
static int csv_fields(const char *row)
{
    int n = 1, quoted = 0;
    for (const char *p = row; *p && *p != '\n'; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == ',' && !quoted)
            n++;
    }
    return n;
}

/* A trial that fails at run time (its loss turns NaN) is listed as failed and the others go on. */
static void test_failed_trial_is_listed(void **state)
{
    (void)state;
    char out[PATH_CAP];
    pathf(out, "%s/nan", g_base);
    run_t r = SEARCH(out, "--optimizer", "sgd", "--grid", "lr=0.01,1000", "--no-final-test",
                     "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *first = cJSON_GetArrayItem(get(doc, "trials"), 0);
    cJSON *last = cJSON_GetArrayItem(get(doc, "trials"), 1);
    assert_string_equal(get_string(first, "status"), "ok");
    assert_string_equal(get_string(get(first, "params"), "lr"), "0.01");
    assert_string_equal(get_string(last, "status"), "failed");
    expect_contains(get_string(last, "error"), "error", "learning rate");
    expect_contains(r.err, "stderr", "FAILED");
    /* In results.csv too, with as many fields as the header (the message holds commas). */
    char p[PATH_CAP];
    char *csv = read_all(pathf(p, "%s/results.csv", out), NULL);
    assert_non_null(csv);
    char *row2 = strchr(csv, '\n') + 1, *row3 = strchr(row2, '\n') + 1;
    assert_int_equal(csv_fields(row2), csv_fields(csv));
    assert_int_equal(csv_fields(row3), csv_fields(csv));
    expect_contains(row3, "failed row", ",\"failed: fnn train: ");
    free(csv);
    cJSON_Delete(doc);
    run_free(&r);
}

/* ================================================================ resuming and Ctrl-C */

/* A second run keeps finished trials and runs only the missing ones; another grid or other
 * train options in the same directory are refused. */
static void test_resume(void **state)
{
    (void)state;
    char out[PATH_CAP], p[PATH_CAP];
    pathf(out, "%s/resume", g_base);
    run_t r = SEARCH(out, "--grid", "lr=0.001,0.002", "--grid", "batch-size=16,32",
                     "--no-final-test");
    expect_code(&r, 0);
    assert_int_equal(count_lines(r.out, "trial "), 4);
    run_free(&r);
    size_t len1;
    char *kept = read_all(pathf(p, "%s/trial-001.json", out), &len1);
    assert_non_null(kept);
    /* As if the search had stopped before trials 2 and 4 finished. */
    assert_int_equal(unlink(pathf(p, "%s/trial-002.json", out)), 0);
    assert_int_equal(unlink(pathf(p, "%s/trial-004.json", out)), 0);

    r = SEARCH(out, "--grid", "lr=0.001,0.002", "--grid", "batch-size=16,32", "--no-final-test");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "resuming: 2 of 4 trials");
    assert_int_equal(count_lines(r.out, "trial "), 2);
    assert_int_equal(count_lines(r.out, "trial 2/4 "), 1);
    assert_int_equal(count_lines(r.out, "trial 4/4 "), 1);
    /* train's JSON holds wall-clock seconds: a rerun of trial 1 would have changed it. */
    size_t len2;
    char *again = read_all(pathf(p, "%s/trial-001.json", out), &len2);
    assert_true(len1 == len2 && !memcmp(kept, again, len1));
    free(kept);
    free(again);
    cJSON *doc = parse_file(pathf(p, "%s/results.json", out));
    assert_int_equal((int)get_number(doc, "trials_run"), 2);
    assert_int_equal((int)get_number(doc, "trials_resumed"), 2);
    assert_int_equal(cJSON_GetArraySize(get(doc, "trials")), 4);
    cJSON_Delete(doc);
    run_free(&r);

    r = SEARCH(out, "--grid", "lr=0.001,0.003", "--grid", "batch-size=16,32", "--no-final-test");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "another search");
    run_free(&r);
    r = FNN("search", "--out", out, "--data", g_syn, "--epochs", "2", "--grid", "lr=0.001,0.002",
            "--grid", "batch-size=16,32", "--no-final-test");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "another search");
    run_free(&r);
}

/* Whether any process's command line mentions text (a worker left running). */
static int process_mentions(const char *text)
{
    glob_t g;
    int found = 0;
    if (glob("/proc/[0-9]*/cmdline", 0, NULL, &g) != 0)
        return 0;
    for (size_t i = 0; i < g.gl_pathc && !found; i++) {
        size_t len;
        char *cmd = read_all(g.gl_pathv[i], &len);
        for (size_t j = 0; cmd && j < len; j++)
            if (!cmd[j])
                cmd[j] = ' ';
        found = cmd && strstr(cmd, text);
        free(cmd);
    }
    globfree(&g);
    return found;
}

/* Ctrl-C (SIGINT) once a trial has finished: the search stops its workers, keeps the finished
 * trials, and the same command later finishes the rest. */
static void test_interrupt_and_continue(void **state)
{
    (void)state;
    char out[PATH_CAP], p[PATH_CAP], so[PATH_CAP], se[PATH_CAP];
    pathf(out, "%s/interrupt", g_base);
    pathf(so, "%s/interrupt.stdout", g_base);
    pathf(se, "%s/interrupt.stderr", g_base);
    const char *args[] = {FNN_BIN, "search", "--out", out, "--data", g_syn, "--epochs", "30",
                          "--workers", "1", "--grid", "lr=0.001,0.002,0.003,0.004,0.005,0.006",
                          "--no-final-test", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, so, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, se, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, FNN_BIN, &fa, NULL, (char **)args, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    struct timespec nap = {0, 5000000};
    for (int i = 0; i < 12000 && !file_exists(pathf(p, "%s/trial-001.json", out)); i++)
        nanosleep(&nap, NULL);
    assert_true(file_exists(p));
    assert_int_equal(kill(pid, SIGINT), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    char *err = read_all(se, NULL);
    assert_non_null(err);
    if (WEXITSTATUS(status) != 1 || !strstr(err, "interrupted"))
        fail_msg("exit status %d after SIGINT, stderr:\n%s", WEXITSTATUS(status), err);
    free(err);
    if (process_mentions(out))
        fail_msg("a worker of the interrupted search is still running");
    pathf(p, "%s/trial-*.json", out);
    int finished = count_files(p);
    assert_in_range(finished, 1, 5);
    assert_false(file_exists(pathf(p, "%s/results.csv", out)));

    run_t r = FNN("search", "--out", out, "--data", g_syn, "--epochs", "30", "--workers", "1",
                  "--grid", "lr=0.001,0.002,0.003,0.004,0.005,0.006", "--no-final-test");
    expect_code(&r, 0);
    char want[64];
    snprintf(want, sizeof want, "resuming: %d of 6 trials", finished);
    expect_contains(r.out, "stdout", want);
    assert_int_equal(count_lines(r.out, "trial "), 6 - finished);
    assert_int_equal(count_files(pathf(p, "%s/trial-*.json", out)), 6);
    run_free(&r);
}

/* ================================================================ bad grids */

/* A usage error before any trial starts: exit status 2, a message with each needle, and no
 * output directory. */
static void expect_refused(const char *label, const char *const *args, const char *const *needles)
{
    char out[PATH_CAP];
    pathf(out, "%s/refused", g_base);
    if (file_exists(out))
        nftw(out, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    const char *argv[48];
    int n = 0;
    const char *base[] = {"search", "--out", out, "--data", g_syn, "--epochs", "1"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        argv[n++] = base[i];
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    run_t r = run_argv(argv);
    if (r.code != 2)
        fail_msg("%s: exit status %d, expected 2\nstderr:\n%s", label, r.code, r.err);
    for (int i = 0; needles[i]; i++)
        if (!strstr(r.err, needles[i]))
            fail_msg("%s: stderr lacks \"%s\":\n%s", label, needles[i], r.err);
    if (file_exists(out))
        fail_msg("%s: %s was created although nothing should have run", label, out);
    run_free(&r);
}

#define REFUSED(label, args, ...)                                                               \
    expect_refused(label, (const char *const[]){args, NULL},                                    \
                   (const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) __VA_ARGS__

static void test_bad_grids(void **state)
{
    (void)state;
    REFUSED("unknown key", ARGS("--grid", "lrr=0.1,0.2"), "'lrr'", "not an fnn train option");
    REFUSED("bad value", ARGS("--grid", "lr=0.001,abc"), "refused by fnn train", "--lr", "'abc'");
    REFUSED("bad combination", ARGS("--grid", "momentum=0,0.9"), "--momentum", "sgd");
    REFUSED("bad arch", ARGS("--grid", "arch=mlp,dense:x"), "arch=dense:x", "token 1 \"dense:x\"");
    REFUSED("empty value", ARGS("--grid", "lr=0.1,,0.2"), "value 2 is empty");
    REFUSED("missing placeholder", ARGS("--arch", "flatten dense:{width}:relu dense:10:softmax",
                                        "--grid", "lr=0.1,0.2"),
            "{width}", "no grid key");
    REFUSED("reserved key", ARGS("--grid", "threads=1,2"), "'threads' cannot be a grid key");
    REFUSED("folds", ARGS("--grid", "lr=0.1", "--folds", "3"), "--folds cannot be given");
    REFUSED("reserved option", ARGS("--grid", "lr=0.1", "--threads", "2"), "--threads", "--workers");
    REFUSED("unknown option", ARGS("--grid", "lr=0.1", "--bogus", "1"), "'--bogus'");
    REFUSED("key and option", ARGS("--grid", "lr=0.1,0.2", "--lr", "0.3"), "--lr", "both");
    REFUSED("flag values", ARGS("--grid", "no-final-test=1"), "no-final-test");
    REFUSED("no grid", ARGS("--samples", "1"), "no grid");
    REFUSED("bad samples", ARGS("--grid", "lr=0.1", "--samples", "0"), "--samples", "'0'");
    REFUSED("no value", ARGS("--grid"), "'--grid' needs a value");

    run_t r = FNN("search", "--grid", "lr=0.1");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--out");
    run_free(&r);
}

static int process_mentions(const char *text);

/* An architecture that does not fit the data (here --classes against the model's output width)
 * stops the search before any trial runs, naming the trial and what to write. */
static void test_trial_usage_error_stops(void **state)
{
    (void)state;
    char out[PATH_CAP], p[PATH_CAP];
    pathf(out, "%s/late_usage", g_base);
    run_t r = SEARCH(out, "--classes", "5,6,7", "--arch", "flatten dense:10:softmax", "--grid",
                     "lr=0.001,0.002,0.003,0.004", "--no-final-test");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "trial 1 (lr=0.001)");
    expect_contains(r.err, "stderr", "--classes keeps 3 classes");
    expect_contains(r.err, "stderr", "dense:3:softmax");
    /* Refused before any trial ran: not even DIR was made. */
    assert_false(file_exists(out));
    assert_false(file_exists(pathf(p, "%s/results.csv", out)));
    if (process_mentions(out))
        fail_msg("a worker of the stopped search is still running");
    run_free(&r);
}

static void test_help(void **state)
{
    (void)state;
    run_t r = FNN("search", "--help");
    expect_code(&r, 0);
    if (strncmp(r.out, "usage: fnn search", strlen("usage: fnn search")))
        fail_msg("fnn search --help does not start with its usage:\n%.300s", r.out);
    const char *const parts[] = {"--grid KEY=V1", "--grid-file", "--arch TEMPLATE", "--samples",
                                 "--seed", "--workers", "--no-final-test", "--json", "results.csv",
                                 "Resuming", "example", "Exit status"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        expect_contains(r.out, "fnn search --help", parts[i]);
    assert_string_equal(r.err, "");
    run_free(&r);
    r = FNN("--help");
    expect_contains(r.out, "fnn --help", "search");
    run_free(&r);
}

/* The grid file: comments, blank lines, fixed keys; errors name the file, line and token. */
static void test_grid_file(void **state)
{
    (void)state;
    char out[PATH_CAP], path[PATH_CAP];
    pathf(path, "%s/good.grid", g_base);
    const char good[] = "# the learning rates\n\n  lr = 0.001, 0.002   # two\r\nbatch-size=16\n";
    write_file(path, good, strlen(good));
    pathf(out, "%s/gridfile", g_base);
    run_t r = SEARCH(out, "--grid-file", path, "--no-final-test", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out), *e;
    assert_int_equal(cJSON_GetArraySize(get(doc, "trials")), 2);
    cJSON_ArrayForEach(e, get(doc, "trials")) {
        cJSON *tr = train_doc(e);
        assert_int_equal((int)get_number(get(tr, "config"), "batch_size"), 16);
        cJSON_Delete(tr);
    }
    cJSON_Delete(doc);
    run_free(&r);

    const char bad[] = "lr = 0.001\n# fine\nepochs 5\n";
    write_file(pathf(path, "%s/bad.grid", g_base), bad, strlen(bad));
    REFUSED("bad grid file", ARGS("--grid-file", path), "bad.grid line 3", "'epochs 5'");
    REFUSED("missing grid file", ARGS("--grid-file", "/nonexistent/x.grid"), "/nonexistent/x.grid");
}

/* ================================================================ the parser itself */

static void expect_parse_error(const char *text, size_t len, const char *const *needles)
{
    grid g = {0};
    fnn_error err = {0};
    fnn_status s = grid_parse(&g, text, len, "g.txt", &err);
    if (s != FNN_ERR_FORMAT)
        fail_msg("parsed without error: %.*s", (int)len, text);
    for (int i = 0; needles[i]; i++)
        if (!strstr(err.msg, needles[i]))
            fail_msg("message \"%s\" lacks \"%s\"", err.msg, needles[i]);
    grid_free(&g);
}

#define PARSE_ERROR(text, ...)                                                                  \
    expect_parse_error(text, sizeof text - 1, (const char *const[]){__VA_ARGS__, NULL})

static void test_grid_parser_errors(void **state)
{
    (void)state;
    PARSE_ERROR("lr = 1\nbad line\n", "g.txt line 2", "'bad line'");
    PARSE_ERROR("lr = 1, , 2", "line 1", "'lr'", "value 2 is empty");
    PARSE_ERROR("lr = 1\n\nlr = 2", "line 3", "given twice", "g.txt line 1");
    PARSE_ERROR("1abc = 3", "line 1", "'1abc'");
    PARSE_ERROR(" = 3", "line 1", "key ''");
    PARSE_ERROR("a = x, y, x", "'x' is given twice");
    PARSE_ERROR("a = 1\nb = 2\nc = \0", "line 3", "NUL");
    PARSE_ERROR("a = b\001c", "line 1", "control character 0x01");
    PARSE_ERROR("a = 1,", "value 2 is empty");
}

static void test_grid_parser_configs(void **state)
{
    (void)state;
    grid g = {0};
    fnn_error err = {0};
    const char text[] = "# comment\n\n  lr = 0.1 , 0.2 # x\r\nwidth=8,16,32\nseed = 1";
    assert_int_equal(grid_parse(&g, text, sizeof text - 1, "g", &err), FNN_OK);
    assert_int_equal(g.nkeys, 3);
    assert_string_equal(g.keys[0].name, "lr");
    assert_int_equal(g.keys[0].nvalues, 2);
    assert_string_equal(g.keys[0].values[1], "0.2");
    assert_string_equal(g.keys[1].values[2], "32");
    assert_int_equal(grid_size(&g, 1000), 6);
    assert_int_equal(grid_size(&g, 5), 0);
    /* Last key fastest: configuration 4 is lr 0.2 (4 / 3 = 1), width 16 (4 % 3 = 1). */
    int choice[3];
    grid_config(&g, 4, choice);
    assert_int_equal(choice[0], 1);
    assert_int_equal(choice[1], 1);
    assert_int_equal(choice[2], 0);
    char *filled = grid_fill(&g, choice, "dense:{width}:relu lr{lr}", "arch", &err);
    assert_non_null(filled);
    assert_string_equal(filled, "dense:16:relu lr0.2");
    free(filled);
    assert_null(grid_fill(&g, choice, "dense:{depth}", "arch", &err));
    expect_contains(err.msg, "message", "{depth}");
    assert_null(grid_fill(&g, choice, "dense:{width", "arch", &err));
    expect_contains(err.msg, "message", "closing");
    assert_null(grid_fill(&g, choice, "{width}", "width", &err));
    /* A --grid argument joins the same grid; its key must be new. */
    assert_int_equal(grid_add(&g, "dropout=0.2,0.5", "--grid", &err), FNN_OK);
    assert_int_equal(grid_size(&g, 1000), 12);
    assert_int_equal(grid_add(&g, "width=1", "--grid 'width=1'", &err), FNN_ERR_FORMAT);
    expect_contains(err.msg, "message", "g line 4");
    grid_free(&g);
}

/* ================================================================ main */

static int group_setup(void **state)
{
    (void)state;
    if (work_dir(g_base, sizeof g_base, "test_search") != 0)
        return -1;
    snprintf(g_syn, sizeof g_syn, "%s/syn", g_base);
    snprintf(g_notest, sizeof g_notest, "%s/syn_notest", g_base);
    make_data_dir(g_syn);
    make_data_dir(g_notest);
    char p[PATH_CAP];
    unlink(pathf(p, "%s/t10k-images-idx3-ubyte", g_notest));
    unlink(pathf(p, "%s/t10k-labels-idx1-ubyte", g_notest));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_parser_errors),
        cmocka_unit_test(test_grid_parser_configs),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_grids),
        cmocka_unit_test(test_grid_file),
        cmocka_unit_test(test_trial_usage_error_stops),
        cmocka_unit_test(test_grid_product),
        cmocka_unit_test(test_arch_template),
        cmocka_unit_test(test_random_search),
        cmocka_unit_test(test_results_files_agree),
        cmocka_unit_test(test_test_set_read_only_at_the_end),
        cmocka_unit_test(test_early_stopping_score),
        cmocka_unit_test(test_failed_trial_is_listed),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_interrupt_and_continue),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
