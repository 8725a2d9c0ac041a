/* The layer interface: a const table of operations per layer type. A model is a stack of
 * layers; it walks forward in order and backward in reverse. Forward and backward are team
 * functions (util/team.h): every thread of the team calls them and takes its share. */
#ifndef FNN_NN_LAYER_H
#define FNN_NN_LAYER_H

#include "fnn.h"
#include "util/rng.h"
#include "util/team.h"

#include <stddef.h>

/* A per-sample shape; flat vectors are (c, 1, 1). */
typedef struct {
    int c, h, w;
} fnn_shape;

static inline size_t fnn_shape_size(fnn_shape s) { return (size_t)s.c * s.h * s.w; }

typedef enum {
    FNN_ACT_LINEAR = 0,
    FNN_ACT_RELU,
    FNN_ACT_SOFTMAX,    /* last layer only: fused with the loss */
    FNN_ACT_LEAKY_RELU, /* x for x > 0, alpha x otherwise */
    FNN_ACT_ELU,        /* x for x > 0, alpha (exp(x) - 1) otherwise */
    FNN_ACT_TANH,
    FNN_ACT_SIGMOID,
} fnn_activation;

/* What a forward or backward pass needs to know besides its buffers. */
typedef struct {
    int train;      /* 1: training mode (dropout active) */
    uint64_t key;   /* dropout stream of this step: a hash of the seed and the step number */
    /* The batch's first row within the step's whole batch: a shard of data-parallel training
     * (fnn_train_config.shard_count) passes its slice's offset, so that dropout's draws depend
     * on the sample's place in the whole batch, not on the shard. 0 for one process. */
    size_t row0;
    fnn_barrier *sync; /* the team's barrier; NULL: OpenMP's */
    /* 1: after the forward pass the caller reads only this thread's rows of the logits, and
     * after the backward pass only this thread's share of the gradients (the optimizer's rows),
     * so neither pass needs to end with a barrier. */
    int rows_after;
} fnn_pass;

typedef struct fnn_layer fnn_layer;

/* How a pass shares the batch between threads, so that the model can leave out the barrier
 * between two layers when the second reads only what the same thread of the first wrote.
 * "Rows" are a thread's rows of the batch, fnn_team_range(n, 1). */
enum {
    FNN_FWD_ROWS_IN = 1,  /* forward reads only this thread's rows of x */
    FNN_FWD_ROWS_OUT = 2, /* forward's last writes to y are this thread's rows */
    FNN_BWD_ROWS_IN = 4,  /* backward reads only this thread's rows of dy before its own barrier */
    FNN_BWD_ROWS_OUT = 8, /* backward writes only this thread's rows of dx */
    FNN_BWD_SYNCS = 16,   /* backward holds a team barrier after reading its rows of dy */
    FNN_BWD_PARTIAL = 32, /* backward leaves per-thread partial gradients for `reduce` */
};

typedef struct {
    const char *kind; /* spec keyword, e.g. "dense" */
    const char *type; /* Keras class name, e.g. "Dense" */
    /* Output shape, parameter count and per-sample scratch size from l->in and l->cfg. */
    fnn_status (*setup)(fnn_layer *l, fnn_error *err);
    void (*init)(fnn_layer *l, fnn_rng *rng);
    /* x: (n, in), y: (n, out). */
    void (*forward)(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n);
    /* Writes l->grads and, when dx is not NULL, dx (n, in). dy (n, out) may be overwritten. */
    void (*backward)(fnn_layer *l, const fnn_pass *p, const float *x, const float *y, float *dy,
                     float *dx, int n);
    /* Name and shape of parameter tensor i < l->ntensors; data points at l->params. */
    void (*tensor)(const fnn_layer *l, int i, fnn_tensor *t);
    /* The layer's spec token, e.g. "dense:128:relu". */
    void (*format)(const fnn_layer *l, char *buf, size_t size);
    /* FNN_*_ROWS_* flags of a pass over n rows by nt threads; NULL means none. */
    unsigned (*sharing)(const fnn_layer *l, int n, int nt);
    /* Team function run after a whole backward pass that left FNN_BWD_PARTIAL, once every
     * thread is past it: adds up the per-thread partial gradients into l->grads, each thread
     * its optimizer share. NULL for layers that always write l->grads directly. */
    void (*reduce)(fnn_layer *l, const fnn_pass *p, int n);
    /* Floats of team_scratch for a team of `team` threads, for layers whose per-thread
     * buffers grow with the team; NULL: team_scratch_size, whatever the team. */
    size_t (*team_floats)(const fnn_layer *l, int team);
    /* 1 if the output is the input itself (no copy, no buffer). */
    int alias;
    /* For evaluation executors only (model/exec.c): makes l apply the batchnorm bn that
     * follows it (l->fold), then a ReLU when relu, to its outputs, and returns 1; returns 0,
     * leaving l as it was, where an activation of its own already follows its product.
     * NULL: the layer cannot take a batchnorm in. */
    int (*fold)(fnn_layer *l, const fnn_layer *bn, int relu);
} fnn_layer_ops;

