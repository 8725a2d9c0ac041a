/* The training loop. Each step is forward, loss, backward (every gradient lands in the model's
 * gradient arena), then the optimizer update: the point where gradients could be summed across
 * processes. One OpenMP team runs a whole epoch; layers share the work inside it. */
#include "data/batch.h"
#include "eval/eval.h"
#include "model/model.h"
#include "optim/optim.h"
#include "train/train.h"
#include "util/error.h"
#include "util/rng.h"
#include "util/team.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#define MAX_EPOCHS 100000
#define MAX_BATCH 65536

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

fnn_train_config fnn_train_default(void)
{
    return (fnn_train_config){
        .epochs = 10,
        .batch_size = 32,
        .seed = 42,
        .threads = 0,
        .optim = fnn_optim_default(FNN_OPT_ADAM),
        .progress_interval_s = 0.1,
    };
}

static fnn_status check_config(const fnn_train_config *c, fnn_error *err)
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
    return FNN_OK;
}

/* Buffers of one training run, allocated before the first step. */
typedef struct {
    float *x[2];      /* (batch, in) each, used by turns */
    uint8_t *labels[2]; /* (batch) each */
    int *perm;        /* (n) this epoch's order */
    float *val_probs; /* (val n, classes) */
    fnn_optimizer opt;
    fnn_barrier team;
    struct {
        _Alignas(64) double loss; /* summed over this thread's rows of the batch */
        int hits;
    } *part;                      /* (threads) */
} run_buffers;

fnn_status fnn_partition_optimizer(fnn_optimizer *o, const fnn_model *m, fnn_error *err)
{
    int n = fnn_model_num_tensors(m);
    fnn_param_block *blocks = malloc((size_t)(n ? n : 1) * sizeof *blocks);
    if (!blocks)
        return fnn_fail(err, FNN_ERR_NOMEM, "training: out of memory");
    int nb = 0;
    for (int i = 0; i < n; i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        if (t.frozen)
            continue;
        size_t rows = t.rank ? (size_t)t.shape[0] : 1;
        blocks[nb++] = (fnn_param_block){(size_t)(t.data - m->params), rows,
                                         rows ? t.size / rows : 0, t.rank >= 2};
    }
    fnn_status s = fnn_optimizer_partition(o, blocks, nb, err);
    free(blocks);
    return s;
}

static void release(run_buffers *b)
{
    for (int i = 0; i < 2; i++) {
        free(b->x[i]);
        free(b->labels[i]);
    }
    free(b->perm);
    free(b->val_probs);
    free(b->part);
    fnn_optimizer_release(&b->opt);
}

fnn_status fnn_train(fnn_model *m, const fnn_dataset *train, const fnn_dataset *val,
                     const fnn_train_config *cfg, fnn_epoch_stats *stats, fnn_error *err)
{
    fnn_status s = check_config(cfg, err);
    if (s != FNN_OK)
        return s;
    if (train->n < 1)
        return fnn_fail(err, FNN_ERR_ARG, "training: the training set is empty");
    if ((s = fnn_check_data(m, train, "training", err)) != FNN_OK)
        return s;
    int nval = val ? val->n : 0;
    if (nval && (s = fnn_check_data(m, val, "validation", err)) != FNN_OK)
        return s;

    int n = train->n, k = m->nclasses;
    int batch = cfg->batch_size < n ? cfg->batch_size : n;
    size_t in = fnn_shape_size(m->input);
    int threads = fnn_threads_resolve(cfg->threads);
    /* Room for validation batches too: a later reserve would move the buffers. */
    int val_rows = nval < FNN_EVAL_BATCH ? nval : FNN_EVAL_BATCH;
    if ((s = fnn_model_reserve(m, batch > val_rows ? batch : val_rows, err)) != FNN_OK)
        return s;

    run_buffers b = {0};
    for (int i = 0; i < 2; i++) {
        b.x[i] = aligned_alloc(64, ((size_t)batch * in * sizeof *b.x[i] + 63) / 64 * 64);
        b.labels[i] = malloc((size_t)batch);
    }
    b.perm = malloc((size_t)n * sizeof *b.perm);
    b.val_probs = nval ? malloc((size_t)nval * k * sizeof *b.val_probs) : NULL;
    b.part = aligned_alloc(64, (size_t)threads * sizeof *b.part);
    if (!b.x[0] || !b.x[1] || !b.labels[0] || !b.labels[1] || !b.perm ||
        (nval && !b.val_probs) || !b.part) {
        release(&b);
        return fnn_fail(err, FNN_ERR_NOMEM, "training: out of memory");
    }
    if ((s = fnn_optimizer_init(&b.opt, &cfg->optim, m->arena_size, err)) != FNN_OK ||
        (s = fnn_partition_optimizer(&b.opt, m, err)) != FNN_OK) {
        release(&b);
        return s;
    }
    fnn_blas_single_threaded();

    fnn_rng shuffle;
    fnn_rng_seed(&shuffle, cfg->seed);
    uint64_t dropout_seed = fnn_hash64(cfg->seed ^ 0xD50F0u);
    uint64_t step_base = 0;
    int steps = (n + batch - 1) / batch;
    float *dlogits = fnn_model_logit_grad(m);

    for (int epoch = 1; epoch <= cfg->epochs; epoch++) {
        for (int i = 0; i < n; i++)
            b.perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)fnn_rng_below(&shuffle, (uint32_t)i + 1);
            int t = b.perm[i];
            b.perm[i] = b.perm[j];
            b.perm[j] = t;
        }
        double t0 = now_s(), last_report = t0, loss_sum = 0.0;
        long correct = 0, seen = 0;
        int bad_step = 0; /* 1-based step whose loss was not finite */

