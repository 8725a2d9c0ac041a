/* End-to-end tests of the fnn command-line tool, run as a user would run it (posix_spawn, no
 * shell): reports, JSON, model round trips, reproducibility, and every kind of bad input, which
 * must give the right exit status, a message naming the culprit, and no file at --out. */
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
#include <dirent.h>
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

#define REAL_DATA FNN_DEFAULT_DATA_DIR
#define PATH_CAP 1024
/* No single run may take longer; a hung CLI fails its test instead of stalling ctest. */
#define RUN_TIMEOUT_S 60

static const char *const class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                            "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                            "Bag",         "Ankle boot"};

static char g_base[PATH_CAP]; /* $FNN_TMP/test_cli.work (not test_cli: that is this program): everything this program writes */
static char g_syn[PATH_CAP + 16]; /* a valid synthetic data directory (plain IDX files) */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

/* ---------------------------------------------------------------- files and directories */

static void copy_prefix(const char *from, const char *to, size_t nbytes)
{
    size_t len;
    char *data = read_all(from, &len);
    if (!data)
        fail_msg("cannot read %s", from);
    assert_true(nbytes <= len);
    write_file(to, data, nbytes);
    free(data);
}

/* The names in dir, sorted and joined by spaces (empty string for an empty dir); malloc'd. */
static char *list_dir(const char *dir)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0)
        fail_msg("cannot list %s: %s", dir, strerror(errno));
    char *out = calloc(1, 1);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (strcmp(name, ".") && strcmp(name, "..")) {
            out = realloc(out, len + strlen(name) + 2);
            assert_non_null(out);
            len += (size_t)sprintf(out + len, "%s%s", len ? " " : "", name);
        }
        free(ents[i]);
    }
    free(ents);
    return out;
}

/* ---------------------------------------------------------------- the real data */

static int real_data_present(void)
{
    struct stat st;
    return stat(REAL_DATA, &st) == 0 && S_ISDIR(st.st_mode);
}

#define NEED_REAL_DATA()                                                                         \
    do {                                                                                         \
        if (!real_data_present()) {                                                              \
            print_message("skipped: %s is absent (Debian package dataset-fashion-mnist)\n",      \
                          REAL_DATA);                                                            \
            skip();                                                                              \
        }                                                                                        \
    } while (0)

/* ---------------------------------------------------------------- trainings shared by tests */

typedef struct {
    int done;
    run_t r;
    char model[PATH_CAP];
    char history[PATH_CAP]; /* the default: MODEL without .safetensors, plus .history.csv */
} trained;

/* `fnn train` on the first 2000 training and 500 test images of the real data, run once per
 * program and shared: seed 42 in text mode, in --json mode and with --quiet, and seed 43. */
static trained g_text, g_json, g_quiet, g_seed43;

static const trained *real_train(trained *t, const char *name, const char *seed, const char *mode)
{
    if (t->done)
        return t;
    pathf(t->model, "%s/%s.safetensors", g_base, name);
    pathf(t->history, "%s/%s.history.csv", g_base, name);
    unlink(t->model);
    unlink(t->history);
    const char *args[] = {"train",   "--data",     REAL_DATA, "--limit",   "2000",
                          "--test-limit", "500",   "--epochs", "1",        "--threads",
                          "2",       "--seed",     seed,      "--out",     t->model,
                          mode,      NULL};
    t->r = run_argv(args);
    expect_code(&t->r, 0);
    t->done = 1;
    return t;
}

static const trained *text_run(void) { return real_train(&g_text, "text", "42", NULL); }
static const trained *json_run(void) { return real_train(&g_json, "json", "42", "--json"); }
static const trained *quiet_run(void) { return real_train(&g_quiet, "quiet", "42", "--quiet"); }
static const trained *seed43_run(void) { return real_train(&g_seed43, "seed43", "43", "--quiet"); }

/* A model trained on the synthetic data (no real data needed), for the eval error tests. */
static char g_syn_model[PATH_CAP];
static cJSON *g_syn_json;

static const char *syn_model(void)
{
    if (g_syn_json)
        return g_syn_model;
    pathf(g_syn_model, "%s/syn.safetensors", g_base);
    run_t r = FNN("train", "--data", g_syn, "--epochs", "1", "--threads", "2", "--batch-size",
                  "16", "--out", g_syn_model, "--json");
    expect_code(&r, 0);
    g_syn_json = parse_json(r.out);
    run_free(&r);
    return g_syn_model;
}

/* ---------------------------------------------------------------- safetensors comparison */

/* 1 when both files hold the same tensors (names, shapes) with the same bytes, 0 when the
 * tensors match in name and shape but some bytes differ; fails on any other difference. Also
 * returns the number of tensors in *count. */
static int same_weights(const char *pa, const char *pb, int *count)
{
    st_file a, b;
    st_read(pa, &a);
    st_read(pb, &b);
    int same = 1, n = 0;
    const cJSON *ta;
    cJSON_ArrayForEach(ta, a.header)
    {
        if (!strcmp(ta->string, "__metadata__"))
            continue;
        n++;
        cJSON *tb = cJSON_GetObjectItemCaseSensitive(b.header, ta->string);
        if (!tb)
            fail_msg("%s has tensor \"%s\", %s does not", pa, ta->string, pb);
        assert_true(cJSON_Compare(get(ta, "shape"), get(tb, "shape"), 1));
        size_t la, lb;
        const char *da = st_tensor(&a, ta, &la), *db = st_tensor(&b, tb, &lb);
        assert_int_equal(la, lb);
        if (memcmp(da, db, la) != 0)
            same = 0;
    }
    assert_int_equal(cJSON_GetArraySize(a.header), cJSON_GetArraySize(b.header));
    st_free(&a);
    st_free(&b);
    *count = n;
    return same;
}

