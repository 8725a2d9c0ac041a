/* Training checkpoints as safetensors: the model's tensors under their own names, the
 * optimizer's moments, the weights' average and the best epoch's weights as whole arenas, and
 * the settings, position, generator state and history as JSON metadata. Reading checks every
 * field before use, since a checkpoint is a file from outside like any other. */
#include "io/checkpoint.h"
#include "io/normalization.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "util/error.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "fnn-checkpoint"
#define MAX_EPOCHS 100000

/* ---------------------------------------------------------------- writing */

/* Doubles go out with 17 digits (cJSON may choose 15), so that they read back exactly;
 * NaN and infinities as null. */
static void add_double(cJSON *o, const char *key, double v)
{
    char buf[40];
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    snprintf(buf, sizeof buf, "%.17g", v);
    cJSON_AddRawToObject(o, key, buf);
}

static void add_u64(cJSON *o, const char *key, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%016" PRIx64, v);
    cJSON_AddStringToObject(o, key, buf);
}

static cJSON *config_json(const fnn_train_config *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "batch_size", c->batch_size);
    add_u64(j, "seed", c->seed);
    cJSON_AddNumberToObject(j, "threads", c->threads);
    cJSON *o = cJSON_AddObjectToObject(j, "optimizer");
    cJSON_AddNumberToObject(o, "kind", c->optim.kind);
    add_double(o, "lr", c->optim.lr);
    add_double(o, "beta1", c->optim.beta1);
    add_double(o, "beta2", c->optim.beta2);
    add_double(o, "eps", c->optim.eps);
    add_double(o, "momentum", c->optim.momentum);
    add_double(o, "weight_decay", c->optim.weight_decay);
    cJSON_AddNumberToObject(o, "nesterov", c->optim.nesterov);
    cJSON *a = cJSON_AddObjectToObject(j, "augment");
    cJSON_AddNumberToObject(a, "shift", c->augment.shift);
    cJSON_AddNumberToObject(a, "flip", c->augment.flip);
    add_double(a, "rotate", c->augment.rotate);
    add_double(a, "erase", c->augment.erase);
    cJSON *s = cJSON_AddObjectToObject(j, "schedule");
    cJSON_AddNumberToObject(s, "kind", c->schedule.kind);
    cJSON_AddNumberToObject(s, "step_epochs", c->schedule.step_epochs);
    add_double(s, "gamma", c->schedule.gamma);
    cJSON_AddNumberToObject(s, "patience", c->schedule.patience);
    add_double(s, "factor", c->schedule.factor);
    add_double(s, "min_lr", c->schedule.min_lr);
    cJSON_AddNumberToObject(s, "warmup_epochs", c->schedule.warmup_epochs);
    add_double(s, "peak_at", c->schedule.peak_at);
    add_double(j, "clip_norm", c->clip_norm);
    add_double(j, "label_smoothing", c->label_smoothing);
    add_double(j, "bn_lr_scale", c->bn_lr_scale);
    add_double(j, "ema", c->ema);
    cJSON_AddNumberToObject(j, "ema_every", c->ema_every);
    cJSON_AddNumberToObject(j, "tta", c->tta);
    cJSON_AddNumberToObject(j, "early_stopping", c->early_stopping);
    cJSON_AddNumberToObject(j, "monitor", c->monitor);
    cJSON_AddNumberToObject(j, "freeze", c->freeze);
    return j;
}

static cJSON *state_json(const fnn_train_state *st)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "epoch", st->epoch);
    cJSON_AddNumberToObject(j, "step", st->step);
    cJSON_AddNumberToObject(j, "t", (double)st->t);
    cJSON *r = cJSON_AddObjectToObject(j, "shuffle");
    const char *keys[] = {"s0", "s1", "s2", "s3"};
    for (int i = 0; i < 4; i++)
        add_u64(r, keys[i], st->shuffle.s[i]);
    add_double(j, "loss_sum", st->loss_sum);
    cJSON_AddNumberToObject(j, "correct", (double)st->correct);
    cJSON_AddNumberToObject(j, "seen", (double)st->seen);
    add_double(j, "plateau_scale", st->plateau_scale);
    add_double(j, "plateau_best", st->plateau_best);
    cJSON_AddNumberToObject(j, "plateau_wait", st->plateau_wait);
    add_double(j, "es_best", st->es_best);
    cJSON_AddNumberToObject(j, "es_epoch", st->es_epoch);
    cJSON_AddNumberToObject(j, "es_wait", st->es_wait);
    return j;
}

