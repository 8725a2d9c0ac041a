/* The training loop. Each step is forward, loss and backward on this shard's rows of the batch,
 * then the gradient hook (on_gradients, where data-parallel shards sum their gradients), then
 * clipping and the optimizer update. One OpenMP team runs a whole epoch; layers share the work
 * inside it. Around it: augmentation, the learning-rate schedule, clipping, early stopping and
 * checkpoints. */
#include "data/augment.h"
#include "data/batch.h"
#include "eval/eval.h"
#include "io/checkpoint.h"
#include "model/exec.h"
#include "model/model.h"
#include "optim/ema.h"
#include "optim/optim.h"
#include "train/train.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/gemm.h"
#include "util/rng.h"
#include "util/team.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_EPOCHS 100000
#define MAX_BATCH 65536

fnn_train_config fnn_train_default(void)
{
    return (fnn_train_config){
        .epochs = 10,
        .batch_size = 32,
        .seed = 42,
        .threads = 0,
        .optim = fnn_optim_default(FNN_OPT_ADAM),
        .progress_interval_s = 0.1,
        .shard_count = 1,
    };
}

static fnn_status check_config(const fnn_train_config *c, const fnn_model *m, int nval,
                               fnn_error *err)
{
    if (c->epochs < 1 || c->epochs > MAX_EPOCHS)
        return fnn_fail(err, FNN_ERR_ARG, "training: epochs must be in 1..%d, got %d", MAX_EPOCHS,
                        c->epochs);
    if (c->batch_size < 1 || c->batch_size > MAX_BATCH)
        return fnn_fail(err, FNN_ERR_ARG, "training: batch size must be in 1..%d, got %d",
                        MAX_BATCH, c->batch_size);
    if (c->threads < 0 || c->threads > 1024)
        return fnn_fail(err, FNN_ERR_ARG, "training: threads must be in 0..1024, got %d",
                        c->threads);
    const fnn_augment_config *a = &c->augment;
    if (a->shift < 0 || a->shift > 64 || (a->flip != 0 && a->flip != 1) ||
        !(a->rotate >= 0.0f && a->rotate <= 180.0f) || !(a->erase >= 0.0f && a->erase <= 1.0f))
        return fnn_fail(err, FNN_ERR_ARG,
                        "training: augmentation needs shift in 0..64, flip 0 or 1, rotate in "
                        "[0, 180] degrees and erase in [0, 1]");
    const fnn_lr_schedule *s = &c->schedule;
    if ((unsigned)s->kind > FNN_LR_ONECYCLE)
        return fnn_fail(err, FNN_ERR_ARG, "training: unknown schedule %d", (int)s->kind);
    if (s->warmup_epochs < 0 || s->warmup_epochs > c->epochs)
        return fnn_fail(err, FNN_ERR_ARG, "training: warm-up epochs must be in 0..%d (the "
                        "epochs), got %d", c->epochs, s->warmup_epochs);
    if (s->kind == FNN_LR_STEP &&
        (s->step_epochs < 1 || !(s->gamma > 0.0f) || !isfinite(s->gamma)))
        return fnn_fail(err, FNN_ERR_ARG, "training: the step schedule needs step epochs >= 1 "
                        "and gamma > 0, got %d and %g", s->step_epochs, (double)s->gamma);
    if (s->kind == FNN_LR_PLATEAU &&
        (s->patience < 1 || !(s->factor > 0.0f && s->factor < 1.0f) || !(s->min_lr >= 0.0f)))
        return fnn_fail(err, FNN_ERR_ARG, "training: the plateau schedule needs patience >= 1, "
                        "factor in (0, 1) and min lr >= 0");
    if (s->kind == FNN_LR_ONECYCLE &&
        (!(s->peak_at > 0.0f && s->peak_at < 1.0f) || s->warmup_epochs))
        return fnn_fail(err, FNN_ERR_ARG, "training: the one-cycle schedule needs a peak at a "
                        "fraction in (0, 1) of the steps, got %g, and no warm-up epochs (it warms "
                        "up itself), got %d", (double)s->peak_at, s->warmup_epochs);
    if (!(c->clip_norm >= 0.0f) || !isfinite(c->clip_norm))
        return fnn_fail(err, FNN_ERR_ARG, "training: clip norm must be 0 (off) or positive, got "
                        "%g", (double)c->clip_norm);
    if (c->early_stopping < 0 || (unsigned)c->monitor > FNN_MONITOR_VAL_ACCURACY)
        return fnn_fail(err, FNN_ERR_ARG, "training: early stopping needs a patience >= 0 and "
                        "a monitor of val_loss or val_accuracy");
    if (!nval && (c->early_stopping || s->kind == FNN_LR_PLATEAU))
        return fnn_fail(err, FNN_ERR_ARG, "training: %s watches the validation set, and there "
                        "is none", c->early_stopping ? "early stopping" : "the plateau schedule");
    if (!(c->bn_lr_scale >= 0.0f) || !isfinite(c->bn_lr_scale))
        return fnn_fail(err, FNN_ERR_ARG, "training: the batch-norm and bias learning-rate scale "
                        "must be 0 (off) or positive, got %g", (double)c->bn_lr_scale);
    if (!(c->label_smoothing >= 0.0f && c->label_smoothing < 1.0f))
        return fnn_fail(err, FNN_ERR_ARG, "training: label smoothing must be in [0, 1), got %g",
                        (double)c->label_smoothing);
    if (c->shard_count < 0 || c->shard_count > MAX_BATCH || c->shard_index < 0 ||
        c->shard_index >= (c->shard_count > 1 ? c->shard_count : 1))
        return fnn_fail(err, FNN_ERR_ARG, "training: shard %d of %d: the shard count must be in "
                        "0..%d and the index in 0..count - 1", c->shard_index, c->shard_count,
                        MAX_BATCH);
    if (!(c->ema >= 0.0f && c->ema < 1.0f) || c->ema_every < 0)
        return fnn_fail(err, FNN_ERR_ARG, "training: weight averaging needs a decay in [0, 1) "
                        "(0: off) and steps between updates >= 0, got %g and %d", (double)c->ema,
                        c->ema_every);
    if ((unsigned)c->tta > FNN_TTA_FLIP)
        return fnn_fail(err, FNN_ERR_ARG, "training: unknown test-time augmentation %d",
                        (int)c->tta);
    if (c->freeze < 0 || c->freeze > m->nlayers)
        return fnn_fail(err, FNN_ERR_ARG, "training: cannot freeze %d layers of a model with %d",
                        c->freeze, m->nlayers);
    return FNN_OK;
}