/* ---------------------------------------------------------------- failing trainings */

static const char PREEXISTING_MODEL[] = "a model from an earlier run\n\x00\x01\x02\xff";
static const char PREEXISTING_HISTORY[] = "epoch,train_loss\n1,0.5\n";

static void expect_stderr_has(const run_t *r, const char *const *needles)
{
    if (!r->err[0])
        fail_msg("exit status %d with nothing on stderr", r->code);
    for (int i = 0; needles && needles[i]; i++)
        expect_contains(r->err, "stderr", needles[i]);
}

/* Runs `fnn train --out DIR/model.safetensors ARGS...` (DIR a new directory under g_base named
 * after `label`) twice: with DIR empty, then with a model and a history file already there.
 * Both runs must exit with `code`, say every string of `needles` on stderr, and leave DIR as it
 * was: no new model, history or temporary file, and the old files byte for byte. Usage errors
 * must also print nothing on stdout. */
static void expect_train_failure(const char *label, int code, const char *const *args,
                                 const char *const *needles)
{
    char dir[PATH_CAP], model[PATH_CAP], history[PATH_CAP], saved[PATH_CAP];
    pathf(dir, "%s/fail_%s", g_base, label);
    pathf(model, "%s/model.safetensors", dir);
    pathf(history, "%s/model.history.csv", dir);
    fresh_dir(dir);

    const char *argv[48] = {"train", "--out", model};
    int n = 3;
    for (int i = 0; args[i]; i++) {
        assert_true(n < 46);
        argv[n++] = args[i];
    }
    argv[n] = NULL;

    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            write_file(model, PREEXISTING_MODEL, sizeof PREEXISTING_MODEL);
            write_file(history, PREEXISTING_HISTORY, strlen(PREEXISTING_HISTORY));
        }
        run_t r = run_argv(argv);
        expect_code(&r, code);
        expect_stderr_has(&r, needles);
        if (code == 2 && r.out[0])
            fail_msg("a usage error printed on stdout:\n%.2000s", r.out);
        char *names = list_dir(dir);
        const char *want = pass ? "model.history.csv model.safetensors" : "";
        if (strcmp(names, want))
            fail_msg("after a failed run (%s) the output directory holds \"%s\", expected \"%s\"",
                     r.err, names, want);
        free(names);
        run_free(&r);
    }
    pathf(saved, "%s/expected_model", g_base);
    write_file(saved, PREEXISTING_MODEL, sizeof PREEXISTING_MODEL);
    assert_files_equal(model, saved);
    write_file(saved, PREEXISTING_HISTORY, strlen(PREEXISTING_HISTORY));
    assert_files_equal(history, saved);
    unlink(saved);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ================================================================ the real data: train */

static void test_train_text_report(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    const trained *t = text_run();
    const char *out = t->r.out;

    /* What was read and how it was split; Fashion-MNIST's directory gives its names. */
    expect_contains(out, "stdout", "\ndata: IDX " REAL_DATA " (10 classes, 2,000 images, 1x28x28); "
                                   "validation: last 20% (400 images)\n");
    expect_contains(out, "stdout", "\ntest data: IDX " REAL_DATA " (500 images)\n");
    expect_contains(out, "stdout", "\nclass names: T-shirt/top, Trouser, Pullover, Dress, Coat, "
                                   "Sandal, Shirt, Sneaker, Bag, Ankle boot\n");
    expect_contains(out, "stdout", "\nnormalization: scale, pixel / 255\n");
    expect_contains(out, "stdout", "\nimages: 1600 train / 400 validation / 500 test (loaded");
    /* The Keras summary of the study's MLP. */
    expect_contains(out, "stdout", "Model: \"sequential\"");
    expect_contains(out, "stdout", " Layer (type)                Output Shape              Param #");
    expect_contains(out, "stdout", " dense (Dense)               (None, 128)               100480");
    expect_contains(out, "stdout", "Total params: 109,386");
    expect_contains(out, "stdout", "Trainable params: 109,386");

    /* The epoch line names both splits; its numbers are the history file's. */
    const char *ep = strstr(out, "\nEpoch 1/1 ");
    if (!ep)
        fail_msg("no \"Epoch 1/1\" line:\n%s", out);
    int e, ne;
    double secs, tl, ta, vl, va;
    if (sscanf(ep + 1, "Epoch %d/%d %lfs train loss %lf acc %lf validation loss %lf acc %lf", &e,
               &ne, &secs, &tl, &ta, &vl, &va) != 7)
        fail_msg("epoch line not \"Epoch 1/1  Ts  train loss L acc A  validation loss L acc A\": "
                 "%.200s", ep + 1);
    assert_int_equal(e, 1);
    assert_int_equal(ne, 1);
    assert_true(tl > 0 && tl < 5 && vl > 0 && vl < 5);
    assert_true(ta > 0.2 && ta <= 1 && va > 0.2 && va <= 1);

    /* The history file: a header and one row per epoch, agreeing with the epoch line. */
    char *csv = read_all(t->history, NULL);
    if (!csv)
        fail_msg("no history file at %s", t->history);
    static const char header[] = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds\n";
    if (strncmp(csv, header, strlen(header)))
        fail_msg("history %s does not start with the header %s:\n%s", t->history, header, csv);
    const char *row = csv + strlen(header) - 1;
    double h[5];
    int he, used = 0;
    assert_int_equal(sscanf(row + 1, "%d,%lf,%lf,%lf,%lf,%lf\n%n", &he, &h[0], &h[1], &h[2], &h[3],
                            &h[4], &used),
                     6);
    assert_int_equal(he, 1);
    assert_true(used > 0 && row[1 + used] == '\0'); /* exactly one row */
    assert_true(fabs(h[0] - tl) < 6e-5 && fabs(h[1] - ta) < 6e-5);
    assert_true(fabs(h[2] - vl) < 6e-5 && fabs(h[3] - va) < 6e-5);
    free(csv);
    assert_true(file_exists(t->model));

    /* The test block: the split is named on every metric line. */
    const char *tl_line = strstr(out, "\ntest: ");
    assert_non_null(tl_line);
    int n;
    double loss, acc;
    assert_int_equal(sscanf(tl_line + 1, "test: %d images, loss %lf, accuracy %lf", &n, &loss, &acc),
                     3);
    assert_int_equal(n, 500);
    assert_true(loss > 0 && loss < 5 && acc > 0.2 && acc <= 1);
    const char *conf = strstr(out, "Confusion matrix (test)\n");
    const char *rep = strstr(out, "Classification report (test)\n");
    assert_non_null(conf);
    assert_non_null(rep);
    assert_true(conf > tl_line && rep > conf);
    expect_contains(out, "stdout", "rows: true class, columns: predicted class");

    /* Every class name in the confusion matrix, each row's counts summing to its support. */
    int total = 0;
    for (int k = 0; k < 10; k++) {
        char head[64];
        snprintf(head, sizeof head, "\n%-11s %d |", class_names[k], k);
        const char *r = strstr(conf, head);
        if (!r || r > rep)
            fail_msg("confusion matrix has no row \"%s\"", head + 1);
        r += strlen(head);
        for (int j = 0; j < 10; j++) {
            char *end;
            long c = strtol(r, &end, 10);
            assert_true(end != r && c >= 0);
            total += (int)c;
            r = end;
        }
    }
    assert_int_equal(total, 500);

    /* scikit-learn's layout: 12-wide right-aligned names, then 10-wide columns. */
    expect_contains(rep, "report",
                    "Classification report (test)\n"
                    "              precision    recall  f1-score   support\n\n");
    for (int k = 0; k < 10; k++) {
        char head[32];
        snprintf(head, sizeof head, "\n%12s ", class_names[k]);
        const char *r = strstr(rep, head);
        if (!r)
            fail_msg("classification report has no row for \"%s\":\n%s", class_names[k], rep);
        double p, rc, f1;
        int sup;
        assert_int_equal(sscanf(r + strlen(head), "%lf %lf %lf %d", &p, &rc, &f1, &sup), 4);
        assert_true(p >= 0 && p <= 1 && rc >= 0 && rc <= 1 && f1 >= 0 && f1 <= 1);
        assert_true(sup > 0);
    }
    char line[128];
    snprintf(line, sizeof line, "\n    accuracy %10s%10s%10.4f%10d\n", "", "", acc, 500);
    expect_contains(rep, "report", line);
    expect_contains(rep, "report", "\n   macro avg ");
    expect_contains(rep, "report", "\nweighted avg ");
    expect_contains(out, "stdout", "saved the model to ");
}