static cJSON *history_json(const fnn_epoch_stats *stats, int n)
{
    cJSON *j = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "epoch", stats[i].epoch);
        add_double(e, "train_loss", stats[i].train_loss);
        add_double(e, "train_acc", stats[i].train_acc);
        add_double(e, "val_loss", stats[i].val_loss);
        add_double(e, "val_acc", stats[i].val_acc);
        add_double(e, "seconds", stats[i].seconds);
        add_double(e, "val_seconds", stats[i].val_seconds);
        cJSON_AddItemToArray(j, e);
    }
    return j;
}

fnn_status fnn_checkpoint_write(const char *path, const fnn_model *m, const fnn_train_config *cfg,
                                const fnn_train_state *st, const fnn_epoch_stats *stats,
                                const fnn_optimizer *o, const float *best, fnn_error *err)
{
    int nt = fnn_model_num_tensors(m);
    fnn_st_tensor *t = calloc((size_t)nt + 4, sizeof *t);
    fnn_tensor *mt = malloc(((size_t)nt + 1) * sizeof *mt);
    cJSON *jc = config_json(cfg), *js = state_json(st), *jh = history_json(stats, st->epoch);
    char *config = cJSON_PrintUnformatted(jc), *state = cJSON_PrintUnformatted(js),
         *history = cJSON_PrintUnformatted(jh);
    cJSON_Delete(jc);
    cJSON_Delete(js);
    cJSON_Delete(jh);
    char *norm = fnn_normalization_json(m);
    fnn_status s = FNN_OK;
    if (!t || !mt || !config || !state || !history || !norm) {
        s = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory writing the checkpoint", path);
        goto done;
    }
    int n = 0;
    for (int i = 0; i < nt; i++) {
        fnn_model_tensor(m, i, &mt[i]);
        t[n].name = mt[i].name;
        t[n].rank = mt[i].rank;
        for (int d = 0; d < mt[i].rank; d++)
            t[n].shape[d] = (size_t)mt[i].shape[d];
        t[n].size = mt[i].size;
        t[n++].data = mt[i].data;
    }
    /* Whole arenas, padding included: the moments of frozen tensors stay zero, and the
     * layout is the model's, which the arch fixes. */
    const float *arenas[] = {o->m, o->v, best, o->ema};
    const char *names[] = {"optimizer.m", "optimizer.v", "best.params", "ema.params"};
    for (int i = 0; i < 4; i++)
        if (arenas[i])
            t[n++] = (fnn_st_tensor){.name = names[i], .rank = 1, .shape = {m->arena_size},
                                     .size = m->arena_size, .data = arenas[i]};
    char input[48];
    snprintf(input, sizeof input, "[%d, %d, %d]", m->input.c, m->input.h, m->input.w);
    const char *keys[] = {"format", "fnn_version", "arch",    "input_shape", "normalization",
                          "config", "state",       "history", "user"};
    const char *values[] = {FORMAT, FNN_VERSION, fnn_model_spec(m), input, norm, config, state,
                            history, cfg->checkpoint_user};
    s = fnn_st_write(path, t, n, keys, values, cfg->checkpoint_user ? 9 : 8, err);
done:
    free(norm);
    free(t);
    free(mt);
    free(config);
    free(state);
    free(history);
    return s;
}

/* ---------------------------------------------------------------- reading */

/* Errors while reading name the file and the field. */
typedef struct {
    const char *path;
    fnn_error *err;
    fnn_status status; /* FNN_OK until the first problem */
} reader;

static void bad(reader *r, const char *field, const char *why)
{
    if (r->status == FNN_OK)
        r->status = fnn_fail(r->err, FNN_ERR_FORMAT, "%s: checkpoint field \"%s\" %s", r->path,
                             field, why);
}

static double get_num(reader *r, const cJSON *o, const char *key, double lo, double hi,
                      int integer)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char why[96];
    if (!cJSON_IsNumber(v)) {
        bad(r, key, "is missing or not a number");
        return lo;
    }
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || (integer && d != floor(d))) {
        snprintf(why, sizeof why, "is %g; expected %s in [%g, %g]", d,
                 integer ? "an integer" : "a number", lo, hi);
        bad(r, key, why);
        return lo;
    }
    return d;
}

