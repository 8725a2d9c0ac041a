/* Internal to src/eval: counting correct answers over a data set whose images are edited on
 * the way into the model, shared by robustness checks and occlusion maps. */
#ifndef FNN_EVAL_ROBUSTNESS_H
#define FNN_EVAL_ROBUSTNESS_H

#include "fnn.h"
#include "util/rng.h"

/* Edits image i of the data set in place: x (c, h, w) in [0, 1]. scratch (h, w), one plane, is
 * the calling thread's own. Called from several threads at once. */
typedef void (*fnn_image_edit)(const void *ctx, int i, float *x, float *scratch, int c, int h,
                               int w);

/* Counts correct answers over a data set whose images are edited on the way into a model, as
 * many times as asked, with one executor and one set of buffers: making them costs a pass over
 * their memory, which is more than the pass itself on small images (occlusion runs hundreds of
 * edits). m and d must outlive the counter. */
typedef struct fnn_counter fnn_counter;

fnn_status fnn_counter_create(const fnn_model *m, const fnn_dataset *d, int threads,
                              fnn_counter **out, fnn_error *err);

/* *hits receives the number of images of d that m classifies correctly after `edit` (NULL: no
 * edit). Batches, softmax and argmax are fnn_evaluate's, so that without an edit
 * *hits / d->n is fnn_evaluate's accuracy exactly. */
fnn_status fnn_counter_run(fnn_counter *c, fnn_image_edit edit, const void *ctx, int64_t *hits,
                           fnn_error *err);

void fnn_counter_free(fnn_counter *c);

/* A standard normal deviate from r (Box-Muller). */
float fnn_rng_gaussian(fnn_rng *r);

#endif