static void test_train_json(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    const trained *t = json_run();
    if (t->r.err[0])
        fail_msg("--json run wrote on stderr: %s", t->r.err);
    cJSON *doc = parse_json(t->r.out);

    assert_true(cJSON_IsString(get(doc, "fnn_version")));
    assert_string_equal(get(doc, "fnn_version")->valuestring, FNN_VERSION);
    assert_true(cJSON_IsString(get(doc, "gemm")));
    assert_string_equal(get(doc, "gemm")->valuestring, fnn_gemm_library());
    cJSON *model = get(doc, "model");
    assert_int_equal((int)get_number(model, "total_params"), 109386);
    cJSON *data = get(doc, "data");
    assert_int_equal((int)get_number(data, "train"), 1600);
    assert_int_equal((int)get_number(data, "validation"), 400);
    assert_int_equal((int)get_number(data, "test"), 500);
    cJSON *cfg = get(doc, "config");
    assert_int_equal((int)get_number(cfg, "epochs"), 1);
    assert_int_equal((int)get_number(cfg, "seed"), 42);
    assert_int_equal((int)get_number(cfg, "threads"), 2);

    /* history: one entry per epoch in every column. */
    cJSON *hist = get(doc, "history");
    const char *cols[] = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"};
    for (int i = 0; i < 5; i++) {
        cJSON *a = get(hist, cols[i]);
        assert_true(cJSON_IsArray(a));
        assert_int_equal(cJSON_GetArraySize(a), 1);
        assert_true(cJSON_IsNumber(cJSON_GetArrayItem(a, 0)));
    }
    assert_int_equal(cJSON_GetArrayItem(get(hist, "epoch"), 0)->valueint, 1);

    /* test metrics: the accuracy is the confusion matrix's trace over its sum. */
    cJSON *test = get(doc, "test");
    assert_int_equal((int)get_number(test, "images"), 500);
    double acc = get_number(test, "accuracy");
    cJSON *conf = get(test, "confusion_matrix");
    assert_int_equal(cJSON_GetArraySize(conf), 10);
    int total = 0, diag = 0;
    for (int i = 0; i < 10; i++) {
        cJSON *row = cJSON_GetArrayItem(conf, i);
        assert_int_equal(cJSON_GetArraySize(row), 10);
        for (int j = 0; j < 10; j++) {
            int c = cJSON_GetArrayItem(row, j)->valueint;
            total += c;
            diag += i == j ? c : 0;
        }
    }
    assert_int_equal(total, 500);
    assert_true(fabs(acc - diag / 500.0) < 1e-12);
    cJSON *classes = get(test, "classes");
    assert_int_equal(cJSON_GetArraySize(classes), 10);
    for (int k = 0; k < 10; k++)
        assert_string_equal(get(cJSON_GetArrayItem(classes, k), "label")->valuestring,
                            class_names[k]);
    get(test, "macro_avg");
    get(test, "weighted_avg");
    assert_string_equal(get(doc, "model_file")->valuestring, t->model);
    assert_string_equal(get(doc, "history_file")->valuestring, t->history);
    assert_true(file_exists(t->model));
    assert_true(file_exists(t->history));
    cJSON_Delete(doc);
}

