/* Checkpoints through the library: what they hold, exact resumption with every piece of state
 * in play (early stopping's best weights, plateau cuts, augmentation, momentum), and a loader
 * that refuses damaged or mismatched files without crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fnn.h"
#include "io/safetensors.h"
#include "model/model.h"

#include <cjson/cJSON.h>

#define ARCH "flatten dense:12:relu dropout:0.3 dense:4:softmax"
#define EPOCHS 6

static char g_dir[512];

static char *path(const char *name)
{
    static char buf[4][640];
    static int turn;
    char *p = buf[turn++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

/* 96 images of 6x6 in 4 classes, labels noisy enough that validation loss goes up and down. */
static fnn_dataset make_set(int n, uint32_t seed)
{
    fnn_dataset d = {.n = n, .c = 1, .h = 6, .w = 6, .nclasses = 4, .owns = 1};
    d.images = malloc((size_t)n * 36);
    d.labels = malloc((size_t)n);
    uint32_t s = seed;
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        d.labels[i] = (uint8_t)(s >> 30);
        for (int j = 0; j < 36; j++) {
            s = s * 1664525u + 1013904223u;
            d.images[i * 36 + j] = (uint8_t)((j % 4 == d.labels[i] ? 120 : 0) + (s >> 25));
        }
    }
    return d;
}

static fnn_train_config config(void)
{
    fnn_train_config c = fnn_train_default();
    c.epochs = EPOCHS;
    c.batch_size = 10;
    c.threads = 2;
    c.seed = 7;
    c.optim = fnn_optim_default(FNN_OPT_SGD);
    c.optim.lr = 0.2f;
    c.optim.momentum = 0.9f;
    c.optim.nesterov = 1;
    c.augment = (fnn_augment_config){.shift = 1, .flip = 1, .erase = 0.3f};
    c.schedule = (fnn_lr_schedule){.kind = FNN_LR_PLATEAU, .patience = 1, .factor = 0.5f,
                                   .warmup_epochs = 1, .peak_at = 0.3f};
    c.clip_norm = 1.0f;
    c.label_smoothing = 0.1f;
    c.bn_lr_scale = 2.0f;
    c.ema = 0.9f;
    c.ema_every = 2;
    c.tta = FNN_TTA_FLIP;
    c.early_stopping = 100; /* keeps best weights without stopping */
    c.monitor = FNN_MONITOR_VAL_LOSS;
    return c;
}

static fnn_model *model(void)
{
    fnn_error err;
    fnn_model *m = fnn_model_create(ARCH, 1, 6, 6, &err);
    assert_non_null(m);
    fnn_model_init(m, 7);
    return m;
}

/* A run of `epochs` written to checkpoint `ck` (when not NULL); returns the model. */
static fnn_model *run(int epochs, const char *ck, const char *resume, fnn_epoch_stats *stats,
                      fnn_train_result *res, fnn_status want)
{
    fnn_dataset tr = make_set(96, 1), val = make_set(40, 2);
    fnn_train_config c = config();
    c.epochs = epochs;
    c.checkpoint = ck;
    c.resume = resume;
    c.checkpoint_user = "{\"note\":\"test\"}";
    fnn_model *m = model();
    fnn_error err = {0};
    fnn_status s = fnn_train_run(m, &tr, &val, &c, stats, res, &err);
    if (s != want)
        fail_msg("status %s, expected %s: %s", fnn_status_name(s), fnn_status_name(want), err.msg);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&val);
    return m;
}

