/* Robustness: test accuracy while the images are perturbed (noise, shifts, rotations,
 * occlusion, contrast), each image drawing its own random direction or position from the seed.
 * Colour images: noise per pixel of each channel; one shift, rotation or square per image, the
 * same on every channel plane; contrast about the mean of all the image's values. */
#include "data/batch.h"
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

float fnn_rng_gaussian(fnn_rng *r)
{
    /* 1 - u lies in (0, 1], so the logarithm stays finite. */
    double u = 1.0 - (double)fnn_rng_uniform(r), v = (double)fnn_rng_uniform(r);
    return (float)(sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v));
}

static int argmax(const float *p, int k)
{
    int best = 0;
    for (int j = 1; j < k; j++)
        if (p[j] > p[best])
            best = j;
    return best;
}

struct fnn_counter {
    const fnn_model *m;
    const fnn_dataset *d;
    int cap;        /* images per batch: fnn_evaluate's */
    float *x;       /* (cap, in) a batch's inputs */
    float *probs;   /* (cap, k) */
    float *scratch; /* (team, h, w) each thread's plane for the edits */
    fnn_exec *e;
};

void fnn_counter_free(fnn_counter *c)
{
    if (!c)
        return;
    free(c->x);
    free(c->probs);
    free(c->scratch);
    fnn_exec_free(c->e);
    free(c);
}

fnn_status fnn_counter_create(const fnn_model *m, const fnn_dataset *d, int threads,
                              fnn_counter **out, fnn_error *err)
{
    *out = NULL;
    fnn_status s = fnn_check_data(m, d, "evaluation", err);
    if (s != FNN_OK)
        return s;
    fnn_counter *c = calloc(1, sizeof *c);
    if (!c)
        return fnn_fail(err, FNN_ERR_NOMEM, "evaluation: out of memory");
    /* The same batches as fnn_infer: a forward pass's sums may depend on the batch's rows. */
    c->m = m;
    c->d = d;
    c->cap = d->n < 1 ? 1 : d->n < FNN_EVAL_BATCH ? d->n : FNN_EVAL_BATCH;
    int nt = fnn_threads_resolve(threads);
    c->x = malloc((size_t)c->cap * fnn_shape_size(m->input) * sizeof *c->x);
    c->probs = malloc((size_t)c->cap * m->nclasses * sizeof *c->probs);
    c->scratch = malloc((size_t)nt * d->h * d->w * sizeof *c->scratch);
    if (!c->x || !c->probs || !c->scratch ||
        (s = fnn_exec_create(m, c->cap, nt, NULL, &c->e, err)) != FNN_OK) {
        fnn_counter_free(c);
        return s != FNN_OK ? s : fnn_fail(err, FNN_ERR_NOMEM, "evaluation: out of memory");
    }
    *out = c;
    return FNN_OK;
}

fnn_status fnn_counter_run(fnn_counter *cn, fnn_image_edit edit, const void *ctx, int64_t *hits,
                           fnn_error *err)
{
    const fnn_dataset *d = cn->d;
    *hits = 0;
    if (d->n == 0)
        return FNN_OK;
    int cap = cn->cap, k = cn->m->nclasses, c = d->c, h = d->h, w = d->w;
    size_t in = fnn_shape_size(cn->m->input);
    float *x = cn->x, *probs = cn->probs;
    fnn_blas_single_threaded();
    fnn_barrier team;
    fnn_pass pass = {.train = 0, .sync = &team};
    int64_t total = 0;
    int bad = INT_MAX; /* the first image whose probabilities are not finite */
#pragma omp parallel num_threads(cn->e->team) reduction(+ : total) reduction(min : bad)
    {
        fnn_team_begin(&team);
        float *mine = cn->scratch + (size_t)omp_get_thread_num() * h * w;
        for (int start = 0; start < d->n; start += cap) {
            int rows = d->n - start < cap ? d->n - start : cap;
            size_t lo, hi;
            fnn_team_range((size_t)rows, 1, &lo, &hi);
            fnn_batch_fill(d, NULL, start, rows, x, NULL);
            for (size_t r = lo; edit && r < hi; r++)
                edit(ctx, start + (int)r, x + r * in, mine, c, h, w);
            fnn_team_sync(&team);
            const float *logits = fnn_exec_forward(cn->e, &pass, x, rows);
            fnn_softmax_rows(logits, k, lo, hi, probs);
            for (size_t r = lo; r < hi; r++)
                total += argmax(probs + r * k, k) == d->labels[start + r];
            int mine_bad = fnn_nonfinite_row(probs + lo * k, (int)(hi - lo), (size_t)k);
            if (mine_bad >= 0 && start + (int)lo + mine_bad < bad)
                bad = start + (int)lo + mine_bad;
            fnn_team_sync(&team);
        }
        fnn_team_end(&team);
    }
    *hits = total;
    fnn_status s = fnn_gemm_check(&team, "evaluation", err);
    if (s != FNN_OK)
        return s;
    return bad == INT_MAX ? FNN_OK : fnn_nonfinite_fail(err, "evaluation", bad);
}

/* ---------------------------------------------------------------- perturbations */

static const char *const names[FNN_PERTURB_COUNT] = {"noise", "shift", "rotate", "occlude",
                                                     "contrast"};
static const double noise_levels[] = {0, 0.05, 0.1, 0.2, 0.3, 0.5};   /* sigma, pixels in [0, 1] */
static const double shift_levels[] = {0, 1, 2, 3, 4, 6};              /* pixels */
static const double rotate_levels[] = {0, 5, 10, 15, 20, 30, 45};     /* degrees */
static const double occlude_levels[] = {0, 4, 8, 12, 16};             /* square side, pixels */
static const double contrast_levels[] = {1, 0.75, 0.5, 0.25, 0.1};    /* factor about the mean */