static void test_train_quiet(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    const trained *t = quiet_run();
    if (t->r.out[0])
        fail_msg("--quiet printed on stdout:\n%.2000s", t->r.out);
    if (t->r.err[0])
        fail_msg("--quiet printed on stderr without an error:\n%.2000s", t->r.err);
    assert_true(file_exists(t->model));
    assert_true(file_exists(t->history));
}

/* ================================================================ the real data: round trips */

/* eval of the saved model on the same 500 test images reports exactly what train did. */
static void test_eval_round_trip_json(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    const trained *t = json_run();
    run_t r = FNN("eval", t->model, "--limit", "500", "--threads", "2", "--json");
    expect_code(&r, 0);
    cJSON *ev = parse_json(r.out), *tr = parse_json(t->r.out);
    assert_string_equal(get(ev, "split")->valuestring, "test");
    assert_string_equal(get(ev, "arch")->valuestring, get(get(tr, "model"), "arch")->valuestring);
    cJSON *a = get(tr, "test"), *b = get(ev, "test");
    assert_int_equal((int)get_number(b, "images"), 500);
    assert_true(get_number(a, "accuracy") == get_number(b, "accuracy"));
    if (!cJSON_Compare(get(a, "confusion_matrix"), get(b, "confusion_matrix"), 1))
        fail_msg("train and eval confusion matrices differ");
    if (!cJSON_Compare(get(a, "classes"), get(b, "classes"), 1))
        fail_msg("train and eval per-class metrics differ");
    assert_true(fabs(get_number(a, "loss") - get_number(b, "loss")) < 1e-6);
    cJSON_Delete(ev);
    cJSON_Delete(tr);
    run_free(&r);
}

/* eval's text report is the same block, byte for byte, as train's test block. */
static void test_eval_round_trip_text(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    const trained *t = text_run();
    run_t r = FNN("eval", t->model, "--limit", "500", "--threads", "2");
    expect_code(&r, 0);
    char head[3 * PATH_CAP];
    snprintf(head, sizeof head, "model: %s (%s)\ndata: IDX %s, test split\n", t->model,
             FNN_DEFAULT_ARCH, REAL_DATA);
    size_t hl = strlen(head);
    if (strncmp(r.out, head, hl))
        fail_msg("eval output does not start with \"%s\":\n%.500s", head, r.out);
    expect_contains(r.out, "eval stdout", "test: 500 images, loss ");
    expect_contains(t->r.out, "train stdout", r.out + hl);
    run_free(&r);
}

static void test_summary_file_matches_arch(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    const trained *t = text_run();
    run_t f = FNN("summary", t->model), a = FNN("summary", "--arch", "mlp");
    expect_code(&f, 0);
    expect_code(&a, 0);
    /* The file's summary is the table, then what the file holds besides its layers. */
    char want[4096];
    snprintf(want, sizeof want,
             "%sinput: 1x28x28 (grey, 28 rows, 28 columns)\nnormalization: scale, pixel / 255\n"
             "class names (10): T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, "
             "Sneaker, Bag, Ankle boot\n",
             a.out);
    assert_string_equal(f.out, want);
    expect_contains(a.out, "summary", "Total params: 109,386");
    expect_contains(t->r.out, "train stdout", a.out); /* train prints the same table */

    run_t fj = FNN("summary", t->model, "--json"), aj = FNN("summary", "--arch", "mlp", "--json");
    expect_code(&fj, 0);
    expect_code(&aj, 0);
    cJSON *x = parse_json(fj.out), *y = parse_json(aj.out);
    cJSON *norm = cJSON_DetachItemFromObject(x, "normalization"),
          *names = cJSON_DetachItemFromObject(x, "class_names");
    assert_string_equal(get(norm, "kind")->valuestring, "scale");
    assert_int_equal(cJSON_GetArraySize(names), 10);
    assert_string_equal(cJSON_GetArrayItem(names, 9)->valuestring, "Ankle boot");
    cJSON_Delete(norm);
    cJSON_Delete(names);
    if (!cJSON_Compare(x, y, 1))
        fail_msg("summary --json differs between the file and --arch mlp:\n%s\n%s", fj.out,
                 aj.out);
    assert_int_equal((int)get_number(x, "total_params"), 109386);
    assert_string_equal(get(x, "arch")->valuestring, FNN_DEFAULT_ARCH);
    cJSON *layers = get(x, "layers");
    assert_int_equal(cJSON_GetArraySize(layers), 5);
    assert_int_equal((int)get_number(cJSON_GetArrayItem(layers, 1), "params"), 100480);
    cJSON_Delete(x);
    cJSON_Delete(y);
    run_free(&f);
    run_free(&a);
    run_free(&fj);
    run_free(&aj);
}

/* ================================================================ the real data: reproducibility */

/* Same seed and threads: the same weights, whether the run printed text, JSON or nothing. */
static void test_same_seed_same_weights(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    int n;
    if (!same_weights(text_run()->model, json_run()->model, &n))
        fail_msg("two trainings with --seed 42 --threads 2 gave different weights");
    assert_int_equal(n, 6); /* three dense layers: kernel and bias */
    if (!same_weights(text_run()->model, quiet_run()->model, &n))
        fail_msg("two trainings with --seed 42 --threads 2 gave different weights");
}

