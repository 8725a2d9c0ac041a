/* The executor: a model's pass memory for one team, kept apart from the weights, and the
 * forward and backward walks over the stack of layers. */
#include "model/exec.h"
#include "model/model.h"
#include "util/error.h"
#include "util/team.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64 bytes: each buffer starts on a cache line */

static size_t round_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

/* A layer's per-team scratch for a team of `team` threads. */
static size_t team_floats(const fnn_layer *l, int team)
{
    return l->ops->team_floats ? l->ops->team_floats(l, team) : l->team_scratch_size;
}

/* Stands in, in an evaluation executor, for a batchnorm or a ReLU folded into the layer before
 * it: an alias, which the passes skip. */
static const fnn_layer_ops folded_ops = {.kind = "folded", .type = "Folded", .alias = 1};

static int is_relu(const fnn_layer *l)
{
    return l->ops == &fnn_activation_ops && l->cfg.act.kind == FNN_ACT_RELU;
}

/* An evaluation executor's layers: a batchnorm right after a layer that can take it in (its
 * ops' fold: conv2d, dense), and a ReLU right after that, become part of that layer's output
 * step, as onnxruntime folds them. On its own each would be one more pass over the
 * activations with a barrier around it. The layer applies the map from the batchnorm's
 * parameters on every pass, so changed weights or statistics take effect at once. */
static void fold_layers(const fnn_model *m, fnn_layer *layers)
{
    for (int i = 0; i + 1 < m->nlayers; i++) {
        fnn_layer *l = &layers[i];
        const fnn_layer *bn = &m->layers[i + 1];
        if (!l->ops->fold || bn->ops != &fnn_batchnorm_ops)
            continue;
        int relu = i + 2 < m->nlayers && is_relu(&m->layers[i + 2]);
        if (!l->ops->fold(l, bn, relu))
            continue;
        layers[i + 1].ops = &folded_ops;
        if (relu)
            layers[i + 2].ops = &folded_ops;
    }
}

fnn_status fnn_exec_create(const fnn_model *m, int rows, int team, float *grads, fnn_exec **out,
                           fnn_error *err)
{
    *out = NULL;
    if (rows < 1 || team < 1)
        return fnn_fail(err, FNN_ERR_ARG, "executor: %d rows for %d threads; both must be >= 1",
                        rows, team);
    int nl = m->nlayers, dual = grads != NULL;
    fnn_exec *e = calloc(1, sizeof *e);
    if (e) {
        e->layers = malloc((size_t)nl * sizeof *e->layers);
        e->src = malloc((size_t)(nl + 1) * sizeof *e->src);
        e->act = calloc((size_t)nl, sizeof *e->act);
        e->dact = calloc((size_t)nl, sizeof *e->dact);
    }
    if (!e || !e->layers || !e->src || !e->act || !e->dact) {
        fnn_exec_free(e);
        return fnn_fail(err, FNN_ERR_NOMEM, "model: out of memory for an executor of %d layers",
                        nl);
    }
    memcpy(e->layers, m->layers, (size_t)nl * sizeof *e->layers);
    /* Passes with backward keep every layer: its gradient needs each one's output. */
    if (!dual)
        fold_layers(m, e->layers);
    size_t total = 0;
    int producer = -1;
    for (int i = 0; i < nl; i++) {
        const fnn_layer *l = &e->layers[i];
        size_t size = l->ops->alias ? 0 : round_up((size_t)rows * fnn_shape_size(l->out));
        total += (1 + (size_t)dual) * size + round_up((size_t)rows * l->scratch_per_sample) +
                 round_up(team_floats(l, team));
        e->src[i] = producer;
        if (!l->ops->alias)
            producer = i;
    }
    e->src[nl] = producer;
    size_t norm = m->normalized ? round_up((size_t)rows * fnn_shape_size(m->input)) : 0;
    total += norm;
    e->buffers = aligned_alloc(ALIGN_FLOATS * sizeof(float),
                               round_up(total ? total : 1) * sizeof(float));
    if (!e->buffers) {
        fnn_exec_free(e);
        return fnn_fail(err, FNN_ERR_NOMEM, "model: out of memory for a batch of %d (%zu MB)",
                        rows, total * sizeof(float) >> 20);
    }
    /* Zeroed: conv2d's cache of transformed kernels relies on it (nn/conv2d.c). */
    memset(e->buffers, 0, round_up(total ? total : 1) * sizeof(float));
    e->m = m;
    e->capacity = rows;
    e->team = team;
    e->backward = dual;
    float *buf = e->buffers;
    for (int i = 0; i < nl; i++) {
        fnn_layer *l = &e->layers[i];
        if (l->partner)
            l->partner = e->layers + (l->partner - m->layers);
        l->grads = dual ? grads + (m->layers[i].grads - m->grads) : NULL;
        l->team = team;
        size_t size = l->ops->alias ? 0 : round_up((size_t)rows * fnn_shape_size(l->out));
        e->act[i] = size ? buf : NULL;
        l->output = e->act[i];
        buf += size;
        if (dual) {
            e->dact[i] = size ? buf : NULL;
            buf += size;
        }
        l->scratch = l->scratch_per_sample ? buf : NULL;
        buf += round_up((size_t)rows * l->scratch_per_sample);
        size_t ts = team_floats(l, team);
        l->team_scratch = ts ? buf : NULL;
        buf += round_up(ts);
    }
    e->norm_x = norm ? buf : NULL;
    *out = e;
    return FNN_OK;
}

