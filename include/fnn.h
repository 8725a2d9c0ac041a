/* fnn: train, evaluate and ship small image classifiers in C.
 * The one public header. Every function returns a status (or NULL) and fills an fnn_error;
 * the library never prints and never exits. */
#ifndef FNN_H
#define FNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libfnn.so is built with every symbol hidden (-fvisibility=hidden): FNN_API marks the
 * functions it exports, which are exactly the functions this header declares
 * (tests/test_exports.sh checks both ways). */
#if defined(__GNUC__)
#define FNN_API __attribute__((visibility("default")))
#else
#define FNN_API
#endif

#define FNN_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */

typedef enum {
    FNN_OK = 0,
    FNN_ERR_IO,      /* a file could not be opened, read or written */
    FNN_ERR_FORMAT,  /* a file or spec is malformed */
    FNN_ERR_ARG,     /* an argument is out of range */
    FNN_ERR_NOMEM,   /* an allocation failed */
    FNN_ERR_NUMERIC, /* NaN or Inf appeared */
    FNN_ERR_INTERRUPTED
} fnn_status;

/* Filled by a failing call. A NULL fnn_error pointer is allowed: the message is then dropped. */
typedef struct {
    fnn_status status;
    char msg[512];
} fnn_error;

FNN_API const char *fnn_status_name(fnn_status s);

/* The library this build runs its matrix products with: "OpenBLAS" or "oneDNN" (FNN_GEMM). */
FNN_API const char *fnn_gemm_library(void);

/* ---------------------------------------------------------------- data */

#define FNN_DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"
#define FNN_MAX_CLASSES 256

/* A set of images with labels. Pixels stay uint8 in memory; batches are converted to float. */
typedef struct {
    int n;            /* number of images */
    int c, h, w;      /* image shape: channels (1 grey, 3 red-green-blue), rows, columns */
    uint8_t *images;  /* (n, c, h, w): each image is its channels' planes, one after another */
    uint8_t *labels;  /* (n) values in [0, nclasses) */
    int nclasses;     /* classes of the data set, at least 1 + the largest label */
    /* (nclasses) the classes' names, or NULL when the data names none (IDX files). */
    char **class_names;
    int owns;         /* 1 if images, labels and names are freed with the set, 0 for a view */
    char labels_path[512]; /* the file the labels came from, for messages; may be empty */
} fnn_dataset;

/* Reads an IDX image file and an IDX label file, gzipped or plain (detected by content). */
FNN_API fnn_status fnn_idx_load(const char *images_path, const char *labels_path,
                                fnn_dataset *out, fnn_error *err);

/* Finds and loads the "train" or "t10k" pair in dir, accepting "-idx3-ubyte", ".idx3-ubyte" and
 * a ".gz" suffix on either. */
FNN_API fnn_status fnn_dataset_load(const char *dir, const char *which, fnn_dataset *out,
                                    fnn_error *err);

/* Every file of dir that fnn_dataset_load(dir, which) reads or could read (each accepted spelling
 * of the images and labels that exists), malloc'd into paths (free each); *n their count. For
 * a command that must keep its outputs off the user's data. */
FNN_API fnn_status fnn_dataset_files(const char *dir, const char *which, char *paths[8], int *n,
                                     fnn_error *err);

FNN_API void fnn_dataset_free(fnn_dataset *d);

/* A view of images [start, start + count) of d; freeing a view frees nothing. */
FNN_API fnn_dataset fnn_dataset_view(const fnn_dataset *d, int start, int count);

/* Keras's validation_split: images [floor(n * (1 - fraction)), n) become the validation view,
 * the ones before it the training view. */
FNN_API fnn_status fnn_dataset_split(const fnn_dataset *d, double val_fraction,
                                     fnn_dataset *train, fnn_dataset *val, fnn_error *err);

/* The mean and the (population) standard deviation of each channel's pixels / 255 over all of
 * d's images, mean (c) and std (c), for fnn_model_set_normalization on the training split.
 * Exact integer sums: the result does not depend on `threads` (0: all cores). A channel with no
 * spread gets std 1 (it is then only shifted), so the result is always a valid normalisation. */
FNN_API fnn_status fnn_dataset_channel_stats(const fnn_dataset *d, double *mean, double *std,
                                             int threads, fnn_error *err);

/* The ten Fashion-MNIST class names. */
FNN_API const char *const *fnn_fashion_class_names(void);

/* Stratified, seeded split for sets without an order of their own (folders, CSV): reorders d in
 * place (it must own its memory) so that its last n - floor(n * (1 - fraction)) images (as many
 * as fnn_dataset_split's validation view) hold every class in proportion (largest remainders,
 * ties to the lower class), the training part before them; the order within each part is drawn
 * from seed. fnn_dataset_split then gives the two views. fraction in [0, 1). */
FNN_API fnn_status fnn_dataset_stratify(fnn_dataset *d, double fraction, uint64_t seed,
                                        fnn_error *err);

