/* Training checkpoints: everything a run needs to continue bit for bit, as safetensors. The
 * file format lives here; what it holds is the training loop's (train/state.h). */
#ifndef FNN_IO_CHECKPOINT_H
#define FNN_IO_CHECKPOINT_H

#include "fnn.h"
#include "optim/optim.h"
#include "train/state.h"

/* Writes path atomically: m's tensors, o's moments and weight average, best (the arena of
 * the best epoch, or NULL), cfg's settings and st with stats (st->epoch entries). */
fnn_status fnn_checkpoint_write(const char *path, const fnn_model *m, const fnn_train_config *cfg,
                                const fnn_train_state *st, const fnn_epoch_stats *stats,
                                const fnn_optimizer *o, const float *best, fnn_error *err);

/* Reads path into a model built from its arch, an optimizer initialised for cfg, st, stats
 * (room for cfg->epochs) and best (room for the arena; *has_best says if it was there).
 * Every field is checked against m and cfg before anything is copied. */
fnn_status fnn_checkpoint_load(const char *path, fnn_model *m, const fnn_train_config *cfg,
                               int steps_per_epoch, fnn_train_state *st, fnn_epoch_stats *stats,
                               fnn_optimizer *o, float *best, int *has_best, fnn_error *err);

#endif
