/* Where a training step's time goes: median microseconds per phase (batch fill, each layer's
 * forward and backward, loss, optimizer) for an architecture and thread count, on random
 * images. To time each phase it holds a barrier after every one, which the training loop does
 * not (it needs three a step), so the sum exceeds a real step by the extra barriers' waits.
 * Usage: profile_step [ARCH] [THREADS] [BATCH] [STEPS] [CxHxW]   (input shape: 1x28x28) */
#include "data/batch.h"
#include "model/exec.h"
#include "model/model.h"
#include "optim/optim.h"
#include "train/train.h"
#include "util/gemm.h"
#include "util/rng.h"
#include "util/team.h"

#include "timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PHASES 64

int main(int argc, char **argv)
{
    const char *arch = argc > 1 ? argv[1] : "mlp";
    int threads = argc > 2 ? atoi(argv[2]) : 2, batch = argc > 3 ? atoi(argv[3]) : 32;
    int steps = argc > 4 ? atoi(argv[4]) : 2000, ic = 1, ih = 28, iw = 28;
    if (argc > 5 && (sscanf(argv[5], "%dx%dx%d", &ic, &ih, &iw) != 3 || ic < 1 || ih < 1 ||
                     iw < 1)) {
        fprintf(stderr, "profile_step: the shape is CxHxW (3x32x32), not '%s'\n", argv[5]);
        return 2;
    }
    fnn_error err = {0};
    fnn_model *m = fnn_model_create(arch, ic, ih, iw, &err);
    fnn_exec *e = NULL;
    if (!m || fnn_exec_create(m, batch, threads, m->grads, &e, &err) != FNN_OK) {
        fprintf(stderr, "profile_step: %s\n", err.msg);
        return 1;
    }
    fnn_model_init(m, 1);
    int n = 4096, in = ic * ih * iw, k = m->nclasses;
    fnn_dataset d = {.n = n, .c = ic, .h = ih, .w = iw, .nclasses = k, .owns = 1,
                     .images = malloc((size_t)n * in), .labels = malloc((size_t)n)};
    fnn_rng rng;
    fnn_rng_seed(&rng, 7);
    for (size_t i = 0; i < (size_t)n * in; i++)
        d.images[i] = (uint8_t)fnn_rng_below(&rng, 256);
    for (int i = 0; i < n; i++)
        d.labels[i] = (uint8_t)fnn_rng_below(&rng, (uint32_t)k);
    int *idx = malloc((size_t)steps * batch * sizeof *idx);
    for (int i = 0; i < steps * batch; i++)
        idx[i] = (int)fnn_rng_below(&rng, (uint32_t)n);
    float *x = malloc((size_t)batch * in * sizeof *x);
    uint8_t *labels = malloc((size_t)batch);
    fnn_optimizer opt;
    fnn_optim_config oc = fnn_optim_default(FNN_OPT_ADAM);
    if (fnn_optimizer_init(&opt, &oc, m->arena_size, &err) != FNN_OK ||
        fnn_partition_optimizer(&opt, m, &err) != FNN_OK) {
        fprintf(stderr, "profile_step: %s\n", err.msg);
        return 1;
    }
    fnn_blas_single_threaded();

    /* Phases: fill, forward per layer, loss, backward per layer, optimizer. */
    int L = m->nlayers, nph = 3 + 2 * L;
    const char *names[MAX_PHASES];
    char labelbuf[MAX_PHASES][48];
    names[0] = "batch fill";
    for (int i = 0; i < L; i++) {
        snprintf(labelbuf[i], 48, "forward  %d %s", i, m->layers[i].ops->kind);
        snprintf(labelbuf[L + i], 48, "backward %d %s", i, m->layers[i].ops->kind);
        names[1 + i] = labelbuf[i];
        names[2 + 2 * L - 1 - i] = labelbuf[L + i];
    }
    names[1 + L] = "loss";
    names[nph - 1] = "optimizer";
    double *t = calloc((size_t)steps * nph, sizeof *t);
    float *dlogits = fnn_exec_logit_grad(e);

    fnn_barrier team;
#pragma omp parallel num_threads(threads)
    {
    fnn_team_begin(&team);
    /* As the training loop does: Adam's moments of weights whose gradient stays zero decay into
     * denormals, which would otherwise slow the optimizer phase about 1.5x by step 2000. */
    fnn_denormals_flush();
    for (int s = 0; s < steps; s++) {
        double t0 = now_us();
        double *row = t + (size_t)s * nph;
        fnn_batch_fill(&d, idx + (size_t)s * batch, 0, batch, x, labels);
        fnn_team_sync(&team);
#pragma omp master
        row[0] = now_us() - t0;
        fnn_pass pass = {.train = 1, .key = fnn_hash64((uint64_t)s), .sync = &team};
        const float *in_ptr = x;
        for (int i = 0; i < L; i++) {
            double a = now_us();
            fnn_layer *l = &e->layers[i];
            if (!l->ops->alias) {
                l->ops->forward(l, &pass, m->src[i] < 0 ? x : e->act[m->src[i]], e->act[i],
                                batch);
                in_ptr = e->act[i];
            }
        fnn_team_sync(&team);
#pragma omp master
            row[1 + i] = now_us() - a;
        }
        double a = now_us();
        {
            double loss;
            int hits;
            size_t lo, hi;
            fnn_team_range((size_t)batch, 1, &lo, &hi);
            fnn_softmax_xent(in_ptr, labels, batch, k, 0.0f, lo, hi, dlogits, &loss, &hits);
            fnn_team_sync(&team);
        }
#pragma omp master
        row[1 + L] = now_us() - a;
        for (int i = L - 1; i >= 0; i--) {
            double b = now_us();
            fnn_layer *l = &e->layers[i];
            if (!l->ops->alias) {
                int from = m->src[i];
                float *din = m->params_below[i] ? e->dact[from] : NULL;
                l->ops->backward(l, &pass, from < 0 ? x : e->act[from], e->act[i], e->dact[i],
                                 din, batch);
            }
        fnn_team_sync(&team);
#pragma omp master
            row[2 + 2 * L - 1 - i] = now_us() - b;
        }
        double c = now_us();
        fnn_optimizer_step(&opt, m->params, m->grads, s + 1);
        fnn_team_sync(&team);
#pragma omp master
        row[nph - 1] = now_us() - c;
    }
    }

    double *col = malloc((size_t)steps * sizeof *col), total = 0.0;
    printf("%s, input %dx%dx%d, %d threads, batch %d, %s: median microseconds per step over %d "
           "steps\n", arch, ic, ih, iw, threads, batch, FNN_GEMM_NAME, steps);
    for (int p = 0; p < nph; p++) {
        for (int s = 0; s < steps; s++)
            col[s] = t[(size_t)s * nph + p];
        double med = median(col, steps);
        printf("  %-24s %8.2f\n", names[p], med);
        total += med;
    }
    printf("  %-24s %8.2f\n", "sum of medians", total);
    /* The training loop's epoch time is a mean over its steps, slow ones included (another
     * process taking a core, a barrier waiting on it): set it against this, not the medians. */
    double mean = 0.0;
    for (int s = 0; s < steps; s++) {
        col[s] = 0.0;
        for (int p = 0; p < nph; p++)
            col[s] += t[(size_t)s * nph + p];
        mean += col[s] / steps;
    }
    printf("  %-24s %8.2f\n", "median step", median(col, steps));
    printf("  %-24s %8.2f\n", "mean step", mean);
    return 0;
}
