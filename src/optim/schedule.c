/* Learning-rate schedules: a pure function of the position in training, so a resumed run
 * computes the same rate at every step as an uninterrupted one. Plateau cuts are the only
 * state; the training loop keeps them (and saves them in checkpoints) as plateau_scale. */
#include "fnn.h"

#include <math.h>

float fnn_lr_at(const fnn_lr_schedule *s, float base_lr, int epochs, int steps_per_epoch,
                int epoch, int64_t t, float plateau_scale)
{
    int64_t warm = (int64_t)s->warmup_epochs * steps_per_epoch;
    if (t < warm)
        return (float)((double)base_lr * (double)(t + 1) / (double)warm);
    switch (s->kind) {
    case FNN_LR_STEP:
        return (float)((double)base_lr * pow((double)s->gamma, (double)(epoch / s->step_epochs)));
    case FNN_LR_COSINE: {
        int64_t span = (int64_t)epochs * steps_per_epoch - warm;
        double frac = span > 0 ? (double)(t - warm) / (double)span : 0.0;
        return (float)((double)base_lr * 0.5 * (1.0 + cos(M_PI * (frac < 1.0 ? frac : 1.0))));
    }
    case FNN_LR_PLATEAU:
        return base_lr * plateau_scale;
    case FNN_LR_ONECYCLE: {
        int64_t total = (int64_t)epochs * steps_per_epoch;
        int64_t peak = (int64_t)llround((double)s->peak_at * (double)total);
        if (peak < 1)
            peak = 1;
        if (peak > total - 1)
            peak = total - 1;
        if (peak < 1 || t >= total) /* a single step, or past the end: the last rate */
            return (float)((double)base_lr / (double)(total > peak ? total - peak : 1));
        if (t < peak)
            return (float)((double)base_lr * (double)(t + 1) / (double)peak);
        return (float)((double)base_lr * (double)(total - t) / (double)(total - peak));
    }
    case FNN_LR_CONSTANT:
        break;
    }
    return base_lr;
}