/* ---------------------------------------------------------------- data sources
 * One interface over the formats a data set comes in; each format is an adapter
 * (src/data/idx.c, folder.c, csv.c, cifar.c). A path is one of:
 *  - a directory of IDX files: [PREFIX-]train-images-idx3-ubyte (or .idx3-ubyte), each maybe
 *    .gz, with the matching labels-idx1 file; the test split is t10k- or [PREFIX-]test-
 *    (EMNIST's emnist-balanced-test-images-idx3-ubyte.gz); or an IDX images file itself;
 *  - a directory with CIFAR-10's binary batches (data_batch_1.bin ... data_batch_5.bin: train,
 *    test_batch.bin: test, batches.meta.txt: the class names), directly or in a
 *    cifar-10-batches-bin/ subfolder;
 *  - a CSV file in the Kaggle layout (.csv or .csv.gz): a header line, then label,pixel1,...,
 *    pixelN per image, grey values 0-255; its test split is the file named with "test" for
 *    "train" (fashion-mnist_train.csv -> fashion-mnist_test.csv);
 *  - any other directory: an image folder tree, one subfolder per class (class names: the
 *    subfolder names in byte order, as torchvision's ImageFolder), PNG, JPEG, BMP, PGM or PPM
 *    files (known extensions, any case; hidden files and others skipped) anywhere below each,
 *    read in name order. With train/ and test/ at the top those are the two splits (the test
 *    split takes train/'s class list); without, the whole tree is the training split. */

typedef enum {
    FNN_FORMAT_AUTO = 0, /* detected from the path, as listed above */
    FNN_FORMAT_IDX,
    FNN_FORMAT_FOLDER,
    FNN_FORMAT_CSV,
    FNN_FORMAT_CIFAR10
} fnn_data_format;

/* "IDX", "image folder", "CSV", "CIFAR-10"; "auto" for FNN_FORMAT_AUTO. */
FNN_API const char *fnn_data_format_name(fnn_data_format f);

typedef struct {
    fnn_data_format format; /* FNN_FORMAT_AUTO: detected from the path */
    /* 0: as stored (a folder tree: the first image's, grey or colour); 1 or 3: converted. Colour
     * to grey is ITU-R 601 luma as stb_image computes it, (77 R + 150 G + 29 B) >> 8; grey to
     * colour repeats the plane. */
    int channels;
    /* 0, 0: as stored (a folder tree's images must then all be one size). Set: folder images
     * are resized to h x w by area averaging (as fnn_image_load does); a CSV's rows are h x w
     * images (needed when N pixels are not a square); IDX and CIFAR-10 must be h x w already. */
    int h, w;
    int skip_bad; /* folder tree: skip unreadable images (counted) instead of failing */
    int threads;  /* decoding threads; 0: every core OpenMP offers */
    /* Called from one thread as images are decoded (done of total); may be NULL. */
    void (*on_progress)(void *user, long done, long total);
    void *user; /* on_progress's first argument */
} fnn_data_options;

/* An open split of a data set: count, shape, labels, class names, and its images on request. */
typedef struct fnn_source fnn_source;

/* Opens the split ("train" or "test") of the data at path; opt may be NULL (all defaults).
 * Bad data fails here: FNN_ERR_FORMAT for malformed content, FNN_ERR_IO for what cannot be
 * found or read, each naming the file (and its line and column, or its size). */
FNN_API fnn_status fnn_source_open(const char *path, const char *split,
                                   const fnn_data_options *opt, fnn_source **out, fnn_error *err);
FNN_API fnn_data_format fnn_source_format(const fnn_source *s);
/* Images in the split (after skipping bad ones). */
FNN_API int fnn_source_count(const fnn_source *s);
/* Shape of each image as read: channels, rows, columns. */
FNN_API void fnn_source_shape(const fnn_source *s, int *c, int *h, int *w);
/* Classes: the named ones (folder tree, CIFAR-10), else 1 + the largest label. */
FNN_API int fnn_source_num_classes(const fnn_source *s);
/* Name of class k, or NULL when the data names none (IDX, CSV) or k is out of range. */
FNN_API const char *fnn_source_class_name(const fnn_source *s, int k);
/* images (count, c, h, w) and labels (count) of items [start, start + count). */
FNN_API fnn_status fnn_source_read(fnn_source *s, int start, int count, uint8_t *images,
                                   uint8_t *labels, fnn_error *err);
/* Bad images skipped (skip_bad). */
FNN_API int fnn_source_skipped(const fnn_source *s);
/* Moves the split's images, labels and class names into out (owning, as fnn_data_load gives
 * them), without a copy; s then holds no images (count 0) but still answers its format and
 * skipped count. For a caller that reports how the data was read. */
FNN_API void fnn_source_take(fnn_source *s, fnn_dataset *out);
FNN_API void fnn_source_close(fnn_source *s);

/* The whole split as a data set that owns its memory, with the class names. */
FNN_API fnn_status fnn_data_load(const char *path, const char *split, const fnn_data_options *opt,
                                 fnn_dataset *out, fnn_error *err);

/* Every file the split of path reads or could read (each IDX spelling present, every file of
 * the folder tree's split, the CSV file, the CIFAR-10 batches and names that exist), as a
 * malloc'd array of *n malloc'd paths (free each, then the array): a command registers them so
 * that no output replaces the user's data. */
FNN_API fnn_status fnn_data_files(const char *path, const char *split, const fnn_data_options *opt,
                                  char ***paths, int *n, fnn_error *err);

