/* Explanations: input gradients of a class score, per-class saliency maps (plain gradient,
 * SmoothGrad, integrated gradients) and occlusion maps. */
#include "data/transform.h"
#include "eval/robustness.h"
#include "model/exec.h"
#include "model/model.h"
#include "util/error.h"
#include "util/gemm.h"
#include "util/team.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SMOOTHGRAD_SAMPLES 25
#define INTEGRATED_STEPS 32
#define SMOOTHGRAD_NOISE 0.15f

/* Input gradients in batches of up to cap images, with memory made once for any number of
 * calls: a backward executor's buffers (a pass over them costs more than the pass itself on
 * small images) and a gradient arena of its own, which backward writes and nothing reads. */
typedef struct {
    const fnn_model *m;
    float *grads; // (m->arena_size)
    fnn_exec *e;
} gradient_runner;

/* Frees what g holds and leaves it empty, so that a second call frees nothing. */
static void runner_free(gradient_runner *g)
{
    fnn_exec_free(g->e);
    free(g->grads);
    g->e = NULL;
    g->grads = NULL;
}

static fnn_status runner_create(const fnn_model *m, int cap, int threads, gradient_runner *g,
                                fnn_error *err)
{
    *g = (gradient_runner){.m = m};
    if (!(g->grads = malloc(m->arena_size * sizeof *g->grads)))
        return fnn_fail(err, FNN_ERR_NOMEM, "input gradient: out of memory");
    fnn_status s = fnn_exec_create(m, cap, fnn_threads_resolve(threads), g->grads, &g->e, err);
    if (s != FNN_OK)
        runner_free(g);
    return s;
}

/* dx (n, in) for images x (n, in) and their classes, checked by the caller. */
static fnn_status runner_run(const gradient_runner *g, const float *x, int n, const int *classes,
                             float *dx, fnn_error *err)
{
    const fnn_model *m = g->m;
    fnn_exec *e = g->e;
    int k = m->nclasses, cap = e->capacity;
    fnn_blas_single_threaded();
    size_t in = fnn_shape_size(m->input);
    fnn_barrier team;
    fnn_pass pass = {.train = 0, .sync = &team};
    int bad = INT_MAX; /* the first image whose logits are not finite */
#pragma omp parallel num_threads(e->team) reduction(min : bad)
    {
        fnn_team_begin(&team);
        for (int start = 0; start < n; start += cap) {
            int rows = n - start < cap ? n - start : cap;
            const float *xb = x + (size_t)start * in;
            const float *logits = fnn_exec_forward(e, &pass, xb, rows); // (rows, k)
            /* d score_c / d logits is the one-hot row of c: the score is the logit itself. */
            float *gl = fnn_exec_logit_grad(e); // (rows, k)
            size_t lo, hi;
            fnn_team_range((size_t)rows, 1, &lo, &hi);
            int mine_bad = fnn_nonfinite_row(logits + lo * k, (int)(hi - lo), (size_t)k);
            if (mine_bad >= 0 && start + (int)lo + mine_bad < bad)
                bad = start + (int)lo + mine_bad;
            for (size_t r = lo; r < hi; r++) {
                memset(gl + r * k, 0, (size_t)k * sizeof *gl);
                gl[r * k + classes[start + r]] = 1.0f;
            }
            fnn_team_sync(&team);
            fnn_exec_backward(e, &pass, xb, rows, dx + (size_t)start * in);
        }
        fnn_team_end(&team);
    }
    fnn_status s = fnn_gemm_check(&team, "input gradient", err);
    if (s != FNN_OK)
        return s;
    /* A finite score can still have an overflowing gradient: the maps must hold numbers too. */
    if (bad == INT_MAX && (bad = fnn_nonfinite_row(dx, n, in)) < 0)
        return FNN_OK;
    return fnn_nonfinite_fail(err, "input gradient", bad);
}

fnn_status fnn_input_gradient(const fnn_model *m, const float *x, int n, const int *classes,
                              float *dx, int threads, fnn_error *err)
{
    int k = m->nclasses;
    if (n < 0)
        return fnn_fail(err, FNN_ERR_ARG, "input gradient: negative image count %d", n);
    for (int i = 0; i < n; i++)
        if (classes[i] < 0 || classes[i] >= k)
            return fnn_fail(err, FNN_ERR_ARG,
                            "input gradient: image %d asks for class %d but the model has %d "
                            "classes", i, classes[i], k);
    if (n == 0)
        return FNN_OK;
    gradient_runner g;
    fnn_status s = runner_create(m, n < FNN_EVAL_BATCH ? n : FNN_EVAL_BATCH, threads, &g, err);
    if (s != FNN_OK)
        return s;
    s = runner_run(&g, x, n, classes, dx, err);
    runner_free(&g);
    return s;
}

/* ---------------------------------------------------------------- saliency */