/* A number or null (read as `missing`). */
static double get_opt(reader *r, const cJSON *o, const char *key, double missing)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNull(v))
        return missing;
    return get_num(r, o, key, -HUGE_VAL, HUGE_VAL, 0);
}

static uint64_t get_u64(reader *r, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    const char *s = cJSON_GetStringValue(v);
    char *end;
    if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16) {
        bad(r, key, "is not 16 lowercase hex digits");
        return 0;
    }
    return strtoull(s, &end, 16);
}

static const cJSON *get_obj(reader *r, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsObject(v)) {
        bad(r, key, "is missing or not a JSON object");
        return NULL;
    }
    return v;
}

static void read_config(reader *r, const cJSON *j, fnn_train_config *c)
{
    *c = fnn_train_default();
    c->batch_size = (int)get_num(r, j, "batch_size", 1, 65536, 1);
    c->seed = get_u64(r, j, "seed");
    c->threads = (int)get_num(r, j, "threads", 0, 1024, 1);
    const cJSON *o = get_obj(r, j, "optimizer"), *a = get_obj(r, j, "augment"),
                *s = get_obj(r, j, "schedule");
    if (!o || !a || !s)
        return;
    c->optim.kind = (fnn_optimizer_kind)get_num(r, o, "kind", 0, FNN_OPT_ADAMW, 1);
    c->optim.lr = (float)get_num(r, o, "lr", 0, 1e3, 0);
    c->optim.beta1 = (float)get_num(r, o, "beta1", 0, 1, 0);
    c->optim.beta2 = (float)get_num(r, o, "beta2", 0, 1, 0);
    c->optim.eps = (float)get_num(r, o, "eps", 0, 1, 0);
    c->optim.momentum = (float)get_num(r, o, "momentum", 0, 1, 0);
    c->optim.weight_decay = (float)get_num(r, o, "weight_decay", 0, 1e3, 0);
    c->optim.nesterov = (int)get_num(r, o, "nesterov", 0, 1, 1);
    c->augment.shift = (int)get_num(r, a, "shift", 0, 4096, 1);
    c->augment.flip = (int)get_num(r, a, "flip", 0, 1, 1);
    c->augment.rotate = (float)get_num(r, a, "rotate", 0, 180, 0);
    c->augment.erase = (float)get_num(r, a, "erase", 0, 1, 0);
    c->schedule.kind = (fnn_lr_schedule_kind)get_num(r, s, "kind", 0, FNN_LR_ONECYCLE, 1);
    c->schedule.step_epochs = (int)get_num(r, s, "step_epochs", 0, MAX_EPOCHS, 1);
    c->schedule.gamma = (float)get_num(r, s, "gamma", 0, 1e3, 0);
    c->schedule.patience = (int)get_num(r, s, "patience", 0, MAX_EPOCHS, 1);
    c->schedule.factor = (float)get_num(r, s, "factor", 0, 1, 0);
    c->schedule.min_lr = (float)get_num(r, s, "min_lr", 0, 1e3, 0);
    c->schedule.warmup_epochs = (int)get_num(r, s, "warmup_epochs", 0, MAX_EPOCHS, 1);
    /* Absent in checkpoints written before fnn had the one-cycle schedule. */
    if (cJSON_GetObjectItemCaseSensitive(s, "peak_at"))
        c->schedule.peak_at = (float)get_num(r, s, "peak_at", 0, 1, 0);
    c->clip_norm = (float)get_num(r, j, "clip_norm", 0, 1e30, 0);
    /* Absent in checkpoints written before fnn had label smoothing: those trained without. */
    if (cJSON_GetObjectItemCaseSensitive(j, "label_smoothing"))
        c->label_smoothing = (float)get_num(r, j, "label_smoothing", 0, 1, 0);
    /* Absent before per-group rates: those trained with one rate. */
    if (cJSON_GetObjectItemCaseSensitive(j, "bn_lr_scale"))
        c->bn_lr_scale = (float)get_num(r, j, "bn_lr_scale", 0, 1e6, 0);
    /* Absent before weight averaging: those trained without. */
    if (cJSON_GetObjectItemCaseSensitive(j, "ema")) {
        c->ema = (float)get_num(r, j, "ema", 0, 1, 0);
        c->ema_every = (int)get_num(r, j, "ema_every", 0, 1 << 30, 1);
    }
    /* Absent before test-time augmentation: those validated on the images alone. */
    if (cJSON_GetObjectItemCaseSensitive(j, "tta"))
        c->tta = (fnn_tta)get_num(r, j, "tta", 0, FNN_TTA_FLIP, 1);
    c->early_stopping = (int)get_num(r, j, "early_stopping", 0, MAX_EPOCHS, 1);
    c->monitor = (fnn_monitor)get_num(r, j, "monitor", 0, FNN_MONITOR_VAL_ACCURACY, 1);
    c->freeze = (int)get_num(r, j, "freeze", 0, 4096, 1);
}

