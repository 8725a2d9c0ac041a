/* End-to-end tests of fnn train's experiment features, run as a user would run them (spawned
 * processes on synthetic IDX data): exact resume, Ctrl-C, NaN handling, early stopping,
 * transfer learning with frozen layers, kept classes, k-fold cross-validation. */
#define _GNU_SOURCE /* nftw; sched_getaffinity */

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
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fnn.h"

#define PATH_CAP 1024
#define RUN_TIMEOUT_S 60

static char g_base[PATH_CAP]; /* $FNN_TMP/test_train_features.work: everything written here */
static char g_syn[PATH_CAP + 16]; /* a synthetic data directory */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

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

/* ---------------------------------------------------------------- threads */

/* Without --threads the team is the cores other processes left free, counted among this
 * process's own (its affinity), and said in the JSON; the checkpoint keeps the count, so a
 * resumed run trains with it whatever the machine runs then. */
static void test_default_threads_free_cores_kept_by_checkpoint(void **state)
{
    char ck[PATH_CAP];
    pathf(ck, "%s/threads.ckpt", g_base);
    run_t r = FNN("train", "--data", g_syn, "--batch-size", "16", "--quiet", "--json", "--epochs",
                  "1", "--no-test", "--checkpoint", ck);
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    cJSON *cfg = get(doc, "config"), *how = get(cfg, "threads_chosen");
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
    int threads = (int)get_number(cfg, "threads");
    assert_string_equal(get(how, "by")->valuestring, "free cores");
    assert_int_equal((int)get_number(how, "cores"), CPU_COUNT(&mine));
    assert_true(get_number(how, "cores_busy") >= 0.0);
    assert_true(threads >= 1 && threads <= CPU_COUNT(&mine));
    cJSON_Delete(doc);
    run_free(&r);

    r = FNN("train", "--resume", ck, "--epochs", "2", "--quiet", "--json", "--no-test");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    cfg = get(doc, "config");
    assert_int_equal((int)get_number(cfg, "threads"), threads);
    assert_string_equal(get(get(cfg, "threads_chosen"), "by")->valuestring, "checkpoint");
    cJSON_Delete(doc);
    run_free(&r);
}

/* ---------------------------------------------------------------- resume */

/* 3 epochs straight and 2 + a resume to 3 end in the same file, byte for byte, with dropout,
 * augmentation, a step schedule and clipping all drawing on the seed and the step, and the
 * weights' average (in the checkpoint) and flip-averaged validation in the history. */
static void test_resume_equals_straight(void **state)
{
    char straight[PATH_CAP], part[PATH_CAP], resumed[PATH_CAP], ck[PATH_CAP];
    pathf(straight, "%s/straight.safetensors", g_base);
    pathf(part, "%s/part.safetensors", g_base);
    pathf(resumed, "%s/resumed.safetensors", g_base);
    pathf(ck, "%s/resume.ckpt", g_base);
#define FEATURES "--aug-shift", "2", "--aug-flip", "--aug-rotate", "10", "--aug-erase", "0.5", \
                 "--lr-schedule", "step", "--lr-step-epochs", "1", "--lr-gamma", "0.5",      \
                 "--clip-norm", "2", "--optimizer", "adamw", "--ema", "0.9", "--ema-every", "2", \
                 "--tta", "flip"
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
    /* Trained without the average and validated without the mirror. */
    r = FNN("train", "--resume", ck, "--epochs", "2", "--ema", "0.99");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--ema");
    run_free(&r);
    r = FNN("train", "--resume", ck, "--epochs", "2", "--tta", "flip");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--tta");
    run_free(&r);
    r = FNN("train", SYN, "--epochs", "1", "--ema-every", "5");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--ema-every applies to --ema");
    run_free(&r);
    /* Already at epoch 1: asking for 1 is nothing to do. */
    r = FNN("train", "--resume", ck, "--epochs", "1", "--out", out);
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "has 1 epoch done;");
    run_free(&r);
}

/* The first run's command line with --resume added works, and gives the uninterrupted run's
 * model; each setup option that says something else than the checkpoint is refused (exit 2,
 * nothing written) with both values named. */