void fnn_exec_free(fnn_exec *e)
{
    if (!e)
        return;
    free(e->layers);
    free(e->src);
    free(e->act);
    free(e->dact);
    free(e->buffers);
    free(e);
}

static unsigned sharing(const fnn_layer *l, int n)
{
    return l->ops->sharing ? l->ops->sharing(l, n, omp_get_num_threads()) : 0;
}

/* The next layer after i that does any work (aliases pass their input on), or -1. */
static int next_working(const fnn_exec *e, int i, int step)
{
    for (i += step; i >= 0 && i < e->m->nlayers; i += step)
        if (!e->layers[i].ops->alias)
            return i;
    return -1;
}

const float *fnn_exec_forward(fnn_exec *e, const fnn_pass *p, const float *x, int n)
{
    const fnn_model *m = e->m;
    int first = next_working(e, -1, 1);
    if (e->norm_x) {
        fnn_model_normalize_rows(m, x, n, e->norm_x);
        if (!(sharing(&e->layers[first], n) & FNN_FWD_ROWS_IN))
            fnn_team_sync(p->sync);
        x = e->norm_x;
    }
    for (int i = first; i >= 0;) {
        fnn_layer *l = &e->layers[i];
        l->ops->forward(l, p, e->src[i] < 0 ? x : e->act[e->src[i]], e->act[i], n);
        int next = next_working(e, i, 1);
        /* No barrier where the next reader reads only the rows this thread just wrote. */
        unsigned mine = sharing(l, n) & FNN_FWD_ROWS_OUT;
        int rows_next = next < 0 ? p->rows_after
                                 : (sharing(&e->layers[next], n) & FNN_FWD_ROWS_IN) != 0;
        if (!mine || !rows_next)
            fnn_team_sync(p->sync);
        i = next;
    }
    return e->act[e->src[m->nlayers]];
}

float *fnn_exec_logit_grad(fnn_exec *e) { return e->dact[e->src[e->m->nlayers]]; }

void fnn_exec_backward(fnn_exec *e, const fnn_pass *p, const float *x, int n, float *dx)
{
    const fnn_model *m = e->m;
    /* unsynced: per-thread partial gradients may not all be written yet (no barrier since);
     * synced: the pass has held a barrier, so everything written before it is visible. */
    int unsynced = 0, reducing = 0, synced = 0;
    if (e->norm_x)
        x = e->norm_x; /* what the first layer saw in forward */
    for (int i = next_working(e, m->nlayers, -1); i >= 0;) {
        fnn_layer *l = &e->layers[i];
        int from = e->src[i];
        /* The first layers with parameters need no input gradient unless the caller asks. */
        float *din = NULL;
        if (dx || m->params_below[i])
            din = from < 0 ? dx : e->dact[from];
        unsigned mine = sharing(l, n);
        if (mine & FNN_BWD_SYNCS) {
            unsynced = 0;
            synced = 1;
        }
        l->ops->backward(l, p, from < 0 ? x : e->act[from], e->act[i], e->dact[i], din, n);
        if (mine & FNN_BWD_PARTIAL) {
            unsynced = 1;
            reducing = 1;
        }
        int next = next_working(e, i, -1);
        if (next >= 0 && (!(mine & FNN_BWD_ROWS_OUT) ||
                          !(sharing(&e->layers[next], n) & FNN_BWD_ROWS_IN))) {
            fnn_team_sync(p->sync);
            unsynced = 0;
            synced = 1;
        }
        i = next;
    }
    if (dx && e->norm_x) {
        if (!(sharing(&e->layers[next_working(e, -1, 1)], n) & FNN_BWD_ROWS_OUT))
            fnn_team_sync(p->sync);
        fnn_model_normalize_grad_rows(m, dx, n);
    }
    /* Callers rely on one barrier inside the pass: what they wrote before it is then visible
     * to the whole team once it returns (the training loop's per-thread loss sums). */
    if (unsynced || !synced)
        fnn_team_sync(p->sync);
    for (int i = 0; reducing && i < m->nlayers; i++)
        if (sharing(&e->layers[i], n) & FNN_BWD_PARTIAL)
            e->layers[i].ops->reduce(&e->layers[i], p, n);
    if (!p->rows_after)
        fnn_team_sync(p->sync);
}