/* Buffers of one training run, allocated before the first step. */
typedef struct {
    float *x[2];      /* (batch, in) each, used by turns */
    uint8_t *labels[2]; /* (batch) each */
    int *perm;        /* (n) this epoch's order */
    float *val_probs; /* (val n, classes) */
    float *aug;       /* (threads, in) each thread's augmentation scratch; NULL when off */
    float *best;      /* (arena_size) early stopping's best weights; NULL when off */
    fnn_optimizer opt;
    /* The run's own pass memory: an on_epoch callback that evaluates the model with a larger
     * batch uses another executor, and cannot move these buffers under the loop. */
    fnn_exec *ex;
    fnn_barrier team;
    int stop;         /* set by thread 0 before a barrier: the interrupt was seen */
    fnn_status hook;  /* set by thread 0 before a barrier: what on_gradients returned */
    struct {
        _Alignas(64) double loss; /* summed over this thread's rows of the batch */
        int hits;
        double sumsq;             /* clipping: this thread's share of the squared gradient */
    } *part;                      /* (threads) */
} run_buffers;

/* As fnn_partition_optimizer, leaving out the tensors of the first `freeze` layers too, and
 * with the rate of the tensors that are not kernels (biases, batch norm's scale and shift)
 * times flat_lr_scale. */