const char *fnn_perturbation_name(fnn_perturbation p)
{
    return p >= 0 && p < FNN_PERTURB_COUNT ? names[p] : "unknown";
}

int fnn_perturbation_levels(fnn_perturbation p, const double **levels)
{
#define LEVELS(a) (*levels = (a), (int)(sizeof(a) / sizeof(a)[0]))
    switch (p) {
    case FNN_PERTURB_NOISE: return LEVELS(noise_levels);
    case FNN_PERTURB_SHIFT: return LEVELS(shift_levels);
    case FNN_PERTURB_ROTATE: return LEVELS(rotate_levels);
    case FNN_PERTURB_OCCLUDE: return LEVELS(occlude_levels);
    case FNN_PERTURB_CONTRAST: return LEVELS(contrast_levels);
    default: *levels = NULL; return 0;
    }
#undef LEVELS
}

typedef struct {
    fnn_perturbation kind;
    double level;
    uint64_t seed; /* of this level: image i draws from hash(seed ^ i) */
} perturb_ctx;

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* Applies one geometric transform to each plane of x (c, h, w) through scratch (h, w). */
static void each_plane(float *x, float *scratch, int c, int h, int w, int dx, int dy,
                       float degrees, int rotate)
{
    size_t plane = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        float *p = x + (size_t)ch * plane;
        if (rotate)
            fnn_img_rotate(p, scratch, h, w, degrees);
        else
            fnn_img_shift(p, scratch, h, w, dx, dy);
        memcpy(p, scratch, plane * sizeof *p);
    }
}

static void perturb(const void *ctx, int i, float *x, float *scratch, int channels, int h, int w)
{
    const perturb_ctx *c = ctx;
    size_t plane = (size_t)h * w, size = (size_t)channels * plane;
    fnn_rng rng;
    fnn_rng_seed(&rng, fnn_hash64(c->seed ^ (uint64_t)i));
    switch (c->kind) {
    case FNN_PERTURB_NOISE:
        for (size_t j = 0; j < size; j++)
            x[j] = clamp01(x[j] + (float)c->level * fnn_rng_gaussian(&rng));
        break;
    case FNN_PERTURB_SHIFT: {
        /* One of the four directions, so every level moves the content by exactly `level`. */
        int d = (int)lround(c->level), dir = (int)fnn_rng_below(&rng, 4);
        int dx = dir == 0 ? d : dir == 1 ? -d : 0, dy = dir == 2 ? d : dir == 3 ? -d : 0;
        each_plane(x, scratch, channels, h, w, dx, dy, 0.0f, 0);
        break;
    }
    case FNN_PERTURB_ROTATE: {
        float deg = (float)c->level * (fnn_rng_below(&rng, 2) ? 1.0f : -1.0f);
        each_plane(x, scratch, channels, h, w, 0, 0, deg, 1);
        break;
    }
    case FNN_PERTURB_OCCLUDE: {
        int side = (int)lround(c->level);
        int y0 = side < h ? (int)fnn_rng_below(&rng, (uint32_t)(h - side + 1)) : 0;
        int x0 = side < w ? (int)fnn_rng_below(&rng, (uint32_t)(w - side + 1)) : 0;
        for (int ch = 0; ch < channels; ch++)
            fnn_img_erase(x + (size_t)ch * plane, h, w, y0, x0, side, side, 0.0f);
        break;
    }
    case FNN_PERTURB_CONTRAST: {
        double mean = 0.0;
        for (size_t j = 0; j < size; j++)
            mean += x[j];
        float mu = (float)(mean / (double)size), f = (float)c->level;
        for (size_t j = 0; j < size; j++)
            x[j] = clamp01(mu + f * (x[j] - mu));
        break;
    }
    default: break;
    }
}

/* The level at which a perturbation leaves images unchanged. */
static double identity_level(fnn_perturbation p) { return p == FNN_PERTURB_CONTRAST ? 1.0 : 0.0; }

fnn_status fnn_robustness(const fnn_model *m, const fnn_dataset *d, fnn_perturbation p,
                          const double *levels, int nlevels, uint64_t seed, int threads,
                          double *acc, fnn_error *err)
{
    if (p < 0 || p >= FNN_PERTURB_COUNT)
        return fnn_fail(err, FNN_ERR_ARG, "robustness: unknown perturbation %d", (int)p);
    if (d->n <= 0)
        return fnn_fail(err, FNN_ERR_ARG, "robustness: the data set is empty");
    for (int j = 0; j < nlevels; j++) {
        double v = levels[j];
        int bad = !isfinite(v) || v < 0.0 || (p == FNN_PERTURB_ROTATE && v > 360.0) ||
                  ((p == FNN_PERTURB_SHIFT || p == FNN_PERTURB_OCCLUDE) &&
                   v > (d->h > d->w ? d->h : d->w));
        if (bad)
            return fnn_fail(err, FNN_ERR_ARG, "robustness: %s level %g is out of range",
                            names[p], v);
    }
    fnn_counter *counter;
    fnn_status s = fnn_counter_create(m, d, threads, &counter, err);
    for (int j = 0; j < nlevels && s == FNN_OK; j++) {
        perturb_ctx ctx = {p, levels[j], fnn_hash64(seed ^ fnn_hash64((uint64_t)j + 1))};
        /* The identity level runs no edit at all, so it reproduces fnn_evaluate bit for bit. */
        int none = levels[j] == identity_level(p);
        int64_t hits;
        if ((s = fnn_counter_run(counter, none ? NULL : perturb, &ctx, &hits, err)) == FNN_OK)
            acc[j] = (double)hits / d->n;
    }
    fnn_counter_free(counter);
    return s;
}