/* The image files below dir, as a folder tree's class folder is read: PNG, JPEG, BMP, PGM and
 * PPM by extension (any case; hidden files and others skipped), in name order, subfolders
 * included and symbolic links followed (a link to a folder above is an error). A malloc'd
 * array of *n malloc'd paths, as fnn_data_files; *n may be 0. For fnn predict DIR. */
FNN_API fnn_status fnn_image_files(const char *dir, char ***paths, int *n, fnn_error *err);

/* ---------------------------------------------------------------- model */

typedef struct fnn_model fnn_model;

/* The study's network. */
#define FNN_DEFAULT_ARCH "flatten dense:128:relu dropout:0.5 dense:64:relu dense:10:softmax"

/* Builds a model from an architecture spec for inputs of shape (c, h, w).
 * Weights are left zero: call fnn_model_init. On a bad spec the error names the token. */
FNN_API fnn_model *fnn_model_create(const char *spec, int c, int h, int w, fnn_error *err);
FNN_API void fnn_model_free(fnn_model *m);

/* Keras initialisation (Glorot-uniform kernels, zero biases) from a seed. */
FNN_API void fnn_model_init(fnn_model *m, uint64_t seed);

typedef struct {
    char name[32];   /* Keras-style name, e.g. "dense_1" */
    char type[32];   /* e.g. "Dense" */
    int out_c, out_h, out_w; /* per-sample output shape; flat outputs have out_h = out_w = 1 */
    int out_rank;    /* 1 for (features), 3 for (c, h, w) */
    size_t nparams;
} fnn_layer_info;

FNN_API int fnn_model_num_layers(const fnn_model *m);
FNN_API void fnn_model_layer_info(const fnn_model *m, int i, fnn_layer_info *out);
FNN_API size_t fnn_model_num_params(const fnn_model *m);
/* Parameters the optimizer updates: fnn_model_num_params less the frozen tensors. */
FNN_API size_t fnn_model_num_trainable(const fnn_model *m);
FNN_API int fnn_model_num_classes(const fnn_model *m);
FNN_API void fnn_model_input_shape(const fnn_model *m, int *c, int *h, int *w);
/* The canonical spec, e.g. "flatten dense:128:relu ...". Owned by the model. */
FNN_API const char *fnn_model_spec(const fnn_model *m);

/* Per-channel input normalisation carried by the model (Keras's Normalization layer, adapted on
 * the training split, e.g. with fnn_dataset_channel_stats): every forward pass (training,
 * evaluation, prediction, input gradients, the ONNX export) feeds the first layer
 * (x - mean[ch]) / std[ch] of the scaled pixels x = pixel / 255, and input gradients are with
 * respect to x (through the 1 / std). mean (c) and std (c) with std > 0 and both finite;
 * NULL, NULL removes it. Default: none, and then the input goes in untouched (not even
 * (x - 0) / 1), so results are those of a model without it. Saved in the model file and in
 * checkpoints; fnn_model_transfer does not copy it (the new data's statistics apply). */
FNN_API fnn_status fnn_model_set_normalization(fnn_model *m, const float *mean, const float *std,
                                               fnn_error *err);
/* 1 if m normalises its input, 0 if not; mean (c) and std (c), when not NULL, receive the
 * statistics (0 and 1 when there are none). */
FNN_API int fnn_model_normalization(const fnn_model *m, float *mean, float *std);

/* A named parameter tensor of the model, for saving and loading. data points into the model. */
typedef struct {
    char name[48];  /* e.g. "layers.1.kernel" */
    int rank;
    int shape[4];
    size_t size;    /* product of shape */
    float *data;
    int frozen;     /* 1 for state the optimizer leaves alone (batch norm's moving statistics) */
} fnn_tensor;

FNN_API int fnn_model_num_tensors(const fnn_model *m);
FNN_API void fnn_model_tensor(const fnn_model *m, int i, fnn_tensor *out);

/* Threads and models. Inference (fnn_model_predict, fnn_evaluate, fnn_input_gradient,
 * fnn_saliency, fnn_occlusion, fnn_robustness) takes a const model and writes nothing into it:
 * each call runs in memory of its own (an executor sized for its batch and its threads), so any
 * number of threads may run inference on one model at once. What writes a model (training,
 * fnn_model_init, fnn_model_set_normalization, a caller writing through fnn_model_tensor) must
 * not run alongside anything else on that model. Each call parallelises by itself over its
 * `threads` argument. Load models one at a time (cJSON, which reads the file's header, keeps its
 * last parse error in a global), and with OpenBLAS make the first fnn_predictor_create,
 * fnn_model_predict or fnn_evaluate call before starting threads: it sets OpenBLAS to one
 * thread for the whole process (see "Threads" at fnn_train), and OpenBLAS does not document
 * openblas_set_num_threads as safe to call from two threads at once. */

/* Class probabilities for n images of the input shape, in eval mode, using up to `threads`
 * threads (0: all cores). x is (n, c, h, w) float; probs is (n, classes). Threads may share
 * the model (see "Threads and models" above). */
FNN_API fnn_status fnn_model_predict(const fnn_model *m, const float *x, int n, float *probs,
                                     int threads, fnn_error *err);