static void test_resume_compares_options(void **state)
{
    char ck[PATH_CAP], ck2[PATH_CAP], part[PATH_CAP], resumed[PATH_CAP], straight[PATH_CAP],
        out[PATH_CAP];
    pathf(ck, "%s/same.ckpt", g_base);
    pathf(ck2, "%s/same2.ckpt", g_base);
    pathf(part, "%s/same_part.safetensors", g_base);
    pathf(resumed, "%s/same_resumed.safetensors", g_base);
    pathf(straight, "%s/same_straight.safetensors", g_base);
    pathf(out, "%s/conflict.safetensors", g_base);
#define FIRST "--seed", "5", "--arch", "mlp", "--optimizer", "sgd", "--lr", "0.05",             \
              "--momentum", "0.9", "--nesterov", "--lr-schedule", "plateau", "--lr-patience", \
              "1", "--lr-factor", "0.5", "--lr-min", "0.001", "--warmup-epochs", "1",         \
              "--aug-shift", "1", "--aug-flip", "--clip-norm", "3", "--early-stopping", "5",  \
              "--monitor", "val_accuracy", "--val-split", "0.25", "--limit", "180",           \
              "--test-limit", "40", "--per-class", "12"
    run_t r = FNN("train", SYN, FIRST, "--epochs", "1", "--out", part, "--checkpoint", ck);
    expect_code(&r, 0);
    run_free(&r);
    /* Resumed runs write their checkpoints elsewhere, so that ck stays at epoch 1. */
    r = FNN("train", SYN, FIRST, "--epochs", "2", "--out", resumed, "--resume", ck,
            "--checkpoint", ck2);
    expect_code(&r, 0);
    run_free(&r);
    r = FNN("train", SYN, FIRST, "--epochs", "2", "--out", straight);
    expect_code(&r, 0);
    run_free(&r);
    assert_files_equal(straight, resumed);

    static const struct {
        const char *opt, *value, *message;
    } conflicts[] = {
        {"--seed", "6", "--seed 6 differs from the checkpoint's 5"},
        {"--optimizer", "adam", "--optimizer adam differs from the checkpoint's sgd"},
        {"--lr", "0.01", "--lr 0.01 differs from the checkpoint's 0.05"},
        {"--lr-min", "0.002", "--lr-min 0.002 differs from the checkpoint's 0.001"},
        {"--lr-schedule", "step", "--lr-schedule step differs from the checkpoint's plateau"},
        {"--aug-rotate", "5", "--aug-rotate 5 differs from the checkpoint's 0"},
        {"--batch-size", "8", "--batch-size 8 differs from the checkpoint's 16"},
        {"--val-split", "0.2", "--val-split 0.2 differs from the checkpoint's 0.25"},
        {"--per-class", "13", "--per-class 13 differs from the checkpoint's 12"},
        {"--classes", "1,2", "--classes 1,2 differs from the checkpoint's all"},
        {"--monitor", "val_loss", "--monitor val_loss differs from the checkpoint's val_accuracy"},
        {"--arch", "flatten dense:10:softmax", "--arch flatten dense:10:softmax differs from "
                                               "the checkpoint's 'flatten dense:"},
        {"--no-test", NULL, "--no-test is given but the checkpoint's run was without it"},
        {"--aug-erase", "0.5", "--aug-erase 0.5 differs from the checkpoint's 0"},
        {"--folds", "3", "--folds 3 cannot resume"},
    };
    for (size_t i = 0; i < sizeof conflicts / sizeof *conflicts; i++) {
        char want[PATH_CAP + 128];
        snprintf(want, sizeof want, "--resume %s: %s", ck, conflicts[i].message);
        if (conflicts[i].value)
            r = FNN("train", SYN, FIRST, conflicts[i].opt, conflicts[i].value, "--epochs", "2",
                    "--out", out, "--resume", ck);
        else
            r = FNN("train", SYN, FIRST, conflicts[i].opt, "--epochs", "2", "--out", out,
                    "--resume", ck);
        expect_code(&r, 2);
        expect_contains(r.err, "stderr", want);
        run_free(&r);
        assert_false(file_exists(out));
    }
    /* Options given alone, as the help promised before: the preset name for the stored arch
     * and the flags that were on. */
    r = FNN("train", "--resume", ck, "--epochs", "2", "--out", out, "--checkpoint", ck2,
            "--arch", "mlp", "--nesterov", "--aug-flip", "--seed", "5", "--quiet");
    expect_code(&r, 0);
    run_free(&r);
    assert_files_equal(straight, out);
#undef FIRST
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
    run_t r = finish_run(pid, id, "fnn", "train", RUN_TIMEOUT_S);
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
    /* A head of the wrong size is a usage error that says what to write (a preset's head is
     * made for the classes). */
    r = FNN("train", SYN, "--epochs", "1", "--classes", "2,3", "--arch",
            "flatten dense:10:softmax", "--out", out);
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
    if (work_dir(g_base, sizeof g_base, "test_train_features") != 0)
        return -1;
    snprintf(g_syn, sizeof g_syn, "%s/fashion-syn", g_base); /* Fashion-MNIST names */
    make_data_dir(g_syn);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_lists_options),
        cmocka_unit_test(test_default_threads_free_cores_kept_by_checkpoint),
        cmocka_unit_test(test_resume_equals_straight),
        cmocka_unit_test(test_resume_refuses_options),
        cmocka_unit_test(test_resume_compares_options),
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