static void test_info_round_trip(void **state)
{
    fnn_epoch_stats stats[EPOCHS];
    fnn_train_result res;
    fnn_model_free(run(2, path("info.ckpt"), NULL, stats, &res, FNN_OK));
    fnn_checkpoint_info info;
    fnn_error err;
    assert_int_equal(fnn_checkpoint_info_read(path("info.ckpt"), &info, &err), FNN_OK);
    fnn_train_config want = config();
    assert_string_equal(info.arch, ARCH);
    assert_int_equal(info.c, 1);
    assert_int_equal(info.h, 6);
    assert_int_equal(info.epoch, 2);
    assert_int_equal(info.step, 0);
    assert_string_equal(info.user_json, "{\"note\":\"test\"}");
    assert_int_equal(info.cfg.batch_size, want.batch_size);
    assert_true(info.cfg.seed == want.seed);
    assert_true(info.cfg.optim.lr == want.optim.lr);
    assert_true(info.cfg.optim.momentum == want.optim.momentum);
    assert_int_equal(info.cfg.optim.nesterov, 1);
    assert_int_equal(info.cfg.augment.shift, 1);
    assert_true(info.cfg.augment.erase == want.augment.erase);
    assert_int_equal(info.cfg.schedule.kind, FNN_LR_PLATEAU);
    assert_int_equal(info.cfg.schedule.warmup_epochs, 1);
    assert_true(info.cfg.schedule.peak_at == want.schedule.peak_at);
    assert_true(info.cfg.clip_norm == want.clip_norm);
    assert_true(info.cfg.label_smoothing == want.label_smoothing);
    assert_true(info.cfg.bn_lr_scale == want.bn_lr_scale);
    assert_true(info.cfg.ema == want.ema);
    assert_int_equal(info.cfg.ema_every, want.ema_every);
    assert_int_equal(info.cfg.tta, FNN_TTA_FLIP);
    assert_int_equal(info.cfg.early_stopping, 100);
    assert_null(info.cfg.checkpoint);
    fnn_checkpoint_info_free(&info);
}

/* EPOCHS straight against 3 + resume: the same parameter arena bit for bit, the same history
 * and the same restored epoch. The plateau schedule cuts along the way (its state is in the
 * checkpoint), and the restored epoch is not the last (the best weights are in it). */
static void test_resume_exact(void **state)
{
    fnn_epoch_stats a[EPOCHS], b[EPOCHS];
    fnn_train_result ra, rb;
    fnn_model *straight = run(EPOCHS, path("full.ckpt"), NULL, a, &ra, FNN_OK);
    fnn_model_free(run(3, path("part.ckpt"), NULL, b, &rb, FNN_OK));
    /* The plateau schedule did cut the rate, so its state mattered. */
    fnn_st_file f;
    fnn_error ferr;
    assert_int_equal(fnn_st_read(path("full.ckpt"), &f, &ferr), FNN_OK);
    cJSON *st = cJSON_Parse(fnn_st_meta(&f, "state"));
    assert_non_null(st);
    assert_true(cJSON_GetObjectItem(st, "plateau_scale")->valuedouble < 1.0);
    cJSON_Delete(st);
    fnn_st_free(&f);
    fnn_model *resumed = run(EPOCHS, NULL, path("part.ckpt"), b, &rb, FNN_OK);
    assert_int_equal(rb.resumed_epoch, 3);
    assert_int_equal(ra.epochs, EPOCHS);
    assert_int_equal(rb.epochs, EPOCHS);
    assert_int_equal(ra.best_epoch, rb.best_epoch);
    assert_true(ra.best_epoch >= 1 && ra.best_epoch < EPOCHS);
    assert_memory_equal(straight->params, resumed->params,
                        straight->arena_size * sizeof *straight->params);
    for (int e = 0; e < EPOCHS; e++) {
        assert_true(a[e].train_loss == b[e].train_loss);
        assert_true(a[e].val_loss == b[e].val_loss);
        assert_true(a[e].val_acc == b[e].val_acc);
    }
    /* Without the restored weights the model would be the last epoch's: check they differ,
     * so the equality above covers the best weights too. */
    fnn_train_config c = config();
    c.early_stopping = 0;
    fnn_dataset tr = make_set(96, 1), val = make_set(40, 2);
    fnn_model *last = model();
    fnn_error err;
    fnn_epoch_stats s[EPOCHS];
    assert_int_equal(fnn_train_run(last, &tr, &val, &c, s, NULL, &err), FNN_OK);
    assert_memory_not_equal(last->params, straight->params,
                            last->arena_size * sizeof *last->params);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&val);
    fnn_model_free(last);
    fnn_model_free(straight);
    fnn_model_free(resumed);
}

/* An interrupt seen at the first step writes a checkpoint at step 0 of epoch 1 and returns
 * FNN_ERR_INTERRUPTED; resuming it gives the straight run's model. */
