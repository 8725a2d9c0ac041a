/* The weights' exponential moving average: TensorFlow's ExponentialMovingAverage with
 * num_updates (decay warmed up as (1 + t) / (10 + t)), over the whole parameter arena, batch
 * norm's moving statistics included, so the averaged model needs no pass over the data to
 * fit its statistics to its weights (timm's ModelEmaV2 and airbench average buffers too). */
#include "optim/ema.h"
#include "util/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fnn_status fnn_ema_start(fnn_optimizer *o, float decay, int every, const float *params,
                         fnn_error *err)
{
    if (!(decay > 0.0f && decay < 1.0f))
        return fnn_fail(err, FNN_ERR_ARG, "weight averaging: the decay must be in (0, 1), got %g",
                        (double)decay);
    if (every < 0)
        return fnn_fail(err, FNN_ERR_ARG, "weight averaging: the steps between updates must be "
                        "0 (every step) or more, got %d", every);
    /* Cache-line aligned as the arena, so the update's vector loads never straddle lines. */
    size_t bytes = ((o->n ? o->n : 1) * sizeof(float) + 63) / 64 * 64;
    float *avg = aligned_alloc(64, bytes);
    if (!avg)
        return fnn_fail(err, FNN_ERR_NOMEM, "weight averaging: out of memory for %zu "
                        "parameters", o->n);
    memset(avg, 0, bytes);
    memcpy(avg, params, o->n * sizeof *avg);
    free(o->ema);
    o->ema = avg;
    o->ema_decay = decay;
    o->ema_every = every ? every : 1;
    return FNN_OK;
}

void fnn_ema_update(fnn_optimizer *o, const float *params, int64_t t, fnn_barrier *team)
{
    if (!o->ema || t % o->ema_every)
        return;
    fnn_team_sync(team);
    /* The decay is per step: after N steps the average keeps d^N, whatever N is, so
     * --ema-every changes the cost, not the horizon. */
    double d = fmin((double)o->ema_decay, (1.0 + (double)t) / (10.0 + (double)t));
    float keep = (float)pow(d, (double)o->ema_every);
    float take = 1.0f - keep;
    size_t lo, hi;
    fnn_team_range(o->n, 16, &lo, &hi);
    float *restrict avg = o->ema;
#pragma omp simd
    for (size_t i = lo; i < hi; i++)
        avg[i] += take * (params[i] - avg[i]);
}

void fnn_ema_swap(fnn_optimizer *o, float *params)
{
    if (!o->ema)
        return;
    for (size_t i = 0; i < o->n; i++) {
        float w = params[i];
        params[i] = o->ema[i];
        o->ema[i] = w;
    }
}