struct fnn_layer {
    const fnn_layer_ops *ops;
    int index;            /* position in the stack */
    fnn_shape in, out;
    union {
        struct {
            int units;
            fnn_activation act;
        } dense;
        struct {
            float rate;
        } dropout;
        struct {
            int filters;        /* output channels */
            int kernel;         /* square kernel side */
            int stride;
            int same;           /* 1: 'same' padding (Keras), 0: 'valid' */
            int bias;           /* 1: with a bias per filter */
            int he;             /* 1: He-uniform kernels, 0: Glorot-uniform */
            fnn_activation act; /* linear or relu, fused as in dense */
        } conv;
        struct {
            int size, stride;   /* window side and step */
        } pool;
        struct {
            fnn_activation kind; /* any but softmax */
            float alpha;         /* leaky ReLU's slope, ELU's scale */
        } act;
        struct {
            float momentum;     /* moving statistics: m = momentum m + (1 - momentum) batch */
            float eps;          /* added to the variance */
        } bn;
    } cfg;
    size_t nparams;
    int ntensors;
    float *params;        /* view into the model's parameter arena */
    float *grads;         /* view into the model's gradient arena, same layout */
    /* The buffers below belong to the executor (model/exec.h) whose copy of the layer this is;
     * they are NULL in the model's own layers, which hold only the weights' views. */
    size_t scratch_per_sample;
    float *scratch;       /* (capacity, scratch_per_sample) */
    size_t team_scratch_size;
    float *team_scratch;  /* (ops->team_floats(l, team) or team_scratch_size) batch-independent */
    int team;             /* threads team_scratch is sized for: a pass's team is no larger */
    float *output;        /* (capacity, out) this layer's output buffer; NULL for aliases */
    fnn_layer *partner;   /* the other end of a residual block, set by the model */
    /* The batchnorm whose evaluation map, y scale + shift per channel, this layer applies to
     * its outputs after the bias and before its activation; set only in an evaluation
     * executor's copy (model/exec.c), whose passes are then never training passes. */
    const fnn_layer *fold;
};

/* This thread's rows of an (n, in) batch as element indices [*lo, *hi): the share of the
 * element-wise layers, which sets the FNN_*_ROWS_* flags. */
static inline void fnn_layer_row_elements(const fnn_layer *l, int n, size_t *lo, size_t *hi)
{
    size_t size = fnn_shape_size(l->in);
    fnn_team_range((size_t)n, 1, lo, hi);
    *lo *= size;
    *hi *= size;
}

/* Forward passes over fewer images than threads share the elements of an image at least this
 * large, not its rows: by rows, one thread of two would do a single image's ReLU alone. */
#define FNN_ELEMENT_SPLIT_MIN 2048

/* 1: an element-wise layer's forward pass over n images shares elements among nt threads,
 * rather than rows; it then sets no FNN_FWD_ROWS_* flag. */
static inline int fnn_layer_splits_elements(const fnn_layer *l, int n, int nt)
{
    return n < nt && fnn_shape_size(l->in) >= FNN_ELEMENT_SPLIT_MIN;
}

/* This thread's elements [*lo, *hi) of an element-wise layer's forward pass over n images:
 * its rows, or its run of 16-element blocks where fnn_layer_splits_elements says so. Each
 * element's result does not depend on the thread that computes it. */
static inline void fnn_layer_forward_elements(const fnn_layer *l, int n, size_t *lo, size_t *hi)
{
    if (fnn_layer_splits_elements(l, n, omp_get_num_threads()))
        fnn_team_range((size_t)n * fnn_shape_size(l->in), 16, lo, hi);
    else
        fnn_layer_row_elements(l, n, lo, hi);
}

/* Batchnorm layer bn's evaluation map of channels [ch0, ch1): y = x scale[ch - ch0] +
 * shift[ch - ch0], from the moving statistics, in the float order of its own forward pass. */
void fnn_batchnorm_affine(const fnn_layer *bn, int ch0, int ch1, float *scale, float *shift);

/* Batch norm's sums in training, over channels [ch, ch + count) of x (n, c, hw), count at
 * most 8, each in double with its channel's terms added in order (image by image, along the
 * plane) and each product rounded before it is added, however many channels go together:
 * the batch mean and biased variance; sum(dy x_hat) and sum(dy) with x_hat = (x - mu[j])
 * is[j] in float. */
void fnn_batchnorm_moments(const float *x, int n, int c, size_t hw, int ch, int count,
                           double *mean, double *var);
void fnn_batchnorm_grad_sums(const float *x, const float *dy, int n, int c, size_t hw, int ch,
                             int count, const float *mu, const float *is, double *sg,
                             double *sb);

extern const fnn_layer_ops fnn_flatten_ops;
extern const fnn_layer_ops fnn_dense_ops;
extern const fnn_layer_ops fnn_dropout_ops;
extern const fnn_layer_ops fnn_conv2d_ops;
extern const fnn_layer_ops fnn_maxpool_ops;
extern const fnn_layer_ops fnn_avgpool_ops;
extern const fnn_layer_ops fnn_globalavgpool_ops;
extern const fnn_layer_ops fnn_activation_ops;
extern const fnn_layer_ops fnn_batchnorm_ops;
extern const fnn_layer_ops fnn_residual_begin_ops;
extern const fnn_layer_ops fnn_residual_end_ops;

/* Fused softmax and cross-entropy over rows [lo, hi) of logits (at least hi rows, k) against
 * the targets q = (1 - smoothing) onehot + smoothing / k (smoothing 0: plain cross-entropy).
 * Writes the row gradient (p - q) / n into dlogits, and returns the summed loss and correct
 * count of those rows. n is the batch the mean loss is over: a shard of data-parallel training
 * holds fewer rows than that, and dividing by the whole batch lets the shards' gradients add
 * up to the one-process gradient. */
void fnn_softmax_xent(const float *logits, const uint8_t *labels, int n, int k, float smoothing,
                      size_t lo, size_t hi, float *dlogits, double *loss_sum, int *correct);

/* Row-wise softmax of rows [lo, hi) of x (n, k) into p. */
void fnn_softmax_rows(const float *x, int k, size_t lo, size_t hi, float *p);

#endif