static void test_interrupt_flag(void **state)
{
    fnn_dataset tr = make_set(96, 1), val = make_set(40, 2);
    fnn_train_config c = config();
    c.epochs = 2;
    volatile int flag = 1;
    c.interrupt = &flag;
    c.checkpoint = path("int.ckpt");
    fnn_model *m = model();
    fnn_error err;
    fnn_epoch_stats s[2];
    fnn_train_result res;
    assert_int_equal(fnn_train_run(m, &tr, &val, &c, s, &res, &err), FNN_ERR_INTERRUPTED);
    assert_int_equal(res.interrupted, 1);
    assert_non_null(strstr(err.msg, "interrupted at epoch 1"));
    fnn_model_free(m);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&val);
    fnn_train_result ra, rb;
    fnn_epoch_stats a[2], b[2];
    fnn_model *straight = run(2, NULL, NULL, a, &ra, FNN_OK);
    fnn_model *resumed = run(2, NULL, path("int.ckpt"), b, &rb, FNN_OK);
    assert_memory_equal(straight->params, resumed->params,
                        straight->arena_size * sizeof *straight->params);
    fnn_model_free(straight);
    fnn_model_free(resumed);
}

/* on_step raises the interrupt flag before step `step` of epoch `epoch` (0-based step). */
typedef struct {
    int epoch, step;
    volatile int flag;
} stop_at;

static void raise_at(void *user, const fnn_step_info *s)
{
    stop_at *at = user;
    if (s->epoch == at->epoch && s->step == at->step)
        at->flag = 1;
}

static unsigned char *slurp(const char *p, size_t *len);

/* Interrupted before a chosen step of a later epoch (the first, a middle and the last of its 10
 * steps), then resumed: the checkpoint says where, and the resumed run's history and model file
 * are the uninterrupted run's, byte for byte. A resume that restarted the epoch from step 0
 * would train on its first steps twice. */
static void test_interrupt_mid_epoch(void **state)
{
    fnn_epoch_stats a[EPOCHS], b[EPOCHS];
    fnn_train_result ra, rb;
    fnn_model *straight = run(EPOCHS, NULL, NULL, a, &ra, FNN_OK);
    fnn_error err = {0};
    assert_int_equal(fnn_model_save(straight, NULL, path("mid_straight.safetensors"), &err),
                     FNN_OK);
    size_t len_a;
    unsigned char *want = slurp(path("mid_straight.safetensors"), &len_a);
    static const stop_at points[] = {{2, 1, 0}, {3, 5, 0}, {4, 9, 0}};
    for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
        stop_at at = points[i];
        fnn_dataset tr = make_set(96, 1), val = make_set(40, 2);
        fnn_train_config c = config();
        c.checkpoint = path("mid.ckpt");
        c.interrupt = &at.flag;
        c.on_step = raise_at;
        c.user = &at;
        fnn_model *m = model();
        fnn_train_result res;
        assert_int_equal(fnn_train_run(m, &tr, &val, &c, b, &res, &err), FNN_ERR_INTERRUPTED);
        assert_int_equal(res.interrupted, 1);
        char msg[64];
        snprintf(msg, sizeof msg, "interrupted at epoch %d after step %d of 10", at.epoch,
                 at.step);
        if (!strstr(err.msg, msg))
            fail_msg("\"%s\" does not say \"%s\"", err.msg, msg);
        fnn_model_free(m);
        fnn_dataset_free(&tr);
        fnn_dataset_free(&val);

        fnn_checkpoint_info info;
        assert_int_equal(fnn_checkpoint_info_read(path("mid.ckpt"), &info, &err), FNN_OK);
        assert_int_equal(info.epoch, at.epoch - 1);
        assert_int_equal(info.step, at.step);
        fnn_checkpoint_info_free(&info);

        memset(b, 0, sizeof b);
        fnn_model *resumed = run(EPOCHS, NULL, path("mid.ckpt"), b, &rb, FNN_OK);
        assert_int_equal(rb.resumed_epoch, at.epoch - 1);
        assert_int_equal(rb.best_epoch, ra.best_epoch);
        for (int e = 0; e < EPOCHS; e++)
            if (a[e].train_loss != b[e].train_loss || a[e].train_acc != b[e].train_acc ||
                a[e].val_loss != b[e].val_loss)
                fail_msg("stop before epoch %d step %d: epoch %d's history differs (train loss "
                         "%.9g, not %.9g)", at.epoch, at.step, e + 1, b[e].train_loss,
                         a[e].train_loss);
        assert_int_equal(fnn_model_save(resumed, NULL, path("mid_resumed.safetensors"), &err),
                         FNN_OK);
        size_t len_b;
        unsigned char *got = slurp(path("mid_resumed.safetensors"), &len_b);
        assert_int_equal(len_a, len_b);
        if (memcmp(want, got, len_a))
            fail_msg("stop before epoch %d step %d: the resumed model file differs", at.epoch,
                     at.step);
        free(got);
        fnn_model_free(resumed);
    }
    free(want);
    fnn_model_free(straight);
}

