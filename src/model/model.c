/* The sequential model: a stack of layers over one parameter arena and one gradient arena.
 * The memory of its passes is an executor's (model/exec.c). */
#include "model/exec.h"
#include "model/model.h"
#include "util/error.h"
#include "util/gemm.h"
#include "util/team.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64 bytes: each layer's block and buffer starts on a cache line */

static size_t round_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static float *alloc_floats(size_t n)
{
    size_t bytes = round_up(n ? n : 1) * sizeof(float);
    float *p = aligned_alloc(ALIGN_FLOATS * sizeof(float), bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

static fnn_status check_head(const fnn_model *m, fnn_error *err)
{
    const fnn_layer *last = &m->layers[m->nlayers - 1];
    if (last->ops != &fnn_dense_ops)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "architecture spec: the last layer must be dense:K:softmax (or dense:K for "
                        "logits) with K the number of classes, not \"%s\"", last->ops->kind);
    for (int i = 0; i < m->nlayers - 1; i++)
        if (m->layers[i].ops == &fnn_dense_ops && m->layers[i].cfg.dense.act == FNN_ACT_SOFTMAX)
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "architecture spec: token %d: softmax is only allowed on the last "
                            "layer", i + 1);
    int k = last->cfg.dense.units;
    if (k < 2 || k > FNN_MAX_CLASSES)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "architecture spec: the last layer has %d units; a classifier needs "
                        "2 to %d classes", k, FNN_MAX_CLASSES);
    return FNN_OK;
}

static fnn_status build_spec_string(fnn_model *m, fnn_error *err)
{
    size_t cap = 64 * (size_t)m->nlayers + 1, len = 0;
    m->spec = malloc(cap);
    if (!m->spec)
        return fnn_fail(err, FNN_ERR_NOMEM, "model: out of memory");
    m->spec[0] = '\0';
    for (int i = 0; i < m->nlayers; i++) {
        char tok[64];
        m->layers[i].ops->format(&m->layers[i], tok, sizeof tok);
        len += (size_t)snprintf(m->spec + len, cap - len, "%s%s", i ? " " : "", tok);
    }
    return FNN_OK;
}

fnn_model *fnn_model_create(const char *spec, int c, int h, int w, fnn_error *err)
{
    if (c < 1 || h < 1 || w < 1 || c > 4096 || h > 4096 || w > 4096) {
        fnn_fail(err, FNN_ERR_ARG, "model: input shape (%d, %d, %d) is out of range", c, h, w);
        return NULL;
    }
    fnn_model *m = calloc(1, sizeof *m);
    if (!m) {
        fnn_fail(err, FNN_ERR_NOMEM, "model: out of memory");
        return NULL;
    }
    m->input = (fnn_shape){c, h, w};
    if (fnn_spec_parse(spec, &m->layers, &m->nlayers, err) != FNN_OK)
        goto fail;

    fnn_shape shape = m->input;
    for (int i = 0; i < m->nlayers; i++) {
        fnn_layer *l = &m->layers[i];
        l->in = shape;
        if (l->ops->setup(l, err) != FNN_OK)
            goto fail;
        m->nparams += l->nparams;
        m->arena_size += round_up(l->nparams);
        shape = l->out;
    }
    if (check_head(m, err) != FNN_OK || build_spec_string(m, err) != FNN_OK)
        goto fail;
    m->nclasses = m->layers[m->nlayers - 1].cfg.dense.units;

    m->params = alloc_floats(m->arena_size);
    m->grads = alloc_floats(m->arena_size);
    m->src = malloc((size_t)(m->nlayers + 1) * sizeof *m->src);
    m->params_below = malloc((size_t)m->nlayers * sizeof *m->params_below);
    if (!m->params || !m->grads || !m->src || !m->params_below) {
        fnn_fail(err, FNN_ERR_NOMEM, "model: out of memory for %zu parameters", m->nparams);
        goto fail;
    }
    size_t offset = 0;
    int producer = -1, below = 0;
    for (int i = 0; i < m->nlayers; i++) {
        fnn_layer *l = &m->layers[i];
        l->params = m->params + offset;
        l->grads = m->grads + offset;
        offset += round_up(l->nparams);
        m->src[i] = producer;
        m->params_below[i] = below;
        below |= l->nparams > 0;
        if (!l->ops->alias)
            producer = i;
    }
    m->src[m->nlayers] = producer;
    return m;
fail:
    fnn_model_free(m);
    return NULL;
}

void fnn_model_free(fnn_model *m)
{
    if (!m)
        return;
    free(m->spec);
    free(m->layers);
    free(m->params);
    free(m->grads);
    free(m->src);
    free(m->params_below);
    free(m->norm_mean);
    free(m->norm_std);
    free(m);
}

void fnn_model_init(fnn_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nlayers; i++) {
        fnn_layer *l = &m->layers[i];
        if (!l->ops->init)
            continue;
        /* One stream per layer: a layer's initial weights do not depend on the others. */
        fnn_rng rng;
        fnn_rng_seed(&rng, seed ^ fnn_hash64((uint64_t)i));
        l->ops->init(l, &rng);
    }
}

/* ---------------------------------------------------------------- inspection */

int fnn_model_num_layers(const fnn_model *m) { return m->nlayers; }
size_t fnn_model_num_params(const fnn_model *m) { return m->nparams; }
int fnn_model_num_classes(const fnn_model *m) { return m->nclasses; }