#pragma omp parallel num_threads(threads)
        {
            fnn_team_begin(&b.team);
            unsigned fp_state = fnn_denormals_flush();
            int tid = omp_get_thread_num(), nt = omp_get_num_threads();
            /* A step has three barriers: after the batch is filled, inside the first dense
             * layer's forward pass and inside its backward pass; everything between them
             * stays on each thread's rows. So the previous step's loss is summed at the top of
             * the next one (and once more after the last), and batches alternate between two
             * buffers, since a thread may fill one while another still reads the other. */
            for (int step = 0; step <= steps; step++) {
                if (step > 0) {
                    double loss = 0.0;
                    int hits = 0, prev = (step - 1) * batch;
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
                        seen += n - prev < batch ? n - prev : batch;
                        double t = now_s();
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
                float *x = b.x[step & 1];
                uint8_t *labels = b.labels[step & 1];
                fnn_batch_fill(train, b.perm + start, 0, rows, x, labels);
                fnn_team_sync(&b.team);
                fnn_pass pass = {.train = 1, .key = fnn_hash64(dropout_seed + step_base + step),
                                 .sync = &b.team, .rows_after = 1};
                const float *logits = fnn_model_forward(m, &pass, x, rows);
                size_t lo, hi;
                fnn_team_range((size_t)rows, 1, &lo, &hi);
                fnn_softmax_xent(logits, labels, rows, k, lo, hi, dlogits, &b.part[tid].loss,
                                 &b.part[tid].hits);
                if (step + 1 < steps) {
                    int next = start + rows;
                    fnn_batch_prefetch(train, b.perm + next, n - next < batch ? n - next : batch);
                }
                fnn_model_backward(m, &pass, x, rows, NULL);
                fnn_optimizer_step(&b.opt, m->params, m->grads,
                                   (int64_t)(step_base + (uint64_t)step) + 1);
            }
            fnn_denormals_restore(fp_state);
        }
        step_base += (uint64_t)steps;
        if (bad_step) {
            release(&b);
            return fnn_fail(err, FNN_ERR_NUMERIC,
                            "training: the loss became %s at epoch %d, step %d; try a smaller "
                            "learning rate", isnan(loss_sum) ? "NaN" : "infinite", epoch,
                            bad_step);
        }

        fnn_epoch_stats st = {.epoch = epoch, .train_loss = loss_sum / seen,
                              .train_acc = (double)correct / seen, .seconds = now_s() - t0,
                              .val_loss = NAN, .val_acc = NAN};
        if (nval) {
            double v0 = now_s();
            if ((s = fnn_infer(m, val, threads, b.val_probs, err)) != FNN_OK) {
                release(&b);
                return s;
            }
            fnn_loss_accuracy(b.val_probs, val->labels, nval, k, &st.val_loss, &st.val_acc);
            st.val_seconds = now_s() - v0;
        }
        if (stats)
            stats[epoch - 1] = st;
        if (cfg->on_epoch && cfg->on_epoch(cfg->user, &st))
            break;
    }
    release(&b);
    return FNN_OK;
}