/* Fills rows (variants, in) with the inputs whose gradients make up image x's attribution. */
static void make_variants(const fnn_saliency_config *cfg, int variants, float noise, int index,
                          const float *x, size_t in, float *rows)
{
    fnn_rng rng;
    /* Seeded per image, so the maps do not depend on how images are grouped into calls. */
    fnn_rng_seed(&rng, fnn_hash64(cfg->seed ^ (uint64_t)index));
    for (int v = 0; v < variants; v++) {
        float *row = rows + (size_t)v * in;
        if (cfg->method == FNN_SALIENCY_SMOOTHGRAD) {
            for (size_t j = 0; j < in; j++)
                row[j] = x[j] + noise * fnn_rng_gaussian(&rng);
        } else if (cfg->method == FNN_SALIENCY_INTEGRATED) {
            /* Midpoint rule on the straight path from the black image to x. */
            float a = ((float)v + 0.5f) / (float)variants;
            for (size_t j = 0; j < in; j++)
                row[j] = a * x[j];
        } else {
            memcpy(row, x, in * sizeof *row);
        }
    }
}

fnn_status fnn_saliency(const fnn_model *m, const fnn_dataset *d, const fnn_saliency_config *cfg,
                        int threads, float *maps, fnn_error *err)
{
    fnn_status s = fnn_check_data(m, d, "saliency", err);
    if (s != FNN_OK)
        return s;
    if (cfg->method < FNN_SALIENCY_GRADIENT || cfg->method > FNN_SALIENCY_INTEGRATED)
        return fnn_fail(err, FNN_ERR_ARG, "saliency: unknown method %d", (int)cfg->method);
    if (cfg->samples < 0 || cfg->max_images < 0 || !(cfg->noise >= 0.0f))
        return fnn_fail(err, FNN_ERR_ARG,
                        "saliency: samples (%d), max_images (%d) and noise (%g) must not be "
                        "negative", cfg->samples, cfg->max_images, (double)cfg->noise);
    int k = m->nclasses, variants = 1;
    if (cfg->method == FNN_SALIENCY_SMOOTHGRAD)
        variants = cfg->samples ? cfg->samples : SMOOTHGRAD_SAMPLES;
    else if (cfg->method == FNN_SALIENCY_INTEGRATED)
        variants = cfg->samples ? cfg->samples : INTEGRATED_STEPS;
    float noise = cfg->noise > 0.0f ? cfg->noise : SMOOTHGRAD_NOISE;
    size_t in = fnn_shape_size(m->input), hw = (size_t)d->h * d->w;
    int per_call = FNN_EVAL_BATCH / variants > 0 ? FNN_EVAL_BATCH / variants : 1;
    size_t rows = (size_t)per_call * variants;
    float *x = malloc(rows * in * sizeof *x);   /* (per_call, variants, in) */
    float *dx = malloc(rows * in * sizeof *dx); /* same layout */
    int *classes = malloc(rows * sizeof *classes);
    int *members = malloc((size_t)d->n * sizeof *members); /* images of the class at hand */
    float *img = malloc(in * sizeof *img);
    gradient_runner runner = {0};
    if (!x || !dx || !classes || !members || !img) {
        s = fnn_fail(err, FNN_ERR_NOMEM, "saliency: out of memory");
        goto done;
    }
    /* One executor for every call (the report's SmoothGrad and integrated gradients make a
     * call for every 8 to 10 images of a class), as large as the largest call. */
    int largest = 0, per_class[FNN_MAX_CLASSES] = {0};
    for (int i = 0; i < d->n; i++)
        if (++per_class[d->labels[i]] > largest)
            largest = per_class[d->labels[i]];
    if (cfg->max_images && largest > cfg->max_images)
        largest = cfg->max_images;
    largest = largest < per_call ? largest : per_call;
    if (largest && (s = runner_create(m, largest * variants, threads, &runner, err)) != FNN_OK)
        goto done;
    memset(maps, 0, (size_t)k * hw * sizeof *maps);
    for (int c = 0; c < k && s == FNN_OK; c++) {
        int count = 0;
        for (int i = 0; i < d->n && (!cfg->max_images || count < cfg->max_images); i++)
            if (d->labels[i] == c)
                members[count++] = i;
        float *map = maps + (size_t)c * hw;
        for (int first = 0; first < count && s == FNN_OK; first += per_call) {
            int nimg = count - first < per_call ? count - first : per_call;
            for (int j = 0; j < nimg; j++) {
                const uint8_t *src = d->images + (size_t)members[first + j] * in;
                for (size_t p = 0; p < in; p++)
                    img[p] = (float)src[p] / 255.0f;
                make_variants(cfg, variants, noise, members[first + j], img, in,
                              x + (size_t)j * variants * in);
            }
            for (size_t r = 0; r < (size_t)nimg * variants; r++)
                classes[r] = c;
            s = runner_run(&runner, x, nimg * variants, classes, dx, err);
            for (int j = 0; s == FNN_OK && j < nimg; j++) {
                const float *g = dx + (size_t)j * variants * in;
                const uint8_t *src = d->images + (size_t)members[first + j] * in;
                for (size_t q = 0; q < hw; q++) {
                    /* A pixel's saliency is the largest over its channels (Simonyan et al.
                     * 2014), so colour maps stay (h, w). */
                    float best = 0.0f;
                    for (int ch = 0; ch < d->c; ch++) {
                        size_t p = (size_t)ch * hw + q;
                        double sum = 0.0;
                        for (int v = 0; v < variants; v++)
                            sum += g[(size_t)v * in + p];
                        double attr = sum / variants;
                        /* Integrated gradients: (x - baseline) times the path's mean gradient. */
                        if (cfg->method == FNN_SALIENCY_INTEGRATED)
                            attr *= src[p] / 255.0;
                        float a = (float)fabs(attr);
                        best = a > best ? a : best;
                    }
                    map[q] += best;
                }
            }
        }
        for (size_t p = 0; count && p < hw; p++)
            map[p] /= (float)count;
    }
done:
    runner_free(&runner);
    free(x);
    free(dx);
    free(classes);
    free(members);
    free(img);
    return s;
}