/* ... and byte-identical model files, as the help text promises ("bit for bit"). */
static void test_same_seed_identical_files(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    assert_files_equal(text_run()->model, json_run()->model);
}

static void test_other_seed_other_weights(void **state)
{
    (void)state;
    NEED_REAL_DATA();
    int n;
    if (same_weights(text_run()->model, seed43_run()->model, &n))
        fail_msg("--seed 42 and --seed 43 gave the same weights");
    assert_int_equal(n, 6);
}

/* ================================================================ synthetic data */

/* Train then eval on generated files: works without the real data set. */
static void test_synthetic_round_trip(void **state)
{
    (void)state;
    const char *model = syn_model();
    cJSON *data = get(g_syn_json, "data");
    assert_int_equal((int)get_number(data, "train"), SYN_TRAIN * 4 / 5);
    assert_int_equal((int)get_number(data, "validation"), SYN_TRAIN / 5);
    assert_int_equal((int)get_number(data, "test"), SYN_TEST);
    run_t r = FNN("eval", model, "--data", g_syn, "--threads", "2", "--json");
    expect_code(&r, 0);
    cJSON *ev = parse_json(r.out);
    cJSON *a = get(g_syn_json, "test"), *b = get(ev, "test");
    assert_int_equal((int)get_number(b, "images"), SYN_TEST);
    assert_true(get_number(a, "accuracy") == get_number(b, "accuracy"));
    if (!cJSON_Compare(get(a, "confusion_matrix"), get(b, "confusion_matrix"), 1))
        fail_msg("train and eval confusion matrices differ");
    cJSON_Delete(ev);
    run_free(&r);

    /* --split train --limit: the first N training images. */
    r = FNN("eval", model, "--data", g_syn, "--split", "train", "--limit", "30", "--json");
    expect_code(&r, 0);
    ev = parse_json(r.out);
    assert_int_equal((int)get_number(get(ev, "train"), "images"), 30);
    cJSON_Delete(ev);
    run_free(&r);
}

/* --history PATH.json writes JSON; --val-split 0 has no validation columns to fill. */
static void test_history_json_and_no_validation(void **state)
{
    (void)state;
    char dir[PATH_CAP], model[PATH_CAP], hist[PATH_CAP];
    pathf(dir, "%s/history_json", g_base);
    fresh_dir(dir);
    pathf(model, "%s/m.safetensors", dir);
    pathf(hist, "%s/h.json", dir);
    run_t r = FNN("train", "--data", g_syn, "--epochs", "2", "--threads", "2", "--val-split", "0",
                  "--out", model, "--history", hist);
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "Epoch 2/2 ");
    if (strstr(r.out, "validation loss"))
        fail_msg("--val-split 0 printed validation metrics:\n%s", r.out);
    char *text = read_all(hist, NULL);
    if (!text)
        fail_msg("no history at %s", hist);
    cJSON *h = parse_json(text);
    assert_int_equal(cJSON_GetArraySize(get(h, "epoch")), 2);
    assert_int_equal(cJSON_GetArraySize(get(h, "train_loss")), 2);
    cJSON_Delete(h);
    free(text);
    char *names = list_dir(dir);
    assert_string_equal(names, "h.json m.safetensors");
    free(names);
    run_free(&r);
}

static void test_summary_arch_spec(void **state)
{
    (void)state;
    run_t r = FNN("summary", "--arch", "flatten dense:32:relu dense:10:softmax");
    expect_code(&r, 0);
    expect_contains(r.out, "summary", " dense (Dense)               (None, 32)                25120");
    expect_contains(r.out, "summary", "Total params: 25,450");
    run_free(&r);
}

/* ================================================================ help and usage */