/* The memory of a model's passes for one team of threads (an executor): what
 * fnn_model_predict makes and frees on every call. A caller that predicts again and again (a
 * server, a latency benchmark) keeps one, and with it convolutions' transformed kernels, which
 * would otherwise be computed on every call. One executor serves one call at a time; several
 * may serve one model at once. */
typedef struct fnn_exec fnn_exec;

/* *out = an executor over m for batches of up to max_batch images (larger batches run in
 * pieces of at most 256, as fnn_model_predict's) and `threads` threads (0: all cores). It
 * reads m when it runs: m must outlive it, and m's input normalisation must not change. */
FNN_API fnn_status fnn_predictor_create(const fnn_model *m, int max_batch, int threads,
                                        fnn_exec **out, fnn_error *err);
/* fnn_model_predict through e: the same probabilities, bit for bit. */
FNN_API fnn_status fnn_predictor_run(fnn_exec *e, const float *x, int n, float *probs,
                                     fnn_error *err);
/* Frees e; NULL is a no-op. */
FNN_API void fnn_exec_free(fnn_exec *e);

/* Test-time augmentation: the views of each image whose class probabilities are averaged. */
typedef enum {
    FNN_TTA_NONE, /* the image alone: bit for bit the plain prediction */
    FNN_TTA_FLIP, /* the image and its left-right mirror, probabilities averaged (not logits,
                     as airbench does: the mean of two distributions stays one, so loss and
                     calibration read it as they read the model's own output) */
} fnn_tta;

/* How to run a model over images, for every consumer of its predictions (metrics, confusion
 * matrix, calibration, the report, validation in training). */
typedef struct {
    int threads; /* 0: all cores */
    fnn_tta tta;
} fnn_eval_options;

/* fnn_model_predict with o's test-time augmentation; FNN_TTA_FLIP needs room for a mirrored
 * copy of x, allocated per call. */
FNN_API fnn_status fnn_model_predict_with(const fnn_model *m, const float *x, int n,
                                          const fnn_eval_options *o, float *probs,
                                          fnn_error *err);

/* ---------------------------------------------------------------- model files */

/* Free-form string metadata stored with the weights (safetensors "__metadata__"). */
typedef struct {
    char *class_names_json; /* JSON list of strings */
    char *history_json;     /* JSON object of per-epoch metrics, may be NULL */
} fnn_model_meta;

/* Writes the model as safetensors, atomically (temp file, fsync, rename). */
FNN_API fnn_status fnn_model_save(const fnn_model *m, const fnn_model_meta *meta, const char *path,
                                  fnn_error *err);
/* Reads a model written by fnn_model_save. meta may be NULL; else its strings are malloc'd and
 * released with fnn_model_meta_free. */
FNN_API fnn_model *fnn_model_load(const char *path, fnn_model_meta *meta, fnn_error *err);
FNN_API void fnn_model_meta_free(fnn_model_meta *meta);

/* ---------------------------------------------------------------- ONNX export */

/* The ONNX operator set the export writes (src/io/onnx.c says why this one). */
#define FNN_ONNX_OPSET 13

/* How fnn_export_onnx writes a model. */
typedef struct {
    /* 0: a dynamic batch dimension named "batch"; N > 0: the batch fixed at N, for importers
     * that cannot take a dynamic one. */
    int batch;
    /* JSON list of the model's class names (fnn_model_meta's), stored in metadata_props as
     * "class_names"; NULL stores "0", "1", ... */
    const char *class_names_json;
} fnn_onnx_options;

/* Writes m as an ONNX model (FNN_ONNX_OPSET), atomically: nothing is written when a layer cannot be
 * expressed. The graph's input "pixels" (batch, c, h, w) float holds pixels from 0 to 255, C
 * channels: grey or R, G, B planes, as fnn predict reads them before scaling; the division by
 * 255 is a node of the graph, followed, when the model has an input normalisation, by Sub
 * "input_mean" and Div "input_std" nodes ((c, 1, 1) initialisers). Its
 * output "probabilities" (batch, classes) is fnn_model_predict's. metadata_props hold
 * "class_names" and "fnn_spec" (fnn_model_spec). opt may be NULL (dynamic batch). An existing
 * path that is not a regular file (a device such as /dev/stdout) is written in place. */
FNN_API fnn_status fnn_export_onnx(const fnn_model *m, const char *path,
                                   const fnn_onnx_options *opt, fnn_error *err);

/* ---------------------------------------------------------------- training */

typedef enum { FNN_OPT_ADAM = 0, FNN_OPT_SGD, FNN_OPT_ADAMW } fnn_optimizer_kind;

typedef struct {
    fnn_optimizer_kind kind;
    float lr;       /* learning rate */
    float beta1;    /* Adam, AdamW */
    float beta2;    /* Adam, AdamW */
    float eps;      /* Adam, AdamW: Keras's "epsilon hat" placement */
    float momentum; /* SGD */
    /* Applies to kernels (tensors of rank 2 or more), not to biases or batch-norm parameters.
     * Adam and SGD: L2, weight_decay * w added to the gradient (PyTorch's weight_decay; Keras's
     * l2(weight_decay / 2)). AdamW: decoupled, w -= lr * weight_decay * w before the step. */
    float weight_decay;
    int nesterov;   /* SGD: Nesterov momentum in Keras's form, p += momentum v - lr g */
} fnn_optim_config;