static void test_mismatched_model(void **state)
{
    fnn_epoch_stats s[EPOCHS];
    fnn_model_free(run(1, path("mm.ckpt"), NULL, s, NULL, FNN_OK));
    fnn_error err;
    fnn_model *other = fnn_model_create("flatten dense:13:relu dropout:0.3 dense:4:softmax", 1, 6,
                                        6, &err);
    fnn_dataset tr = make_set(96, 1), val = make_set(40, 2);
    fnn_train_config c = config();
    c.resume = path("mm.ckpt");
    assert_int_equal(fnn_train_run(other, &tr, &val, &c, s, NULL, &err), FNN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "\"arch\""));
    /* Another batch size: the position no longer matches the data. */
    fnn_model *m = model();
    c.batch_size = 12;
    assert_int_equal(fnn_train_run(m, &tr, &val, &c, s, NULL, &err), FNN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "\"t\""));
    fnn_model_free(m);
    fnn_model_free(other);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&val);
}

static unsigned char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void spill(const char *p, const unsigned char *b, size_t len)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* Every truncation fails cleanly; flipping header bytes never crashes and, when the file
 * still loads, the run it resumes is a valid one. */
static void test_damaged_files(void **state)
{
    fnn_epoch_stats s[EPOCHS];
    fnn_model_free(run(2, path("dmg.ckpt"), NULL, s, NULL, FNN_OK));
    size_t len;
    unsigned char *good = slurp(path("dmg.ckpt"), &len);
    uint64_t hdr = 0;
    for (int i = 7; i >= 0; i--)
        hdr = hdr << 8 | good[i];
    fnn_dataset tr = make_set(96, 1), val = make_set(40, 2);
    fnn_train_config c = config();
    c.epochs = 3;
    c.resume = path("bad.ckpt");
    fnn_error err;
    for (size_t cut = 0; cut < len; cut += cut < 8 + hdr ? 7 : 97) {
        spill(path("bad.ckpt"), good, cut);
        fnn_checkpoint_info info;
        assert_int_not_equal(fnn_checkpoint_info_read(path("bad.ckpt"), &info, &err), FNN_OK);
        fnn_model *m = model();
        assert_int_not_equal(fnn_train_run(m, &tr, &val, &c, s, NULL, &err), FNN_OK);
        fnn_model_free(m);
    }
    unsigned char *bad = malloc(len);
    int refused = 0;
    for (size_t i = 8; i < 8 + hdr; i += 13) {
        memcpy(bad, good, len);
        bad[i] ^= 0x5A;
        spill(path("bad.ckpt"), bad, len);
        fnn_model *m = model();
        refused += fnn_train_run(m, &tr, &val, &c, s, NULL, &err) != FNN_OK;
        fnn_model_free(m);
    }
    assert_true(refused > 0);
    free(bad);
    free(good);
    fnn_dataset_free(&tr);
    fnn_dataset_free(&val);
}

static int setup(void **state)
{
    const char *tmp = getenv("FNN_TMP");
    snprintf(g_dir, sizeof g_dir, "%s", tmp && *tmp ? tmp : "/tmp");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_round_trip),
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_interrupt_flag),
        cmocka_unit_test(test_interrupt_mid_epoch),
        cmocka_unit_test(test_mismatched_model),
        cmocka_unit_test(test_damaged_files),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