static void test_help(void **state)
{
    (void)state;
    const char *const cases[][2] = {{"--help", NULL}, {"-h", NULL},          {"help", NULL},
                                    {"train", "--help"}, {"eval", "--help"}, {"summary", "--help"},
                                    {"train", "-h"}};
    const char *const starts[] = {"usage: fnn COMMAND", "usage: fnn COMMAND", "usage: fnn COMMAND",
                                  "usage: fnn train",   "usage: fnn eval",    "usage: fnn summary",
                                  "usage: fnn train"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_t r = run_argv((const char *const[]){cases[i][0], cases[i][1], NULL});
        expect_code(&r, 0);
        if (strncmp(r.out, starts[i], strlen(starts[i])))
            fail_msg("fnn %s %s: stdout does not start with \"%s\":\n%.300s", cases[i][0],
                     cases[i][1] ? cases[i][1] : "", starts[i], r.out);
        assert_string_equal(r.err, "");
        run_free(&r);
    }
    run_t r = FNN("train", "--help");
    const char *opts[] = {"--data", "--limit", "--test-limit", "--epochs", "--arch",
                          "--out", "--history", "--json", "--quiet", "--seed", "--threads",
                          "--val-split", "--batch-size", "--lr", "Exit status"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        expect_contains(r.out, "fnn train --help", opts[i]);
    run_free(&r);
    r = FNN("eval", "--help");
    expect_contains(r.out, "fnn eval --help", "--limit");
    expect_contains(r.out, "fnn eval --help", "--json");
    run_free(&r);
    r = FNN("summary", "--help");
    expect_contains(r.out, "fnn summary --help", "--arch");
    run_free(&r);

    r = FNN("--version");
    expect_code(&r, 0);
#ifdef FNN_GEMM_DNNL
    assert_string_equal(r.out, "fnn " FNN_VERSION " (matrix products: oneDNN)\n");
#else
    assert_string_equal(r.out, "fnn " FNN_VERSION " (matrix products: OpenBLAS)\n");
#endif
    run_free(&r);
}

/* --help wins over the rest of the line: it reads no data and writes nothing. */
static void test_help_writes_nothing(void **state)
{
    (void)state;
    char dir[PATH_CAP], model[PATH_CAP];
    pathf(dir, "%s/help", g_base);
    fresh_dir(dir);
    run_t r = FNN("train", "--out", pathf(model, "%s/m.safetensors", dir), "--data", "/nonexistent",
                  "--help");
    expect_code(&r, 0);
    expect_contains(r.out, "stdout", "usage: fnn train");
    assert_string_equal(r.err, "");
    char *names = list_dir(dir);
    assert_string_equal(names, "");
    free(names);
    run_free(&r);
}

static void test_no_arguments(void **state)
{
    (void)state;
    run_t r = run_argv((const char *const[]){NULL});
    expect_code(&r, 2);
    assert_string_equal(r.out, "");
    expect_contains(r.err, "stderr", "usage: fnn COMMAND");
    run_free(&r);
}

static void test_unknown_command(void **state)
{
    (void)state;
    run_t r = FNN("frobnicate", "--epochs", "1");
    expect_code(&r, 2);
    assert_string_equal(r.out, "");
    expect_contains(r.err, "stderr", "unknown command 'frobnicate'");
    run_free(&r);
}

/* ================================================================ usage errors of train */

static void test_unknown_options(void **state)
{
    (void)state;
    expect_train_failure("bogus", 2, ARGS("--bogus"), ARGS("'--bogus'", "fnn train --help"));
    expect_train_failure("short", 2, ARGS("-x"), ARGS("'-x'"));
    expect_train_failure("extra", 2, ARGS("extra"), ARGS("unexpected argument 'extra'"));
    expect_train_failure("noval", 2, ARGS("--epochs"), ARGS("'--epochs'", "needs a value"));
}

/* An unknown short option inside a cluster: the message must name it, not a neighbour. */
static void test_unknown_option_in_cluster(void **state)
{
    (void)state;
    expect_train_failure("cluster", 2, ARGS("-xy"), ARGS("'-x'"));
}

static void test_bad_values(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"--epochs", "abc", "epochs_abc"},      {"--epochs", "0", "epochs_0"},
        {"--epochs", "1.5", "epochs_frac"},     {"--epochs", "", "epochs_empty"},
        {"--epochs", "99999999999999999999", "epochs_huge"},
        {"--batch-size", "-1", "batch"},        {"--lr", "abc", "lr_abc"},
        {"--lr", "-0.1", "lr_neg"},             {"--lr", "nan", "lr_nan"},
        {"--val-split", "1", "val"},            {"--seed", "-1", "seed"},
        {"--threads", "two", "threads"},        {"--limit", "0", "limit"},
        {"--test-limit", "1e3", "test_limit"},  {"--optimizer", "rmsprop", "optimizer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", cases[i][1]);
        expect_train_failure(cases[i][2], 2, ARGS(cases[i][0], cases[i][1]),
                             ARGS(cases[i][0], quoted));
    }
    expect_train_failure("momentum", 2, ARGS("--momentum", "0.9"), ARGS("--momentum"));
}

static void test_bad_arch(void **state)
{
    (void)state;
    expect_train_failure("arch_units", 2, ARGS("--arch", "flatten dense:abc dense:10:softmax"),
                         ARGS("\"dense:abc\""));
    expect_train_failure("arch_layer", 2, ARGS("--arch", "flatten conv:3 dense:10:softmax"),
                         ARGS("\"conv:3\""));
    expect_train_failure("arch_act", 2, ARGS("--arch", "flatten dense:64:tanh dense:10:softmax"),
                         ARGS("\"dense:64:tanh\""));
    expect_train_failure("arch_rate", 2, ARGS("--arch", "flatten dropout:1.5 dense:10:softmax"),
                         ARGS("\"dropout:1.5\""));
    expect_train_failure("arch_empty", 2, ARGS("--arch", ""), ARGS("architecture"));
    run_t r = FNN("summary", "--arch", "flatten dense:abc");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "\"dense:abc\"");
    run_free(&r);
}

/* ================================================================ data errors of train */

static void test_missing_data_dir(void **state)
{
    (void)state;
    expect_train_failure("nodata", 1, ARGS("--data", "/nonexistent", "--epochs", "1"),
                         ARGS("/nonexistent: no such file", "dataset-fashion-mnist"));
}

/* One file missing from an otherwise complete directory: that file is named. */
static void test_missing_test_file(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP];
    pathf(dir, "%s/data_notest", g_base);
    make_data_dir(dir);
    unlink(pathf(p, "%s/t10k-labels-idx1-ubyte", dir));
    expect_train_failure("notest", 1, ARGS("--data", dir, "--epochs", "1", "--threads", "2"),
                         ARGS(pathf(p, "%s/t10k-labels-idx1-ubyte", dir), "no such file"));
}

/* --no-test never opens the test files: with them gone, training still succeeds and reports no
 * test metrics. */
static void test_no_test_reads_no_test_files(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP], model[PATH_CAP];
    pathf(dir, "%s/data_no_test", g_base);
    make_data_dir(dir);
    unlink(pathf(p, "%s/t10k-labels-idx1-ubyte", dir));
    unlink(pathf(p, "%s/t10k-images-idx3-ubyte", dir));
    pathf(model, "%s/m.safetensors", dir);
    run_t r = FNN("train", "--data", dir, "--epochs", "1", "--threads", "2", "--no-test",
                  "--out", model, "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    if (!cJSON_IsNull(get(doc, "test")))
        fail_msg("--no-test still reported test metrics:\n%s", r.out);
    assert_true(file_exists(model));
    cJSON_Delete(doc);
    run_free(&r);
}

