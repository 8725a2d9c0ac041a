/* Inference over a whole data set, shared by evaluation and the training loop's validation. */
#ifndef FNN_EVAL_EVAL_H
#define FNN_EVAL_EVAL_H

#include "fnn.h"

/* probs (d->n, classes): the model's class probabilities for every image, in eval mode,
 * averaged over the views tta asks for. */
fnn_status fnn_infer(const fnn_model *m, const fnn_dataset *d, int threads, fnn_tta tta,
                     float *probs,
                     fnn_error *err);

/* Team function: this thread's rows (fnn_team_range(n, 1)) of x (n, c, h, w) mirrored left to
 * right in place. */
void fnn_tta_flip_rows(float *x, int n, int c, int h, int w);

/* Team function: this thread's rows of probs (n, k) become their mean with view's. */
void fnn_tta_average_rows(float *probs, const float *view, int n, size_t k);

/* Mean cross-entropy (probabilities clipped as Keras does) and accuracy of probs (n, k). */
void fnn_loss_accuracy(const float *probs, const uint8_t *labels, int n, int k, double *loss,
                       double *accuracy);

#endif