FNN_API fnn_optim_config fnn_optim_default(fnn_optimizer_kind kind);

typedef struct {
    int epoch;            /* 1-based */
    int step, steps;      /* within the epoch */
    double train_loss;    /* running mean over the epoch so far */
    double train_acc;
    double elapsed_s;     /* since the epoch began */
} fnn_progress;

/* A training step about to run, for fnn_train_config.on_step. */
typedef struct {
    int epoch;            /* 1-based */
    int step, steps;      /* 0-based step within the epoch, of steps */
    const int *images;    /* (rows) the batch: indices into the training set, in batch order */
    int rows;
} fnn_step_info;

typedef struct {
    int epoch;
    double train_loss, train_acc; /* running means over the epoch, dropout active (as Keras) */
    double val_loss, val_acc;     /* eval mode; NaN when there is no validation split */
    double seconds;               /* training time of the epoch, validation excluded */
    double val_seconds;
} fnn_epoch_stats;

/* ---------------------------------------------------------------- training features
 * Augmentation, learning-rate schedules, clipping, early stopping, checkpoints, transfer. */

/* Random transforms of training batches, drawn per image from the seed and the step, so the
 * same seed and thread count give the same batches. Zero fields are off. */
typedef struct {
    int shift;    /* translate by up to this many pixels in x and y, zero fill */
    int flip;     /* 1: mirror left-right with probability 1/2 */
    float rotate; /* rotate by up to this many degrees either way, bilinear, zero fill */
    float erase;  /* probability of erasing one random rectangle (2% to 25% of the image) to 0 */
} fnn_augment_config;

typedef enum {
    FNN_LR_CONSTANT = 0,
    FNN_LR_STEP,    /* lr * gamma^floor(epoch / step_epochs), epochs counted from 0 */
    FNN_LR_COSINE,  /* lr * (1 + cos(pi * s / S)) / 2 over the steps after warm-up, per step */
    FNN_LR_PLATEAU, /* lr * factor after `patience` epochs without validation loss improving */
    /* One cycle (airbench's triangle, PyTorch's OneCycleLR with linear annealing), per step t of
     * T = epochs * steps_per_epoch: up linearly to lr at step P = round(peak_at * T), then down
     * linearly to lr / (T - P) at the last step; lr * (t + 1) / P before P, lr * (T - t) / (T - P)
     * from P on. It is its own warm-up: warmup_epochs must be 0. */
    FNN_LR_ONECYCLE,
} fnn_lr_schedule_kind;

typedef struct {
    fnn_lr_schedule_kind kind;
    int step_epochs;    /* FNN_LR_STEP */
    float gamma;        /* FNN_LR_STEP */
    int patience;       /* FNN_LR_PLATEAU */
    float factor;       /* FNN_LR_PLATEAU, in (0, 1) */
    float min_lr;       /* FNN_LR_PLATEAU: lower bound */
    float peak_at;      /* FNN_LR_ONECYCLE: the fraction of the steps at the peak, in (0, 1) */
    /* Linear warm-up over the first warmup_epochs epochs, per step: lr * (t + 1) / W for the
     * 0-based global step t < W steps; combines with any kind (which then starts after it). */
    int warmup_epochs;
} fnn_lr_schedule;

typedef enum { FNN_MONITOR_VAL_LOSS = 0, FNN_MONITOR_VAL_ACCURACY } fnn_monitor;

/* What a run did besides the per-epoch statistics. */
typedef struct {
    int epochs;        /* entries of stats filled, resumed epochs included */
    int stopped_early; /* 1: early stopping ended the run */
    int best_epoch;    /* early stopping: the epoch whose weights the model holds; 0 if off */
    int interrupted;   /* 1: cfg->interrupt was seen; the model holds the last finished step */
    int resumed_epoch; /* epochs that came from cfg->resume, 0 for a fresh run */
} fnn_train_result;