/* ---------------------------------------------------------------- occlusion */

typedef struct {
    int y0, x0, side;
} occlusion_ctx;

/* The square covers every channel: a colour patch of zeros is black, as a grey one. */
static void occlude(const void *ctx, int i, float *x, float *scratch, int channels, int h, int w)
{
    const occlusion_ctx *c = ctx;
    for (int ch = 0; ch < channels; ch++)
        fnn_img_erase(x + (size_t)ch * h * w, h, w, c->y0, c->x0, c->side, c->side, 0.0f);
}

/* Patch origins along one axis of length n: every stride, plus the last one that fits, so the
 * far edge is covered too. Returns the count. */
static int origins(int n, int patch, int stride, int *out)
{
    int count = 0;
    for (int o = 0; o + patch <= n; o += stride)
        out[count++] = o;
    if (count && out[count - 1] != n - patch)
        out[count++] = n - patch;
    return count;
}

fnn_status fnn_occlusion(const fnn_model *m, const fnn_dataset *d, int patch, int stride, int threads,
                         float *drop, double *base, fnn_error *err)
{
    if (d->n <= 0)
        return fnn_fail(err, FNN_ERR_ARG, "occlusion: the data set is empty");
    if (patch < 1 || patch > d->h || patch > d->w || stride < 1)
        return fnn_fail(err, FNN_ERR_ARG,
                        "occlusion: patch %d must lie in 1..%d and stride %d be at least 1",
                        patch, d->h < d->w ? d->h : d->w, stride);
    int h = d->h, w = d->w;
    int *ys = malloc((size_t)(h + 1) * sizeof *ys), *xs = malloc((size_t)(w + 1) * sizeof *xs);
    double *sum = calloc((size_t)h * w, sizeof *sum); /* (h, w) summed drops */
    int *cover = calloc((size_t)h * w, sizeof *cover); /* (h, w) patches over each pixel */
    fnn_counter *counter = NULL;
    fnn_status s = FNN_OK;
    if (!ys || !xs || !sum || !cover) {
        s = fnn_fail(err, FNN_ERR_NOMEM, "occlusion: out of memory");
        goto done;
    }
    /* One executor for every position: making it costs a pass over its memory, which on
     * colour 32x32 images took longer than the pass itself. */
    if ((s = fnn_counter_create(m, d, threads, &counter, err)) != FNN_OK)
        goto done;
    int64_t hits;
    if ((s = fnn_counter_run(counter, NULL, NULL, &hits, err)) != FNN_OK)
        goto done;
    *base = (double)hits / d->n;
    int ny = origins(h, patch, stride, ys), nx = origins(w, patch, stride, xs);
    for (int a = 0; a < ny && s == FNN_OK; a++)
        for (int b = 0; b < nx && s == FNN_OK; b++) {
            occlusion_ctx ctx = {ys[a], xs[b], patch};
            if ((s = fnn_counter_run(counter, occlude, &ctx, &hits, err)) != FNN_OK)
                break;
            double dropped = *base - (double)hits / d->n;
            for (int y = ys[a]; y < ys[a] + patch; y++)
                for (int x = xs[b]; x < xs[b] + patch; x++) {
                    sum[(size_t)y * w + x] += dropped;
                    cover[(size_t)y * w + x]++;
                }
        }
    for (size_t p = 0; s == FNN_OK && p < (size_t)h * w; p++)
        drop[p] = cover[p] ? (float)(sum[p] / cover[p]) : 0.0f;
done:
    fnn_counter_free(counter);
    free(ys);
    free(xs);
    free(sum);
    free(cover);
    return s;
}