static fnn_status partition(fnn_optimizer *o, const fnn_model *m, int freeze, float flat_lr_scale,
                            fnn_error *err)
{
    int n = fnn_model_num_tensors(m), frozen_tensors = 0;
    for (int i = 0; i < freeze; i++)
        frozen_tensors += m->layers[i].ntensors;
    fnn_param_block *blocks = malloc((size_t)(n ? n : 1) * sizeof *blocks);
    if (!blocks)
        return fnn_fail(err, FNN_ERR_NOMEM, "training: out of memory");
    int nb = 0;
    for (int i = 0; i < n; i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        if (t.frozen || i < frozen_tensors)
            continue;
        size_t rows = t.rank ? (size_t)t.shape[0] : 1;
        blocks[nb++] = (fnn_param_block){(size_t)(t.data - m->params), rows,
                                         rows ? t.size / rows : 0, t.rank >= 2,
                                         t.rank >= 2 ? 1.0f : flat_lr_scale};
    }
    fnn_status s = fnn_optimizer_partition(o, blocks, nb, err);
    free(blocks);
    return s;
}

fnn_status fnn_partition_optimizer(fnn_optimizer *o, const fnn_model *m, fnn_error *err)
{
    return partition(o, m, 0, 1.0f, err);
}

static void release(run_buffers *b)
{
    for (int i = 0; i < 2; i++) {
        free(b->x[i]);
        free(b->labels[i]);
    }
    free(b->perm);
    free(b->val_probs);
    free(b->aug);
    free(b->best);
    free(b->part);
    fnn_exec_free(b->ex);
    fnn_optimizer_release(&b->opt);
}

fnn_status fnn_train(fnn_model *m, const fnn_dataset *train, const fnn_dataset *val,
                     const fnn_train_config *cfg, fnn_epoch_stats *stats, fnn_error *err)
{
    return fnn_train_run(m, train, val, cfg, stats, NULL, err);
}

/* Starts loading this shard's rows of the step after `step` into the cache, while this one's
 * backward pass runs. */
static void prefetch_next(const fnn_dataset *train, const int *perm, int n, int batch, int step,
                          int steps, int shard, int shards)
{
    if (step + 1 >= steps)
        return;
    int next = (step + 1) * batch, rows = n - next < batch ? n - next : batch;
    int row0 = (int)((int64_t)rows * shard / shards);
    fnn_batch_prefetch(train, perm + next + row0,
                       (int)((int64_t)rows * (shard + 1) / shards) - row0);
}

/* Keras's EarlyStopping (min_delta 0): 1 if value improves on best for the monitor. */
static int improves(fnn_monitor mon, double value, double best)
{
    if (isnan(best))
        return !isnan(value);
    return mon == FNN_MONITOR_VAL_ACCURACY ? value > best : value < best;
}

void fnn_plateau_step(const fnn_lr_schedule *s, float base_lr, double val_loss, float *scale,
                      double *best, int *wait)
{
    /* Keras's ReduceLROnPlateau: an improvement must beat the best by min_delta 1e-4. */
    if (val_loss < *best - 1e-4) {
        *best = val_loss;
        *wait = 0;
    } else if (++*wait >= s->patience) {
        float floor_scale = s->min_lr / base_lr;
        *scale *= s->factor;
        if (*scale < floor_scale)
            *scale = floor_scale;
        *wait = 0;
    }
}

/* After an epoch with validation statistics st: the plateau schedule's and early stopping's
 * bookkeeping. Returns 1 when early stopping ends the run. */
static int after_epoch(const fnn_train_config *cfg, const fnn_model *m, run_buffers *b,
                       fnn_train_state *ts, const fnn_epoch_stats *st)
{
    if (cfg->schedule.kind == FNN_LR_PLATEAU)
        fnn_plateau_step(&cfg->schedule, cfg->optim.lr, st->val_loss, &ts->plateau_scale,
                         &ts->plateau_best, &ts->plateau_wait);
    if (!cfg->early_stopping)
        return 0;
    double v = cfg->monitor == FNN_MONITOR_VAL_ACCURACY ? st->val_acc : st->val_loss;
    if (improves(cfg->monitor, v, ts->es_best)) {
        ts->es_best = v;
        ts->es_epoch = st->epoch;
        ts->es_wait = 0;
        memcpy(b->best, m->params, m->arena_size * sizeof *m->params);
        return 0;
    }
    return ++ts->es_wait >= cfg->early_stopping;
}