typedef struct {
    int epochs;
    int batch_size;
    uint64_t seed;
    int threads;         /* 0: all cores */
    fnn_optim_config optim;
    /* Called from the training thread, at most every progress_interval_s seconds. May be NULL. */
    void (*on_progress)(void *user, const fnn_progress *p);
    double progress_interval_s;
    /* Called by one thread before every step, before `interrupt` is polled: a flag it sets
     * stops the run before this step. For tests and logs of the data order; it runs while
     * other threads fill the batch, so it must not touch the model. May be NULL. */
    void (*on_step)(void *user, const fnn_step_info *s);
    /* Called after each epoch. Return non-zero to stop training. May be NULL. */
    int (*on_epoch)(void *user, const fnn_epoch_stats *s);
    void *user;
    /* Training features; fnn_train_default leaves them all off. */
    fnn_augment_config augment;
    fnn_lr_schedule schedule;
    float clip_norm;       /* > 0: scale gradients to at most this global L2 norm */
    int early_stopping;    /* > 0: patience in epochs; restores the best epoch's weights */
    fnn_monitor monitor;   /* early stopping's metric (needs a validation set) */
    int freeze;            /* the first `freeze` layers keep their parameters */
    /* In [0, 1): train against (1 - x) onehot + x / classes (Keras's and PyTorch's
     * label_smoothing); the training loss reported is the smoothed one, validation and test
     * losses stay plain cross-entropy. 0: off. */
    float label_smoothing;
    /* > 0: the learning rate of the tensors that are not kernels (batch norm's scale and shift,
     * every bias: those without weight decay) is the schedule's times this, as airbench's
     * higher rate for batch norm's biases. 0 (or 1): the one rate for all. */
    float bn_lr_scale;
    /* In (0, 1): keep an exponential moving average of the weights, every state in the arena
     * (batch norm's moving statistics too, as timm's ModelEmaV2 and airbench's averaging of
     * the whole state dict), updated after every ema_every-th optimizer step t as
     * avg = d^N avg + (1 - d^N) w with N = ema_every and d = min(ema, (1 + t) / (10 + t))
     * (TensorFlow's ExponentialMovingAverage with num_updates, so the average forgets the
     * initial weights quickly). Validation and early stopping see the averaged weights, the
     * model holds them when the run ends, and checkpoints keep the average. 0: off. */
    float ema;
    int ema_every;         /* steps between updates of the average; 0 means 1 */
    fnn_tta tta;           /* validation's test-time augmentation (a test set's: the caller's) */
    /* Polled once per step; when it reads non-zero the run ends after the current step with
     * FNN_ERR_INTERRUPTED (a checkpoint written first if one is configured). May be NULL. The
     * library installs no signal handler. Set the flag from a thread that waits for the signal
     * (sigwait, as the fnn tool does), not from a handler: oneDNN's matrix products run with the
     * stack pointer in a heap buffer (oneDNN issue #4845, fixed in March 2026), and a handler
     * that runs on a thread inside one writes its frame over the heap. */
    const volatile int *interrupt;
    const char *checkpoint;      /* written atomically after every epoch and on interrupt */
    const char *checkpoint_user; /* a JSON object stored in the checkpoint for the caller */
    /* A checkpoint to continue from, up to `epochs`; its input normalisation (none in
     * checkpoints written before fnn stored it) replaces the model's. */
    const char *resume;
    /* Data-parallel training (one process per shard, e.g. MPI ranks; the library starts no
     * processes and sends nothing itself). Every shard walks the same global batches: batch_size
     * images in the same shuffled order; shard i of S computes forward and backward on rows
     * [rows * i / S, rows * (i + 1) / S) of each batch only, and divides its loss by the whole
     * batch's rows, so that the sum of the shards' gradients is the one-process gradient up to
     * the order of summation. Dropout and augmentation draw from (seed, step, the image's place
     * in the whole batch), the same on every shard. Batch norm normalises by each shard's own
     * rows (PyTorch DDP's default): the one place where S shards differ from one process, and
     * its moving statistics differ between shards. The training loss and accuracy in stats and
     * progress are over this shard's rows. Validation, checkpoints and the callbacks run on
     * every shard that is given them: pass val, checkpoint and callbacks to one shard only
     * (early stopping and the plateau schedule need val on every shard, where it gives the same
     * numbers, since every shard holds the same weights). shard_count 0 or 1: one process. */
    int shard_index;     /* 0..shard_count - 1 */
    int shard_count;
    /* Called once per step, after backward and before clipping and the update, with the whole
     * gradient arena (n floats, the model's parameter layout with its alignment padding, which
     * stays zero): the point where data-parallel shards sum their gradients (MPI_Allreduce in
     * place, for instance), and may change them. It runs on the thread that called
     * fnn_train_run (MPI_THREAD_FUNNELED is enough) while the team waits, so it is called in
     * the same order on every shard, the same number of times, also for a shard with no rows
     * in a step (its gradients are then zero). A status other than FNN_OK (with err filled)
     * ends the run, which returns it. Gradients that are not finite afterwards end the run on
     * every shard at the same step. NULL: no hook (and no extra barrier). */
    fnn_status (*on_gradients)(void *user, float *grads, size_t n, fnn_error *err);
    void *grad_user;     /* on_gradients's first argument */
} fnn_train_config;

FNN_API fnn_train_config fnn_train_default(void);

/* Sizing a team to the cores that other processes leave free. A team waits at every step for
 * its slowest thread, so on a machine where another process holds one of the cores, a team as
 * large as the machine loses to one thread (issue 18: the study took 4.6 s on 2 threads beside
 * `yes`, 3.8 s on one; bench/contention.sh). The probe reads the cores' busy time from
 * /proc/stat, less this process's own CPU time, over a window: start it, do other work (load the
 * data), then finish it. Linux only; elsewhere, or when /proc/stat cannot be read, every core
 * counts as free. A team's size changes a training's numbers (fnn_train_config.threads), so
 * a caller that sizes teams this way should say how many threads it chose. */
typedef struct {
    double busy_s;   /* CPU time of every process on the cores this one may use */
    double own_s;    /* this process's CPU time */
    double wall_s;   /* monotonic clock */
    int cores;       /* the cores this process may use (its affinity mask) */
    int readable;    /* 0: /proc/stat could not be read; the probe finds every core free */
} fnn_cores_probe;

FNN_API void fnn_cores_probe_start(fnn_cores_probe *p);