/* Parses metadata `key` as JSON of the wanted kind (object or array). */
static cJSON *parse_meta(reader *r, const fnn_st_file *st, const char *key, int array)
{
    const char *text = fnn_st_meta(st, key);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (!j || (array ? !cJSON_IsArray(j) : !cJSON_IsObject(j))) {
        bad(r, key, text ? (array ? "is not a JSON list" : "is not a JSON object")
                         : "is missing");
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static int parse_shape(const char *text, int *c, int *h, int *w)
{
    return text && sscanf(text, "[%d, %d, %d]", c, h, w) == 3 && *c >= 1 && *h >= 1 && *w >= 1 &&
           *c <= 4096 && *h <= 4096 && *w <= 4096;
}

/* The description part of a checkpoint, shared by the info reader and the loader. */
static fnn_status read_info(reader *r, const fnn_st_file *st, fnn_checkpoint_info *out)
{
    memset(out, 0, sizeof *out);
    const char *format = fnn_st_meta(st, "format");
    if (!format || strcmp(format, FORMAT) != 0)
        return fnn_fail(r->err, FNN_ERR_FORMAT,
                        "%s: not an fnn checkpoint (metadata \"format\" is %s%s%s, expected \""
                        FORMAT "\")", r->path, format ? "\"" : "", format ? format : "missing",
                        format ? "\"" : "");
    const char *arch = fnn_st_meta(st, "arch"), *user = fnn_st_meta(st, "user");
    if (!arch)
        bad(r, "arch", "is missing");
    if (!parse_shape(fnn_st_meta(st, "input_shape"), &out->c, &out->h, &out->w))
        bad(r, "input_shape", "is not [c, h, w] with each in 1..4096");
    cJSON *config = parse_meta(r, st, "config", 0), *state = parse_meta(r, st, "state", 0);
    if (config)
        read_config(r, config, &out->cfg);
    if (state) {
        out->epoch = (int)get_num(r, state, "epoch", 0, MAX_EPOCHS, 1);
        out->step = (int)get_num(r, state, "step", 0, 1e9, 1);
    }
    if (user) {
        cJSON *u = cJSON_Parse(user);
        if (!cJSON_IsObject(u))
            bad(r, "user", "is not a JSON object");
        cJSON_Delete(u);
    }
    cJSON_Delete(config);
    cJSON_Delete(state);
    if (r->status != FNN_OK)
        return r->status;
    out->arch = strdup(arch);
    out->user_json = user ? strdup(user) : NULL;
    if (!out->arch || (user && !out->user_json)) {
        fnn_checkpoint_info_free(out);
        return fnn_fail(r->err, FNN_ERR_NOMEM, "%s: out of memory", r->path);
    }
    return FNN_OK;
}

fnn_status fnn_checkpoint_info_read(const char *path, fnn_checkpoint_info *out, fnn_error *err)
{
    memset(out, 0, sizeof *out);
    fnn_st_file st;
    fnn_status s = fnn_st_read(path, &st, err);
    if (s != FNN_OK)
        return s;
    reader r = {path, err, FNN_OK};
    s = read_info(&r, &st, out);
    fnn_st_free(&st);
    return s;
}

void fnn_checkpoint_info_free(fnn_checkpoint_info *info)
{
    if (!info)
        return;
    free(info->arch);
    free(info->user_json);
    info->arch = info->user_json = NULL;
}

/* The tensor `name` of `size` floats, all finite, or NULL after reporting why not. */
static const float *get_tensor(reader *r, const fnn_st_file *st, const char *name, int rank,
                               const size_t *shape, int required)
{
    const fnn_st_tensor *t = fnn_st_find(st, name);
    if (!t) {
        if (required)
            bad(r, name, "(a tensor) is missing");
        return NULL;
    }
    if (t->rank != rank || memcmp(t->shape, shape, (size_t)rank * sizeof *shape) != 0) {
        bad(r, name, "(a tensor) does not have the model's shape");
        return NULL;
    }
    for (size_t i = 0; i < t->size; i++)
        if (!isfinite(t->data[i])) {
            bad(r, name, "(a tensor) holds NaN or Inf");
            return NULL;
        }
    return t->data;
}

static void read_history(reader *r, const cJSON *h, fnn_epoch_stats *stats, int n)
{
    if (cJSON_GetArraySize(h) != n) {
        bad(r, "history", "does not have one entry per completed epoch");
        return;
    }
    int i = 0;
    for (const cJSON *e = h->child; e && r->status == FNN_OK; e = e->next, i++) {
        if (!cJSON_IsObject(e)) {
            bad(r, "history", "has an entry that is not an object");
            return;
        }
        fnn_epoch_stats s = {.epoch = (int)get_num(r, e, "epoch", i + 1, i + 1, 1)};
        s.train_loss = get_opt(r, e, "train_loss", NAN);
        s.train_acc = get_opt(r, e, "train_acc", NAN);
        s.val_loss = get_opt(r, e, "val_loss", NAN);
        s.val_acc = get_opt(r, e, "val_acc", NAN);
        s.seconds = get_opt(r, e, "seconds", NAN);
        s.val_seconds = get_opt(r, e, "val_seconds", NAN);
        stats[i] = s;
    }
}

static void read_state(reader *r, const cJSON *j, int steps_per_epoch, fnn_train_state *st)
{
    memset(st, 0, sizeof *st);
    st->epoch = (int)get_num(r, j, "epoch", 0, MAX_EPOCHS, 1);
    st->step = (int)get_num(r, j, "step", 0, steps_per_epoch - 1, 1);
    st->t = (int64_t)get_num(r, j, "t", 0, 9007199254740992.0, 1);
    if (r->status == FNN_OK && st->t != (int64_t)st->epoch * steps_per_epoch + st->step)
        bad(r, "t", "does not match the epoch and step for this data set and batch size");
    const cJSON *s = get_obj(r, j, "shuffle");
    if (s) {
        const char *keys[] = {"s0", "s1", "s2", "s3"};
        for (int i = 0; i < 4; i++)
            st->shuffle.s[i] = get_u64(r, s, keys[i]);
        if (r->status == FNN_OK && !(st->shuffle.s[0] | st->shuffle.s[1] | st->shuffle.s[2] |
                                     st->shuffle.s[3]))
            bad(r, "shuffle", "is the all-zero state, which xoshiro never reaches");
    }
    st->loss_sum = get_num(r, j, "loss_sum", 0, HUGE_VAL, 0);
    st->correct = (long)get_num(r, j, "correct", 0, 1e15, 1);
    st->seen = (long)get_num(r, j, "seen", 0, 1e15, 1);
    if (r->status == FNN_OK && (st->correct > st->seen || (st->step == 0 && st->seen != 0)))
        bad(r, "seen", "is inconsistent with \"correct\" and \"step\"");
    st->plateau_scale = (float)get_num(r, j, "plateau_scale", 0, 1, 0);
    st->plateau_best = get_opt(r, j, "plateau_best", HUGE_VAL);
    st->plateau_wait = (int)get_num(r, j, "plateau_wait", 0, MAX_EPOCHS, 1);
    st->es_best = get_opt(r, j, "es_best", NAN);
    st->es_epoch = (int)get_num(r, j, "es_epoch", 0, st->epoch, 1);
    st->es_wait = (int)get_num(r, j, "es_wait", 0, MAX_EPOCHS, 1);
}

fnn_status fnn_checkpoint_load(const char *path, fnn_model *m, const fnn_train_config *cfg,
                               int steps_per_epoch, fnn_train_state *st, fnn_epoch_stats *stats,
                               fnn_optimizer *o, float *best, int *has_best, fnn_error *err)
{
    fnn_st_file file;
    fnn_status s = fnn_st_read(path, &file, err);
    if (s != FNN_OK)
        return s;
    reader r = {path, err, FNN_OK};
    fnn_checkpoint_info info;
    cJSON *state = NULL, *history = NULL;
    if ((s = read_info(&r, &file, &info)) != FNN_OK)
        goto done;
    if (strcmp(info.arch, fnn_model_spec(m)) != 0)
        bad(&r, "arch", "is not the model's architecture");
    if (info.c != m->input.c || info.h != m->input.h || info.w != m->input.w)
        bad(&r, "input_shape", "is not the model's input shape");
    if (info.cfg.optim.kind != cfg->optim.kind)
        bad(&r, "config", "names another optimizer than the run's");
    state = parse_meta(&r, &file, "state", 0);
    history = parse_meta(&r, &file, "history", 1);
    if (state)
        read_state(&r, state, steps_per_epoch, st);
    if (r.status == FNN_OK && st->epoch >= cfg->epochs)
        r.status = fnn_fail(err, FNN_ERR_ARG,
                            "%s: the checkpoint has %d epoch%s done%s; ask for more than that",
                            path, st->epoch, st->epoch == 1 ? "" : "s",
                            st->step ? " and part of the next" : "");
    if (history && r.status == FNN_OK)
        read_history(&r, history, stats, st->epoch);

    int nt = fnn_model_num_tensors(m);
    const float **src = calloc((size_t)nt + 1, sizeof *src);
    if (!src && r.status == FNN_OK)
        r.status = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < nt && r.status == FNN_OK; i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        size_t shape[4];
        for (int d = 0; d < t.rank; d++)
            shape[d] = (size_t)t.shape[d];
        src[i] = get_tensor(&r, &file, t.name, t.rank, shape, 1);
    }
    size_t arena[1] = {m->arena_size};
    const float *om = get_tensor(&r, &file, "optimizer.m", 1, arena, 1);
    const float *ov = get_tensor(&r, &file, "optimizer.v", 1, arena, o->v != NULL);
    const float *ob = get_tensor(&r, &file, "best.params", 1, arena, 0);
    const float *oe = get_tensor(&r, &file, "ema.params", 1, arena, o->ema != NULL);
    if (r.status == FNN_OK &&
        file.ntensors != nt + 1 + (o->v != NULL) + (ob != NULL) + (o->ema != NULL))
        bad(&r, "tensors", "include some that are not part of this model and optimizer");
    /* The run continues with the input normalisation it had, whatever the model was given;
     * checkpoints written before it was stored had none. */
    float *mean = malloc((size_t)m->input.c * sizeof *mean);
    float *sd = malloc((size_t)m->input.c * sizeof *sd);
    const char *norm = fnn_st_meta(&file, "normalization");
    int normalized = 0;
    if (r.status == FNN_OK && (!mean || !sd))
        r.status = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", path);
    if (r.status == FNN_OK && norm)
        r.status = fnn_normalization_parse(path, "checkpoint field \"normalization\"", norm,
                                           m->input.c, mean, sd, &normalized, err);
    if (r.status == FNN_OK)
        r.status = fnn_model_set_normalization(m, normalized ? mean : NULL,
                                               normalized ? sd : NULL, err);
    free(mean);
    free(sd);
    if (r.status == FNN_OK) {
        for (int i = 0; i < nt; i++) {
            fnn_tensor t;
            fnn_model_tensor(m, i, &t);
            memcpy(t.data, src[i], t.size * sizeof *t.data);
        }
        memcpy(o->m, om, m->arena_size * sizeof *om);
        if (o->v)
            memcpy(o->v, ov, m->arena_size * sizeof *ov);
        if (o->ema)
            memcpy(o->ema, oe, m->arena_size * sizeof *oe);
        o->t = st->t;
        *has_best = ob != NULL;
        if (ob)
            memcpy(best, ob, m->arena_size * sizeof *ob);
    }
    free(src);
    s = r.status;
done:
    fnn_checkpoint_info_free(&info);
    cJSON_Delete(state);
    cJSON_Delete(history);
    fnn_st_free(&file);
    return s;
}
