/* An exponential moving average of the weights, kept beside the optimizer's moments (see
 * fnn_train_config.ema for the rule). Training validates and ends on the average; the
 * optimizer keeps stepping the raw weights. */
#ifndef FNN_OPTIM_EMA_H
#define FNN_OPTIM_EMA_H

#include "optim/optim.h"
#include "util/team.h"

/* Starts o's average at params (o->n): decay per step in (0, 1), an update after every
 * every-th step (0 means 1). */
fnn_status fnn_ema_start(fnn_optimizer *o, float decay, int every, const float *params,
                         fnn_error *err);

/* Team function, after optimizer step t (from 1) has been issued by every thread: when t is a
 * multiple of o->ema_every, waits for the whole step at team (the optimizer ends without a
 * barrier, and batch norm's statistics were written by other threads) and moves this thread's
 * share of the average towards params. Does nothing when the average is off. */
void fnn_ema_update(fnn_optimizer *o, const float *params, int64_t t, fnn_barrier *team);

/* Exchanges params (o->n) with the average, so that the model holds the averaged weights
 * (validation) and, called again, its own. Does nothing when the average is off. */
void fnn_ema_swap(fnn_optimizer *o, float *params);

#endif