fnn_status fnn_train_run(fnn_model *m, const fnn_dataset *train, const fnn_dataset *val,
                         const fnn_train_config *cfg, fnn_epoch_stats *stats,
                         fnn_train_result *result, fnn_error *err)
{
    int nval = val ? val->n : 0;
    fnn_train_result res = {0};
    if (result)
        *result = res;
    fnn_status s = check_config(cfg, m, nval, err);
    if (s != FNN_OK)
        return s;
    if (train->n < 1)
        return fnn_fail(err, FNN_ERR_ARG, "training: the training set is empty");
    if ((cfg->checkpoint || cfg->resume) && !stats)
        return fnn_fail(err, FNN_ERR_ARG, "training: checkpoints keep the history, so they need "
                        "a stats array");
    if ((s = fnn_check_data(m, train, "training", err)) != FNN_OK)
        return s;
    if (nval && (s = fnn_check_data(m, val, "validation", err)) != FNN_OK)
        return s;

    int n = train->n, k = m->nclasses;
    int batch = cfg->batch_size < n ? cfg->batch_size : n;
    size_t in = fnn_shape_size(m->input);
    int threads = fnn_threads_resolve(cfg->threads);
    int augment = fnn_augment_active(&cfg->augment);

    run_buffers b = {0};
    for (int i = 0; i < 2; i++) {
        b.x[i] = aligned_alloc(64, ((size_t)batch * in * sizeof *b.x[i] + 63) / 64 * 64);
        b.labels[i] = malloc((size_t)batch);
    }
    b.perm = malloc((size_t)n * sizeof *b.perm);
    b.val_probs = nval ? malloc((size_t)nval * k * sizeof *b.val_probs) : NULL;
    b.part = aligned_alloc(64, (size_t)threads * sizeof *b.part);
    b.aug = augment ? malloc((size_t)threads * in * sizeof *b.aug) : NULL;
    b.best = cfg->early_stopping || cfg->resume ? malloc(m->arena_size * sizeof *b.best) : NULL;
    if (!b.x[0] || !b.x[1] || !b.labels[0] || !b.labels[1] || !b.perm ||
        (nval && !b.val_probs) || !b.part || (augment && !b.aug) ||
        ((cfg->early_stopping || cfg->resume) && !b.best)) {
        release(&b);
        return fnn_fail(err, FNN_ERR_NOMEM, "training: out of memory");
    }
    if ((s = fnn_optimizer_init(&b.opt, &cfg->optim, m->arena_size, err)) != FNN_OK ||
        (s = partition(&b.opt, m, cfg->freeze,
                       cfg->bn_lr_scale > 0.0f ? cfg->bn_lr_scale : 1.0f, err)) != FNN_OK ||
        (cfg->ema > 0.0f &&
         (s = fnn_ema_start(&b.opt, cfg->ema, cfg->ema_every, m->params, err)) != FNN_OK)) {
        release(&b);
        return s;
    }
    int steps = (n + batch - 1) / batch;
    fnn_train_state ts = {.plateau_scale = 1.0f, .plateau_best = HUGE_VAL, .es_best = NAN};
    fnn_rng_seed(&ts.shuffle, cfg->seed);
    if (cfg->resume) {
        int has_best = 0;
        if ((s = fnn_checkpoint_load(cfg->resume, m, cfg, steps, &ts, stats, &b.opt, b.best,
                                     &has_best, err)) != FNN_OK) {
            release(&b);
            return s;
        }
        if (cfg->early_stopping && ts.es_epoch && !has_best) {
            release(&b);
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: early stopping's best weights (epoch %d) "
                            "are missing", cfg->resume, ts.es_epoch);
        }
        res.resumed_epoch = ts.epoch;
    }
    /* After the resume: the checkpoint's input normalisation may have replaced the model's,
     * and with it the room a batch needs. */
    if ((s = fnn_exec_create(m, batch, threads, m->grads, &b.ex, err)) != FNN_OK) {
        release(&b);
        return s;
    }
    fnn_blas_single_threaded();

    uint64_t dropout_seed = fnn_hash64(cfg->seed ^ 0xD50F0u);
    uint64_t augment_seed = fnn_hash64(cfg->seed ^ 0xA06u);
    float *dlogits = fnn_exec_logit_grad(b.ex);
    int clip = cfg->clip_norm > 0.0f;
    int shards = cfg->shard_count > 1 ? cfg->shard_count : 1, shard = cfg->shard_index;
    res.epochs = ts.epoch;

    for (int epoch = ts.epoch + 1; epoch <= cfg->epochs; epoch++) {
        /* ts.shuffle stays at this epoch's start until it ends, for a mid-epoch checkpoint. */
        fnn_rng shuffle = ts.shuffle;
        for (int i = 0; i < n; i++)
            b.perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)fnn_rng_below(&shuffle, (uint32_t)i + 1);
            int t = b.perm[i];
            b.perm[i] = b.perm[j];
            b.perm[j] = t;
        }
        uint64_t step_base = (uint64_t)(epoch - 1) * (uint64_t)steps;
        int first = ts.step;
        double t0 = fnn_now_s(), last_report = t0, loss_sum = ts.loss_sum;
        long correct = ts.correct, seen = ts.seen;
        int bad_step = 0;  /* 1-based step whose loss was not finite */
        int bad_grads = 0; /* 1-based step whose gradients were not finite after the hook */
        int done = first;  /* steps finished, when interrupted */
        b.stop = 0;
        b.hook = FNN_OK;