/* The cores free over the window since p started (at least 1, at most p->cores): the cores less
 * the other processes' average use, rounded to the nearest core. Sleeps first until the window
 * lasts at least min_seconds (/proc/stat counts in ticks of 10 ms: 0.1 s or more for a reliable
 * figure). *others_busy, when not NULL, receives that average use in cores. */
FNN_API int fnn_cores_probe_finish(const fnn_cores_probe *p, double min_seconds,
                                   double *others_busy);

/* Threads: training, evaluation and prediction run `threads` OpenMP threads of their own and
 * run each matrix product on the calling thread: oneDNN (the default) follows the team's OpenMP
 * thread count; with OpenBLAS (built with FNN_GEMM=openblas) they set it so, process-wide.
 * Trains m on train, validating on val after each epoch when val->n > 0. stats, when not NULL,
 * receives one entry per epoch (room for cfg->epochs). */
FNN_API fnn_status fnn_train(fnn_model *m, const fnn_dataset *train, const fnn_dataset *val,
                             const fnn_train_config *cfg, fnn_epoch_stats *stats, fnn_error *err);

/* fnn_train that also reports what happened (early stopping, interrupt, resume). stats needs
 * room for cfg->epochs entries; with cfg->resume the resumed epochs are filled in too. */
FNN_API fnn_status fnn_train_run(fnn_model *m, const fnn_dataset *train, const fnn_dataset *val,
                                 const fnn_train_config *cfg, fnn_epoch_stats *stats,
                                 fnn_train_result *result, fnn_error *err);

/* The learning rate of 0-based global step t of epoch (0-based) with steps_per_epoch steps,
 * given a plateau factor (1 until the plateau schedule cuts it). Pure. */
FNN_API float fnn_lr_at(const fnn_lr_schedule *s, float base_lr, int epochs, int steps_per_epoch,
                        int epoch, int64_t t, float plateau_scale);

/* What a checkpoint holds besides its tensors, read to rebuild the model before resuming. */
typedef struct {
    char *arch;               /* the model's spec */
    int c, h, w;              /* input shape */
    fnn_train_config cfg;     /* the run's settings; callbacks and paths are NULL */
    char *user_json;          /* cfg.checkpoint_user as written, or NULL */
    int epoch;                /* epochs completed */
    int step;                 /* steps done into the next epoch (an interrupted run) */
} fnn_checkpoint_info;

/* Reads and validates a checkpoint's description; free with fnn_checkpoint_info_free. */
FNN_API fnn_status fnn_checkpoint_info_read(const char *path, fnn_checkpoint_info *out,
                                            fnn_error *err);
FNN_API void fnn_checkpoint_info_free(fnn_checkpoint_info *info);

/* A data set restricted to the given classes, relabelled 0..nclasses-1 in the order given,
 * keeping the first per_class images of each (0: all), in file order. Owns its memory. */
FNN_API fnn_status fnn_dataset_select_classes(const fnn_dataset *d, const int *classes,
                                              int nclasses, int per_class, fnn_dataset *out,
                                              fnn_error *err);

/* Fold `fold` of k of d: the images [n fold / k, n (fold + 1) / k) as val (a view), the rest as
 * train (a copy that owns its memory). */
FNN_API fnn_status fnn_dataset_fold(const fnn_dataset *d, int k, int fold, fnn_dataset *train,
                                    fnn_dataset *val, fnn_error *err);

/* One line per model tensor of what transfer learning did: copied from the source model,
 * or left as initialised and why. */
typedef struct {
    char name[48];
    int loaded;         /* 1: copied from the source */
    char reason[128];   /* why not, when not */
} fnn_transfer_entry;

/* Copies into m every tensor of src at the same layer position with the same name and shape
 * (e.g. "layers.1.kernel" of the same size) among m's first `layers` layers; the others keep
 * m's initialisation. report (room for fnn_model_num_tensors(m)) may be NULL; *nloaded counts
 * copies. src's input normalisation is not copied: m keeps its own (set it from the new data's
 * statistics). The two models may take inputs of different shapes (a model fine-tuned on
 * another data set) when m's first tensor has its shape in src, as convolution kernels do for
 * any image size; otherwise (other channels, a dense layer over the flattened image) FNN_ERR_ARG
 * names both shapes. */
FNN_API fnn_status fnn_model_transfer(fnn_model *m, const fnn_model *src, int layers,
                                      fnn_transfer_entry *report, int *nloaded, fnn_error *err);

/* ---------------------------------------------------------------- evaluation */

typedef struct {
    int nclasses;
    int n;
    double loss;        /* mean cross-entropy */
    double accuracy;
    int64_t *confusion; /* (nclasses, nclasses): rows true, columns predicted */
    double *precision, *recall, *f1; /* (nclasses); 0 where undefined, as scikit-learn */
    int64_t *support;   /* (nclasses) */
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
} fnn_metrics;

/* Builds metrics from true labels and predictions. probs (n, nclasses) may be NULL; loss is
 * then NaN. */
FNN_API fnn_status fnn_metrics_compute(const uint8_t *labels, const int *pred, const float *probs,
                                       int n, int nclasses, fnn_metrics *out, fnn_error *err);
FNN_API void fnn_metrics_free(fnn_metrics *mt);

/* Checks that d's images fit m's input and its labels m's classes; `what` names the set in the
 * message ("test"). */
