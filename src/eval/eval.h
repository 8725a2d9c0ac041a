/* Inference over a whole data set, shared by evaluation and the training loop's validation. */
#ifndef FNN_EVAL_EVAL_H
#define FNN_EVAL_EVAL_H

#include "fnn.h"

/* probs (d->n, classes): the model's class probabilities for every image, in eval mode. */
fnn_status fnn_infer(const fnn_model *m, const fnn_dataset *d, int threads, float *probs,
                     fnn_error *err);

/* Mean cross-entropy (probabilities clipped as Keras does) and accuracy of probs (n, k). */
void fnn_loss_accuracy(const float *probs, const uint8_t *labels, int n, int k, double *loss,
                       double *accuracy);

#endif