#pragma omp parallel num_threads(threads)
        {
            fnn_team_begin(&b.team);
            unsigned fp_state = fnn_denormals_flush();
            int tid = omp_get_thread_num(), nt = omp_get_num_threads();
            float *aug_scratch = augment ? b.aug + (size_t)tid * in : NULL;
            /* A step has three barriers: after the batch is filled, inside the first dense
             * layer's forward pass and inside its backward pass; everything between them
             * stays on each thread's rows. So the previous step's loss is summed at the top of
             * the next one (and once more after the last), and batches alternate between two
             * buffers, since a thread may fill one while another still reads the other.
             * Clipping adds a fourth, after backward, to add up the gradient's norm. */
            for (int step = first; step <= steps; step++) {
                if (step > first) {
                    double loss = 0.0;
                    int hits = 0, prev = (step - 1) * batch;
                    int prev_rows = n - prev < batch ? n - prev : batch;
                    for (int j = 0; j < nt; j++) {
                        loss += b.part[j].loss;
                        hits += b.part[j].hits;
                    }
                    if (!isfinite(loss)) {
                        if (tid == 0)
                            bad_step = step;
                        break;
                    }
                    if (tid == 0) {
                        loss_sum += loss;
                        correct += hits;
                        seen += (int)((int64_t)prev_rows * (shard + 1) / shards -
                                      (int64_t)prev_rows * shard / shards);
                        double t = fnn_now_s();
                        if (cfg->on_progress && (t - last_report >= cfg->progress_interval_s ||
                                                 step == steps)) {
                            last_report = t;
                            fnn_progress p = {epoch, step, steps, loss_sum / seen,
                                              (double)correct / seen, t - t0};
                            cfg->on_progress(cfg->user, &p);
                        }
                    }
                }
                if (step == steps)
                    break;
                int start = step * batch, rows = n - start < batch ? n - start : batch;
                if (tid == 0 && cfg->on_step) {
                    fnn_step_info si = {epoch, step, steps, b.perm + start, rows};
                    cfg->on_step(cfg->user, &si);
                }
                /* Read by thread 0 only; the others learn of it after the barrier below. */
                if (tid == 0 && cfg->interrupt && *cfg->interrupt) {
                    b.stop = 1;
                    done = step;
                }
                /* This shard's rows [row0, row0 + mine) of the batch (all of it for one). */
                int row0 = (int)((int64_t)rows * shard / shards);
                int mine = (int)((int64_t)rows * (shard + 1) / shards) - row0;
                float *x = b.x[step & 1];
                uint8_t *labels = b.labels[step & 1];
                fnn_batch_fill(train, b.perm + start + row0, 0, mine, x, labels);
                if (augment)
                    fnn_augment_batch(&cfg->augment, augment_seed, step_base + (uint64_t)step,
                                      (size_t)row0, x, mine, train->c, train->h, train->w,
                                      aug_scratch);
                fnn_team_sync(&b.team);
                if (b.stop)
                    break;
                if (mine) {
                    fnn_pass pass = {.train = 1,
                                     .key = fnn_hash64(dropout_seed + step_base + step),
                                     .row0 = (size_t)row0, .sync = &b.team, .rows_after = 1};
                    const float *logits = fnn_exec_forward(b.ex, &pass, x, mine);
                    size_t lo, hi;
                    fnn_team_range((size_t)mine, 1, &lo, &hi);
                    /* Divided by the whole batch: the shards' gradients add up to one. */
                    fnn_softmax_xent(logits, labels, rows, k, cfg->label_smoothing, lo, hi,
                                     dlogits, &b.part[tid].loss, &b.part[tid].hits);
                    prefetch_next(train, b.perm, n, batch, step, steps, shard, shards);
                    fnn_exec_backward(b.ex, &pass, x, mine, NULL);
                } else {
                    /* A shard left without rows (a last batch smaller than the shard count)
                     * still takes part in the hook, with a gradient of zero. */
                    b.part[tid].loss = 0.0;
                    b.part[tid].hits = 0;
                    if (tid == 0)
                        memset(m->grads, 0, m->arena_size * sizeof *m->grads);
                }
                if (cfg->on_gradients) {
                    /* Backward leaves each thread its share of the gradients (rows_after): the
                     * barrier makes the arena whole for the hook, the second one its result
                     * visible to the team's update. */
                    fnn_team_sync(&b.team);
                    if (tid == 0) {
                        b.hook = cfg->on_gradients(cfg->grad_user, m->grads, m->arena_size, err);
                        if (b.hook == FNN_OK &&
                            fnn_nonfinite_row(m->grads, 1, m->arena_size) >= 0)
                            bad_grads = step + 1;
                    }
                    fnn_team_sync(&b.team);
                    if (b.hook != FNN_OK || bad_grads)
                        break;
                }
                int64_t t = (int64_t)(step_base + (uint64_t)step);
                float lr = fnn_lr_at(&cfg->schedule, cfg->optim.lr, cfg->epochs, steps,
                                     epoch - 1, t, ts.plateau_scale);
                float scale = 1.0f;
                if (clip) {
                    b.part[tid].sumsq = fnn_optimizer_sumsq(&b.opt, m->grads);
                    fnn_team_sync(&b.team);
                    double sumsq = 0.0;
                    for (int j = 0; j < nt; j++)
                        sumsq += b.part[j].sumsq;
                    double norm = sqrt(sumsq);
                    /* tf.clip_by_global_norm: g * clip / max(norm, clip). */
                    if (norm > cfg->clip_norm)
                        scale = (float)(cfg->clip_norm / norm);
                }
                fnn_optimizer_step_lr(&b.opt, m->params, m->grads, t + 1, lr, scale);
                fnn_ema_update(&b.opt, m->params, t + 1, &b.team);
            }
            fnn_denormals_restore(fp_state);
            fnn_team_end(&b.team);
        }
        if ((s = fnn_gemm_check(&b.team, "training", err)) != FNN_OK) {
            release(&b);
            return s;
        }
        if (b.hook != FNN_OK) {
            release(&b);
            if (result)
                *result = res;
            return b.hook;
        }
        if (bad_grads) {
            release(&b);
            if (result)
                *result = res;
            return fnn_fail(err, FNN_ERR_NUMERIC,
                            "training: the gradients became NaN or infinite at epoch %d, step "
                            "%d (after on_gradients); try a smaller learning rate", epoch,
                            bad_grads);
        }
        if (bad_step) {
            release(&b);
            if (result)
                *result = res;
            return fnn_fail(err, FNN_ERR_NUMERIC,
                            "training: the loss became %s at epoch %d, step %d; try a smaller "
                            "learning rate", isnan(loss_sum) ? "NaN" : "infinite", epoch,
                            bad_step);
        }
        if (b.stop) {
            ts.step = done;
            ts.t = (int64_t)step_base + done;
            ts.loss_sum = loss_sum;
            ts.correct = correct;
            ts.seen = seen;
            res.interrupted = 1;
            if (result)
                *result = res;
            if (cfg->checkpoint &&
                (s = fnn_checkpoint_write(cfg->checkpoint, m, cfg, &ts, stats, &b.opt,
                                          ts.es_epoch ? b.best : NULL, err)) != FNN_OK) {
                release(&b);
                return s;
            }
            release(&b);
            return fnn_fail(err, FNN_ERR_INTERRUPTED,
                            "training: interrupted at epoch %d after step %d of %d%s%s", epoch,
                            done, steps, cfg->checkpoint ? "; checkpoint written to " : "",
                            cfg->checkpoint ? cfg->checkpoint : "");
        }

        fnn_epoch_stats st = {.epoch = epoch, .train_loss = loss_sum / seen,
                              .train_acc = (double)correct / seen, .seconds = fnn_now_s() - t0,
                              .val_loss = NAN, .val_acc = NAN};
        /* Validation and early stopping's best weights are the average's, when there is one. */
        fnn_ema_swap(&b.opt, m->params);
        if (nval) {
            double v0 = fnn_now_s();
            if ((s = fnn_infer(m, val, threads, cfg->tta, b.val_probs, err)) != FNN_OK) {
                fnn_ema_swap(&b.opt, m->params);
                release(&b);
                return s;
            }
            fnn_loss_accuracy(b.val_probs, val->labels, nval, k, &st.val_loss, &st.val_acc);
            st.val_seconds = fnn_now_s() - v0;
        }
        if (stats)
            stats[epoch - 1] = st;
        res.epochs = epoch;
        int stop = after_epoch(cfg, m, &b, &ts, &st);
        fnn_ema_swap(&b.opt, m->params);
        ts = (fnn_train_state){.epoch = epoch, .t = (int64_t)(step_base + (uint64_t)steps),
                               .shuffle = shuffle, .plateau_scale = ts.plateau_scale,
                               .plateau_best = ts.plateau_best, .plateau_wait = ts.plateau_wait,
                               .es_best = ts.es_best, .es_epoch = ts.es_epoch,
                               .es_wait = ts.es_wait};
        if (cfg->checkpoint &&
            (s = fnn_checkpoint_write(cfg->checkpoint, m, cfg, &ts, stats, &b.opt,
                                      ts.es_epoch ? b.best : NULL, err)) != FNN_OK) {
            release(&b);
            return s;
        }
        int user_stop = cfg->on_epoch && cfg->on_epoch(cfg->user, &st);
        if (stop) {
            res.stopped_early = 1;
            break;
        }
        if (user_stop)
            break;
    }
    /* The model ends on the average; the raw weights go where the average was, and die. */
    fnn_ema_swap(&b.opt, m->params);
    /* Keras's restore_best_weights, also when the run reached its last epoch. */
    if (cfg->early_stopping && ts.es_epoch) {
        memcpy(m->params, b.best, m->arena_size * sizeof *m->params);
        res.best_epoch = ts.es_epoch;
    }
    if (result)
        *result = res;
    release(&b);
    return FNN_OK;
}