FNN_API fnn_status fnn_check_data(const fnn_model *m, const fnn_dataset *d, const char *what,
                                  fnn_error *err);

/* Runs the model over a data set in eval mode and fills metrics. pred (n) and probs
 * (n, classes) receive per-image results when not NULL. */
FNN_API fnn_status fnn_evaluate(const fnn_model *m, const fnn_dataset *d, int threads, int *pred,
                                float *probs, fnn_metrics *out, fnn_error *err);
/* fnn_evaluate with o's threads and test-time augmentation. */
FNN_API fnn_status fnn_evaluate_with(const fnn_model *m, const fnn_dataset *d,
                                     const fnn_eval_options *o, int *pred, float *probs,
                                     fnn_metrics *out, fnn_error *err);

/* scikit-learn's classification_report layout, as a malloc'd string. */
FNN_API char *fnn_format_report(const fnn_metrics *mt, const char *const *class_names, int digits);
/* The confusion matrix as an aligned table with class names, as a malloc'd string. */
FNN_API char *fnn_format_confusion(const fnn_metrics *mt, const char *const *class_names);

/* ---------------------------------------------------------------- explanation, robustness, calibration,
 * image input */

/* Gradient of each image's class score (the logit, before softmax) with respect to its input pixels,
 * in eval mode. x (n, c*h*w), classes (n), dx (n, c*h*w). Batched internally with bounded memory. */
FNN_API fnn_status fnn_input_gradient(const fnn_model *m, const float *x, int n, const int *classes,
                                      float *dx, int threads, fnn_error *err);

typedef enum { FNN_SALIENCY_GRADIENT = 0, FNN_SALIENCY_SMOOTHGRAD, FNN_SALIENCY_INTEGRATED } fnn_saliency_method;
typedef struct {
    fnn_saliency_method method;
    int samples;     /* SmoothGrad noise samples or integrated-gradient steps [method default if 0] */
    float noise;     /* SmoothGrad noise standard deviation, in pixel units [0.15 if 0] */
    int max_images;  /* per class; 0: all */
    uint64_t seed;
} fnn_saliency_config;
/* Per-class saliency: mean over d's images of class k of |gradient of class k's score|.
 * maps (nclasses, h*w); classes with no images get zeros. A colour pixel's value is the
 * largest |gradient| over its channels (Simonyan et al. 2014), so maps are (h, w) for any c. */
FNN_API fnn_status fnn_saliency(const fnn_model *m, const fnn_dataset *d, const fnn_saliency_config *cfg,
                                int threads, float *maps, fnn_error *err);

/* Occlusion: accuracy of d with a patch x patch square (value 0 in every channel) slid with
 * stride over the image; drop (h, w) receives, for each pixel, the mean accuracy drop of the
 * patches covering it. *base receives the unoccluded accuracy. */
FNN_API fnn_status fnn_occlusion(const fnn_model *m, const fnn_dataset *d, int patch, int stride,
                                 int threads, float *drop, double *base, fnn_error *err);

typedef enum { FNN_PERTURB_NOISE = 0, FNN_PERTURB_SHIFT, FNN_PERTURB_ROTATE, FNN_PERTURB_OCCLUDE,
               FNN_PERTURB_CONTRAST, FNN_PERTURB_COUNT } fnn_perturbation;
FNN_API const char *fnn_perturbation_name(fnn_perturbation p); /* "noise", "shift", ... */
/* The default levels of a perturbation, level 0 (none) first: noise sigma, shift pixels, rotation
 * degrees, occluded square side in pixels, contrast factor (1 = none, listed first). */
FNN_API int fnn_perturbation_levels(fnn_perturbation p, const double **levels);
/* Test accuracy of d under each level of perturbation p (seeded). acc (nlevels). At the "none"
 * level the result equals plain fnn_evaluate accuracy exactly. Colour images: noise is drawn per
 * pixel of each channel; an image's shift, rotation or occluding square is drawn once and
 * applied to every channel plane; contrast scales about the mean of all its values. */
FNN_API fnn_status fnn_robustness(const fnn_model *m, const fnn_dataset *d, fnn_perturbation p,
                                  const double *levels, int nlevels, uint64_t seed, int threads,
                                  double *acc, fnn_error *err);

typedef struct {
    int nbins;
    double *confidence; /* (nbins) mean top-1 probability of the images in the bin */
    double *accuracy;   /* (nbins) their accuracy */
    int64_t *count;     /* (nbins) */
    double ece;         /* expected calibration error */
} fnn_calibration;
FNN_API fnn_status fnn_calibration_compute(const uint8_t *labels, const float *probs, int n,
                                           int nclasses, int nbins, fnn_calibration *out,
                                           fnn_error *err);
FNN_API void fnn_calibration_free(fnn_calibration *c);

/* Reads a PNG, JPEG, PGM, PPM or BMP file of any size (stb_image), converts it to c channels
 * (1: grey, stb_image's luma; 3: red, green, blue), resizes it to (h, w) with area averaging,
 * scales to [0, 1] and inverts when invert is set. Transparent pixels become black (white
 * before inversion). x (c, h, w). */
FNN_API fnn_status fnn_image_load(const char *path, int c, int h, int w, int invert, float *x,
                                  fnn_error *err);

#ifdef __cplusplus
}
#endif
#endif