static void test_corrupt_idx_files(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP], q[PATH_CAP];
    const char *const train_args[] = {"--data", dir, "--epochs", "1", "--threads", "2", NULL};

    /* wrong magic number in the training images */
    pathf(dir, "%s/data_magic", g_base);
    make_data_dir(dir);
    pathf(p, "%s/train-images-idx3-ubyte", dir);
    uint32_t dims[3] = {SYN_TRAIN, 28, 28};
    uint8_t *px = calloc((size_t)SYN_TRAIN * 28 * 28, 1);
    assert_non_null(px);
    write_idx(p, 0x12345678u, dims, 3, px, (size_t)SYN_TRAIN * 28 * 28, 0);
    free(px);
    expect_train_failure("magic", 1, train_args, ARGS(p, "magic"));

    /* test labels cut short of what the header declares */
    pathf(dir, "%s/data_short", g_base);
    make_data_dir(dir);
    pathf(p, "%s/t10k-labels-idx1-ubyte", dir);
    write_labels(p, SYN_TEST - 20, SYN_TEST, -1);
    expect_train_failure("short_labels", 1, train_args, ARGS(p, "truncated"));

    /* images and labels disagree on the count: both files are named */
    pathf(dir, "%s/data_count", g_base);
    make_data_dir(dir);
    pathf(p, "%s/train-labels-idx1-ubyte", dir);
    pathf(q, "%s/train-images-idx3-ubyte", dir);
    write_labels(p, SYN_TRAIN - 1, SYN_TRAIN - 1, -1);
    expect_train_failure("count", 1, train_args, ARGS(p, q));

    /* a gzipped training image file cut in half */
    pathf(dir, "%s/data_gz", g_base);
    make_data_dir(dir);
    pathf(p, "%s/train-images-idx3-ubyte", dir);
    unlink(p);
    pathf(p, "%s/train-images-idx3-ubyte.gz", dir);
    write_images(p, SYN_TRAIN, 28, 1);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size / 2), 0);
    expect_train_failure("gz", 1, train_args, ARGS(p));

    /* an empty file */
    pathf(dir, "%s/data_empty", g_base);
    make_data_dir(dir);
    pathf(p, "%s/t10k-images-idx3-ubyte", dir);
    write_file(p, "", 0);
    expect_train_failure("empty", 1, train_args, ARGS(p));
}

/* The classes come from the data: an IDX label 37 makes 38 classes, which a preset's head
 * follows but an --arch ending with 10 units does not fit (a usage error naming 38); a test
 * label beyond the training set's classes names the test labels file. Nothing is written. */
static void test_label_out_of_range(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP];
    pathf(dir, "%s/data_label", g_base);
    make_data_dir(dir);
    pathf(p, "%s/train-labels-idx1-ubyte", dir);
    write_labels(p, SYN_TRAIN, SYN_TRAIN, 37);
    expect_train_failure("label_arch", 2,
                         ARGS("--data", dir, "--epochs", "1", "--threads", "2", "--arch",
                              "flatten dense:10:softmax"),
                         ARGS("38 classes", "10 units", "dense:38:softmax"));
    make_data_dir(dir);
    pathf(p, "%s/t10k-labels-idx1-ubyte", dir);
    write_labels(p, SYN_TEST, SYN_TEST, 37);
    expect_train_failure("label_test", 1, ARGS("--data", dir, "--epochs", "1", "--threads", "2"),
                         ARGS(p, "38 classes", "training set 10"));
}

/* A test set whose images have another shape than the training set's, and --init-from a model
 * made for another shape: each refused, naming both shapes, nothing written. */
static void test_wrong_image_size(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP];
    pathf(dir, "%s/data_size", g_base);
    make_data_dir(dir);
    write_images(pathf(p, "%s/t10k-images-idx3-ubyte", dir), SYN_TEST, 10, 0);
    expect_train_failure("size", 1, ARGS("--data", dir, "--epochs", "1", "--threads", "2"),
                         ARGS(dir, "1x10x10", "1x28x28"));
    write_images(pathf(p, "%s/train-images-idx3-ubyte", dir), SYN_TRAIN, 10, 0);
    expect_train_failure("size_init", 1,
                         ARGS("--data", dir, "--epochs", "1", "--threads", "2", "--init-from",
                              syn_model()),
                         ARGS(syn_model(), "1x28x28", "1x10x10"));
}

/* ================================================================ output errors of train */

static void test_unwritable_out(void **state)
{
    (void)state;
    char dir[PATH_CAP], model[PATH_CAP];
    pathf(dir, "%s/out_missing_dir", g_base);
    fresh_dir(dir);
    pathf(model, "%s/no/such/dir/m.safetensors", dir);
    run_t r = FNN("train", "--data", g_syn, "--epochs", "1", "--threads", "2", "--quiet", "--out",
                  model);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", model);
    char *names = list_dir(dir);
    assert_string_equal(names, "");
    free(names);
    run_free(&r);
}

/* The history cannot be written: the run fails, so it must not leave (or replace) the model. */
static void test_unwritable_history_leaves_no_model(void **state)
{
    (void)state;
    char hist[PATH_CAP];
    pathf(hist, "%s/fail_history/no/such/dir/h.csv", g_base);
    expect_train_failure("history", 1,
                         ARGS("--data", g_syn, "--epochs", "1", "--threads", "2", "--quiet",
                              "--history", hist),
                         ARGS(hist));
}

/* ================================================================ eval and summary errors */

/* Both `fnn eval PATH` and `fnn summary PATH` must fail with status 1, print nothing on stdout
 * and name PATH (and every string of needles) on stderr. */