size_t fnn_model_num_trainable(const fnn_model *m)
{
    size_t n = 0;
    for (int i = 0; i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        n += t.frozen ? 0 : t.size;
    }
    return n;
}
const char *fnn_model_spec(const fnn_model *m) { return m->spec; }

void fnn_model_input_shape(const fnn_model *m, int *c, int *h, int *w)
{
    *c = m->input.c;
    *h = m->input.h;
    *w = m->input.w;
}

void fnn_model_layer_info(const fnn_model *m, int i, fnn_layer_info *out)
{
    const fnn_layer *l = &m->layers[i];
    int same = 0; /* earlier layers of the same type: Keras names them dense, dense_1, ... */
    for (int j = 0; j < i; j++)
        same += m->layers[j].ops == l->ops;
    memset(out, 0, sizeof *out);
    if (same)
        snprintf(out->name, sizeof out->name, "%s_%d", l->ops->kind, same);
    else
        snprintf(out->name, sizeof out->name, "%s", l->ops->kind);
    snprintf(out->type, sizeof out->type, "%s", l->ops->type);
    out->out_c = l->out.c;
    out->out_h = l->out.h;
    out->out_w = l->out.w;
    out->out_rank = (l->out.h == 1 && l->out.w == 1) ? 1 : 3;
    out->nparams = l->nparams;
}

int fnn_model_num_tensors(const fnn_model *m)
{
    int n = 0;
    for (int i = 0; i < m->nlayers; i++)
        n += m->layers[i].ntensors;
    return n;
}

void fnn_model_tensor(const fnn_model *m, int i, fnn_tensor *out)
{
    for (int j = 0; j < m->nlayers; j++) {
        const fnn_layer *l = &m->layers[j];
        if (i < l->ntensors) {
            l->ops->tensor(l, i, out);
            return;
        }
        i -= l->ntensors;
    }
    memset(out, 0, sizeof *out);
}

/* ---------------------------------------------------------------- prediction */

fnn_status fnn_predictor_create(const fnn_model *m, int max_batch, int threads,
                                fnn_exec **out, fnn_error *err)
{
    *out = NULL;
    if (max_batch < 1)
        return fnn_fail(err, FNN_ERR_ARG, "predictor: the batch must be at least 1, got %d",
                        max_batch);
    if (threads < 0)
        return fnn_fail(err, FNN_ERR_ARG, "predictor: threads must be 0 (all cores) or more, "
                        "got %d", threads);
    /* Here, not only in fnn_predictor_run: callers make their executors before their threads
     * start (fnn.h, "Threads and models"). */
    fnn_blas_single_threaded();
    return fnn_exec_create(m, max_batch < FNN_EVAL_BATCH ? max_batch : FNN_EVAL_BATCH,
                           fnn_threads_resolve(threads), NULL, out, err);
}

fnn_status fnn_predictor_run(fnn_exec *e, const float *x, int n, float *probs, fnn_error *err)
{
    if (n < 0)
        return fnn_fail(err, FNN_ERR_ARG, "predict: negative image count %d", n);
    if (n == 0)
        return FNN_OK;
    const fnn_model *m = e->m;
    int cap = e->capacity;
    fnn_blas_single_threaded();
    size_t in = fnn_shape_size(m->input), k = (size_t)m->nclasses;
    fnn_barrier team;
    fnn_pass pass = {.train = 0, .sync = &team};
#pragma omp parallel num_threads(e->team)
    {
        fnn_team_begin(&team);
        for (int start = 0; start < n; start += cap) {
            int rows = n - start < cap ? n - start : cap;
            const float *logits = fnn_exec_forward(e, &pass, x + (size_t)start * in, rows);
            size_t lo, hi;
            fnn_team_range((size_t)rows, 1, &lo, &hi);
            fnn_softmax_rows(logits, (int)k, lo, hi, probs + (size_t)start * k);
            fnn_team_sync(&team);
        }
        fnn_team_end(&team);
    }
    fnn_status s = fnn_gemm_check(&team, "prediction", err);
    if (s != FNN_OK)
        return s;
    return fnn_check_probs(probs, n, k, "prediction", err);
}

fnn_status fnn_model_predict(const fnn_model *m, const float *x, int n, float *probs,
                             int threads, fnn_error *err)
{
    if (n < 0)
        return fnn_fail(err, FNN_ERR_ARG, "predict: negative image count %d", n);
    if (n == 0)
        return FNN_OK;
    fnn_exec *e;
    fnn_status s = fnn_predictor_create(m, n, threads, &e, err);
    if (s == FNN_OK)
        s = fnn_predictor_run(e, x, n, probs, err);
    fnn_exec_free(e);
    return s;
}

int fnn_nonfinite_row(const float *v, int n, size_t k)
{
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++)
            if (!isfinite(v[(size_t)i * k + j]))
                return i;
    return -1;
}

fnn_status fnn_nonfinite_fail(fnn_error *err, const char *what, int i)
{
    return fnn_fail(err, FNN_ERR_NUMERIC, "%s: the model's outputs for image %d are not finite: "
                    "its weights overflow on it", what, i);
}

fnn_status fnn_check_probs(const float *probs, int n, size_t k, const char *what, fnn_error *err)
{
    int i = fnn_nonfinite_row(probs, n, k);
    return i < 0 ? FNN_OK : fnn_nonfinite_fail(err, what, i);
}