static void expect_load_failure(const char *path, const char *const *needles)
{
    for (int i = 0; i < 2; i++) {
        run_t r = i == 0 ? FNN("eval", path, "--data", g_syn, "--threads", "2")
                         : FNN("summary", path);
        expect_code(&r, 1);
        assert_string_equal(r.out, "");
        expect_contains(r.err, "stderr", path);
        for (int k = 0; needles && needles[k]; k++)
            expect_contains(r.err, "stderr", needles[k]);
        run_free(&r);
    }
}

static void test_eval_missing_model(void **state)
{
    (void)state;
    char p[PATH_CAP];
    expect_load_failure(pathf(p, "%s/no_such_model.safetensors", g_base), NULL);
}

static void test_eval_truncated_model(void **state)
{
    (void)state;
    const char *model = syn_model();
    struct stat st;
    assert_int_equal(stat(model, &st), 0);
    char p[PATH_CAP];
    /* inside the header, then inside the tensor data, then one byte short */
    size_t cuts[] = {4, 100, (size_t)st.st_size / 2, (size_t)st.st_size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        pathf(p, "%s/truncated%zu.safetensors", g_base, i);
        copy_prefix(model, p, cuts[i]);
        expect_load_failure(p, NULL);
    }
}

static void test_eval_garbage_model(void **state)
{
    (void)state;
    char p[PATH_CAP];
    uint8_t junk[4096];
    uint32_t s = 7;
    for (size_t i = 0; i < sizeof junk; i++) {
        s = s * 1103515245u + 12345u;
        junk[i] = (uint8_t)(s >> 16);
    }
    pathf(p, "%s/garbage.safetensors", g_base);
    write_file(p, junk, sizeof junk);
    expect_load_failure(p, NULL);
    pathf(p, "%s/empty.safetensors", g_base);
    write_file(p, "", 0);
    expect_load_failure(p, NULL);
    /* a plausible header length followed by text that is not JSON */
    static const char notjson[] = "\x10\0\0\0\0\0\0\0{not json at all";
    pathf(p, "%s/notjson.safetensors", g_base);
    write_file(p, notjson, sizeof notjson - 1);
    expect_load_failure(p, NULL);
}

/* Files that are not fnn models: a valid safetensors file from elsewhere, a CSV, an IDX file,
 * a directory. */
static void test_eval_not_a_model(void **state)
{
    (void)state;
    char p[PATH_CAP];
    expect_load_failure(FNN_FIXTURES "/mlp_parity.safetensors", ARGS("not an fnn model"));
    pathf(p, "%s/history.csv", g_base);
    write_file(p, "epoch,train_loss\n1,0.5\n", 23);
    expect_load_failure(p, NULL);
    expect_load_failure(pathf(p, "%s/train-labels-idx1-ubyte", g_syn), NULL);
    expect_load_failure(g_syn, NULL);
}

static void test_eval_usage_errors(void **state)
{
    (void)state;
    const char *model = syn_model();
    run_t r = FNN("eval");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "MODEL");
    run_free(&r);
    r = FNN("eval", model, model);
    expect_code(&r, 2);
    run_free(&r);
    r = FNN("eval", model, "--limit", "abc");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--limit");
    expect_contains(r.err, "stderr", "'abc'");
    run_free(&r);
    r = FNN("eval", model, "--split", "validation");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "'validation'");
    run_free(&r);
    r = FNN("eval", model, "--bogus");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "'--bogus'");
    run_free(&r);
    r = FNN("eval", model, "--data", "/nonexistent");
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "/nonexistent: no such file");
    expect_contains(r.err, "stderr", "dataset-fashion-mnist");
    run_free(&r);
    r = FNN("summary");
    expect_code(&r, 2);
    run_free(&r);
    r = FNN("summary", model, "--arch", "mlp");
    expect_code(&r, 2);
    run_free(&r);
}

/* ================================================================ main */

static int group_setup(void **state)
{
    (void)state;
    if (work_dir(g_base, sizeof g_base, "test_cli") != 0)
        return -1;
    snprintf(g_syn, sizeof g_syn, "%s/syn", g_base);
    make_data_dir(g_syn);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    trained *all[] = {&g_text, &g_json, &g_quiet, &g_seed43};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        run_free(&all[i]->r);
    cJSON_Delete(g_syn_json);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_help_writes_nothing),
        cmocka_unit_test(test_no_arguments),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_unknown_options),
        cmocka_unit_test(test_unknown_option_in_cluster),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bad_arch),
        cmocka_unit_test(test_summary_arch_spec),
        cmocka_unit_test(test_missing_data_dir),
        cmocka_unit_test(test_missing_test_file),
        cmocka_unit_test(test_no_test_reads_no_test_files),
        cmocka_unit_test(test_corrupt_idx_files),
        cmocka_unit_test(test_label_out_of_range),
        cmocka_unit_test(test_wrong_image_size),
        cmocka_unit_test(test_synthetic_round_trip),
        cmocka_unit_test(test_history_json_and_no_validation),
        cmocka_unit_test(test_unwritable_out),
        cmocka_unit_test(test_unwritable_history_leaves_no_model),
        cmocka_unit_test(test_eval_missing_model),
        cmocka_unit_test(test_eval_truncated_model),
        cmocka_unit_test(test_eval_garbage_model),
        cmocka_unit_test(test_eval_not_a_model),
        cmocka_unit_test(test_eval_usage_errors),
        cmocka_unit_test(test_train_text_report),
        cmocka_unit_test(test_train_json),
        cmocka_unit_test(test_train_quiet),
        cmocka_unit_test(test_eval_round_trip_json),
        cmocka_unit_test(test_eval_round_trip_text),
        cmocka_unit_test(test_summary_file_matches_arch),
        cmocka_unit_test(test_same_seed_same_weights),
        cmocka_unit_test(test_same_seed_identical_files),
        cmocka_unit_test(test_other_seed_other_weights),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
